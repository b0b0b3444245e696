"""Stage 2, knowledge distillation (Romero et al. 2015, Algorithm 1 line 4; Eq. 2 after Hinton et al. 2015).

    W*_S = argmin over W_S of L_KD(W_S),   L_KD = H(y_true, P_S) + lambda * H(P_T^tau, P_S^tau)

Trains the whole student (its layers up to the guided one start from stage 1's W*_Guided) against the frozen
teacher's logits softened by tau; lambda follows the stage's schedule, set at the start of every epoch by
`KDLambdaCallback` (paper: 4 annealed linearly to 1).

Logs: `loss`, `ce_loss` (H(y_true, P_S)), `kd_loss` (H(P_T^tau, P_S^tau)), `kd_lambda` and `accuracy`.
"""

import math
import numbers

import keras

from fitnets_tf import losses
from fitnets_tf.schedules import KDLambdaSchedule
from fitnets_tf.stages.base import Stage


def check_temperature(temperature):
    """tau as a float; refuses anything but a finite number > 0."""
    if isinstance(temperature, bool) or not (isinstance(temperature, numbers.Real) and math.isfinite(temperature)
                                             and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0. Received: temperature={temperature}")
    return float(temperature)


def as_schedule(kd_lambda):
    """A `KDLambdaSchedule` from a schedule or a constant lambda."""
    return kd_lambda if isinstance(kd_lambda, KDLambdaSchedule) else KDLambdaSchedule.constant(kd_lambda)


class KDStage(Stage):
    """Stage 2: the student on the labels and on the teacher's softened outputs.

    Args:
        temperature: tau of the softened outputs (paper: 3).
        kd_lambda: a float or a `KDLambdaSchedule` (paper: 4 -> 1 linear); read at the start of each epoch.
        tau_squared: multiply the soft term by tau^2 (Hinton et al.); off in the paper and its code.

    Once bound, `kd_lambda` is the variable the step reads (set from `kd_lambda_schedule` every epoch).
    """

    name = "kd"
    needs_teacher = True

    def __init__(self, temperature=3.0, kd_lambda=KDLambdaSchedule(4.0, 1.0, 0, 150), tau_squared=False):
        self.temperature = check_temperature(temperature)
        self.kd_lambda_schedule = as_schedule(kd_lambda)
        self.tau_squared = bool(tau_squared)

    def build(self, distiller):
        self.kd_lambda = keras.Variable(self.kd_lambda_schedule(0), dtype="float32", trainable=False,
                                        name="kd_lambda")
        self.ce_loss_tracker = keras.metrics.Mean(name="ce_loss")
        self.kd_loss_tracker = keras.metrics.Mean(name="kd_loss")
        self.kd_lambda_tracker = keras.metrics.Mean(name="kd_lambda")
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def variables(self):
        """All of the student's trainable variables (W_S)."""
        return list(self.distiller.student.trainable_variables)

    def teacher_outputs(self, images):
        """(a_T,): the teacher's pre-softmax logits."""
        return (self.distiller.teacher_logits(images, training=False),)

    def per_example_losses(self, images, labels, teacher_outputs, training):
        """L_KD per example (`losses.kd_loss`), with its two terms; the student's logits."""
        logits = self.distiller.student_logits(images, training=training)
        total, ce, soft = losses.kd_loss(labels, logits, teacher_outputs[0], self.temperature, self.kd_lambda,
                                         self.tau_squared)
        return total, {"ce_loss": ce, "kd_loss": soft}, logits

    @property
    def metrics(self):
        return [self.ce_loss_tracker, self.kd_loss_tracker, self.kd_lambda_tracker, self.accuracy_metric]

    def update_metrics(self, terms, labels, logits):
        self.ce_loss_tracker.update_state(terms["ce_loss"])
        self.kd_loss_tracker.update_state(terms["kd_loss"])
        self.kd_lambda_tracker.update_state(self.kd_lambda)
        self.accuracy_metric.update_state(labels, logits)

    def callbacks(self):
        return [KDLambdaCallback(self)]


class KDLambdaCallback(keras.callbacks.Callback):
    """Sets `stage.kd_lambda` from its schedule at the beginning of each (absolute, 0-based) epoch."""

    def __init__(self, stage):
        super().__init__()
        self.stage = stage

    def on_epoch_begin(self, epoch, logs=None):
        self.stage.kd_lambda.assign(self.stage.kd_lambda_schedule(epoch))
