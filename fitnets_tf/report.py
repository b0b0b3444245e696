"""The paper's trade-off table: accuracy, size, multiplications and measured speed of the teacher and the FitNets."""

import time

import numpy as np
import tensorflow as tf

from fitnets_tf.io_utils import atomic_write_json, atomic_write_text
from fitnets_tf.models.counting import count_multiplications, count_parameters


def measure_latency(models, input_shape, batch_sizes=(1, 128), runs=30, warmup=3, seed=0):
    """Median seconds per IMAGE of each model's inference, per batch size, measured interleaved.

    The models are timed round-robin (one call of each per round) so that machine noise hits them alike; each
    forward is a traced `tf.function` of `model(x, training=False)` and the result is fetched to the host.

    Returns:
        {model name: {batch size: seconds per image}}.
    """
    rng = np.random.default_rng(seed)
    timings = {name: {} for name in models}
    for batch in batch_sizes:
        x = tf.constant(rng.random((batch, *input_shape)).astype("float32"))
        forwards = {name: tf.function(lambda t, m=m: m(t, training=False)) for name, m in models.items()}
        for forward in forwards.values():
            for _ in range(warmup):
                forward(x).numpy()
        samples = {name: [] for name in models}
        for _ in range(runs):
            for name, forward in forwards.items():
                start = time.perf_counter()
                forward(x).numpy()
                samples[name].append(time.perf_counter() - start)
        for name in models:
            timings[name][batch] = float(np.median(samples[name])) / batch
    return timings


def model_row(name, model, test_accuracy, latency, method=""):
    return {
        "model": name,
        "architecture": model.name,
        "method": method,
        "test_accuracy": test_accuracy,
        "test_error": None if test_accuracy is None else 1.0 - test_accuracy,
        "parameters": count_parameters(model),
        "multiplications": count_multiplications(model),
        "latency_ms_per_image": {str(b): s * 1e3 for b, s in latency.items()},
    }


def add_ratios(rows, reference="teacher", batch_key="1"):
    """Speed-up and compression of every row relative to the teacher (the paper's trade-off columns)."""
    ref = next((r for r in rows if r["model"] == reference), None)
    for row in rows:
        if ref is None:
            row["speedup_vs_teacher"] = row["compression_vs_teacher"] = row["multiplication_ratio"] = None
            continue
        row["speedup_vs_teacher"] = (
            ref["latency_ms_per_image"][batch_key] / row["latency_ms_per_image"][batch_key]
        )
        row["compression_vs_teacher"] = ref["parameters"] / row["parameters"]
        row["multiplication_ratio"] = ref["multiplications"] / row["multiplications"]
    return rows


def _fmt_count(n):
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def markdown_table(rows, batch_sizes):
    header = ["model", "method", "architecture", "test acc (%)", "test error (%)", "params", "mults",
              *[f"ms/image @bs{b}" for b in batch_sizes], "speed-up", "compression", "mult ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        acc = "-" if r["test_accuracy"] is None else f"{100 * r['test_accuracy']:.2f}"
        err = "-" if r["test_error"] is None else f"{100 * r['test_error']:.2f}"
        ratios = [r.get(k) for k in ("speedup_vs_teacher", "compression_vs_teacher", "multiplication_ratio")]
        cells = [r["model"], r["method"], r["architecture"], acc, err, _fmt_count(r["parameters"]),
                 _fmt_count(r["multiplications"]),
                 *[f"{r['latency_ms_per_image'][str(b)]:.4f}" for b in batch_sizes],
                 *["-" if v is None else f"{v:.2f}x" for v in ratios]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def litert_table(rows):
    """The LiteRT artifacts in the trade-off layout; ratios against the teacher's file of the same format."""
    header = ["model", "format", "test acc (%)", "vs Keras (points)", "agrees with Keras (%)", "size (KB)",
              "ms/image @bs1, 1 thread", "speed-up", "compression", "mult ratio", "speed-up / mult ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        ratios = [r.get(k) for k in ("speedup_vs_teacher", "compression_vs_teacher", "multiplication_ratio")]
        fraction = r.get("speedup_fraction_of_multiplication_ratio")
        cells = [r["model"], r["format"], f"{100 * r['test_accuracy']:.2f}",
                 f"{r['accuracy_change_vs_keras_points']:+.2f}", f"{100 * r['agreement_with_keras']:.2f}",
                 f"{r['size_bytes'] / 1024:.1f}", f"{r['latency_ms_per_image']:.4f}",
                 *["-" if v is None else f"{v:.2f}x" for v in ratios], "-" if fraction is None else f"{fraction:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(path_json, path_md, rows, run_info, batch_sizes):
    """Writes results.json (everything) and results.md (the table plus how it was made), atomically."""
    atomic_write_json(path_json, {"models": rows, **run_info})
    text = [f"# FitNets run: {run_info.get('experiment', '')}", "",
            markdown_table(rows, batch_sizes), "",
            f"Dataset: {run_info.get('dataset')} (test split: {run_info.get('test_examples')} images). "
            "Latency: median over interleaved runs of the Keras model's inference on this machine's CPU, "
            "per image; speed-up at batch 1. Multiplications counted from the conv/dense layers. "
            "Compression = teacher parameters / model parameters.", "",
            f"Command: `{run_info.get('command', '')}`", ""]
    litert = run_info.get("litert")
    if litert:
        text += ["## LiteRT files (litert/): measured through the runtime", "",
                 litert_table(litert["artifacts"]), "",
                 f"Runtime: {litert['runtime']}, batch {litert['batch_size']}, {litert['threads']} thread; latency: "
                 f"{litert['latency']}. Accuracy and agreement (fraction of test images given the Keras model's "
                 "class) over the whole test split, raw uint8 images in. Speed-up, compression (file size) and "
                 "multiplication ratio against the teacher's file of the same format; int8: full-integer, "
                 f"calibrated on {litert['calibration_images']} training images. Files without a path were made "
                 "only for this comparison.", ""]
    atomic_write_text(path_md, "\n".join(text))
