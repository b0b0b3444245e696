"""run.lock: one holder at a time, the refusal names the holder, release frees the directory, a dead holder's
record does not block (flock dies with its process; see tests/test_fault_tolerance.py for kill -9)."""

import json
import os
import socket

import pytest

from fitnets_tf.harness.run_lock import ModelDirInUseError, RunLock


def test_a_second_lock_is_refused_naming_the_holder_until_the_first_is_released(tmp_path):
    first = RunLock(str(tmp_path), command="python scripts/run.py --model_dir=x")
    first.acquire()
    record = json.load(open(tmp_path / "run.lock"))
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    second = RunLock(str(tmp_path), command="other")
    for attempt in (second.check_free, second.acquire):
        with pytest.raises(ModelDirInUseError) as error:
            attempt()
        message = str(error.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()}, started {record['started']}" in message
        assert "command: python scripts/run.py --model_dir=x" in message and "\n" not in message
    first.release()
    assert os.path.getsize(tmp_path / "run.lock") == 0
    second.check_free()
    second.acquire()
    assert json.load(open(tmp_path / "run.lock"))["command"] == "other"
    second.release()


def test_a_stale_record_without_a_live_lock_does_not_block(tmp_path):
    # What kill -9 leaves: the dead run's record in the file, no flock (the OS dropped it with the process).
    (tmp_path / "run.lock").write_text(json.dumps({"pid": 999999, "host": "h", "started": "s", "command": "c"}))
    lock = RunLock(str(tmp_path))
    lock.check_free()
    lock.acquire()
    assert json.load(open(tmp_path / "run.lock"))["pid"] == os.getpid()
    lock.release()


def test_check_free_creates_nothing(tmp_path):
    RunLock(str(tmp_path / "absent")).check_free()
    assert not (tmp_path / "absent").exists()
