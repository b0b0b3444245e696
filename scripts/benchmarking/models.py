"""The networks and trainers of one benchmark: the teacher, the student, a `Distiller` per stage (and per teacher
precision), Keras's own distiller, and the stage-1 reference without the teacher (`TruncatedStudentStep`)."""

import dataclasses
from typing import Optional

import keras
import tensorflow as tf

from benchmarking.config import BenchmarkConfig
from fitnets_tf import losses
from fitnets_tf.distiller import Distiller, global_batch_size
from fitnets_tf.stages import HintPair, HintStage, KDStage
from fitnets_tf.models import build_network
from fitnets_tf.models.zoo import get_spec
from fitnets_tf.optimizers import build_optimizer
from fitnets_tf.precision import resolve_teacher_precision


def single_output(outputs):
    """The one tensor of a one-output sub-model (Keras returns a list when the outputs were given as a list)."""
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


class TruncatedStudentStep:
    """Stage 1 without the teacher: the reference the stage-1 step is compared with.

    The guided sub-model and the regressor of a stage-1 `Distiller` (the same variables) are trained towards a
    FIXED hint tensor, with the step of `Distiller.train_step` in stage "hint": the same `losses.hint_loss`,
    `tf.nn.compute_average_loss`, loss scaling, `optimizer.apply` and a running-mean metric. So
    t(stage 1) - t(this) - t(truncated teacher forward) is what combining them costs.
    """

    def __init__(self, distiller, hint_target, optimizer):
        if distiller.stage != "hint":
            raise ValueError(f"TruncatedStudentStep needs a Distiller compiled for stage 'hint'. "
                             f"Received stage={distiller.stage!r}")
        stage = distiller.current_stage
        self.guided_model = stage.guided_model
        (self.regressor,) = stage.regressors
        self.hint_spatial_mean = stage.spatial_mean
        self.hint_target = hint_target
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # What Keras' compile() does.
        self.optimizer = optimizer
        self.variables = list(self.guided_model.trainable_variables) + list(self.regressor.trainable_variables)
        self.optimizer.build(self.variables)
        self.loss_tracker = keras.metrics.Mean(name="hint_loss")

    def train_step(self, x):
        with tf.GradientTape() as tape:
            regressed = self.regressor(single_output(self.guided_model(x, training=True)), training=True)
            per_example = losses.hint_loss(self.hint_target, regressed, self.hint_spatial_mean)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size(per_example))
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.variables)
        self.optimizer.apply(gradients, self.variables)
        self.loss_tracker.update_state(per_example)
        return {"hint_loss": self.loss_tracker.result()}


def keras_distiller(teacher, student, temperature, optimizer, jit_compile=False):
    """Keras's own `keras.distillation.Distiller` with `LogitsDistillation(temperature)` on the pair, compiled with
    `jit_compile` (Keras resolves "auto", its default: off on a CPU): student loss sparse CE on logits, weight
    0.5, and an accuracy metric.

    It freezes the teacher (`teacher.trainable = False`); ours never trains it either. `teacher` must return
    logits (KD on probabilities would be another loss).
    """
    keras_kd = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=keras.distillation.LogitsDistillation(temperature=temperature),
        student_loss_weight=0.5,
        name="keras_distiller",
    )
    keras_kd.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )
    return keras_kd


@dataclasses.dataclass
class BenchmarkModels:
    """The networks and trainers of one benchmark (they share the student's and the teacher's variables)."""

    teacher: keras.Model
    student: keras.Model
    ce: Distiller
    hint: Distiller
    kd: Distiller
    keras_kd: keras.Model
    truncated_student: TruncatedStudentStep
    hint_pair: HintPair
    kd_lowp: Optional[Distiller]  # None when the teacher precision is float32
    kd_auto: Distiller


def build_models(config: BenchmarkConfig, x, y):
    """Builds the teacher, the student and every trainer, each with its own optimizer, and builds their variables.

    Each trainer makes one eager step on (x, y), which creates its optimizer slots and metric variables.
    """
    teacher = build_network(get_spec(config.teacher), seed=config.seed)
    student_spec = get_spec(config.student, input_shape=teacher.input_shape[1:],
                            num_classes=teacher.output_shape[-1])
    student = build_network(student_spec, seed=config.seed + 1)
    pair = HintPair(
        guided=config.guided_layer or get_spec(config.student).hint_layer,
        hint=config.hint_layer or get_spec(config.teacher).hint_layer,
    )

    def optimizer():
        # Keras's RMSprop (rmsprop_max_scaling=0), as docs/benchmark.md's figures were measured.
        return build_optimizer(config.optimizer, config.learning_rate)

    def kd_stage():
        return KDStage(temperature=config.temperature, kd_lambda=config.kd_lambda)

    ce = Distiller(student, name="ce_distiller")
    ce.compile(optimizer(), stage="ce", jit_compile=False)
    hint = Distiller(student, teacher, name="hint_distiller")
    hint.compile(optimizer(), stage=HintStage([pair], seed=config.seed), jit_compile=False)
    kd = Distiller(student, teacher, name="kd_distiller")
    kd.compile(optimizer(), stage=kd_stage(), jit_compile=False)
    keras_kd = keras_distiller(teacher, student, config.temperature, optimizer())
    hint_target = tf.constant(single_output(hint.current_stage.hint_model(x, training=False)))
    truncated = TruncatedStudentStep(hint, hint_target, optimizer())
    kd_lowp = None
    if resolve_teacher_precision(config.teacher_precision) != "float32":
        kd_lowp = Distiller(student, teacher, teacher_precision=config.teacher_precision, name="kd_lowp_distiller")
        kd_lowp.compile(optimizer(), stage=kd_stage(), jit_compile=False)
    # Stage 2 as a run with teacher_precision "auto" builds it (RunConfig: teacher_precision, jit_compile and
    # teacher_jit_compile all "auto").
    kd_auto = Distiller(student, teacher, teacher_precision="auto", name="kd_auto_distiller")
    kd_auto.compile(optimizer(), stage=kd_stage(), jit_compile="auto", teacher_jit_compile="auto")
    for trainer in (ce, hint, kd, keras_kd, kd_lowp, kd_auto):
        if trainer is not None:
            trainer.train_step((x, y))
    truncated.train_step(x)
    return BenchmarkModels(teacher, student, ce, hint, kd, keras_kd, truncated, hint.current_stage.hint_pairs[0],
                           kd_lowp, kd_auto)

