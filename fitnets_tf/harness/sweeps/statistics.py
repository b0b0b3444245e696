"""Per-seed aggregation of a sweep: mean and sample standard deviation, and how the tables print them."""

import math


def mean_std(values):
    """Mean and sample standard deviation (ddof=1; None for fewer than 2 values) of per-seed values.

    Returns:
        {"mean": float or None, "std": float or None, "n": int}.
    """
    values = [float(v) for v in values if v is not None]
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "n": 0}
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def format_mean_std(stats, scale=100.0, digits=2):
    """"91.23 ± 0.45" (in percent by default); "91.23" for one seed; "-" for none."""
    if stats["mean"] is None:
        return "-"
    text = f"{scale * stats['mean']:.{digits}f}"
    return text if stats["std"] is None else f"{text} ± {scale * stats['std']:.{digits}f}"
