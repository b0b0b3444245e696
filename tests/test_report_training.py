"""The report's training facts: best epoch, 'never left chance', and the learning-curve plot."""

import os

import pytest

from fitnets_tf.harness.report import add_training_facts, chance_notes, plot_learning_curves, write_report


def _rows(accuracies):
    return [{"model": m, "test_accuracy": a, "test_error": 1 - a, "architecture": "x", "method": "",
             "parameters": 10, "multiplications": 10, "latency_ms_per_image": {"1": 1.0}}
            for m, a in accuracies.items()]


def test_training_facts_mark_a_model_at_chance_and_carry_the_best_epoch():
    rows = _rows({"teacher": 0.90, "fitnet": 0.85, "baseline_ce": 0.1003, "baseline_ce_glorot": 0.84})
    stages = {"teacher": {"epochs": 20, "best_epoch": 12}, "fitnet_stage2": {"epochs": 25, "best_epoch": None},
              "baseline_ce": {"epochs": 30, "best_epoch": 1}, "baseline_ce_glorot": {"epochs": 30, "best_epoch": 29}}
    add_training_facts(rows, stages, {"teacher": "teacher", "fitnet": "fitnet_stage2", "baseline_ce": "baseline_ce",
                                      "baseline_ce_glorot": "baseline_ce_glorot"}, num_classes=10)
    by = {r["model"]: r for r in rows}
    assert [by[m]["at_chance"] for m in ("teacher", "fitnet", "baseline_ce", "baseline_ce_glorot")] == [
        False, False, True, False]
    assert (by["teacher"]["epochs"], by["teacher"]["best_epoch"]) == (20, 12)
    assert by["fitnet"]["best_epoch"] is None
    # 1.5 / num_classes is the line: 14.9% is chance for 10 classes, 15.1% is not; 1.4% is chance for 100.
    edge = _rows({"a": 0.149, "b": 0.151, "c": 0.014})
    add_training_facts(edge[:2], {}, {}, num_classes=10)
    add_training_facts(edge[2:], {}, {}, num_classes=100)
    assert [r["at_chance"] for r in edge] == [True, False, True]


def test_chance_notes_name_the_stuck_model_and_the_trainable_reference(tmp_path):
    rows = _rows({"teacher": 0.9, "fitnet": 0.85, "baseline_ce": 0.1, "baseline_ce_glorot": 0.84})
    add_training_facts(rows, {"baseline_ce": {"epochs": 30}}, {"baseline_ce": "baseline_ce"}, num_classes=10)
    notes = chance_notes(rows, 10)
    assert len(notes) == 1
    assert "baseline_ce never left chance" in notes[0] and "after 30 epochs" in notes[0]
    assert "fitnet, baseline_ce_glorot" in notes[0]
    write_report(str(tmp_path / "r.json"), str(tmp_path / "r.md"), rows, {"num_classes": 10}, batch_sizes=(1,))
    assert "never left chance" in (tmp_path / "r.md").read_text()
    assert chance_notes(_rows({"teacher": 0.9, "fitnet": 0.8}), 10) == []


def test_learning_curves_plot_every_stage_with_an_accuracy(tmp_path, monkeypatch):
    import matplotlib.axes

    drawn = []
    plot = matplotlib.axes.Axes.plot

    def recording_plot(self, x, y, *args, **kwargs):
        drawn.append((kwargs.get("label"), list(x), list(y)))
        return plot(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", recording_plot)
    path = str(tmp_path / "curves.png")
    histories = {"teacher": {"accuracy": [0.5, 0.7], "val_accuracy": [0.4, 0.6]},
                 "fitnet_stage1": {"hint_loss": [3.0, 2.0]},
                 "fitnet_stage2": {"accuracy": [0.3, 0.5, 0.6]}}
    assert plot_learning_curves(histories, {"fitnet_stage2": 2}, path)
    # Validation accuracy where there is one, else training accuracy; stage 2 after the 2 epochs before it; no curve
    # for a stage without an accuracy (stage 1's hint loss).
    assert sorted(drawn) == [("fitnet_stage2 (train)", [3, 4, 5], [30.0, 50.0, 60.0]),
                             ("teacher (validation)", [1, 2], [40.0, 60.0])]
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 5000
    assert not plot_learning_curves({"fitnet_stage1": {"hint_loss": [1.0]}}, {}, str(tmp_path / "none.png"))
    assert not os.path.exists(tmp_path / "none.png")
