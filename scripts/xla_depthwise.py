"""Times a MobileNetV2 (alpha 0.35, 32x32x3, random weights) cross-entropy step with XLA off and on, alternately,
on this machine: the evidence behind `fitnets_tf.xla.SLOW_ON_CPU` (XLA "auto" stays off on a CPU for models with
depthwise or separable convolutions).

    .venv/bin/python scripts/xla_depthwise.py [--rounds=2]
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from fitnets_tf import Distiller  # noqa: E402

flags.DEFINE_integer("rounds", 2, "Rounds of (XLA off, XLA on).")
flags.DEFINE_integer("steps", 10, "Timed steps after the first (tracing or compiling) call.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 64)
    for _ in range(FLAGS.rounds):
        for jit in (False, True):
            keras.utils.set_random_seed(0)
            model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=10)
            trainer = Distiller(model)
            trainer.compile(keras.optimizers.Adam(1e-3), stage="ce", jit_compile=jit)
            start = time.perf_counter()
            trainer.train_on_batch(x, y)
            first = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(FLAGS.steps):
                trainer.train_on_batch(x, y)
            step = (time.perf_counter() - start) / FLAGS.steps
            print(f"XLA {'on ' if jit else 'off'}: first call {first:.1f} s, then {1000 * step:.0f} ms/step",
                  flush=True)


if __name__ == "__main__":
    app.run(main)
