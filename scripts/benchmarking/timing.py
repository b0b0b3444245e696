"""How a step is timed, and how candidates are compared.

How a step is timed. Every step candidate is `tf.function(body, jit_compile=xla)` called on the same tensors, and a
call ends when its outputs are on the host. For a Keras model `body` is `model.train_step((x, y))` — exactly what
`compile(jit_compile=...)` makes Keras wrap in `tf.function(jit_compile=...)` inside `make_train_function`
(`one_step_on_data`), without `train_on_batch`'s per-call Python (a generator, `reset_metrics`, converting the logs).
So both XLA settings run on the same model objects, and our steps, Keras's Distiller and the reference steps pay
the same (minimal) overhead. `ce_train_on_batch` measures the CE step through `train_on_batch` once more, to show
what that overhead is. Before tracing, each model makes one eager `train_step`, which creates its optimizer slots
and metric variables (the traced functions then create none).

How candidates are compared. After each candidate's first call (tracing, and the XLA compilation when on) and
`warmup` further calls, the candidates are timed round-robin (`fitnets_tf.harness.timing.time_interleaved`),
`rounds` times, the starting candidate rotating each round, so that load from other processes hits all of them
alike; each sample is `calls_per_sample` calls, and the reported time is the median sample (the minimum is kept
too: other processes only ever add time). Only ratios inside one run mean anything on a shared machine, and a
ratio is paired per round (`paired_ratio`).
"""

import numpy as np
import tensorflow as tf

from benchmarking.models import BenchmarkModels, single_output
from fitnets_tf.distiller import cached_batch
from fitnets_tf.harness.timing import Candidate

TRAIN_STEPS = ("ce", "hint", "kd", "keras_kd", "truncated_student_step", "hint_cached", "kd_cached", "kd_lowp",
               "kd_auto")
FORWARDS = ("teacher_forward", "truncated_teacher_forward", "teacher_forward_lowp")
STEP_NAMES = TRAIN_STEPS + FORWARDS
FITNETS_TRAIN_STEPS = ("ce", "hint", "kd")


def _fetch(outputs):
    for tensor in tf.nest.flatten(outputs):
        if isinstance(tensor, tf.Tensor):
            tensor.numpy()


def traced_call(body, args, jit_compile):
    """`run()` calling `tf.function(body, jit_compile=jit_compile)(*args)` and fetching its outputs to the host."""
    function = tf.function(body, jit_compile=jit_compile)

    def run():
        _fetch(function(*args))

    return run


def stage2_bodies(ce, teacher_forward, kd, keras_kd, x, y):
    """{step: (body, args)} of stage 2 and its parts on the batch (x, y): "ce" and "kd" (`Distiller.train_step`),
    "teacher_forward" (`teacher_forward(x, training=False)`) and "keras_kd" (Keras's distiller's `train_step`)."""
    return {
        "ce": (lambda a, b: ce.train_step((a, b)), (x, y)),
        "teacher_forward": (lambda a: teacher_forward(a, training=False), (x,)),
        "kd": (lambda a, b: kd.train_step((a, b)), (x, y)),
        "keras_kd": (lambda a, b: keras_kd.train_step((a, b)), (x, y)),
    }


def step_candidate(step, body, args, jit, batch):
    """The `Candidate` "<step>/xla_on|off": `body(*args)` traced with `jit_compile=jit`, `batch` images a call."""
    kind = "train_step" if step in TRAIN_STEPS else "forward"
    return Candidate(f"{step}/{xla_key(jit)}", traced_call(body, args, jit), batch,
                     info={"step": step, "kind": kind, "xla": jit})


