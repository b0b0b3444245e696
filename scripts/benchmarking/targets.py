"""The targets of the steps (each per XLA setting, with a pass/fail boolean), the XLA comparison and the speed-up
of teacher-output caching.

A ratio is the median over rounds of the ratio of the samples of the same round: the candidates of one target run
one after the other in each round, so load from other processes that drifts over seconds cancels out
(`timing.paired_ratio`; the ratios of medians and of minima are reported too):
  stage2_overhead:  t(kd) <= 1.10 * (t(ce) + t(teacher_forward));
  stage1_overhead:  t(hint) <= 1.10 * (t(truncated_student_step) + t(truncated_teacher_forward));
  vs_keras_distillation: images/s of kd >= images/s of keras_kd;
  auto_vs_keras_distillation: images/s of kd_auto >= 1.5 x images/s of keras_kd at its faster XLA setting (the
                    auto stage 2 against Keras's best; with augmentation the teacher cannot be cached, so neither
                    side uses caching);
  input_pipeline:   input pipeline images/s >= 3 * the fastest training step's images/s (any stage, either XLA
                    setting): the pipeline is never what limits training.
XLA: for each step, which setting is faster, and by how much (paired per round in the same way).
"""

from benchmarking.timing import FITNETS_TRAIN_STEPS, STEP_NAMES, paired_ratio, xla_key

OVERHEAD_LIMIT = 1.10
AUTO_VS_KERAS_LIMIT = 1.5  # images/s of kd_auto over keras.distillation's at its faster XLA setting
PIPELINE_FACTOR = 3.0


def _seconds(results, step, jit, stat="seconds_per_call"):
    result = results.get(f"{step}/{xla_key(jit)}")
    return None if result is None or result["error"] else result[stat]


# Each target: (numerator steps, denominator steps); the ratio is sum(numerator times) / sum(denominator times).
_RATIO_TERMS = {
    "stage2_overhead": (("kd",), ("ce", "teacher_forward")),
    "stage1_overhead": (("hint",), ("truncated_student_step", "truncated_teacher_forward")),
    "vs_keras_distillation": (("keras_kd",), ("kd",)),  # t(keras) / t(kd) = images/s of kd / images/s of keras
}
_LIMITS = {"stage2_overhead": (OVERHEAD_LIMIT, False), "stage1_overhead": (OVERHEAD_LIMIT, False),
           "vs_keras_distillation": (1.0, True)}


def ratio_target(results, name, jit=False, candidate=None):
    """One XLA setting of a ratio target of `_RATIO_TERMS` ("stage2_overhead", "stage1_overhead",
    "vs_keras_distillation"): the `paired_ratio` of its candidates "<step>/xla_on|off" (or `candidate(step)`, the
    name of each step's candidate; None values when one is missing or failed), its `limit` and `passed` (None when
    nothing could be measured)."""
    numerator, denominator = _RATIO_TERMS[name]
    limit, higher_is_better = _LIMITS[name]
    candidate = candidate or (lambda step: f"{step}/{xla_key(jit)}")
    ratio = paired_ratio(results, [candidate(s) for s in numerator], [candidate(s) for s in denominator])
    entry = ratio or {"ratio": None, "ratio_per_round": [], "ratio_of_medians": None, "ratio_of_minima": None,
                      "ratio_cpu": None}
    passed = None
    if entry["ratio"] is not None:
        passed = bool(entry["ratio"] >= limit if higher_is_better else entry["ratio"] <= limit)
    return {**entry, "limit": limit, "passed": passed}


