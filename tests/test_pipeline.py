"""pipeline.run in-process: the paper's tune-then-retrain protocol and configuration errors."""

import json
import os

import pytest

from fitnets_tf.harness import pipeline

TINY = dict(teacher_epochs=3, hint_epochs=3, kd_epochs=3, baseline_epochs=3, baselines=("ce",), batch_size=128,
            optimizer="adam", learning_rate=0.003, latency_runs=1, verbose=0, export=False, initializer="glorot_uniform")


def done(model_dir, stage):
    return json.load(open(os.path.join(model_dir, "checkpoints", stage, "done.json")))


@pytest.mark.slow
def test_retrain_on_train_plus_validation_for_the_epochs_the_tuning_run_chose(tmp_path):
    tuned = str(tmp_path / "tuned")
    pipeline.run(pipeline.RunConfig(model_dir=tuned, patience=1, **TINY))
    chosen = {}
    for stage in ("teacher", "fitnet_stage1", "fitnet_stage2", "baseline_ce"):
        result = done(tuned, stage)
        chosen[stage] = result["best_epoch"]
        assert 1 <= chosen[stage] <= result["epochs"] <= 3
        history = result["history"]
        metric = history["val_hint_loss"] if stage == "fitnet_stage1" else history["val_accuracy"]
        best = min(metric) if stage == "fitnet_stage1" else max(metric)
        assert metric[chosen[stage] - 1] == best
    retrained = str(tmp_path / "retrained")
    rows = pipeline.run(pipeline.RunConfig(model_dir=retrained, retrain_from=tuned, validation_size=0, **TINY))
    for stage, epochs in chosen.items():
        result = done(retrained, stage)
        assert result["epochs"] == epochs, stage
        assert "val_accuracy" not in result["history"] and "val_hint_loss" not in result["history"]
    results = json.load(open(os.path.join(retrained, "results.json")))
    assert results["validation_examples"] == 0 and results["train_examples"] == 1437
    assert results["config"]["mixed_precision"] == "auto" and results["compute_policy"] == "float32"  # no GPU
    assert {r["model"] for r in rows} == {"teacher", "fitnet", "baseline_ce"}


def test_retrain_needs_a_finished_run_and_no_validation_split(tmp_path):
    with pytest.raises(pipeline.ConfigError, match="--retrain_from: .* holds no finished run"):
        pipeline.validate(pipeline.RunConfig(model_dir=str(tmp_path), retrain_from=str(tmp_path), validation_size=0))
    os.makedirs(tmp_path / "checkpoints")
    with pytest.raises(pipeline.ConfigError, match="--retrain_from: .*--validation_size=0"):
        pipeline.validate(pipeline.RunConfig(model_dir=str(tmp_path), retrain_from=str(tmp_path)))


@pytest.mark.parametrize("overrides,message", [
    (dict(cache_teacher_outputs="maybe"), "--cache_teacher_outputs: choose auto, true or false"),
    (dict(optimizer="lbfgs"), "--optimizer: choose one of rmsprop, adam, sgd"),
    (dict(baselines=("ce", "fitnet")), "--baselines: unknown baseline 'fitnet'"),
    (dict(batch_size=0), "--batch_size: must be >= 1"),
    (dict(patience=-3), "--patience: must be an integer >= 0"),
    (dict(mixed_precision="float8"), "--mixed_precision: choose one of"),
    (dict(teacher_precision="int4"), "--teacher_precision: choose one of auto, float32, bfloat16, float16"),
    (dict(rmsprop_max_scaling=-1.0), "--rmsprop_max_scaling: must be >= 0"),
    (dict(train_size=0), "--train_size: must be a whole number of images >= 1"),
    (dict(teacher_patience=-1), "--teacher_patience: must be an integer >= 0"),
    (dict(baselines=("ce_glorot",), student_path="x.keras"), "--baselines: 'ce_glorot' re-initialises a zoo"),
])
def test_config_errors_name_the_flag(tmp_path, overrides, message):
    with pytest.raises(pipeline.ConfigError, match=message):
        pipeline.validate(pipeline.RunConfig(model_dir=str(tmp_path), **overrides))


def test_cache_teacher_outputs_true_with_augmentation_is_refused(tmp_path):
    config = pipeline.RunConfig(model_dir=str(tmp_path / "r"), dataset="digits", crop_padding=1,
                                cache_teacher_outputs="true", **{**TINY, "teacher_epochs": 0})
    with pytest.raises(pipeline.ConfigError, match="--cache_teacher_outputs: the training images are augmented"):
        pipeline.run(config)
    assert not (tmp_path / "r").exists()


def test_auto_mixed_precision_is_float16_only_with_a_gpu(monkeypatch):
    import tensorflow as tf

    assert pipeline.compute_policy("mixed_bfloat16") == "mixed_bfloat16"
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: [])
    assert pipeline.compute_policy("auto") == "float32"
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: ["/device:GPU:0"] if kind == "GPU" else [])
    assert pipeline.compute_policy("auto") == "mixed_float16"


def test_prepare_model_dir_locks_it_and_overwrite_moves_the_old_run_aside_with_its_lock(tmp_path):
    from fitnets_tf.harness.run_lock import RunLock

    model_dir = str(tmp_path / "run")
    first = RunLock(model_dir, command="first")
    pipeline.prepare_model_dir(pipeline.RunConfig(model_dir=model_dir), first)
    with pytest.raises(pipeline.ConfigError, match=r"--model_dir: .* is in use by another run \(pid \d+ .*first\)"):
        pipeline.prepare_model_dir(pipeline.RunConfig(model_dir=model_dir), RunLock(model_dir, command="second"))
    first.release()

    lock = RunLock(model_dir, command="third")
    pipeline.prepare_model_dir(pipeline.RunConfig(model_dir=model_dir, temperature=5.0, overwrite=True), lock)
    (moved,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert json.load(open(moved / "run_config.json"))["temperature"] == 3.0
    assert os.path.getsize(moved / "run.lock") == 0  # released before the move
    assert lock.held and json.load(open(os.path.join(model_dir, "run.lock")))["command"] == "third"
    assert json.load(open(os.path.join(model_dir, "run_config.json")))["temperature"] == 5.0
    lock.release()


def test_an_unwritable_model_dir_is_one_config_error(tmp_path, monkeypatch):
    """EROFS from the file system, simulated (root ignores permission bits; tests/test_run_script.py mounts a real
    read-only tmpfs): the error names --model_dir and the fix, and nothing is left behind."""
    import errno

    from fitnets_tf.harness.run_lock import RunLock

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

    monkeypatch.setattr(pipeline.os, "makedirs", read_only)
    with pytest.raises(pipeline.ConfigError, match=r"--model_dir: cannot write into .* \(Read-only file system: .*"
                                                   r"Give a --model_dir on a writable file system\."):
        pipeline.prepare_model_dir(pipeline.RunConfig(model_dir=str(tmp_path / "run")), RunLock(str(tmp_path / "run")))
    assert list(tmp_path.iterdir()) == []
