"""Benchmarks the FitNets training steps, the input pipeline and the exported models' latency, in one process.

    python scripts/benchmark.py --output=runs/benchmark.json

Measures (the package `scripts/benchmarking/` says how) images/s of the student's CE step, the teacher's forward
pass, stage 1 (hints), stage 2 (KD), Keras's own `keras.distillation.Distiller` on the same pair, the references
of the stage-1 target (truncated student step, truncated teacher forward), each with XLA off and on, and the
input pipeline alone; then the per-image latency of the teacher and the FitNets through their exported
SavedModels, and through float32 and int8 LiteRT files (batch 1, one thread), with the LiteRT targets; and the
roofline of every step: its multiplications (3x the trained part's forward, 1x the frozen teacher's), the GMAC/s it
achieves and its share of this CPU's float32 / bfloat16 peak, measured in the same run by a 2048x2048 matmul, with
stage 2's floor and the issue's targets (informational). Prints tables and writes every measurement, the ratios,
the targets' pass/fail, the XLA comparison and the roofline to --output (JSON).

Default: FitNet 1 (student, 30.2M mults) taught by the paper's CIFAR-10 maxout teacher (628.2M mults), batches of
128 synthetic 32x32x3 images, 5 rounds, XLA off and on. Measured here (2 cores, shared with other training runs):
3.1 minutes wall at a load average of 3.6, 4 to 4.5 minutes at ~5; 3.2 minutes of CPU time either way (XLA
compiling alone takes 20-45 s). With the serving comparison's FitNet 4 and LiteRT files, `--xla=off` took 5 min at a
load average of 7.6. `--tiny` (digits-sized nets, 3 rounds): ~20 s; the tests run it. Timings are
noisy on a shared machine: only ratios measured within one run mean anything, and the output warns when the load
average exceeded the core count.

    python scripts/benchmark.py --real_size --output=runs/benchmark_real_size.json

The real-size section instead (`scripts/benchmarking/real_size.py`): a folder of 224x224 JPEGs (512 Fashion-MNIST
images written first, or --real_size_folder) through the streamed training pipeline (decode, resize, random resized
crop, flip, batch 32), images/s alone against the stage-2 step of the MobileNetV2 1.0 teacher + 7-conv student pair
(scripts/make_backbone_pair.py), with the student's CE step, the teacher's forward pass and keras.distillation on
the same batch, each at the run's settings (--real_size_jit_compile, --real_size_teacher_jit_compile; "auto" as
scripts/run.py), beside the XLA levers; targets pipeline_vs_stage2 >= 1, vs_keras_distillation >= 1,
stage2_overhead <= 1.10; and the same roofline of those steps. Run it with nothing else on the machine.
"""

import dataclasses
import os
import shlex
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from benchmarking import real_size  # noqa: E402  (scripts/benchmarking/)
from benchmarking.config import DATA_SOURCES, XLA_CHOICES, BenchmarkConfig  # noqa: E402
from benchmarking.report import format_report  # noqa: E402
from benchmarking.run import run_benchmark  # noqa: E402
from fitnets_tf.data import PREPROCESSING_KINDS  # noqa: E402
from fitnets_tf.optimizers import OPTIMIZERS  # noqa: E402
from fitnets_tf.precision import MIXED_PRECISION, TEACHER_PRECISIONS  # noqa: E402

FLAGS = flags.FLAGS
_DEFAULT = BenchmarkConfig()
_REAL_SIZE = real_size.RealSizeConfig()
# The flags of the real-size mode besides its own (--real_size*, --output): RealSizeConfig's fields that are flags;
# a flag not given takes RealSizeConfig's default (e.g. batch 32), not the CIFAR benchmark's.
REAL_SIZE_FLAGS = ("batch_size", "pipeline_batches", "rounds", "warmup", "calls_per_sample", "mixed_precision",
                   "teacher_precision", "optimizer", "learning_rate", "temperature", "kd_lambda", "seed", "workdir")

# What --tiny changes, for each flag not given explicitly on the command line.
TINY = {
    "teacher": "digits_teacher",
    "student": "digits_fitnet",
    "batch_size": 64,
    "rounds": 3,
    "warmup": 1,
    "calls_per_sample": 2,
    "data": "digits",
    "pipeline_batches": 4,
    "inference_students": ["digits_fitnet"],
    "inference_batch_sizes": ["1", "64"],
    "latency_runs": 3,
    "litert_rounds": 5,
}

flags.DEFINE_string("output", None, "Path of the JSON file that receives every measurement, ratio and target.")
flags.DEFINE_bool("tiny", False, "A quick run for tests: digits-sized nets (digits_teacher, digits_fitnet) on the "
                  "embedded digits, batch 64, 3 rounds; flags given explicitly still win.")
flags.DEFINE_string("teacher", _DEFAULT.teacher, "Teacher architecture (names: python scripts/count.py).")
flags.DEFINE_string("student", _DEFAULT.student, "Student (FitNet) architecture; it takes the teacher's inputs.")
flags.DEFINE_string("guided_layer", None, "Stage 1's guided layer of the student (paper index or name); default "
                    "the architecture's own.")
