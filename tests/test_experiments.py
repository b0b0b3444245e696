"""A two-seed digits "methods" sweep through scripts/experiment.py (table, JSON and plot consistent; reruns skip
finished runs), and the CI-sized depth and hint_location sweeps. The sweep modules' own tests are in
tests/harness/sweeps/."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "experiment.py")
# XLA off: at one epoch a stage, compiling the student's step costs more than it saves (the depth sweep took 142 s
# with --jit_compile=auto, 57 s without, on 2 CPU cores); XLA itself is tested in test_xla.py.
TINY = ["--teacher_epochs=1", "--hint_epochs=1", "--kd_epochs=1", "--baseline_epochs=1", "--latency_runs=1",
        "--verbose=0", "--jit_compile=false", "--noexport"]  # the export and LiteRT are tested in test_run_script


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


def _run_json(sweep_dir, seed):
    with open(os.path.join(sweep_dir, "digits_fitnet", f"seed{seed}", "results.json")) as f:
        return json.load(f)


def _run_results(sweep_dir, seed):
    return {r["model"]: r for r in _run_json(sweep_dir, seed)["models"]}


@pytest.mark.slow
def test_methods_sweep_writes_a_consistent_table_json_and_plot(methods_sweep):
    sweep_dir, _, result = methods_sweep
    for name in ("methods.md", "methods.json", "methods.png", "methods_curves.png", "sweep.json", "flags.cfg"):
        assert os.path.exists(os.path.join(sweep_dir, name)), name
    for name in ("methods.png", "methods_curves.png"):
        with open(os.path.join(sweep_dir, name), "rb") as f:
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
    # The learning curves are each run's validation accuracies, the FitNet's after its hint epoch.
    histories = {seed: _run_json(sweep_dir, seed)["histories"] for seed in (0, 1)}
    curves = summary["curves"]["digits_fitnet"]
    assert set(curves) == {"CE", "KD", "HT+KD"}
    assert curves["HT+KD"]["offset"] == 1
    for method, stage in (("CE", "baseline_ce"), ("KD", "baseline_kd"), ("HT+KD", "fitnet_stage2")):
        assert curves[method]["per_seed"] == {str(s): histories[s][stage]["val_accuracy"] for s in (0, 1)}
    assert "left chance at epoch" in table
    assert "methods_curves.png" in result.stdout
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
    """The CI-sized variants: one seed, one epoch per stage; every cell trains and lands in the table and plot.
    Hints + KD only (the baselines' rows are the methods sweep's test): the cells are the point here."""
    sweep_dir = str(tmp_path / experiment)
    result = run_script(f"--experiment={experiment}", f"--sweep_dir={sweep_dir}", "--seeds=0", *TINY, "--baselines=",
                        timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(sweep_dir, f"{experiment}.json")) as f:
        summary = json.load(f)
    assert {r["cell"] for r in summary["rows"] if r["method"] != "teacher (CE)"} == cells
    assert {r["method"] for r in summary["rows"]} == {"teacher (CE)", "HT+KD"}
    for row in summary["rows"]:
        assert 0.0 <= row["test_accuracy"]["mean"] <= 1.0 and row["test_accuracy"]["n"] == 1
    with open(os.path.join(sweep_dir, f"{experiment}.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
