import dataclasses

import keras
import pytest

from fitnets_tf.layers import Maxout
from fitnets_tf.models import build_network, resolve_layer, tap_names
from fitnets_tf.models.zoo import ARCHITECTURES, default_hint_layer, get_spec, list_architectures

# The paper's hint <- guided indices (1-based), written out independently of the zoo.
PAPER_HINT_LAYERS = {
    "cifar_teacher": 2, "svhn_teacher": 2, "mnist_teacher": 2,
    "fitnet1": 6, "fitnet2": 6, "fitnet3": 8, "fitnet4": 11, "mnist_fitnet": 4, "mnist_fitnet_uniform": 4,
    "svhn_fitnet": 8,
    "depth5_30m": 2, "depth5_107m": 2, "depth7_30m": 4, "depth7_107m": 4, "depth9_30m": 5, "depth9_107m": 5,
    "depth11_30m": 7, "depth11_107m": 7,
    # Not in the paper: the depth study sized for 28x28 inputs, with the same guided layers.
    "depth5_5m": 2, "depth7_5m": 4, "depth9_5m": 5, "depth11_5m": 7,
    "aflw_teacher": 3, "aflw_fitnet1": 5, "aflw_fitnet2": 5,
    "digits_teacher": 2, "digits_fitnet": 4,
}

# Units of every conv, from the paper's table (FitNets) and depth-study lines.
PAPER_CONV_UNITS = {
    "fitnet1": [16, 16, 16, 32, 32, 32, 48, 48, 64],
    "fitnet2": [16, 32, 32, 48, 64, 80, 96, 96, 128],
    "fitnet3": [32, 48, 64, 64, 80, 80, 80, 80, 128, 128, 128],
    "fitnet4": [32, 32, 32, 48, 48] + [80] * 6 + [128] * 6,
    "depth5_30m": [64, 64, 64], "depth5_107m": [128, 128, 128],
    "depth7_30m": [16, 32, 32, 64, 64], "depth7_107m": [32, 64, 80, 80, 128],
    "depth9_30m": [16, 32, 32, 32, 32, 48, 64], "depth9_107m": [32, 32, 64, 80, 80, 96, 128],
    "depth5_5m": [32, 32, 32], "depth7_5m": [8, 12, 16, 32, 32], "depth9_5m": [8, 12, 16, 16, 16, 24, 32],
    "depth11_5m": [8, 8, 8, 12, 16, 16, 24, 24, 32],
    "cifar_teacher": [96, 192, 192], "svhn_teacher": [64, 128, 128], "mnist_teacher": [48, 48, 24],
    "mnist_fitnet": [16, 16, 16, 16, 12, 12], "mnist_fitnet_uniform": [16, 16, 16, 16, 12, 12],
    "aflw_teacher": [128, 512, 512], "aflw_fitnet1": [16] + [32] * 6, "aflw_fitnet2": [32] + [64] * 6,
}

# Guided layer = last conv of block 2 (every three-block FitNet; not the 11-layer depth nets, see below).
GUIDED_AT_END_OF_BLOCK_2 = [
    "fitnet1", "fitnet2", "fitnet3", "fitnet4", "svhn_fitnet", "mnist_fitnet",
    "depth5_30m", "depth5_107m", "depth7_30m", "depth7_107m", "depth9_30m", "depth9_107m",
    "depth5_5m", "depth7_5m", "depth9_5m",
]

_MODELS = {}


def built(name):
    if name not in _MODELS:
        _MODELS[name] = build_network(get_spec(name), seed=0)
    return _MODELS[name]


def test_registry_lists_every_paper_architecture():
    assert set(list_architectures()) == set(PAPER_HINT_LAYERS)
    assert list_architectures() == list(ARCHITECTURES)


