"""Workarounds for Keras internals, in one place.

Each names the Keras version whose behaviour it works around. `tests/test_keras_workarounds.py` reproduces that
behaviour on a plain `keras.Model` (two workers on 127.0.0.1) and FAILS once Keras no longer shows it: then the
workaround can go.
"""

import tensorflow as tf

# The version the workarounds below were written against and their test last reproduced the behaviour with.
KERAS_VERSION = "3.15.1"


class SkipSymbolicBuild:
    """Mixin for a `keras.Model` whose steps need no symbolic build: `Model._maybe_symbolic_build` does nothing.

    Keras 3.15.1 (`keras/src/backend/tensorflow/trainer.py`, `TensorFlowTrainer._maybe_symbolic_build`): under a
    distribution strategy, `fit`/`evaluate` first average one data batch across replicas with
    `strategy.reduce("MEAN", batch, axis=None)` and trace the model on it. Under a MultiWorkerMirroredStrategy
    with two or more workers that average fails: "Attempt to convert a value (PerReplica:...) with an unsupported
    type ... to a Tensor". A model can skip it when everything is built before `fit` (the `Distiller` builds its
    models at construction and its optimizer in `compile`).
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build (see the class docstring)."""


def rank_one_logs(logs, strategy):
    """`logs` ({name: scalar}) reshaped to shape (1,) under a MultiWorkerMirroredStrategy, else unchanged.

    Keras 3.15.1 (`keras/src/backend/tensorflow/trainer.py`, `reduce_per_replica`): with two or more workers it
    averages each worker's logs with `strategy.reduce("MEAN", v, axis=0)`, which fails on a scalar ("Invalid
    reduction dimension 0 for input with 0 dimensions"). The mean of the (1,)-shaped values is the scalar again.
    """
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs
