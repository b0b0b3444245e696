"""The FitNets trainer: the models, the teacher's forward pass and the step every stage shares; each stage is one
object with its own settings, one file each in `fitnets_tf/stages/`.

    distiller = Distiller(student, teacher)
    distiller.compile(keras.optimizers.RMSprop(5e-3), stage=HintStage([HintPair(guided=11, hint=2)]))  # stage 1
    distiller.fit(train_ds, epochs=...)
    distiller.compile(keras.optimizers.RMSprop(5e-3),                                               # stage 2
                      stage=KDStage(temperature=3.0, kd_lambda=KDLambdaSchedule(4.0, 1.0, 0, 150)))
    distiller.fit(train_ds, epochs=...)

Stage 1 differentiates ONLY the student truncated at its guided layer(s) and the regressor(s), against the frozen
teacher truncated at its hint layer(s); the truncated student shares its variables with the full one, so W*_Guided
is in the student when stage 2 starts (Algorithm 1, line 3) without any copy; compiling stage 2 discards the
regressors. The teacher is never trained.

What each stage trains, needs from the teacher, minimises, logs, checkpoints and is monitored by is in its own file:
stage 1 in `fitnets_tf/stages/hints.py`, stage 2 in `fitnets_tf/stages/kd.py`, plain cross-entropy in
`fitnets_tf/stages/ce.py`, the one-stage FitNet of RepDistiller and mdistiller in `fitnets_tf/stages/one_stage.py`.
This module holds what they share: the models, the teacher's forward pass (outside the
tape, in its own precision), the step averaged over the global batch, the optimizer, and teacher-output caching.

Student and teacher may be any Keras models: functional or Sequential (layers by name), with nested models (a path
"backbone/layer"), keras-hub style `pyramid_outputs`, or subclassed models implementing the intermediate-outputs
protocol; `fitnets_tf.taps` resolves the references and cuts the models. A model ending in a softmax is used through
its pre-softmax logits (logged). `HintStage("auto")` picks the paper's middle-layer pair (`taps.auto_pair`).
"""

import logging

import keras
import tensorflow as tf

from fitnets_tf import taps, xla
from fitnets_tf.keras_workarounds import SkipSymbolicBuild, rank_one_logs
from fitnets_tf.precision import resolve_teacher_precision, teacher_in_precision
from fitnets_tf.schedules import KDLambdaSchedule
from fitnets_tf.stages import HintPair, KDLambdaCallback, make_stage
from fitnets_tf.stages.base import float32
from fitnets_tf.stages.hints import REGRESSOR_SHARE
from fitnets_tf.teacher_cache import DEFAULT_MEMORY_BUDGET, IMAGES, TEACHER_OUTPUTS, build_cache, cached_batch

__all__ = ["Distiller", "HintPair", "KDLambdaCallback", "KDLambdaSchedule", "REGRESSOR_SHARE", "global_batch_size",
           "cached_batch"]

logger = logging.getLogger(__name__)


