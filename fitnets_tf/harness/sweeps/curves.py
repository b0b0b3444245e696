"""The learning curves of a sweep: validation accuracy against epoch per method, over seeds (plotted by
`plots.plot_curves` as <experiment>_curves.png).

A run's results.json keeps every stage's history. A model's curve is the validation accuracy (training accuracy
without a validation split) of the stages that trained it, placed on the epochs of the model's budget: the FitNet's
stage 2 starts after its stage-1 (hint) epochs, which report no accuracy. From a curve the table takes the epoch a
model left chance: the first epoch whose accuracy reaches 1.5 / classes (`report.at_chance`).
"""

from fitnets_tf.harness.report import at_chance


def model_curve(histories, model):
    """(offset, values) of `model` in one run: its accuracy per epoch, after `offset` epochs without one.

    Args:
        histories: results.json's "histories" ({stage: {metric: [per epoch]}}).
        model: "teacher", "fitnet" or "baseline_*".
    Returns:
        (offset, [accuracy per epoch]), or None when the run has no such stage or it reports no accuracy.
    """
    if model == "fitnet":
        offset = sum(len(h.get("loss", ())) for s, h in histories.items() if s.startswith("fitnet_stage1"))
        history = histories.get("fitnet_stage2")
    else:
        offset, history = 0, histories.get(model)
    if not history:
        return None
    values = history.get("val_accuracy") or history.get("accuracy")
    return (offset, [float(v) for v in values]) if values else None


def left_chance_epoch(curve, num_classes):
    """The first epoch of the model's budget (1-based) whose accuracy reaches 1.5 / num_classes; None if none."""
    if curve is None:
        return None
    offset, values = curve
    return next((offset + i for i, v in enumerate(values, start=1) if not at_chance(v, num_classes)), None)


def sweep_curves(summary, results):
    """{cell: {method label: {"offset", "per_seed": {seed: [accuracy per epoch]}}}} of a sweep's rows.

    Args:
        summary: from `tables.summarize` (its rows name each run as "cell/seedK").
        results: {"cell/seedK": results.json}.
    """
    curves = {}
    for row in summary["rows"]:
        if row["model"] == "teacher":
            continue
        for p in row["per_seed"]:
            result = results.get(p["run"])
            curve = None if result is None else model_curve(result.get("histories", {}), row["model"])
            if curve is None:
                continue
            entry = curves.setdefault(row["cell"], {}).setdefault(row["method"], {"offset": curve[0], "per_seed": {}})
            entry["per_seed"][str(p["seed"])] = curve[1]
    return curves


def mean_curve(per_seed):
    """The mean over seeds of each epoch that every seed reached (runs of one budget have equal lengths)."""
    series = list(per_seed.values())
    length = min(len(s) for s in series)
    return [sum(s[i] for s in series) / len(series) for i in range(length)]
