"""The table of a finished sweep: its rows as data (the summary in <experiment>.json) and as markdown."""

import dataclasses

from fitnets_tf.harness.sweeps.curves import left_chance_epoch, model_curve, sweep_curves
from fitnets_tf.harness.sweeps.statistics import format_mean_std, mean_std
from fitnets_tf.harness.tables import markdown_table

# results.json model name -> method label, in table order.
METHODS = {"baseline_ce": "CE", "baseline_kd": "KD", "baseline_ce_glorot": "CE (Glorot init)",
           "baseline_kd_glorot": "KD (Glorot init)", "baseline_one_stage": "CE + beta HT (one stage)",
           "fitnet": "HT+KD"}
TEACHER_METHOD = "teacher (CE)"


def _row(cell_name, x, method, model, run_results, cell=None):
    """One table row: the model `model` of each run in `run_results` ({seed: results.json}), aggregated."""
    per_seed, first = [], None
    for seed, result in run_results.items():
        row = next((r for r in result["models"] if r["model"] == model), None)
        if row is None:
            continue
        first = first or row
        entry = {"seed": seed, "test_accuracy": row["test_accuracy"], "run": f"{cell_name}/seed{seed}",
                 "at_chance": bool(row.get("at_chance")), "best_epoch": row.get("best_epoch")}
        curve = model_curve(result.get("histories", {}), model)
        if curve is not None:  # a given teacher was not trained by the run: no curve, no epoch it left chance
            entry["left_chance_epoch"] = left_chance_epoch(curve, result.get("num_classes", 10))
        per_seed.append(entry)
    if first is None:
        return None
    return {
        "cell": cell_name, "x": x, "method": method, "model": model, "architecture": first["architecture"],
        "hints": [list(p) for p in cell.hints] if cell is not None and model == "fitnet" else [],
        "hint_taps": [list(t) for t in cell.taps] if cell is not None and model == "fitnet" else [],
        "test_accuracy": mean_std([p["test_accuracy"] for p in per_seed]),
        "per_seed": per_seed, "parameters": first["parameters"], "multiplications": first["multiplications"],
    }


def summarize(sweep_plan, results, command=""):
    """The table of a finished sweep from its runs' results.json ({"cell/seedK": results}).

    Rows: one per (cell, method) over the requested seeds (methods CE, KD, HT+KD as present in the cell), then the
    teacher over `sweep_plan.teacher_runs`. Each row: mean and sample std of the test accuracy, n, the raw per-seed
    values (with the best epoch and the epoch the model left chance), parameters, multiplications, and the FitNet's
    hint pairs (guided <- hint). "curves": each row's validation accuracy per epoch and seed (`curves.sweep_curves`).
    """
    rows = []
    for cell in sweep_plan.cells:
        by_seed = {s: results[f"{cell.name}/seed{s}"] for s in sweep_plan.seeds}
        for model, method in METHODS.items():
            row = _row(cell.name, cell.x, method, model, by_seed, cell)
            if row is not None:
                rows.append(row)
    teacher_results = {}
    for key in sweep_plan.teacher_runs:
        if key in results:
            teacher_results[int(key.rsplit("seed", 1)[1])] = results[key]
    first = sweep_plan.cells[0].name
    teacher_row = _row(first, None, TEACHER_METHOD, "teacher", teacher_results)
    if teacher_row is not None:
        teacher_row["cell"] = "teacher"
        rows.append(teacher_row)
    base = sweep_plan.base
    summary = {
        "experiment": sweep_plan.experiment, "dataset": base.dataset, "teacher": base.teacher,
        "student": None if sweep_plan.experiment == "depth" else base.student,
        "depth_budget": sweep_plan.depth_budget, "seeds": list(sweep_plan.seeds),
        "teacher_sharing": sweep_plan.teacher_sharing, "teacher_runs": list(sweep_plan.teacher_runs),
        "cells": [dataclasses.asdict(c) for c in sweep_plan.cells], "rows": rows, "command": command,
        "epochs": {k: getattr(base, k) for k in ("teacher_epochs", "hint_epochs", "kd_epochs", "baseline_epochs")},
        "base_config": {k: v for k, v in base.to_json().items() if k not in ("model_dir", "seed", "experiment")},
        "std": "sample standard deviation over seeds (ddof=1); null for one seed",
    }
    summary["curves"] = sweep_curves(summary, results)
    return summary


