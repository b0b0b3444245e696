"""The markdown table of a sweep, on a hand-made summary."""

from fitnets_tf.harness.sweeps.statistics import mean_std
from fitnets_tf.harness.sweeps.tables import markdown


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
