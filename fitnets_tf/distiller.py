"""The FitNets trainer: the step the stages share; each stage is one file in `fitnets_tf/stages/`.

    distiller = Distiller(student, teacher, hint_pairs=[HintPair(guided=11, hint=2)], temperature=3.0,
                          kd_lambda=KDLambdaSchedule(4.0, 1.0, 0, 150))
    distiller.compile(keras.optimizers.RMSprop(5e-3), stage="hint")   # stage 1, Algorithm 1 line 2
    distiller.fit(train_ds, epochs=...)
    distiller.compile(keras.optimizers.RMSprop(5e-3), stage="kd")     # stage 2: the regressors are discarded
    distiller.fit(train_ds, epochs=...)

Stage 1 differentiates ONLY the student truncated at its guided layer(s) and the regressor(s), against the frozen
teacher truncated at its hint layer(s); the truncated student shares its variables with the full one, so W*_Guided
is in the student when stage 2 starts (Algorithm 1, line 3) without any copy. The teacher is never trained.

What each stage trains, needs from the teacher, minimises and logs is in its own file: stage 1 in
`fitnets_tf/stages/hints.py`, stage 2 in `fitnets_tf/stages/kd.py`, plain cross-entropy in `fitnets_tf/stages/ce.py`.
This module holds what they share: the models and their settings, the teacher's forward pass (outside the tape, in
its own precision), the step averaged over the global batch, the optimizer, and teacher-output caching.

Student and teacher may be any Keras models: functional or Sequential (layers by name), with nested models (a path
"backbone/layer"), keras-hub style `pyramid_outputs`, or subclassed models implementing the intermediate-outputs
protocol; `fitnets_tf.taps` resolves the references and cuts the models. A model ending in a softmax is used through
its pre-softmax logits (logged). `hint_pairs="auto"` picks the paper's middle-layer pair (`taps.auto_pair`).
"""

import dataclasses
import logging
import math
import numbers
from typing import Union

import keras
import tensorflow as tf

from fitnets_tf import taps, xla
from fitnets_tf.keras_workarounds import SkipSymbolicBuild, rank_one_logs
from fitnets_tf.precision import resolve_teacher_precision, teacher_in_precision
from fitnets_tf.regressor import build_regressor, choose_regressor, hint_nonlinearity
from fitnets_tf.schedules import KDLambdaSchedule
from fitnets_tf.stages import STAGE_CLASSES, KDLambdaCallback
from fitnets_tf.stages.base import float32
from fitnets_tf.teacher_cache import DEFAULT_MEMORY_BUDGET, build_cache

STAGES = tuple(STAGE_CLASSES)  # ("hint", "kd", "ce"); a stage registered later is in STAGE_CLASSES only
HINT_MODES = ("sequential", "joint")
# A batch that carries the teacher's outputs (`cache_teacher_outputs`): x = {IMAGES: images, TEACHER_OUTPUTS: (...)}.
IMAGES = "images"
TEACHER_OUTPUTS = "teacher_outputs"

__all__ = ["Distiller", "HintPair", "KDLambdaCallback", "global_batch_size", "cached_batch", "HINT_MODES", "STAGES"]

logger = logging.getLogger(__name__)

# An automatic regressor ("auto") has at most this share of the student's parameters (see `choose_regressor`).
REGRESSOR_SHARE = 0.25


@dataclasses.dataclass(frozen=True)
class HintPair:
    """One hint: student layer `guided` is taught teacher layer `hint` (paper notation "guided <- hint").

    Layers are 1-based paper indices on the zoo's networks (tapped after the max-pool that follows them, as in the
    paper's code), literal layer names ("conv8", "pool2", "block_3_expand_relu"), paths into nested models
    ("mobilenetv2_0.35_32/block_3_expand_relu") or protocol names (see `fitnets_tf.taps`). `regressor` is one of
    `regressor.REGRESSOR_KINDS`; "auto" takes the paper's conv where it applies.
    """

    guided: Union[int, str]
    hint: Union[int, str]
    regressor: str = "conv"


