"""Taps: the hint and guided layers of ANY Keras model, as sub-models that share the model's variables.

A hint/guided reference resolves on
  * a functional or Sequential model, by layer name: "c4", "block_3_expand_relu";
  * a model nested in another (a keras.applications backbone used as a layer of the user's model), by a path of
    layer names joined by "/": "mobilenetv2_0.35_32/block_3_expand_relu";
  * a functional model that publishes named intermediate outputs in a dict attribute `pyramid_outputs` (as
    keras-hub backbones do): "P3", or "backbone/P3" when nested;
  * a model that implements the intermediate-outputs protocol below (subclassed models);
  * the paper's 1-based layer index (an int or a digit string) on the zoo's networks, tapped after the max-pool
    that follows the layer (see `fitnets_tf.models.builders.resolve_tap`).

The intermediate-outputs protocol. A `keras.Model` subclass whose `call` is not a functional graph is distillable
when it defines

    intermediate_names          a sequence of the names it can expose, in forward order (input to output);
    intermediate_outputs(inputs, names, training=False)
                                a dict {name: tensor} holding at least `names`, computed from `inputs` with the
                                model's own layers (so the tensors depend on the model's variables).

and its `call` returns logits (pre-softmax). The zoo's networks (`fitnets_tf.models.FitNetsNetwork`) implement it,
though they are functional inside and are cut on their graph like any functional model. A protocol hint carries no
layer, so its regressor ends linearly (functional hints end in the hint layer's own non-linearity, Sec. 2.2). A
subclassed model saved as .keras reloads only if its class is registered (`keras.saving.register_keras_serializable`)
and imported.

Stage 1 trains exactly the variables the guided output depends on: for a functional model the truncated sub-model
holds exactly those; for a protocol model they are found by differentiating the guided output once, on a zero
batch, and keeping the variables with a gradient (inference mode, so no batch-norm statistic moves).

Teachers that end in a softmax (keras.applications' default) are detected: `logits_model` returns a sub-model
that outputs the logits before the softmax (sharing the variables) and says so, since KD on probabilities would be
silently wrong. A protocol model that returns probabilities is refused.
"""

import dataclasses
import logging

import keras
import numpy as np
import tensorflow as tf

from fitnets_tf.models import builders
from fitnets_tf.regressor import regressor_refusal

logger = logging.getLogger(__name__)

SEPARATOR = "/"


@dataclasses.dataclass(frozen=True)
class Tap:
    """One resolved hint/guided reference.

    Attributes:
        name: the canonical reference, e.g. "pool2" (for the paper index 11 on a zoo net),
            "mobilenetv2_0.35_32/block_3_expand_relu", "P3", or a protocol name.
        layer: the layer whose non-linearity the tap carries (for the regressor), or None when unknown.
    """

    name: str
    layer: object = None


def is_functional(model):
    """True for functional and (built) Sequential models: their graph can be cut at any layer."""
    try:
        return bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError):
        return False


def has_protocol(model):
    return callable(getattr(model, "intermediate_outputs", None)) and hasattr(model, "intermediate_names")


def check_single_input_output(model, role):
    """Refuses, in one line, a `role` model ("student", "teacher") with several inputs or several outputs: FitNets
    distils image classifiers, each with one image input and one output, the class logits. Models that do not say
    (an unbuilt subclassed model) pass; their call is checked when it runs."""
    inputs = getattr(model, "inputs", None) if is_functional(model) else None
    outputs = getattr(model, "outputs", None) if is_functional(model) else None
    for what, tensors in (("inputs", inputs), ("outputs", outputs)):
        if tensors is not None and len(tensors) != 1:
            names = ", ".join(getattr(t, "name", "?") for t in tensors)
            raise ValueError(
                f"The {role} '{model.name}' has {len(tensors)} {what} ({names}); a FitNets {role} must be an image "
                f"classifier with one image input and one output (the class logits). Wrap it in a keras.Model "
                f"that takes the image alone and returns the logits alone.")


