"""Stage 2, knowledge distillation (Romero et al. 2015, Algorithm 1 line 4; Eq. 2 after Hinton et al. 2015).

    W*_S = argmin over W_S of L_KD(W_S),   L_KD = H(y_true, P_S) + lambda * H(P_T^tau, P_S^tau)

Trains the whole student (its layers up to the guided one start from stage 1's W*_Guided) against the frozen
teacher's logits softened by tau; lambda follows `Distiller.kd_lambda_schedule`, set at the start of every epoch by
`KDLambdaCallback` (paper: 4 annealed linearly to 1). The regressors were discarded when this stage was compiled.

Logs: `loss`, `ce_loss` (H(y_true, P_S)), `kd_loss` (H(P_T^tau, P_S^tau)), `kd_lambda` and `accuracy`.
"""

import keras

from fitnets_tf import losses
from fitnets_tf.stages.base import Stage


class KDStage(Stage):
    """Stage 2: the student on the labels and on the teacher's softened outputs."""

    name = "kd"
    needs_teacher = True

    def __init__(self, distiller, pairs=None):
        super().__init__(distiller, pairs)
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
        d = self.distiller
        logits = d.student_logits(images, training=training)
        total, ce, soft = losses.kd_loss(labels, logits, teacher_outputs[0], d.temperature, d.kd_lambda,
                                         d.tau_squared)
        return total, {"ce_loss": ce, "kd_loss": soft}, logits

    @property
    def metrics(self):
        return [self.ce_loss_tracker, self.kd_loss_tracker, self.kd_lambda_tracker, self.accuracy_metric]

    def update_metrics(self, terms, labels, logits):
        self.ce_loss_tracker.update_state(terms["ce_loss"])
        self.kd_loss_tracker.update_state(terms["kd_loss"])
        self.kd_lambda_tracker.update_state(self.distiller.kd_lambda)
        self.accuracy_metric.update_state(labels, logits)

    def callbacks(self):
        return [KDLambdaCallback(self.distiller)]


class KDLambdaCallback(keras.callbacks.Callback):
    """Sets `distiller.kd_lambda` from its schedule at the beginning of each (absolute, 0-based) epoch."""

    def __init__(self, distiller):
        super().__init__()
        self.distiller = distiller

    def on_epoch_begin(self, epoch, logs=None):
        self.distiller.kd_lambda.assign(self.distiller.kd_lambda_schedule(epoch))
