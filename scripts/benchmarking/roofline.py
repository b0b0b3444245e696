"""The roofline of the timed steps (issue 22): the multiplications each step does, the rate it does them at, and
the share of this CPU's peak that is, the peak MEASURED in the same run by a large matmul.

Work. A forward pass of a model on one image is `count_multiplications(model)` multiply-accumulates (MACs; the
paper's convention of `fitnets_tf.models.counting`, as `scripts/count.py` prints: conv and dense layers, maxout
pieces included). The backward pass of a trained part counts 2x its forward (the gradients of the activations and
of the weights, each as many MACs as the forward), so a training step is 3x the forward MACs of the part it trains
plus 1x the forward of the frozen teacher. With S the student, T the teacher, G the student up to its guided layer
plus the regressor, H the teacher up to its hint layer, per image:
  ce, ce_train_on_batch, kd_cached               3 S
  teacher_forward, teacher_forward_lowp          T
  kd, keras_kd, kd_lowp, kd_auto                 3 S + T
  hint                                           3 G + H
  truncated_student_step, hint_cached            3 G
  truncated_teacher_forward                      H
Each part runs at its precision: the student's compute dtype (the Keras policy), the teacher's in its precision
(`teacher_precision`; float32 means the policy's).

Peak. `tf.linalg.matmul` of two 2048x2048 matrices under `tf.function` (2048^3 MACs a call), float32 and bfloat16,
timed as two more candidates in the steps' interleaved rounds (after their first call and the warm-up), so that
they see the load the steps saw; the peak is the best call: what this CPU's matmul kernels reach here.

Per step candidate: GMAC/s = MACs per call / median seconds per call; its floor = the sum over its parts of MACs /
the peak of the part's precision (the time at the peak); share of peak = floor / seconds per call (for a step in
one precision: GMAC/s / peak), also from the fastest sample. Stage 2's floor is the teacher's forward at its
precision's peak plus the student's step at the student precision's (float32) peak, beside the measured stage-2
step.

Targets (issue 22; informational: printed with PASS/FAIL, never asserted), each on the candidate of the better XLA
setting: the teacher's forward (at stage 2's teacher precision) >= 75% of its precision's peak; the student's step
(ce) >= 50% of the float32 peak.
"""

import os

import tensorflow as tf

from fitnets_tf.harness.timing import Candidate
from fitnets_tf.models.counting import count_multiplications
from fitnets_tf.precision import cpu_flags

MATMUL_SIZE = 2048
PEAK_PRECISIONS = ("float32", "bfloat16")
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
TEACHER_FORWARD_SHARE = 0.75
STUDENT_STEP_SHARE = 0.50
# Work of each step of the CIFAR benchmark: (model, passes) per part; "student_to_guided" is G, "teacher_to_hint" H.
STEP_WORK = {
    "ce": (("student", 3),),
    "ce_train_on_batch": (("student", 3),),
    "kd_cached": (("student", 3),),
    "teacher_forward": (("teacher", 1),),
    "teacher_forward_lowp": (("teacher", 1),),
    "kd": (("student", 3), ("teacher", 1)),
    "keras_kd": (("student", 3), ("teacher", 1)),
    "kd_lowp": (("student", 3), ("teacher", 1)),
    "kd_auto": (("student", 3), ("teacher", 1)),
    "hint": (("student_to_guided", 3), ("teacher_to_hint", 1)),
    "truncated_student_step": (("student_to_guided", 3),),
    "hint_cached": (("student_to_guided", 3),),
    "truncated_teacher_forward": (("teacher_to_hint", 1),),
}
SYMBOLS = {"student": "S", "teacher": "T", "student_to_guided": "G", "teacher_to_hint": "H"}
TEACHER_FORWARDS = ("teacher_forward", "teacher_forward_lowp")


def cpu_facts():
    """The CPU the peaks are of: /proc/cpuinfo's model name, the logical CPUs (all, and those this process may run
    on) and whether the vector and matrix units the kernels use are there (`CPU_FLAGS`)."""
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    flags = cpu_flags()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "logical_cpus": os.cpu_count(), "usable_cpus": usable,
            "flags": {flag: flag in flags for flag in CPU_FLAGS}}


def _matmul_call(precision, size):
    """`run()` computing one `size` x `size` matmul in `precision` under `tf.function`."""
    dtype = tf.as_dtype(precision)
    a = tf.cast(tf.random.stateless_uniform((size, size), seed=(0, 1)), dtype)
    b = tf.cast(tf.random.stateless_uniform((size, size), seed=(0, 2)), dtype)
    # One element back to the host: the call ends when the product is computed, without copying it out.
    product = tf.function(lambda p, q: tf.linalg.matmul(p, q)[0, 0])

    def run():
        product(a, b).numpy()

    return run


