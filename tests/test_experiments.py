"""Experiment sweeps: aggregation on hand values, the hint-pair rules, planning and teacher sharing, and a two-seed
digits "methods" sweep through scripts/experiment.py (table, JSON and plot consistent; reruns skip finished runs)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from fitnets_tf import Distiller, HintPair
from fitnets_tf.harness import experiments, pipeline
from fitnets_tf.models import build_network, zoo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "experiment.py")
TINY = ["--teacher_epochs=1", "--hint_epochs=1", "--kd_epochs=1", "--baseline_epochs=1", "--latency_runs=1",
        "--verbose=0"]

# Hint/guided taps (tap layer, (H, W)) by paper index, as models.resolve_tap gives them (an index includes the
# max-pool right after the conv): digits nets on 8x8 images, CIFAR nets on 32x32.
DIGITS_TEACHER = [("conv1", (8, 8)), ("pool1", (4, 4)), ("conv3", (4, 4))]
DIGITS_FITNET = [("conv1", (8, 8)), ("conv2", (8, 8)), ("conv3", (8, 8)), ("pool1", (4, 4))] + [
    (f"conv{i}", (4, 4)) for i in range(5, 9)]
DEPTH5_ON_DIGITS = [("pool1", (4, 4)), ("pool2", (2, 2)), ("conv3", (2, 2))]
CIFAR_TEACHER = [("pool1", (15, 15)), ("pool2", (6, 6)), ("pool3", (4, 4))]
FITNET1 = [("conv1", (32, 32)), ("conv2", (32, 32)), ("pool1", (16, 16)), ("conv4", (16, 16)), ("conv5", (16, 16)),
           ("pool2", (8, 8)), ("conv7", (8, 8)), ("conv8", (8, 8)), ("conv9", (8, 8))]


# ------------------------------------------------------------------------------------------------ aggregation
def test_mean_std_on_hand_values():
    stats = experiments.mean_std([0.90, 0.92, 0.94])
    assert stats["n"] == 3
    assert stats["mean"] == pytest.approx(0.92)
    assert stats["std"] == pytest.approx(0.02)  # sqrt((0.02^2 + 0 + 0.02^2) / 2)
    stats = experiments.mean_std([0.8, 1.0])
    assert stats["mean"] == pytest.approx(0.9)
    assert stats["std"] == pytest.approx(math.sqrt(0.02))
    assert experiments.mean_std([0.5]) == {"mean": 0.5, "std": None, "n": 1}
    assert experiments.mean_std([]) == {"mean": None, "std": None, "n": 0}


def test_format_mean_std_in_percent():
    assert experiments.format_mean_std({"mean": 0.91234, "std": 0.00451, "n": 3}) == "91.23 ± 0.45"
    assert experiments.format_mean_std({"mean": 0.5, "std": None, "n": 1}) == "50.00"
    assert experiments.format_mean_std({"mean": None, "std": None, "n": 0}) == "-"


# ------------------------------------------------------------------------------------------------ hint pairs
def test_fits_follows_the_regressor_kernel_rule():
    assert experiments.fits((8, 8), (8, 8)) and experiments.fits((16, 16), (14, 14))
    assert not experiments.fits((8, 8), (14, 14))
    assert not experiments.fits((8, 8), (4, 4), "conv1x1") and experiments.fits((4, 4), (4, 4), "conv1x1")
    assert experiments.fits((2, 2), (14, 14), "dense")


def test_conv_taps_follow_the_pipelines_index_semantics():
    assert experiments.conv_taps("digits_teacher", (8, 8, 1), 10) == DIGITS_TEACHER
    assert experiments.conv_taps("digits_fitnet", (8, 8, 1), 10) == DIGITS_FITNET


def test_default_pair_is_kept_when_it_fits():
    assert experiments.default_pair(CIFAR_TEACHER, FITNET1, 6, 2) == ((6, 2), "")
    assert experiments.default_pair(DIGITS_TEACHER, DIGITS_FITNET, 4, 2) == ((4, 2), "")


def test_default_pair_moves_the_guided_layer_earlier_then_the_hint_deeper():
    # depth5_30m on 8x8 digits: its guided layer 2 (2x2 after pool2) cannot take the 4x4 hint; layer 1 can.
    pair, note = experiments.default_pair(DIGITS_TEACHER, DEPTH5_ON_DIGITS, 2, 2)
    assert pair == (1, 2) and "2 (pool2 2x2)" in note and "moved to 1 (pool1 4x4)" in note
    # No student layer is as large as the teacher's layer 1: the hint moves deeper instead.
    pair, note = experiments.default_pair([("conv1", (16, 16)), ("conv2", (4, 4))],
                                          [("conv1", (8, 8)), ("conv2", (4, 4))], 2, 1)
    assert pair == (2, 2) and "hint layer moved" in note
    with pytest.raises(pipeline.ConfigError, match="no conv layer"):
        experiments.default_pair([("conv1", (16, 16))], [("conv1", (8, 8))], 1, 1)


def test_hint_location_pairs_map_the_teacher_proportionally():
    pairs = experiments.hint_location_pairs(DIGITS_TEACHER, DIGITS_FITNET, 4)
    # early = ceil(4 / 2) = 2 <- teacher ceil(2 * 3 / 8) = 1; middle 4 <- ceil(4 * 3 / 8) = 2; late 8 <- 3.
    assert {k: v[0] for k, v in pairs.items()} == {"early": (2, 1), "middle": (4, 2), "late": (8, 3)}
    assert all(note == "" for _, note in pairs.values())
    pairs = experiments.hint_location_pairs(CIFAR_TEACHER, FITNET1, 6)
    assert {k: v for k, v in pairs.items()} == {"early": ((3, 1), ""), "middle": ((6, 2), ""), "late": ((9, 3), "")}
    # A proportional hint larger than the guided map moves to the next teacher layer that fits.
    large_first = [("conv1", (33, 33))] + CIFAR_TEACHER[1:]
    pairs = experiments.hint_location_pairs(large_first, FITNET1, 6)
    assert pairs["early"][0] == (3, 2) and "1 (conv1 33x33)" in pairs["early"][1]
    with pytest.raises(pipeline.ConfigError, match="not distinct"):
        experiments.hint_location_pairs(DIGITS_TEACHER, DIGITS_FITNET[:2], 1)


@pytest.mark.parametrize("experiment,dataset,teacher,student", [
    ("methods", "digits", "digits_teacher", "digits_fitnet"),
    ("depth", "digits", "digits_teacher", "digits_fitnet"),
    ("hint_location", "digits", "digits_teacher", "digits_fitnet"),
    ("depth", "cifar10", "cifar_teacher", "fitnet1"),
    ("depth", "fashion_mnist", "mnist_teacher", "mnist_fitnet"),
])
def test_planned_pairs_are_accepted_by_the_distiller(experiment, dataset, teacher, student):
    base = pipeline.RunConfig(model_dir="", dataset=dataset, teacher=teacher, student=student,
                              baselines=("ce", "kd", "ce_glorot"))
    budget = "5m" if dataset == "fashion_mnist" else "30m"
    cells = experiments.plan_cells(experiment, base, depth_budget=budget)
    expected = {"methods": 1, "depth": len(experiments.DEPTHS),
                "hint_location": len(experiments.LOCATIONS) + len(experiments.MULTIPLE_HINTS)}[experiment]
    assert len(cells) == expected
    shape = {"cifar10": (32, 32, 3), "fashion_mnist": (28, 28, 1)}.get(dataset, (8, 8, 1))
    teacher_net = build_network(zoo.get_spec(teacher, input_shape=shape), seed=0)
    for cell in cells:
        student_net = build_network(zoo.get_spec(cell.student, input_shape=shape), seed=0)
        # The pipeline's own check: the Distiller builds a regressor per pair or raises.
        Distiller(student_net, teacher_net, hint_pairs=[HintPair(g, h) for g, h in cell.hints])
    if experiment == "depth" and dataset == "cifar10":
        # The paper's pairs 2 <- 2, 4 <- 2, 5 <- 2, 7 <- 2 all fit.
        assert [c.hints for c in cells] == [((2, 2),), ((4, 2),), ((5, 2),), ((7, 2),)]
        assert [c.student for c in cells] == ["depth5_30m", "depth7_30m", "depth9_30m", "depth11_30m"]
        assert all(c.note == "" for c in cells)
    if dataset == "fashion_mnist":
        # The 28x28 nets keep the paper's guided layers; each guided 7x7 map is mapped to the teacher's 3x3 hint.
        assert [c.hints for c in cells] == [((2, 2),), ((4, 2),), ((5, 2),), ((7, 2),)]
        assert [c.student for c in cells] == ["depth5_5m", "depth7_5m", "depth9_5m", "depth11_5m"]
        assert all(c.baselines == ("ce", "kd", "ce_glorot") for c in cells)
    if experiment == "hint_location":
        assert [c.baselines for c in cells] == [(), ("ce", "kd", "ce_glorot"), (), (), (), ()]
        assert [c.hints for c in cells] == [((2, 1),), ((4, 2),), ((8, 3),), ((2, 1), (4, 2)), ((4, 2), (8, 3)),
                                            ((2, 1), (8, 3))]


# --------------------------------------------------------------------------------------------------- planning
CELLS = (experiments.Cell("a", "digits_fitnet", ((4, 2),), (("4 (pool1 4x4)", "2 (pool1 4x4)"),), ("ce", "kd"), "a"),
         experiments.Cell("b", "digits_fitnet", ((8, 3),), (("8 (conv8 4x4)", "3 (conv3 4x4)"),), (), "b"))


def test_digits_shares_one_teacher_per_seed(tmp_path):
    base = pipeline.RunConfig(model_dir="", dataset="digits")
    sweep = experiments.plan("hint_location", base, (0, 1), str(tmp_path), cells=CELLS)
    assert sweep.teacher_sharing == "seed"
    runs = {r.key: r for r in sweep.runs}
    assert [r.key for r in sweep.runs] == ["a/seed0", "a/seed1", "b/seed0", "b/seed1"]
    assert runs["a/seed0"].trains_teacher and runs["a/seed0"].config.teacher_path is None
    assert runs["b/seed1"].config.teacher_path == os.path.join(str(tmp_path), "a", "seed1", "teacher.keras")
    assert runs["b/seed1"].config.model_dir == os.path.join(str(tmp_path), "b", "seed1")
    assert runs["b/seed1"].config.seed == 1 and runs["b/seed1"].config.baselines == ()
    assert runs["b/seed1"].config.hints == ((8, 3),)
    assert sweep.teacher_runs == ("a/seed0", "a/seed1")


def test_one_teacher_for_a_digits_sweep_is_refused(tmp_path):
    with pytest.raises(pipeline.ConfigError, match="test images"):
        experiments.plan("methods", pipeline.RunConfig(model_dir=""), (0, 1), str(tmp_path), teacher_sharing="sweep",
                         cells=CELLS)


def test_tfds_datasets_share_one_teacher_pinned_by_sweep_json(tmp_path):
    base = pipeline.RunConfig(model_dir="", dataset="cifar10", teacher="cifar_teacher", student="fitnet1")
    sweep = experiments.plan("hint_location", base, (3, 4), str(tmp_path), cells=CELLS)
    assert sweep.teacher_sharing == "sweep" and sweep.teacher_seed == 3
    assert [r.trains_teacher for r in sweep.runs] == [True, False, False, False]
    assert {r.config.teacher_path for r in sweep.runs[1:]} == {os.path.join(str(tmp_path), "a", "seed3",
                                                                            "teacher.keras")}
    # A later command with other seeds keeps the pinned teacher run (and runs it if it is missing).
    (tmp_path / "sweep.json").write_text(json.dumps(sweep.pin()))
    later = experiments.plan("hint_location", base, (5,), str(tmp_path), cells=CELLS)
    assert [r.key for r in later.runs] == ["a/seed3", "a/seed5", "b/seed5"]
    assert later.runs[0].trains_teacher and later.teacher_runs == ("a/seed3",)
    with pytest.raises(pipeline.ConfigError, match="holds a 'hint_location' sweep"):
        experiments.plan("depth", base, (5,), str(tmp_path), cells=CELLS)


def test_a_given_teacher_is_loaded_by_every_run(tmp_path):
    teacher = tmp_path / "teacher.keras"
    teacher.write_bytes(b"")
    base = pipeline.RunConfig(model_dir="", teacher_path=str(teacher))
    sweep = experiments.plan("hint_location", base, (0, 1), str(tmp_path / "sweep"), cells=CELLS)
    assert sweep.teacher_sharing == "given"
    assert not any(r.trains_teacher for r in sweep.runs)
    assert {r.config.teacher_path for r in sweep.runs} == {str(teacher)}


def test_plan_refuses_bad_settings(tmp_path):
    base = pipeline.RunConfig(model_dir="")
    for seeds in ((), (0, 0), (-1,)):
        with pytest.raises(pipeline.ConfigError, match="--seeds"):
            experiments.plan("methods", base, seeds, str(tmp_path), cells=CELLS)
    with pytest.raises(pipeline.ConfigError, match="--experiment"):
        experiments.plan("width", base, (0,), str(tmp_path), cells=CELLS)
    with pytest.raises(pipeline.ConfigError, match="--hint_epochs"):
        experiments.plan("methods", pipeline.RunConfig(model_dir="", hint_epochs=0), (0,), str(tmp_path), cells=CELLS)


def test_recorded_runs_are_compared_with_the_plan(tmp_path):
    base = pipeline.RunConfig(model_dir="")
    run = experiments.plan("hint_location", base, (0,), str(tmp_path / "sweep"), cells=CELLS).runs[1]
    assert experiments.recorded_differences(run) is None
    os.makedirs(run.config.model_dir)
    path = os.path.join(run.config.model_dir, "run_config.json")
    with open(path, "w") as f:
        json.dump({**run.config.to_json(), "kd_epochs": 7, "verbose": 0}, f)
    assert experiments.recorded_differences(run) == ["kd_epochs"]
    # The same run recorded in a sweep directory that has since moved (teacher_path under the old root) matches.
    old_root = "/elsewhere/sweep"
    moved = {**run.config.to_json(), "model_dir": f"{old_root}/b/seed0",
             "teacher_path": f"{old_root}/a/seed0/teacher.keras"}
    with open(path, "w") as f:
        json.dump(moved, f)
    assert experiments.recorded_differences(run) == []


# ------------------------------------------------------------------------------------------ end to end (CLI)
def run_script(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def methods_sweep(tmp_path_factory):
    sweep_dir = str(tmp_path_factory.mktemp("sweep") / "methods")
    args = ["--experiment=methods", f"--sweep_dir={sweep_dir}", "--seeds=0,1", *TINY]
    result = run_script(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_dir, args, result


def _run_results(sweep_dir, seed):
    with open(os.path.join(sweep_dir, "digits_fitnet", f"seed{seed}", "results.json")) as f:
        return {r["model"]: r for r in json.load(f)["models"]}


@pytest.mark.slow
def test_methods_sweep_writes_a_consistent_table_json_and_plot(methods_sweep):
    sweep_dir, _, result = methods_sweep
    for name in ("methods.md", "methods.json", "methods.png", "sweep.json", "flags.cfg"):
        assert os.path.exists(os.path.join(sweep_dir, name)), name
    with open(os.path.join(sweep_dir, "methods.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(sweep_dir, "methods.json")) as f:
        summary = json.load(f)
    table = open(os.path.join(sweep_dir, "methods.md")).read()
    assert summary["seeds"] == [0, 1] and summary["teacher_sharing"] == "seed"
    rows = {r["method"]: r for r in summary["rows"]}
    assert set(rows) == {"CE", "KD", "HT+KD", "teacher (CE)"}
    per_run = {seed: _run_results(sweep_dir, seed) for seed in (0, 1)}
    models = {"CE": "baseline_ce", "KD": "baseline_kd", "HT+KD": "fitnet", "teacher (CE)": "teacher"}
    for method, row in rows.items():
        # The raw values are those of each run's results.json; mean and std recomputed here with NumPy.
        values = np.array([per_run[seed][models[method]]["test_accuracy"] for seed in (0, 1)])
        assert [p["test_accuracy"] for p in row["per_seed"]] == list(values)
        assert [p["seed"] for p in row["per_seed"]] == [0, 1]
        assert row["test_accuracy"]["n"] == 2
        assert row["test_accuracy"]["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert row["test_accuracy"]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        assert row["parameters"] == per_run[0][models[method]]["parameters"]
        assert row["multiplications"] == per_run[0][models[method]]["multiplications"]
        mean_text = f"{100 * np.mean(values):.2f} ± {100 * np.std(values, ddof=1):.2f}"
        assert f"| {method} | {mean_text} | 2 |" in table
        assert f"{mean_text}% (n=2)" in result.stdout
    assert rows["HT+KD"]["hints"] == [[4, 2]]
    assert "4 (pool1 4x4) <- 2 (pool1 4x4)" in table
    # The taps the table names are the ones the pipeline trained on (its results.json records them).
    with open(os.path.join(sweep_dir, "digits_fitnet", "seed0", "results.json")) as f:
        assert json.load(f)["hint_pairs"] == [{"guided": "pool1", "hint": "pool1", "regressor": "conv"}]
    assert rows["HT+KD"]["parameters"] == rows["CE"]["parameters"] < rows["teacher (CE)"]["parameters"]
    # A run that never left chance is starred in the table and named in a note, with the trainable rows beside it.
    stuck = []
    for method, row in rows.items():
        for p in row["per_seed"]:
            assert p["at_chance"] == per_run[p["seed"]][models[method]]["at_chance"]
            if p["at_chance"]:
                stuck.append(f"{row['cell']} {method}")
                assert f"{100 * p['test_accuracy']:.2f}*" in table
    assert ("never left chance" in table) == bool(stuck)
    for name in stuck:
        assert name in table.split("never left chance", 1)[1]


@pytest.mark.slow
def test_rerunning_skips_finished_runs_and_resumes_an_unfinished_one(methods_sweep):
    sweep_dir, args, _ = methods_sweep
    paths = [os.path.join(sweep_dir, "digits_fitnet", f"seed{s}", "results.json") for s in (0, 1)]
    mtimes = [os.stat(p).st_mtime_ns for p in paths]
    again = run_script(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("finished, results read") == 2 and "running" not in again.stdout
    assert [os.stat(p).st_mtime_ns for p in paths] == mtimes

    # A run without results.json goes through the pipeline, which restores its finished stages.
    stage_done = os.path.join(sweep_dir, "digits_fitnet", "seed1", "checkpoints", "fitnet_stage2", "done.json")
    stage_mtime = os.stat(stage_done).st_mtime_ns
    os.remove(paths[1])
    resumed = run_script(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "digits_fitnet/seed0: finished" in resumed.stdout and "digits_fitnet/seed1: running" in resumed.stdout
    assert os.stat(paths[0]).st_mtime_ns == mtimes[0]
    assert os.path.exists(paths[1]) and os.stat(stage_done).st_mtime_ns == stage_mtime


@pytest.mark.slow
def test_a_rerun_with_other_settings_is_refused_before_training(methods_sweep):
    sweep_dir, args, _ = methods_sweep
    result = run_script(*args, "--kd_epochs=2")
    assert result.returncode == 2
    assert "kd_epochs" in result.stderr and "running" not in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("experiment,cells", [
    ("depth", {"depth5", "depth7", "depth9", "depth11"}),
    ("hint_location", {"early", "middle", "late", "early+middle", "middle+late", "early+late"}),
])
def test_the_digits_variants_of_depth_and_hint_location_run_end_to_end(tmp_path, experiment, cells):
    """The CI-sized variants: one seed, one epoch per stage; every cell trains and lands in the table and plot."""
    sweep_dir = str(tmp_path / experiment)
    result = run_script(f"--experiment={experiment}", f"--sweep_dir={sweep_dir}", "--seeds=0", *TINY, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(sweep_dir, f"{experiment}.json")) as f:
        summary = json.load(f)
    assert {r["cell"] for r in summary["rows"] if r["method"] != "teacher (CE)"} == cells
    for row in summary["rows"]:
        assert 0.0 <= row["test_accuracy"]["mean"] <= 1.0 and row["test_accuracy"]["n"] == 1
    with open(os.path.join(sweep_dir, f"{experiment}.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_table_stars_runs_that_never_left_chance_and_names_the_trainable_ones():
    def row(method, model, accs, chance):
        return {"cell": "s", "x": "s", "method": method, "model": model, "hint_taps": [],
                "test_accuracy": experiments.mean_std(accs), "parameters": 10, "multiplications": 10,
                "per_seed": [{"seed": k, "test_accuracy": a, "at_chance": c} for k, (a, c) in
                             enumerate(zip(accs, chance))]}
    summary = {"experiment": "methods", "student": "s", "dataset": "d", "teacher": "t", "depth_budget": "30m",
               "seeds": [0, 1], "teacher_sharing": "sweep", "teacher_runs": ["s/seed0"], "cells": [],
               "epochs": {"teacher_epochs": 1}, "command": "c",
               "rows": [row("CE", "baseline_ce", [0.10, 0.85], [True, False]),
                        row("CE (Glorot init)", "baseline_ce_glorot", [0.86, 0.87], [False, False]),
                        row("teacher (CE)", "teacher", [0.9, 0.9], [False, False])]}
    table = experiments.markdown(summary)
    assert "| 10.00*, 85.00 |" in table and "| 86.00, 87.00 |" in table
    note = table.split("never left chance", 1)[1].splitlines()[0]
    assert "s CE." in note and "Trainable in every seed: s CE (Glorot init)." in note
    summary["rows"] = summary["rows"][1:]
    assert "never left chance" not in experiments.markdown(summary)
