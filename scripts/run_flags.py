"""The absl flags shared by scripts/run.py (one run) and scripts/experiment.py (a sweep of runs).

Both scripts describe pipeline runs, so the flags that map onto `pipeline.RunConfig` are defined once, here; each
script adds its own (run.py: model_dir, hints, seed, scale-out; experiment.py: sweep_dir, seeds, the experiment).
Closed sets are plain strings checked by `pipeline.validate`, which names the setting and the choices in one line.

The library names a setting by its config field (`data_dir`) and logs its progress through absl logging; this
module is where those meet the command line: `as_flags` writes each field a message names as its flag (--data_dir),
and `show_library_progress` shows the library's progress lines.
"""

import errno
import gc
import logging as std_logging
import os
import shlex
import signal
import sys

from absl import app, flags, logging

import fitnets_tf
from fitnets_tf.errors import with_setting_names
from fitnets_tf.harness import pipeline
from fitnets_tf.data import DATASETS, PREPROCESSING_KINDS, DataNotFoundError
from fitnets_tf.distiller import HINT_MODES
from fitnets_tf.precision import MIXED_PRECISION
from fitnets_tf.regressor import REGRESSOR_KINDS
from fitnets_tf.harness.training import (DamagedCheckpointError, NonFiniteLossError, Terminated,
                                         sigterm_as_interrupt)

FLAGS = flags.FLAGS
DEFAULT = pipeline.RunConfig(model_dir="")

# The RunConfig fields a flag of the same name sets directly.
_SHARED_FIELDS = (
    "dataset", "image_size", "student_path", "data_dir", "download", "train_size", "use_extra", "preprocessing",
    "augment", "crop_padding", "flip", "channels", "bad_images", "augmentation", "shuffle_buffer_mb", "input_cache",
    "memory_budget_mb", "check_teacher",
    "teacher", "student", "teacher_path", "initializer", "regressor", "hint_mode", "hint_spatial_mean",
    "temperature", "kd_lambda", "kd_lambda_final", "kd_lambda_decay_start", "kd_lambda_decay_end", "tau_squared",
    "teacher_epochs", "hint_epochs", "kd_epochs", "baseline_epochs", "patience", "teacher_patience",
    "cache_teacher_outputs",
    "deterministic", "batch_size", "optimizer", "learning_rate", "rmsprop_rho", "rmsprop_max_scaling",
    "jit_compile", "teacher_jit_compile", "teacher_precision", "mixed_precision",
    "latency_runs", "export", "verbose",
)


