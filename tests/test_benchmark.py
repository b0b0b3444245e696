"""scripts/benchmark.py --tiny end to end: the JSON holds every measurement, ratio, target and latency.

No timing is asserted (the machine is shared); the ratios are checked against the measurements they come from.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import benchmark_lib as benchmark  # scripts/benchmark_lib.py (pytest puts scripts/ on the path)
from fitnets_tf.precision import resolve_teacher_precision
from fitnets_tf.xla import resolve_jit_compile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "benchmark.py")
STEPS = ("ce", "teacher_forward", "hint", "kd", "keras_kd", "truncated_student_step", "truncated_teacher_forward")

pytestmark = pytest.mark.slow


def run_script(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    result = run_script("--tiny", f"--output={path}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(path) as f:
        return json.load(f), result.stdout


def _positive(value):
    return isinstance(value, float) and value > 0


def test_every_step_is_measured_with_and_without_xla(tiny_report):
    report, _ = tiny_report
    measurements = report["measurements"]
    for step in STEPS:
        for key, jit in (("xla_off", False), ("xla_on", True)):
            result = measurements[f"{step}/{key}"]
            assert result["error"] is None, (step, key, result["error"])
            assert result["step"] == step and result["xla"] is jit
            assert len(result["samples_s"]) == report["config"]["rounds"] == 3
            assert _positive(result["seconds_per_call"]) and _positive(result["first_call_s"])
            assert result["min_s"] <= result["seconds_per_call"] <= result["max_s"]
            assert result["images_per_second"] == pytest.approx(
                report["config"]["batch_size"] / result["seconds_per_call"])
            assert len(result["cpu_samples_s"]) == 3 and result["cpu_seconds_per_call"] > 0
    assert _positive(measurements["ce_train_on_batch/xla_off"]["seconds_per_call"])


def test_the_input_pipeline_is_measured(tiny_report):
    report, _ = tiny_report
    pipe = report["measurements"]["input_pipeline"]
    assert pipe["data"] == "digits" and pipe["examples"] == 1437  # 1797 digits minus the 360 test images.
    assert pipe["images_per_call"] == 64 * 4 and pipe["batches_per_sample"] == 4
    assert len(pipe["samples_s"]) == 3 and pipe["error"] is None
    assert _positive(pipe["images_per_second"]) and _positive(pipe["first_epoch_images_per_second"])


def paired(report, numerator, denominator, key="samples_s"):
    """Median over rounds of sum(numerator samples) / sum(denominator samples) of the same round (NumPy)."""
    m = report["measurements"]
    top = np.sum([m[n][key] for n in numerator], axis=0)
    bottom = np.sum([m[n][key] for n in denominator], axis=0)
    return float(np.median(top / bottom))


def test_targets_are_the_paired_ratios_of_the_measurements(tiny_report):
    report, _ = tiny_report
    m, targets = report["measurements"], report["targets"]
    terms = {
        "stage2_overhead": (["kd"], ["ce", "teacher_forward"], 1.10, False),
        "stage1_overhead": (["hint"], ["truncated_student_step", "truncated_teacher_forward"], 1.10, False),
        "vs_keras_distillation": (["keras_kd"], ["kd"], 1.0, True),  # t(keras) / t(kd) = kd's images/s / keras'
    }
    for name, (top, bottom, limit, higher) in terms.items():
        verdicts = []
        for key in ("xla_off", "xla_on"):
            target = targets[name][key]
            expected = paired(report, [f"{s}/{key}" for s in top], [f"{s}/{key}" for s in bottom])
            assert target["ratio"] == pytest.approx(expected)
            assert len(target["ratio_per_round"]) == 3
            assert target["ratio_of_medians"] == pytest.approx(
                sum(m[f"{s}/{key}"]["seconds_per_call"] for s in top)
                / sum(m[f"{s}/{key}"]["seconds_per_call"] for s in bottom))
            assert target["ratio_cpu"] == pytest.approx(paired(report, [f"{s}/{key}" for s in top],
                                                               [f"{s}/{key}" for s in bottom], "cpu_samples_s"))
            assert target["ratio_of_minima"] == pytest.approx(
                sum(m[f"{s}/{key}"]["min_s"] for s in top) / sum(m[f"{s}/{key}"]["min_s"] for s in bottom))
            assert target["limit"] == limit
            assert target["passed"] is (expected >= limit if higher else expected <= limit)
            verdicts.append(target["passed"])
        assert targets[name]["passed"] is all(verdicts)
        assert targets[name]["description"]

    pipe = targets["input_pipeline"]
    fastest = max(m[f"{step}/{key}"]["images_per_second"] for step in ("ce", "hint", "kd")
                  for key in ("xla_off", "xla_on"))
    assert pipe["fastest_training_images_per_second"] == pytest.approx(fastest)
    assert m[pipe["fastest_training_step"]]["images_per_second"] == pytest.approx(fastest)
    assert pipe["ratio"] == pytest.approx(m["input_pipeline"]["images_per_second"] / fastest)
    assert pipe["limit"] == 3.0 and pipe["passed"] is (pipe["ratio"] >= 3.0)
    assert set(pipe["ratio_per_stage"]) == {"ce", "hint", "kd"}


def test_low_precision_teacher_and_default_stage2_are_measured(tiny_report):
    report, _ = tiny_report
    m = report["measurements"]
    assert report["config"]["teacher_precision"] == "auto"
    lowp = resolve_teacher_precision("auto") != "float32"
    for step in ("kd_lowp", "teacher_forward_lowp"):
        assert (f"{step}/xla_off" in m) is lowp and (f"{step}/xla_on" in m) is lowp
    (auto_name,) = [name for name in m if name.startswith("kd_auto/")]
    auto = m[auto_name]
    assert auto["error"] is None and _positive(auto["seconds_per_call"])
    assert auto["xla_settings"] == {"student": resolve_jit_compile("auto", "student"),
                                    "teacher": resolve_jit_compile("auto", "teacher")}
    assert auto["teacher_precision"] == resolve_teacher_precision("auto")
    # Keras's outer step is compiled only when both parts are: split parts compile themselves.
    assert auto["xla"] is (auto["xla_settings"]["student"] and auto["xla_settings"]["teacher"])


def test_auto_vs_keras_is_the_paired_ratio_against_keras_at_its_faster_setting(tiny_report):
    report, stdout = tiny_report
    target = report["targets"]["auto_vs_keras_distillation"]
    ratios = {key: paired(report, [f"keras_kd/{key}"], [target["ours"]]) for key in ("xla_off", "xla_on")}
    faster_keras = min(ratios, key=ratios.get)  # the smallest t(keras) / t(ours): Keras at its best
    assert target["keras"] == f"keras_kd/{faster_keras}"
    assert target["ratio"] == pytest.approx(ratios[faster_keras])
    assert target["limit"] == 1.5 and target["passed"] is (target["ratio"] >= 1.5)
    assert "auto_vs_keras_distillation" in stdout and "kd_auto (stage 2 with teacher_precision=auto, XLA auto)" in stdout


def test_xla_comparison_names_the_faster_setting(tiny_report):
    report, _ = tiny_report
    for step in STEPS:
        entry = report["xla"][step]
        assert entry["xla_off_s"] == report["measurements"][f"{step}/xla_off"]["seconds_per_call"]
        assert entry["xla_on_s"] == report["measurements"][f"{step}/xla_on"]["seconds_per_call"]
        speedup = paired(report, [f"{step}/xla_off"], [f"{step}/xla_on"])
        assert entry["xla_speedup"] == pytest.approx(speedup)
        assert entry["faster"] == ("on" if speedup > 1 else "off")
        assert entry["xla_speedup_cpu"] == pytest.approx(
            paired(report, [f"{step}/xla_off"], [f"{step}/xla_on"], "cpu_samples_s"))


def test_serving_latency_of_the_teacher_and_each_fitnet(tiny_report):
    report, _ = tiny_report
    inference = report["inference"]
    assert inference["batch_sizes"] == [1, 64]
    rows = {r["model"]: r for r in inference["models"]}
    assert list(rows) == ["teacher", "digits_fitnet"]
    teacher = rows["teacher"]
    for row in rows.values():
        assert row["errors"] == {}
        for b, batch in (("1", 1), ("64", 64)):
            samples = np.array(row["samples_s_per_batch"][b])
            assert len(samples) == 3
            assert row["latency_ms_per_image"][b] == pytest.approx(1e3 * np.median(samples) / batch)
            assert row["images_per_second"][b] == pytest.approx(batch / np.median(samples))
            expected = np.median(np.array(teacher["samples_s_per_batch"][b]) / samples)
            assert row["speedup_vs_teacher"][b] == pytest.approx(expected)
        assert row["multiplication_ratio"] == pytest.approx(teacher["multiplications"] / row["multiplications"])
    # Independent count: digits_fitnet, 8x8x1 input, 3x3 same convs with 2 pieces: 8x8 maps for block 1 (8 units),
    # 4x4 for block 2 (16 units), then the 16 -> 10 classifier.
    block1 = 64 * 9 * (1 * 16 + 3 * 8 * 16)
    block2 = 16 * 9 * (8 * 32 + 3 * 16 * 32)
    assert rows["digits_fitnet"]["multiplications"] == block1 + block2 + 16 * 10
    assert teacher["speedup_vs_teacher"] == {"1": 1.0, "64": 1.0}


def test_litert_latency_of_the_teacher_and_each_fitnet(tiny_report):
    report, stdout = tiny_report
    rows = {r["model"]: r for r in report["inference"]["models"]}
    assert report["inference"]["litert"]["rounds"] == 5
    for fmt in ("float32", "int8"):
        teacher = rows["teacher"]["litert"][fmt]
        for row in rows.values():
            entry = row["litert"][fmt]
            assert entry["error"] is None, entry["error"]
            samples = np.array(entry["samples_s"])
            assert len(samples) == 5 and entry["size_bytes"] > 0
            assert entry["latency_ms_per_image"] == pytest.approx(1e3 * np.median(samples))
            assert entry["min_latency_ms_per_image"] == pytest.approx(1e3 * samples.min())
            expected = np.median(np.array(teacher["samples_s"]) / samples)
            assert entry["speedup_vs_teacher"] == pytest.approx(expected)
            assert entry["speedup_fraction_of_multiplication_ratio"] == pytest.approx(
                expected / row["multiplication_ratio"])
            assert entry["compression_vs_teacher"] == pytest.approx(teacher["size_bytes"] / entry["size_bytes"])
    # int8 stores one byte per weight instead of four (plus quantization parameters and the graph).
    for row in rows.values():
        assert row["litert"]["int8"]["size_bytes"] < 0.5 * row["litert"]["float32"]["size_bytes"]
    assert report["litert_targets"] is None  # the targets are FitNet 1's; --tiny times digits_fitnet
    assert "Serving latency on LiteRT" in stdout and "digits_fitnet  int8" in stdout


def test_litert_targets_are_decided_on_fitnet1():
    def entry(ms, fraction):
        return {"latency_ms_per_image": ms, "speedup_fraction_of_multiplication_ratio": fraction}

    rows = [{"model": "fitnet1", "litert": {"int8": entry(0.59, 0.2), "float32": entry(0.9, 0.74)}}]
    targets = benchmark.litert_targets(rows)
    assert targets["fitnet1_int8_ms_per_image"]["passed"] is True
    assert targets["fitnet1_float32_speedup_over_mult_ratio"]["passed"] is False
    rows[0]["litert"]["int8"]["latency_ms_per_image"] = 0.61
    assert benchmark.litert_targets(rows)["fitnet1_int8_ms_per_image"]["passed"] is False


def test_run_facts_and_printed_tables(tiny_report):
    report, stdout = tiny_report
    assert report["config"]["teacher"] == "digits_teacher" and report["config"]["student"] == "digits_fitnet"
    pair = report["models"]["hint_pair"]
    assert set(pair) == {"guided", "hint", "regressor"} and all(isinstance(v, str) and v for v in pair.values())
    for role in ("teacher", "student"):
        assert report["models"][role]["parameters"] > 0 and report["models"][role]["multiplications"] > 0
    assert report["environment"]["tensorflow"] and report["environment"]["keras"]
    assert report["command"].startswith("python ") and "--tiny" in report["command"]
    assert report["flags"]["tiny"] is True
    assert _positive(report["wall_time_s"])
    for heading in ("Targets", "XLA (jit_compile) per step", "Serving latency"):
        assert heading in stdout


def test_bad_flags_fail_fast_with_a_message():
    result = run_script("--tiny", "--rounds=0", timeout=120)
    assert result.returncode == 2
    assert "rounds must be an integer >= 1" in result.stderr


def test_a_step_that_fails_is_reported_and_the_others_still_run():
    def broken():
        raise RuntimeError("in user code:\n\n    File step.py, line 3\n\n    no kernel for this op\n")

    calls = []
    candidates = [benchmark.Candidate("broken", broken, 8),
                  benchmark.Candidate("ok", lambda: calls.append(1), 8, calls_per_sample=2)]
    results = benchmark.time_interleaved(candidates, rounds=4, warmup=1)
    assert results["broken"]["error"] == "RuntimeError: no kernel for this op"
    assert "File step.py" in results["broken"]["error_detail"]
    assert results["broken"]["seconds_per_call"] is None
    assert len(results["ok"]["samples_s"]) == 4
    assert len(calls) == 1 + 1 + 4 * 2  # first call, warm-up, 4 rounds of 2 calls


def test_teacher_caching_speedups_are_the_paired_ratios(tiny_report):
    report, stdout = tiny_report
    measurements = report["measurements"]
    for step in ("hint", "kd"):
        for key in ("xla_off", "xla_on"):
            cached = measurements[f"{step}_cached/{key}"]
            assert cached["error"] is None, cached["error"]
            plain = measurements[f"{step}/{key}"]
            expected = np.median([a / b for a, b in zip(plain["samples_s"], cached["samples_s"])])
            assert report["teacher_caching_speedup"][f"{step}/{key}"] == pytest.approx(expected)
    assert "Teacher-output caching" in stdout
