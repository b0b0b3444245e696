import numpy as np
import keras
import pytest

from fitnets_tf.layers import Maxout
from fitnets_tf.regressor import (
    REGRESSOR_KINDS, build_regressor, choose_regressor, hint_nonlinearity, regressor_kernel, regressor_refusal,
)


@pytest.mark.parametrize("guided,hint,kernel", [
    ((None, 16, 16, 80), (None, 15, 15, 192), (2, 2)),   # FitNet 4 conv11 <- CIFAR teacher conv2 (pylearn2 maps)
    ((None, 8, 8, 32), (None, 8, 8, 64), (1, 1)),
    ((None, 32, 32, 16), (None, 8, 8, 96), (25, 25)),
    ((None, 12, 10, 4), (None, 5, 7, 6), (8, 4)),
])
def test_kernel_rule_n_g_minus_n_h_plus_one(guided, hint, kernel):
    assert regressor_kernel(guided, hint) == kernel
    regressor = build_regressor(guided, hint)
    assert regressor.get_layer("regressor_conv").kernel.shape[:2] == kernel
    out = regressor(np.zeros((2, *guided[1:]), "float32"))
    assert tuple(out.shape) == (2, *hint[1:])


def test_maxout_hint_gives_maxout_regressor_with_same_pieces():
    regressor = build_regressor((None, 8, 8, 4), (None, 6, 6, 10), nonlinearity=("maxout", 3))
    assert regressor.get_layer("regressor_conv").filters == 30
    assert regressor.get_layer("regressor_maxout").num_pieces == 3
    # weights k1*k2*O_h*O_g (times pieces for maxout) + biases
    assert regressor.count_params() == 3 * 3 * 4 * 30 + 30


def test_relu_hint_gives_relu_regressor():
    regressor = build_regressor((None, 8, 8, 4), (None, 8, 8, 5), nonlinearity=("relu", 1))
    out = regressor(np.random.default_rng(0).normal(size=(3, 8, 8, 4)).astype("float32"))
    assert float(np.min(out)) >= 0.0


def test_hint_nonlinearity_read_from_layers():
    assert hint_nonlinearity(Maxout(2)) == ("maxout", 2)
    assert hint_nonlinearity(keras.layers.Activation("relu")) == ("relu", 1)
    assert hint_nonlinearity(keras.layers.Dense(3)) == ("linear", 1)


def test_refuses_hint_map_larger_than_guided_map_naming_both_layers():
    with pytest.raises(ValueError) as error:
        build_regressor((None, 8, 8, 64), (None, 16, 16, 96), guided_name="fitnet/conv9", hint_name="teacher/conv2")
    message = str(error.value)
    for part in ("fitnet/conv9", "teacher/conv2", "(None, 8, 8, 64)", "(None, 16, 16, 96)", "regressor='dense'"):
        assert part in message


def test_refuses_conv_regressor_between_conv_and_dense_layers():
    with pytest.raises(ValueError, match=r"4-D.*regressor='dense'"):
        build_regressor((None, 500), (None, 8, 8, 96), guided_name="s/fc1", hint_name="t/conv2")
    with pytest.raises(ValueError, match="s/conv3"):
        build_regressor((None, 8, 8, 16), (None, 500), guided_name="s/conv3", hint_name="t/fc1")


def test_conv1x1_needs_equal_maps():
    assert build_regressor((None, 8, 8, 4), (None, 8, 8, 6), kind="conv1x1").count_params() == 4 * 6 + 6
    with pytest.raises(ValueError, match="regressor='conv'"):
        build_regressor((None, 8, 8, 4), (None, 6, 6, 6), kind="conv1x1")


@pytest.mark.parametrize("guided,hint,pieces", [
    ((None, 8, 8, 4), (None, 16, 16, 3), 2),   # the dense regressor also maps N_h > N_g
    ((None, 20), (None, 4, 4, 2), 1),
    ((None, 4, 4, 2), (None, 7), 5),
])
def test_dense_regressor_maps_any_pair(guided, hint, pieces):
    nonlinearity = ("maxout", pieces) if pieces > 1 else ("linear", 1)
    regressor = build_regressor(guided, hint, kind="dense", nonlinearity=nonlinearity)
    out = regressor(np.ones((2, *guided[1:]), "float32"))
    assert tuple(out.shape) == (2, *hint[1:])


def test_unknown_kind():
    with pytest.raises(ValueError, match="regressor='fc'"):
        build_regressor((None, 8, 8, 4), (None, 8, 8, 4), kind="fc")


