"""The paper's trade-off table: accuracy, size, multiplications and measured speed of the teacher and the FitNets."""


import numpy as np
import tensorflow as tf

from fitnets_tf.harness import tables
from fitnets_tf.harness.timing import Candidate, time_interleaved
from fitnets_tf.io_utils import atomic_save, atomic_write_json, atomic_write_text
from fitnets_tf.models.counting import count_multiplications, count_parameters


def measure_latency(models, input_shape, batch_sizes=(1, 128), runs=30, warmup=3, seed=0):
    """Median seconds per IMAGE of each model's inference, per batch size, measured interleaved
    (`timing.time_interleaved`: one call of each model per round, so that machine noise hits them alike); each
    forward is a traced `tf.function` of `model(x, training=False)` and the result is fetched to the host.

    Returns:
        {model name: {batch size: seconds per image}}.
    """
    rng = np.random.default_rng(seed)
    timings = {name: {} for name in models}
    for batch in batch_sizes:
        x = tf.constant(rng.random((batch, *input_shape)).astype("float32"))
        candidates = []
        for name, model in models.items():
            forward = tf.function(lambda t, m=model: m(t, training=False))
            candidates.append(Candidate(name, lambda f=forward: f(x).numpy(), batch))
        for name, result in time_interleaved(candidates, rounds=runs, warmup=warmup).items():
            if result["error"]:
                raise RuntimeError(f"timing model '{name}' failed: {result['error']}")
            timings[name][batch] = result["seconds_per_call"] / batch
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
    cells = []
    for r in rows:
        acc = "-" if r["test_accuracy"] is None else f"{100 * r['test_accuracy']:.2f}"
        err = "-" if r["test_error"] is None else f"{100 * r['test_error']:.2f}"
        ratios = [r.get(k) for k in ("speedup_vs_teacher", "compression_vs_teacher", "multiplication_ratio")]
        cells.append([r["model"], r["method"], r["architecture"], acc, err, _fmt_count(r["parameters"]),
                      _fmt_count(r["multiplications"]),
                      *[f"{r['latency_ms_per_image'][str(b)]:.4f}" for b in batch_sizes],
                      *["-" if v is None else f"{v:.2f}x" for v in ratios]])
    return tables.markdown_table(header, cells)


# A model whose accuracy is below CHANCE_FACTOR / classes (15% for 10 classes) has not left the plateau of its
# initialisation: the "never left chance" of the reports, and where a sweep's learning curve leaves chance.
CHANCE_FACTOR = 1.5


def at_chance(accuracy, num_classes):
    return accuracy < CHANCE_FACTOR / num_classes


def add_training_facts(rows, stage_results, stage_of_model, num_classes):
    """Adds to each row how its last stage ended and whether the model ever left chance level.

    `stage_results`: {stage name: train_stage result}; `stage_of_model`: {model name: the stage that finished it}.
    A row gains `epochs` (epochs its last stage ran), `best_epoch` (the 1-based epoch whose weights were kept under
    early stopping, else None: the last epoch) and `at_chance` (test accuracy below 1.5 / num_classes, i.e. 15%
    for 10 classes: the model did not leave the plateau of its initialisation).
    """
    for row in rows:
        result = stage_results.get(stage_of_model.get(row["model"]), {})
        row["epochs"] = result.get("epochs")
        row["best_epoch"] = result.get("best_epoch")
        row["at_chance"] = row["test_accuracy"] is not None and at_chance(row["test_accuracy"], num_classes)
    return rows


def chance_notes(rows, num_classes):
    """One sentence per model that stayed at chance, and what to compare it with instead."""
    trainable = [r["model"] for r in rows if not r.get("at_chance") and r["model"] != "teacher"]
    notes = []
    for r in rows:
        if r.get("at_chance"):
            notes.append(
                f"**{r['model']} never left chance** ({100 * r['test_accuracy']:.2f}% test accuracy, chance "
                f"{100 / num_classes:.0f}%, after {r.get('epochs')} epochs): its method did not get it off the "
                "plateau of its initialisation in this budget; it says nothing about how well the method trains "
                "this student. Compare with " + (", ".join(trainable) if trainable else "a trainable reference "
                "(e.g. ce_glorot in `baselines`)") + ".")
    return notes