flags.DEFINE_string("hint_layer", None, "Stage 1's hint layer of the teacher (paper index or name); default the "
                    "architecture's own.")
flags.DEFINE_integer("batch_size", _DEFAULT.batch_size, "Images per training step and per pipeline batch.")
flags.DEFINE_integer("rounds", _DEFAULT.rounds, "Interleaved timing rounds; the median sample is reported.")
flags.DEFINE_integer("warmup", _DEFAULT.warmup, "Untimed calls of each candidate after its first (compiling) call.")
flags.DEFINE_integer("calls_per_sample", _DEFAULT.calls_per_sample, "Step calls per timed sample; raise it when "
                     "steps take a few milliseconds.")
flags.DEFINE_enum("xla", _DEFAULT.xla, list(XLA_CHOICES), "Time the steps with XLA (jit_compile) off and "
                  "on ('both'), or with one setting.")
flags.DEFINE_enum("mixed_precision", _DEFAULT.mixed_precision, list(MIXED_PRECISION),
                  "Keras compute policy. mixed_float16 is for GPUs: on this CPU it is about 100x slower per step "
                  "(no fast float16 kernels); mixed_bfloat16 runs at float32 speed.")
flags.DEFINE_enum("teacher_precision", _DEFAULT.teacher_precision, list(TEACHER_PRECISIONS),
                  "The teacher's precision in the kd_lowp and teacher_forward_lowp candidates (auto: the hardware's "
                  "native low precision, bfloat16 on CPUs with AVX512-BF16); float32 leaves them out.")
flags.DEFINE_enum("optimizer", _DEFAULT.optimizer, list(OPTIMIZERS), "Optimizer of every training step.")
flags.DEFINE_float("learning_rate", _DEFAULT.learning_rate, "Learning rate (timing does not depend on it; small "
                   "keeps the untrained nets finite).")
flags.DEFINE_float("temperature", _DEFAULT.temperature, "KD temperature tau, also of keras.distillation.")
flags.DEFINE_float("kd_lambda", _DEFAULT.kd_lambda, "Weight lambda of the soft targets in stage 2.")
flags.DEFINE_enum("data", _DEFAULT.data, list(DATA_SOURCES), "Input data: random uint8 images of the "
                  "teacher's input shape, or the embedded 8x8 digits (digits-sized nets only).")
flags.DEFINE_integer("pipeline_examples", _DEFAULT.pipeline_examples, "Synthetic examples in one epoch.")
flags.DEFINE_integer("pipeline_batches", _DEFAULT.pipeline_batches, "Batches per timed input-pipeline sample.")
flags.DEFINE_enum("preprocessing", _DEFAULT.preprocessing, list(PREPROCESSING_KINDS), "The pipeline's "
                  "preprocessing; it is cached after the first epoch, which is reported on its own.")
flags.DEFINE_integer("crop_padding", None, "Random-crop padding of the pipeline; default CIFAR's 8 for 32x32x3 "
                     "images, none otherwise.")
flags.DEFINE_bool("flip", None, "Random flips in the pipeline; default on for 32x32x3 images, off otherwise.")
flags.DEFINE_list("inference_students", list(_DEFAULT.inference_students), "FitNets whose SavedModel latency is "
                  "compared with the teacher's.")
flags.DEFINE_list("inference_batch_sizes", [str(b) for b in _DEFAULT.inference_batch_sizes],
                  "Batch sizes of the latency measurement.")
flags.DEFINE_integer("latency_runs", _DEFAULT.latency_runs, "Timed calls per model and batch size.")
flags.DEFINE_bool("litert", _DEFAULT.litert, "Also time the teacher and the FitNets as float32 and int8 LiteRT "
                  "(.tflite) files through the LiteRT runtime, batch 1 on one thread, with the LiteRT targets.")
flags.DEFINE_integer("litert_rounds", _DEFAULT.litert_rounds, "Interleaved timing rounds of the LiteRT files.")
flags.DEFINE_integer("litert_calls_per_sample", _DEFAULT.litert_calls_per_sample, "Invocations per timed LiteRT "
                     "sample (one image each).")
flags.DEFINE_integer("seed", _DEFAULT.seed, "Seed of the weights, the synthetic data and the shuffling.")
flags.DEFINE_string("workdir", None, "Directory for the exported SavedModels (default: a temporary one, removed); "
                    "with --real_size, where the generated image folder is kept (and reused).")
flags.DEFINE_bool("real_size", False, "Instead of the benchmark above, the real-size section (see "
                  "scripts/benchmarking/real_size.py): images/s of the streamed JPEG training pipeline alone against "
                  "the 224x224 stage-2 step of scripts/make_backbone_pair.py's pair (MobileNetV2 1.0 teacher, "
                  "7-conv student), with the step's parts and keras.distillation, each compiled as a run compiles it "
                  "(--real_size_jit_compile, --real_size_teacher_jit_compile). It uses "
                  f"--{', --'.join(REAL_SIZE_FLAGS)}, each defaulting to the run's setting (batch "
                  f"{_REAL_SIZE.batch_size}, {_REAL_SIZE.pipeline_batches} batches per pipeline sample, teacher in "
                  f"{_REAL_SIZE.teacher_precision}); other flags are refused.")