@pytest.mark.parametrize("name", sorted(PAPER_HINT_LAYERS))
def test_every_architecture_builds_with_depth_taps_and_its_paper_hint_layer(name):
    spec = get_spec(name)
    model = built(name)
    assert len(tap_names(model)) == spec.depth
    assert default_hint_layer(name) == spec.hint_layer == PAPER_HINT_LAYERS[name]
    assert resolve_layer(model, default_hint_layer(name)) == f"conv{PAPER_HINT_LAYERS[name]}"
    assert tuple(model.output.shape) == (None, spec.num_classes)


@pytest.mark.parametrize("name", sorted(PAPER_CONV_UNITS))
def test_conv_units_follow_the_paper(name):
    model = built(name)
    units = [model.get_layer(t).output.shape[-1] for t in tap_names(model) if t.startswith("conv")]
    assert units == PAPER_CONV_UNITS[name]


@pytest.mark.parametrize("name", GUIDED_AT_END_OF_BLOCK_2)
def test_guided_layer_is_the_last_conv_of_block_2(name):
    model = built(name)
    guided = model.get_layer(resolve_layer(model, default_hint_layer(name)))
    # Its output feeds the pool that closes block 2, and the next conv works on a smaller map.
    assert model.get_layer("pool2").input is guided.output
    next_conv = model.get_layer(f"conv{default_hint_layer(name) + 1}_linear")
    assert next_conv.output.shape[1] < guided.output.shape[1]


@pytest.mark.parametrize("name,widths", [("depth11_30m", "fitnet1"), ("depth11_107m", "fitnet2")])
def test_eleven_layer_depth_nets_are_fitnets_1_and_2_guided_at_layer_7(name, widths):
    assert get_spec(name).blocks == get_spec(widths).blocks
    model = built(name)
    # Layer 7 is the first conv of block 3 (8x8), one past FitNet 1/2's guided layer 6.
    assert tuple(model.get_layer("conv7").output.shape[1:3]) == (8, 8)
    assert model.get_layer("conv7_linear").input is model.get_layer("pool2").output


def test_cifar_fitnet_shapes_and_training_conventions():
    model = built("fitnet4")
    spec = get_spec("fitnet4")
    assert (spec.initializer, spec.max_norm, spec.num_pieces, spec.fc_pieces) == ("paper", True, 2, 5)
    assert tuple(model.get_layer("conv5").output.shape) == (None, 32, 32, 48)
    assert tuple(model.get_layer("conv11").output.shape) == (None, 16, 16, 80)
    assert tuple(model.get_layer("conv17").output.shape) == (None, 8, 8, 128)
    assert tuple(model.get_layer("pool3").output.shape) == (None, 128)  # the pool over the whole 8x8 map
    assert tuple(model.get_layer("fc1_linear").output.shape) == (None, 2500)
    assert isinstance(model.get_layer("fc1"), Maxout) and model.get_layer("fc1").num_pieces == 5
    assert model.get_layer("conv1_linear").kernel_size == (3, 3)


def test_cifar_teacher_maps_follow_the_pylearn2_kernels_and_pads():
    model = built("cifar_teacher")
    # 32 + 2*4 - 8 + 1 = 33; floor((33 - 4) / 2) + 1 = 15; 15 + 6 - 8 + 1 = 14; -> 6; 6 + 6 - 5 + 1 = 8; -> 4.
    shapes = [tuple(model.get_layer(n).output.shape[1:]) for n in ("conv1", "pool1", "conv2", "pool2", "conv3",
                                                                     "pool3")]
    assert shapes == [(33, 33, 96), (15, 15, 96), (14, 14, 192), (6, 6, 192), (8, 8, 192), (4, 4, 192)]
    assert model.get_layer("conv1_linear").kernel_size == (8, 8)
    assert model.get_layer("conv3_linear").kernel_size == (5, 5)


