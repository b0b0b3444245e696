"""One worker of a 2-worker MultiWorkerMirroredStrategy on 127.0.0.1 (TF_CONFIG set by the caller): fits a plain
`keras.Model` with and without each workaround of `fitnets_tf.keras_workarounds` and prints, as JSON, the error of
each variant ("ok" when it trained).

    TF_CONFIG=... python tests/keras_workaround_check.py
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fitnets_tf.keras_workarounds import SkipSymbolicBuild, rank_one_logs  # noqa: E402


class Plain(keras.Model):
    """A built model whose train step logs one scalar, like the Distiller's; `rank_one` applies `rank_one_logs`."""

    def __init__(self, rank_one):
        super().__init__()
        self.dense = keras.layers.Dense(2)
        self.rank_one = rank_one
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        x, y = data
        self.loss_tracker.update_state(tf.reduce_mean(tf.square(self(x) - y)))
        logs = {"loss": self.loss_tracker.result()}
        return rank_one_logs(logs, self.distribute_strategy) if self.rank_one else logs


class Skipping(SkipSymbolicBuild, Plain):
    pass


def fit(model_class, rank_one):
    with strategy.scope():
        model = model_class(rank_one)
        model.build((None, 3))
        model.compile()
    ds = tf.data.Dataset.from_tensor_slices((np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"))).batch(4)
    try:
        model.fit(ds, epochs=1, verbose=0)
        return "ok"
    except Exception as e:  # noqa: BLE001 -- the error is the result
        return f"{type(e).__name__}: {e}"[:400]


if __name__ == "__main__":
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    print(json.dumps({
        "keras": keras.__version__,
        "symbolic_build": fit(Plain, rank_one=True),    # only the symbolic build left to Keras
        "scalar_logs": fit(Skipping, rank_one=False),   # only the scalar logs left to Keras
        "both": fit(Skipping, rank_one=True),           # both workarounds, as the Distiller
    }))
