"""A sweep's learning curves from its runs' histories: where each model's curve starts, the epoch it left chance,
the mean over seeds, and the PNG, on hand-made histories."""

import pytest

from fitnets_tf.harness.sweeps.curves import left_chance_epoch, mean_curve, model_curve, sweep_curves
from fitnets_tf.harness.sweeps.plots import plot_curves
from fitnets_tf.harness.sweeps.statistics import mean_std

HISTORIES = {
    "teacher": {"loss": [1.0, 0.5], "val_accuracy": [0.7, 0.9]},
    "fitnet_stage1": {"loss": [9.0, 8.0, 7.0], "val_loss": [9.5, 8.5, 7.5]},  # hints: no accuracy
    "fitnet_stage2": {"loss": [2.0, 1.0], "val_accuracy": [0.5, 0.8]},
    "baseline_ce": {"loss": [2.3] * 4, "val_accuracy": [0.10, 0.12, 0.15, 0.60]},
    "baseline_kd": {"loss": [2.3, 2.2], "accuracy": [0.1, 0.11]},  # no validation split: training accuracy
}


def test_a_models_curve_is_placed_on_the_epochs_of_its_budget():
    assert model_curve(HISTORIES, "fitnet") == (3, [0.5, 0.8])  # stage 2 after the 3 hint epochs
    assert model_curve(HISTORIES, "baseline_ce") == (0, [0.10, 0.12, 0.15, 0.60])
    assert model_curve(HISTORIES, "baseline_kd") == (0, [0.1, 0.11])
    assert model_curve(HISTORIES, "baseline_ce_glorot") is None
    assert model_curve({"fitnet_stage1": {"loss": [1.0]}}, "fitnet") is None


def test_left_chance_is_the_first_epoch_at_one_and_a_half_times_chance():
    # 10 classes: the threshold is 15%; 0.15 reaches it at epoch 3.
    assert left_chance_epoch(model_curve(HISTORIES, "baseline_ce"), 10) == 3
    assert left_chance_epoch(model_curve(HISTORIES, "fitnet"), 10) == 4  # 3 hint epochs + its first KD epoch
    assert left_chance_epoch(model_curve(HISTORIES, "baseline_kd"), 10) is None
    assert left_chance_epoch(model_curve(HISTORIES, "baseline_kd"), 100) == 1  # 1.5%
    assert left_chance_epoch(None, 10) is None


def _row(method, model, seeds):
    return {"cell": "c", "method": method, "model": model, "test_accuracy": mean_std([0.9] * len(seeds)),
            "per_seed": [{"seed": s, "run": f"c/seed{s}", "test_accuracy": 0.9} for s in seeds]}


def test_sweep_curves_collect_every_seed_and_their_mean(tmp_path):
    other = {"fitnet_stage1": {"loss": [1.0] * 3}, "fitnet_stage2": {"val_accuracy": [0.7, 0.9]},
             "baseline_ce": {"val_accuracy": [0.2, 0.4, 0.5, 0.7]}}
    results = {"c/seed0": {"histories": HISTORIES}, "c/seed1": {"histories": other}}
    summary = {"experiment": "methods", "dataset": "d",
               "rows": [_row("CE", "baseline_ce", [0, 1]), _row("HT+KD", "fitnet", [0, 1]),
                        _row("teacher (CE)", "teacher", [0])]}
    curves = sweep_curves(summary, results)
    assert set(curves) == {"c"} and set(curves["c"]) == {"CE", "HT+KD"}  # no teacher curve
    assert curves["c"]["HT+KD"] == {"offset": 3, "per_seed": {"0": [0.5, 0.8], "1": [0.7, 0.9]}}
    assert mean_curve(curves["c"]["HT+KD"]["per_seed"]) == pytest.approx([0.6, 0.85])
    assert mean_curve(curves["c"]["CE"]["per_seed"]) == pytest.approx([0.15, 0.26, 0.325, 0.65])
    assert mean_curve({"0": [0.1, 0.2, 0.3], "1": [0.3, 0.4]}) == pytest.approx([0.2, 0.3])  # common epochs only
    summary["curves"] = curves
    path = tmp_path / "methods_curves.png"
    assert plot_curves(summary, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary["curves"] = {}
    assert not plot_curves(summary, str(tmp_path / "none.png")) and not (tmp_path / "none.png").exists()