class Distiller(SkipSymbolicBuild, keras.Model):
    """A `keras.Model` whose `train_step` runs one stage; `call` is the student's forward pass.

    Args:
        student: the FitNet (images -> logits): a model from `build_network` or any Keras model (see `taps`).
        teacher: the trained teacher (images -> logits, or -> softmax: its logits are then used), never updated
            here. Needed by the stages that use it (hints, KD).
        input_shape: (H, W, C) of the images; needed only when neither model says it (unbuilt subclassed models).
        teacher_precision: the precision of the teacher's forward pass (hints and logits): "float32", "bfloat16",
            "float16", or "auto" (the hardware's native low precision, see `fitnets_tf.precision`). A lower one runs
            a copy of the frozen teacher whose weights are refreshed from the teacher at every `compile` of a stage
            that uses it; its outputs are cast to float32 before any loss; the student's own policy is unchanged.

    A stage's own settings (hint pairs, temperature, lambda, ...) are on the stage object (`fitnets_tf.stages`).
    After `compile`, `current_stage` is the `Stage` being trained and `stage` its name.
    """

    def __init__(self, student, teacher=None, input_shape=None, teacher_precision="float32", name="distiller",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        if teacher is not None:  # a teacherless Distiller (plain cross-entropy) trains any one-output model
            taps.check_single_input_output(student, "student")
            taps.check_single_input_output(teacher, "teacher")
        self.student = student
        # The teacher is never trained: no stage differentiates its variables and it always runs in inference
        # mode. Its `trainable` flag is left alone, so the same model can be trained as a teacher elsewhere.
        self.teacher = teacher
        self.image_shape = self._image_shape(student, teacher, input_shape)
        # The models' logits: a final softmax is stripped (sharing the variables), see `taps.logits_model`.
        self.student_logits = taps.logits_model(student, "student" if teacher is not None else "model",
                                                self.image_shape)
        self.teacher_precision = resolve_teacher_precision(teacher_precision)
        # The model the teacher's outputs come from: the teacher itself, or its copy in a lower precision.
        self.teacher_forward = None if teacher is None else teacher_in_precision(teacher, self.teacher_precision)
        self.teacher_logits = None if teacher is None else taps.logits_model(self.teacher_forward, "teacher",
                                                                             self.image_shape)
        self.current_stage = None
        self.xla_settings = None  # {"student": bool, "teacher": bool or None}, set by compile
        # The two parts of a step, chosen at compile: the teacher's forward pass and the student's gradients,
        # each a separately traced function when their XLA settings differ, else plain methods in one traced step.
        self._teacher_part = self._student_part = None
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @staticmethod
    def _image_shape(student, teacher, input_shape):
        """(H, W, C) from the argument, the student or the teacher; refuses models that disagree."""
        image_shape = tuple(
            input_shape or taps.model_input_shape(student) or (taps.model_input_shape(teacher) if teacher else None)
            or ()) or None
        if teacher is not None and image_shape is not None:
            teacher_shape = taps.model_input_shape(teacher)
            if teacher_shape is not None and tuple(teacher_shape) != image_shape:
                raise ValueError(f"The teacher '{teacher.name}' takes {tuple(teacher_shape)} images but the student "
                                 f"'{student.name}' takes {image_shape}.")
        return image_shape

    # ----------------------------------------------------------------------------------------------- set-up
    def compile(self, optimizer="rmsprop", stage="kd", jit_compile="auto", teacher_jit_compile=None, **kwargs):
        """Prepares one stage; call again (with a fresh optimizer) to move to the next stage.

        Args:
            optimizer: a Keras optimizer (under `mixed_float16` Keras wraps it in a `LossScaleOptimizer`).
            stage: a `fitnets_tf.stages.Stage` with its settings (`HintStage(pairs)`, `KDStage(temperature,
                kd_lambda)`, `CEStage()`, ...), or a registered stage's name ("hint", "kd", "ce", "one_stage";
                `fitnets_tf.stages.STAGE_CLASSES`) for that stage with its default settings. The stage compiled
                before ends (stage 1 discards its regressors, Algorithm 1).
            jit_compile: XLA for the student's part of the step (forward, loss, gradients): True, False or "auto"
                (what was measured faster on this device, `fitnets_tf.xla.resolve_jit_compile`: `XLA_AUTO`, and
                on a CPU off for depthwise layers and for images larger than `SMALL_IMAGE_PIXELS`).
            teacher_jit_compile: XLA for the teacher's forward pass, the same choices; None: the setting of
                `jit_compile`, resolved for the teacher ("auto": compiled where the benchmark found it faster).
                When the two differ the step runs two functions, the teacher's and the student's, each compiled
                or not (`xla_settings` records what was chosen); when they agree Keras compiles the whole step.
        """
        current = make_stage(stage)
        if current.needs_teacher and self.teacher is None:
            raise ValueError(f"Stage '{current.name}' needs a teacher. Construct the Distiller with teacher=...")
        if current.needs_teacher and self.teacher_forward is not self.teacher:
            # The teacher may have been trained since this Distiller was built (the pipeline builds it first).
            self.teacher_forward.set_weights(self.teacher.get_weights())
        with self.distribute_strategy.scope():  # the stage's metrics and variables live beside the model's
            current.bind(self)
        # Everything that can refuse is checked before the stage before ends and this one takes its place.
        xla_settings = self._xla_settings(current, jit_compile, teacher_jit_compile)
        if not current.variables:
            raise ValueError(
                f"Stage '{current.name}' has no trainable variables: model '{self.student.name}' is frozen "
                "(trainable=False). Set student.trainable = True before training it."
            )
        if self.current_stage is not None and self.current_stage is not current:
            self.current_stage.end()
        self.current_stage, self.xla_settings = current, xla_settings
        split = xla_settings["teacher"] not in (None, xla_settings["student"])
        super().compile(optimizer=optimizer, jit_compile=False if split else xla_settings["student"], **kwargs)
        if split:  # one traced function per part, each with its own XLA setting; the optimizer step outside both
            self._teacher_part = tf.function(self.teacher_outputs, jit_compile=xla_settings["teacher"])
            self._student_part = tf.function(self._gradients, jit_compile=xla_settings["student"])
        else:
            self._teacher_part, self._student_part = self.teacher_outputs, self._gradients
        with self.distribute_strategy.scope():  # optimizer slots live beside their (mirrored) variables
            self.optimizer.build(self.stage_variables)

    def _xla_settings(self, stage, jit_compile, teacher_jit_compile):
        """{"student": bool, "teacher": bool or None (stage without teacher)}: the settings resolved."""
        distributed = self.distribute_strategy.num_replicas_in_sync > 1
        layers = [*self.student._flatten_layers(), *(l for own in stage.own_layers for l in own._flatten_layers())]
        student = xla.resolve_jit_compile(jit_compile, "student", distributed,
                                          all(layer.supports_jit for layer in layers), xla.slow_on_cpu(layers),
                                          self.image_shape)
        if not stage.needs_teacher:
            return {"student": student, "teacher": None}
        setting = jit_compile if teacher_jit_compile is None else teacher_jit_compile
        teacher_layers = list(self.teacher_forward._flatten_layers())
        return {"student": student,
                "teacher": xla.resolve_jit_compile(setting, "teacher", distributed,
                                                   all(layer.supports_jit for layer in teacher_layers),
                                                   xla.slow_on_cpu(teacher_layers))}

    @property
    def stage(self):
        """The name of the compiled stage ("hint", "kd", "ce", ...), or None before `compile`."""
        return None if self.current_stage is None else self.current_stage.name

    @property
    def stage_variables(self):
        """The variables the current stage trains (stage 1: the student up to the guided layer(s) + regressor(s))."""
        if self.current_stage is None:
            return list(self.student.trainable_variables)
        return self.current_stage.variables

    @property
    def metrics(self):
        """`loss` (the total, every stage) followed by the current stage's own metrics."""
        return [self.loss_tracker] + (self.current_stage.metrics if self.current_stage is not None else [])

    def call(self, inputs, training=False):
        return self.student_logits(self._split_inputs(inputs)[0], training=training)

    # ------------------------------------------------------------------------------------------- the steps
    def teacher_outputs(self, images):
        """What the current stage needs from the teacher, in float32: the hints (stage 1), (logits,) (stage 2), or
        whatever the stage's `teacher_outputs` returns (the one-stage FitNet: the hints, then the logits with KD)."""
        if self.current_stage is None or not self.current_stage.needs_teacher:
            raise ValueError(f"Stage '{self.stage}' uses no teacher outputs.")
        return float32(self.current_stage.teacher_outputs(images))

    def cache_teacher_outputs(self, ordered, num_examples=None, memory_budget_bytes=DEFAULT_MEMORY_BUDGET,
                              directory=None, mode="auto", low_precision=None, name=None):
        """Teacher-output caching (`fitnets_tf.teacher_cache`): runs the teacher ONCE over `ordered` and returns a
        `TeacherOutputCache` of the current stage's outputs (hints of the active pairs, or logits), one row per
        example; `cache.attach(batches)` turns batches of (index, images, labels) into batches that the train
        step reads instead of calling the teacher (`cached_batch`). Returns None when the rows fit neither the
        memory budget nor the disk.

        Only valid when the inputs are the same every epoch (no augmentation). Call after `compile(stage=...)`.

        Args:
            ordered: finite batches of (float32 images, labels) in the order that defines each example's index.
            num_examples: the examples in `ordered` (None: counted from its cardinality).
            memory_budget_bytes, mode, directory: where the rows go (`data.caching.choose_place`); an on-disk
                cache is `<directory>/<name>.bin.<k>`.
            low_precision: keep the rows in float16; None: as the stage allows (`Stage.cache_in_float16`).
            name: the cache's name (default: "<Stage.cache_name>_teacher_outputs", e.g. the stage and its hints).
        """
        if self.current_stage is None or not self.current_stage.needs_teacher:
            raise ValueError(f"Stage '{self.stage}' uses no teacher outputs: nothing to cache.")
        if num_examples is None:
            num_examples = sum(int(tf.shape(y)[0]) for _, y in ordered)
        if low_precision is None:
            low_precision = self.current_stage.cache_in_float16
        name = name or f"{self.current_stage.cache_name}_teacher_outputs"
        forward = tf.function(self.teacher_outputs, reduce_retracing=True)
        return build_cache(forward, ordered, num_examples, low_precision, memory_budget_bytes, directory, mode,
                           name)

    @staticmethod
    def _split_inputs(x):
        """(images, cached teacher outputs or None). Only a batch marked by `cached_batch` carries outputs."""
        if isinstance(x, dict) and TEACHER_OUTPUTS in x:
            return x[IMAGES], tuple(x[TEACHER_OUTPUTS])
        return x, None

    def _teacher_targets(self, images, cached, forward):
        """The teacher's outputs for this stage, never differentiated: the cached ones if the batch carries them,
        else `forward(images)`; () when the stage needs none."""
        if not self.current_stage.needs_teacher:
            return ()
        targets = cached if cached is not None else forward(images)
        return tuple(tf.stop_gradient(t) for t in targets)

    def _update_metrics(self, total, terms, y, logits):
        self.loss_tracker.update_state(total)
        self.current_stage.update_metrics(terms, y, logits)
        return rank_one_logs({m.name: m.result() for m in self.metrics}, self.distribute_strategy)

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        images, cached = self._split_inputs(x)
        # The teacher runs before the tape: its (trainable) variables are never watched and none of its activations
        # are kept for a backward pass. Both parts were chosen at compile (one traced step, or XLA per model).
        teacher_targets = self._teacher_targets(images, cached, self._teacher_part)
        gradients, per_example, terms, logits = self._student_part(images, y, teacher_targets, global_batch_size(y))
        self.optimizer.apply(gradients, self.stage_variables)
        return self._update_metrics(per_example, terms, y, logits)

    def _gradients(self, x, y, teacher_targets, global_count):
        """The student's part of a step: (gradients of the stage's variables, per-example total, terms, logits).

        `global_count`: the examples of this step over all replicas (`global_batch_size`, counted outside so that
        this function holds no cross-replica op and compiles with XLA on its own)."""
        with tf.GradientTape() as tape:
            per_example, terms, logits = self.current_stage.per_example_losses(x, y, teacher_targets, training=True)
            # Mean over the GLOBAL batch: the optimizer sums the replicas' gradients, so one and N replicas make
            # the same update when every replica divides by the global count.
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_count)
            scaled_loss = self.optimizer.scale_loss(loss)
        return tape.gradient(scaled_loss, self.stage_variables), per_example, terms, logits

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        images, cached = self._split_inputs(x)
        teacher_targets = self._teacher_targets(images, cached, self.teacher_outputs)
        per_example, terms, logits = self.current_stage.per_example_losses(images, y, teacher_targets,
                                                                           training=False)
        return self._update_metrics(per_example, terms, y, logits)

    def fit(self, *args, callbacks=None, **kwargs):
        """`keras.Model.fit`, with the stage's callbacks first (stage 2: lambda from its schedule each epoch). A
        tf.data dataset is shuffled by its own pipeline, so `shuffle` defaults to False for it (Keras would warn at
        every call that it ignores its own default, shuffle=True)."""
        if self.current_stage is None:
            raise RuntimeError("Call compile(optimizer, stage=...) before fit().")
        x = kwargs.get("x", args[0] if args else None)
        if isinstance(x, tf.data.Dataset) and "shuffle" not in kwargs and len(args) < 9:
            kwargs["shuffle"] = False
        callbacks = [*self.current_stage.callbacks(), *(callbacks or [])]
        return super().fit(*args, callbacks=callbacks, **kwargs)


def global_batch_size(per_example):
    """The number of examples in this step over all replicas: the sum of the per-replica batch sizes.

    A batch that does not split evenly (e.g. 63 over 2 replicas: 32 + 31, or a last partial batch) gives
    replicas of different sizes, so "this replica's size x num_replicas" (tf.nn.compute_average_loss's
    default) would divide by 64 on one replica and 62 on the other.
    """
    local = tf.cast(tf.shape(per_example)[0], tf.float32)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        local = context.all_reduce(tf.distribute.ReduceOp.SUM, local)
    return tf.cast(local, tf.int32)
