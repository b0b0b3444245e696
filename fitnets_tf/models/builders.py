"""Functional Keras models from a `NetSpec`, with every hidden layer reachable by a stable name.

Naming, identical for every net so that a hint is addressed the same way on a teacher and a FitNet:
  conv{i}        output of the i-th convolution after its non-linearity (i counts over all blocks, from 1);
  conv{i}_linear the linear convolution under it (units * pieces channels for maxout);
  pool{b}        the pool after block b;  flatten;
  fc{j}          output of the j-th hidden fully connected layer after its non-linearity;
  logits         the classifier's pre-softmax output (the model's output).
The paper's 1-based layer index ("hint 11 <- 2": student layer 11 guided by teacher layer 2) counts conv layers,
then hidden FC layers, then the classifier: index i is `tap_names(model)[i - 1]`.

Hint and guided taps (`resolve_tap`): in the paper's code (pylearn2) a conv layer includes the max-pool after it, so
a layer given by its paper INDEX is tapped after that pool (FitNet 4's guided layer 11 is 8x8, not 16x16). A layer
given by NAME is taken literally: "conv11" is the map before the pool, "pool2" the map after it.
"""

import re

import keras
import numpy as np

from fitnets_tf.layers import Maxout
from fitnets_tf.models.spec import NetSpec

PAPER_INIT_LIMIT = 0.005
CONV_MAX_NORM = 0.9
FC_MAX_NORM = 1.9
SOFTMAX_MAX_NORM = 1.9365

_TAP = re.compile(r"^(conv|fc)(\d+)$")
_POOL = re.compile(r"^pool\d+$")


def is_paper_layer_name(name):
    """True for the names the zoo's networks give the layers the paper numbers (conv<i>, fc<i>)."""
    return isinstance(name, str) and bool(_TAP.match(name))


def is_pool_name(name):
    """True for the zoo's max-pool layer names (pool<b>)."""
    return isinstance(name, str) and bool(_POOL.match(name))
_INDEX = re.compile(r"\s*[0-9]+\s*")


def _initializer(spec, seed, index):
    layer_seed = None if seed is None else seed * 1000 + index
    if spec.initializer == "paper":
        return keras.initializers.RandomUniform(-PAPER_INIT_LIMIT, PAPER_INIT_LIMIT, seed=layer_seed)
    return keras.initializers.get({"class_name": spec.initializer, "config": {"seed": layer_seed}})


def _max_norm(spec, value, axis):
    return keras.constraints.MaxNorm(max_value=value, axis=axis) if spec.max_norm else None


def _nonlinearity(spec, pieces, name):
    if spec.activation == "maxout":
        return Maxout(pieces, name=name)
    return keras.layers.Activation(spec.activation, name=name)


def network_graph(spec: NetSpec, seed=None):
    """The functional graph of `spec`: (images input, logits output); see `build_network`."""
    pieces = spec.num_pieces if spec.activation == "maxout" else 1
    fc_pieces = spec.fc_pieces if spec.activation == "maxout" else 1
    inputs = keras.Input(spec.input_shape, name="images")
    x = inputs
    index = 0
    for b, block in enumerate(spec.blocks, start=1):
        block_pieces = block.num_pieces if block.num_pieces and spec.activation == "maxout" else pieces
        for width, kernel, padding in zip(block.widths, block.kernel_sizes(), block.paddings()):
            index += 1
            if isinstance(padding, int):
                x = keras.layers.ZeroPadding2D(padding, name=f"conv{index}_pad")(x)
                padding = "valid"
            x = keras.layers.Conv2D(
                width * block_pieces,
                kernel,
                padding=padding,
                kernel_initializer=_initializer(spec, seed, index),
                kernel_constraint=_max_norm(spec, block.max_norm or CONV_MAX_NORM, [0, 1, 2]),
                name=f"conv{index}_linear",
            )(x)
            x = _nonlinearity(spec, block_pieces, f"conv{index}")(x)
        if block.pool is not None:
            if block.pool.size is None:
                x = keras.layers.GlobalMaxPooling2D(name=f"pool{b}")(x)
            else:
                x = keras.layers.MaxPooling2D(
                    block.pool.size, block.pool.stride, padding=block.pool.padding, name=f"pool{b}"
                )(x)
    if len(x.shape) == 4:
        x = keras.layers.Flatten(name="flatten")(x)
    for j, units in enumerate(spec.fc_units, start=1):
        index += 1
        if spec.dropout:
            x = keras.layers.Dropout(spec.dropout, name=f"fc{j}_dropout")(x)
        x = keras.layers.Dense(
            units * fc_pieces,
            kernel_initializer=_initializer(spec, seed, index),
            kernel_constraint=_max_norm(spec, FC_MAX_NORM, 0),
            name=f"fc{j}_linear",
        )(x)
        x = _nonlinearity(spec, fc_pieces, f"fc{j}")(x)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout, name="logits_dropout")(x)
    logits = keras.layers.Dense(
        spec.num_classes,
        kernel_initializer=_initializer(spec, seed, index + 1),
        kernel_constraint=_max_norm(spec, SOFTMAX_MAX_NORM, 0),
        name="logits",
        dtype="float32" if keras.mixed_precision.global_policy().compute_dtype != "float32" else None,
    )(x)
    return inputs, logits