def peak_candidates(precisions=PEAK_PRECISIONS, size=MATMUL_SIZE):
    """The `Candidate`s "matmul_peak/<precision>": one `size` x `size` matmul a call, timed with the steps.

    Timed in the same `time_interleaved` rounds as the steps, the peak sees the load the steps saw; its first call
    traces, then the warm-up calls, then one sample a round. `peaks_from` turns them into the peaks.
    """
    return [Candidate(f"matmul_peak/{precision}", _matmul_call(precision, size), 1,
                      info={"kind": "matmul_peak", "precision": precision, "size": size})
            for precision in precisions]


def peaks_from(results):
    """Pops the "matmul_peak/<precision>" results out of `results` ({name: `time_interleaved` result}); returns
    {precision: {"precision", "size", "macs_per_call", "samples_s", "best_s", "gmac_per_second" (of the best
    sample: the peak), "median_gmac_per_second", "error"}}."""
    peaks = {}
    for name in [n for n in results if n.startswith("matmul_peak/")]:
        result = results.pop(name)
        macs = result["size"] ** 3
        best, median = result["min_s"], result["seconds_per_call"]
        peaks[result["precision"]] = {
            "precision": result["precision"], "size": result["size"], "macs_per_call": macs,
            "samples_s": result["samples_s"], "best_s": best,
            "gmac_per_second": None if best is None else macs / best / 1e9,
            "median_gmac_per_second": None if median is None else macs / median / 1e9,
            "error": result["error"],
        }
    return peaks


def _dtype(precision, compute_dtype):
    """The dtype a teacher in `precision` computes in: the policy's for "float32" (the teacher itself runs)."""
    return compute_dtype if precision == "float32" else precision


def benchmark_work(models, compute_dtype):
    """{step: [part, ...]} of the CIFAR benchmark's steps (`STEP_WORK`) on `models` (a `BenchmarkModels`), each
    part {"model", "passes", "macs_per_image", "precision"}.

    `compute_dtype`: the Keras policy's compute dtype the student (and the teacher in float32) computes in.
    """
    truncated = models.truncated_student
    macs = {"student": count_multiplications(models.student), "teacher": count_multiplications(models.teacher),
            "student_to_guided": (count_multiplications(truncated.guided_model)
                                  + count_multiplications(truncated.regressor)),
            "teacher_to_hint": count_multiplications(models.hint.current_stage.hint_model)}
    teacher = {step: compute_dtype for step in STEP_WORK}
    if models.kd_lowp is not None:
        teacher["kd_lowp"] = teacher["teacher_forward_lowp"] = _dtype(models.kd_lowp.teacher_precision, compute_dtype)
    teacher["kd_auto"] = _dtype(models.kd_auto.teacher_precision, compute_dtype)
    return {step: [{"model": model, "passes": passes, "macs_per_image": macs[model],
                    "precision": teacher[step] if model.startswith("teacher") else compute_dtype}
                   for model, passes in parts]
            for step, parts in STEP_WORK.items()}


def stage2_work(student_macs, teacher_macs, compute_dtype, teacher_precision):
    """{step: [part, ...]} of the real-size section's steps (ce, teacher_forward, kd, keras_kd), as
    `benchmark_work`; the teacher's forward runs in `teacher_precision` in each."""
    teacher_dtype = _dtype(teacher_precision, compute_dtype)
    student = {"model": "student", "passes": 3, "macs_per_image": student_macs, "precision": compute_dtype}
    teacher = {"model": "teacher", "passes": 1, "macs_per_image": teacher_macs, "precision": teacher_dtype}
    return {"ce": [student], "teacher_forward": [teacher], "kd": [student, teacher], "keras_kd": [student, teacher]}


def _floor(parts, peaks):
    """Seconds the parts take at the peaks of their precisions; None when a precision's peak is unknown."""
    rates = [(peaks.get(p["precision"]) or {}).get("gmac_per_second") for p in parts]
    if not parts or any(rate is None for rate in rates):
        return None
    return sum(p["macs"] / (rate * 1e9) for p, rate in zip(parts, rates))