# -------------------------------------------------------------------------------------------------- markdown
def _count(n):
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def _hint_text(taps):
    return ", ".join(f"{g} <- {h}" for g, h in taps) if taps else "-"


_SHARING_TEXT = {
    "sweep": "one teacher for the whole sweep, trained by run {runs} and loaded by every other run",
    "seed": "one teacher per seed, trained by the first cell's run of that seed ({runs}) and loaded by the other "
            "cells of the seed (the digits split, test included, depends on the seed)",
    "given": "the given teacher (`teacher_path`), loaded by every run",
}


def _left_chance_text(per_seed):
    """"3, 1" (epoch per seed), "never" for a seed whose curve stayed at chance, "-" without curves."""
    if not any("left_chance_epoch" in p for p in per_seed):
        return "-"
    return ", ".join("-" if "left_chance_epoch" not in p else
                     "never" if p["left_chance_epoch"] is None else str(p["left_chance_epoch"]) for p in per_seed)


def _table_cells(r):
    per_seed = ", ".join("-" if p["test_accuracy"] is None else
                         f"{100 * p['test_accuracy']:.2f}{'*' if p.get('at_chance') else ''}" for p in r["per_seed"])
    return [
        str(r["cell"]), r["method"], format_mean_std(r["test_accuracy"]), str(r["test_accuracy"]["n"]),
        per_seed, _left_chance_text(r["per_seed"]), _count(r["parameters"]), _count(r["multiplications"]),
        _hint_text(r["hint_taps"]),
    ]


def _chance_note(rows):
    """The lines that name the rows with a run that never left chance (starred), and the trainable ones."""
    stuck = [f"{r['cell']} {r['method']}" for r in rows if any(p.get("at_chance") for p in r["per_seed"])]
    if not stuck:
        return []
    trainable = [f"{r['cell']} {r['method']}" for r in rows if r["model"] != "teacher" and r["per_seed"]
                 and not any(p.get("at_chance") for p in r["per_seed"])]
    return ["", f"\\* never left chance (test accuracy below 1.5 / classes): {', '.join(stuck)}. These runs "
            "did not get the student off the plateau of its initialisation within their budget; they say "
            "nothing about how well the method trains the student. Trainable in every seed: "
            f"{', '.join(trainable) or 'none'}."]


def markdown(summary):
    """The table of `summary` as markdown, with what was run and how the numbers were made."""
    s = summary
    title = {"methods": f"methods on student {s['student']}", "depth": f"depth at the {s['depth_budget']} budget",
             "hint_location": f"hint location, student {s['student']}"}[s["experiment"]]
    header = ["cell", "method", "test acc (%) mean ± std", "n", "per seed (%)", "left chance at epoch", "params",
              "mults", "hints: guided <- hint (paper index, tap, map)"]
    lines = [f"# Experiment: {title} ({s['dataset']}, teacher {s['teacher']})", "",
             markdown_table(header, [_table_cells(r) for r in s["rows"]])]
    epochs = ", ".join(f"{k} {v if v is not None else 'hint+kd'}" for k, v in s["epochs"].items()
                       if not (k == "teacher_epochs" and s["teacher_sharing"] == "given"))
    lines += ["", f"Seeds: {', '.join(map(str, s['seeds']))}; std is the sample standard deviation (ddof=1). "
              f"Test accuracy of each run's models on the dataset's test split. Epochs: {epochs}.",
              "HT+KD is the FitNet (stage 1 hints, then stage 2 KD); KD and CE are the same student trained from "
              "the same initial weights with KD alone and with cross-entropy alone. Multiplications counted from "
              "the conv/dense layers (see models.counting).",
              "Left chance at epoch: the first epoch of the model's budget whose validation accuracy reached 1.5 / "
              "classes (HT+KD counts its hint epochs first); the curves are in the sweep's _curves.png.",
              f"Teacher: {_SHARING_TEXT[s['teacher_sharing']].format(runs=', '.join(s['teacher_runs']))}."]
    lines += _chance_note(s["rows"])
    notes = [f"- {c['name']}: {c['note']}" for c in s["cells"] if c["note"]]
    if notes:
        lines += ["", "Hint pairs moved by the regressor's constraint (hint map no larger than guided map):", *notes]
    lines += ["", f"Command: `{s['command']}`", ""]
    return "\n".join(lines)