def model_input_shape(model):
    """(H, W, C) of the model's images, or None when the model does not say (an unbuilt subclassed model)."""
    if is_functional(model):
        return tuple(model.inputs[0].shape[1:])
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    for shape in shapes.values():
        if shape is not None:
            return tuple(shape[1:])
    shape = getattr(model, "image_shape", None)
    return None if shape is None else tuple(shape)


# ------------------------------------------------------------------------------------------------ resolution
def _layer_names(model):
    return [layer.name for layer in model.layers]


def _choices(model, limit=40):
    names = list(getattr(model, "pyramid_outputs", None) or {}) + _layer_names(model)
    shown = ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
    nested = [l.name for l in model.layers if is_functional(l)]
    hint = f" Nested models (address their layers as '<model>{SEPARATOR}<layer>'): {', '.join(nested)}." if nested else ""
    return f"Choose one of: {shown}.{hint}"


def _is_paper_index(reference):
    return builders.paper_index(reference) is not None


def _uses_paper_names(model):
    return is_functional(model) and any(builders.is_paper_layer_name(n) for n in _layer_names(model))


def _walk_back(layer):
    """The layer that gives a tap its non-linearity: pools, flattens, dropouts and paddings carry their input's."""
    passthrough = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.GlobalMaxPooling2D,
                   keras.layers.GlobalAveragePooling2D, keras.layers.Flatten, keras.layers.Dropout,
                   keras.layers.ZeroPadding2D, keras.layers.Reshape)
    seen = 0
    while isinstance(layer, passthrough) and seen < 10:
        nodes = getattr(layer, "_inbound_nodes", [])
        if not nodes or not nodes[0].input_tensors:
            break
        layer = nodes[0].input_tensors[0]._keras_history.operation
        seen += 1
    return layer


def resolve(model, reference, role="layer"):
    """Resolves `reference` (see the module docstring) on `model` into a `Tap`; raises ValueError naming the model,
    what was asked and what exists."""
    if _is_paper_index(reference) or (isinstance(reference, str) and _uses_paper_names(model)
                                       and (builders.is_paper_layer_name(reference)
                                            or builders.is_pool_name(reference))):
        if not _uses_paper_names(model):
            raise ValueError(
                f"{role} {reference!r}: a paper index needs one of the zoo's networks (layers named conv<i>/fc<i>); "
                f"model '{model.name}' has none. Give a layer name instead. {_choices(model)}")
        nonlinear, output = builders.resolve_tap(model, reference, role)
        return Tap(output, model.get_layer(nonlinear))
    if not isinstance(reference, str) or not reference:
        raise ValueError(f"{role} must be a layer name, a path 'model{SEPARATOR}layer' or a paper index. "
                         f"Received: {reference!r}")
    if not is_functional(model):
        if has_protocol(model):
            names = list(model.intermediate_names)
            if reference not in names:
                raise ValueError(f"{role} {reference!r} is not among the intermediate outputs of model "
                                 f"'{model.name}': {', '.join(names)}.")
            return Tap(reference, None)
        raise ValueError(
            f"{role} {reference!r}: model '{model.name}' is a subclassed model without the intermediate-outputs "
            "protocol. Define `intermediate_names` and `intermediate_outputs(inputs, names, training=False)` "
            "on it (see fitnets_tf.taps), or build it as a functional model.")
    parts = reference.split(SEPARATOR)
    current = model
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        pyramid = getattr(current, "pyramid_outputs", None) or {}
        if last and part in pyramid:
            return Tap(reference, _walk_back(pyramid[part]._keras_history.operation))
        if part not in _layer_names(current):
            where = f"model '{current.name}'" + (f" (inside '{model.name}')" if current is not model else "")
            raise ValueError(f"{role} {reference!r}: no layer {part!r} in {where}. {_choices(current)}")
        layer = current.get_layer(part)
        if last:
            return Tap(reference, _walk_back(layer))
        if not is_functional(layer):
            raise ValueError(f"{role} {reference!r}: layer {part!r} of model '{current.name}' is not a functional "
                             "model, so it has no layers to address.")
        current = layer