def tap_names(model: keras.Model):
    """The names of the layers the paper numbers, in order: conv1..convN, fc1..fcM, logits."""
    convs, fcs = [], []
    for layer in model.layers:
        match = _TAP.match(layer.name)
        if match:
            (convs if match.group(1) == "conv" else fcs).append((int(match.group(2)), layer.name))
    return [name for _, name in sorted(convs)] + [name for _, name in sorted(fcs)] + ["logits"]


def paper_index(reference):
    """The paper's 1-based layer index that `reference` gives, or None when it is not an index.

    The one parser of layer indices: an int (Python or NumPy, not a bool) or a string of ASCII digits ("11",
    " 11") is an index; anything else (a layer name such as "conv11" or "pool2", a path) is None. The range is not
    checked here: it depends on the model (`resolve_layer`) or on the layers a caller counts.
    """
    if isinstance(reference, bool):
        return None
    if isinstance(reference, (int, np.integer)):
        return int(reference)
    if isinstance(reference, str) and _INDEX.fullmatch(reference):
        return int(reference)
    return None


def layer_reference(reference):
    """`reference` with an index as an int ("11" -> 11, see `paper_index`), a layer name unchanged."""
    index = paper_index(reference)
    return reference if index is None else index


def resolve_layer(model: keras.Model, layer, role="layer"):
    """Returns the name of `layer`, given as a 1-based paper index (int or digit string) or a layer name.

    Args:
        model: a model from `build_network`.
        layer: e.g. 11, "11" or "conv11".
        role: how the error message calls the layer ("hint layer", "guided layer").
    Raises:
        ValueError naming the model, what was asked and what exists.
    """
    names = tap_names(model)
    index = paper_index(layer)
    if index is not None:
        if not 1 <= index <= len(names):
            raise ValueError(
                f"{role} index {index} does not exist in model '{model.name}': its layers are numbered 1.."
                f"{len(names)} ({', '.join(names)})."
            )
        return names[index - 1]
    if layer not in names:
        raise ValueError(
            f"{role} {layer!r} does not exist in model '{model.name}'. Choose an index 1..{len(names)} or one of: "
            f"{', '.join(names)}."
        )
    return layer


def resolve_tap(model: keras.Model, layer, role="layer"):
    """The hint/guided tap of `layer`: (name of the conv/fc layer, name of the layer whose output is the tap).

    An index (int or digit string) follows the paper: the tap includes the spatial max-pool that directly follows
    the layer, if any. A name is literal ("conv8": before its pool; "pool2": after it, with conv layer the one the
    pool follows). The non-linearity of the tap is the conv/fc layer's.
    """
    layers = model.layers
    names = [l.name for l in layers]
    if isinstance(layer, str) and _POOL.match(layer):
        if layer not in names:
            pools = [n for n in names if _POOL.match(n)]
            raise ValueError(f"{role} {layer!r} does not exist in model '{model.name}'. Pools: {', '.join(pools)}.")
        before = [n for n in names[: names.index(layer)] if _TAP.match(n)]
        if not before:
            raise ValueError(f"{role} {layer!r} of model '{model.name}' follows no conv layer.")
        return before[-1], layer
    by_index = paper_index(layer) is not None
    name = resolve_layer(model, layer, role)
    position = names.index(name)
    if by_index and position + 1 < len(layers) and isinstance(layers[position + 1], keras.layers.MaxPooling2D):
        return name, names[position + 1]
    return name, name


def truncated_model(model: keras.Model, layer, role="layer") -> keras.Model:
    """The sub-model from the input to the tap of `layer` (see `resolve_tap`). It SHARES variables with `model`."""
    _, output = resolve_tap(model, layer, role)
    return keras.Model(model.inputs, model.get_layer(output).output, name=f"{model.name}_to_{output}")


def layer_index(model: keras.Model, layer) -> int:
    """The paper's 1-based index of `layer` (index or name)."""
    return tap_names(model).index(resolve_layer(model, layer)) + 1