def define_run_flags(student_help, teacher_path_help, export_default):
    """Defines the flags of a pipeline run (data, networks, hints, KD, training, outputs)."""
    # data
    flags.DEFINE_string("dataset", DEFAULT.dataset, f"The dataset: one of {', '.join(DATASETS)} ('digits' is "
                        "embedded and needs no network); any TFDS image-classification data set by name (an 'image' "
                        "and a 'label' feature); or folder:PATH, a local folder with one subfolder of images per "
                        "class (test and validation splits drawn with --seed).")
    flags.DEFINE_integer("image_size", None, "Resize every image to image_size x image_size (bilinear); needed for "
                         "data sets whose images have no fixed size. Default: the data set's own size.")
    flags.DEFINE_string("data_dir", None, "TFDS data directory holding prepared data (see `tfds build`).")
    flags.DEFINE_bool("download", False, "Let TFDS download a missing dataset (needs internet).")
    flags.DEFINE_float("validation_size", DEFAULT.validation_size, "Fraction of the train split held out for "
                       "validation (a value >= 1 is a count; 0 for none).")
    flags.DEFINE_integer("train_size", None, "Train on the first N training images only (after the validation "
                         "images are taken from the end of the train split); default all.")
    flags.DEFINE_bool("use_extra", False, "SVHN only: add the 531K-image 'extra' split to train, as the paper did.")
    flags.DEFINE_string("preprocessing", None, f"Input preprocessing, one of {', '.join(PREPROCESSING_KINDS)}; "
                        "default is the dataset's (GCN + ZCA for CIFAR, scale to [0, 1] otherwise). A pretrained "
                        "keras.applications teacher needs its own: tf ([-1, 1]: MobileNet, MobileNetV2, ResNetV2, "
                        "Xception, Inception), caffe (BGR minus the ImageNet means: ResNet50 v1, VGG), torch "
                        "(ImageNet mean/std: DenseNet) or raw (0..255: EfficientNet, ConvNeXt, RegNet, "
                        "MobileNetV3).")
    flags.DEFINE_integer("channels", None, "Convert every image to 1 (grey) or 3 (RGB) channels, e.g. a grey "
                         "folder for an RGB backbone. Default: the data's own.")
    flags.DEFINE_string("bad_images", DEFAULT.bad_images, "A folder's image files that cannot be decoded (every "
                        "file is decoded once before training): stop (the run stops, naming them) or skip (they "
                        "are left out and counted in results.json).")
    flags.DEFINE_bool("augment", True, "Augment training images (--augmentation and, where allowed, flips); "
                      "--noaugment turns every augmentation off.")
    flags.DEFINE_string("augmentation", None, "Training augmentation: pad_crop (random windows of the image "
                        "zero-padded by --crop_padding, CIFAR style), random_resized_crop (a random box of 8-100%% "
                        "of the area and aspect 3/4-4/3, resized back: ImageNet style) or none. Default: the "
                        "dataset's (pad_crop for CIFAR, random_resized_crop with flips for a folder, none "
                        "otherwise).")
    flags.DEFINE_integer("crop_padding", None, "Padding of the pad_crop windows; default is the dataset's.")
    flags.DEFINE_bool("flip", None, "Random horizontal flips; default is the dataset's (never for digits; on for "
                      "a folder: turn it off for text, digits or anything a mirror changes).")
    flags.DEFINE_integer("shuffle_buffer_mb", DEFAULT.shuffle_buffer_mb, "Data read as a stream (a TFDS data set "
                         "with no --input_cache) is shuffled within windows of this many MB of uint8 images; data "
                         "read by index (folders, cached data, arrays) is shuffled whole each epoch.")
    flags.DEFINE_string("input_cache", DEFAULT.input_cache, "Where the decoded training images are kept between "
                        "epochs: auto (memory when they fit --memory_budget_mb, else on disk for data that must be "
                        "decoded, else none), memory, disk (<model_dir>/cache, removed when the run ends) or none "
                        "(decode every epoch).")
    flags.DEFINE_integer("memory_budget_mb", DEFAULT.memory_budget_mb, "The memory (MB) the input cache may take, "
                         "and the teacher-output cache as much again; beyond it they go to disk.")
    flags.DEFINE_bool("check_teacher", DEFAULT.check_teacher, "Measure a given teacher (--teacher_path) on up to "
                      "512 validation images before distilling, and stop when it is at chance level (wrong "
                      "preprocessing, class order or channels); --nocheck_teacher distils anyway.")
    # networks
    flags.DEFINE_string("teacher", DEFAULT.teacher, "Teacher architecture (see scripts/count.py for the names).")
    flags.DEFINE_string("student", DEFAULT.student, student_help)
    flags.DEFINE_string("teacher_path", None, teacher_path_help)
    flags.DEFINE_string("student_path", None, "An untrained student architecture saved as .keras (any Keras model: "
                        "functional, nested or subclassed with the intermediate-outputs protocol of fitnets_tf.taps) "
                        "to use instead of --student; the baselines start from the same saved weights.")
    flags.DEFINE_string("initializer", None, "Override both nets' initializer: paper, glorot_uniform or he_normal.")
    # hints
    flags.DEFINE_string("regressor", DEFAULT.regressor, f"The regressor of stage 1: {', '.join(REGRESSOR_KINDS)}.")
    flags.DEFINE_string("hint_mode", DEFAULT.hint_mode, f"{' or '.join(HINT_MODES)}: with several hint pairs, one "
                        "stage 1 per pair in order (the original code), or one joint stage.")
    flags.DEFINE_bool("hint_spatial_mean", False, "Hint loss reduction of the original code (mean over positions).")
    # KD
    flags.DEFINE_float("temperature", DEFAULT.temperature, "KD temperature tau.")
    flags.DEFINE_float("kd_lambda", DEFAULT.kd_lambda, "Initial weight lambda of the soft targets.")
    flags.DEFINE_float("kd_lambda_final", DEFAULT.kd_lambda_final, "Final lambda of the linear decay.")
    flags.DEFINE_integer("kd_lambda_decay_start", 0, "Epoch at which lambda starts to decay.")
    flags.DEFINE_integer("kd_lambda_decay_end", None, "Epoch at which lambda reaches its final value "
                         "(default: the last epoch of stage 2).")
    flags.DEFINE_bool("tau_squared", False, "Multiply the soft term by tau^2 (Hinton et al.; not in the paper).")
    # training
    flags.DEFINE_integer("teacher_epochs", DEFAULT.teacher_epochs, "Epochs of teacher training.")
    flags.DEFINE_integer("hint_epochs", DEFAULT.hint_epochs, "Epochs of stage 1 (per pair in sequential mode).")
    flags.DEFINE_integer("kd_epochs", DEFAULT.kd_epochs, "Epochs of stage 2.")
    flags.DEFINE_list("baselines", list(DEFAULT.baselines), "Baselines on the student architecture, each trained "
                      "by one method alone: ce (plain backprop), kd (KD alone), from the FitNet's initial weights; "
                      "ce_glorot, kd_glorot from Glorot-uniform weights (a reference that trains end to end).")
    flags.DEFINE_integer("baseline_epochs", None, "Epochs of each baseline (default hint_epochs + kd_epochs).")
    flags.DEFINE_integer("patience", DEFAULT.patience, "Early stopping: end a stage after this many epochs without "
                         "validation improvement and keep its best epoch (the paper: 100). 0 trains every epoch.")
    flags.DEFINE_integer("teacher_patience", None, "Early stopping of the teacher's training (default: --patience), "
                         "e.g. to train the teacher until its validation accuracy stops improving while the "
                         "students train for fixed budgets.")
    flags.DEFINE_string("cache_teacher_outputs", DEFAULT.cache_teacher_outputs, "Compute the teacher's "
                        "logits/hints once and reuse them every epoch: auto (when the training images are not "
                        "augmented), true or false.")
    flags.DEFINE_bool("deterministic", False, "TensorFlow op determinism (slower): a run that was killed and "
                      "resumed ends with the same results as an uninterrupted one.")
    flags.DEFINE_integer("batch_size", DEFAULT.batch_size, "Global batch size.")
    flags.DEFINE_string("optimizer", DEFAULT.optimizer, f"Optimizer of every stage: {', '.join(pipeline.OPTIMIZERS)}.")
    flags.DEFINE_float("learning_rate", DEFAULT.learning_rate, "Learning rate of every stage.")
    flags.DEFINE_float("rmsprop_rho", DEFAULT.rmsprop_rho, "RMSProp decay (the paper: 0.9).")
    flags.DEFINE_float("rmsprop_max_scaling", DEFAULT.rmsprop_max_scaling, "RMSProp as in the original pylearn2 "
                       "code (the default): the gradient over max(RMS, 1 / max_scaling), 1e5 in the code. 0 uses "
                       "Keras's RMSprop, whose epsilon 1e-7 inside the square root floors the RMS at 3.2e-4.")
    flags.DEFINE_string("jit_compile", DEFAULT.jit_compile, "XLA for the student's part of each train step: auto "
                        "(what scripts/benchmark.py measured faster on this kind of device, fitnets_tf/xla.py), true "
                        "or false.")
    flags.DEFINE_string("teacher_jit_compile", DEFAULT.teacher_jit_compile, "XLA for the frozen teacher's forward "
                        "pass in stages 1 and 2: auto (what the benchmark measured faster on this kind of device: "
                        "off on CPU, on on GPU), true or false. When it differs from --jit_compile the two parts "
                        "run as separately compiled functions; results.json records both (xla).")
    flags.DEFINE_string("teacher_precision", DEFAULT.teacher_precision, "Precision of the frozen teacher's "
                        "forward pass (hints and logits), cast to float32 before the losses; the student keeps "
                        "--mixed_precision: float32, bfloat16, float16, or auto (bfloat16 on CPUs with AVX512-BF16 "
                        "or AMX and on GPUs of compute capability >= 8.0, float16 on 7.x GPUs, else float32).")
    flags.DEFINE_string("mixed_precision", DEFAULT.mixed_precision, f"Compute policy, one of "
                        f"{', '.join(MIXED_PRECISION)}; auto is mixed_float16 when a GPU is visible and float32 "
                        "otherwise (on a CPU mixed_float16 is ~100x slower; mixed_bfloat16 runs there).")
    # outputs
    flags.DEFINE_integer("latency_runs", DEFAULT.latency_runs, "Timed inference runs per model for the report.")
    flags.DEFINE_bool("export", export_default, "Export the FitNet as a SavedModel into <model_dir>/export, and "
                      "the --litert_export files into <model_dir>/litert.")
    flags.DEFINE_list("litert_export", list(DEFAULT.litert_export), "LiteRT (.tflite) files for devices, written "
                      "with --export and measured through the LiteRT runtime into the report: formats (float32, "
                      "int8: full-integer, calibrated on training images) and models (fitnet, teacher, baselines, "
                      "baseline_ce, baseline_kd); every listed model in every listed format. Empty for none.")
    flags.DEFINE_integer("verbose", DEFAULT.verbose, "0 quiet, 1 progress bar, 2 one line per epoch.")