# ------------------------------------------------------------------------------------------ the tap tensors
def _outer_input(layer):
    """The tensor a nested model is called on in its parent's graph (its first call)."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if not nodes:
        raise ValueError(f"nested model '{layer.name}' is never called in its parent model.")
    tensors = nodes[0].input_tensors
    return tensors[0] if len(tensors) == 1 else list(tensors)


def _inputs(model):
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def _tensor(model, parts):
    """The symbolic tensor of `parts` (a path) in `model`'s graph; nested models are cut and re-applied."""
    pyramid = getattr(model, "pyramid_outputs", None) or {}
    if len(parts) == 1:
        if parts[0] in pyramid:
            return pyramid[parts[0]]
        return model.get_layer(parts[0]).output
    inner = model.get_layer(parts[0])
    sub = keras.Model(_inputs(inner), _tensor(inner, parts[1:]), name=f"{inner.name}_to_{parts[-1]}")
    return sub(_outer_input(inner))


class ProtocolTaps:
    """The tap callable of a protocol model: `(inputs, training) -> [tensor per name]`.

    `trainable_variables` holds exactly the model's variables the taps depend on (found once by differentiation).
    """

    def __init__(self, model, names, input_shape):
        self.model = model
        self.names = list(names)
        self.name = f"{model.name}_taps"
        self.trainable_variables = dependent_variables(self, model.trainable_variables, input_shape)

    def __call__(self, inputs, training=False):
        outputs = self.model.intermediate_outputs(inputs, self.names, training=training)
        if not isinstance(outputs, dict):
            raise TypeError(f"{type(self.model).__name__}.intermediate_outputs must return a dict {{name: tensor}}. "
                            f"Received: {type(outputs).__name__}")
        return [outputs[n] for n in self.names]


def tap_model(model, taps, name, input_shape=None):
    """A callable `(images, training) -> [one tensor per tap]` sharing `model`'s variables.

    Functional models give a truncated functional `keras.Model` (its `trainable_variables` are exactly those the
    taps depend on); protocol models give a `ProtocolTaps`.
    """
    names = [t.name if isinstance(t, Tap) else t for t in taps]
    if is_functional(model):
        outputs = [_tensor(model, n.split(SEPARATOR)) for n in names]
        return keras.Model(_inputs(model), outputs, name=name)
    return ProtocolTaps(model, names, input_shape)


