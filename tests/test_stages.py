"""The stages as units (`fitnets_tf/stages/`): each an object that owns its settings, its names in the logs, its
refusals; a new stage is one `Stage` subclass the Distiller runs with its shared step; and the one-stage FitNet
(`stages/one_stage.py`) against a NumPy reference and its invariants."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fitnets_tf import Distiller, HintPair, HintStage, KDStage, OneStageFitNetStage, losses
from fitnets_tf.stages import STAGE_CLASSES, Stage, make_stage
from tests.test_distiller import changed, data, snapshot, teacher_and_student


@pytest.mark.parametrize("stage,names", [
    ("hint", ["loss", "hint_loss"]),
    ("kd", ["loss", "ce_loss", "kd_loss", "kd_lambda", "accuracy"]),
    ("ce", ["loss", "ce_loss", "accuracy"]),
    ("one_stage", ["loss", "ce_loss", "hint_loss", "accuracy"]),
])
def test_each_stage_logs_its_metrics_under_the_names_of_the_logs_tensorboard_and_json(stage, names):
    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher)
    objects = {"hint": HintStage([HintPair(4, 2)]), "one_stage": OneStageFitNetStage([HintPair(4, 2)])}
    distiller.compile(keras.optimizers.SGD(1e-3), stage=objects.get(stage, stage))
    assert distiller.stage == stage and isinstance(distiller.current_stage, STAGE_CLASSES[stage])
    assert [m.name for m in distiller.metrics] == names
    history = distiller.fit(*data(16), batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == set(names)


def test_a_stage_name_builds_the_stage_with_its_default_settings_and_each_stage_names_its_monitor():
    assert isinstance(make_stage("kd"), KDStage) and make_stage("kd").temperature == 3.0
    assert make_stage("hint").pairs == "auto"
    stage = KDStage(temperature=2.0)
    assert make_stage(stage) is stage
    assert HintStage().monitor == ("val_hint_loss", "min")
    assert KDStage().monitor == OneStageFitNetStage().monitor == ("val_accuracy", "max")


def test_a_stage_without_a_teacher_has_no_teacher_outputs():
    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher)
    distiller.compile("sgd", stage="ce")
    with pytest.raises(ValueError, match="Stage 'ce' uses no teacher outputs"):
        distiller.teacher_outputs(data(2)[0])


class SoftTargetsStage(Stage):
    """Test-only: the student on the teacher's softened outputs alone, H(P_T^tau, P_S^tau), at its own tau."""

    name = "soft"
    needs_teacher = True

    def __init__(self, temperature=2.0):
        self.temperature = temperature

    def build(self, distiller):
        self.soft_loss_tracker = keras.metrics.Mean(name="soft_loss")

    @property
    def variables(self):
        return list(self.distiller.student.trainable_variables)

    def teacher_outputs(self, images):
        return (self.distiller.teacher_logits(images, training=False),)

    def per_example_losses(self, images, labels, teacher_outputs, training):
        logits = self.distiller.student_logits(images, training=training)
        soft = losses.soft_cross_entropy(teacher_outputs[0], logits, self.temperature)
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
    distiller = Distiller(student, teacher)
    hints = HintStage([HintPair(4, 2)])
    distiller.compile(keras.optimizers.Adam(1e-2), stage=hints)
    distiller.compile(keras.optimizers.Adam(1e-2), stage="soft")
    assert hints.regressors == []  # the stage before ended: its regressors are discarded (Algorithm 1)
    t0, s0 = snapshot(teacher), snapshot(student)
    x, _ = data()
    # Labels the student is never told: only the teacher's outputs teach it.
    history = distiller.fit(x, np.zeros(len(x), int), batch_size=16, epochs=5, verbose=0).history
    assert set(history) == {"loss", "soft_loss"} and history["loss"] == history["soft_loss"]
    assert history["soft_loss"][-1] < history["soft_loss"][0]
    assert changed(t0, teacher) == set() and changed(s0, student) == set(s0)


