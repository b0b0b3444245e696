"""The plots of a finished sweep: test accuracy per method, depth or hint location (<experiment>.png), and the
learning curves per cell (<experiment>_curves.png)."""

from fitnets_tf.harness.sweeps.curves import mean_curve
from fitnets_tf.harness.sweeps.planning import DEPTHS
from fitnets_tf.harness.sweeps.tables import METHODS
from fitnets_tf.io_utils import atomic_save


def _pct(stats):
    """(mean, std) in percent; std 0 for one seed."""
    return 100 * stats["mean"], 0.0 if stats["std"] is None else 100 * stats["std"]


def _dots(ax, x, row):
    """One dot per seed."""
    ax.plot([x] * len(row["per_seed"]), [100 * p["test_accuracy"] for p in row["per_seed"]], "k.", ms=4, zorder=3)


def _plot_depth(ax, summary, rows):
    """Accuracy against depth, one line per method (shifted a little so that equal values stay visible)."""
    for k, method in enumerate(METHODS.values()):
        series = sorted((r for r in rows if r["method"] == method), key=lambda r: r["x"])
        if series:
            means, stds = zip(*(_pct(r["test_accuracy"]) for r in series))
            shift = 0.08 * (k - 1)
            ax.errorbar([r["x"] + shift for r in series], means, yerr=stds, marker="o", capsize=3, label=method)
            for r in series:
                _dots(ax, r["x"] + shift, r)
    ax.set_xticks(list(DEPTHS))
    ax.set_xlabel(f"student depth (layers), {summary['depth_budget']} multiplication budget")


def _plot_bars(ax, summary, rows, teacher):
    """Bars per method ("methods"), or per hint location with CE / KD reference lines ("hint_location")."""
    by_location = summary["experiment"] == "hint_location"
    bars = [r for r in rows if (r["model"] == "fitnet" if by_location else r["model"] != "teacher")]
    for i, r in enumerate(bars):
        mean, std = _pct(r["test_accuracy"])
        ax.bar(i, mean, yerr=std, capsize=4, color=f"C{i % 10}", alpha=0.8)
        _dots(ax, i, r)
    ax.set_xticks(range(len(bars)), [r["cell"] if by_location else r["method"] for r in bars])
    if by_location:
        ax.set_xlabel("guided layer location (HT+KD); two locations = two hints")
        for j, r in enumerate(x for x in rows if x["model"] in ("baseline_ce", "baseline_kd")):
            ax.axhline(_pct(r["test_accuracy"])[0], ls="--", color=f"C{(len(bars) + j) % 10}",
                       label=f"{r['method']} (cell {r['cell']})")
    values = [100 * p["test_accuracy"] for r in bars for p in r["per_seed"]]
    if values:
        low = min(values + ([100 * teacher["test_accuracy"]["mean"]] if teacher else []))
        ax.set_ylim(max(0.0, low - 5.0), 100.0)


def plot(summary, path):
    """Writes the sweep's PNG: bars per method ("methods"), accuracy against depth per method ("depth"), or bars
    per hint location with CE / KD reference lines ("hint_location"). Error bars: std over seeds; dots: seeds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    s = summary
    rows = [r for r in s["rows"] if r["test_accuracy"]["mean"] is not None]
    teacher = next((r for r in rows if r["model"] == "teacher"), None)
    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if s["experiment"] == "depth":
        _plot_depth(ax, s, rows)
    else:
        _plot_bars(ax, s, rows, teacher)
    if teacher is not None:
        ax.axhline(_pct(teacher["test_accuracy"])[0], ls=":", color="gray", label=f"teacher ({s['teacher']})")
    ax.set_ylabel("test accuracy (%)")
    student = "" if s["student"] is None else f", student {s['student']}"
    ax.set_title(f"{s['experiment']}: {s['dataset']}{student}, {len(s['seeds'])} seed(s), mean ± std")
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png"))


def plot_curves(summary, path):
    """Writes <experiment>_curves.png: one panel per cell, validation accuracy against epoch, a thick line per
    method (mean over seeds) and a thin one per seed, the teacher's test accuracy dotted. The curves are the
    summary's "curves" (`curves.sweep_curves`). Returns False (and writes nothing) without curves."""
    curves = summary.get("curves")
    if not curves:
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cells = list(curves)
    columns = min(2, len(cells))
    rows = (len(cells) + columns - 1) // columns
    fig = Figure(figsize=(6.5 * columns, 4.0 * rows), dpi=110)
    FigureCanvasAgg(fig)
    teacher = next((r for r in summary["rows"] if r["model"] == "teacher"), None)
    colors = {method: f"C{i}" for i, method in enumerate(METHODS.values())}
    for k, cell in enumerate(cells, start=1):
        ax = fig.add_subplot(rows, columns, k)
        for method, entry in curves[cell].items():
            start = entry["offset"] + 1
            for values in entry["per_seed"].values():
                ax.plot(range(start, start + len(values)), [100 * v for v in values], color=colors[method],
                        lw=0.7, alpha=0.35)
            mean = mean_curve(entry["per_seed"])
            ax.plot(range(start, start + len(mean)), [100 * v for v in mean], color=colors[method], lw=2.0,
                    label=f"{method} ({len(entry['per_seed'])} seed{'s' if len(entry['per_seed']) > 1 else ''})")
        if teacher is not None and teacher["test_accuracy"]["mean"] is not None:
            ax.axhline(100 * teacher["test_accuracy"]["mean"], ls=":", color="gray", label="teacher (test)")
        ax.set_title(f"{cell}", fontsize=10)
        ax.set_xlabel("epoch of the model's budget (HT+KD: hint epochs, then KD)")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{summary['experiment']}: {summary['dataset']}, learning curves (thin: seeds, thick: mean)",
                 fontsize=11)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png"))
    return True
