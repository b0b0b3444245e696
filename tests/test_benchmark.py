"""scripts/benchmark.py --tiny end to end: the JSON holds every measurement, ratio, target, latency and the roofline;
and the --real_size section on a tiny generated JPEG folder with tiny stand-in models.

No timing is asserted (the machine is shared); the ratios are checked against the measurements they come from.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarking import real_size as real_size_lib  # scripts/benchmarking/ (pytest puts scripts/ on the path)
from benchmarking import roofline
from benchmarking.pipeline import measure_pipeline
from benchmarking.report import format_report
from benchmarking.serving import litert_targets
from fitnets_tf.data.idx import DEBIAN_FASHION_MNIST_DIR
from fitnets_tf.harness.timing import Candidate, time_interleaved
from fitnets_tf.precision import resolve_teacher_precision

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
    on_gpu = bool(tf.config.list_logical_devices("GPU"))  # on a CPU: the student compiled, the teacher not
    assert auto["xla_settings"] == {"student": True, "teacher": on_gpu}
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
    assert "auto_vs_keras_distillation" in stdout
    assert "kd_auto (stage 2 with teacher_precision=auto, XLA auto)" in stdout


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
    targets = litert_targets(rows)
    assert targets["fitnet1_int8_ms_per_image"]["passed"] is True
    assert targets["fitnet1_float32_speedup_over_mult_ratio"]["passed"] is False
    rows[0]["litert"]["int8"]["latency_ms_per_image"] = 0.61
    assert litert_targets(rows)["fitnet1_int8_ms_per_image"]["passed"] is False


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
    candidates = [Candidate("broken", broken, 8), Candidate("ok", lambda: calls.append(1), 8, calls_per_sample=2)]
    results = time_interleaved(candidates, rounds=4, warmup=1)
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


def _cpu_model():
    with open("/proc/cpuinfo") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))


def test_roofline_peaks_are_the_best_matmul_call_of_each_precision(tiny_report):
    report, stdout = tiny_report
    section = report["roofline"]
    for precision in ("float32", "bfloat16"):
        peak = section["peaks"][precision]
        assert peak["error"] is None and peak["size"] == 2048 and len(peak["samples_s"]) == 3
        assert peak["gmac_per_second"] == pytest.approx(2048 ** 3 / min(peak["samples_s"]) / 1e9)
    cpu = section["cpu"]
    assert cpu["logical_cpus"] == os.cpu_count() and 1 <= cpu["usable_cpus"] <= os.cpu_count()
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith("flags")).split(":", 1)[1].split()
    assert cpu["flags"] == {flag: flag in flags for flag in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile",
                                                             "amx_bf16")}
    assert cpu["model"] == _cpu_model()
    assert f"Roofline: {cpu['model']}, {os.cpu_count()} logical CPUs" in stdout
    assert "Peak measured in this run (tf.linalg.matmul 2048x2048" in stdout


def test_roofline_counts_3x_the_trained_part_and_1x_the_teacher(tiny_report):
    report, _ = tiny_report
    m, steps, peaks = report["measurements"], report["roofline"]["steps"], report["roofline"]["peaks"]
    student = report["models"]["student"]["multiplications"]
    teacher = report["models"]["teacher"]["multiplications"]
    batch = report["config"]["batch_size"]
    expected = {"ce": 3 * student, "ce_train_on_batch": 3 * student, "kd_cached": 3 * student,
                "teacher_forward": teacher, "teacher_forward_lowp": teacher, "kd": 3 * student + teacher,
                "keras_kd": 3 * student + teacher, "kd_lowp": 3 * student + teacher, "kd_auto": 3 * student + teacher}
    assert {name for name in steps} == {name for name in m if name != "input_pipeline"}
    for name, entry in steps.items():
        step = m[name]["step"]
        if step in expected:
            assert entry["macs_per_call"] == expected[step] * batch, name
        assert entry["gmac_per_second"] == pytest.approx(entry["macs_per_call"] / m[name]["seconds_per_call"] / 1e9)
        # each part at the peak of its precision
        floor = sum(p["macs"] / (peaks[p["precision"]]["gmac_per_second"] * 1e9) for p in entry["parts"])
        assert entry["floor_s"] == pytest.approx(floor)
        assert entry["share_of_peak"] == pytest.approx(floor / m[name]["seconds_per_call"])
        assert entry["share_of_peak_fastest"] == pytest.approx(floor / m[name]["min_s"])
    for key in ("xla_off", "xla_on"):
        # stage 1 = the truncated student step (3 G) + the truncated teacher forward (H), each a part of the whole
        hint, truncated = steps[f"hint/{key}"], steps[f"truncated_student_step/{key}"]
        forward = steps[f"truncated_teacher_forward/{key}"]
        assert hint["macs_per_call"] == truncated["macs_per_call"] + forward["macs_per_call"]
        assert steps[f"hint_cached/{key}"]["macs_per_call"] == truncated["macs_per_call"]
        assert 0 < forward["macs_per_call"] < teacher * batch and truncated["macs_per_call"] % 3 == 0
        assert steps[f"ce/{key}"]["precisions"] == ["float32"]


def test_roofline_stage2_floor_and_targets(tiny_report):
    report, stdout = tiny_report
    section, m = report["roofline"], report["measurements"]
    peaks = {p: e["gmac_per_second"] * 1e9 for p, e in section["peaks"].items()}
    batch = report["config"]["batch_size"]
    student = 3 * report["models"]["student"]["multiplications"] * batch
    teacher = report["models"]["teacher"]["multiplications"] * batch
    stage2 = section["stage2"]
    (auto,) = [name for name in m if name.startswith("kd_auto/")]
    assert stage2["candidate"] == auto and stage2["measured_s"] == m[auto]["seconds_per_call"]
    assert stage2["teacher_precision"] == resolve_teacher_precision("auto")  # float32 policy
    assert stage2["floor_s"] == pytest.approx(student / peaks["float32"] + teacher / peaks[stage2["teacher_precision"]])
    assert stage2["share_of_peak"] == pytest.approx(stage2["floor_s"] / stage2["measured_s"])

    targets = section["targets"]
    lowp = stage2["teacher_precision"] != "float32"
    forward = "teacher_forward_lowp" if lowp else "teacher_forward"
    floor = teacher / peaks[stage2["teacher_precision"]]
    shares = {f"{forward}/{key}": floor / m[f"{forward}/{key}"]["seconds_per_call"] for key in ("xla_off", "xla_on")}
    best = max(shares, key=shares.get)
    assert targets["teacher_forward"]["candidate"] == best
    assert targets["teacher_forward"]["share"] == pytest.approx(shares[best])
    assert targets["teacher_forward"]["passed"] is (shares[best] >= 0.75)
    shares = {f"ce/{key}": student / peaks["float32"] / m[f"ce/{key}"]["seconds_per_call"]
              for key in ("xla_off", "xla_on")}
    best = max(shares, key=shares.get)
    assert targets["student_step"]["candidate"] == best and targets["student_step"]["limit"] == 0.5
    assert targets["student_step"]["passed"] is (shares[best] >= 0.5)
    assert f"Stage 2 ({auto}): floor" in stdout
    for target in targets.values():
        line = next(line for line in stdout.splitlines() if line.startswith(target["description"]))
        assert {True: "PASS", False: "FAIL"}[target["passed"]] in line and target["candidate"] in line


def test_roofline_of_hand_made_measurements():
    def result(step, seconds, fastest):
        return {"step": step, "xla": False, "images_per_call": 10, "seconds_per_call": seconds, "min_s": fastest,
                "error": None}

    measurements = {"ce/xla_off": result("ce", 0.004, 0.002),
                    "teacher_forward/xla_off": result("teacher_forward", 0.01, 0.01),
                    "kd/xla_off": result("kd", 0.02, 0.02), "input_pipeline": {"images_per_call": 10}}
    work = roofline.stage2_work(student_macs=1e6, teacher_macs=4e6, compute_dtype="float32",
                                teacher_precision="bfloat16")
    peaks = {"float32": {"gmac_per_second": 10.0}, "bfloat16": {"gmac_per_second": 20.0}}
    section = roofline.roofline(measurements, work, peaks, {"model": "x"}, "kd/xla_off")
    ce, forward, kd = (section["steps"][n] for n in ("ce/xla_off", "teacher_forward/xla_off", "kd/xla_off"))
    assert set(section["steps"]) == {"ce/xla_off", "teacher_forward/xla_off", "kd/xla_off"}
    assert ce["macs_per_call"] == 3e7 and ce["work"] == "3S" and ce["gmac_per_second"] == pytest.approx(7.5)
    assert ce["floor_s"] == pytest.approx(3e7 / 10e9) and ce["share_of_peak"] == pytest.approx(0.75)
    assert ce["share_of_peak_fastest"] == pytest.approx(1.5)
    assert forward["precisions"] == ["bfloat16"] and forward["share_of_peak"] == pytest.approx(4e7 / 20e9 / 0.01)
    assert kd["work"] == "3S + T" and kd["floor_s"] == pytest.approx(3e7 / 10e9 + 4e7 / 20e9)  # 5 ms
    assert section["stage2"]["floor_s"] == pytest.approx(0.005) and section["stage2"]["share_of_peak"] == 0.25
    targets = section["targets"]
    assert targets["teacher_forward"]["share"] == pytest.approx(0.2) and targets["teacher_forward"]["passed"] is False
    assert targets["student_step"]["share"] == pytest.approx(0.75) and targets["student_step"]["passed"] is True
    assert "float32 peak" in targets["student_step"]["description"]
    assert "bfloat16 peak" in targets["teacher_forward"]["description"]


# ------------------------------------------------------------------------------------- --real_size (section)
# Cheap: 16 generated JPEGs at 64x64, digits-sized stand-ins for the MobileNetV2 pair, 2 rounds.
REAL_SIZE_STEPS = ("ce", "teacher_forward", "kd", "keras_kd")
TINY_REAL_SIZE = dict(images=16, image_size=64, batch_size=4, pipeline_batches=2, rounds=2, warmup=1)


def tiny_pair(num_classes, size=64):
    """A conv teacher ending in softmax (as keras.applications models do) and a conv student returning logits."""
    def net(name, width, activation, seed):
        init = keras.initializers.GlorotUniform(seed=seed)
        inputs = keras.Input((size, size, 3))
        x = keras.layers.Conv2D(width, 3, strides=4, activation="relu", kernel_initializer=init)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(num_classes, activation=activation, kernel_initializer=init,
                                     name="predictions")(x)
        return keras.Model(inputs, outputs, name=name)

    return net("tiny_teacher", 16, "softmax", 0), net("tiny_student", 8, None, 1)


@pytest.fixture(scope="module")
def real_size(tmp_path_factory):
    if not os.path.isdir(DEBIAN_FASHION_MNIST_DIR):
        pytest.skip(f"needs Debian's dataset-fashion-mnist in {DEBIAN_FASHION_MNIST_DIR}")
    workdir = str(tmp_path_factory.mktemp("real_size"))
    config = real_size_lib.RealSizeConfig(workdir=workdir, **TINY_REAL_SIZE)
    messages = []
    report = real_size_lib.run_real_size(config, build_pair=tiny_pair, log=messages.append)
    return report, workdir


def test_real_size_section_measures_the_pipeline_and_each_stage2_step(real_size):
    report, workdir = real_size
    section = report["real_size"]
    assert set(section) >= {"config", "data", "models", "input_pipeline", "measurements", "images_per_second",
                            "cpu_seconds_per_image", "pipeline_share_of_cpu", "targets"}
    data = section["data"]
    folder = os.path.join(workdir, "real_size_folder")
    assert data["generated"] is True and data["folder"] == folder
    files = [os.path.join(root, f) for root, _, names in os.walk(folder) for f in names]
    assert len(files) == 16 and all(f.endswith(".jpg") for f in files)
    from PIL import Image

    with Image.open(files[0]) as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    # 16 images: ceil(20%) = 4 test, then ceil(10%) of the 12 left = 2 validation, 10 train.
    # only the classes among the first 16 Fashion-MNIST images get a folder (an empty class folder is refused)
    assert data["train_examples"] == 10 and data["num_classes"] == len(os.listdir(folder)) >= 2
    assert data["image_shape"] == [64, 64, 3]
    assert data["augmentation"]["kind"] == "random_resized_crop" and data["augmentation"]["flip"] is True
    assert section["models"]["teacher"]["architecture"] == "tiny_teacher"
    assert section["models"]["student"]["multiplications"] > 0
    assert section["teacher_precision"] == "float32"
    # the run's default settings on a CPU: the student's part compiled, the teacher's forward not, Keras's off
    assert section["xla"] == {"jit_compile": "auto", "teacher_jit_compile": "auto",
                              "stage2": {"student": True, "teacher": False}, "keras_kd": False}
    expected_xla = {"ce": {"student": True}, "teacher_forward": {"teacher": False},
                    "kd": {"student": True, "teacher": False}, "keras_kd": {"step": False}}
    for step in REAL_SIZE_STEPS:
        result = section["measurements"][f"{step}/run"]
        assert result["error"] is None, (step, result["error"])
        assert result["step"] == step and result["xla"] == expected_xla[step]
        assert result["images_per_call"] == 4 and len(result["samples_s"]) == 2
        assert section["images_per_second"][f"{step}/run"] == pytest.approx(4 / np.median(result["samples_s"]))
    # the levers: the student's step at its other setting, stage 2 with XLA off everywhere (the run's is split)
    levers = {"ce/xla_off": {"student": False}, "kd/xla_off": {"student": False, "teacher": False}}
    assert set(section["measurements"]) == {*(f"{step}/run" for step in REAL_SIZE_STEPS), *levers}
    assert set(section["levers"]) == set(levers)
    for name, xla in levers.items():
        assert section["measurements"][name]["error"] is None and section["measurements"][name]["xla"] == xla
        step = name.split("/")[0]
        assert section["levers"][name]["ratio"] == pytest.approx(paired(section, [name], [f"{step}/run"]))
    assert set(section["targets"]) == {"pipeline_vs_stage2", "vs_keras_distillation", "stage2_overhead"}
    assert report["environment"]["cpu_count"]


def test_real_size_roofline_counts_the_stage2_steps(real_size):
    report, _ = real_size
    section = report["real_size"]
    steps, m = section["roofline"]["steps"], section["measurements"]
    student = section["models"]["student"]["multiplications"]
    teacher = section["models"]["teacher"]["multiplications"]
    expected = {"ce": 3 * student, "teacher_forward": teacher, "kd": 3 * student + teacher,
                "keras_kd": 3 * student + teacher}
    assert set(steps) == {*(f"{step}/run" for step in REAL_SIZE_STEPS), "ce/xla_off", "kd/xla_off"}
    for name, entry in steps.items():
        macs = expected[m[name]["step"]]
        assert entry["macs_per_call"] == 4 * macs
        assert entry["gmac_per_second"] == pytest.approx(4 * macs / m[name]["seconds_per_call"] / 1e9)
    stage2, peaks = section["roofline"]["stage2"], section["roofline"]["peaks"]
    assert stage2["candidate"] == "kd/run" and stage2["teacher_precision"] == section["teacher_precision"]
    floor = (4 * 3 * student / (peaks["float32"]["gmac_per_second"] * 1e9)
             + 4 * teacher / (peaks[stage2["teacher_precision"]]["gmac_per_second"] * 1e9))
    assert stage2["floor_s"] == pytest.approx(floor)


def test_real_size_pipeline_counts_the_images_it_reads(real_size):
    report, _ = real_size
    pipe = report["real_size"]["input_pipeline"]
    assert pipe["images_per_call"] == 4 * 2 and pipe["batches_per_sample"] == 2 and pipe["error"] is None
    assert pipe["images_per_second"] == pytest.approx(8 / np.median(pipe["samples_s"]))
    assert report["real_size"]["images_per_second"]["input_pipeline"] == pipe["images_per_second"]

    class CountingStream:
        """Iterates a dataset and counts the images of the batches handed out."""

        def __init__(self, dataset):
            self.dataset, self.images = dataset, 0

        def __iter__(self):
            for images, labels in self.dataset:
                assert images.shape[0] == labels.shape[0]
                self.images += int(images.shape[0])
                yield images, labels

    dataset, info = real_size_lib.training_stream(report["real_size"]["data"]["folder"], 64, 4, seed=0)
    stream = CountingStream(dataset)
    result, (x, y) = measure_pipeline(stream, info["train_examples"], 4, 3, rounds=2, warmup=1)
    first_epoch = (10 // 4) * 4  # whole batches of the 10 training images
    # first epoch, then 1 first call + 1 warm-up + 2 timed samples of 3 batches, then the batch handed back
    assert stream.images == first_epoch + (1 + 1 + 2) * 3 * 4 + 4
    assert result["images_per_call"] == 12
    assert result["images_per_second"] == pytest.approx(12 / np.median(result["samples_s"]))
    assert result["first_epoch_images_per_second"] == pytest.approx(first_epoch / result["first_epoch_s"])
    assert x.shape == (4, 64, 64, 3) and y.shape == (4,)
    assert -1.0 <= float(np.min(x)) and float(np.max(x)) <= 1.0  # "tf" preprocessing: x / 127.5 - 1


def test_real_size_targets_are_computed_from_the_measurements(real_size):
    report, _ = real_size
    section = report["real_size"]
    m, pipe, targets = section["measurements"], section["input_pipeline"], section["targets"]
    feed = 8 / np.median(pipe["samples_s"])
    step = 4 / np.median(m["kd/run"]["samples_s"])
    target = targets["pipeline_vs_stage2"]
    assert target["ratio"] == pytest.approx(feed / step)
    assert target["pipeline_images_per_second"] == pytest.approx(feed)
    assert target["stage2_images_per_second"] == pytest.approx(step)
    assert target["limit"] == 1.0 and target["passed"] is bool(feed / step >= 1.0)
    feed_cpu = np.median(pipe["cpu_samples_s"]) / 8
    step_cpu = np.median(m["kd/run"]["cpu_samples_s"]) / 4
    assert target["ratio_cpu"] == pytest.approx(step_cpu / feed_cpu)
    assert section["pipeline_share_of_cpu"] == pytest.approx(feed_cpu / (feed_cpu + step_cpu))

    keras_kd = targets["vs_keras_distillation"]
    expected = paired(section, ["keras_kd/run"], ["kd/run"])
    assert keras_kd["ratio"] == pytest.approx(expected) and len(keras_kd["ratio_per_round"]) == 2
    assert keras_kd["limit"] == 1.0 and keras_kd["passed"] is (expected >= 1.0)
    overhead = targets["stage2_overhead"]
    expected = paired(section, ["kd/run"], ["ce/run", "teacher_forward/run"])
    assert overhead["ratio"] == pytest.approx(expected)
    assert overhead["ratio_cpu"] == pytest.approx(
        paired(section, ["kd/run"], ["ce/run", "teacher_forward/run"], "cpu_samples_s"))
    assert overhead["limit"] == 1.10 and overhead["passed"] is (expected <= 1.10)


def test_real_size_section_is_printed(real_size):
    report, _ = real_size
    text = format_report(report)
    assert text.startswith("Real size") or "WARNING: load average" in text
    assert "Steps:" not in text  # the CIFAR-sized tables are not part of the mode
    for name in ("input_pipeline", *(f"{step}/run" for step in REAL_SIZE_STEPS), "ce/xla_off", "kd/xla_off"):
        assert f"\n{name} " in text
    assert "jit_compile=auto, teacher_jit_compile=auto" in text and "student on, teacher off" in text
    assert "XLA levers:" in text
    for name, t in report["real_size"]["targets"].items():
        line = next(line for line in text.splitlines() if line.startswith(name))
        assert {True: "PASS", False: "FAIL"}[t["passed"]] in line
    assert "% of the CPU work per training image" in text
    assert "Roofline:" in text and "Stage 2 (kd/run): floor" in text and "Roofline targets" in text


def test_real_size_loads_the_backbone_script_without_its_flags():
    from absl import flags

    script = real_size_lib.load_script("make_backbone_pair")
    assert script.FLAGS is not flags.FLAGS and "folder" in script.FLAGS and "folder" not in flags.FLAGS
    student = script.student_model(10)  # the real-size student: 7 convs on 224x224x3
    assert student.input_shape == (None, 224, 224, 3)
    assert [layer.name for layer in student.layers if layer.name.startswith("conv")] == [
        f"conv{i}" for i in range(1, 8)]


def test_real_size_refuses_flags_it_does_not_use():
    # its own XLA flags are taken (not refused as unused) and named in the message
    result = run_script("--real_size", "--tiny", "--real_size_jit_compile=false", timeout=120)
    assert result.returncode == 2
    assert "--real_size does not use --tiny;" in result.stderr
    assert "--real_size_[teacher_]jit_compile" in result.stderr and "real_size_jit_compile," not in result.stderr


@pytest.mark.parametrize("size,settings,run_xla,levers", [
    # the tiny pair at 64x64, XLA asked off: the run is uncompiled, the levers compile the student
    (64, dict(jit_compile="false", teacher_jit_compile="false"), {"student": False, "teacher": False},
     {"ce/xla_on": {"student": True}, "kd/xla_student": {"student": True, "teacher": False}}),
    # 72x72 at "auto" on a CPU: larger than 64x64, so the same uncompiled run (as the 224x224 pair's default)
    (72, {}, {"student": False, "teacher": False},
     {"ce/xla_on": {"student": True}, "kd/xla_student": {"student": True, "teacher": False}}),
    # 64x64 at "auto": the student's part compiled, the step split; the levers turn XLA off
    (64, {}, {"student": True, "teacher": False},
     {"ce/xla_off": {"student": False}, "kd/xla_off": {"student": False, "teacher": False}}),
])
def test_real_size_levers_are_the_settings_the_run_does_not_use(monkeypatch, size, settings, run_xla, levers):
    from fitnets_tf import xla

    monkeypatch.setattr(xla, "device_type", lambda: "CPU")
    config = real_size_lib.RealSizeConfig(image_size=size, batch_size=2, **settings)
    teacher, student = tiny_pair(3, size)
    rng = np.random.default_rng(0)
    x, y = rng.random((2, size, size, 3)).astype("float32"), np.array([0, 2])
    trainers = real_size_lib.build_trainers(config, teacher, student, x, y)
    assert trainers["kd"].xla_settings == run_xla
    candidates = {c.name: c.info for c in real_size_lib.step_candidates(trainers, x, y, 2)}
    assert set(candidates) == {*(f"{step}/run" for step in REAL_SIZE_STEPS), *levers}
    for name, xla_settings in levers.items():
        assert candidates[name]["xla"] == xla_settings and candidates[name]["step"] == name.split("/")[0]
    assert candidates["kd/run"]["xla"] == run_xla


def test_real_size_refuses_an_xla_setting_it_does_not_know():
    with pytest.raises(ValueError, match="jit_compile must be one of"):
        real_size_lib.RealSizeConfig(jit_compile="maybe").validate()
