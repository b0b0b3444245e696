"""kill -9 during stage 1 and again during stage 2, then the same command: the run resumes and, with
--deterministic, ends with exactly the weights and results of an uninterrupted run. A second run into a busy
model_dir is refused, a killed run's lock does not block its resume, Ctrl-C and SIGTERM stop with one line (exit
130, 143)."""

import json
import os
import re
import signal
import socket
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


def ctrl_c_as_in_a_terminal():
    """A job started in the background by a non-interactive shell (as CI may start the suite) ignores SIGINT, and
    its children inherit that; the run under test gets Ctrl-C as it would in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def saved_epoch(stage_dir):
    """The epoch of the stage's newest committed checkpoint, 0 before the first. The checkpoint manager writes the
    `checkpoint` file last (atomically), after ckpt-N.index: a kill between the two leaves ckpt-N uncommitted, and
    the resume rightly starts from N - 1 (a race the index file alone had: once in a CI-like run)."""
    if not os.path.exists(os.path.join(stage_dir, "checkpoint")):
        return 0
    return int(tf_latest_checkpoint(stage_dir).rsplit("-", 1)[1])


def run_until_killed(model_dir, stage, epoch):
    """Starts the run and kills it (SIGKILL) as soon as `stage` has committed the checkpoint of `epoch`."""
    stage_dir = os.path.join(model_dir, "checkpoints", stage)
    process = subprocess.Popen(command(model_dir), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while saved_epoch(stage_dir) < epoch:
        assert process.poll() is None, f"the run ended before {stage} saved epoch {epoch}"
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


# A teacher stage long enough (~1 s per epoch here) to be interrupted in the middle.
LONG = ["--teacher_epochs=60", "--verbose=2"]
TF_LOG_PREFIXES = ("I0000", "W0000", "E0000", "WARNING: All log messages before absl::InitializeLog()")
# The run's own progress lines: absl INFO ("I1127 21:07:48.123456 140 training.py:352] [fitnets] ...") on stderr.
PROGRESS_LINE = re.compile(r"^I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] \[fitnets\] ")


def wait_for(condition, process, what, timeout=300):
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.time() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def text_of(path):
    return open(path).read() if os.path.exists(path) else ""


def test_a_busy_model_dir_is_refused_and_a_killed_runs_lock_does_not_block_its_resume(tmp_path):
    model_dir = str(tmp_path / "run")
    lock = os.path.join(model_dir, "run.lock")
    first = subprocess.Popen(command(model_dir) + LONG, env=env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: saved_epoch(os.path.join(model_dir, "checkpoints", "teacher")) >= 1, first,
                 "the first teacher checkpoint")
        first.send_signal(signal.SIGSTOP)  # alive and holding the lock however long the second takes to start
        second = subprocess.run(command(model_dir) + LONG, env=env(), capture_output=True, text=True, timeout=300)
        assert first.poll() is None  # refused while the first run was alive
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.returncode == 2 and "Traceback" not in second.stderr and "stage '" not in second.stderr
    errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, second.stderr[-2000:]
    assert f"is in use by another run (pid {first.pid} on host {socket.gethostname()}, started " in errors[0]
    assert "--teacher_epochs=60" in errors[0]  # the holder's command
    assert json.loads(text_of(lock))["pid"] == first.pid  # kill -9 left the dead run's record behind ...

    log = tmp_path / "third.out"
    with open(log, "w") as out:  # ... which does not block the rerun: it takes the lock and resumes
        third = subprocess.Popen(command(model_dir) + LONG, env=env(), stdout=subprocess.DEVNULL, stderr=out)
    try:
        wait_for(lambda: "teacher: stage 'ce', 60 epochs (resuming at epoch" in text_of(log), third, "a resume")
        assert json.loads(text_of(lock))["pid"] == third.pid
    finally:
        third.send_signal(signal.SIGKILL)
        third.wait()


STOPS = {  # signal: (exit code, the first words of the one line)
    signal.SIGINT: (130, "interrupted (Ctrl-C)"),
    signal.SIGTERM: (143, "stopped (SIGTERM)"),  # what docker stop, Kubernetes and Slurm send
}


@pytest.mark.parametrize("signum", list(STOPS), ids=["ctrl_c", "sigterm"])
def test_ctrl_c_and_sigterm_stop_with_one_line_and_their_exit_code_leaving_a_resumable_run(tmp_path, signum):
    model_dir = str(tmp_path / "run")
    stage_dir = os.path.join(model_dir, "checkpoints", "teacher")
    process = subprocess.Popen(command(model_dir) + LONG, env=env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_as_in_a_terminal)
    wait_for(lambda: saved_epoch(stage_dir) >= 2, process, "the second checkpoint")
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    code, words = STOPS[signum]
    assert process.returncode == code, err[-3000:]
    lines = [line for line in err.splitlines()
             if line.strip() and not line.startswith(TF_LOG_PREFIXES) and not PROGRESS_LINE.match(line)]
    assert lines == [f"{words}: the checkpoints of every finished epoch are kept in {model_dir}; "
                     "rerun the same command to resume."], err[-3000:]
    # Consistent: the newest checkpoint and the history end at the same epoch; the lock was released.
    newest = int(tf_latest_checkpoint(stage_dir).rsplit("-", 1)[1])
    assert newest >= 2 and len(json.load(open(os.path.join(stage_dir, "history.json")))["loss"]) == newest
    assert os.path.getsize(os.path.join(model_dir, "run.lock")) == 0
    log = tmp_path / "again.out"
    with open(log, "w") as out:
        again = subprocess.Popen(command(model_dir) + LONG, env=env(), stdout=subprocess.DEVNULL, stderr=out)
    try:
        wait_for(lambda: f"(resuming at epoch {newest})" in text_of(log), again, "a resume")
    finally:
        again.send_signal(signal.SIGKILL)
        again.wait()


def tf_latest_checkpoint(stage_dir):
    for line in open(os.path.join(stage_dir, "checkpoint")):
        if line.startswith("model_checkpoint_path:"):
            return line.split('"')[1]
    raise AssertionError(f"no checkpoint in {stage_dir}")


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (a digits teacher checkpoint takes 1.8 MB: the second one fills it), or a skip where the test
    cannot mount one (not root, no tmpfs)."""
    from tests.helpers import mounted_tmpfs

    with mounted_tmpfs(tmp_path / "disk", "size=3m") as mount_point:
        yield mount_point


def test_a_full_disk_stops_with_one_line_and_the_same_command_resumes_once_space_is_freed(small_disk):
    model_dir = str(small_disk / "run")
    run = command(model_dir) + ["--teacher_epochs=3", "--verbose=2"]
    full = subprocess.run(run, env=env(), capture_output=True, text=True, timeout=600)
    assert full.returncode == 1, full.stderr[-3000:]
    assert "Traceback" not in full.stderr, full.stderr[-3000:]
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: the disk is full (No space left on device"), errors
    assert f"kept in {model_dir}" in errors[0] and "rerun the same command to resume" in errors[0]
    assert tf_latest_checkpoint(os.path.join(model_dir, "checkpoints", "teacher")).endswith("ckpt-1")
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    again = subprocess.run(run, env=env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "teacher: stage 'ce', 3 epochs (resuming at epoch 1)" in again.stderr
    assert json.load(open(os.path.join(model_dir, "results.json")))["models"]
    assert not [n for _, dirs, files in os.walk(model_dir) for n in dirs + files if n.startswith(".fitnets-tmp-")]