def dependent_variables(fn, variables, input_shape):
    """The `variables` that `fn`'s outputs depend on: those with a gradient, on a zero batch in inference mode."""
    if input_shape is None:
        raise ValueError("Cannot find which variables the taps depend on: the model's input shape is unknown. Build "
                         "the model (call it once on a batch) or pass input_shape=(H, W, C) to the Distiller.")
    x = tf.zeros((2, *input_shape))
    variables = list(variables)
    with tf.GradientTape() as tape:
        outputs = fn(x, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        total = tf.add_n([tf.reduce_sum(tf.cast(o, "float32")) for o in outputs])
    gradients = tape.gradient(total, variables, unconnected_gradients=tf.UnconnectedGradients.NONE)
    return [v for v, g in zip(variables, gradients) if g is not None]


def output_shapes(fn, input_shape):
    """The (None, ...) shapes of `fn`'s outputs, from one zero image."""
    outputs = fn(tf.zeros((1, *input_shape)), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [(None, *tuple(int(d) for d in o.shape[1:])) for o in outputs]


# ---------------------------------------------------------------------------------------- softmax-ending models
class DenseLogits(keras.layers.Layer):
    """The pre-activation of a `Dense` layer, with that layer's own variables: x @ kernel + bias."""

    def __init__(self, dense, **kwargs):
        super().__init__(name=f"{dense.name}_logits", **kwargs)
        self.dense = dense

    def call(self, inputs):
        x = keras.ops.matmul(inputs, self.dense.kernel)
        return x if self.dense.bias is None else keras.ops.add(x, self.dense.bias)


def _is_softmax(fn):
    return fn is not None and getattr(fn, "__name__", "") in ("softmax", "log_softmax")


def _logits_tensor(model, output):
    """(tensor of the logits in `model`'s graph, what was done) when `output` is a softmax, else (output, None)."""
    op = output._keras_history.operation
    if isinstance(op, keras.layers.Softmax) or (isinstance(op, keras.layers.Activation) and _is_softmax(op.activation)):
        node = op._inbound_nodes[0]
        return node.input_tensors[0], f"removed the final softmax layer '{op.name}'"
    if _is_softmax(getattr(op, "activation", None)):
        if not isinstance(op, keras.layers.Dense):
            raise ValueError(f"model '{model.name}' ends in layer '{op.name}' ({type(op).__name__}) with a softmax "
                             "activation, which cannot be removed here. Rebuild it without the softmax.")
        node = op._inbound_nodes[0] if len(op._inbound_nodes) == 1 else _node_for(op, output)
        return DenseLogits(op)(node.input_tensors[0]), f"used the pre-softmax output of layer '{op.name}'"
    if is_functional(op) and op is not model:
        inner_logits, note = _logits_tensor(op, op.outputs[0])
        if note is None:
            return output, None
        sub = keras.Model(_inputs(op), inner_logits, name=f"{op.name}_logits")
        return sub(_outer_input(op)), f"{note} of nested model '{op.name}'"
    return output, None


def _node_for(layer, output):
    for node in layer._inbound_nodes:
        if any(t is output for t in node.output_tensors):
            return node
    return layer._inbound_nodes[0]


def logits_model(model, role="teacher", input_shape=None):
    """`model` itself when it outputs logits, else a sub-model sharing its variables that outputs the logits
    before its final softmax (logged). Raises ValueError for a non-functional model that returns probabilities."""
    if is_functional(model):
        if len(model.outputs) != 1:
            raise ValueError(f"{role} '{model.name}' has {len(model.outputs)} outputs; give a model with one output, "
                             "the class logits.")
        logits, note = _logits_tensor(model, model.outputs[0])
        if note is None:
            return model
        logger.info("%s '%s' ends in a softmax: %s, so that the losses see logits (KD on probabilities would be "
                       "silently wrong).", role, model.name, note)
        return keras.Model(_inputs(model), logits, name=f"{model.name}_logits")
    if input_shape is not None:
        rng = np.random.default_rng(0)
        out = np.asarray(model(rng.normal(size=(4, *input_shape)).astype("float32"), training=False), "float64")
        if out.ndim == 2 and out.shape[-1] > 1 and np.all(out >= 0) and np.allclose(out.sum(-1), 1.0, atol=1e-4):
            raise ValueError(
                f"{role} '{model.name}' returns probabilities (its outputs are >= 0 and sum to 1): KD needs logits. "
                "Make its call return the pre-softmax logits (for keras.applications models: build with "
                "classifier_activation=None).")
    return model


# ------------------------------------------------------------------------------------------- automatic pairing
_NONLINEAR = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
              keras.layers.PReLU)


def _is_nonlinear(layer):
    from fitnets_tf.layers import Maxout

    if isinstance(layer, (Maxout, *_NONLINEAR)):
        return not (isinstance(layer, keras.layers.Activation) and _is_softmax(layer.activation))
    activation = getattr(layer, "activation", None)
    return activation is not None and getattr(activation, "__name__", "linear") not in ("linear", "softmax")


def candidate_taps(model, input_shape=None, prefix=""):
    """[(reference, (None, H, W, C))] of the 4-D non-linear outputs of `model` in forward order (nested functional
    models included, by path); protocol models offer their `intermediate_names` that are 4-D."""
    if not is_functional(model):
        if not has_protocol(model):
            return []
        names = list(model.intermediate_names)
        outs = model.intermediate_outputs(tf.zeros((1, *input_shape)), names, training=False)
        return [(n, (None, *outs[n].shape[1:])) for n in names if len(outs[n].shape) == 4]
    found = []
    for layer in model.layers:
        if is_functional(layer):
            found += candidate_taps(layer, prefix=f"{prefix}{layer.name}{SEPARATOR}")
        elif _is_nonlinear(layer):
            try:
                shape = tuple(layer.output.shape)
            except (AttributeError, ValueError):
                continue
            if len(shape) == 4:
                found.append((f"{prefix}{layer.name}", shape))
    return found


def auto_pair(student, teacher, input_shape, max_regressor_weights=None):
    """The paper's choice of a pair, for any two models: the teacher's middle layer as hint and the student's
    middle layer as guided layer. Preferred: the pair of equal resolution nearest the middle of both models whose
    1x1 regressor has at most `max_regressor_weights` weights (None: no limit) - the cheapest regressor, and the
    paper's own situation (its guided and hint maps have similar sizes). Else the teacher's middle layer with the
    student's middle map among those at least as large as the hint's (so the paper's conv regressor applies), else
    the student's middle.

    Returns (guided reference, hint reference, a sentence saying why). Raises ValueError when a model has no 4-D
    intermediate output."""
    teacher_taps = candidate_taps(teacher, input_shape)
    student_taps = candidate_taps(student, input_shape)
    for role, model, taps in (("teacher", teacher, teacher_taps), ("student", student, student_taps)):
        if not taps:
            raise ValueError(f"automatic pairing: the {role} '{model.name}' exposes no 4-D intermediate output. "
                             "Give the pair explicitly (HintPair, or `hints` as guided:hint pairs).")
    teacher_middle, middle = (len(teacher_taps) - 1) // 2, (len(student_taps) - 1) // 2

    def one_by_one_weights(g, h):
        return int(g[-1]) * int(h[-1]) + int(h[-1])

    equal = [(t, i) for t, (_, h) in enumerate(teacher_taps) for i, (_, g) in enumerate(student_taps)
             if tuple(g[1:3]) == tuple(h[1:3]) and (max_regressor_weights is None or one_by_one_weights(
                 g, teacher_taps[t][1]) <= max_regressor_weights)]
    if equal:
        t, index = min(equal, key=lambda p: (abs(p[0] - teacher_middle) / len(teacher_taps)
                                             + abs(p[1] - middle) / len(student_taps), -p[1]))
        hint, hint_shape = teacher_taps[t]
        why = ("the pair of equal resolution nearest the middle of each model"
               + ("" if max_regressor_weights is None else
                  f" whose 1x1 regressor stays within {int(max_regressor_weights):,} weights"))
    else:
        hint, hint_shape = teacher_taps[teacher_middle]
        fits = [i for i, (_, s) in enumerate(student_taps) if regressor_refusal(s, hint_shape, "conv") is None]
        if fits:
            index = min(fits, key=lambda i: (abs(i - middle), -i))
            why = ("middle of each model among student maps at least as large as the hint's (no pair of equal "
                   "resolution within the regressor limit)")
        else:
            index = middle
            why = "middle of each model; no student map is as large as the hint's, so the regressor must resize"
    guided, guided_shape = student_taps[index]
    return guided, hint, (f"teacher layer {teacher_taps.index((hint, hint_shape)) + 1}/{len(teacher_taps)} "
                          f"{hint!r} {hint_shape}, student layer {index + 1}/{len(student_taps)} {guided!r} "
                          f"{guided_shape} ({why})")