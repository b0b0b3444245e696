"""The regressor r(v_g; W_r) that maps the student's guided-layer output onto the teacher's hint (paper Sec. 2.2).

A fully connected regressor would need N_h1*N_h2*O_h*N_g1*N_g2*O_g weights; FitNets use a CONVOLUTIONAL one whose
"valid" kernel k_i = N_g,i - N_h,i + 1 turns the guided map (N_g) into the hint's spatial size (N_h), with
k1*k2*O_h*O_g weights. The regressor ends in the hint layer's own non-linearity (a maxout conv when the hint is
maxout), so that u_h and r(v_g) live in the same space.
"""

import math

import keras

from fitnets_tf.layers import Maxout

REGRESSOR_KINDS = ("conv", "conv1x1", "dense", "resize", "auto")


def hint_nonlinearity(layer):
    """The non-linearity of a teacher's hint layer: ("maxout", pieces), (activation name, 1), or ("linear", 1)."""
    if isinstance(layer, Maxout):
        return "maxout", layer.num_pieces
    if isinstance(layer, keras.layers.Activation):
        return keras.activations.serialize(layer.activation), 1
    if isinstance(layer, keras.layers.ReLU):  # keras.applications' ReLU6 is ReLU(max_value=6)
        config = layer.get_config()
        if config.get("negative_slope") or config.get("threshold"):
            return "linear", 1  # no named activation matches; the regressor stays linear
        return ("relu6" if config.get("max_value") == 6 else "relu"), 1
    activation = getattr(layer, "activation", None)
    if activation is not None:
        name = keras.activations.serialize(activation)
        return ("linear" if name in ("linear", None) else name), 1
    return "linear", 1


def regressor_kernel(guided_shape, hint_shape):
    """The paper's kernel rule: k_i = N_g,i - N_h,i + 1 for the two spatial axes of (batch, H, W, C) shapes."""
    return tuple(int(g) - int(h) + 1 for g, h in zip(guided_shape[1:3], hint_shape[1:3]))


def conv_regressor_weights(guided_shape, hint_shape, kernel=None):
    """The weights (kernel and bias) of a conv regressor of `kernel` (default: the paper's) between two maps."""
    kernel = kernel or regressor_kernel(guided_shape, hint_shape)
    return math.prod(kernel) * int(guided_shape[-1]) * int(hint_shape[-1]) + int(hint_shape[-1])


def choose_regressor(guided_shape, hint_shape, max_weights=None):
    """The "auto" regressor: (kind, reason). The paper's "conv" when both are maps, k = N_g - N_h + 1 >= 1 and its
    weights stay within `max_weights` (None: no limit); "resize" (resize to the hint's size, then a 1x1 conv) for
    two maps it cannot map, or when its kernel would outweigh that limit; "dense" when one side is not a 4-D map."""
    if len(guided_shape) == 4 and len(hint_shape) == 4:
        kernel = regressor_kernel(guided_shape, hint_shape)
        if min(kernel) >= 1:
            weights = conv_regressor_weights(guided_shape, hint_shape, kernel)
            if max_weights is None or weights <= max_weights or kernel == (1, 1):
                return "conv", f"the paper's rule applies: kernel N_g - N_h + 1 = {kernel}"
            resized = conv_regressor_weights(guided_shape, hint_shape, (1, 1))
            return "resize", (f"the paper's conv regressor would need a {kernel} kernel, {weights:,} weights, more "
                              f"than the limit of {int(max_weights):,} (a share of the student's parameters); the "
                              f"guided map {tuple(guided_shape[1:3])} is resized to the hint's "
                              f"{tuple(hint_shape[1:3])} and a 1x1 conv maps the channels ({resized:,} weights)")
        return "resize", (f"the hint map {tuple(hint_shape[1:3])} is larger than the guided map "
                          f"{tuple(guided_shape[1:3])} on some axis (kernel {kernel}), so the guided map is resized "
                          "to the hint's size and a 1x1 conv maps the channels")
    return "dense", (f"one side is not a 4-D map (guided {len(guided_shape)}-D, hint {len(hint_shape)}-D), so the "
                     "guided output is flattened and mapped by a fully connected layer")