def run_config_from_flags(**fields):
    """A `RunConfig` from the shared flags; `fields` sets the rest (model_dir, seed, hints, ...)."""
    validation = FLAGS.validation_size
    shared = {name: FLAGS[name].value for name in _SHARED_FIELDS}
    shared["baselines"] = tuple(FLAGS.baselines)
    shared["litert_export"] = tuple(FLAGS.litert_export)
    return pipeline.RunConfig(
        validation_size=int(validation) if validation >= 1 and validation.is_integer() else validation, **shared, **fields)


def flags_file_text(script, directory):
    """The flags of `script` (a module) and the shared ones, as a replayable flagfile for `directory`."""
    flagfile = shlex.quote(f"--flagfile={os.path.join(directory, 'flags.cfg')}")
    lines = [f"# Replay: python scripts/{os.path.basename(sys.argv[0])} {flagfile}"]
    own = FLAGS.get_flags_for_module(script) or FLAGS.get_flags_for_module(sys.argv[0])
    for flag in [*own, *FLAGS.get_flags_for_module(sys.modules[__name__])]:
        if flag.value is not None:
            lines.append(flag.serialize())
    return "\n".join(lines) + "\n"


def empty_flagfile(argv):
    """The first `--flagfile` in `argv` that exists but holds no flag (empty, or only comments), else None.

    absl reads such a file without complaint and the run silently takes every default; the scripts refuse it."""
    for i, arg in enumerate(argv[1:], start=1):
        if arg.startswith("--flagfile="):
            path = arg[len("--flagfile="):]
        elif arg == "--flagfile" and i + 1 < len(argv):
            path = argv[i + 1]
        else:
            continue
        if not os.path.isfile(path):
            continue  # absl names a missing file itself
        with open(path) as f:
            lines = [line.strip() for line in f]
        if not any(line and not line.startswith(("#", "//")) for line in lines):
            return path
    return None


