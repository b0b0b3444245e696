"""The networks of one run, built from its `RunConfig`: the teacher, the FitNet's student and its `Distiller`.

The teacher is a zoo architecture or the .keras file of `teacher_path`; the student a zoo architecture or the
(untrained) .keras file of `student_path`. The hint pairs are `hints`, else the zoo architectures' own pair, else
(a model from a file that is not a zoo network) the paper's automatic choice, the middle layers (`taps.auto_pair`).
Everything is checked here, before a run writes anything: shapes against the data, and every hint pair.
"""

import dataclasses
from typing import Optional

from absl import logging
import keras

from fitnets_tf.distiller import Distiller, HintPair
from fitnets_tf.errors import ConfigError
from fitnets_tf.harness.config import BASELINE_INITIALIZER
from fitnets_tf.harness.model_files import check_shapes, load_model_file
from fitnets_tf.models import FitNetsNetwork, NetSpec, build_network, zoo
from fitnets_tf.schedules import KDLambdaSchedule


@dataclasses.dataclass(frozen=True)
class Networks:
    """The teacher, the student and the FitNet's distiller of a run (its hint pairs resolved: "auto" is the chosen
    pair); a spec is None for a model from a file."""

    teacher: keras.Model
    student: keras.Model
    distiller: Distiller
    teacher_spec: Optional[NetSpec]
    student_spec: Optional[NetSpec]

    @property
    def pairs(self):
        return list(self.distiller.hint_pairs)


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


def distiller(config, student, teacher, info, pairs=()):
    """A `Distiller` of `student` by `teacher` with the config's KD settings (lambda decays over stage 2)."""
    c = config
    end = c.kd_lambda_decay_end if c.kd_lambda_decay_end is not None else max(c.kd_epochs - 1, 0)
    schedule = KDLambdaSchedule(c.kd_lambda, c.kd_lambda_final, min(c.kd_lambda_decay_start, end), end)
    return Distiller(
        student, teacher, hint_pairs=pairs, temperature=c.temperature, kd_lambda=schedule,
        tau_squared=c.tau_squared, hint_spatial_mean=c.hint_spatial_mean, seed=c.seed,
        input_shape=info.image_shape, teacher_precision=c.teacher_precision,
    )


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
        try:
            fitnet = distiller(c, student, teacher, info, pairs)
        except ValueError as error:
            raise ConfigError(f"`hints`: {error}") from None
    source = ("set by `hints`" if c.hints else "chosen automatically" if pairs == "auto"
              else "the default pair of the architectures")
    for report in fitnet.pair_report:
        reason = report["regressor_reason"] if pairs == "auto" else "the `regressor` setting"
        logging.info("[fitnets] hint pair (%s): guided %r %s <- hint %r %s, regressor %r (%s)%s", source,
                     report["guided"], tuple(report["guided_shape"]), report["hint"], tuple(report["hint_shape"]),
                     report["regressor"], reason, f"; pairing: {report['pairing']}" if report["pairing"] else "")
    return Networks(teacher, student, fitnet, teacher_spec, student_spec)
