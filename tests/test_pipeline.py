"""pipeline.run in-process: the paper's tune-then-retrain protocol, a refused cache, and a Run that is
complete once built."""

import json
import os

import numpy as np
import pytest

from fitnets_tf.harness import pipeline
from tests.helpers import record_stage_starts

TINY = dict(teacher_epochs=3, hint_epochs=3, kd_epochs=3, baseline_epochs=3, baselines=("ce",), batch_size=128,
            optimizer="adam", learning_rate=0.003, latency_runs=1, verbose=0, export=False, initializer="glorot_uniform",
            jit_compile="false")  # XLA's compile time outweighs its gain at 3 epochs; tested in test_xla.py


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


def test_cache_teacher_outputs_true_with_augmentation_is_refused(tmp_path):
    config = pipeline.RunConfig(model_dir=str(tmp_path / "r"), dataset="digits", crop_padding=1,
                                cache_teacher_outputs="true", **{**TINY, "teacher_epochs": 0})
    with pytest.raises(pipeline.ConfigError, match="`cache_teacher_outputs`: the training images are augmented"):
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


@pytest.mark.slow  # trains for several epochs in-process (over 20 s on 2 shared cores)
def test_a_run_is_complete_after_construction(tmp_path):
    """Every attribute of a Run exists once it is built; training and reporting only fill them in."""
    import tensorflow as tf

    from fitnets_tf import data as data_lib
    from fitnets_tf.harness.inputs import load_splits
    from fitnets_tf.harness.networks import build_networks

    config = pipeline.RunConfig(model_dir=str(tmp_path / "run"), **{
        **TINY, "teacher_epochs": 1, "hint_epochs": 1, "kd_epochs": 1, "baseline_epochs": 1})
    info = data_lib.dataset_info(config.dataset)
    strategy = tf.distribute.get_strategy()
    networks, splits = build_networks(config, info, strategy), load_splits(config)
    pipeline.prepare_model_dir(config)
    experiment = pipeline.Run(config, info, networks, splits, strategy)
    attributes = set(vars(experiment))
    results = {"teacher": experiment.train_teacher(), **experiment.train_fitnet(), **experiment.train_baselines()}
    rows = experiment.report(results)
    assert set(vars(experiment)) == attributes
    assert [r["model"] for r in rows] == ["teacher", "fitnet", "baseline_ce"]


@pytest.mark.slow
def test_the_one_stage_baseline_trains_on_the_fitnets_pairs_and_resumes(tmp_path, monkeypatch):
    """`baselines=one_stage`: RepDistiller's one-stage FitNet beside the two-stage one, from the same initial
    weights and on the same resolved pair; its regressor is in its checkpoints, so a rerun finds it finished."""
    model_dir = str(tmp_path / "run")
    config = pipeline.RunConfig(model_dir=model_dir, **{**TINY, "teacher_epochs": 1, "hint_epochs": 1, "kd_epochs": 1,
                                                         "baseline_epochs": 2, "baselines": ("one_stage",)})
    calls = record_stage_starts(monkeypatch)
    rows = pipeline.run(config)
    first = {call["name"]: call for call in calls}
    hint_run, one_run = first["fitnet_stage1"], first["baseline_one_stage"]
    assert len(hint_run["weights"]) == len(one_run["weights"])  # the same initial weights as the FitNet's stage 1:
    assert all(np.array_equal(a, b) for a, b in zip(hint_run["weights"], one_run["weights"]))
    resolved = [[(r["guided"], r["hint"], r["regressor"]) for r in run["stage"].pair_report]
                for run in (hint_run, one_run)]
    assert resolved[0] == resolved[1] and len(resolved[0]) == 1  # the same resolved pair and regressor kind
    assert not any(call["skipped"] for call in calls)
    assert {r["model"] for r in rows} == {"teacher", "fitnet", "baseline_one_stage"}
    history = done(model_dir, "baseline_one_stage")["history"]
    assert {"loss", "ce_loss", "hint_loss", "accuracy", "val_accuracy"} <= set(history) and len(history["loss"]) == 2
    import tensorflow as tf

    from fitnets_tf.models import build_network, zoo

    # The checkpoint holds what the stage trains: the student's variables and the regressor's (conv kernel, bias).
    names = tf.train.list_variables(os.path.join(model_dir, "checkpoints", "baseline_one_stage"))
    trained = [n for n, _ in names if n.startswith("optimizer/_trainable_variables/")]
    student = build_network(zoo.get_spec(config.student), seed=0)
    assert len(trained) == len(student.trainable_variables) + 2
    results = json.load(open(os.path.join(model_dir, "results.json")))
    assert results["config"]["one_stage_beta"] == 100.0
    calls.clear()
    rerun = pipeline.run(config)
    assert [r["model"] for r in rerun] == [r["model"] for r in rows]
    assert calls and all(call["skipped"] for call in calls)  # every stage found finished, none trained again
