"""End to end: scripts/run.py on the embedded digits data, every artifact, resume, export, TensorBoard, bad flags,
unusable model_dirs, a damaged checkpoint, the rerun of a finished run."""

import glob
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "scripts", "run.py")
VENV_BIN = os.path.dirname(sys.executable)
# XLA off in the small runs (its compile time outweighs its gain at two epochs); the artifact run keeps the default.
TINY = ["--teacher_epochs=2", "--hint_epochs=1", "--kd_epochs=2", "--baseline_epochs=2", "--latency_runs=2",
        "--batch_size=64", "--verbose=0", "--optimizer=adam", "--learning_rate=0.003", "--jit_compile=false"]

pytestmark = pytest.mark.slow


def run_script(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, RUN, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("run") / "digits")
    result = run_script(f"--model_dir={model_dir}", *TINY, "--jit_compile=auto")  # the default path, XLA included
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result


def test_a_digits_run_produces_every_artifact(digits_run):
    model_dir, result = digits_run
    for name in ("flags.cfg", "run_config.json", "preprocessing.npz", "results.json", "results.md",
                 "teacher.keras", "fitnet.keras", "baseline_ce.keras", "baseline_kd.keras",
                 "export/saved_model.pb", "litert/fitnet_float32.tflite", "litert/fitnet_int8.tflite",
                 "litert/litert_classifier.py"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    for stage in ("teacher", "fitnet_stage1", "fitnet_stage2", "baseline_ce", "baseline_kd"):
        assert os.path.exists(os.path.join(model_dir, "checkpoints", stage, "done.json")), stage
        assert os.listdir(os.path.join(model_dir, "tensorboard", stage, "train")), stage
    results = json.load(open(os.path.join(model_dir, "results.json")))
    rows = {r["model"]: r for r in results["models"]}
    assert set(rows) == {"teacher", "fitnet", "baseline_ce", "baseline_kd"}
    for row in rows.values():
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert row["test_error"] == pytest.approx(1.0 - row["test_accuracy"])
        assert row["parameters"] > 0 and row["multiplications"] > 0
        assert row["latency_ms_per_image"]["1"] > 0 and row["latency_ms_per_image"]["128"] > 0
    assert rows["teacher"]["speedup_vs_teacher"] == 1.0
    assert rows["fitnet"]["compression_vs_teacher"] == pytest.approx(
        rows["teacher"]["parameters"] / rows["fitnet"]["parameters"])
    assert rows["fitnet"]["parameters"] == rows["baseline_ce"]["parameters"]
    # Paper indices 4 <- 2 are tapped after the max-pool that follows each layer (pylearn2's conv layers).
    assert results["hint_pairs"] == [{"guided": "pool1", "hint": "pool1", "regressor": "conv"}]
    # jit_compile=auto on a CPU: XLA for the student's part of every step, not for the teacher's forward pass.
    assert results["xla"]["fitnet_stage2"] == {"student": True, "teacher": False}
    assert all(results["xla"][s]["student"] for s in ("teacher", "fitnet_stage1", "baseline_ce", "baseline_kd"))
    table = open(os.path.join(model_dir, "results.md")).read()
    for name in rows:
        assert f"| {name} |" in table
    assert "fitnet" in result.stdout and "test accuracy" in result.stdout


def test_flags_cfg_replays_the_run(digits_run, tmp_path):
    model_dir, _ = digits_run
    text = open(os.path.join(model_dir, "flags.cfg")).read()
    assert "--kd_epochs=2" in text and f"--model_dir={model_dir}" in text
    # Replaying the flagfile is the same experiment: everything is restored, nothing retrained.
    again = run_script(f"--flagfile={os.path.join(model_dir, 'flags.cfg')}", "--verbose=2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "stage '" not in again.stderr  # no stage ran


def test_an_interrupted_stage_resumes_from_its_last_epoch(digits_run, tmp_path):
    source, _ = digits_run
    model_dir = str(tmp_path / "copy")
    shutil.copytree(source, model_dir)
    stage_dir = os.path.join(model_dir, "checkpoints", "fitnet_stage2")
    # The state a kill during the last epoch of stage 2 leaves: no done.json, the checkpoint of epoch 1 only.
    os.remove(os.path.join(stage_dir, "done.json"))
    for name in os.listdir(stage_dir):
        if name.startswith("ckpt-2"):
            os.remove(os.path.join(stage_dir, name))
    with open(os.path.join(stage_dir, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n')
    result = run_script(f"--model_dir={model_dir}", *TINY[:-3], "--verbose=2", "--optimizer=adam",
                        "--learning_rate=0.003", "--noexport")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fitnet_stage2: stage 'kd', 2 epochs (resuming at epoch 1)" in result.stderr
    for finished in ("teacher", "fitnet_stage1", "baseline_ce", "baseline_kd"):
        assert f"{finished}: stage" not in result.stderr
    history = json.load(open(os.path.join(stage_dir, "done.json")))["history"]
    assert len(history["kd_loss"]) == 2 and json.load(open(os.path.join(stage_dir, "done.json")))["resumed_from"] == 1


def test_export_serves_raw_uint8_images_in_a_fresh_process(digits_run):
    model_dir, _ = digits_run
    sys.path.insert(0, ROOT)
    import keras

    from fitnets_tf.data import load_splits

    splits = load_splits("digits")
    images = np.stack([x for x, _ in splits.test.take(20).as_numpy_iterator()])
    student = keras.saving.load_model(os.path.join(model_dir, "fitnet.keras"))
    logits = np.asarray(student(images.astype("float32") / 255.0))
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.save(os.path.join(model_dir, "probe.npy"), images)
    code = (
        "import sys, json, numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "out = m.signatures['serving_default'](images=tf.constant(np.load(sys.argv[2])))\n"
        "print(json.dumps({k: v.numpy().tolist() for k, v in out.items() if k != \"class_name\"}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, os.path.join(model_dir, "export"),
                          os.path.join(model_dir, "probe.npy")], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stderr[-2000:]
    served = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(served["probabilities"]), expected, atol=1e-5)
    np.testing.assert_array_equal(served["class_id"], expected.argmax(-1))


LITERT_PROBE = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])  # <model_dir>/litert: the files and their runner, as copied to a device
from litert_classifier import LiteRTClassifier
images = np.load(sys.argv[2])
out = {fmt: LiteRTClassifier(f"{sys.argv[1]}/fitnet_{fmt}.tflite").predict(images)["class_id"].tolist()
       for fmt in ("float32", "int8")}
out["tensorflow_imported"] = "tensorflow" in sys.modules
out["refused"] = []
for bad in (images[:, :, :, 0], images[0], images.astype(np.float32), images[:, :4]):
    try:
        LiteRTClassifier(f"{sys.argv[1]}/fitnet_int8.tflite").predict(bad)
        out["refused"].append(None)
    except (TypeError, ValueError) as error:
        out["refused"].append(str(error))
print(json.dumps(out))
"""


def test_litert_files_classify_raw_images_in_a_fresh_process_without_tensorflow(digits_run):
    model_dir, _ = digits_run
    sys.path.insert(0, ROOT)
    import keras

    from fitnets_tf.data import load_splits

    test = list(load_splits("digits").test.as_numpy_iterator())
    images, labels = np.stack([x for x, _ in test]), np.array([y for _, y in test])
    student = keras.saving.load_model(os.path.join(model_dir, "fitnet.keras"))
    keras_ids = np.asarray(student(images.astype("float32") / 255.0)).argmax(-1)
    np.save(os.path.join(model_dir, "litert_probe.npy"), images)
    out = subprocess.run([sys.executable, "-c", LITERT_PROBE, os.path.join(model_dir, "litert"),
                          os.path.join(model_dir, "litert_probe.npy")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    served = json.loads(out.stdout.strip().splitlines()[-1])
    assert served["tensorflow_imported"] is False
    assert len(served["refused"]) == 4
    for message in served["refused"]:  # [N, 8, 8], one [8, 8, 1] image, float32, [N, 4, 8, 1]: refused, no abort
        assert message and message.startswith("Expected images: uint8 [batch, 8, 8, 1] (raw pixels 0..255)."), message
    float32, int8 = np.array(served["float32"]), np.array(served["int8"])
    assert len(float32) == len(labels) == 360
    assert np.mean(float32 == keras_ids) >= 0.99
    keras_accuracy, int8_accuracy = np.mean(keras_ids == labels), np.mean(int8 == labels)
    assert abs(int8_accuracy - keras_accuracy) <= 0.02, (int8_accuracy, keras_accuracy)
    # The report's figures are these, measured the same way.
    rows = {(r["model"], r["format"]): r for r in json.load(open(os.path.join(model_dir, "results.json")))[
        "litert"]["artifacts"]}
    assert rows[("fitnet", "float32")]["test_accuracy"] == pytest.approx(np.mean(float32 == labels))
    assert rows[("fitnet", "int8")]["test_accuracy"] == pytest.approx(int8_accuracy)
    assert rows[("fitnet", "int8")]["agreement_with_keras"] == pytest.approx(np.mean(int8 == keras_ids))
    assert rows[("fitnet", "int8")]["keras_test_accuracy"] == pytest.approx(keras_accuracy)


def test_litert_report_columns_and_builtin_operators(digits_run):
    model_dir, _ = digits_run
    sys.path.insert(0, ROOT)
    from fitnets_tf.harness import litert

    section = json.load(open(os.path.join(model_dir, "results.json")))["litert"]
    assert section["threads"] == 1 and section["batch_size"] == 1 and section["runtime"].startswith("ai-edge-litert")
    rows = {(r["model"], r["format"]): r for r in section["artifacts"]}
    # The teacher's files are made only to compare (not asked by the default --litert_export): no path.
    assert set(rows) == {(m, f) for m in ("teacher", "fitnet") for f in ("float32", "int8")}
    assert rows[("teacher", "int8")]["path"] is None
    assert not os.path.exists(os.path.join(model_dir, "litert", "teacher_int8.tflite"))
    for (model, fmt), row in rows.items():
        teacher = rows[("teacher", fmt)]
        assert row["latency_ms_per_image"] > 0 and row["size_bytes"] > 0
        assert row["speedup_vs_teacher"] == pytest.approx(teacher["latency_ms_per_image"] / row["latency_ms_per_image"])
        assert row["compression_vs_teacher"] == pytest.approx(teacher["size_bytes"] / row["size_bytes"])
        assert 0 <= row["agreement_with_keras"] <= 1
        if model == "fitnet":
            path = os.path.join(model_dir, row["path"])
            assert row["size_bytes"] == os.path.getsize(path)
            names = litert.operator_names(path)
            assert "CONV_2D" in names and not any(n.startswith("Flex") for n in names), names
    assert rows[("fitnet", "int8")]["multiplication_ratio"] == pytest.approx(5972608 / 488608)
    table = open(os.path.join(model_dir, "results.md")).read()
    assert "## LiteRT files (litert/): measured through the runtime" in table
    for cells in ("| teacher | float32 |", "| fitnet | int8 |", "speed-up / mult ratio", "agrees with Keras (%)"):
        assert cells in table


def test_saved_model_cli_lists_the_serving_signature(digits_run):
    model_dir, _ = digits_run
    out = subprocess.run([os.path.join(VENV_BIN, "saved_model_cli"), "show", "--all", "--dir",
                          os.path.join(model_dir, "export")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for part in ("serving_default", "images", "uint8", "probabilities", "class_id"):
        assert part in out.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tensorboard_serves_the_scalars_of_every_stage(digits_run):
    model_dir, _ = digits_run
    port = _free_port()
    server = subprocess.Popen([os.path.join(VENV_BIN, "tensorboard"), "--logdir", os.path.join(model_dir, "tensorboard"),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        tags = None
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5) as r:
                    tags = json.loads(r.read())
                if "fitnet_stage2/train" in tags:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert tags, "TensorBoard did not answer"
        assert {"epoch_hint_loss", "epoch_loss", "epoch_learning_rate"} <= set(tags["fitnet_stage1/train"])
        assert {"epoch_kd_loss", "epoch_ce_loss", "epoch_kd_lambda", "epoch_accuracy"} <= set(
            tags["fitnet_stage2/train"])
        assert "epoch_accuracy" in tags["fitnet_stage2/validation"]
        assert "epoch_accuracy" in tags["baseline_ce/train"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugins_listing", timeout=10) as r:
            plugins = json.loads(r.read())
        assert plugins["hparams"]["enabled"] and plugins["graphs"]["enabled"]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("flag,message", [
    ("--dataset=imagenet", "--dataset: unknown dataset 'imagenet'"),
    ("--student=fitnet99", "--student: unknown architecture 'fitnet99'"),
    ("--hints=20:2", "--hints: guided layer index 20 does not exist"),
    ("--teacher_path=/nonexistent/teacher.keras", "--teacher_path: no file at"),
    ("--kd_epochs=-1", "--kd_epochs: must be an integer >= 0"),
    ("--hints=6:1", "--hints: No 'conv' regressor can map guided layer 'digits_fitnet/conv6' (None, 4, 4, 16)"),
    ("--use_extra", "--use_extra: dataset 'digits' has no 'extra' split"),
    ("--hints=4", "--hints: '4' is not guided:hint"),
    ("--initializer=xavier", "--initializer: choose one of paper, glorot_uniform, he_normal"),
    ("--jit_compile=maybe", "--jit_compile: choose one of auto, true, false. Received: 'maybe'"),
    ("--validation_size=-1", "--validation_size: a fraction in [0, 1) or a whole number of images"),
    ("--validation_size=2.5", "--validation_size: a fraction in [0, 1) or a whole number of images"),
    ("--validation_size=5000", "--validation_size: validation_size as a count must be >= 0 and < 1437"),
    ("--num_cpu_devices=-1", "--num_cpu_devices: must be >= 0"),
    ("--temperature=inf", "--temperature: must be a finite number > 0"),
    ("--bad_images=ignore", "--bad_images: choose one of stop, skip"),
])
def test_bad_flags_are_refused_in_one_line_and_never_touch_the_run(digits_run, flag, message):
    """In this process, through scripts/run.py's flag parsing (which refuses a value outside a setting's choices)
    and `main` (the exit code and the one `error:` line of the command itself: the next test)."""
    from fitnets_tf.data import DataNotFoundError
    from fitnets_tf.harness import pipeline
    from tests.helpers import run_script_with_private_flags

    model_dir, _ = digits_run
    before = {name: open(os.path.join(model_dir, name), "rb").read()
              for name in ("results.json", "results.md", "flags.cfg", "run_config.json")}
    run = run_script_with_private_flags()
    with pytest.raises((pipeline.ConfigError, DataNotFoundError)) as error:
        run.run_flags.parse_flags(["run.py", f"--model_dir={model_dir}", *TINY, flag])
        run.main(["run.py"])
    line = f"error: {run.run_flags.as_flags(error.value)}"
    assert "\n" not in line and message in line, line
    for name, content in before.items():
        assert open(os.path.join(model_dir, name), "rb").read() == content, name


@pytest.mark.parametrize("flag,expected", [
    ("--temperature=inf", "error: --temperature: must be a finite number > 0. Received: inf"),
    # an enum flag: refused while the flags are parsed, in the same words
    ("--optimizer=lbfgs", "error: --optimizer: choose one of rmsprop, adam, sgd. Received: 'lbfgs'"),
])
def test_a_bad_flag_exits_2_with_one_error_line_and_no_traceback(digits_run, flag, expected):
    model_dir, _ = digits_run
    result = run_script(f"--model_dir={model_dir}", *TINY, flag)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [expected], result.stderr[-2000:]


def test_help_lists_every_setting_with_its_help():
    """`--help` (run.py's flags and the adopted run_flags) and `--helpfull` name every RunConfig field as a flag."""
    import dataclasses

    from fitnets_tf.harness.config import RunConfig

    for option in ("--help", "--helpfull"):
        shown = run_script(option, timeout=300).stdout
        for field in dataclasses.fields(RunConfig):
            assert f"--{field.name}:" in shown or f"--[no]{field.name}:" in shown, (option, field.name)
        assert "Timed inference runs per model for the report." in shown and "tf.distribute strategy" in shown


def test_a_different_experiment_in_the_same_model_dir_is_refused(digits_run):
    model_dir, _ = digits_run
    result = run_script(f"--model_dir={model_dir}", *TINY, "--temperature=5")
    assert result.returncode != 0
    assert "holds a different run (differs in: temperature)" in result.stderr
    assert "--overwrite" in result.stderr


@pytest.mark.parametrize("flagfile,dataset", [
    ("mnist.cfg", "mnist"), ("svhn.cfg", "svhn_cropped"), ("cifar10.cfg", "cifar10"), ("cifar100.cfg", "cifar100"),
])
def test_paper_flagfiles_parse_and_fail_fast_without_data(flagfile, dataset, tmp_path):
    model_dir = tmp_path / "run"
    result = run_script(f"--flagfile={os.path.join(ROOT, 'flags', flagfile)}", f"--model_dir={model_dir}",
                        f"--data_dir={tmp_path / 'empty'}")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"tfds build {dataset}" in errors[0], result.stderr[-2000:]
    # The message is the not-prepared one (download=False: no download was tried). That no network is reached on the
    # way is checked in process, where tests/data/conftest.py fails any connection (tests/data/test_sources_tfds.py).
    assert not model_dir.exists()  # nothing written for a run that cannot start


def test_a_run_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    model_dir = tmp_path / "mirrored"
    result = run_script(f"--model_dir={model_dir}", *TINY, "--baselines=ce", "--strategy=mirrored",
                        "--num_cpu_devices=2", "--noexport")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.load(open(model_dir / "results.json"))
    assert "litert" not in results and not (model_dir / "litert").exists()  # --noexport: no file of any format
    assert results["replicas"] == 2
    assert {r["model"] for r in results["models"]} == {"teacher", "fitnet", "baseline_ce"}


def test_unknown_strategy_is_a_one_line_error(tmp_path):
    result = run_script(f"--model_dir={tmp_path / 'x'}", *TINY, "--strategy=horovod")
    assert result.returncode != 0
    assert [l for l in result.stderr.splitlines() if l.startswith("error:")] == [
        "error: --strategy: unknown strategy 'horovod'. Choose default, mirrored, multi_worker or tpu."]


def test_bad_teacher_files_are_refused_with_one_line(digits_run, tmp_path):
    model_dir, _ = digits_run
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a keras archive")
    result = run_script(f"--model_dir={tmp_path / 'a'}", *TINY, f"--teacher_path={corrupt}")
    assert result.returncode != 0
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "--teacher_path: cannot load" in errors[0], result.stderr[-2000:]
    assert "the file exists but is not a readable .keras model (not a zip archive)" in errors[0]
    assert "File not found" not in errors[0]

    sys.path.insert(0, ROOT)
    from fitnets_tf.models import build_network, zoo

    wrong = tmp_path / "mnist_teacher.keras"
    build_network(zoo.get_spec("mnist_fitnet"), seed=0).save(wrong)
    result = run_script(f"--model_dir={tmp_path / 'b'}", *TINY, f"--teacher_path={wrong}")
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert result.returncode != 0 and len(errors) == 1
    assert "takes (28, 28, 1) images and predicts 10 classes, but dataset 'digits' has (8, 8, 1)" in errors[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_trained_teacher_is_reused_through_teacher_path(digits_run, tmp_path):
    model_dir, _ = digits_run
    result = run_script(f"--model_dir={tmp_path / 'reuse'}", *TINY, "--baselines=", "--noexport",
                        f"--teacher_path={os.path.join(model_dir, 'teacher.keras')}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {r["model"]: r for r in json.load(open(tmp_path / "reuse" / "results.json"))["models"]}
    first = {r["model"]: r for r in json.load(open(os.path.join(model_dir, "results.json")))["models"]}
    assert rows["teacher"]["test_accuracy"] == first["teacher"]["test_accuracy"]
    assert not (tmp_path / "reuse" / "checkpoints" / "teacher").exists()


def test_a_flagfile_with_an_unknown_flag_fails_before_anything_runs(tmp_path):
    flagfile = tmp_path / "bad.cfg"
    flagfile.write_text("--dataset=digits\n--hint_epoch=3\n")
    result = run_script(f"--flagfile={flagfile}", f"--model_dir={tmp_path / 'x'}")
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "hint_epoch" in result.stderr and not (tmp_path / "x").exists()


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_a_rerun_of_a_finished_run_keeps_what_it_measured(digits_run):
    model_dir, _ = digits_run
    kept = {name: open(os.path.join(model_dir, name), "rb").read() for name in ("results.json", "results.md")}
    events = sorted(glob.glob(os.path.join(model_dir, "tensorboard", "**", "*"), recursive=True))
    exported = os.stat(os.path.join(model_dir, "export", "saved_model.pb")).st_mtime_ns
    # Settings that do not change the experiment: a rerun that trains nothing must not measure again.
    result = run_script(f"--model_dir={model_dir}", *TINY, "--verbose=1", "--latency_runs=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "kept its results.json" in result.stderr and "stage '" not in result.stderr
    for name, content in kept.items():
        assert open(os.path.join(model_dir, name), "rb").read() == content, name
    seconds = json.loads(kept["results.json"])["stage_seconds"]
    assert set(seconds) == {"teacher", "fitnet_stage1", "fitnet_stage2", "baseline_ce", "baseline_kd"}
    assert all(v > 0 for v in seconds.values())
    assert sorted(glob.glob(os.path.join(model_dir, "tensorboard", "**", "*"), recursive=True)) == events
    assert os.stat(os.path.join(model_dir, "export", "saved_model.pb")).st_mtime_ns == exported
    # One hparams record and one graph per model.
    assert len(os.listdir(os.path.join(model_dir, "tensorboard", "hparams"))) == 1
    for name in ("teacher", "fitnet", "baseline_ce", "baseline_kd"):
        assert len(os.listdir(os.path.join(model_dir, "tensorboard", "graphs", name))) == 1, name


def test_a_truncated_checkpoint_is_moved_aside_and_the_run_resumes_from_the_previous_one(digits_run, tmp_path):
    source, _ = digits_run
    model_dir = str(tmp_path / "copy")
    shutil.copytree(source, model_dir)
    stage_dir = os.path.join(model_dir, "checkpoints", "fitnet_stage2")
    (data_file,) = glob.glob(os.path.join(stage_dir, "ckpt-2.data-*"))
    half = os.path.getsize(data_file) // 2
    with open(data_file, "r+b") as f:
        f.truncate(half)
    result = run_script(f"--model_dir={model_dir}", *TINY, "--verbose=2", "--noexport")  # the resume is the point
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"fitnet_stage2: skipped checkpoint {stage_dir}/ckpt-2: unreadable (IndexError: Read less bytes" \
        in result.stderr, result.stderr[-3000:]
    assert "fitnet_stage2: stage 'kd', 2 epochs (resuming at epoch 1)" in result.stderr
    for finished in ("teacher", "fitnet_stage1", "baseline_ce", "baseline_kd"):
        assert f"{finished}: stage" not in result.stderr
    (moved,) = glob.glob(os.path.join(stage_dir, "damaged", "*", os.path.basename(data_file)))
    assert os.path.getsize(moved) == half  # kept as it was, not deleted
    assert json.load(open(os.path.join(stage_dir, "done.json")))["resumed_from"] == 1

    # Both checkpoints of the stage damaged: one line naming them and the fix, exit 1.
    for n in (1, 2):
        (data_file,) = glob.glob(os.path.join(stage_dir, f"ckpt-{n}.data-*"))
        with open(data_file, "r+b") as f:
            f.truncate(os.path.getsize(data_file) // 2)
    result = run_script(f"--model_dir={model_dir}", *TINY)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = error_lines(result)
    assert len(errors) == 1 and errors[0].startswith(
        f"error: Stage 'fitnet_stage2': no readable checkpoint in {stage_dir}: ckpt-2 (IndexError"), errors
    assert f"To train this stage again from its start, delete {stage_dir} and rerun the same command." in errors[0]


def test_a_file_as_model_dir_is_refused_with_one_line(tmp_path):
    path = tmp_path / "results.txt"
    path.write_text("not a directory")
    result = run_script(f"--model_dir={path}", *TINY)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert error_lines(result) == [f"error: --model_dir: '{path}' is an existing file, not a directory. Give a "
                                   "directory (it is created if absent)."]
    assert path.read_text() == "not a directory" and os.listdir(tmp_path) == ["results.txt"]


def test_a_model_dir_on_a_read_only_file_system_is_refused_with_one_line(tmp_path):
    """A real read-only mount (a tmpfs mounted with -o ro): root ignores permission bits, not a read-only mount."""
    from tests.helpers import mounted_tmpfs

    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as mount_point:
        for model_dir in (mount_point / "run", mount_point):  # to be created there; an existing empty directory
            result = run_script(f"--model_dir={model_dir}", *TINY)
            assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
            errors = error_lines(result)
            assert len(errors) == 1 and errors[0].startswith(f"error: --model_dir: cannot write into '{model_dir}' "
                                                             "(Read-only file system"), errors
            assert "Give a --model_dir on a writable file system." in errors[0]
        assert os.listdir(mount_point) == []


def test_a_flagfile_without_flags_is_refused(tmp_path):
    flagfile = tmp_path / "empty.cfg"
    flagfile.write_text("# a comment only\n\n")
    result = run_script(f"--flagfile={flagfile}", f"--model_dir={tmp_path / 'x'}")
    assert result.returncode == 2
    errors = error_lines(result)
    assert len(errors) == 1 and f"--flagfile: '{flagfile}' holds no flags (it is empty or only comments)" in errors[0]
    assert not (tmp_path / "x").exists()


def test_a_run_in_a_path_with_spaces_replays_from_its_quoted_line_and_files_follow_the_umask(tmp_path):
    model_dir = tmp_path / "with space" / "run"
    quick = ["--teacher_epochs=1", "--hint_epochs=0", "--kd_epochs=1", "--baselines=", "--latency_runs=1",
             "--batch_size=64", "--verbose=0", "--noexport"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, RUN, f"--model_dir={model_dir}", *quick], capture_output=True,
                            text=True, timeout=600, env=env, cwd=ROOT, preexec_fn=lambda: os.umask(0o027))
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("results.json", "results.md", "flags.cfg", "run_config.json", "preprocessing.npz",
                 "checkpoints/teacher/history.json", "checkpoints/teacher/done.json", "fitnet.keras"):
        assert oct(os.stat(model_dir / name).st_mode & 0o777) == oct(0o640), name  # 0o666 & ~0o027
    replay = open(model_dir / "flags.cfg").readline()
    assert replay.startswith("# Replay: ")
    words = shlex.split(replay[len("# Replay: "):])
    assert words == ["python", "scripts/run.py", f"--flagfile={model_dir / 'flags.cfg'}"]
    again = subprocess.run([sys.executable, *words[1:]], capture_output=True, text=True, timeout=600, env=env,
                           cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "kept its results.json" in again.stderr


def test_the_scripts_show_the_librarys_progress_and_keep_other_libraries_info_hidden():
    """The library logs its progress through absl at INFO; the command line shows those lines on stderr, and only
    those of the INFO lines (TFDS and others log at INFO too); warnings show from everywhere."""
    import logging as std_logging

    from absl import logging

    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import run_flags

    handler = logging.get_absl_handler()
    filters, verbosity = list(handler.filters), logging.get_verbosity()
    ours = os.path.join(ROOT, "fitnets_tf", "harness", "training.py")
    theirs = os.path.join(os.path.dirname(std_logging.__file__), "elsewhere.py")

    def shown(path, level):
        return bool(handler.filter(std_logging.LogRecord("absl", level, path, 1, "a line", None, None)))

    try:
        run_flags.show_library_progress()
        assert logging.get_verbosity() == logging.INFO
        assert shown(ours, std_logging.INFO) and not shown(theirs, std_logging.INFO)
        assert shown(theirs, std_logging.WARNING) and shown(ours, std_logging.WARNING)
    finally:
        handler.filters[:] = filters
        logging.set_verbosity(verbosity)


def test_teacher_precision_script_compares_a_runs_teacher_with_float32(digits_run):
    """scripts/teacher_precision.py on the digits run: docs/benchmark.md's bfloat16-teacher figures come from it."""
    model_dir, _ = digits_run
    script = os.path.join(ROOT, "scripts", "teacher_precision.py")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, script, f"--run_dir={model_dir}", "--hint=2", "--precision=float16"],
                            capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["precision"] == "float16" and report["examples"] == 360  # the digits' test images
    assert 0 < report["max_probability_difference"] < 0.01
    assert 0 <= report["class_changes"] <= 3 and 0 < report["max_hint_difference"] < report["max_hint_magnitude"]