def plot_learning_curves(histories, offsets, path):
    """Accuracy against epoch for every stage that reports one (validation accuracy where there is a validation
    split, else training accuracy), the paper's learning curves. `offsets`: {stage: epochs before it in the
    same model's budget} (stage 2 of the FitNet starts after stage 1). Writes a PNG; returns False without curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for stage, history in histories.items():
        values = history.get("val_accuracy") or history.get("accuracy")
        if values:
            kind = "validation" if history.get("val_accuracy") else "train"
            curves[stage] = (kind, values)
    if not curves:
        return False
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for stage, (kind, values) in curves.items():
        start = offsets.get(stage, 0)
        axis.plot(range(start + 1, start + len(values) + 1), [100 * v for v in values], marker=".",
                  label=f"{stage} ({kind})")
    axis.set_xlabel("epoch of the model's budget (FitNet: stage-1 epochs, then stage 2)")
    axis.set_ylabel("accuracy (%)")
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    atomic_save(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    plt.close(figure)
    return True


def litert_table(rows):
    """The LiteRT artifacts in the trade-off layout; ratios against the teacher's file of the same format."""
    header = ["model", "format", "test acc (%)", "vs Keras (points)", "agrees with Keras (%)", "size (KB)",
              "ms/image @bs1, 1 thread", "speed-up", "compression", "mult ratio", "speed-up / mult ratio"]
    cells = []
    for r in rows:
        ratios = [r.get(k) for k in ("speedup_vs_teacher", "compression_vs_teacher", "multiplication_ratio")]
        fraction = r.get("speedup_fraction_of_multiplication_ratio")
        scheme = " (int16 activations)" if (r.get("int8_check") or {}).get("activations") == "int16" else ""
        cells.append([r["model"], r["format"] + scheme, f"{100 * r['test_accuracy']:.2f}",
                      f"{r['accuracy_change_vs_keras_points']:+.2f}", f"{100 * r['agreement_with_keras']:.2f}",
                      f"{r['size_bytes'] / 1024:.1f}", f"{r['latency_ms_per_image']:.4f}",
                      *["-" if v is None else f"{v:.2f}x" for v in ratios],
                      "-" if fraction is None else f"{fraction:.2f}"])
    return tables.markdown_table(header, cells)


def int8_notes(rows):
    """The lines results.md says of int8 files checked against their float32 files: a fall-back that was used, or
    a file that stayed more than the tolerance below its float32 file."""
    notes = []
    for r in rows:
        check = r.get("int8_check")
        if not check or (check["within_tolerance"] and len(check["tried"]) == 1):
            continue
        tried = "; ".join(f"{t['activations']} activations, {t['calibration_images']} calibration images: "
                          f"{100 * t['validation_accuracy']:.2f}%" for t in check["tried"])
        kept = (f"{check['activations']} activations, {check['calibration_images']} calibration images "
                f"({100 * check['validation_accuracy']:.2f}% against {100 * check['float32_validation_accuracy']:.2f}%"
                f" for float32 on the {check['checked_on']} images)")
        if check["within_tolerance"]:
            notes.append(f"- {r['model']} int8: the full-integer file lost more than 1 point on the "
                         f"{check['checked_on']} images; written with {kept}. Tried: {tried}.")
        else:
            notes.append(f"- **{r['model']} int8 is {check['loss_points']:.2f} points below its float32 file** on "
                         f"the {check['checked_on']} images after every fall-back; written with {kept}. Tried: "
                         f"{tried}. Ship the float32 file where that loss matters.")
    return [*notes, ""] if notes else []


def write_report(path_json, path_md, rows, run_info, batch_sizes):
    """Writes results.json (everything) and results.md (the table plus how it was made), atomically."""
    atomic_write_json(path_json, {"models": rows, **run_info})
    notes = chance_notes(rows, run_info.get("num_classes") or 10)
    epochs = ", ".join(f"{r['model']} {r['epochs']}" + (f" (best {r['best_epoch']})" if r.get("best_epoch") else "")
                       for r in rows if r.get("epochs") is not None)
    text = [f"# FitNets run: {run_info.get('experiment', '')}", "",
            markdown_table(rows, batch_sizes), "",
            *([f"Epochs of each model's last stage: {epochs}. Under early stopping the best validation epoch's "
               "weights are kept (best N)."] if epochs else []), "",
            *[f"- {n}" for n in notes], *([""] if notes else []),
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
                 f"class) over {litert.get('test_images')} test images (all of the split, or every k-th of a large "
                 "one), raw uint8 images in. Speed-up, compression (file size) and multiplication ratio against the "
                 "teacher's file of the same format; int8: full-integer (or a fall-back, said below), "
                 f"calibrated on {litert['calibration_images']} training images. Files without a path were made "
                 "only for this comparison.", "", *int8_notes(litert["artifacts"])]
    atomic_write_text(path_md, "\n".join(text))
