"""Distilling the user's own models: taps into functional, Sequential, nested, pyramid and subclassed models, a
softmax-ending keras.applications teacher, automatic pairing, and the stage invariants on every one of them."""

import keras
import numpy as np
import pytest

from fitnets_tf import Distiller, HintPair, HintStage, taps
from fitnets_tf.models import FitNetsNetwork, build_network, truncated_model, zoo
from tests.test_distiller import changed, layer_of, snapshot

SHAPE = (32, 32, 3)
CLASSES = 10
BACKBONE = "mobilenetv2_0.35_32"


def images(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *SHAPE)).astype("float32"), rng.integers(0, CLASSES, n)


def mobilenet_teacher(classifier_activation="softmax"):
    """A user's model wrapping a keras.applications backbone (weights=None: offline), softmax-ending by default."""
    backbone = keras.applications.MobileNetV2(weights=None, input_shape=SHAPE, alpha=0.35, classes=CLASSES,
                                              classifier_activation=classifier_activation)
    assert backbone.name == BACKBONE
    inputs = keras.Input(SHAPE, name="pixels")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(inputs)
    return keras.Model(inputs, backbone(x), name="user_teacher")


def functional_student(seed=1):
    """A thin deep functional student with arbitrary layer names c1..c7 and pools p2, p4."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPE, name="x")
    h = inputs
    for i in range(1, 8):
        h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name=f"c{i}")(h)
        if i in (2, 4):
            h = keras.layers.MaxPooling2D(name=f"p{i}")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="head")(h), name="student")


class SubclassedStudent(keras.Model):
    """A subclassed student with the intermediate-outputs protocol, and a side branch (`aux`) that reads block1 but
    that block2 does not depend on: stage 1 guided at block2 must leave it alone."""

    intermediate_names = ("block1", "block2", "block3")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv_a")
        self.conv2 = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv_b")
        self.conv3 = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv_c")
        self.aux = keras.layers.Dense(CLASSES, name="aux")
        self.head = keras.layers.Dense(CLASSES, name="head")
        self.pool = keras.layers.GlobalAveragePooling2D()

    def intermediate_outputs(self, inputs, names, training=False):
        b1 = self.conv1(inputs)
        b2 = self.conv2(b1)
        b3 = self.conv3(b2)
        return {"block1": b1, "block2": b2, "block3": b3}

    def call(self, inputs, training=False):
        out = self.intermediate_outputs(inputs, self.intermediate_names, training)
        return self.head(self.pool(out["block3"])) + 0.1 * self.aux(self.pool(out["block1"]))


class ProbabilityTeacher(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(CLASSES)

    def call(self, inputs, training=False):
        return keras.ops.softmax(self.dense(keras.ops.reshape(inputs, (-1, int(np.prod(SHAPE))))))


def owner(path):
    """The layer of a variable path ("sub/conv_a/kernel" in a subclassed model -> "conv_a")."""
    return path.split("/")[-2]


def hinted(student, teacher, pairs, **kwargs):
    """(Distiller, its stage 1 bound to it: the pairs resolved, the regressors built)."""
    distiller, stage = Distiller(student, teacher, **kwargs), HintStage(pairs)
    stage.bind(distiller)
    return distiller, stage


def run_stage(distiller, stage, epochs=2):
    x, y = images()
    distiller.compile(keras.optimizers.Adam(1e-2), stage=stage)
    return distiller.fit(x, y, batch_size=4, epochs=epochs, verbose=0, shuffle=False)


# -------------------------------------------------------------------------------------- resolution and cuts
def test_references_resolve_on_functional_sequential_nested_and_pyramid_models():
    teacher = mobilenet_teacher()
    tap = taps.resolve(teacher, f"{BACKBONE}/block_3_expand_relu", "hint layer")
    assert tap.name == f"{BACKBONE}/block_3_expand_relu" and isinstance(tap.layer, keras.layers.ReLU)
    cut = taps.tap_model(teacher, [tap], "cut")
    x, _ = images(2)
    # The same tensor, computed independently: the backbone's own sub-model on the rescaled images.
    backbone = teacher.get_layer(BACKBONE)
    reference = keras.Model(backbone.input, backbone.get_layer("block_3_expand_relu").output)(2.0 * x - 1.0)
    np.testing.assert_allclose(np.asarray(cut(x)), np.asarray(reference), rtol=1e-5, atol=1e-5)
    # The cut shares the teacher's variables (no copies).
    teacher_ids = {id(v) for v in teacher.weights}
    assert cut.weights and all(id(v) in teacher_ids for v in cut.weights)

    sequential = keras.Sequential([keras.Input(SHAPE), keras.layers.Conv2D(4, 3, name="first"),
                                   keras.layers.Conv2D(4, 3, name="second"), keras.layers.Flatten(),
                                   keras.layers.Dense(CLASSES)], name="seq")
    assert taps.tap_model(sequential, [taps.resolve(sequential, "second")], "s").output_shape == (None, 28, 28, 4)

    inputs = keras.Input(SHAPE)
    p1 = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="stem")(inputs)
    p2 = keras.layers.Conv2D(5, 3, strides=2, padding="same", name="down")(p1)
    pyramid = keras.Model(inputs, keras.layers.Dense(CLASSES)(keras.layers.Flatten()(p2)), name="pyr")
    pyramid.pyramid_outputs = {"P1": p1, "P2": p2}
    tap = taps.resolve(pyramid, "P1")
    assert tap.layer.name == "stem"
    assert taps.tap_model(pyramid, [tap], "p").output_shape == (None, 16, 16, 4)


def test_unknown_references_name_the_model_and_the_choices():
    teacher = mobilenet_teacher()
    with pytest.raises(ValueError, match=f"Nested models .*{BACKBONE}"):
        taps.resolve(teacher, "block_3_expand_relu", "hint layer")
    with pytest.raises(ValueError, match=f"no layer 'nope' in model '{BACKBONE}'"):
        taps.resolve(teacher, f"{BACKBONE}/nope", "hint layer")
    with pytest.raises(ValueError, match="a paper index needs one of the zoo's networks"):
        taps.resolve(functional_student(), 4, "guided layer")
    with pytest.raises(ValueError, match="not among the intermediate outputs.*block1, block2, block3"):
        taps.resolve(SubclassedStudent(), "block9", "guided layer")
    with pytest.raises(ValueError, match="without the intermediate-outputs protocol"):
        taps.resolve(ProbabilityTeacher(name="plain"), "dense", "hint layer")


def test_the_paper_index_still_taps_the_zoo_networks_after_the_pool():
    student = build_network(zoo.get_spec("digits_fitnet"), seed=0)
    assert isinstance(student, FitNetsNetwork)
    tap = taps.resolve(student, zoo.get_spec("digits_fitnet").hint_layer, "guided layer")
    assert tap.name.startswith("pool") and tap.layer.name.startswith("conv")


def test_zoo_network_exposes_its_intermediates_and_reloads_as_itself(tmp_path):
    net = build_network(zoo.get_spec("digits_fitnet"), seed=0)
    x = np.random.default_rng(0).random((3, 8, 8, 1)).astype("float32")
    outputs = net.intermediate_outputs(x, ["conv4", "pool2"])
    for name in ("conv4", "pool2"):
        np.testing.assert_allclose(np.asarray(outputs[name]), np.asarray(truncated_model(net, name)(x)), rtol=1e-6)
    path = str(tmp_path / "net.keras")
    net.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is FitNetsNetwork and loaded.spec == net.spec
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(net(x)), rtol=1e-6)


# ------------------------------------------------------------------------------------------ softmax teachers
def test_a_softmax_ending_teacher_is_distilled_through_its_logits():
    teacher = mobilenet_teacher()
    distiller = Distiller(functional_student(), teacher)
    distiller.compile(keras.optimizers.SGD(0.0), stage="kd")
    x, _ = images(4)
    (targets,) = distiller.teacher_outputs(x)
    targets = np.asarray(targets, "float64")
    probabilities = np.asarray(teacher(x, training=False), "float64")
    assert np.allclose(probabilities.sum(-1), 1.0, atol=1e-5)  # the model itself ends in a softmax
    assert not np.allclose(targets.sum(-1), 1.0, atol=1e-3) or (targets < 0).any()  # KD sees logits ...
    softmax = np.exp(targets - targets.max(-1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(-1, keepdims=True), probabilities, rtol=1e-4, atol=1e-6)

    sequential = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(CLASSES),
                                   keras.layers.Activation("softmax", name="probs")])
    logits = taps.logits_model(sequential)
    np.testing.assert_allclose(np.asarray(logits(x)), np.asarray(sequential.layers[1](sequential.layers[0](x))),
                               rtol=1e-5)


def test_a_subclassed_teacher_that_returns_probabilities_is_refused():
    teacher = ProbabilityTeacher(name="probs_teacher")
    teacher(images(1)[0])
    with pytest.raises(ValueError, match="returns probabilities.*classifier_activation=None"):
        Distiller(functional_student(), teacher, input_shape=SHAPE)


# ---------------------------------------------------------------------------------------- stage invariants
@pytest.mark.slow  # trains for several epochs in-process (over 20 s on 2 shared cores)
def test_stages_on_a_nested_keras_applications_teacher_and_a_functional_student():
    teacher, student = mobilenet_teacher(), functional_student()
    distiller, stage = hinted(student, teacher, [HintPair("c4", f"{BACKBONE}/block_3_expand_relu")])
    assert stage.hint_pairs[0] == HintPair("c4", f"{BACKBONE}/block_3_expand_relu", "conv")
    t0, s0, r0 = snapshot(teacher), snapshot(student), snapshot(stage.regressors[0])
    history = run_stage(distiller, stage, epochs=3)
    assert changed(t0, teacher) == set()  # weights AND batch-norm statistics
    assert {layer_of(p) for p in changed(s0, student)} == {"c1", "c2", "c3", "c4"}
    assert changed(r0, stage.regressors[0]) == set(r0)
    assert history.history["hint_loss"][-1] < history.history["hint_loss"][0]

    s1 = snapshot(student)
    run_stage(distiller, "kd", epochs=1)
    assert changed(t0, teacher) == set()
    assert changed(s1, student) == set(s1)


@pytest.mark.slow  # trains for several epochs in-process (over 20 s on 2 shared cores)
def test_stages_on_a_subclassed_student():
    teacher, student = mobilenet_teacher(), SubclassedStudent(name="sub")
    student(images(1)[0])  # built
    distiller, stage = hinted(student, teacher, [HintPair("block2", f"{BACKBONE}/block_3_expand_relu")])
    t0, s0 = snapshot(teacher), snapshot(student)
    run_stage(distiller, stage)
    assert {owner(v.path) for v in stage.guided_model.trainable_variables} == {"conv_a", "conv_b"}
    assert changed(t0, teacher) == set()
    # conv_c, the head and the side branch `aux` (which reads block1 but not block2) did not move.
    assert {owner(p) for p in changed(s0, student)} == {"conv_a", "conv_b"}

    s1 = snapshot(student)
    run_stage(distiller, "kd", epochs=1)
    assert changed(t0, teacher) == set()
    assert changed(s1, student) == set(s1)


def test_automatic_pairing_takes_the_middle_layers_with_a_mappable_pair_and_reports_it():
    teacher, student = mobilenet_teacher(classifier_activation=None), functional_student()
    distiller, stage = hinted(student, teacher, "auto")
    teacher_taps = taps.candidate_taps(teacher)
    student_taps = [name for name, _ in taps.candidate_taps(student)]
    assert student_taps == [f"c{i}" for i in range(1, 8)]
    (report,) = stage.pair_report
    # The teacher's middle is a 2x2 map no student map matches; the nearest pair of equal resolution is taken.
    assert teacher_taps[(len(teacher_taps) - 1) // 2][1][1:3] == (2, 2)
    assert report["hint"] in [name for name, _ in teacher_taps]
    assert report["guided_shape"][:2] == report["hint_shape"][:2] and report["regressor"] == "conv"
    assert report["guided"] in student_taps and "the pair of equal resolution nearest the middle" in report["pairing"]
    t0, s0 = snapshot(teacher), snapshot(student)
    run_stage(distiller, stage, epochs=1)
    guided_index = student_taps.index(report["guided"]) + 1
    assert {layer_of(p) for p in changed(s0, student)} == {f"c{i}" for i in range(1, guided_index + 1)}
    assert changed(t0, teacher) == set()


def test_a_pair_the_paper_rule_cannot_map_gets_the_auto_regressor():
    teacher, student = mobilenet_teacher(), functional_student()
    # student c7 is 8x8, the hint block_1_expand_relu is 16x16: the conv kernel would be < 1.
    with pytest.raises(ValueError, match="regressor='resize'"):
        hinted(student, teacher, [HintPair("c7", f"{BACKBONE}/block_1_expand_relu")])
    distiller, stage = hinted(student, teacher, [HintPair("c7", f"{BACKBONE}/block_1_expand_relu", "auto")])
    assert stage.pair_report[0]["regressor"] == "resize" and "larger" in stage.pair_report[0][
        "regressor_reason"]
    t0, s0 = snapshot(teacher), snapshot(student)
    r0 = snapshot(stage.regressors[0])
    history = run_stage(distiller, stage, epochs=3)
    # It trains: the regressor's every weight and exactly the student up to c7 move, and the hint loss falls.
    assert r0 and changed(r0, stage.regressors[0]) == set(r0)
    assert {layer_of(p) for p in changed(s0, student)} == {f"c{i}" for i in range(1, 8)}
    assert changed(t0, teacher) == set()
    assert history.history["hint_loss"][-1] < history.history["hint_loss"][0]


def test_teacher_and_student_input_shapes_must_agree():
    small = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, name="k"), keras.layers.Flatten(),
                              keras.layers.Dense(CLASSES)])
    with pytest.raises(ValueError, match=r"takes \(32, 32, 3\) images but the student .* takes \(16, 16, 3\)"):
        Distiller(small, mobilenet_teacher())


def test_a_subclassed_teacher_gives_hints_through_the_protocol_and_never_changes():
    teacher = SubclassedStudent(name="sub_teacher")
    teacher(images(1)[0])
    student = functional_student()
    distiller, stage = hinted(student, teacher, [HintPair("c2", "block1")])
    assert stage.pair_report[0]["hint_shape"] == [32, 32, 6] and stage.pair_report[0]["guided_shape"] == [
        32, 32, 8]
    t0, s0 = snapshot(teacher), snapshot(student)
    run_stage(distiller, stage)
    assert changed(t0, teacher) == set()
    assert {layer_of(p) for p in changed(s0, student)} == {"c1", "c2"}
    # The hint is the teacher's own block1, computed independently.
    x, _ = images(2)
    (hint,) = distiller.teacher_outputs(x)
    np.testing.assert_allclose(np.asarray(hint), np.asarray(teacher.conv1(x)), rtol=1e-6)
    run_stage(distiller, "kd", epochs=1)
    assert changed(t0, teacher) == set()


def test_automatic_pairing_on_a_subclassed_student_uses_its_protocol_names():
    student = SubclassedStudent(name="sub")
    student(images(1)[0])
    distiller, stage = hinted(student, mobilenet_teacher(classifier_activation=None), "auto")
    (report,) = stage.pair_report
    assert report["guided"] in SubclassedStudent.intermediate_names
    assert report["guided_shape"][0] >= report["hint_shape"][0]


def strided_student(widths=(16, 24, 32, 48, 64, 96), seed=2):
    """A thin student whose maps halve every layer from 32x32 (16, 8, 4, 2, 1): every resolution of a backbone."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPE)
    h = inputs
    for i, width in enumerate(widths, start=1):
        h = keras.layers.Conv2D(width, 3, strides=2 if i > 1 else 1, padding="same", activation="relu",
                                name=f"s{i}")(h)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(keras.layers.GlobalAveragePooling2D()(h)),
                       name="strided")


