"""Runs one of the paper's experiment sweeps over seeds: python scripts/experiment.py --experiment=methods
--sweep_dir=runs/methods_digits --seeds=0,1,2 [--flagfile=flags/experiments/<name>.cfg] [--flag=value ...]

Experiments (see fitnets_tf/experiments.py): "methods" (CE vs KD vs hints+KD on one student, the paper's MNIST
table), "depth" (accuracy against student depth at a fixed multiplication budget, per method), "hint_location"
(guided layer early / middle / late, and two hints at once). Every (cell, seed) is a pipeline run in
<sweep_dir>/<cell>/seed<k>; the table (<experiment>.md, <experiment>.json) and the plot (<experiment>.png) go to
--sweep_dir. Rerunning the same command skips finished runs and resumes an interrupted one.
"""

import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from fitnets_tf import experiments, pipeline  # noqa: E402
from fitnets_tf.data import DATASETS, PREPROCESSING_KINDS, DataNotFoundError  # noqa: E402
from fitnets_tf.distiller import HINT_MODES  # noqa: E402
from fitnets_tf.regressor import REGRESSOR_KINDS  # noqa: E402

FLAGS = flags.FLAGS
_DEFAULT = pipeline.RunConfig(model_dir="")

flags.DEFINE_enum("experiment", None, experiments.EXPERIMENTS, "The sweep to run: 'methods' compares CE, KD and "
                  "hints+KD on one student; 'depth' trains 5/7/9/11-layer students at one multiplication budget with "
                  "each method; 'hint_location' moves the guided layer (early, middle, late) and tries two hints.")
flags.DEFINE_string("sweep_dir", None, "Directory that receives the sweep: one sub-directory per run, the table and "
                    "the plot. Rerun the same command to resume.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run; the table reports mean +- std over them.")
flags.DEFINE_enum("teacher_sharing", "auto", experiments.TEACHER_SHARING, "How runs share the teacher: 'sweep' "
                  "trains one for the whole sweep, 'seed' one per seed, used by every cell of that seed; 'auto' is "
                  "'seed' for digits (its test split depends on the seed, so 'sweep' is refused there) and 'sweep' "
                  "otherwise. Ignored when --teacher_path is given.")
flags.DEFINE_enum("depth_budget", "30m", experiments.DEPTH_BUDGETS, "The depth study's multiplication budget: the "
                  "students are the zoo's depth{5,7,9,11}_<budget> nets.")
# data
flags.DEFINE_enum("dataset", _DEFAULT.dataset, DATASETS, "The dataset; 'digits' is embedded and needs no network.")
flags.DEFINE_string("data_dir", None, "TFDS data directory holding prepared data (see `tfds build`).")
flags.DEFINE_bool("download", False, "Let TFDS download a missing dataset (needs internet).")
flags.DEFINE_float("validation_size", _DEFAULT.validation_size,
                   "Fraction of the train split held out for validation (a value >= 1 is a count; 0 for none).")
flags.DEFINE_bool("use_extra", False, "SVHN only: add the 531K-image 'extra' split to train, as the paper did.")
flags.DEFINE_enum("preprocessing", None, PREPROCESSING_KINDS, "Input preprocessing; default is the dataset's "
                  "(GCN + ZCA for CIFAR, scaling otherwise).")
flags.DEFINE_bool("augment", True, "Augment training images (random crops and, where allowed, flips).")
flags.DEFINE_integer("crop_padding", None, "Padding of the random crops; default is the dataset's.")
flags.DEFINE_bool("flip", None, "Random horizontal flips; default is the dataset's (never for digits).")
# networks
flags.DEFINE_string("teacher", _DEFAULT.teacher, "Teacher architecture (see scripts/count.py for the names).")
flags.DEFINE_string("student", _DEFAULT.student, "The student (FitNet) of the 'methods' and 'hint_location' "
                    "experiments; the 'depth' experiment sets its own students.")
flags.DEFINE_string("teacher_path", None, "A trained teacher (.keras) that every run loads instead of training one.")
flags.DEFINE_string("initializer", None, "Override both nets' initializer: paper, glorot_uniform or he_normal.")
# hints and KD
flags.DEFINE_enum("regressor", _DEFAULT.regressor, REGRESSOR_KINDS, "The regressor of stage 1; the hint pairs are "
                  "chosen so that it can map them.")
