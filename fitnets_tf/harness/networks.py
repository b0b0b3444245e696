"""The networks of one run, built from its `RunConfig`: the teacher, the FitNet's student, its `Distiller` and
its stage-1 stages; and each stage object of a run, built from the config's settings.

The teacher is a zoo architecture or the .keras file of `teacher_path`; the student a zoo architecture or the
(untrained) .keras file of `student_path`. The hint pairs are `hints`, else the zoo architectures' own pair, else
(a model from a file that is not a zoo network) the paper's automatic choice, the middle layers (`taps.auto_pair`).
Everything is checked here, before a run writes anything: shapes against the data, and every hint pair (the stage-1
stages are bound to the FitNet's Distiller here, which resolves the pairs and builds their regressors).
"""

import dataclasses
from typing import Optional

from absl import logging
import keras

from fitnets_tf.distiller import Distiller
from fitnets_tf.errors import ConfigError
from fitnets_tf.harness.config import BASELINE_INITIALIZER
from fitnets_tf.harness.model_files import check_shapes, load_model_file
from fitnets_tf.models import FitNetsNetwork, NetSpec, build_network, zoo
from fitnets_tf.schedules import KDLambdaSchedule
from fitnets_tf.stages import CEStage, HintPair, HintStage, KDStage, OneStageFitNetStage


@dataclasses.dataclass(frozen=True)
class Networks:
    """The teacher, the student, the FitNet's distiller and its stage-1 stages of a run (bound: their hint pairs
    resolved, "auto" is the chosen pair; one stage per pair with `hint_mode` "sequential", else one); a spec is None
    for a model from a file."""

    teacher: keras.Model
    student: keras.Model
    distiller: Distiller
    teacher_spec: Optional[NetSpec]
    student_spec: Optional[NetSpec]
    hint_stages: tuple = ()

    @property
    def pairs(self):
        """The resolved hint pairs, in order."""
        return [pair for stage in self.hint_stages for pair in stage.hint_pairs]

    @property
    def pair_report(self):
        """Per pair: the references, both shapes, the regressor and why."""
        return [report for stage in self.hint_stages for report in stage.pair_report]


def spec(config, name, info):
    """The zoo architecture `name` for the data of `info`, with the config's initializer if one is given."""
    result = zoo.get_spec(name, input_shape=info.image_shape, num_classes=info.num_classes)
    if config.initializer:
        result = dataclasses.replace(result, initializer=config.initializer)
    return result


def new_student(config, student_spec):
    """A fresh student: the zoo architecture (seed + 1), or the .keras file of `student_path` (its saved initial
    weights), so that the FitNet and the baselines start from the same weights."""
    if config.student_path:
        return load_model_file(config.student_path, "student_path")
    return build_network(student_spec, seed=config.seed + 1)


def glorot_student(config, student_spec):
    """The student architecture from Glorot-uniform weights (the "<method>_glorot" baselines)."""
    return build_network(dataclasses.replace(student_spec, initializer=BASELINE_INITIALIZER), seed=config.seed + 1)


def distiller(config, student, teacher, info):
    """A `Distiller` of `student` by `teacher` (None: the model alone) with the config's teacher precision."""
    return Distiller(student, teacher, input_shape=info.image_shape, teacher_precision=config.teacher_precision)


def kd_stage(config):
    """Stage 2 with the config's KD settings (lambda decays over the stage's epochs)."""
    c = config
    end = c.kd_lambda_decay_end if c.kd_lambda_decay_end is not None else max(c.kd_epochs - 1, 0)
    schedule = KDLambdaSchedule(c.kd_lambda, c.kd_lambda_final, min(c.kd_lambda_decay_start, end), end)
    return KDStage(temperature=c.temperature, kd_lambda=schedule, tau_squared=c.tau_squared)


