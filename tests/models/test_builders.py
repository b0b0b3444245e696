import numpy as np
import keras
import pytest

from fitnets_tf.layers import Maxout
from fitnets_tf.models import (
    BlockSpec, NetSpec, PoolSpec, build_network, resolve_layer, resolve_tap, tap_names, truncated_model,
)
from fitnets_tf.models.builders import layer_reference, paper_index


def tiny_spec(**overrides):
    spec = dict(
        name="tiny", input_shape=(8, 8, 1), num_classes=10,
        blocks=(BlockSpec((4, 4, 4)), BlockSpec((6, 6), pool=PoolSpec(None))), fc_units=(5,),
    )
    spec.update(overrides)
    return NetSpec(**spec)


def test_taps_follow_the_paper_numbering():
    model = build_network(tiny_spec(), seed=0)
    assert tap_names(model) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "logits"]
    assert resolve_layer(model, 4) == resolve_layer(model, "4") == resolve_layer(model, "conv4") == "conv4"
    assert tuple(model.get_layer("conv3").output.shape) == (None, 8, 8, 4)
    assert tuple(model.get_layer("conv4").output.shape) == (None, 4, 4, 6)
    assert isinstance(model.get_layer("conv4"), Maxout)
    assert model.get_layer("conv4_linear").filters == 12


def test_resolve_layer_errors_name_the_model_and_the_range():
    model = build_network(tiny_spec(), seed=0)
    with pytest.raises(ValueError, match=r"guided layer index 9 does not exist in model 'tiny'.*1\.\.7"):
        resolve_layer(model, 9, "guided layer")
    with pytest.raises(ValueError, match=r"hint layer 'conv12' does not exist.*conv1, conv2"):
        resolve_layer(model, "conv12", "hint layer")


@pytest.mark.parametrize("reference,index", [
    (11, 11), ("11", 11), (" 2 ", 2), (np.int64(3), 3), ("0", 0),
    ("conv11", None), ("pool2", None), ("c4", None), ("a/b", None), (True, None), (None, None), ("1.5", None),
    ("\u00b2", None),  # a superscript two: str.isdigit() says yes, int() refuses it
])
def test_paper_index_is_an_int_or_a_string_of_digits(reference, index):
    assert paper_index(reference) == index
    assert layer_reference(reference) == (reference if index is None else index)


def test_truncated_model_shares_variables_with_the_full_model():
    model = build_network(tiny_spec(initializer="glorot_uniform"), seed=0)
    sub = truncated_model(model, "conv3")
    assert tuple(sub.output.shape) == (None, 8, 8, 4)
    kernel = model.get_layer("conv2_linear").kernel
    assert any(v is kernel for v in sub.trainable_variables)
    x = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    before = np.asarray(model(x))
    # An update through the truncated model shows in the full one.
    sub.get_layer("conv1_linear").kernel.assign(sub.get_layer("conv1_linear").kernel * 3.0 + 0.1)
    assert not np.allclose(np.asarray(model(x)), before, rtol=1e-3, atol=0)
    assert len(sub.trainable_variables) == 6  # 3 convs x (kernel, bias): nothing after the guided layer


def test_taps_by_index_include_the_following_pool_and_names_are_literal():
    model = build_network(tiny_spec(), seed=0)
    assert resolve_tap(model, 3) == ("conv3", "pool1")  # conv3 ends block 1: pylearn2 pools inside the layer
    assert resolve_tap(model, "conv3") == ("conv3", "conv3")
    assert resolve_tap(model, "pool1") == ("conv3", "pool1")
    assert resolve_tap(model, 2) == ("conv2", "conv2")
    assert resolve_tap(model, 5) == ("conv5", "conv5")  # a global pool is not part of the tap
    assert tuple(truncated_model(model, 3).output.shape) == (None, 4, 4, 4)
    with pytest.raises(ValueError, match="'pool7' does not exist in model 'tiny'. Pools: pool1, pool2"):
        resolve_tap(model, "pool7", "hint layer")


def test_paper_init_and_max_norm():
    model = build_network(tiny_spec(initializer="paper"), seed=3)
    kernels = [l.kernel.numpy() for l in model.layers if hasattr(l, "kernel")]
    assert all(np.abs(k).max() <= 0.005 for k in kernels)
    assert model.get_layer("conv1_linear").kernel_constraint.max_value == 0.9
    assert model.get_layer("fc1_linear").kernel_constraint.max_value == 1.9
    assert model.get_layer("logits").kernel_constraint.max_value == 1.9365


def test_seed_makes_weights_reproducible():
    a, b = build_network(tiny_spec(), seed=5), build_network(tiny_spec(), seed=5)
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())


def test_relu_net_and_explicit_padding():
    spec = tiny_spec(activation="relu", blocks=(BlockSpec((4,), kernel_size=5, padding=2, pool=None),))
    model = build_network(spec, seed=0)
    assert tuple(model.get_layer("conv1").output.shape) == (None, 8, 8, 4)
    assert model.get_layer("conv1_pad") is not None


def test_save_and_reload_keras_file_gives_identical_predictions(tmp_path):
    model = build_network(tiny_spec(initializer="glorot_uniform"), seed=1)
    x = np.random.default_rng(2).random((4, 8, 8, 1)).astype("float32")
    path = tmp_path / "student.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), np.asarray(model(x)))
    assert isinstance(reloaded.get_layer("conv1"), Maxout)


@pytest.mark.parametrize("overrides,match", [
    (dict(activation="tanh"), "activation must be one of"),
    (dict(blocks=()), "at least one conv block"),
    (dict(blocks=(BlockSpec((4, 0)),)), "positive integers"),
    (dict(blocks=(BlockSpec((4, 4), kernel_size=(3,)),)), "one kernel size"),
    (dict(dropout=1.0), "dropout must be in"),
])
def test_spec_validation(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny_spec(**overrides)
