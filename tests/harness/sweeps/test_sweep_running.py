"""Sweep running: a run recorded in the sweep directory is compared with the planned one before anything trains."""

import json
import os

import pytest

from fitnets_tf.errors import ConfigError
from fitnets_tf.harness import pipeline
from fitnets_tf.harness.sweeps import planning, running

CELLS = (planning.Cell("a", "digits_fitnet", ((4, 2),), (("4 (pool1 4x4)", "2 (pool1 4x4)"),), ("ce", "kd"), "a"),
         planning.Cell("b", "digits_fitnet", ((8, 3),), (("8 (conv8 4x4)", "3 (conv3 4x4)"),), (), "b"))


def test_recorded_runs_are_compared_with_the_plan(tmp_path):
    base = pipeline.RunConfig(model_dir="")
    run = planning.plan("hint_location", base, (0,), str(tmp_path / "sweep"), cells=CELLS).runs[1]
    assert running.recorded_differences(run) is None
    os.makedirs(run.config.model_dir)
    path = os.path.join(run.config.model_dir, "run_config.json")
    with open(path, "w") as f:
        json.dump({**run.config.to_json(), "kd_epochs": 7, "verbose": 0}, f)
    assert running.recorded_differences(run) == ["kd_epochs"]
    # The same run recorded in a sweep directory that has since moved (teacher_path under the old root) matches.
    old_root = "/elsewhere/sweep"
    moved = {**run.config.to_json(), "model_dir": f"{old_root}/b/seed0",
             "teacher_path": f"{old_root}/a/seed0/teacher.keras"}
    with open(path, "w") as f:
        json.dump(moved, f)
    assert running.recorded_differences(run) == []
    # A recorded run with other settings stops the sweep before its first run, naming the setting to change.
    with open(path, "w") as f:
        json.dump({**run.config.to_json(), "kd_epochs": 7}, f)
    sweep = planning.plan("hint_location", base, (0,), str(tmp_path / "sweep"), cells=CELLS)
    with pytest.raises(ConfigError, match=r"^`sweep_dir`: .*differs in: kd_epochs"):
        running.check_recorded_runs(sweep)


def test_the_log_says_whether_an_unfinished_run_still_trains_its_teacher(tmp_path):
    sweep = planning.plan("hint_location", pipeline.RunConfig(model_dir=""), (0,), str(tmp_path / "sweep"),
                          cells=CELLS)
    first, second = sweep.runs
    assert running.teacher_text(first) == "trains the teacher"
    assert running.teacher_text(second) == f"teacher {second.config.teacher_path}"
    stage_dir = os.path.join(first.config.model_dir, "checkpoints", "teacher")
    os.makedirs(stage_dir)
    with open(os.path.join(stage_dir, "done.json"), "w") as f:
        json.dump({"epochs": 1}, f)
    assert running.teacher_text(first) == "its teacher is trained; the students resume"
