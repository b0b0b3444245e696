"""Runs a FitNets experiment end to end: python scripts/run.py --flagfile=flags/digits.cfg [--flag=value ...]

Trains (or loads) the teacher, runs stage 1 (hints) and stage 2 (KD) on the FitNet, the chosen baselines, then
writes results.json / results.md, TensorBoard logs and the exported SavedModel into --model_dir. Rerunning the same
command resumes: finished steps are restored, an interrupted stage continues from its last epoch.
"""

import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from fitnets_tf import pipeline  # noqa: E402
from fitnets_tf.data import DATASETS, PREPROCESSING_KINDS, DataNotFoundError  # noqa: E402
from fitnets_tf.distiller import HINT_MODES  # noqa: E402
from fitnets_tf.regressor import REGRESSOR_KINDS  # noqa: E402

FLAGS = flags.FLAGS
_DEFAULT = pipeline.RunConfig(model_dir="")

flags.DEFINE_string("model_dir", None, "Directory that receives everything the run produces; rerun to resume.")
flags.DEFINE_string("experiment", _DEFAULT.experiment, "A name for the run, shown in the report.")
flags.DEFINE_bool("overwrite", False, "If model_dir holds a different run, move it aside and start anew.")
# data
flags.DEFINE_string("dataset", _DEFAULT.dataset, f"The dataset, one of {', '.join(DATASETS)}; 'digits' is embedded and needs no network.")
flags.DEFINE_string("data_dir", None, "TFDS data directory holding prepared data (see `tfds build`).")
flags.DEFINE_bool("download", False, "Let TFDS download a missing dataset (needs internet).")
flags.DEFINE_float("validation_size", _DEFAULT.validation_size,
                   "Fraction of the train split held out for validation (a value >= 1 is a count).")
flags.DEFINE_bool("use_extra", False, "SVHN only: add the 531K-image 'extra' split to train, as the paper did.")
flags.DEFINE_string("preprocessing", None, f"Input preprocessing, one of {', '.join(PREPROCESSING_KINDS)}; "
                    "default is the dataset's (GCN + ZCA for CIFAR, scaling otherwise).")
flags.DEFINE_bool("augment", True, "Augment training images (random crops and, where allowed, flips).")
flags.DEFINE_integer("crop_padding", None, "Padding of the random crops; default is the dataset's.")
flags.DEFINE_bool("flip", None, "Random horizontal flips; default is the dataset's (never for digits).")
# networks
flags.DEFINE_string("teacher", _DEFAULT.teacher, "Teacher architecture (see scripts/count.py for the names).")
flags.DEFINE_string("student", _DEFAULT.student, "FitNet (student) architecture.")
flags.DEFINE_string("teacher_path", None, "A trained teacher (.keras) to use instead of training one.")
flags.DEFINE_string("initializer", None, "Override both nets' initializer: paper, glorot_uniform or he_normal.")
# hints
flags.DEFINE_list("hints", None, "Hint pairs guided:hint, e.g. '11:2' or 'conv4:conv2,6:3'; default is the "
                  "architectures' own pair (paper index, 1-based).")
flags.DEFINE_string("regressor", _DEFAULT.regressor, f"The regressor of stage 1: {', '.join(REGRESSOR_KINDS)}.")
flags.DEFINE_string("hint_mode", _DEFAULT.hint_mode, f"{' or '.join(HINT_MODES)}: with several hint pairs, one "
                    "stage 1 per pair in order (the original code), or one joint stage.")
flags.DEFINE_bool("hint_spatial_mean", False, "Hint loss reduction of the original code (mean over positions).")
# KD
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
flags.DEFINE_list("baselines", list(_DEFAULT.baselines), "Baselines on the student architecture: ce, kd.")
flags.DEFINE_integer("patience", 0, "Early stopping: end a stage after this many epochs without validation "
                     "improvement and keep its best epoch (the paper: 100). 0 trains every epoch.")
flags.DEFINE_string("retrain_from", None, "The model_dir of a run tuned with early stopping on the validation "
                    "split: retrain every stage on train + validation (--validation_size=0) for the epochs that "
                    "run chose, as the paper did for CIFAR.")
flags.DEFINE_bool("deterministic", False, "TensorFlow op determinism (slower): with the same seed, a run that was "
                  "killed and resumed ends with the same results as an uninterrupted one.")
flags.DEFINE_string("cache_teacher_outputs", "auto", "Compute the teacher's logits/hints once and reuse them every "
                    "epoch: auto (when the training images are not augmented), true or false.")
flags.DEFINE_integer("batch_size", _DEFAULT.batch_size, "Global batch size.")
flags.DEFINE_string("optimizer", _DEFAULT.optimizer, f"Optimizer of every stage: {', '.join(pipeline.OPTIMIZERS)}.")
flags.DEFINE_float("learning_rate", _DEFAULT.learning_rate, "Learning rate of every stage.")
flags.DEFINE_float("rmsprop_rho", _DEFAULT.rmsprop_rho, "RMSProp decay (the paper: 0.9).")
flags.DEFINE_integer("seed", _DEFAULT.seed, "Seed of weights, data split and shuffling.")
flags.DEFINE_string("jit_compile", _DEFAULT.jit_compile, "XLA for the train steps: auto, true or false.")
flags.DEFINE_string("mixed_precision", _DEFAULT.mixed_precision, f"Compute policy, one of "
                    f"{', '.join(pipeline.MIXED_PRECISION)}: mixed_float16 on GPU; on CPU it is ~100x slower, "
                    "use mixed_bfloat16.")
