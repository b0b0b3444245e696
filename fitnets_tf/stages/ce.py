"""Plain cross-entropy: the teacher's own training and the backpropagation baseline (the student alone).

    W*_S = argmin over W_S of H(y_true, P_S),   P_S = softmax(a_S)

No teacher, no hints, no settings. Logs: `loss` (= `ce_loss`), `ce_loss` and `accuracy`.
"""

import keras

from fitnets_tf import losses
from fitnets_tf.stages.base import Stage


class CEStage(Stage):
    """The model alone on the labels' cross-entropy."""

    name = "ce"

    def build(self, distiller):
        self.ce_loss_tracker = keras.metrics.Mean(name="ce_loss")
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def variables(self):
        """All of the model's trainable variables."""
        return list(self.distiller.student.trainable_variables)

    def per_example_losses(self, images, labels, teacher_outputs, training):
        """H(y_true, P_S) per example (`losses.cross_entropy`); the model's logits."""
        logits = self.distiller.student_logits(images, training=training)
        ce = losses.cross_entropy(labels, logits)
        return ce, {"ce_loss": ce}, logits

    @property
    def metrics(self):
        return [self.ce_loss_tracker, self.accuracy_metric]

    def update_metrics(self, terms, labels, logits):
        self.ce_loss_tracker.update_state(terms["ce_loss"])
        self.accuracy_metric.update_state(labels, logits)
