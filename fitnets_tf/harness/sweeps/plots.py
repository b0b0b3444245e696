"""The plot of a finished sweep (<experiment>.png): test accuracy per method, depth or hint location."""

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
