"""The frozen teacher's forward pass in a lower precision, while the student trains in its own policy.

The teacher is never trained, so nothing needs its gradients or float32 master weights: its forward pass (logits in
stage 2, hints in stage 1) can run in bfloat16 or float16 wherever the hardware computes those natively, and its
outputs are cast to float32 before any loss. `teacher_in_precision` returns a separate copy of the teacher whose
layers compute in the lower precision (variables stay float32, as under Keras's `mixed_*` policies), so the
original teacher -- the model the pipeline saves and reports -- is untouched.

`native_low_precision()` is what `auto` picks: bfloat16 on CPUs with AVX512-BF16 or AMX-BF16 and on GPUs of compute
capability 8.0 or more; float16 on GPUs of 7.0-7.9 (tensor cores without bfloat16); float32 elsewhere (a CPU
without bfloat16 units emulates it, slower than float32).
"""

import functools

import keras
import tensorflow as tf

from fitnets_tf import taps

TEACHER_PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# The Keras compute policies a run (and the benchmark) may train the student under; "auto" see `compute_policy`.
MIXED_PRECISION = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (an empty set where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_low_precision(gpus=None, flags=None):
    """The fastest precision the hardware computes natively: "bfloat16", "float16" or "float32".

    Args:
        gpus: compute capabilities ((major, minor), ...) of the visible GPUs; None asks TensorFlow.
        flags: CPU feature flags; None reads /proc/cpuinfo.
    """
    if gpus is None:
        gpus = tuple(tf.config.experimental.get_device_details(d).get("compute_capability") or (0, 0)
                     for d in tf.config.list_physical_devices("GPU"))
    if gpus:
        oldest = min(tuple(c) for c in gpus)
        return "bfloat16" if oldest >= (8, 0) else "float16" if oldest >= (7, 0) else "float32"
    flags = cpu_flags() if flags is None else flags
    return "bfloat16" if any(f in flags for f in _CPU_BF16_FLAGS) else "float32"


def resolve_teacher_precision(precision):
    """`precision` itself, or for "auto" the hardware's native low precision. Raises ValueError naming the choices."""
    if precision not in TEACHER_PRECISIONS:
        raise ValueError(
            f"teacher_precision must be one of {', '.join(TEACHER_PRECISIONS)}. Received: {precision!r}"
        )
    return native_low_precision() if precision == "auto" else precision


def _copy(model):
    """A new model with `model`'s architecture and weights (shares nothing with it)."""
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    if not copy.built:
        copy.build(model.input_shape)
    copy.set_weights(model.get_weights())
    return copy


def teacher_in_precision(teacher, precision):
    """The teacher to run the forward pass with: `teacher` itself for "float32", else a copy computing in
    `precision` ("bfloat16" or "float16"; variables float32, every output cast back to float32).

    The copy is taken when this is called: the teacher is frozen, so its weights do not change afterwards.
    """
    precision = resolve_teacher_precision(precision)
    if precision == "float32":
        return teacher
    try:
        copy = _copy(teacher)
    except Exception as error:  # Keras raises several types for a model it cannot rebuild from its config.
        raise ValueError(
            f"teacher_precision={precision!r} runs a copy of the teacher, but '{teacher.name}' could not be copied "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Register its classes "
            "with keras.saving.register_keras_serializable, or use teacher_precision='float32'."
        ) from None
    policy = keras.dtype_policies.get(f"mixed_{precision}")
    for layer in copy._flatten_layers(include_self=True):
        layer.dtype_policy = policy
    copy.trainable = False
    return copy


def compute_policy(mixed_precision):
    """The Keras dtype policy of a `mixed_precision` setting: "auto" is mixed_float16 when TensorFlow sees a GPU
    (where it is fast; Keras then scales the loss) and float32 otherwise (mixed_float16 is ~100x slower on a CPU)."""
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}. Received: {mixed_precision!r}")
    if mixed_precision == "auto":
        return "mixed_float16" if tf.config.list_logical_devices("GPU") else "float32"
    return mixed_precision


def precision_differences(teacher, dataset, precision, hint=None, temperature=3.0):
    """What running `teacher` in `precision` changes, against float32, over a dataset: the largest absolute
    difference of the softened probabilities softmax(a_T / temperature), the images whose class changes, and the
    largest absolute difference of the hint (a layer reference, `fitnets_tf.taps`) when one is given.

    Args:
        teacher: a Keras model returning logits (a softmax teacher is used through its logits, as in training).
        dataset: batches of (preprocessed float32 images, labels).
        precision: "bfloat16", "float16" or "auto" (resolved as the Distiller does).
        hint: the hint layer to compare, or None.
        temperature: tau of the softened probabilities.
    Returns:
        {"precision", "examples", "max_probability_difference", "class_changes", "max_hint_difference",
        "max_hint_magnitude"} (the hint entries None without a hint).
    """
    low = teacher_in_precision(teacher, precision)
    shape = tuple(teacher.input_shape[1:])
    logits = (taps.logits_model(teacher, "teacher", shape), taps.logits_model(low, "teacher", shape))
    hints = None
    if hint is not None:
        tap = taps.resolve(teacher, hint, "hint layer")  # the copy has the same layer names
        hints = (taps.tap_model(teacher, [tap], "hint", shape), taps.tap_model(low, [tap.name], "hint", shape))
    result = {"precision": resolve_teacher_precision(precision), "examples": 0, "max_probability_difference": 0.0,
              "class_changes": 0, "max_hint_difference": None, "max_hint_magnitude": None}
    for images, _ in dataset:
        full, reduced = (tf.cast(m(images, training=False), tf.float32) for m in logits)
        difference = tf.abs(tf.nn.softmax(full / temperature) - tf.nn.softmax(reduced / temperature))
        result["max_probability_difference"] = max(result["max_probability_difference"],
                                                   float(tf.reduce_max(difference)))
        result["class_changes"] += int(tf.reduce_sum(tf.cast(tf.argmax(full, -1) != tf.argmax(reduced, -1),
                                                             tf.int32)))
        result["examples"] += int(images.shape[0])
        if hints is not None:
            full, reduced = (tf.cast(_single(m(images, training=False)), tf.float32) for m in hints)
            result["max_hint_difference"] = max(result["max_hint_difference"] or 0.0,
                                                float(tf.reduce_max(tf.abs(full - reduced))))
            result["max_hint_magnitude"] = max(result["max_hint_magnitude"] or 0.0,
                                               float(tf.reduce_max(tf.abs(full))))
    return result


def _single(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs
