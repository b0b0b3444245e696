"""What every stage says about itself; the `Distiller` runs the step they share (`fitnets_tf.distiller`).

One training step of any stage, as `Distiller.train_step` runs it:

    targets = stage.teacher_outputs(images)                  # outside the tape; () when the stage needs none
    with tf.GradientTape() as tape:
        total, terms, logits = stage.per_example_losses(images, labels, targets, training=True)
        loss = mean of `total` over the GLOBAL batch
    apply the gradients of `loss` to stage.variables
    stage.update_metrics(terms, labels, logits)              # logged as `loss` + stage.metrics
"""

import abc

import tensorflow as tf


class Stage(abc.ABC):
    """One stage of training: what it trains, what it needs from the teacher, its per-example loss, its metrics.

    A subclass is built by `Distiller.compile(stage=NAME)` inside the distribution strategy's scope (its metrics'
    variables are created there) and reads the models and settings it needs from the `Distiller`.

    Class attributes:
        name: the `stage=` name ("hint", "kd", "ce").
        needs_teacher: the stage calls the teacher (the Distiller refuses to compile it without one).
        uses_regressors: the stage trains the regressors; compiling any other stage discards them (Algorithm 1).
        cache_in_float16: its cached teacher outputs may be kept in float16 (`teacher_cache`): True where the loss
            is insensitive to a 2^-11 relative rounding of its targets (hints), False where it is not worth it
            (logits are a few bytes per example).
    """

    name = None
    needs_teacher = False
    uses_regressors = False
    cache_in_float16 = False

    def __init__(self, distiller, pairs=None):
        if pairs is not None:
            raise ValueError(f"pairs applies to stage 'hint' only. Received: stage={self.name!r}, pairs={pairs}")
        self.distiller = distiller

    @property
    @abc.abstractmethod
    def variables(self):
        """The variables this stage trains (a list of `keras.Variable`)."""

    def teacher_outputs(self, images):
        """What the stage needs from the frozen teacher for `images`: a tuple of tensors, in any precision."""
        return ()

    @abc.abstractmethod
    def per_example_losses(self, images, labels, teacher_outputs, training):
        """Returns (total (batch,), {metric name: per-example term}, student logits or None)."""

    @property
    def metrics(self):
        """The stage's own metrics, logged after the total `loss`: their names are the keys of the logs."""
        return []

    def update_metrics(self, terms, labels, logits):
        """Updates `metrics` from one batch's terms (from `per_example_losses`), labels and logits."""

    def callbacks(self):
        """Callbacks `Distiller.fit` runs before the user's (e.g. stage 2's lambda schedule)."""
        return []


def as_tuple(outputs):
    """The outputs of a one- or multi-output sub-model as a tuple (Keras returns a bare tensor for one output)."""
    return tuple(outputs) if isinstance(outputs, (list, tuple)) else (outputs,)


def float32(tensors):
    """A tuple of tensors cast to float32: losses are computed in float32, whatever the teacher ran in."""
    return tuple(tf.cast(t, tf.float32) for t in tensors)