def test_resize_regressor_maps_a_smaller_guided_map_onto_a_larger_hint():
    regressor = build_regressor((None, 4, 4, 6), (None, 8, 8, 5), kind="resize", nonlinearity=("relu", 1))
    # bilinear resize has no weights; then a 1x1 conv: O_g * O_h weights + O_h biases
    assert regressor.count_params() == 6 * 5 + 5
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 6)).astype("float32")
    out = np.asarray(regressor(x))
    assert out.shape == (2, 8, 8, 5) and out.min() >= 0.0
    # a constant map stays constant through the resize: the output is the 1x1 conv of that constant
    conv = regressor.get_layer("regressor_conv")
    constant = np.ones((1, 4, 4, 6), "float32")
    expected = np.maximum(np.ones(6) @ conv.kernel.numpy()[0, 0] + conv.bias.numpy(), 0)
    np.testing.assert_allclose(np.asarray(regressor(constant))[0, 3, 5], expected, rtol=1e-5)


@pytest.mark.parametrize("guided,hint,kind", [
    ((None, 16, 16, 8), (None, 8, 8, 4), "conv"),     # the paper's rule applies (k = 9)
    ((None, 8, 8, 8), (None, 16, 16, 4), "resize"),   # hint map larger
    ((None, 16, 8, 8), (None, 8, 16, 4), "resize"),   # one axis larger
    ((None, 8, 8, 8), (None, 10), "dense"),           # conv guided by a dense hint
    ((None, 12), (None, 4, 4, 2), "dense"),
])
def test_auto_takes_the_paper_rule_where_it_applies_and_says_why(guided, hint, kind):
    chosen, reason = choose_regressor(guided, hint)
    assert chosen == kind and reason
    regressor = build_regressor(guided, hint, kind="auto")
    assert tuple(regressor(np.ones((1, *guided[1:]), "float32")).shape) == (1, *hint[1:])


def test_auto_resizes_instead_of_a_conv_kernel_over_the_weight_limit():
    guided, hint = (None, 16, 16, 64), (None, 2, 2, 192)  # the paper's conv: 15x15x64x192 = 2.8M weights
    assert choose_regressor(guided, hint)[0] == "conv"
    kind, reason = choose_regressor(guided, hint, max_weights=100_000)
    assert kind == "resize" and "(15, 15) kernel, 2,764,992 weights" in reason and "12,480 weights" in reason
    assert choose_regressor((None, 4, 4, 64), (None, 4, 4, 192), max_weights=10)[0] == "conv"  # 1x1: always


def test_relu6_hint_of_keras_applications():
    assert hint_nonlinearity(keras.layers.ReLU(6.0)) == ("relu6", 1)
    assert hint_nonlinearity(keras.layers.ReLU()) == ("relu", 1)


@pytest.mark.parametrize("guided,hint,refused", [
    ((None, 16, 16, 8), (None, 14, 14, 4), {"conv1x1"}),                    # k = 3: only 1x1 refuses
    ((None, 8, 8, 8), (None, 8, 8, 4), set()),                              # equal maps: every kind
    ((None, 8, 8, 8), (None, 14, 14, 4), {"conv", "conv1x1"}),              # hint map larger
    ((None, 8, 16, 8), (None, 9, 4, 4), {"conv", "conv1x1"}),               # larger on one axis only
    ((None, 12), (None, 4, 4, 2), {"conv", "conv1x1", "resize"}),           # not a map on one side
    ((None, 4, 4, 2), (None, 7), {"conv", "conv1x1", "resize"}),
])
def test_regressor_refusal_is_none_exactly_where_a_regressor_maps_the_pair(guided, hint, refused):
    """The one feasibility rule: where it says yes, the built regressor gives the hint's shape; where it says no,
    build_regressor refuses with the same reason."""
    for kind in REGRESSOR_KINDS:
        refusal = regressor_refusal(guided, hint, kind)
        assert (refusal is not None) == (kind in refused), kind
        if refusal is None:
            regressor = build_regressor(guided, hint, kind=kind)
            assert tuple(regressor(np.ones((1, *guided[1:]), "float32")).shape) == (1, *hint[1:])
        else:
            assert refusal.rstrip(".").count(". Choose") == 1  # why, then what to choose
            with pytest.raises(ValueError) as error:
                build_regressor(guided, hint, kind=kind)
            assert refusal in str(error.value)
    with pytest.raises(ValueError, match="regressor='fc'"):
        regressor_refusal(guided, hint, "fc")