def refuse_empty_flagfile(argv, error_type):
    """Raises `error_type` (one line naming --flagfile) if a flagfile in `argv` holds no flag."""
    path = empty_flagfile(argv)
    if path is not None:
        raise error_type(f"--flagfile: {path!r} holds no flags (it is empty or only comments), so the run would "
                         "silently take every default. Put the flags in it (see flags/digits.cfg), or drop "
                         "--flagfile to run the defaults.")


INTERRUPTED = ("interrupted (Ctrl-C): the checkpoints of every finished epoch are kept{where}; rerun the same "
               "command to resume.")
DISK_FULL = ("error: the disk is full ({error}). The checkpoints of every finished epoch are kept{where} (a write "
             "cut off is never the newest one read back); free some space and rerun the same command to resume.")
TERMINATED = ("stopped (SIGTERM): the checkpoints of every finished epoch are kept{where}; rerun the same command "
              "to resume.")


def as_flags(message):
    """A library message with each setting it names (`field`) written as the flag that sets it (--field)."""
    return with_setting_names(message, lambda field: f"--{field}" if field in FLAGS else None)


def show_library_progress():
    """Shows on stderr what the library logs at INFO (a stage starting or resuming, the hint pairs, a kept
    results.json), while other libraries' INFO (TFDS, ...) stays hidden; warnings and errors show as usual.

    Call it in a script's `main` (absl sets the logging up in `app.run`)."""
    package = os.path.dirname(os.path.abspath(fitnets_tf.__file__)) + os.sep
    logging.set_verbosity(logging.INFO)
    std_logging.getLogger("fitnets_tf").setLevel(std_logging.INFO)  # the library's own loggers (automatic choices)
    logging.get_absl_handler().addFilter(
        lambda record: record.levelno >= std_logging.WARNING or os.path.abspath(record.pathname).startswith(package))


