"""The teacher's forward pass in bfloat16/float16: hardware choice, an independent copy, outputs near float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fitnets_tf.models import build_network, zoo
from fitnets_tf.precision import native_low_precision, resolve_teacher_precision, teacher_in_precision


@pytest.mark.parametrize("gpus, flags, expected", [
    ((), {"avx512f", "avx512_bf16"}, "bfloat16"),
    ((), {"avx512f", "amx_bf16"}, "bfloat16"),
    ((), {"avx2", "fma"}, "float32"),
    (((8, 0),), set(), "bfloat16"),
    (((9, 0), (7, 5)), set(), "float16"),  # the oldest GPU decides
    (((6, 1),), {"avx512_bf16"}, "float32"),  # a GPU without tensor cores: float32, whatever the CPU
])
def test_native_low_precision(gpus, flags, expected):
    assert native_low_precision(gpus=gpus, flags=flags) == expected


def test_resolve_refuses_an_unknown_precision():
    assert resolve_teacher_precision("float16") == "float16"
    assert resolve_teacher_precision("auto") in ("float32", "bfloat16", "float16")
    with pytest.raises(ValueError, match="teacher_precision must be one of auto, float32, bfloat16, float16"):
        resolve_teacher_precision("int8")


def _softened(logits, tau=3.0):
    return tf.nn.softmax(tf.cast(logits, tf.float32) / tau).numpy()


def _trained_like(model, seed=0):
    """Weights of a realistic scale (the paper's U(-0.005, 0.005) start gives logits near 0, where any precision
    agrees): Glorot-scaled random weights."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, np.sqrt(2.0 / max(1, np.prod(w.shape[:-1]))), w.shape).astype("float32")
                       for w in model.get_weights()])
    return model


@pytest.mark.parametrize("precision, tolerance", [("bfloat16", 0.03), ("float16", 0.005)])
def test_a_low_precision_teacher_is_a_separate_copy_close_to_float32(precision, tolerance):
    teacher = _trained_like(build_network(zoo.get_spec("digits_teacher"), seed=0))
    before = [w.numpy().copy() for w in teacher.weights]
    low = teacher_in_precision(teacher, precision)
    assert low is not teacher and not low.trainable
    assert {layer.dtype_policy.name for layer in teacher.layers} == {"float32"}  # the original is untouched
    assert all(v.dtype == "float32" for v in low.weights)  # mixed policy: float32 variables
    assert any(layer.compute_dtype == precision for layer in low.layers)
    x = tf.constant(np.random.default_rng(1).random((64, 8, 8, 1)).astype("float32"))
    reference, got = teacher(x, training=False), low(x, training=False)
    assert got.dtype == precision
    # The largest difference of the softened teacher probabilities (tau = 3), the targets of the KD loss.
    assert np.abs(_softened(reference) - _softened(got)).max() < tolerance
    assert np.abs(_softened(reference) - _softened(got)).max() > 0  # it really ran in the lower precision
    for w, b in zip(teacher.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)


def test_float32_is_the_teacher_itself():
    teacher = build_network(zoo.get_spec("digits_teacher"), seed=0)
    assert teacher_in_precision(teacher, "float32") is teacher


