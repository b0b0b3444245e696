"""Serving latency (the paper's speed-up column) through the exported SavedModels and LiteRT files.

The teacher and each FitNet are exported with `export_saved_model` (preprocessing "scale" inside the graph),
reloaded with `tf.saved_model.load`, and their `serving_default` signature is called with uint8 images at each batch
size, interleaved; seconds per image, and the speed-up over the teacher beside the ratio of multiplications
(`count_multiplications`). Then the same networks as LiteRT files (`fitnets_tf.harness.litert`: float32, and full
int8 calibrated on random uint8 images, which is enough for timing random weights), timed through the LiteRT
runtime (ai-edge-litert) at batch 1 on ONE thread, interleaved, each speed-up against the teacher's file of the same
format and paired per round, beside the multiplication ratio.

LiteRT targets (issue 12; pass/fail printed, never asserted by a test): FitNet 1's int8 file <= 0.6 ms per image;
FitNet 1 vs the teacher on the same runtime, float32: speed-up >= 0.75 x the multiplication ratio.
"""

import os

import numpy as np
import tensorflow as tf

from benchmarking.config import BenchmarkConfig
from benchmarking.timing import paired_ratio
from fitnets_tf.data import Preprocessor
from fitnets_tf.harness import litert
from fitnets_tf.harness.export import export_saved_model
from fitnets_tf.harness.litert_classifier import LiteRTClassifier
from fitnets_tf.harness.timing import Candidate, time_interleaved
from fitnets_tf.models import build_network
from fitnets_tf.models.counting import count_multiplications, count_parameters
from fitnets_tf.models.zoo import get_spec

LITERT_INT8_MS_LIMIT = 0.6  # FitNet 1, int8, batch 1, one thread
LITERT_SPEEDUP_FRACTION = 0.75  # FitNet 1 vs teacher, float32: speed-up / multiplication ratio
LITERT_CALIBRATION_IMAGES = 100


def saved_model_latency(models, preprocessor, batch_sizes, runs, warmup, workdir, seed=0):
    """Seconds per image of each model's exported `serving_default` signature, per batch size, interleaved.

    Args:
        models: {name: keras.Model}, all taking the same input shape.
        preprocessor: the `Preprocessor` put inside each SavedModel.
        batch_sizes: e.g. (1, 128).
        runs: timed calls per model and batch size (round-robin over the models).
        warmup: untimed calls after the first.
        workdir: the SavedModels are written to workdir/<name>.
    Returns:
        {name: {batch size: result of `time_interleaved` (seconds_per_call is per BATCH), plus
        "seconds_per_image"}}, and {name: export path}.
    """
    input_shape = next(iter(models.values())).input_shape[1:]
    servers, paths = {}, {}
    for name, model in models.items():
        paths[name] = export_saved_model(model, preprocessor, os.path.join(workdir, name))
        servers[name] = tf.saved_model.load(paths[name])
    rng = np.random.default_rng(seed)
    timings = {name: {} for name in models}
    for batch in batch_sizes:
        images = tf.constant(rng.integers(0, 256, (batch, *input_shape), dtype=np.uint8))
        candidates = []
        for name, server in servers.items():
            signature = server.signatures["serving_default"]

            def run(signature=signature):
                signature(images=images)["class_id"].numpy()

            candidates.append(Candidate(name, run, batch, info={"batch_size": batch}))
        for name, result in time_interleaved(candidates, runs, warmup).items():
            seconds = result["seconds_per_call"]
            timings[name][batch] = {**result, "seconds_per_image": None if seconds is None else seconds / batch}
    return timings, paths


def litert_latency(models, rounds, calls_per_sample, workdir, seed=0):
    """Seconds per image of each model's float32 and int8 LiteRT file (batch 1, one thread), interleaved.

    Returns:
        {(name, format): result of `time_interleaved` plus "size_bytes" and "path"}.
    """
    input_shape = next(iter(models.values())).input_shape[1:]
    rng = np.random.default_rng(seed)
    calibration = rng.integers(0, 256, (LITERT_CALIBRATION_IMAGES, *input_shape), dtype=np.uint8)
    image = rng.integers(0, 256, (1, *input_shape), dtype=np.uint8)
    candidates, paths = [], {}
    for name, model in models.items():
        for fmt in litert.FORMATS:
            path = litert.write_tflite(model, Preprocessor("scale"), os.path.join(workdir, f"{name}_{fmt}.tflite"),
                                       fmt, calibration)
            classifier = LiteRTClassifier(path, num_threads=1)
            paths[(name, fmt)] = path
            candidates.append(Candidate(f"{name}/{fmt}", lambda c=classifier: c.invoke_one(image), 1,
                                        calls_per_sample=calls_per_sample, info={"model": name, "format": fmt}))
    results = time_interleaved(candidates, rounds, 1)
    return {key: {**results[f"{key[0]}/{key[1]}"], "size_bytes": os.path.getsize(path), "path": path}
            for key, path in paths.items()}


