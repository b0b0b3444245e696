"""Running a planned sweep: every run through `pipeline.run` (or read when finished), then the table and plot.

Resumable: a run whose results.json exists is read, not rerun; an unfinished one resumes through the pipeline.
Before anything trains, every run already recorded in the sweep directory is compared with the planned one, so a
finished cell of a different sweep is never mixed into a table.
"""

import dataclasses
import os

from absl import logging

from fitnets_tf.errors import check
from fitnets_tf.harness import pipeline
from fitnets_tf.harness.sweeps.plots import plot, plot_curves
from fitnets_tf.harness.sweeps.tables import markdown, summarize
from fitnets_tf.harness.training import stage_is_done
from fitnets_tf.io_utils import atomic_write_json, atomic_write_text, read_json


# ---------------------------------------------------------------------------------------------- recorded runs
def _sweep_relative(path, model_dir):
    """`path` relative to the sweep directory of the run in `model_dir` (<sweep_dir>/<cell>/seed<k>)."""
    if not path or not model_dir:
        return path
    return os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.dirname(os.path.abspath(model_dir))))


def recorded_differences(run):
    """The settings in which the run already recorded in `run.config.model_dir` differs from the planned one.

    Returns None if nothing is recorded there, else a list of setting names (empty: the same run). The teacher path
    is compared relative to the sweep directory, so that a moved sweep directory still matches.
    """
    recorded = read_json(os.path.join(run.config.model_dir, "run_config.json"))
    if recorded is None:
        return None
    expected = run.config.identity()
    recorded_settings = pipeline.recorded_identity(recorded)
    diff = []
    for key, value in expected.items():
        old = recorded_settings.get(key)
        if key == "teacher_path":
            value = _sweep_relative(value, run.config.model_dir)
            old = _sweep_relative(old, recorded.get("model_dir"))
        if old != value:
            diff.append(key)
    return diff


def is_finished(run):
    return os.path.exists(os.path.join(run.config.model_dir, "results.json"))


def check_recorded_runs(sweep_plan):
    """Refuses, before anything trains, a sweep whose directories hold runs with other settings."""
    for run in sweep_plan.runs:
        diff = recorded_differences(run)
        check(not diff, "sweep_dir",
              f"{run.config.model_dir!r} holds a run with other settings (differs in: {', '.join(diff or [])}). "
              f"Rerun with the sweep's original settings (recorded in its run_config.json, and in "
              f"{sweep_plan.sweep_dir}/flags.cfg for a sweep started from the command line), or choose another "
              "`sweep_dir`.")


# ---------------------------------------------------------------------------------------------------- running
class _Pin:
    """Pins the sweep (writes sweep.json, then calls `on_ready`) once, when its directory is first accepted."""

    def __init__(self, sweep_plan, on_ready):
        self.path = os.path.join(sweep_plan.sweep_dir, "sweep.json")
        self.content = {**sweep_plan.pin(), "seeds_first_run": list(sweep_plan.seeds),
                        "cells": [dataclasses.asdict(c) for c in sweep_plan.cells]}
        self.on_ready = on_ready
        self.done = False

    def __call__(self):
        if self.done:
            return
        self.done = True
        if read_json(self.path) is None:
            atomic_write_json(self.path, self.content)
        if self.on_ready is not None:
            self.on_ready()


def teacher_text(run):
    """Where an unfinished run's teacher comes from, for the sweep's log line."""
    if not run.trains_teacher:
        return f"teacher {run.config.teacher_path}"
    if stage_is_done(os.path.join(run.config.model_dir, "checkpoints", "teacher")):
        return "its teacher is trained; the students resume"
    return "trains the teacher"


def run_sweep(sweep_plan, command="", on_ready=None, log=logging.info, strategy=None):
    """Runs (or reads) every run of `sweep_plan`, then writes the table, JSON and plot; returns the summary.

    Args:
        sweep_plan: from `planning.plan`.
        command: the command line, recorded in every run and in the table.
        on_ready: called once the sweep directory is accepted, before the first run (e.g. to write flags.cfg).
        log: receives one line per run ("finished, read" or "running"); absl's log by default.
        strategy: a `tf.distribute` strategy for every run (default: the current one).
    Returns:
        The summary written to <experiment>.json (see `tables.summarize`).
    """
    import keras

    check_recorded_runs(sweep_plan)
    ready = _Pin(sweep_plan, on_ready)
    if os.path.exists(ready.path):
        ready()
    results = {}
    total = len(sweep_plan.runs)
    for i, run in enumerate(sweep_plan.runs, start=1):
        results_path = os.path.join(run.config.model_dir, "results.json")
        if is_finished(run):
            log(f"[experiments] {i}/{total} {run.key}: finished, results read from {results_path}")
        else:
            log(f"[experiments] {i}/{total} {run.key}: running ({teacher_text(run)})")
            pipeline.run(run.config, strategy=strategy, command=f"{command}  # run {run.key}", on_ready=ready)
            keras.backend.clear_session()
        results[run.key] = read_json(results_path)
    ready()
    summary = summarize(sweep_plan, results, command)
    write_outputs(sweep_plan, summary)
    return summary


# ---------------------------------------------------------------------------------------------------- outputs
def output_paths(sweep_dir, experiment):
    """{"md", "json", "png", "curves"}: the table, the summary, the plot and the learning curves of a sweep."""
    paths = {ext: os.path.join(sweep_dir, f"{experiment}.{ext}") for ext in ("md", "json", "png")}
    paths["curves"] = os.path.join(sweep_dir, f"{experiment}_curves.png")
    return paths


def write_outputs(sweep_plan, summary):
    paths = output_paths(sweep_plan.sweep_dir, sweep_plan.experiment)
    atomic_write_json(paths["json"], summary)
    atomic_write_text(paths["md"], markdown(summary))
    plot(summary, paths["png"])
    plot_curves(summary, paths["curves"])
    return paths
