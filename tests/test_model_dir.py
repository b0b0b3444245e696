"""The model_dir policy: one run per directory (its lock), a different run refused or moved aside, one-line
errors for a busy or unwritable directory."""

import json
import os

import pytest

from fitnets_tf.errors import ConfigError
from fitnets_tf.harness import model_dir as model_dir_lib
from fitnets_tf.harness.config import RunConfig
from fitnets_tf.harness.model_dir import prepare_model_dir


def test_prepare_model_dir_locks_it_and_overwrite_moves_the_old_run_aside_with_its_lock(tmp_path):
    from fitnets_tf.harness.run_lock import RunLock

    model_dir = str(tmp_path / "run")
    first = RunLock(model_dir, command="first")
    prepare_model_dir(RunConfig(model_dir=model_dir), first)
    with pytest.raises(ConfigError, match=r"`model_dir`: .* is in use by another run \(pid \d+ .*first\)"):
        prepare_model_dir(RunConfig(model_dir=model_dir), RunLock(model_dir, command="second"))
    first.release()

    lock = RunLock(model_dir, command="third")
    prepare_model_dir(RunConfig(model_dir=model_dir, temperature=5.0, overwrite=True), lock)
    (moved,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert json.load(open(moved / "run_config.json"))["temperature"] == 3.0
    assert os.path.getsize(moved / "run.lock") == 0  # released before the move
    assert lock.held and json.load(open(os.path.join(model_dir, "run.lock")))["command"] == "third"
    assert json.load(open(os.path.join(model_dir, "run_config.json")))["temperature"] == 5.0
    lock.release()


def test_an_unwritable_model_dir_is_one_config_error(tmp_path, monkeypatch):
    """EROFS from the file system, simulated (root ignores permission bits; tests/test_run_script.py mounts a real
    read-only tmpfs): the error names `model_dir` and the fix, and nothing is left behind."""
    import errno

    from fitnets_tf.harness.run_lock import RunLock

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

    monkeypatch.setattr(model_dir_lib.os, "makedirs", read_only)
    with pytest.raises(ConfigError, match=r"`model_dir`: cannot write into .* \(Read-only file system: .*"
                                      r"Give a `model_dir` on a writable file system\."):
        prepare_model_dir(RunConfig(model_dir=str(tmp_path / "run")), RunLock(str(tmp_path / "run")))
    assert list(tmp_path.iterdir()) == []