def litert_columns(timings, name, multiplication_ratio, keep_paths):
    """The "litert" entry of an inference row: per format, latency, size, and the speed-up over the teacher's file
    of the same format, paired per round (`paired_ratio`), beside the multiplication ratio."""
    out = {}
    for fmt in litert.FORMATS:
        mine, ref = timings[(name, fmt)], timings[("teacher", fmt)]
        paired = paired_ratio({"teacher": ref, name: mine}, ["teacher"], [name])
        speedup = None if paired is None else paired["ratio"]
        seconds = mine["seconds_per_call"]
        out[fmt] = {
            "latency_ms_per_image": None if seconds is None else seconds * 1e3,
            "min_latency_ms_per_image": None if mine["min_s"] is None else mine["min_s"] * 1e3,
            "samples_s": mine["samples_s"],
            "error": mine["error"],
            "size_bytes": mine["size_bytes"],
            "speedup_vs_teacher": speedup,
            "speedup_vs_teacher_of_medians": None if paired is None else paired["ratio_of_medians"],
            "compression_vs_teacher": ref["size_bytes"] / mine["size_bytes"],
            "speedup_fraction_of_multiplication_ratio": None if speedup is None else speedup / multiplication_ratio,
            "path": mine["path"] if keep_paths else None,
        }
    return out


def litert_targets(rows):
    """The issue-12 LiteRT targets, for FitNet 1 when it was measured (else None)."""
    row = next((r for r in rows if r["model"] == "fitnet1" and r.get("litert")), None)
    if row is None:
        return None
    int8_ms = row["litert"]["int8"]["latency_ms_per_image"]
    fraction = row["litert"]["float32"]["speedup_fraction_of_multiplication_ratio"]
    return {
        "fitnet1_int8_ms_per_image": {"value": int8_ms, "limit": LITERT_INT8_MS_LIMIT,
                                      "passed": None if int8_ms is None else int8_ms <= LITERT_INT8_MS_LIMIT},
        "fitnet1_float32_speedup_over_mult_ratio": {
            "value": fraction, "limit": LITERT_SPEEDUP_FRACTION,
            "passed": None if fraction is None else fraction >= LITERT_SPEEDUP_FRACTION},
    }


def inference_rows(config: BenchmarkConfig, workdir):
    """Serving latency of the teacher and of each FitNet in `config.inference_students`, with their ratios.

    `speedup_vs_teacher` is paired per round (see `paired_ratio`); `multiplication_ratio` = teacher mults / model
    mults, the speed-up the paper's counts predict.
    """
    teacher = build_network(get_spec(config.teacher), seed=config.seed)
    shape, classes = tuple(teacher.input_shape[1:]), teacher.output_shape[-1]
    models = {"teacher": teacher}
    for name in config.inference_students:
        if name in models:
            raise ValueError(f"inference_students lists {name!r} twice (or names it 'teacher').")
        models[name] = build_network(get_spec(name, input_shape=shape, num_classes=classes), seed=config.seed)
    timings, paths = saved_model_latency(models, Preprocessor("scale"), config.inference_batch_sizes,
                                         config.latency_runs, 1, workdir, config.seed)
    lite = litert_latency(models, config.litert_rounds, config.litert_calls_per_sample, workdir,
                          config.seed) if config.litert else None
    rows = []
    ref = timings["teacher"]
    teacher_mults = count_multiplications(teacher)
    teacher_params = count_parameters(teacher)
    for name, model in models.items():
        mults, params = count_multiplications(model), count_parameters(model)
        per_image = {str(b): timings[name][b]["seconds_per_image"] for b in config.inference_batch_sizes}
        speedup, speedup_of_medians = {}, {}
        for b in config.inference_batch_sizes:
            # Paired per round, as the training targets: t(teacher) / t(model) of the same round, median.
            paired = paired_ratio({"teacher": ref[b], name: timings[name][b]}, ["teacher"], [name])
            speedup[str(b)] = None if paired is None else paired["ratio"]
            speedup_of_medians[str(b)] = None if paired is None else paired["ratio_of_medians"]
        rows.append({
            "model": name,
            "architecture": model.name,
            "parameters": params,
            "multiplications": mults,
            "latency_ms_per_image": {b: None if s is None else s * 1e3 for b, s in per_image.items()},
            "images_per_second": {str(b): timings[name][b]["images_per_second"] for b in config.inference_batch_sizes},
            "samples_s_per_batch": {str(b): timings[name][b]["samples_s"] for b in config.inference_batch_sizes},
            "errors": {str(b): timings[name][b]["error"] for b in config.inference_batch_sizes
                       if timings[name][b]["error"]},
            "speedup_vs_teacher": speedup,
            "speedup_vs_teacher_of_medians": speedup_of_medians,
            "multiplication_ratio": teacher_mults / mults,
            "compression_vs_teacher": teacher_params / params,
            "saved_model": paths[name] if config.workdir else None,
            "litert": None if lite is None else litert_columns(lite, name, teacher_mults / mults,
                                                               bool(config.workdir)),
        })
    return rows

