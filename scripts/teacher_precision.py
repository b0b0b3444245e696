"""What running a trained teacher in bfloat16 or float16 changes against float32, on a data set's test images.

Prints the largest difference of the softened probabilities (tau), the images whose class changes and the largest
difference of a hint layer (`fitnets_tf.precision.precision_differences`). From the repository root, on the
Fashion-MNIST evidence sweep's teacher (docs/benchmark.md, "Speed"):

    python scripts/teacher_precision.py --run_dir=runs/experiments/methods_fashion_mnist/mnist_fitnet/seed0 \\
        --dataset=fashion_mnist --validation_size=10000 --hint=pool2

Expected there: largest probability difference 0.0049, 3 of 10,000 classes changed, hint off by at most 0.022
(about 1 min on two CPU cores). `--run_dir` is a run's model_dir: its teacher.keras and preprocessing.npz are used.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "A run's model_dir holding teacher.keras and preprocessing.npz.", required=True)
flags.DEFINE_string("dataset", "digits", "The data set whose test images are compared (as for scripts/run.py).")
flags.DEFINE_float("validation_size", 0.1, "As the run had it (the test split does not depend on it).")
flags.DEFINE_string("data_dir", None, "Data directory (IDX files or TFDS), as for scripts/run.py.")
flags.DEFINE_enum("precision", "bfloat16", ["float32", "bfloat16", "float16", "auto"],
                  "The precision compared with float32 (float32 itself gives zeros: a check).")
flags.DEFINE_string("hint", None, "A hint layer of the teacher to compare too (name, path or paper index).")
flags.DEFINE_float("temperature", 3.0, "tau of the softened probabilities.")
flags.DEFINE_integer("batch_size", 500, "Images per forward pass.")


def main(argv):
    import keras

    from fitnets_tf.data import Preprocessor, build_input, load_splits
    from fitnets_tf.models.builders import layer_reference
    from fitnets_tf.precision import precision_differences

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    teacher = keras.saving.load_model(os.path.join(FLAGS.run_dir, "teacher.keras"))
    preprocessor = Preprocessor.load(os.path.join(FLAGS.run_dir, "preprocessing.npz"))
    splits = load_splits(FLAGS.dataset, data_dir=FLAGS.data_dir, validation_size=FLAGS.validation_size)
    test = build_input(splits.test, FLAGS.batch_size, False, preprocessor)
    hint = None if FLAGS.hint is None else layer_reference(FLAGS.hint)
    print(json.dumps(precision_differences(teacher, test, FLAGS.precision, hint, FLAGS.temperature), indent=2))


if __name__ == "__main__":
    app.run(main)