def test_a_keras_applications_teacher_in_bfloat16():
    teacher = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.35,
                                             classifier_activation=None)
    low = teacher_in_precision(teacher, "bfloat16")
    x = tf.constant(np.random.default_rng(2).random((8, 32, 32, 3)).astype("float32"))
    reference, got = teacher(x, training=False).numpy(), tf.cast(low(x, training=False), tf.float32).numpy()
    # Untrained, its logits are tiny (~1e-11), so compare them relative to their scale: bfloat16 keeps 8 bits.
    relative = np.abs(reference - got).max() / np.abs(reference).max()
    assert 0 < relative < 0.1
    # Batch-norm statistics and every other weight were copied, not re-initialised.
    for a, b in zip(teacher.weights, low.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ------------------------------------------------------------------------------------- in the Distiller
from fitnets_tf import Distiller, HintPair, HintStage  # noqa: E402
from tests.test_distiller import changed, data, layer_of, snapshot, teacher_and_student  # noqa: E402


@pytest.mark.parametrize("stage", ["hint", "kd"])
def test_a_bfloat16_teacher_trains_a_float32_student_like_a_float32_teacher(stage):
    losses, moved, first = {}, {}, {}
    for precision in ("float32", "bfloat16"):
        teacher, student = teacher_and_student()
        _trained_like(teacher)
        distiller = Distiller(student, teacher, teacher_precision=precision)
        distiller.compile(keras.optimizers.SGD(1e-2),
                          stage=HintStage([HintPair(guided=4, hint=2)], seed=0) if stage == "hint" else stage)
        x, y = data()
        outputs = distiller.teacher_outputs(tf.constant(x))
        assert all(t.dtype == tf.float32 for t in outputs)
        first[precision] = outputs[0].numpy()
        t0, s0 = snapshot(teacher), snapshot(student)
        history = distiller.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
        assert changed(t0, teacher) == set()  # the teacher never changes, in any precision
        assert all(v.dtype == "float32" for v in student.weights)
        losses[precision] = history.history["loss"][0]
        moved[precision] = {layer_of(p) for p in changed(s0, student)}
    assert np.isfinite(losses["bfloat16"])
    # The teacher's forward really ran in bfloat16 (its outputs, cast back to float32, are not the float32 ones), and
    # the student trained all the same.
    assert not np.array_equal(first["bfloat16"], first["float32"])
    assert losses["bfloat16"] != losses["float32"]
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=0.02)
    assert moved["bfloat16"] == moved["float32"]  # stage 1 still moves exactly the guided prefix


def test_the_low_precision_copy_follows_a_teacher_trained_after_the_distiller_was_built():
    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher, teacher_precision="bfloat16")
    assert distiller.teacher_forward is not teacher
    _trained_like(teacher, seed=3)  # the pipeline trains its teacher after building the Distiller
    distiller.compile(keras.optimizers.SGD(1e-2), stage="kd")
    for a, b in zip(teacher.weights, distiller.teacher_forward.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert Distiller(student, teacher, teacher_precision="float32").teacher_forward is teacher


def test_an_uncopyable_teacher_gets_a_clear_error():
    class Opaque(keras.Model):  # not registered for serialization: Keras cannot rebuild it from its config
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(keras.ops.reshape(x, (-1, 64)))

    teacher = Opaque()
    teacher(np.zeros((1, 8, 8, 1), "float32"))
    with pytest.raises(ValueError, match="could not be copied.*teacher_precision='float32'"):
        teacher_in_precision(teacher, "bfloat16")


def test_precision_differences_reports_what_the_lower_precision_changes():
    from fitnets_tf.precision import precision_differences

    teacher = _trained_like(build_network(zoo.get_spec("digits_teacher"), seed=0))
    rng = np.random.default_rng(2)
    x = rng.random((48, 8, 8, 1)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(48, "int64"))).batch(16)
    same = precision_differences(teacher, dataset, "float32", hint="pool1")
    assert same["examples"] == 48 and same["class_changes"] == 0
    assert same["max_probability_difference"] == 0.0 and same["max_hint_difference"] == 0.0
    low = precision_differences(teacher, dataset, "float16", hint="pool1", temperature=3.0)
    reference = _softened(teacher(x, training=False))
    copy = teacher_in_precision(teacher, "float16")
    # The copy is checked on its own first (so a wrong copy cannot hide on both sides): it computes in float16, with
    # the teacher's float32 weights, and its logits are near the teacher's but not equal to them.
    computing = {layer.dtype_policy.compute_dtype for layer in copy._flatten_layers() if layer.weights}
    assert computing == {"float16"}
    assert all(np.array_equal(a, b) for a, b in zip(copy.get_weights(), teacher.get_weights()))
    logits, low_logits = teacher(x, training=False).numpy(), copy(x, training=False).numpy()
    assert not np.array_equal(logits, low_logits)
    np.testing.assert_allclose(low_logits, logits, atol=0.02 * np.abs(logits).max())
    low_softened = _softened(low_logits)
    expected = np.abs(reference - low_softened).max()  # over all 48 images at once
    assert expected > 0
    assert low["precision"] == "float16" and low["examples"] == 48
    assert low["max_probability_difference"] == pytest.approx(expected, rel=1e-3, abs=1e-7)
    assert low["class_changes"] == int(np.sum(logits.argmax(-1) != low_logits.argmax(-1)))
    assert 0 < low["max_hint_difference"] < 0.01 * low["max_hint_magnitude"]
    assert low["max_hint_magnitude"] > 0
