"""Parameters and multiplications of a network, counted from its layers (paper Table 1 and Sec. 4.4).

Convention (the original code's `scripts/computeNumberMult.py`, which reproduces the paper's recounts):
  Conv2D: H_out * W_out * k_h * k_w * C_in * filters, where `filters` includes the maxout pieces (a maxout conv of
          U units and k pieces is a linear conv with U * k filters, each evaluated everywhere) and C_in counts the
          units of the layer below (its maxout output, after the max);
  Dense:  (positions) * in * out, the pieces again included (FC maxout 500 x 5: in * 2500), the softmax layer too;
  anything else (biases, max, pooling, padding): 0 — additions and comparisons are not multiplications.
With this convention FitNets 1 / 2 / 3 / 4 count 30.25M / 107.97M / 324.1M / 381.94M multiplications, the recounts
30.2M / 108.0M / 324M / 381.9M; the paper quotes ~30M / ~108M / ~392M / ~382M (its FitNet 3 figure does not follow
from the table's widths). Leaving the pieces out halves every figure (15.1M for FitNet 1); leaving the FC head out
gives 30.08M / 107.64M / 381.62M, which no longer rounds to the recounts of FitNets 2 and 4.

Parameters are all weights (trainable and non-trainable), biases included.
"""

import math

import keras


def _flat_layers(model):
    """Every layer of `model`, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _flat_layers(layer)
        else:
            yield layer


def _layer_params(layer):
    return int(sum(math.prod(w.shape) for w in layer.weights))


def _layer_mults(layer):
    if isinstance(layer, keras.layers.Conv2D):
        out = layer.output.shape  # (batch, H_out, W_out, filters), channels_last as every builder net
        if layer.data_format == "channels_first":
            positions = out[2] * out[3]
            c_in = layer.input.shape[1]
        else:
            positions = out[1] * out[2]
            c_in = layer.input.shape[-1]
        kh, kw = layer.kernel_size
        return int(positions * kh * kw * (c_in // layer.groups) * layer.filters)
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # keras.applications' MobileNets: one filter per channel
        out = layer.output.shape
        positions = out[2] * out[3] if layer.data_format == "channels_first" else out[1] * out[2]
        c_in = layer.input.shape[1 if layer.data_format == "channels_first" else -1]
        kh, kw = layer.kernel_size
        return int(positions * kh * kw * c_in * layer.depth_multiplier)
    if isinstance(layer, keras.layers.Dense):
        positions = math.prod(layer.output.shape[1:-1])  # 1 for the usual (batch, features) input
        return int(positions * layer.input.shape[-1] * layer.units)
    return 0


def count_parameters(model):
    """Number of weights of `model`, trainable and non-trainable, biases included."""
    return int(sum(math.prod(w.shape) for w in model.weights))


def count_multiplications(model):
    """Multiplications of one forward pass of one example (see the module docstring for the convention)."""
    return sum(_layer_mults(layer) for layer in _flat_layers(model))


def layer_table(model):
    """One row per Conv2D / Dense layer, in model order, for printing.

    Returns:
        A list of dicts: `name` (e.g. "conv3_linear", "logits"), `output_shape` (without the batch axis; a maxout
        layer's linear output, units * pieces channels), `params` and `mults` of that layer.
    """
    rows = []
    for layer in _flat_layers(model):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            rows.append({
                "name": layer.name,
                "output_shape": tuple(layer.output.shape[1:]),
                "params": _layer_params(layer),
                "mults": _layer_mults(layer),
            })
    return rows