flags.DEFINE_string("real_size_folder", _REAL_SIZE.folder, "--real_size: a folder of images, one subfolder per "
                    "class; default: --real_size_images Fashion-MNIST images written as 224x224 JPEGs (by "
                    "scripts/make_image_folder.py) into --workdir, or a temporary directory.")
flags.DEFINE_integer("real_size_images", _REAL_SIZE.images, "--real_size without --real_size_folder: how many "
                     "images to write.")
flags.DEFINE_enum("real_size_jit_compile", _REAL_SIZE.jit_compile, list(real_size.XLA_SETTINGS),
                  "--real_size: XLA for the student's part, as scripts/run.py's --jit_compile (auto: XLA per model).")
flags.DEFINE_enum("real_size_teacher_jit_compile", _REAL_SIZE.teacher_jit_compile, list(real_size.XLA_SETTINGS),
                  "--real_size: XLA for the teacher's forward pass, as scripts/run.py's --teacher_jit_compile.")


def _value(name):
    if FLAGS.tiny and name in TINY and not FLAGS[name].present:
        return TINY[name]
    return FLAGS[name].value


def config_from_flags():
    try:
        batch_sizes = tuple(int(b) for b in _value("inference_batch_sizes"))
    except ValueError:
        raise ValueError(f"--inference_batch_sizes: expected integers. Received: {_value('inference_batch_sizes')}")
    return BenchmarkConfig(
        teacher=_value("teacher"), student=_value("student"), guided_layer=FLAGS.guided_layer,
        hint_layer=FLAGS.hint_layer, batch_size=_value("batch_size"), rounds=_value("rounds"),
        warmup=_value("warmup"), calls_per_sample=_value("calls_per_sample"), xla=FLAGS.xla,
        mixed_precision=FLAGS.mixed_precision, teacher_precision=FLAGS.teacher_precision, optimizer=FLAGS.optimizer,
        learning_rate=FLAGS.learning_rate, temperature=FLAGS.temperature, kd_lambda=FLAGS.kd_lambda,
        data=_value("data"),
        pipeline_examples=FLAGS.pipeline_examples, pipeline_batches=_value("pipeline_batches"),
        preprocessing=FLAGS.preprocessing, crop_padding=FLAGS.crop_padding, flip=FLAGS.flip,
        inference_students=tuple(_value("inference_students")), inference_batch_sizes=batch_sizes,
        latency_runs=_value("latency_runs"), litert=FLAGS.litert, litert_rounds=_value("litert_rounds"),
        litert_calls_per_sample=FLAGS.litert_calls_per_sample, seed=FLAGS.seed, workdir=FLAGS.workdir,
    )


def _module_flags():
    return FLAGS.get_flags_for_module(sys.modules[__name__]) or FLAGS.get_flags_for_module(sys.argv[0])


def real_size_config_from_flags():
    """The `RealSizeConfig` of --real_size; ValueError for a flag given that the mode does not use."""
    own = {"real_size", "real_size_folder", "real_size_images", "real_size_jit_compile",
           "real_size_teacher_jit_compile", "output"}
    unused = sorted(f.name for f in _module_flags() if f.present and f.name not in own | set(REAL_SIZE_FLAGS))
    if unused:
        raise ValueError(f"--real_size does not use --{', --'.join(unused)}; it takes --{', --'.join(REAL_SIZE_FLAGS)}"
                         ", --real_size_folder, --real_size_images and --real_size_[teacher_]jit_compile.")
    given = {name: FLAGS[name].value for name in REAL_SIZE_FLAGS if FLAGS[name].present}
    return dataclasses.replace(_REAL_SIZE, folder=FLAGS.real_size_folder, images=FLAGS.real_size_images,
                               jit_compile=FLAGS.real_size_jit_compile,
                               teacher_jit_compile=FLAGS.real_size_teacher_jit_compile, **given)


def main(argv):
    start = time.perf_counter()
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}: every setting is a --flag.")
    from absl import logging

    import tensorflow as tf

    from fitnets_tf.io_utils import atomic_write_json

    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")
    try:
        config = real_size_config_from_flags() if FLAGS.real_size else config_from_flags()
        config.validate()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    report = real_size.run_real_size(config) if FLAGS.real_size else run_benchmark(config)
    report["command"] = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    report["flags"] = {flag.name: flag.value for flag in _module_flags()}
    report["wall_time_s"] = time.perf_counter() - start
    print(format_report(report))
    if FLAGS.output:
        atomic_write_json(FLAGS.output, report)
        print(f"[benchmark] wrote {FLAGS.output} ({report['wall_time_s']:.0f} s)")


if __name__ == "__main__":
    app.run(main)
