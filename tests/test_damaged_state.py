"""Damaged run-state files (garbage, empty, the wrong JSON type) are moved aside and recomputed where they can be,
else refused in one line naming the file and the fix; what a killed write or conversion left is removed by the
next run. Nothing the user trained is lost."""

import json
import os
import numpy as np
import pytest

from fitnets_tf.errors import ConfigError
from fitnets_tf.harness.config import RunConfig
from fitnets_tf.harness.model_dir import prepare_model_dir
from fitnets_tf.harness.run_lock import RunLock
from fitnets_tf.io_utils import (TMP_PREFIX, atomic_save, read_json_state, remove_dead_scratch,
                                 remove_leftover_temporaries, scratch_prefix)

DAMAGE = {"garbage": b"\x00{not json", "empty": b"", "a list": b"[]"}


def _a_pid_no_process_has():
    """The highest pid below the kernel's limit that no process has (as a process that ended has none)."""
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
    except OSError:
        pid_max = 32768
    for pid in range(pid_max - 1, 1, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("every pid is taken")


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_state_file_is_moved_aside_and_its_default_returned(tmp_path, damage, caplog):
    path = tmp_path / "done.json"
    path.write_bytes(DAMAGE[damage])
    assert read_json_state(str(path), dict, "default", "the record") == "default"
    assert not path.exists()
    (moved,) = list((tmp_path / "damaged").glob("*/done.json"))
    assert moved.read_bytes() == DAMAGE[damage]  # kept, never deleted
    assert "was damaged" in caplog.text and "; the record.\n" in caplog.text + "\n"
    path.write_text('{"ok": 1}')
    assert read_json_state(str(path), dict) == {"ok": 1}
    assert read_json_state(str(tmp_path / "absent.json"), dict, {}) == {}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_run_config_is_refused_in_one_line_and_overwrite_moves_the_run_aside(tmp_path, damage):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / "run_config.json").write_bytes(DAMAGE[damage])
    (model_dir / "fitnet.keras").write_bytes(b"trained")
    lock = RunLock(str(model_dir), command="rerun")
    with pytest.raises(ConfigError) as error:
        prepare_model_dir(RunConfig(model_dir=str(model_dir)), lock)
    message = str(error.value)
    assert "\n" not in message and str(model_dir / "run_config.json") in message and "is damaged" in message
    assert "flags.cfg" in message and "`overwrite`" in message
    assert (model_dir / "run_config.json").read_bytes() == DAMAGE[damage]  # untouched
    lock.release()
    lock = RunLock(str(model_dir), command="overwrite")
    prepare_model_dir(RunConfig(model_dir=str(model_dir), overwrite=True), lock)
    (moved,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert (moved / "fitnet.keras").read_bytes() == b"trained"
    assert json.load(open(model_dir / "run_config.json"))["model_dir"] == str(model_dir)
    lock.release()


def test_leftovers_of_killed_writes_and_dead_runs_scratch_are_removed(tmp_path):
    model_dir = tmp_path / "run"
    (model_dir / "litert").mkdir(parents=True)
    (model_dir / f"{TMP_PREFIX}export.abc123" / "export" / "variables").mkdir(parents=True)
    (model_dir / "litert" / f"{TMP_PREFIX}fitnet_int8.tflite.x1").mkdir()
    (model_dir / f"{TMP_PREFIX}results.json.k2.tmp").write_text("{")
    (model_dir / "results.json").write_text("{}")
    removed = remove_leftover_temporaries(str(model_dir))
    assert len(removed) == 3 and sorted(os.listdir(model_dir)) == ["litert", "results.json"]
    assert os.listdir(model_dir / "litert") == []

    temp = tmp_path / "tmp"
    dead_pid = _a_pid_no_process_has()
    (temp / f"fitnets-litert-{dead_pid}-q1w2").mkdir(parents=True)
    (temp / f"{scratch_prefix('export')}mine").mkdir()  # this process is alive: kept
    (temp / "fitnets-litert-notapid-x").mkdir()  # not ours: kept
    (temp / "other").mkdir()
    assert remove_dead_scratch(str(temp)) == [str(temp / f"fitnets-litert-{dead_pid}-q1w2")]
    assert sorted(os.listdir(temp)) == sorted([f"{scratch_prefix('export')}mine", "fitnets-litert-notapid-x",
                                               "other"])


def test_an_atomic_save_names_its_temporary_so_a_killed_one_is_recognised(tmp_path):
    seen = []
    atomic_save(str(tmp_path / "export"), lambda tmp: (seen.append(tmp), os.makedirs(tmp)))
    assert os.path.basename(os.path.dirname(seen[0])).startswith(f"{TMP_PREFIX}export.")
    assert os.listdir(tmp_path) == ["export"]


TINY = dict(teacher_epochs=2, hint_epochs=1, kd_epochs=2, baselines=(), batch_size=128, optimizer="adam",
            learning_rate=0.003, latency_runs=1, verbose=0, export=False, jit_compile="false",
            cache_teacher_outputs="false")  # not `deterministic`: op determinism cannot be undone in a process


@pytest.mark.slow
def test_a_finished_run_with_damaged_records_reruns_to_the_same_results(tmp_path):
    import keras

    from fitnets_tf.harness import pipeline

    model_dir = tmp_path / "run"
    config = RunConfig(model_dir=str(model_dir), **TINY)
    first = pipeline.run(config)
    weights = keras.saving.load_model(model_dir / "fitnet.keras").get_weights()
    stages = model_dir / "checkpoints"
    (model_dir / "results.json").write_text("garbage")
    (stages / "teacher" / "done.json").write_text("")
    (stages / "fitnet_stage2" / "done.json").write_text("[]")
    (stages / "fitnet_stage2" / "history.json").write_text("{")
    again = pipeline.run(config)  # no exception: each damaged file moved aside and recomputed
    assert [r["test_accuracy"] for r in again] == [r["test_accuracy"] for r in first]
    for a, b in zip(weights, keras.saving.load_model(model_dir / "fitnet.keras").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert json.load(open(model_dir / "results.json"))["models"]
    for stage in ("teacher", "fitnet_stage2"):
        assert json.load(open(stages / stage / "done.json"))["epochs"] == 2
        assert list((stages / stage / "damaged").glob("*/done.json"))
    assert (model_dir / "damaged").is_dir()  # results.json kept there