class Distiller(SkipSymbolicBuild, keras.Model):
    """A `keras.Model` whose `train_step` runs one FitNets stage; `call` is the student's forward pass.

    Args:
        student: the FitNet (images -> logits): a model from `build_network` or any Keras model (see `taps`).
        teacher: the trained teacher (images -> logits, or -> softmax: its logits are then used), never updated
            here. Needed by stages "hint" and "kd".
        hint_pairs: `HintPair`s for stage 1, or "auto": the paper's choice, the middle layers (`taps.auto_pair`).
        temperature: tau of the softened outputs (paper: 3).
        kd_lambda: a float or a `KDLambdaSchedule` (paper: 4 -> 1 linear); read at the start of each epoch.
        tau_squared: multiply the soft KD term by tau^2 (Hinton et al.); off in the paper and its code.
        hint_spatial_mean: the original code's hint reduction (see `losses.hint_loss`).
        regressor_initializer: initializer (name) of the regressors' weights.
        seed: makes the regressors' initial weights reproducible.
        input_shape: (H, W, C) of the images; needed only when neither model says it (unbuilt subclassed models).
        teacher_precision: the precision of the teacher's forward pass (hints and logits): "float32", "bfloat16",
            "float16", or "auto" (the hardware's native low precision, see `fitnets_tf.precision`). A lower one runs
            a copy of the frozen teacher whose weights are refreshed from the teacher at every `compile` of a stage
            that uses it; its outputs are cast to float32 before any loss; the student's own policy is unchanged.

    After construction `pair_report` holds, per pair, the resolved references, both shapes, the regressor and why.
    After `compile`, `current_stage` is the `fitnets_tf.stages.Stage` being trained and `stage` its name.
    """

    def __init__(
        self,
        student,
        teacher=None,
        hint_pairs=(),
        temperature=3.0,
        kd_lambda=KDLambdaSchedule(4.0, 1.0, 0, 150),
        tau_squared=False,
        hint_spatial_mean=False,
        regressor_initializer="glorot_uniform",
        seed=None,
        input_shape=None,
        teacher_precision="float32",
        name="distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if not (isinstance(temperature, numbers.Real) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0. Received: temperature={temperature}")
        if teacher is not None:  # a teacherless Distiller (plain cross-entropy) trains any one-output model
            taps.check_single_input_output(student, "student")
            taps.check_single_input_output(teacher, "teacher")
        self.student = student
        # The teacher is never trained: no stage differentiates its variables and it always runs in inference
        # mode. Its `trainable` flag is left alone, so the same model can be trained as a teacher elsewhere.
        self.teacher = teacher
        self.temperature = float(temperature)
        self.kd_lambda_schedule = (
            kd_lambda if isinstance(kd_lambda, KDLambdaSchedule) else KDLambdaSchedule.constant(kd_lambda)
        )
        self.tau_squared = tau_squared
        self.hint_spatial_mean = hint_spatial_mean
        self.kd_lambda = self.add_weight(
            name="kd_lambda", shape=(), initializer=keras.initializers.Constant(self.kd_lambda_schedule(0)),
            trainable=False,
        )
        self.image_shape = self._image_shape(student, teacher, input_shape)
        # The models' logits: a final softmax is stripped (sharing the variables), see `taps.logits_model`.
        self.student_logits = taps.logits_model(student, "student" if teacher is not None else "model",
                                                self.image_shape)
        self.teacher_precision = resolve_teacher_precision(teacher_precision)
        # The model the teacher's outputs come from: the teacher itself, or its copy in a lower precision.
        self.teacher_forward = None if teacher is None else teacher_in_precision(teacher, self.teacher_precision)
        self.teacher_logits = None if teacher is None else taps.logits_model(self.teacher_forward, "teacher",
                                                                             self.image_shape)
        self.pairing = None
        if isinstance(hint_pairs, str):
            hint_pairs = self._auto_pair(hint_pairs)
        if hint_pairs and teacher is None:
            raise ValueError("Hint pairs need a teacher. Received: teacher=None")
        self.hint_pairs = []
        self.regressors = []
        self.pair_report = []
        for i, pair in enumerate(hint_pairs):
            self._add_pair(pair, i, len(hint_pairs), regressor_initializer, seed)
        self.current_stage = None
        self.xla_settings = None  # {"student": bool, "teacher": bool or None}, set by compile
        self._step_parts = None  # (teacher forward, student gradients) when their XLA settings differ
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

    def _auto_pair(self, hint_pairs):
        """hint_pairs="auto": the paper's middle-layer pair (`taps.auto_pair`), as a one-element list."""
        if hint_pairs != "auto":
            raise ValueError(f"hint_pairs must be HintPairs or 'auto'. Received: hint_pairs={hint_pairs!r}")
        if self.teacher is None:
            raise ValueError("Hint pairs need a teacher. Received: teacher=None")
        guided, hint, self.pairing = taps.auto_pair(self.student, self.teacher, self.image_shape,
                                                    REGRESSOR_SHARE * self.student.count_params())
        logger.info("Automatic hint pair: %s.", self.pairing)
        return [HintPair(guided, hint, "auto")]

    def _add_pair(self, pair, i, count, regressor_initializer, seed):
        """Resolves pair `i` of `count` on both models, chooses and builds its regressor, and reports it."""
        student, teacher = self.student, self.teacher
        guided = taps.resolve(student, pair.guided, "guided layer")
        hint = taps.resolve(teacher, pair.hint, "hint layer")
        guided_shape = self._tap_shape(student, guided)
        hint_shape = self._tap_shape(teacher, hint)
        kind, reason = pair.regressor, "as given in the pair"
        if kind == "auto":  # never a regressor that outweighs a share of the student it guides
            kind, reason = choose_regressor(guided_shape, hint_shape,
                                            max_weights=REGRESSOR_SHARE * student.count_params())
            logger.info("Regressor of pair %s <- %s: '%s' (%s).", guided.name, hint.name, kind, reason)
        self.hint_pairs.append(HintPair(guided.name, hint.name, kind))  # the resolved references
        self.pair_report.append({
            "guided": guided.name, "hint": hint.name, "guided_shape": list(guided_shape[1:]),
            "hint_shape": list(hint_shape[1:]), "regressor": kind, "regressor_reason": reason,
            "pairing": self.pairing,
        })
        self.regressors.append(
            build_regressor(
                guided_shape,
                hint_shape,
                kind=kind,
                nonlinearity=hint_nonlinearity(hint.layer) if hint.layer is not None else ("linear", 1),
                guided_name=f"{student.name}/{guided.name}",
                hint_name=f"{teacher.name}/{hint.name}",
                initializer=keras.initializers.get({
                    "class_name": regressor_initializer,
                    "config": {"seed": None if seed is None else seed * 1000 + 900 + i},
                }),
                name=f"regressor{i + 1}" if count > 1 else "regressor",
            )
        )

    def _tap_shape(self, model, tap):
        """The (None, ...) output shape of one tap (symbolic for functional models, one zero image otherwise)."""
        cut = taps.tap_model(model, [tap], f"{model.name}_tap", self.image_shape)
        if isinstance(cut, keras.Model):
            return tuple(cut.outputs[0].shape)
        return tuple(taps.output_shapes(cut, self.image_shape)[0])

    # ----------------------------------------------------------------------------------------------- set-up
    def compile(self, optimizer="rmsprop", stage="kd", pairs=None, jit_compile="auto", teacher_jit_compile=None,
                **kwargs):
        """Prepares one stage; call again (with a fresh optimizer) to move to the next stage.

        Args:
            optimizer: a Keras optimizer (under `mixed_float16` Keras wraps it in a `LossScaleOptimizer`).
            stage: "hint" (stage 1), "kd" (stage 2) or "ce" (the student alone on cross-entropy); the stages are
                `fitnets_tf.stages.STAGE_CLASSES`.
            pairs: stage "hint" only: indices into `hint_pairs` trained together (their hint losses summed).
                None trains all pairs jointly; the original code trains them in sequence, one stage per pair:
                `for i in range(n): compile(stage="hint", pairs=[i]); fit(...)`.
            jit_compile: XLA for the student's part of the step (forward, loss, gradients): True, False or "auto"
                (what the benchmark measured faster on this device, `fitnets_tf.xla.XLA_AUTO`).
            teacher_jit_compile: XLA for the teacher's forward pass, the same choices; None: as `jit_compile`.
                When the two differ the step runs two functions, the teacher's and the student's, each compiled
                or not (`xla_settings` records what was chosen); when they agree Keras compiles the whole step.
        """
        if stage not in STAGE_CLASSES:
            raise ValueError(f"stage must be one of {tuple(STAGE_CLASSES)}. Received: stage={stage!r}")
        stage_class = STAGE_CLASSES[stage]
        if stage_class.needs_teacher and self.teacher is None:
            raise ValueError(f"Stage '{stage}' needs a teacher. Construct the Distiller with teacher=...")
        if not stage_class.uses_regressors and self.regressors:
            self.discard_regressors()
        if stage_class.needs_teacher and self.teacher_forward is not self.teacher:
            # The teacher may have been trained since this Distiller was built (the pipeline builds it first).
            self.teacher_forward.set_weights(self.teacher.get_weights())
        with self.distribute_strategy.scope():  # the stage's metrics live beside the model's variables
            current = stage_class(self, pairs=pairs)
        self.xla_settings = self._xla_settings(stage_class, jit_compile, teacher_jit_compile)
        split = self.xla_settings["teacher"] not in (None, self.xla_settings["student"])
        super().compile(optimizer=optimizer, jit_compile=False if split else self.xla_settings["student"], **kwargs)
        self.current_stage = current
        self._step_parts = None
        if split:  # one traced function per part, each with its own XLA setting; the optimizer step outside both
            self._step_parts = (tf.function(self.teacher_outputs, jit_compile=self.xla_settings["teacher"]),
                                tf.function(self._gradients, jit_compile=self.xla_settings["student"]))
        if not self.stage_variables:
            raise ValueError(
                f"Stage '{stage}' has no trainable variables: model '{self.student.name}' is frozen "
                "(trainable=False). Set student.trainable = True before training it."
            )
        with self.distribute_strategy.scope():  # optimizer slots live beside their (mirrored) variables
            self.optimizer.build(self.stage_variables)

    def _xla_settings(self, stage_class, jit_compile, teacher_jit_compile):
        """{"student": bool, "teacher": bool or None (stage without teacher)}: the settings resolved."""
        distributed = self.distribute_strategy.num_replicas_in_sync > 1
        student_ok = all(layer.supports_jit for layer in self.student._flatten_layers()) and all(
            layer.supports_jit for regressor in self.regressors for layer in regressor._flatten_layers())
        student = xla.resolve_jit_compile(jit_compile, "student", distributed, student_ok)
        if not stage_class.needs_teacher:
            return {"student": student, "teacher": None}
        if teacher_jit_compile is None:
            return {"student": student, "teacher": student}
        teacher_ok = all(layer.supports_jit for layer in self.teacher_forward._flatten_layers())
        return {"student": student,
                "teacher": xla.resolve_jit_compile(teacher_jit_compile, "teacher", distributed, teacher_ok)}

    def discard_regressors(self):
        """Algorithm 1, line 3: after stage 1 only W*_Guided is kept; the regressors are dropped.

        A stage-1 stage compiled before this can no longer train: compile the next stage.
        """
        self.regressors = []
        if self.current_stage is not None and self.current_stage.uses_regressors:
            self.current_stage = None

    @property
    def stage(self):
        """The name of the compiled stage ("hint", "kd", "ce"), or None before `compile`."""
        return None if self.current_stage is None else self.current_stage.name

    @property
    def stage_variables(self):
        """The variables the current stage trains (stage 1: student up to the guided layer(s) + regressor(s))."""
        if self.current_stage is None:
            return list(self.student.trainable_variables)
        return self.current_stage.variables

    @property
    def active_pairs(self):
        """Stage 1: the indices into `hint_pairs` being trained; () in any other stage."""
        return getattr(self.current_stage, "pairs", ())

    @property
    def guided_model(self):
        """Stage 1: the student truncated at the active guided layer(s), sharing the student's variables."""
        return self._hint_stage().guided_model

    @property
    def hint_model(self):
        """Stage 1: the teacher (in its precision) truncated at the active hint layer(s)."""
        return self._hint_stage().hint_model

    def _hint_stage(self):
        if self.stage != "hint":
            raise AttributeError(f"Only stage 'hint' has truncated models. Received: stage={self.stage!r}")
        return self.current_stage

    @property
    def metrics(self):
        """`loss` (the total, every stage) followed by the current stage's own metrics."""
        return [self.loss_tracker] + (self.current_stage.metrics if self.current_stage is not None else [])

    def call(self, inputs, training=False):
        return self.student_logits(self._split_inputs(inputs)[0], training=training)

    # ------------------------------------------------------------------------------------------- the steps
    def teacher_outputs(self, images):
        """What the current stage needs from the teacher, in float32: the active hints (stage 1) or (logits,)."""
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
            name: the cache's name (default: the stage and its pairs, e.g. "hint_pairs0").
        """
        if self.current_stage is None or not self.current_stage.needs_teacher:
            raise ValueError(f"Stage '{self.stage}' uses no teacher outputs: nothing to cache.")
        if num_examples is None:
            num_examples = sum(int(tf.shape(y)[0]) for _, y in ordered)
        if low_precision is None:
            low_precision = self.current_stage.cache_in_float16
        pairs = "".join(str(p) for p in self.active_pairs)
        name = name or f"{self.stage}{'_pairs' + pairs if pairs else ''}_teacher_outputs"
        forward = tf.function(self.teacher_outputs, reduce_retracing=True)
        return build_cache(forward, ordered, num_examples, low_precision, memory_budget_bytes, directory, mode,
                           name)

    @staticmethod
    def _split_inputs(x):
        """(images, cached teacher outputs or None). Only a batch marked by `cached_batch` carries outputs."""
        if isinstance(x, dict) and TEACHER_OUTPUTS in x:
            return x[IMAGES], tuple(x[TEACHER_OUTPUTS])
        return x, None

    def _teacher_targets(self, x):
        """(images, the teacher's outputs for this stage, or () when it needs none): cached ones if the batch
        carries them, else the teacher's forward pass; never differentiated."""
        images, cached = self._split_inputs(x)
        if not self.current_stage.needs_teacher:
            return images, ()
        targets = cached if cached is not None else self.teacher_outputs(images)
        return images, tuple(tf.stop_gradient(t) for t in targets)

    def _update_metrics(self, total, terms, y, logits):
        self.loss_tracker.update_state(total)
        self.current_stage.update_metrics(terms, y, logits)
        return rank_one_logs({m.name: m.result() for m in self.metrics}, self.distribute_strategy)

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.stage_variables
        if self._step_parts is None:
            # The teacher runs before the tape: its (trainable) variables are never watched and none of its
            # activations are kept for a backward pass.
            x, teacher_targets = self._teacher_targets(x)
            gradients, per_example, terms, logits = self._gradients(x, y, teacher_targets, global_batch_size(y))
        else:  # XLA per model: the teacher's forward and the student's part are separately traced functions
            teacher_forward, student_gradients = self._step_parts
            x, cached = self._split_inputs(x)
            teacher_targets = cached if cached is not None else teacher_forward(x)
            teacher_targets = tuple(tf.stop_gradient(t) for t in teacher_targets)
            gradients, per_example, terms, logits = student_gradients(x, y, teacher_targets, global_batch_size(y))
        self.optimizer.apply(gradients, variables)
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
        x, teacher_targets = self._teacher_targets(x)
        per_example, terms, logits = self.current_stage.per_example_losses(x, y, teacher_targets, training=False)
        return self._update_metrics(per_example, terms, y, logits)

    def fit(self, *args, callbacks=None, **kwargs):
        """`keras.Model.fit`, with the stage's callbacks first (stage "kd": lambda from the schedule each epoch). A
        tf.data dataset is shuffled by its own pipeline, so `shuffle` defaults to False for it (Keras would warn at
        every call that it ignores its own default, shuffle=True)."""
        if self.current_stage is None:
            raise RuntimeError("Call compile(optimizer, stage=...) before fit().")
        x = kwargs.get("x", args[0] if args else None)
        if isinstance(x, tf.data.Dataset) and "shuffle" not in kwargs and len(args) < 9:
            kwargs["shuffle"] = False
        callbacks = [*self.current_stage.callbacks(), *(callbacks or [])]
        return super().fit(*args, callbacks=callbacks, **kwargs)


def cached_batch(images, teacher_outputs):
    """The inputs of a batch that carries the teacher's outputs: {"images": images, "teacher_outputs": tuple}.

    The mark is explicit, so a model's own inputs (a tuple of two tensors for a two-input model) are never taken
    for cached outputs.
    """
    return {IMAGES: images, TEACHER_OUTPUTS: tuple(teacher_outputs)}


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