def compute_targets(results, xla_settings):
    """Ratios and pass/fail of the four targets (see the module docstring), per XLA setting where it applies.

    Returns {target: {"description", "xla_off"/"xla_on": {"ratio", "ratio_per_round", "ratio_of_medians",
    "ratio_of_minima", "ratio_cpu", "limit", "passed"}, "passed"}}. A setting passes when its `ratio` (see
    `paired_ratio`) is within the limit; a target passes when every measured setting does (None: nothing could be
    measured).
    """
    targets = {
        "stage2_overhead": {"description": "t(kd) / (t(ce) + t(teacher_forward)) <= 1.10"},
        "stage1_overhead": {
            "description": "t(hint) / (t(truncated_student_step) + t(truncated_teacher_forward)) <= 1.10"
        },
        "vs_keras_distillation": {"description": "images/s of kd / images/s of keras.distillation >= 1"},
    }
    targets["auto_vs_keras_distillation"] = auto_vs_keras(results, xla_settings)
    for name in _RATIO_TERMS:
        verdicts = []
        for jit in xla_settings:
            targets[name][xla_key(jit)] = entry = ratio_target(results, name, jit)
            if entry["passed"] is not None:
                verdicts.append(entry["passed"])
        targets[name]["passed"] = all(verdicts) if verdicts else None

    pipeline = results.get("input_pipeline", {}).get("images_per_second")
    fastest_name, fastest = None, None
    per_stage = {}
    for step in FITNETS_TRAIN_STEPS:
        best = None
        for jit in xla_settings:
            seconds = _seconds(results, step, jit)
            rate = None if seconds is None else results[f"{step}/{xla_key(jit)}"]["images_per_second"]
            if rate and (best is None or rate > best):
                best = rate
            if rate and (fastest is None or rate > fastest):
                fastest_name, fastest = f"{step}/{xla_key(jit)}", rate
        per_stage[step] = pipeline / best if pipeline and best else None
    ratio = pipeline / fastest if pipeline and fastest else None
    targets["input_pipeline"] = {
        "description": "input pipeline images/s / fastest training step images/s >= 3",
        "fastest_training_step": fastest_name,
        "fastest_training_images_per_second": fastest,
        "pipeline_images_per_second": pipeline,
        "ratio_per_stage": per_stage,
        "ratio": ratio,
        "limit": PIPELINE_FACTOR,
        "passed": None if ratio is None else bool(ratio >= PIPELINE_FACTOR),
    }
    return targets


def auto_vs_keras(results, xla_settings):
    """Stage 2 with teacher_precision="auto" (`kd_auto`) against keras.distillation at its faster XLA setting (by
    paired ratio): t(keras_kd) / t(kd_auto), paired per round (`paired_ratio`), limit `AUTO_VS_KERAS_LIMIT`."""
    auto = next((name for name in results if name.startswith("kd_auto/")), None)
    best = None
    for jit in xla_settings:
        ratio = None if auto is None else paired_ratio(results, [f"keras_kd/{xla_key(jit)}"], [auto])
        if ratio is not None and (best is None or ratio["ratio"] < best[1]["ratio"]):
            best = (xla_key(jit), ratio)
    entry = {"description": f"images/s of kd_auto / images/s of keras.distillation at its faster XLA setting "
                            f">= {AUTO_VS_KERAS_LIMIT:g}",
             "ours": auto, "keras": None if best is None else f"keras_kd/{best[0]}",
             "xla_settings": None if auto is None else results[auto].get("xla_settings"),
             "teacher_precision": None if auto is None else results[auto].get("teacher_precision"),
             "limit": AUTO_VS_KERAS_LIMIT, "ratio": None, "passed": None}
    if best is not None:
        entry.update({k: best[1][k] for k in ("ratio", "ratio_per_round", "ratio_of_medians", "ratio_of_minima",
                                              "ratio_cpu")})
        entry["passed"] = bool(best[1]["ratio"] >= AUTO_VS_KERAS_LIMIT)
    return entry


def caching_speedups(results, xla_settings):
    """Speed-up of teacher-output caching per stage and XLA setting: t(step) / t(step with cached outputs),
    paired per round (see `paired_ratio`); None where a candidate is missing or failed."""
    speedups = {}
    for step in ("hint", "kd"):
        for jit in xla_settings:
            key = xla_key(jit)
            ratio = paired_ratio(results, [f"{step}/{key}"], [f"{step}_cached/{key}"])
            speedups[f"{step}/{key}"] = None if ratio is None else ratio["ratio"]
    return speedups


def compare_xla(results):
    """Per step: median seconds with XLA off and on; `xla_speedup` = t(off) / t(on), paired per round (median of
    the rounds' ratios, as in `paired_ratio`; `xla_speedup_cpu` the same in CPU time); `faster` = "on" when
    `xla_speedup` > 1. Steps with one setting only get None for what needs both."""
    comparison = {}
    for step in STEP_NAMES:
        off, on = _seconds(results, step, False), _seconds(results, step, True)
        if off is None and on is None:
            continue
        entry = {"xla_off_s": off, "xla_on_s": on, "faster": None, "xla_speedup": None,
                 "xla_speedup_per_round": [], "xla_speedup_of_medians": None, "xla_speedup_cpu": None}
        ratio = paired_ratio(results, [f"{step}/xla_off"], [f"{step}/xla_on"])
        if ratio is not None:
            entry.update(faster="on" if ratio["ratio"] > 1 else "off", xla_speedup=ratio["ratio"],
                         xla_speedup_per_round=ratio["ratio_per_round"],
                         xla_speedup_of_medians=ratio["ratio_of_medians"], xla_speedup_cpu=ratio["ratio_cpu"])
        comparison[step] = entry
    return comparison