def run_entry(main, directory_flag):
    """Runs a script's `main` under absl: what the user can fix ends in one `error:` line and exit 2 (a setting,
    absent data) or 1 (a damaged checkpoint, a non-finite loss); Ctrl-C (130) and SIGTERM (143, what `docker stop`,
    Kubernetes and Slurm send) in one line saying how to resume.

    `directory_flag`: the flag naming the directory that keeps the work ("model_dir", "sweep_dir").
    """
    try:
        with sigterm_as_interrupt():
            refuse_empty_flagfile(sys.argv, pipeline.ConfigError)
            app.run(main)
    except (pipeline.ConfigError, DataNotFoundError) as error:
        code, line = 2, f"error: {as_flags(error)}"
    except (DamagedCheckpointError, NonFiniteLossError) as error:
        code, line = 1, f"error: {as_flags(error)}"
    except KeyboardInterrupt as stop:
        where = _where(directory_flag)
        code, line = (143, TERMINATED.format(where=where)) if isinstance(stop, Terminated) else (
            130, INTERRUPTED.format(where=where))
    except Exception as error:  # noqa: BLE001 (only a full disk is ours to explain; the rest is raised)
        full = disk_full(error)
        if full is None:
            raise
        code, line = 1, DISK_FULL.format(error=full, where=_where(directory_flag))
    exit_at_once(code, line)


def _where(directory_flag):
    directory = FLAGS[directory_flag].value if FLAGS.is_parsed() else None
    return f" in {directory}" if directory else ""


def disk_full(error):
    """The words of a full disk (or quota) in `error` or in the errors it was raised from, else None. Python
    reports it as OSError ENOSPC/EDQUOT; TensorFlow's file writes as an error whose message says so."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{os.strerror(error.errno)}{': ' + error.filename if error.filename else ''}"
        text = str(error)
        for words in ("No space left on device", "Disk quota exceeded"):
            if words in text:
                return words
        error = error.__cause__ or error.__context__
    return None


def exit_at_once(code, line):
    """Prints `line` and ends the process with `code` without the interpreter's teardown.

    A run stopped mid-epoch leaves tf.data threads that call into Python (`tf.numpy_function` readers); were the
    interpreter torn down under them, the process could die of a segmentation fault instead of exiting with `code`.
    So: further stop signals are ignored, the dead run's objects are collected (their iterators stop, their
    TensorBoard writers flush), the streams are flushed, and the process exits at once."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    gc.collect()
    print(line, file=sys.stderr)
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
