"""The stages as units (`fitnets_tf/stages/`): their names in the logs, their refusals, and that a new stage is one
`Stage` subclass the Distiller runs with its shared step."""

import keras
import numpy as np
import pytest

from fitnets_tf import Distiller, HintPair, losses
from fitnets_tf.stages import STAGE_CLASSES, Stage
from tests.test_distiller import changed, data, snapshot, teacher_and_student


@pytest.mark.parametrize("stage,names", [
    ("hint", ["loss", "hint_loss"]),
    ("kd", ["loss", "ce_loss", "kd_loss", "kd_lambda", "accuracy"]),
    ("ce", ["loss", "ce_loss", "accuracy"]),
])
def test_each_stage_logs_its_metrics_under_the_names_of_the_logs_tensorboard_and_json(stage, names):
    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher, hint_pairs=[HintPair(4, 2)])
    distiller.compile(keras.optimizers.SGD(1e-3), stage=stage)
    assert distiller.stage == stage and isinstance(distiller.current_stage, STAGE_CLASSES[stage])
    assert [m.name for m in distiller.metrics] == names
    history = distiller.fit(*data(16), batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == set(names)


def test_stage_specific_settings_and_models_are_refused_elsewhere():
    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher, hint_pairs=[HintPair(4, 2)])
    with pytest.raises(ValueError, match="pairs applies to stage 'hint' only. Received: stage='kd'"):
        distiller.compile("sgd", stage="kd", pairs=[0])
    distiller.compile("sgd", stage="ce")
    with pytest.raises(ValueError, match="Stage 'ce' uses no teacher outputs"):
        distiller.teacher_outputs(data(2)[0])
    with pytest.raises(AttributeError, match="Only stage 'hint' has truncated models. Received: stage='ce'"):
        distiller.guided_model  # noqa: B018
    with pytest.raises(ValueError, match="regressors were discarded"):
        distiller.compile("sgd", stage="hint")


class SoftTargetsStage(Stage):
    """Test-only: the student on the teacher's softened outputs alone, H(P_T^tau, P_S^tau)."""

    name = "soft"
    needs_teacher = True

    def __init__(self, distiller, pairs=None):
        super().__init__(distiller, pairs)
        self.soft_loss_tracker = keras.metrics.Mean(name="soft_loss")

    @property
    def variables(self):
        return list(self.distiller.student.trainable_variables)

    def teacher_outputs(self, images):
        return (self.distiller.teacher_logits(images, training=False),)

    def per_example_losses(self, images, labels, teacher_outputs, training):
        logits = self.distiller.student_logits(images, training=training)
        soft = losses.soft_cross_entropy(teacher_outputs[0], logits, self.distiller.temperature)
        return soft, {"soft_loss": soft}, logits

    @property
    def metrics(self):
        return [self.soft_loss_tracker]

    def update_metrics(self, terms, labels, logits):
        self.soft_loss_tracker.update_state(terms["soft_loss"])


def test_a_new_stage_is_one_class(monkeypatch):
    monkeypatch.setitem(STAGE_CLASSES, "soft", SoftTargetsStage)
    teacher, student = teacher_and_student()
    teacher.get_layer("logits").kernel.assign(teacher.get_layer("logits").kernel * 30.0)  # far from uniform
    distiller = Distiller(student, teacher, hint_pairs=[HintPair(4, 2)])
    distiller.compile(keras.optimizers.Adam(1e-2), stage="soft")
    assert distiller.regressors == []  # a stage that does not train them discards them (Algorithm 1)
    t0, s0 = snapshot(teacher), snapshot(student)
    x, _ = data()
    # Labels the student is never told: only the teacher's outputs teach it.
    history = distiller.fit(x, np.zeros(len(x), int), batch_size=16, epochs=5, verbose=0).history
    assert set(history) == {"loss", "soft_loss"} and history["loss"] == history["soft_loss"]
    assert history["soft_loss"][-1] < history["soft_loss"][0]
    assert changed(t0, teacher) == set() and changed(s0, student) == set(s0)


def test_a_stage_without_its_loss_or_variables_cannot_be_built():
    from fitnets_tf.stages.base import Stage

    class Incomplete(Stage):
        name = "incomplete"

        @property
        def variables(self):
            return []

    with pytest.raises(TypeError, match="per_example_losses"):
        Incomplete(distiller=None)