def test_the_layers_a_stage_adds_are_checked_for_xla_with_the_students():
    class WithOwnLayer(SoftTargetsStage):
        def build(self, distiller):
            super().build(distiller)
            self.extra = keras.layers.Dense(2)
            self.extra.supports_jit = False

        @property
        def own_layers(self):
            return [self.extra]

    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher)
    distiller.compile("sgd", stage=SoftTargetsStage(), jit_compile=True)
    assert distiller.xla_settings["student"] is True
    distiller.compile("sgd", stage=WithOwnLayer(), jit_compile=True)
    assert distiller.xla_settings["student"] is False  # a layer of the stage does not support XLA


def test_a_stage_without_its_loss_or_variables_cannot_be_built():
    class Incomplete(Stage):
        name = "incomplete"

        @property
        def variables(self):
            return []

    with pytest.raises(TypeError, match="per_example_losses"):
        Incomplete()


def test_one_stage_per_pair_seeds_each_regressor_by_its_index_in_the_run_like_the_joint_stage():
    teacher, student = teacher_and_student()
    pairs = [HintPair(2, 1), HintPair(4, 2)]
    joint, second = HintStage(pairs, seed=3), HintStage(pairs[1:], seed=3, first_pair=1)
    joint.bind(Distiller(student, teacher))
    second.bind(Distiller(student, teacher))
    for a, b in zip(joint.regressors[1].get_weights(), second.regressors[0].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_run_with_one_stage_per_pair_checkpoints_every_pairs_regressor_in_order():
    """The layout of every run so far: a stage of pair k saves all the pairs' regressors, so a run recorded by an
    earlier version resumes with each regressor in its place."""
    from fitnets_tf.data import dataset_info
    from fitnets_tf.harness import networks, pipeline

    config = pipeline.RunConfig(model_dir="", hints=((2, 1), (4, 2)), hint_mode="sequential")
    import tensorflow as tf

    built = networks.build_networks(config, dataset_info("digits"), tf.distribute.get_strategy())
    first, second = built.hint_stages
    every = [*first.regressors, *second.regressors]
    for stage in (first, second):
        assert stage.checkpoint_objects()["regressors"] == every
    assert len(built.pairs) == 2 and len(every) == 2 and every[0] is not every[1]


# ------------------------------------------------------------------------------------------ one-stage FitNet
def numpy_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("kd_lambda", [0.0, 2.0])
def test_the_one_stage_loss_is_ce_plus_beta_times_the_per_element_mse_plus_optional_kd(kd_lambda):
    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher)
    stage = OneStageFitNetStage([HintPair(4, 2)], beta=100.0, kd_lambda=kd_lambda, temperature=3.0, seed=0)
    distiller.compile(keras.optimizers.SGD(0.0), stage=stage)
    x, y = data(16)
    logs = distiller.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    # The reference, in NumPy, from sub-models built here: HintPair(4, 2) is the student's 4th convolution and the
    # teacher's 2nd, each with the max-pooling that follows it ("pool1" in both networks).
    hint, guided = (np.asarray(sub_model(model, "pool1")(x)) for model in (teacher, student))
    regressed = np.asarray(stage.regressors[0](guided))
    logits = np.asarray(student(x))
    ce = -numpy_log_softmax(logits)[np.arange(16), y]
    mse_per_example = ((hint - regressed) ** 2).reshape(16, -1).mean(axis=1)  # RepDistiller's nn.MSELoss
    expected = ce + 100.0 * mse_per_example
    if kd_lambda:
        teacher_probs = np.exp(numpy_log_softmax(np.asarray(teacher(x)) / 3.0))
        soft = -(teacher_probs * numpy_log_softmax(logits / 3.0)).sum(axis=1)
        expected = expected + kd_lambda * soft
        assert logs["kd_loss"] == pytest.approx(soft.mean(), rel=1e-4)
    assert logs["loss"] == pytest.approx(expected.mean(), rel=1e-4)
    assert logs["ce_loss"] == pytest.approx(ce.mean(), rel=1e-4)
    # hint_loss is logged as stage 1 logs it: Eq. 3's L_HT, half the sum of squares.
    assert logs["hint_loss"] == pytest.approx((0.5 * ((hint - regressed) ** 2).reshape(16, -1).sum(1)).mean(),
                                              rel=1e-4)


def sub_model(model, layer_name):
    return keras.Model(model.inputs, model.get_layer(layer_name).output)