def step_candidates(models: BenchmarkModels, x, y, xla_settings):
    """The step candidates for each XLA setting, named "<step>/xla_on|off", plus "ce_train_on_batch/xla_off"."""
    bodies = {
        **stage2_bodies(models.ce, models.teacher, models.kd, models.keras_kd, x, y),
        "hint": (lambda a, b: models.hint.train_step((a, b)), (x, y)),
        "truncated_student_step": (models.truncated_student.train_step, (x,)),
        "truncated_teacher_forward": (lambda a: models.hint.current_stage.hint_model(a, training=False), (x,)),
        # Teacher-output caching: the same steps fed the teacher's outputs computed once, as the pipeline does
        # when the training images are not augmented (Distiller.cache_teacher_outputs).
        "hint_cached": (lambda a, h, b: models.hint.train_step((cached_batch(a, (h,)), b)),
                        (x, tf.constant(single_output(models.hint.current_stage.hint_model(x, training=False))), y)),
        "kd_cached": (lambda a, t, b: models.kd.train_step((cached_batch(a, (t,)), b)),
                      (x, tf.constant(models.teacher(x, training=False)), y)),
    }
    stage2 = ("ce", "teacher_forward", "kd", "keras_kd", "kd_cached")
    if models.kd_lowp is not None:
        bodies["kd_lowp"] = (lambda a, b: models.kd_lowp.train_step((a, b)), (x, y))
        bodies["teacher_forward_lowp"] = (lambda a: models.kd_lowp.teacher_logits(a, training=False), (x,))
        stage2 += ("kd_lowp", "teacher_forward_lowp")
    batch = int(x.shape[0])
    candidates = []
    # The steps of one target are consecutive in the round (stage 2 and Keras; then stage 1), per XLA setting.
    for group in (stage2, ("hint", "truncated_student_step", "truncated_teacher_forward", "hint_cached")):
        for jit in xla_settings:
            for step in group:
                candidates.append(step_candidate(step, *bodies[step], jit, batch))

    # kd_auto under Keras's own outer step setting (off when the parts are split), next to Keras's.
    auto_jit = bool(models.kd_auto.jit_compile)
    candidates.insert(len(stage2) * len(xla_settings), Candidate(
        f"kd_auto/{xla_key(auto_jit)}",
        traced_call(lambda a, b: models.kd_auto.train_step((a, b)), (x, y), auto_jit), batch,
        info={"step": "kd_auto", "kind": "train_step", "xla": auto_jit, "xla_settings": models.kd_auto.xla_settings,
              "teacher_precision": models.kd_auto.teacher_precision}))

    def ce_train_on_batch():
        models.ce.train_on_batch(x, y)  # Returns the logs as Python floats: the step is complete.

    candidates.append(Candidate("ce_train_on_batch/xla_off", ce_train_on_batch, batch,
                                info={"step": "ce_train_on_batch", "kind": "train_step", "xla": False}))
    return candidates


def xla_key(jit):
    """The suffix of a candidate's name for an XLA setting: "xla_on" or "xla_off"."""
    return "xla_on" if jit else "xla_off"


def paired_ratio(results, numerator, denominator):
    """The ratio sum(t(numerator)) / sum(t(denominator)) for one XLA setting, three ways.

    `numerator` and `denominator` are candidate names. Returns None if one is missing or failed, else a dict:
    `ratio`: the median over rounds of the ratio of the samples of the SAME round (the candidates of one target are
    timed one after the other, so load that drifts over seconds cancels out; this decides the target);
    `ratio_per_round`; `ratio_of_medians`; `ratio_of_minima` (other processes only ever add time); `ratio_cpu`: the
    paired ratio of process CPU times (work rather than elapsed time: little affected by other processes).
    """
    rows = [results.get(name) for name in (*numerator, *denominator)]
    if any(r is None or r["error"] for r in rows):
        return None
    top, bottom = rows[: len(numerator)], rows[len(numerator):]

    def per_round(key):
        return [sum(r[key][i] for r in top) / sum(r[key][i] for r in bottom)
                for i in range(min(len(r[key]) for r in rows))]

    wall = per_round("samples_s")
    return {
        "ratio": float(np.median(wall)),
        "ratio_per_round": wall,
        "ratio_of_medians": sum(r["seconds_per_call"] for r in top) / sum(r["seconds_per_call"] for r in bottom),
        "ratio_of_minima": sum(r["min_s"] for r in top) / sum(r["min_s"] for r in bottom),
        "ratio_cpu": float(np.median(per_round("cpu_samples_s"))),
    }

