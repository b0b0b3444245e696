"""What every stage says about itself; the `Distiller` runs the step they share (`fitnets_tf.distiller`).

A stage is one object that owns its settings (a temperature, hint pairs and their regressors, a loss weight),
built by the user and handed to `Distiller.compile(optimizer, stage=...)`:

    distiller.compile(keras.optimizers.RMSprop(5e-3), stage=HintStage([HintPair(11, 2)]))
    distiller.compile(keras.optimizers.RMSprop(5e-3), stage=KDStage(temperature=3.0, kd_lambda=schedule))

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
    """One stage of training: its settings, what it trains, what it needs from the teacher, its per-example loss,
    its metrics, what it checkpoints and the metric it is monitored by.

    A stage is built with its settings only; `Distiller.compile` binds it to the Distiller's models (`bind`, inside
    the distribution strategy's scope, so that its metrics and its own variables live beside the models'). A stage
    object trains with one Distiller: binding it to another is refused.

    Class attributes:
        name: the stage's name on the command line and in logs ("hint", "kd", "ce", ...).
        needs_teacher: the stage calls the teacher (the Distiller refuses to compile it without one).
        cache_in_float16: its cached teacher outputs may be kept in float16 (`teacher_cache`): True where the loss
            is insensitive to a 2^-11 relative rounding of its targets (hints), False where it is not worth it
            (logits are a few bytes per example).
        monitor: (validation metric, "min" or "max"): what early stopping follows and which epoch is kept.
    """

    name = None
    needs_teacher = False
    cache_in_float16 = False
    monitor = ("val_accuracy", "max")

    distiller = None

    discarded = False

    def bind(self, distiller):
        """Binds the stage to `distiller`'s models (once; again with the same Distiller does nothing) and builds
        what it owns (`build`). A stage that ended (`end`) and lost what it owned is refused."""
        if self.discarded:
            raise ValueError(
                f"Stage '{self.name}' cannot run again: its regressors were discarded when the next stage started "
                "(Algorithm 1). Build a new stage (and a new Distiller to start the student afresh).")
        if self.distiller is distiller:
            return
        if self.distiller is not None:
            raise ValueError(f"This {type(self).__name__} is already bound to the Distiller "
                             f"'{self.distiller.name}': build a new stage object for another Distiller.")
        if self.needs_teacher and distiller.teacher is None:
            raise ValueError(f"Stage '{self.name}' needs a teacher. Construct the Distiller with teacher=...")
        self.distiller = distiller
        try:
            self.build(distiller)
        except Exception:
            self.distiller = None
            raise

    def build(self, distiller):
        """Builds what the stage owns against `distiller`'s models: metrics, regressors, variables."""

    @property
    @abc.abstractmethod
    def variables(self):
        """The variables this stage trains (a list of `keras.Variable`)."""

    @property
    def own_layers(self):
        """The layers the stage adds to the student and trains with it (stage 1's regressors): the Distiller checks
        them, with the student's, for XLA (`compile`'s `jit_compile="auto"`)."""
        return []

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

    @property
    def cache_name(self):
        """The default name of its teacher-output cache (`Distiller.cache_teacher_outputs`)."""
        return self.name

    def checkpoint_objects(self):
        """{name: trackable}: what the stage trains besides the student, saved in its checkpoints (regressors)."""
        return {}

    def end(self):
        """Called when the Distiller compiles another stage after this one (stage 1 discards its regressors)."""


def as_tuple(outputs):
    """The outputs of a one- or multi-output sub-model as a tuple (Keras returns a bare tensor for one output)."""
    return tuple(outputs) if isinstance(outputs, (list, tuple)) else (outputs,)


def float32(tensors):
    """A tuple of tensors cast to float32: losses are computed in float32, whatever the teacher ran in."""
    return tuple(tf.cast(t, tf.float32) for t in tensors)