def test_one_step_of_the_one_stage_fitnet_is_sgd_on_the_gradient_of_its_reference_loss():
    """The update of the student and the regressor against tf.GradientTape on the loss written out here."""
    teacher, student = teacher_and_student(seed=3)
    distiller = Distiller(student, teacher)
    stage = OneStageFitNetStage([HintPair(4, 2)], beta=np.float32(100.0), seed=0)
    distiller.compile(keras.optimizers.SGD(0.05), stage=stage)
    regressor = stage.regressors[0]
    x, y = data(16, seed=4)
    hint = sub_model(teacher, "pool1")(x)
    guided_model = sub_model(student, "pool1")
    variables = [*student.trainable_variables, *regressor.trainable_variables]
    with tf.GradientTape() as tape:
        ce = keras.losses.sparse_categorical_crossentropy(y, student(x), from_logits=True)
        mse = tf.reduce_mean(tf.square(hint - regressor(guided_model(x))))  # over the batch, as nn.MSELoss
        loss = tf.reduce_mean(ce) + 100.0 * mse
    expected = [v.numpy() - 0.05 * g.numpy() for v, g in zip(variables, tape.gradient(loss, variables))]
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for variable, value in zip(variables, expected):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-4, atol=1e-6, err_msg=variable.path)


def test_the_one_stage_fitnet_trains_the_whole_student_and_the_regressor_from_the_first_step_never_the_teacher():
    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher)
    stage = OneStageFitNetStage([HintPair(4, 2)], beta=100.0, seed=0)
    distiller.compile(keras.optimizers.Adam(1e-2), stage=stage)
    t0, s0, r0 = snapshot(teacher), snapshot(student), snapshot(stage.regressors[0])
    history = distiller.fit(*data(), batch_size=16, epochs=4, verbose=0).history
    assert changed(t0, teacher) == set()
    assert changed(s0, student) == set(s0)  # every student weight, the layers after the guided one too
    assert changed(r0, stage.regressors[0]) == set(r0)
    assert history["loss"][-1] < history["loss"][0] and history["hint_loss"][-1] < history["hint_loss"][0]
    # Its student and its regressor are checkpointed; the next stage discards the regressor.
    assert set(stage.checkpoint_objects()) == {"regressors"}
    distiller.compile(keras.optimizers.Adam(1e-2), stage="ce")
    assert stage.regressors == []
    with pytest.raises(ValueError, match="cannot run again"):  # its regressors are gone: it is not bound again
        distiller.compile(keras.optimizers.Adam(1e-2), stage=stage)
    assert distiller.stage == "ce"


def test_the_one_stage_fitnet_with_beta_zero_is_the_student_on_cross_entropy():
    """beta = 0 and no KD: the same update as the CE stage from the same weights (the regressor moves nothing)."""
    weights = []
    for stage in (OneStageFitNetStage([HintPair(4, 2)], beta=0.0, seed=0), "ce"):
        teacher, student = teacher_and_student(seed=5)
        distiller = Distiller(student, teacher)
        distiller.compile(keras.optimizers.SGD(0.1), stage=stage)
        distiller.fit(*data(32), batch_size=16, epochs=1, verbose=0, shuffle=False)
        weights.append([v.numpy() for v in student.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_one_stage_fitnet_refuses_bad_settings():
    for bad in (-1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
            OneStageFitNetStage(beta=bad)
        with pytest.raises(ValueError, match="kd_lambda must be a finite number >= 0"):
            OneStageFitNetStage(kd_lambda=bad)
    teacher, student = teacher_and_student()
    before, paths = snapshot(student), [v.path for v in student.weights]
    stage = OneStageFitNetStage([HintPair(4, 2)])
    with pytest.raises(ValueError, match="needs a teacher"):
        Distiller(student).compile("sgd", stage=stage)
    assert [v.path for v in student.weights] == paths and not changed(before, student)  # nothing added or moved
    assert stage.distiller is None and stage.regressors == []  # the refused stage was not half bound:
    Distiller(student, teacher).compile("sgd", stage=stage)  # it compiles where a teacher is given
    assert stage.regressors and stage.regressors[0].built