flags.DEFINE_enum("hint_mode", _DEFAULT.hint_mode, HINT_MODES, "With two hints: one stage 1 per pair in order (the "
                  "original code), or one joint stage.")
flags.DEFINE_bool("hint_spatial_mean", False, "Hint loss reduction of the original code (mean over positions).")
flags.DEFINE_float("temperature", _DEFAULT.temperature, "KD temperature tau.")
flags.DEFINE_float("kd_lambda", _DEFAULT.kd_lambda, "Initial weight lambda of the soft targets.")
flags.DEFINE_float("kd_lambda_final", _DEFAULT.kd_lambda_final, "Final lambda of the linear decay.")
flags.DEFINE_integer("kd_lambda_decay_start", 0, "Epoch at which lambda starts to decay.")
flags.DEFINE_integer("kd_lambda_decay_end", None, "Epoch at which lambda reaches its final value "
                     "(default: the last epoch of stage 2).")
flags.DEFINE_bool("tau_squared", False, "Multiply the soft term by tau^2 (Hinton et al.; not in the paper).")
# training
flags.DEFINE_integer("teacher_epochs", _DEFAULT.teacher_epochs, "Epochs of teacher training.")
flags.DEFINE_integer("hint_epochs", _DEFAULT.hint_epochs, "Epochs of stage 1 (per pair in sequential mode).")
flags.DEFINE_integer("kd_epochs", _DEFAULT.kd_epochs, "Epochs of stage 2.")
flags.DEFINE_integer("baseline_epochs", None, "Epochs of each baseline (default hint_epochs + kd_epochs).")
flags.DEFINE_integer("patience", _DEFAULT.patience, "Early stopping: end a stage after this many epochs without "
                     "validation improvement and keep its best epoch (the paper: 100). 0 trains every epoch.")
flags.DEFINE_enum("cache_teacher_outputs", _DEFAULT.cache_teacher_outputs, ("auto", "true", "false"),
                  "Compute the teacher's logits/hints once and reuse them every epoch: auto (when the training "
                  "images are not augmented), true or false.")
flags.DEFINE_bool("deterministic", False, "TensorFlow op determinism (slower): a run that was killed and resumed "
                  "ends with the same results as an uninterrupted one.")
flags.DEFINE_integer("batch_size", _DEFAULT.batch_size, "Global batch size.")
flags.DEFINE_enum("optimizer", _DEFAULT.optimizer, pipeline.OPTIMIZERS, "Optimizer of every stage.")
flags.DEFINE_float("learning_rate", _DEFAULT.learning_rate, "Learning rate of every stage.")
flags.DEFINE_float("rmsprop_rho", _DEFAULT.rmsprop_rho, "RMSProp decay (the paper: 0.9).")
flags.DEFINE_enum("jit_compile", _DEFAULT.jit_compile, ("auto", "true", "false"), "XLA for the train steps.")
flags.DEFINE_enum("mixed_precision", _DEFAULT.mixed_precision, pipeline.MIXED_PRECISION, "Compute policy: "
                  "mixed_float16 on GPU; on CPU it is ~100x slower, use mixed_bfloat16.")
# outputs
flags.DEFINE_integer("latency_runs", _DEFAULT.latency_runs, "Timed inference runs per model in each run's report.")
flags.DEFINE_bool("export", False, "Export each run's FitNet as a SavedModel (off: a sweep rarely needs them).")
flags.DEFINE_integer("verbose", _DEFAULT.verbose, "0 quiet, 1 progress bar, 2 one line per epoch.")


def _seeds(values):
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise pipeline.ConfigError(f"--seeds: give integers, e.g. 0,1,2. Received: {','.join(values)}") from None