def candidate_roofline(result, parts, peaks):
    """The roofline entry of one timed candidate (a `time_interleaved` result) doing `parts` per image."""
    images = result["images_per_call"]
    parts = [{**p, "macs": p["passes"] * p["macs_per_image"] * images} for p in parts]
    macs = sum(p["macs"] for p in parts)
    seconds, fastest = result.get("seconds_per_call"), result.get("min_s")
    floor = _floor(parts, peaks)
    return {
        "step": result.get("step"), "xla": result.get("xla"), "parts": parts, "macs_per_call": macs,
        "work": " + ".join(f"{p['passes']}{SYMBOLS[p['model']]}" if p["passes"] > 1 else SYMBOLS[p["model"]]
                           for p in parts),
        "precisions": sorted({p["precision"] for p in parts}),
        "seconds_per_call": seconds,
        "gmac_per_second": macs / seconds / 1e9 if seconds else None,
        "floor_s": floor,
        "share_of_peak": floor / seconds if floor is not None and seconds else None,
        "share_of_peak_fastest": floor / fastest if floor is not None and fastest else None,
    }


def _best(steps, names):
    """The name among `names` (candidates of `steps`) with the highest share of peak, or None."""
    measured = [n for n in names if n in steps and steps[n]["share_of_peak"] is not None]
    return max(measured, key=lambda n: steps[n]["share_of_peak"]) if measured else None


def _target(steps, names, limit, description):
    """A roofline target on the best of `names`; `description` may name the candidate's {precision}."""
    best = _best(steps, names)
    share = None if best is None else steps[best]["share_of_peak"]
    precision = None if best is None else "/".join(steps[best]["precisions"])
    return {"description": description.format(precision=precision or "its precision's"), "candidates": list(names),
            "candidate": best, "precision": precision, "share": share,
            "share_fastest": None if best is None else steps[best]["share_of_peak_fastest"], "limit": limit,
            "passed": None if share is None else bool(share >= limit)}


def roofline(measurements, work, peaks, cpu, stage2):
    """The roofline section (see the module docstring) of the step candidates in `measurements`.

    Args:
        measurements: {candidate name: `time_interleaved` result with "step"}; candidates whose step is not in
            `work` (e.g. the input pipeline) are left out.
        work: {step: [part, ...]} (`benchmark_work`, `stage2_work`).
        peaks: `peaks_from(results)` of the `peak_candidates()` timed with the steps.
        cpu: `cpu_facts()`.
        stage2: the name of the stage-2 candidate the floor is stated for (e.g. "kd_auto/xla_off").
    Returns:
        {"cpu", "peaks", "convention", "steps": {candidate: `candidate_roofline`}, "stage2": {...}, "targets":
        {"teacher_forward", "student_step"}}, JSON-ready.
    """
    steps = {name: candidate_roofline(result, work[result["step"]], peaks)
             for name, result in measurements.items() if result.get("step") in work and not result.get("error")}
    entry = steps.get(stage2)
    stage2_entry = None
    if entry is not None:
        student = next(p for p in entry["parts"] if p["model"] == "student")
        teacher = next(p for p in entry["parts"] if p["model"] == "teacher")
        stage2_entry = {"candidate": stage2, "student_macs": student["macs"], "student_precision": student["precision"],
                        "teacher_macs": teacher["macs"], "teacher_precision": teacher["precision"],
                        "floor_s": entry["floor_s"], "measured_s": entry["seconds_per_call"],
                        "share_of_peak": entry["share_of_peak"]}
    # The teacher's forward at the precision of stage 2's teacher (any teacher forward when none runs in it).
    teacher_precision = None if stage2_entry is None else stage2_entry["teacher_precision"]
    forwards = [n for n, s in steps.items() if s["step"] in TEACHER_FORWARDS]
    forwards = [n for n in forwards if steps[n]["precisions"] == [teacher_precision]] or forwards
    student_steps = [n for n, s in steps.items() if s["step"] == "ce"]
    return {
        "cpu": cpu,
        "peaks": peaks,
        "convention": "MACs per call = images x sum over the step's parts of passes x forward MACs per image "
                      "(models.counting); a trained part 3 passes (forward + backward at 2x), the frozen teacher 1",
        "steps": steps,
        "stage2": stage2_entry,
        "targets": {
            "teacher_forward": _target(steps, forwards, TEACHER_FORWARD_SHARE,
                                       f"teacher forward >= {TEACHER_FORWARD_SHARE:.0%} of the {{precision}} peak"),
            "student_step": _target(steps, student_steps, STUDENT_STEP_SHARE,
                                    f"student step (ce) >= {STUDENT_STEP_SHARE:.0%} of the {{precision}} peak"),
        },
    }