def regressor_refusal(guided_shape, hint_shape, kind="conv"):
    """Why a `kind` regressor cannot map the guided shape onto the hint shape, or None when it can.

    The one statement of the regressor's feasibility rules: `build_regressor` refuses exactly these pairs, and the
    experiment sweeps pair layers by them. "dense" maps any pair; "auto" (`choose_regressor`) always finds one.

    Args:
        guided_shape, hint_shape: full shapes with a batch axis, e.g. (None, 8, 8, 64) and (None, 16, 16, 96).
        kind: one of `REGRESSOR_KINDS`.
    Returns:
        None, or "<why>. <what to choose instead>.".
    Raises:
        ValueError for a kind not in `REGRESSOR_KINDS`.
    """
    if kind not in REGRESSOR_KINDS:
        raise ValueError(f"regressor must be one of {REGRESSOR_KINDS}. Received: regressor={kind!r}")
    maps = len(guided_shape) == 4 and len(hint_shape) == 4
    if kind == "resize" and not maps:
        return "resizing needs a 4-D (batch, H, W, C) map on both sides. Choose regressor='dense' (or 'auto')."
    if kind not in ("conv", "conv1x1"):
        return None
    if not maps:
        return ("a convolutional regressor needs a 4-D (batch, H, W, C) map on both sides. Choose conv layers for "
                "both the hint and the guided layer, or regressor='dense'.")
    kernel = regressor_kernel(guided_shape, hint_shape)
    if min(kernel) < 1:
        return ("the hint map is larger than the guided map, so the kernel N_g - N_h + 1 would be "
                f"{kernel} (the original code refuses this too: it 'needs zero-padding'). Choose an earlier guided "
                "layer (a larger map) or a deeper hint layer (a smaller map), or regressor='resize' (resize + 1x1 "
                "conv), regressor='dense' or regressor='auto'.")
    if kind == "conv1x1" and kernel != (1, 1):
        return ("a 1x1 regressor keeps the spatial size, and the two maps differ. Choose regressor='conv' (kernel "
                "N_g - N_h + 1) or layers whose maps have the same size.")
    return None


def build_regressor(
    guided_shape,
    hint_shape,
    kind="conv",
    nonlinearity=("linear", 1),
    guided_name="guided",
    hint_name="hint",
    initializer="glorot_uniform",
    name="regressor",
):
    """Builds the regressor from the guided layer's output shape to the hint layer's.

    Args:
        guided_shape, hint_shape: full shapes with a batch axis, e.g. (None, 16, 16, 80) and (None, 15, 15, 192).
        kind: "conv" (the paper's valid conv, kernel N_g - N_h + 1), "conv1x1" (equal spatial sizes only),
            "dense" (flatten, fully connected, reshape: maps any pair, at the cost of many weights), "resize"
            (bilinear resize to the hint's spatial size, then a 1x1 conv: any two maps), or "auto"
            (`choose_regressor`).
        nonlinearity: the hint layer's, from `hint_nonlinearity`: ("maxout", pieces), ("relu", 1), ("linear", 1).
        guided_name, hint_name: named in the error when the pair cannot be mapped.
    Returns:
        A functional `keras.Model` from the guided output to a tensor of the hint's shape.
    Raises:
        ValueError naming both layers, their shapes and what to choose instead.
    """
    refusal = regressor_refusal(guided_shape, hint_shape, kind)
    if refusal is not None:
        raise ValueError(f"No '{kind}' regressor can map guided layer '{guided_name}' {tuple(guided_shape)} onto hint "
                         f"layer '{hint_name}' {tuple(hint_shape)}: {refusal}")
    if kind == "auto":
        kind, _ = choose_regressor(guided_shape, hint_shape)
    activation, pieces = nonlinearity
    out_units = int(hint_shape[-1])

    inputs = keras.Input(tuple(guided_shape[1:]), name=f"{name}_input")
    if kind in ("conv", "conv1x1"):
        kernel = regressor_kernel(guided_shape, hint_shape)
        x = keras.layers.Conv2D(
            out_units * pieces, kernel, padding="valid", kernel_initializer=initializer, name=f"{name}_conv"
        )(inputs)
    elif kind == "resize":
        x = keras.layers.Resizing(int(hint_shape[1]), int(hint_shape[2]), interpolation="bilinear",
                                  name=f"{name}_resize")(inputs)
        x = keras.layers.Conv2D(out_units * pieces, 1, kernel_initializer=initializer, name=f"{name}_conv")(x)
    else:
        x = keras.layers.Flatten(name=f"{name}_flatten")(inputs) if len(guided_shape) > 2 else inputs
        x = keras.layers.Dense(
            math.prod(int(d) for d in hint_shape[1:]) * pieces, kernel_initializer=initializer,
            name=f"{name}_dense",
        )(x)
        if pieces > 1:
            x = keras.layers.Reshape((*tuple(int(d) for d in hint_shape[1:-1]), out_units * pieces),
                                     name=f"{name}_reshape")(x)
    if activation == "maxout":
        x = Maxout(pieces, name=f"{name}_maxout")(x)
    elif activation != "linear":
        x = keras.layers.Activation(activation, name=f"{name}_{activation}")(x)
    if kind == "dense":
        x = keras.layers.Reshape(tuple(int(d) for d in hint_shape[1:]), name=f"{name}_to_hint")(x)
    return keras.Model(inputs, x, name=name)