def base_config_from_flags():
    """The settings every run of the sweep shares (model_dir, seed, student, hints, baselines are set per run)."""
    validation = FLAGS.validation_size
    return pipeline.RunConfig(
        model_dir="", dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, download=FLAGS.download,
        validation_size=int(validation) if validation >= 1 else validation, use_extra=FLAGS.use_extra,
        preprocessing=FLAGS.preprocessing, augment=FLAGS.augment, crop_padding=FLAGS.crop_padding, flip=FLAGS.flip,
        teacher=FLAGS.teacher, student=FLAGS.student, teacher_path=FLAGS.teacher_path,
        initializer=FLAGS.initializer, regressor=FLAGS.regressor, hint_mode=FLAGS.hint_mode,
        hint_spatial_mean=FLAGS.hint_spatial_mean, temperature=FLAGS.temperature, kd_lambda=FLAGS.kd_lambda,
        kd_lambda_final=FLAGS.kd_lambda_final, kd_lambda_decay_start=FLAGS.kd_lambda_decay_start,
        kd_lambda_decay_end=FLAGS.kd_lambda_decay_end, tau_squared=FLAGS.tau_squared,
        teacher_epochs=FLAGS.teacher_epochs, hint_epochs=FLAGS.hint_epochs, kd_epochs=FLAGS.kd_epochs,
        baseline_epochs=FLAGS.baseline_epochs, patience=FLAGS.patience,
        cache_teacher_outputs=FLAGS.cache_teacher_outputs, deterministic=FLAGS.deterministic,
        batch_size=FLAGS.batch_size, optimizer=FLAGS.optimizer,
        learning_rate=FLAGS.learning_rate, rmsprop_rho=FLAGS.rmsprop_rho, jit_compile=FLAGS.jit_compile,
        mixed_precision=FLAGS.mixed_precision, latency_runs=FLAGS.latency_runs, export=FLAGS.export,
        verbose=FLAGS.verbose,
    )


def flags_file_text():
    """This script's flags as a replayable flagfile."""
    module = sys.modules[__name__]
    lines = [f"# Replay: python scripts/experiment.py --flagfile={os.path.join(FLAGS.sweep_dir, 'flags.cfg')}"]
    for flag in FLAGS.get_flags_for_module(module) or FLAGS.get_flags_for_module(sys.argv[0]):
        if flag.value is not None:
            lines.append(flag.serialize())
    return "\n".join(lines) + "\n"


def main(argv):
    from absl import logging

    import tensorflow as tf

    from fitnets_tf.io_utils import atomic_write_text

    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")
    if len(argv) > 1:
        raise pipeline.ConfigError(f"unexpected arguments {argv[1:]}: every setting is a --flag.")
    if not FLAGS.experiment:
        raise pipeline.ConfigError(f"--experiment: required, one of {', '.join(experiments.EXPERIMENTS)}.")
    if not FLAGS.sweep_dir:
        raise pipeline.ConfigError("--sweep_dir: required (the directory that receives the sweep).")
    if FLAGS.experiment == "depth" and FLAGS["student"].present:
        raise pipeline.ConfigError("--student: the depth experiment sets its students from --depth_budget; drop "
                                   "--student.")
    base = base_config_from_flags()
    sweep_plan = experiments.plan(FLAGS.experiment, base, _seeds(FLAGS.seeds), FLAGS.sweep_dir,
                                  depth_budget=FLAGS.depth_budget, teacher_sharing=FLAGS.teacher_sharing)
    print(f"[experiments] {FLAGS.experiment}: {len(sweep_plan.cells)} cell(s) x {len(sweep_plan.seeds)} seed(s), "
          f"teacher shared by {sweep_plan.teacher_sharing!r}", flush=True)
    for cell in sweep_plan.cells:
        hints = ", ".join(f"{g} <- {h}" for g, h in cell.taps)
        print(f"[experiments]   {cell.name}: student {cell.student}, hints {hints}, baselines "
              f"{','.join(cell.baselines) or '-'}{'; ' + cell.note if cell.note else ''}", flush=True)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    summary = experiments.run_sweep(
        sweep_plan, command=command, log=lambda line: print(line, flush=True),
        on_ready=lambda: atomic_write_text(os.path.join(sweep_plan.sweep_dir, "flags.cfg"), flags_file_text()))
    for row in summary["rows"]:
        print(f"[experiments] {row['cell']:<14} {row['method']:<13} test accuracy "
              f"{experiments.format_mean_std(row['test_accuracy'])}% (n={row['test_accuracy']['n']})", flush=True)
    paths = experiments.output_paths(sweep_plan.sweep_dir, FLAGS.experiment)
    print(f"[experiments] table: {paths['md']}  plot: {paths['png']}", flush=True)


def entry():
    try:
        app.run(main)
    except (pipeline.ConfigError, DataNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    entry()
