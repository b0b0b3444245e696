import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import keras
import pytest

from fitnets_tf.models import BlockSpec, NetSpec, build_network, truncated_model
from fitnets_tf.models.counting import count_multiplications, count_parameters, layer_table
from fitnets_tf.models.zoo import get_spec

REPO = pathlib.Path(__file__).resolve().parents[2]

_MODELS = {}


def built(name):
    if name not in _MODELS:
        _MODELS[name] = build_network(get_spec(name), seed=0)
    return _MODELS[name]


def two_layer_maxout_net():
    """5x5x2 image -> maxout conv, 3 units x 2 pieces, 3x3 valid (3x3 map) -> flatten (27) -> 4 logits."""
    spec = NetSpec(
        name="two_layers", input_shape=(5, 5, 2), num_classes=4,
        blocks=(BlockSpec((3,), kernel_size=3, padding="valid", pool=None),), initializer="glorot_uniform",
    )
    return build_network(spec, seed=0)


def test_two_layer_net_by_hand():
    model = two_layer_maxout_net()
    # conv: 3*3 positions * 3*3 kernel * 2 input channels * 6 filters (3 units x 2 pieces) = 972;
    # classifier: 27 maxout outputs * 4 classes = 108.
    assert count_multiplications(model) == 972 + 108
    # conv: 3*3*2*6 weights + 6 biases = 114; classifier: 27*4 + 4 = 112.
    assert count_parameters(model) == 114 + 112
    assert layer_table(model) == [
        {"name": "conv1_linear", "output_shape": (3, 3, 6), "params": 114, "mults": 972},
        {"name": "logits", "output_shape": (4,), "params": 112, "mults": 108},
    ]


def test_plain_keras_layers_non_trainable_weights_and_nested_models():
    inner = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, padding="same", use_bias=False)],
                             name="inner")
    inputs = keras.Input((6, 6, 1))
    x = inner(inputs)
    x = keras.layers.BatchNormalization()(x)  # 4 gammas, 4 betas trainable; 4 means, 4 variances not
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3)(x)
    model = keras.Model(inputs, outputs)
    # conv 6*6 * 3*3 * 1 * 4 = 1296 (inside the nested model); dense 4 * 3 = 12; batch norm, pooling: 0.
    assert count_multiplications(model) == 1296 + 12
    assert count_parameters(model) == 36 + 16 + (12 + 3)


def test_truncated_model_counts_only_the_layers_up_to_the_guided_layer():
    model = built("fitnet1")
    sub = truncated_model(model, 6)
    # Blocks 1 and 2 of FitNet 1: 32*32*9*2*(3*16 + 16*16 + 16*16) + 16*16*9*2*(16*32 + 32*32 + 32*32).
    assert count_multiplications(sub) == 32 * 32 * 9 * 2 * 560 + 16 * 16 * 9 * 2 * 2560


# The code's counting formula (maxout pieces counted as filters, FC head included) gives the paper's recounts.
@pytest.mark.parametrize("name,recount", [("fitnet1", 30.2e6), ("fitnet2", 108.0e6), ("fitnet3", 324e6),
                                          ("fitnet4", 381.9e6)])
def test_multiplications_match_the_papers_recounts(name, recount):
    assert count_multiplications(built(name)) == pytest.approx(recount, rel=0.02)


@pytest.mark.parametrize("name,paper", [("fitnet1", 30e6), ("fitnet2", 108e6), ("fitnet4", 382e6)])
def test_multiplications_match_the_papers_table(name, paper):
    assert count_multiplications(built(name)) == pytest.approx(paper, rel=0.02)


@pytest.mark.parametrize("name,recount", [("fitnet1", 0.35e6), ("fitnet2", 1.05e6), ("fitnet3", 1.70e6),
                                          ("fitnet4", 2.74e6)])
def test_parameters_match_the_papers_recounts(name, recount):
    assert count_parameters(built(name)) == pytest.approx(recount, rel=0.03)


@pytest.mark.parametrize("name,paper", [("fitnet1", 250e3), ("fitnet2", 862e3), ("fitnet4", 2.5e6)])
def test_papers_own_parameter_figures_count_weights_only_with_a_2_piece_fc(name, paper):
    """The explanation of the gap: without biases and with 2 FC pieces instead of 5, the paper's figures return."""
    model = build_network(dataclasses.replace(get_spec(name), fc_pieces=2), seed=0)
    kernels = sum(int(l.kernel.numpy().size) for l in model.layers if hasattr(l, "kernel"))
    assert kernels == pytest.approx(paper, rel=0.02)


@pytest.mark.parametrize("name,budget", [
    ("depth5_30m", 30e6), ("depth7_30m", 30e6), ("depth9_30m", 30e6), ("depth11_30m", 30e6),
    ("depth5_107m", 107e6), ("depth7_107m", 107e6), ("depth9_107m", 107e6), ("depth11_107m", 107e6),
    ("depth5_5m", 5e6), ("depth7_5m", 5e6), ("depth9_5m", 5e6), ("depth11_5m", 5e6),
])
def test_depth_study_nets_fit_their_budget(name, budget):
    assert count_multiplications(built(name)) == pytest.approx(budget, rel=0.10)


def test_mnist_nets_match_the_papers_sizes():
    # The paper's ~30K is the net with 2 pieces everywhere; the code's 4 pieces in the last block add 6,096:
    assert count_parameters(built("mnist_fitnet_uniform")) == pytest.approx(30e3, rel=0.02)
    # 24 more linear filters in conv5 (3x3 over 16 units, + bias) and in conv6 (3x3 over 12 units, + bias).
    extra = 24 * (3 * 3 * 16 + 1) + 24 * (3 * 3 * 12 + 1)
    assert count_parameters(built("mnist_fitnet")) - count_parameters(built("mnist_fitnet_uniform")) == extra
    assert count_parameters(built("mnist_teacher")) == pytest.approx(361e3, rel=0.01)


@pytest.mark.slow  # scripts/count.py in a subprocess
def test_count_script_prints_json():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "count.py"), "--architectures=fitnet1,digits_fitnet",
         "--format=json", "--layers"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True,
    )
    table = json.loads(result.stdout)
    assert set(table) == {"fitnet1", "digits_fitnet"}
    assert table["fitnet1"]["depth"] == 11
    assert table["fitnet1"]["hint_layer"] == 6 and table["fitnet1"]["hint_layer_name"] == "conv6"
    # 32*32*9*3*32 for the first conv, from the paper's widths (16 units x 2 pieces).
    assert table["fitnet1"]["layers"][0] == {
        "name": "conv1_linear", "output_shape": [32, 32, 32], "params": 896, "mults": 32 * 32 * 9 * 3 * 32,
    }
    assert table["fitnet1"]["mults"] == pytest.approx(30.2e6, rel=0.02)


def test_depthwise_convolutions_are_counted():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=False)(inputs)
    model = keras.Model(inputs, x)
    # every output position (8x8) of each of the 4 * 2 output channels takes a 3x3 window of its one input channel
    assert count_multiplications(model) == 8 * 8 * 3 * 3 * 4 * 2
