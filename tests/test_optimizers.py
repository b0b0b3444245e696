"""The original code's RMSProp (pylearn2's max_scaling floor) against a NumPy transcription, and the factory."""

import keras
import numpy as np
import pytest

from fitnets_tf.optimizers import OPTIMIZERS, MaxScalingRMSprop, build_optimizer


def _numpy_pylearn2_rmsprop(w, grads, lr, decay, max_scaling):
    """pylearn2 learning_rule.RMSProp: ms = decay*ms + (1-decay)*g^2; w -= lr * g / max(sqrt(ms), 1/max_scaling)."""
    ms = np.zeros_like(w)
    for g in grads:
        ms = decay * ms + (1 - decay) * g * g
        w = w - lr * g / np.maximum(np.sqrt(ms), 1.0 / max_scaling)
    return w


def _apply(optimizer, w0, grads):
    variable = keras.Variable(w0.copy())
    for g in grads:
        optimizer.apply([keras.ops.convert_to_tensor(g)], [variable])
    return keras.ops.convert_to_numpy(variable)


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e-6, 1e-11])
def test_max_scaling_rmsprop_matches_pylearn2_at_every_gradient_scale(scale):
    rng = np.random.default_rng(0)
    w0 = np.zeros((5, 3), "float32")  # the updates themselves, free of float32 rounding against |w|
    grads = [(scale * rng.normal(size=(5, 3))).astype("float32") for _ in range(4)]
    expected = _numpy_pylearn2_rmsprop(w0.astype("float64"), [g.astype("float64") for g in grads], 5e-4, 0.9, 1e5)
    got = _apply(MaxScalingRMSprop(5e-4, rho=0.9, max_scaling=1e5), w0, grads)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-12)


def test_first_step_by_hand():
    # One step with g = 2e-6: ms = 0.1 * 4e-12 = 4e-13, sqrt = 6.3e-7 < 1e-5, so the floor applies:
    # w -= 0.01 * 2e-6 / 1e-5 = 2e-3.  Keras's RMSprop divides by sqrt(4e-13 + 1e-7) = 3.16e-4 instead: 6.3e-5.
    g = np.array([2e-6], "float32")
    pylearn2 = _apply(MaxScalingRMSprop(0.01, rho=0.9, max_scaling=1e5), np.zeros(1, "float32"), [g])
    keras_rms = _apply(keras.optimizers.RMSprop(0.01, rho=0.9), np.zeros(1, "float32"), [g])
    np.testing.assert_allclose(pylearn2, [-2e-3], rtol=1e-5)
    np.testing.assert_allclose(keras_rms, [-0.01 * 2e-6 / np.sqrt(4e-13 + 1e-7)], rtol=1e-4)
    assert abs(pylearn2[0]) > 30 * abs(keras_rms[0])  # the plateau difference, in one number


def test_large_gradients_are_normalised_by_both():
    g = np.array([3.0], "float32")  # sqrt(ms) = sqrt(0.1) * 3 >> both floors: the step is lr / sqrt(0.1)
    for optimizer in (MaxScalingRMSprop(0.01, rho=0.9), keras.optimizers.RMSprop(0.01, rho=0.9)):
        np.testing.assert_allclose(_apply(optimizer, np.zeros(1, "float32"), [g]), [-0.01 / np.sqrt(0.1)],
                                   rtol=1e-4)


def test_serializes_with_its_settings():
    optimizer = MaxScalingRMSprop(0.002, rho=0.8, max_scaling=1e4)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(clone, MaxScalingRMSprop)
    assert (clone.rho, clone.max_scaling) == (0.8, 1e4)
    assert float(clone.learning_rate) == pytest.approx(0.002)


@pytest.mark.parametrize("kwargs, match", [({"rho": 1.0}, "rho"), ({"max_scaling": 0}, "max_scaling")])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaxScalingRMSprop(0.01, **kwargs)


def test_build_optimizer_choices():
    assert isinstance(build_optimizer("rmsprop", 0.01, rmsprop_max_scaling=1e5), MaxScalingRMSprop)
    plain = build_optimizer("rmsprop", 0.01, rmsprop_rho=0.8)
    assert type(plain) is keras.optimizers.RMSprop and plain.rho == 0.8
    assert isinstance(build_optimizer("adam", 0.01), keras.optimizers.Adam)
    assert isinstance(build_optimizer("sgd", 0.01), keras.optimizers.SGD)
    assert set(OPTIMIZERS) == {"rmsprop", "adam", "sgd"}
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer("adagrad", 0.01)