# scale-out
flags.DEFINE_string("strategy", "default", "tf.distribute strategy: default (one device), mirrored (all local "
                    "GPUs, or --num_cpu_devices logical CPUs), multi_worker (MultiWorkerMirroredStrategy from "
                    "TF_CONFIG) or tpu (TPUStrategy; --tpu names the TPU).")
flags.DEFINE_integer("num_cpu_devices", 0, "Split the CPU into this many logical devices first (testing "
                     "--strategy=mirrored without GPUs); 0 leaves the CPU as it is.")
flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu ('' for a local TPU VM).")
# outputs
flags.DEFINE_integer("latency_runs", _DEFAULT.latency_runs, "Timed inference runs per model for the report.")
flags.DEFINE_bool("export", True, "Export the FitNet as a SavedModel into model_dir/export.")
flags.DEFINE_integer("verbose", _DEFAULT.verbose, "0 quiet, 1 progress bar, 2 one line per epoch.")


def _hints(values):
    if not values:
        return None
    pairs = []
    for item in values:
        parts = item.split(":")
        if len(parts) != 2 or not all(parts):
            raise pipeline.ConfigError(f"--hints: {item!r} is not guided:hint (e.g. 11:2 or conv11:conv2).")
        pairs.append(tuple(int(p) if p.isdigit() else p for p in parts))
    return tuple(pairs)


def make_strategy(name, num_cpu_devices=0, tpu=""):
    """The tf.distribute strategy named by --strategy (created before any other TensorFlow op runs)."""
    import tensorflow as tf

    if num_cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise pipeline.ConfigError(f"--strategy: unknown strategy {name!r}. Choose default, mirrored, multi_worker "
                               "or tpu.")


def config_from_flags():
    if not FLAGS.model_dir:
        raise pipeline.ConfigError("--model_dir: required (the directory that receives the run).")
    validation = FLAGS.validation_size
    return pipeline.RunConfig(
        model_dir=FLAGS.model_dir, experiment=FLAGS.experiment, overwrite=FLAGS.overwrite,
        dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, download=FLAGS.download,
        validation_size=int(validation) if validation >= 1 else validation, use_extra=FLAGS.use_extra,
        preprocessing=FLAGS.preprocessing, augment=FLAGS.augment, crop_padding=FLAGS.crop_padding, flip=FLAGS.flip,
        teacher=FLAGS.teacher, student=FLAGS.student, teacher_path=FLAGS.teacher_path,
        initializer=FLAGS.initializer, hints=_hints(FLAGS.hints), regressor=FLAGS.regressor,
        hint_mode=FLAGS.hint_mode, hint_spatial_mean=FLAGS.hint_spatial_mean, temperature=FLAGS.temperature,
        kd_lambda=FLAGS.kd_lambda, kd_lambda_final=FLAGS.kd_lambda_final,
        kd_lambda_decay_start=FLAGS.kd_lambda_decay_start, kd_lambda_decay_end=FLAGS.kd_lambda_decay_end,
        tau_squared=FLAGS.tau_squared, teacher_epochs=FLAGS.teacher_epochs, hint_epochs=FLAGS.hint_epochs,
        kd_epochs=FLAGS.kd_epochs, baseline_epochs=FLAGS.baseline_epochs, baselines=tuple(FLAGS.baselines),
        patience=FLAGS.patience, cache_teacher_outputs=FLAGS.cache_teacher_outputs, retrain_from=FLAGS.retrain_from, deterministic=FLAGS.deterministic, batch_size=FLAGS.batch_size, optimizer=FLAGS.optimizer, learning_rate=FLAGS.learning_rate,
        rmsprop_rho=FLAGS.rmsprop_rho, seed=FLAGS.seed, jit_compile=FLAGS.jit_compile,
        mixed_precision=FLAGS.mixed_precision, latency_runs=FLAGS.latency_runs, export=FLAGS.export,
        verbose=FLAGS.verbose,
    )


def flags_file_text():
    """This script's flags as a replayable flagfile."""
    module = sys.modules[__name__]
    lines = [f"# Replay: python scripts/run.py --flagfile={os.path.join(FLAGS.model_dir, 'flags.cfg')}"]
    for flag in FLAGS.get_flags_for_module(module) or FLAGS.get_flags_for_module(sys.argv[0]):
        if flag.value is not None:
            lines.append(flag.serialize())
    return "\n".join(lines) + "\n"


def main(argv):
    from absl import logging

    import tensorflow as tf

    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")
    if len(argv) > 1:
        raise pipeline.ConfigError(f"unexpected arguments {argv[1:]}: every setting is a --flag.")
    from fitnets_tf.io_utils import atomic_write_text

    config = config_from_flags()
    strategy = make_strategy(FLAGS.strategy, FLAGS.num_cpu_devices, FLAGS.tpu)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    pipeline.validate(config)
    # flags.cfg is written only once the model_dir is accepted (run() refuses a different experiment first).
    rows = pipeline.run(config, strategy=strategy, command=command, on_ready=lambda: atomic_write_text(
        os.path.join(config.model_dir, "flags.cfg"), flags_file_text()))
    for row in rows:
        acc = "-" if row["test_accuracy"] is None else f"{100 * row['test_accuracy']:.2f}%"
        print(f"[fitnets] {row['model']:<12} test accuracy {acc}  params {row['parameters']:,}  "
              f"mults {row['multiplications']:,}")
    print(f"[fitnets] results: {os.path.join(config.model_dir, 'results.md')}")


def entry():
    try:
        app.run(main)
    except (pipeline.ConfigError, DataNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    entry()
