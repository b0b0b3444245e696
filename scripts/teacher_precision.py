"""What running a trained teacher in bfloat16 or float16 changes against float32, on a data set's test images.

Prints the largest difference of the softened probabilities (tau), the images whose class changes and the largest
difference of a hint layer (`fitnets_tf.precision.precision_differences`). From the repository root, on the
Fashion-MNIST evidence sweep's teacher (docs/benchmark.md, "Speed"):

    python scripts/teacher_precision.py --run_dir=runs/experiments/methods_fashion_mnist/mnist_fitnet/seed0 --hint=pool2

Expected there: largest probability difference 0.0049, 3 of 10,000 classes changed, hint off by at most 0.022
(about 1 min on two CPU cores). `--run_dir` is a run's model_dir: its teacher.keras and preprocessing.npz are used,
and the data set, its settings and tau are the run's (its run_config.json) unless given.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from fitnets_tf.precision import TEACHER_PRECISIONS  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "A run's model_dir holding teacher.keras, preprocessing.npz and run_config.json.",
                    required=True)
# None: as the run recorded it in its run_config.json.
flags.DEFINE_string("dataset", None, "The data set whose test images are compared (as for scripts/run.py). "
                    "Default: the run's.")
flags.DEFINE_float("validation_size", None, "Default: the run's (the test split does not depend on it).")
flags.DEFINE_string("data_dir", None, "Data directory (IDX files or TFDS), as for scripts/run.py. Default: the run's.")
flags.DEFINE_enum("precision", "bfloat16", TEACHER_PRECISIONS,
                  "The precision compared with float32 (float32 itself gives zeros: a check).")
flags.DEFINE_string("hint", None, "A hint layer of the teacher to compare too (name, path or paper index).")
flags.DEFINE_float("temperature", None, "tau of the softened probabilities. Default: the run's.")
flags.DEFINE_integer("batch_size", 500, "Images per forward pass.")


def run_settings(run_dir):
    """The data settings and temperature: each flag given, else the run's run_config.json, else RunConfig's."""
    from fitnets_tf.harness.config import RunConfig
    from fitnets_tf.harness.model_dir import RUN_CONFIG
    from fitnets_tf.io_utils import read_json

    recorded = read_json(os.path.join(run_dir, RUN_CONFIG)) or {}
    settings = {}
    for name in ("dataset", "validation_size", "data_dir", "image_size", "channels", "temperature"):
        given = getattr(FLAGS, name, None)
        settings[name] = given if given is not None else recorded.get(name, getattr(RunConfig, name))
    return settings


def main(argv):
    import keras

    from fitnets_tf.data import Preprocessor, build_input, load_splits
    from fitnets_tf.models.builders import layer_reference
    from fitnets_tf.precision import precision_differences

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    settings = run_settings(FLAGS.run_dir)
    teacher = keras.saving.load_model(os.path.join(FLAGS.run_dir, "teacher.keras"))
    preprocessor = Preprocessor.load(os.path.join(FLAGS.run_dir, "preprocessing.npz"))
    splits = load_splits(settings["dataset"], data_dir=settings["data_dir"],
                         validation_size=settings["validation_size"], image_size=settings["image_size"],
                         channels=settings["channels"])
    test = build_input(splits.test, FLAGS.batch_size, False, preprocessor)
    hint = None if FLAGS.hint is None else layer_reference(FLAGS.hint)
    print(json.dumps(precision_differences(teacher, test, FLAGS.precision, hint, settings["temperature"]), indent=2))


if __name__ == "__main__":
    app.run(main)
