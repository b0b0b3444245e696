"""`run_benchmark`: every measurement of the benchmark, in one process, as one JSON-ready dict."""

import dataclasses
import os
import platform
import tempfile
import time

import keras
import tensorflow as tf

from benchmarking import roofline
from benchmarking.config import BenchmarkConfig
from benchmarking.models import build_models
from benchmarking.pipeline import build_pipeline, measure_pipeline
from benchmarking.serving import inference_rows, litert_targets
from benchmarking.targets import caching_speedups, compare_xla, compute_targets
from benchmarking.timing import step_candidates
from fitnets_tf.harness.timing import time_interleaved
from fitnets_tf.models.counting import count_multiplications, count_parameters
from fitnets_tf.models.zoo import get_spec
from fitnets_tf.precision import compute_policy


def environment():
    """Versions and machine facts that the timings depend on."""
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "devices": [d.device_type for d in tf.config.list_physical_devices()],
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def run_benchmark(config: BenchmarkConfig, log=print):
    """Runs every measurement of the benchmark (the package's docstring): the input pipeline alone, the step
    candidates interleaved with the matmuls of this CPU's peak (`roofline`), then the serving latency; returns the
    results as a JSON-ready dict.

    The Keras policy is set to `config.mixed_precision` for the run and restored afterwards.
    """
    config.validate()
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(compute_policy(config.mixed_precision))
    start = time.perf_counter()
    env = environment()
    try:
        keras.utils.set_random_seed(config.seed)
        teacher_spec = get_spec(config.teacher)
        dataset, pipeline_info = build_pipeline(config, teacher_spec.input_shape, teacher_spec.num_classes)
        log(f"[benchmark] input pipeline alone ({pipeline_info['data']} data, {pipeline_info['examples']} "
            f"examples): first epoch, then {config.rounds} samples of {config.pipeline_batches} batches")
        pipeline_result, (x, y) = measure_pipeline(dataset, pipeline_info["examples"], config.batch_size,
                                                   config.pipeline_batches, config.rounds, max(1, config.warmup))
        pipeline_result.update(pipeline_info)
        log(f"[benchmark] building {config.teacher} (teacher) and {config.student} (student), "
            f"batch {config.batch_size}, policy {config.mixed_precision}")
        models = build_models(config, x, y)
        candidates = step_candidates(models, x, y, config.xla_settings())
        log(f"[benchmark] timing {len(candidates)} step candidates and this CPU's peak ({roofline.MATMUL_SIZE}^2 "
            f"matmuls): first calls (tracing, XLA compiles), {config.warmup} warm-up call(s), then {config.rounds} "
            "interleaved rounds")
        results = time_interleaved(candidates + roofline.peak_candidates(), config.rounds, config.warmup)
        peaks = roofline.peaks_from(results)
        results["input_pipeline"] = pipeline_result
        steps_s = time.perf_counter() - start
        work = roofline.benchmark_work(models, keras.mixed_precision.global_policy().compute_dtype)
        stage2 = next(name for name in results if name.startswith("kd_auto/"))
        names = ", ".join(("teacher",) + tuple(config.inference_students))
        log(f"[benchmark] serving latency of the SavedModels ({names})")
        if config.workdir:
            rows = inference_rows(config, config.workdir)
        else:
            with tempfile.TemporaryDirectory(prefix="fitnets_benchmark_") as workdir:
                rows = inference_rows(config, workdir)
        env["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        return {
            "config": {**dataclasses.asdict(config), "inference_students": list(config.inference_students),
                       "inference_batch_sizes": list(config.inference_batch_sizes)},
            "environment": env,
            "models": {
                "teacher": {"architecture": config.teacher, "parameters": count_parameters(models.teacher),
                            "multiplications": count_multiplications(models.teacher)},
                "student": {"architecture": config.student, "parameters": count_parameters(models.student),
                            "multiplications": count_multiplications(models.student)},
                "hint_pair": {"guided": models.hint_pair.guided, "hint": models.hint_pair.hint,
                              "regressor": models.hint_pair.regressor},
            },
            "measurements": results,
            "targets": compute_targets(results, config.xla_settings()),
            "xla": compare_xla(results),
            "teacher_caching_speedup": caching_speedups(results, config.xla_settings()),
            "roofline": roofline.roofline(results, work, peaks, roofline.cpu_facts(), stage2),
            "inference": {"batch_sizes": list(config.inference_batch_sizes), "through": "SavedModel serving_default",
                          "litert": None if not config.litert else {
                              "through": "ai-edge-litert Interpreter, batch 1, 1 thread, XNNPACK (default)",
                              "rounds": config.litert_rounds, "calls_per_sample": config.litert_calls_per_sample},
                          "models": rows},
            "litert_targets": litert_targets(rows) if config.litert else None,
            "timing_s": {"steps_and_pipeline": steps_s, "total": time.perf_counter() - start},
        }
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

