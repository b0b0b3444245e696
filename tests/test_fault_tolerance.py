"""kill -9 during stage 1 and again during stage 2, then the same command: the run resumes and, with
--deterministic, ends with exactly the weights and results of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--teacher_epochs=2", "--hint_epochs=4", "--kd_epochs=4", "--baselines=", "--latency_runs=1",
        "--batch_size=64", "--verbose=0", "--optimizer=adam", "--learning_rate=0.003", "--deterministic",
        "--noexport", "--cache_teacher_outputs=false"]

pytestmark = pytest.mark.slow


def command(model_dir):
    return [sys.executable, os.path.join(ROOT, "scripts", "run.py"), f"--model_dir={model_dir}", *ARGS]


def env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def run_until_killed(model_dir, stage, epoch):
    """Starts the run and kills it (SIGKILL) as soon as `stage` has saved the checkpoint of `epoch`."""
    marker = os.path.join(model_dir, "checkpoints", stage, f"ckpt-{epoch}.index")
    process = subprocess.Popen(command(model_dir), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not os.path.exists(marker):
        assert process.poll() is None, f"the run ended before {marker} appeared"
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(model_dir, "checkpoints", stage, "done.json"))


def weights(path):
    import keras

    import fitnets_tf.layers  # noqa: F401  (registers Maxout for loading)

    return [w for w in keras.saving.load_model(path).get_weights()]


def test_kill_9_in_both_stages_then_resume_gives_the_uninterrupted_result(tmp_path):
    reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
    done = subprocess.run(command(reference), env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    run_until_killed(killed, "fitnet_stage1", 1)
    run_until_killed(killed, "fitnet_stage2", 2)
    resumed = subprocess.run(command(killed), env=env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    stage2 = json.load(open(os.path.join(killed, "checkpoints", "fitnet_stage2", "done.json")))
    assert stage2["resumed_from"] >= 2 and len(stage2["history"]["loss"]) == 4
    for a, b in zip(weights(os.path.join(reference, "fitnet.keras")), weights(os.path.join(killed, "fitnet.keras"))):
        np.testing.assert_array_equal(a, b)
    rows = [{r["model"]: r["test_accuracy"] for r in json.load(open(os.path.join(d, "results.json")))["models"]}
            for d in (reference, killed)]
    assert rows[0] == rows[1]
    reference_history = json.load(open(os.path.join(reference, "checkpoints", "fitnet_stage2", "done.json")))
    np.testing.assert_allclose(stage2["history"]["loss"], reference_history["history"]["loss"], rtol=1e-6)