@pytest.mark.parametrize("backbone", ["MobileNetV2", "EfficientNetB0"])
def test_automatic_pairing_on_real_backbones_takes_the_hints_resolution_and_a_small_regressor(backbone):
    from fitnets_tf.stages.hints import REGRESSOR_SHARE

    model = getattr(keras.applications, backbone)(weights=None, input_shape=SHAPE, classes=CLASSES,
                                                  classifier_activation=None)
    student = strided_student()
    distiller, stage = hinted(student, model, "auto")
    (report,) = stage.pair_report
    assert report["guided_shape"][:2] == report["hint_shape"][:2], report  # same resolution: a 1x1 regressor
    assert "the pair of equal resolution nearest the middle" in report["pairing"]
    (regressor,) = stage.regressors
    assert regressor.count_params() <= REGRESSOR_SHARE * student.count_params()


def test_an_automatic_regressor_never_outweighs_a_quarter_of_the_student():
    from fitnets_tf.stages.hints import REGRESSOR_SHARE

    teacher = mobilenet_teacher(classifier_activation=None)
    student = strided_student(widths=(16, 64, 64, 64, 64, 64))  # s2: 16x16x64, the hint block_6_expand_relu 4x4
    hint = f"{BACKBONE}/block_6_expand_relu"
    distiller, stage = hinted(student, teacher, [HintPair("s2", hint, "auto")])
    (report,) = stage.pair_report
    assert report["hint_shape"][:2] == [4, 4] and report["guided_shape"][:2] == [16, 16]
    # The paper's conv would be 13x13x64x(hint channels): far over a quarter of the student.
    assert report["regressor"] == "resize" and "more than the limit" in report["regressor_reason"]
    (regressor,) = stage.regressors
    assert regressor.count_params() <= REGRESSOR_SHARE * student.count_params()
    r0 = snapshot(regressor)
    history = run_stage(distiller, stage, epochs=1)
    assert changed(r0, regressor) == set(r0) and np.isfinite(history.history["hint_loss"]).all()  # it trains