def test_aflw_nets_are_relu_without_pooling_and_two_classes():
    for name in ("aflw_teacher", "aflw_fitnet1", "aflw_fitnet2"):
        model = built(name)
        assert get_spec(name).activation == "relu"
        assert not any(isinstance(l, (keras.layers.MaxPooling2D, keras.layers.GlobalMaxPooling2D))
                       for l in model.layers)
        assert not any(isinstance(l, Maxout) for l in model.layers)
        assert tuple(model.output.shape) == (None, 2)
    # Same 16x16 maps: the regressor from guided layer 5 to hint layer 3 is a 1x1 conv.
    assert tuple(built("aflw_fitnet1").get_layer("conv5").output.shape[1:3]) == (16, 16)
    assert tuple(built("aflw_teacher").get_layer("conv3").output.shape[1:3]) == (16, 16)


def test_digits_nets():
    for name in ("digits_teacher", "digits_fitnet"):
        spec = get_spec(name)
        assert (spec.input_shape, spec.num_classes, spec.fc_units) == ((8, 8, 1), 10, ())
        assert (spec.initializer, spec.max_norm) == ("glorot_uniform", True)
    teacher, student = built("digits_teacher"), built("digits_fitnet")
    assert tuple(teacher.get_layer("conv2").output.shape) == (None, 8, 8, 64)
    assert tuple(student.get_layer("conv4").output.shape) == (None, 8, 8, 8)
    assert tuple(student.get_layer("conv8").output.shape) == (None, 4, 4, 16)
    # Two blocks only: the guided layer closes block 1, the middle of the net.
    assert student.get_layer("pool1").input is student.get_layer("conv4").output
    assert tap_names(student)[-2:] == ["conv8", "logits"]


def test_get_spec_overrides_input_shape_and_classes_without_touching_the_registry():
    spec = get_spec("fitnet1", input_shape=(8, 8, 1), num_classes=100)
    assert (spec.input_shape, spec.num_classes) == ((8, 8, 1), 100)
    assert (ARCHITECTURES["fitnet1"].input_shape, ARCHITECTURES["fitnet1"].num_classes) == ((32, 32, 3), 10)
    assert dataclasses.replace(spec, input_shape=(32, 32, 3), num_classes=10) == ARCHITECTURES["fitnet1"]
    model = build_network(spec, seed=0)
    assert tuple(model.output.shape) == (None, 100)
    assert tuple(model.get_layer("conv6").output.shape) == (None, 4, 4, 32)
    assert get_spec("fitnet1") is ARCHITECTURES["fitnet1"]


def test_unknown_architecture_lists_the_names():
    with pytest.raises(ValueError, match=r"Unknown architecture 'fitnet5'.*fitnet1, fitnet2"):
        get_spec("fitnet5")
    with pytest.raises(ValueError, match="Unknown architecture"):
        default_hint_layer("resnet")


@pytest.mark.parametrize("overrides,match", [
    (dict(input_shape=(32, 32)), "input_shape must be"),
    (dict(input_shape=(32, 0, 3)), "input_shape must be"),
    (dict(num_classes=1), "num_classes must be"),
    (dict(num_classes=True), "num_classes must be"),
])
def test_get_spec_rejects_malformed_overrides(overrides, match):
    with pytest.raises(ValueError, match=match):
        get_spec("fitnet1", **overrides)


def test_mnist_fitnet_follows_the_original_yaml_and_the_uniform_variant_the_papers_rule():
    """MNIST_fitnet_valid.yaml: h4, h5 have 4 maxout pieces; max_kernel_norm 0.9 for h0, h1 and 1.9365 after."""
    code, uniform = built("mnist_fitnet"), built("mnist_fitnet_uniform")
    for i in range(1, 7):
        linear = code.get_layer(f"conv{i}_linear")
        assert linear.filters == (12 * 4 if i > 4 else 16 * 2)
        assert code.get_layer(f"conv{i}").num_pieces == (4 if i > 4 else 2)
        assert linear.kernel_constraint.max_value == (0.9 if i <= 2 else 1.9365)
        assert uniform.get_layer(f"conv{i}_linear").kernel_constraint.max_value == 0.9
        assert uniform.get_layer(f"conv{i}").num_pieces == 2
    # Same maps: the hint pair 4 <- 2 and the regressor are unchanged.
    assert code.get_layer("pool2").output.shape == uniform.get_layer("pool2").output.shape
