"""The table of a sweep: its summary from hand-made results, and its markdown."""

from fitnets_tf.harness import pipeline
from fitnets_tf.harness.sweeps import planning
from fitnets_tf.harness.sweeps.statistics import mean_std
from fitnets_tf.harness.sweeps.tables import markdown, summarize


def test_the_table_stars_runs_that_never_left_chance_and_names_the_trainable_ones():
    def row(method, model, accs, chance):
        return {"cell": "s", "x": "s", "method": method, "model": model, "hint_taps": [],
                "test_accuracy": mean_std(accs), "parameters": 10, "multiplications": 10,
                "per_seed": [{"seed": k, "test_accuracy": a, "at_chance": c} for k, (a, c) in
                             enumerate(zip(accs, chance))]}
    summary = {"experiment": "methods", "student": "s", "dataset": "d", "teacher": "t", "depth_budget": "30m",
               "seeds": [0, 1], "teacher_sharing": "sweep", "teacher_runs": ["s/seed0"], "cells": [],
               "epochs": {"teacher_epochs": 1}, "command": "c",
               "rows": [row("CE", "baseline_ce", [0.10, 0.85], [True, False]),
                        row("CE (Glorot init)", "baseline_ce_glorot", [0.86, 0.87], [False, False]),
                        row("teacher (CE)", "teacher", [0.9, 0.9], [False, False])]}
    table = markdown(summary)
    assert "| 10.00*, 85.00 | - |" in table and "| 86.00, 87.00 | - |" in table  # no curves recorded
    summary["rows"][0]["per_seed"][0]["left_chance_epoch"] = None
    summary["rows"][0]["per_seed"][1]["left_chance_epoch"] = 3
    assert "| 10.00*, 85.00 | never, 3 |" in markdown(summary)
    note = table.split("never left chance", 1)[1].splitlines()[0]
    assert "s CE." in note and "Trainable in every seed: s CE (Glorot init)." in note
    summary["rows"] = summary["rows"][1:]
    assert "never left chance" not in markdown(summary)


def test_a_given_teacher_has_no_curve_and_no_teacher_epochs_in_the_table(tmp_path):
    cells = (planning.Cell("a", "digits_fitnet", ((4, 2),), (("4 (pool1 4x4)", "2 (pool1 4x4)"),), ("ce",), "a"),)
    teacher = tmp_path / "teacher.keras"
    teacher.write_bytes(b"")  # planning checks that the file exists, not what it holds
    base = pipeline.RunConfig(model_dir="", teacher_path=str(teacher), teacher_epochs=30)
    sweep = planning.plan("hint_location", base, (0,), str(tmp_path / "sweep"), cells=cells)
    assert sweep.teacher_sharing == "given"

    def model(name, accuracy):
        return {"model": name, "architecture": "x", "test_accuracy": accuracy, "parameters": 10,
                "multiplications": 10, "at_chance": False, "best_epoch": None}
    result = {"num_classes": 10,
              "models": [model("teacher", 0.91), model("fitnet", 0.85), model("baseline_ce", 0.80)],
              "histories": {"fitnet_stage1": {"loss": [1.0, 0.5]}, "fitnet_stage2": {"val_accuracy": [0.5, 0.8]},
                            "baseline_ce": {"val_accuracy": [0.1, 0.1, 0.7]}}}  # no "teacher": it was loaded
    summary = summarize(sweep, {"a/seed0": result})
    rows = {r["model"]: r for r in summary["rows"]}
    assert [p["left_chance_epoch"] for p in rows["fitnet"]["per_seed"]] == [3]  # 2 hint epochs, then KD epoch 1
    assert [p["left_chance_epoch"] for p in rows["baseline_ce"]["per_seed"]] == [3]
    assert "left_chance_epoch" not in rows["teacher"]["per_seed"][0]
    table = markdown(summary)
    assert "| teacher | teacher (CE) | 91.00 | 1 | 91.00 | - |" in table
    assert "teacher_epochs" not in table and "hint_epochs" in table
    summary["teacher_sharing"] = "sweep"  # a teacher the sweep trains keeps its epochs in the table
    assert "teacher_epochs 30" in markdown(summary)