def hint_stages(config, pairs):
    """The FitNet's stage 1: one `HintStage` per pair (`hint_mode` "sequential", the original code) or one for all
    (unbound; `pairs` are `HintPair`s or "auto")."""
    c = config
    if c.hint_mode == "sequential" and not isinstance(pairs, str):
        return [HintStage([pair], spatial_mean=c.hint_spatial_mean, seed=c.seed, first_pair=i)
                for i, pair in enumerate(pairs)]
    return [HintStage(pairs, spatial_mean=c.hint_spatial_mean, seed=c.seed)]


def baseline_stage(config, method, pairs):
    """The stage a baseline trains with: "ce" (the student alone), "kd" (KD alone, stage 2's settings) or
    "one_stage" (`OneStageFitNetStage` on the FitNet's resolved pairs, CE + beta x hint loss from the first step)."""
    if method == "ce":
        return CEStage()
    if method == "kd":
        return kd_stage(config)
    if method == "one_stage":
        return OneStageFitNetStage([HintPair(p.guided, p.hint, p.regressor) for p in pairs],
                                   beta=config.one_stage_beta, seed=config.seed)
    raise ValueError(f"unknown baseline method {method!r}")


def _hint_pairs(config, info, teacher, teacher_spec, student_spec):
    """`hints`; else the zoo architectures' own pair; else "auto" (the middle layers)."""
    if config.hints:
        return [HintPair(g, h, config.regressor) for g, h in config.hints]
    zoo_teacher = teacher_spec is not None or isinstance(teacher, FitNetsNetwork) or (
        teacher.name == config.teacher and "conv1" in [layer.name for layer in teacher.layers])
    if student_spec is None or not zoo_teacher:
        return "auto"
    teacher_spec = teacher_spec or (teacher.spec if isinstance(teacher, FitNetsNetwork)
                                    else spec(config, config.teacher, info))
    return [HintPair(student_spec.hint_layer, teacher_spec.hint_layer, config.regressor)]


def build_networks(config, info, strategy):
    """Builds (or loads) the teacher and the student under `strategy` and checks them and the hint pairs against
    the data of `info`; logs each pair. Raises ConfigError naming the setting at fault."""
    c = config
    teacher_spec = None if c.teacher_path else spec(c, c.teacher, info)
    student_spec = None if c.student_path else spec(c, c.student, info)
    with strategy.scope():
        teacher = (load_model_file(c.teacher_path, "teacher_path") if c.teacher_path
                   else build_network(teacher_spec, seed=c.seed))
        student = new_student(c, student_spec)
        check_shapes(info, teacher, student,
                     f"in {c.teacher_path!r} " if c.teacher_path else f"'{teacher.name}' ",
                     f"in {c.student_path!r} " if c.student_path else f"'{student.name}' ")
        pairs = _hint_pairs(c, info, teacher, teacher_spec, student_spec)
        stages = hint_stages(c, pairs)
        try:
            fitnet = distiller(c, student, teacher, info)
            for stage in stages:
                stage.bind(fitnet)
        except ValueError as error:
            raise ConfigError(f"`hints`: {error}") from None
        if len(stages) > 1:
            # One stage per pair: each checkpoints every pair's regressor, in order, as runs always have (a run
            # checkpointed by an earlier version resumes).
            every = [r for stage in stages for r in stage.regressors]
            for stage in stages:
                stage.checkpointed_regressors = every
    networks = Networks(teacher, student, fitnet, teacher_spec, student_spec, tuple(stages))
    source = ("set by `hints`" if c.hints else "chosen automatically" if pairs == "auto"
              else "the default pair of the architectures")
    for report in networks.pair_report:
        reason = report["regressor_reason"] if pairs == "auto" else "the `regressor` setting"
        logging.info("[fitnets] hint pair (%s): guided %r %s <- hint %r %s, regressor %r (%s)%s", source,
                     report["guided"], tuple(report["guided_shape"]), report["hint"], tuple(report["hint_shape"]),
                     report["regressor"], reason, f"; pairing: {report['pairing']}" if report["pairing"] else "")
    return networks
