"""LiteRT (TFLite) export of a trained network for devices, float32 and full-integer int8, and its measurement.

A `.tflite` file takes `images` uint8 [1, H, W, C] (raw pixels, as the SavedModel of `export` does) with the run's
preprocessing inside, and returns `class_id` int32 [1] and `probabilities` [1, classes] (float32 in the float32
file; uint8 in the int8 file, probability = value / 256). Run it with `LiteRTClassifier`
(`fitnets_tf/harness/litert_classifier.py`, NumPy + ai-edge-litert only), which refuses a wrong shape or dtype with a
message naming the expected input: the interpreter itself cannot.

How (measured with TF 2.21 / Keras 3.15, see TF-NOTES): the network is wrapped in a Keras model (uint8 input ->
preprocessing -> network -> softmax, argmax), written with `model.export` and converted with
`TFLiteConverter.from_saved_model`, builtin ops only (no TF "flex" ops, which a device runtime may lack).
- Static batch of 1: the maxout layer reshapes to `ops.shape(x)[:-1] + (units, pieces)`; with a dynamic batch that
  target is computed at run time (SHAPE, STRIDED_SLICE, PACK), and XNNPACK, which needs a constant target, then
  ran the digits FitNet in 9 partitions (the convolutions only); with batch 1 the whole network up to the softmax
  is one XNNPACK partition.
- int8: full-integer quantization (`TFLITE_BUILTINS_INT8`), calibrated on `calibration_images` raw training images
  through the preprocessing inside the model. The float model takes float32 pixels 0..255 and the converter makes
  that input uint8; the calibration set is made to contain the values 0 and 255, so the input's quantization is
  exactly scale 1, zero point 0: the uint8 value fed IS the raw pixel (checked after every conversion).
"""

import math
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from fitnets_tf.data.preprocessing import (CAFFE_MEAN_BGR, PREPROCESSING_KINDS, TORCH_MEAN_RGB,
                                           TORCH_STD_RGB, check_channels)
from fitnets_tf.io_utils import atomic_save, scratch_prefix
from fitnets_tf.harness.litert_classifier import LiteRTClassifier
from fitnets_tf.harness.timing import Candidate, time_interleaved

FORMATS = ("float32", "int8")
ACTIVATIONS = ("int8", "int16")  # of an int8 file: full-integer, or TFLite's 16x8 (int8 weights, int16 activations)
CALIBRATION_IMAGES = 300
INT8_TOLERANCE = 0.01  # an int8 file may fall at most 1 point below its float32 file on the validation split
INT8_CHECK_IMAGES = 2000  # the validation images that check it
MORE_CALIBRATION = 4  # the first fall-back calibrates on this many times CALIBRATION_IMAGES


@keras.saving.register_keras_serializable(package="fitnets_tf")
class RawImagePreprocessing(keras.layers.Layer):
    """Raw pixels (any real dtype, 0..255) [B, H, W, C] -> the network's float32 input: the `Preprocessor`'s
    function written with ops the converter maps to TFLite builtins that XNNPACK runs.

    "scale": x / 255. "raw": x. "tf": x * (1 / 127.5) - 1. "caffe": x P - mean_BGR, with P the constant 3x3
    permutation R, G, B -> B, G, R (one FULLY_CONNECTED, exact in float; a reversal or gather would be REVERSE_V2 /
    GATHER, which XNNPACK leaves out). "torch": x * (1 / (255 std)) - mean / std, per channel. "gcn_zca" (see
    `fitnets_tf.data.preprocessing`): per image x in R^D,
    x <- x - mean(x); x <- x * scale / sqrt(max(sqrt_bias + sum(x^2), (scale * min_divisor)^2)); x <- (x - mu) W,
    with mu and W non-trainable weights (the converter freezes them into constants).

    Args:
        preprocessor: a `Preprocessor`, or the dict {"kind", "params", "image_shape"} `get_config` writes (a
            "gcn_zca" layer rebuilt from it has zero statistics until its weights are loaded).
    """

    def __init__(self, preprocessor, **kwargs):
        super().__init__(**kwargs)
        if isinstance(preprocessor, dict):
            kind, params, image_shape = preprocessor["kind"], preprocessor["params"], preprocessor["image_shape"]
            statistics = None
        else:
            kind, params, image_shape = preprocessor.kind, preprocessor.params, preprocessor.image_shape
            statistics = (preprocessor.mean, preprocessor.matrix) if kind == "gcn_zca" else None
        if kind not in PREPROCESSING_KINDS:
            raise ValueError(f"kind must be one of {PREPROCESSING_KINDS}. Received: kind={kind!r}")
        self.kind = kind
        self.params = dict(params or {})
        self.image_shape = None if image_shape is None else tuple(int(d) for d in image_shape)
        if kind == "gcn_zca":
            dim = math.prod(self.image_shape)
            self.zca_mean = self.add_weight((dim,), initializer="zeros", trainable=False, name="zca_mean")
            self.zca_matrix = self.add_weight((dim, dim), initializer="zeros", trainable=False, name="zca_matrix")
            if statistics is not None:
                self.zca_mean.assign(np.asarray(statistics[0], np.float32))
                self.zca_matrix.assign(np.asarray(statistics[1], np.float32))

    def build(self, input_shape):
        check_channels(self.kind, input_shape[-1])

    def call(self, images):
        x = tf.cast(images, tf.float32)
        if self.kind == "scale":
            return x / 255.0
        if self.kind == "raw":
            return x
        if self.kind == "tf":
            return x * (1.0 / 127.5) - 1.0
        if self.kind == "caffe":
            rgb_to_bgr = np.eye(3, dtype=np.float32)[::-1].copy()
            return tf.matmul(x, tf.constant(rgb_to_bgr)) - tf.constant(CAFFE_MEAN_BGR, tf.float32)
        if self.kind == "torch":
            std = np.asarray(TORCH_STD_RGB, np.float64)
            multiplier, offset = 1.0 / (255.0 * std), np.asarray(TORCH_MEAN_RGB) / std
            return x * tf.constant(multiplier, tf.float32) - tf.constant(offset, tf.float32)
        dim = math.prod(self.image_shape)
        batch = x.shape[0] if x.shape[0] is not None else -1  # static where known: XNNPACK needs constant targets
        flat = tf.reshape(x, [batch, dim])
        flat = flat - tf.reduce_mean(flat, axis=1, keepdims=True)
        # x * (1 / divisor), with no division: a quantized DIV fails at run time on a divisor that rounds to 0 (a
        # constant image: found by a test). For uint8 images the divisor is below min_divisor only for a constant
        # image, whose centred pixels are all 0, so clamping the divisor instead of replacing it by 1 (pylearn2)
        # gives the same result.
        squares = self.params["sqrt_bias"] + tf.reduce_sum(tf.square(flat), axis=1, keepdims=True)
        smallest = (self.params["scale"] * self.params["min_divisor"]) ** 2
        inverse = self.params["scale"] * tf.math.rsqrt(tf.maximum(squares, smallest))
        white = tf.matmul(flat * inverse - tf.convert_to_tensor(self.zca_mean),
                          tf.convert_to_tensor(self.zca_matrix))
        return tf.reshape(white, [batch, *self.image_shape])

    def get_config(self):
        config = super().get_config()
        config["preprocessor"] = {"kind": self.kind, "params": dict(self.params),
                                  "image_shape": None if self.image_shape is None else list(self.image_shape)}
        return config


class ClassId(keras.layers.Layer):
    """argmax over the classes, int32 (ARG_MAX, a builtin op)."""

    def call(self, probabilities):
        return tf.argmax(probabilities, axis=-1, output_type=tf.int32)


def float32_copy(model):
    """`model` itself when it computes in float32; else the same network rebuilt under float32, same weights.

    A device file is float32 (or int8 from float32): a model trained under mixed_float16 / mixed_bfloat16 would put
    half-precision casts into the graph.
    """
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model

    def to_float32(node):
        if isinstance(node, dict):
            if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
                return "float32"
            return {key: to_float32(value) for key, value in node.items()}
        if isinstance(node, list):
            return [to_float32(value) for value in node]
        return node

    copy = model.__class__.from_config(to_float32(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def build_device_model(model, preprocessor, quantized):
    """The Keras model that is converted: images [1, H, W, C] -> {"probabilities", "class_id"}.

    The input is uint8 for the float32 file; for the int8 file it is float32 pixels 0..255, which the converter
    turns into a uint8 input of scale 1 (see the module docstring).
    """
    model = float32_copy(model)
    height, width, channels = model.input_shape[1:]
    images = keras.Input((height, width, channels), batch_size=1, dtype="float32" if quantized else "uint8",
                         name="images")
    logits = model(RawImagePreprocessing(preprocessor, name="preprocessing")(images))
    probabilities = keras.layers.Softmax(name="probabilities", dtype="float32")(logits)
    class_id = ClassId(name="class_id")(probabilities)
    return keras.Model(images, {"probabilities": probabilities, "class_id": class_id},
                       name=f"{model.name}_device")


def calibration_set(images, count=CALIBRATION_IMAGES):
    """The first `count` raw uint8 images [N, H, W, C] as float32, with pixel values 0 and 255 guaranteed (one
    pixel of the first image each, if absent), so that the int8 input is quantized with scale 1, zero point 0."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or not len(images):
        raise ValueError(f"Calibration needs raw uint8 training images [N, H, W, C]. Received "
                         f"{images.dtype} {images.shape}")
    chosen = images[:count].astype(np.float32)
    first = chosen[0].reshape(-1)
    if chosen.min() > 0:
        first[0] = 0.0
    if chosen.max() < 255:
        first[-1] = 255.0
    chosen[0] = first.reshape(chosen[0].shape)
    return chosen


def convert(model, preprocessor, quantization, calibration_images=None, activations="int8"):
    """The `.tflite` bytes of `model` with `preprocessor` inside; `quantization` is "float32" or "int8".

    `activations` (int8 only): "int8" (full-integer: uint8 input of scale 1, uint8 probabilities) or "int16"
    (int8 weights with int16 activations, TFLite's 16x8 scheme: finer activations where int8 loses accuracy; the
    input stays raw uint8 pixels, cast inside, and the probabilities float32; an op without a 16x8 kernel stays
    float).

    Raises ValueError when int8 is asked without calibration images, or when the converted int8 input does not
    read raw pixels (scale 1, zero point 0).
    """
    if quantization not in FORMATS:
        raise ValueError(f"quantization must be one of {FORMATS}. Received: quantization={quantization!r}")
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {ACTIVATIONS}. Received: activations={activations!r}")
    if activations == "int16" and quantization == "int8":
        return _convert_16x8(model, preprocessor, calibration_images)
    quantized = quantization == "int8"
    if quantized and calibration_images is None:
        raise ValueError("int8 conversion needs calibration_images: raw uint8 training images [N, H, W, C].")
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("float32")  # the wrapper's layers too, under a mixed-precision run
    try:
        device = build_device_model(model, preprocessor, quantized)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    spec = tf.TensorSpec([1, *device.input_shape[1:]], tf.float32 if quantized else tf.uint8, name="images")
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("litert")) as tmp:
        device.export(tmp, format="tf_saved_model", verbose=False, input_signature=[spec])
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if quantized:
            calibration = calibration_set(calibration_images)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image[None]] for image in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
        else:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        content = converter.convert()
    if quantized:
        from ai_edge_litert.interpreter import Interpreter

        details = Interpreter(model_content=content).get_input_details()[0]
        if details["dtype"] != np.uint8 or tuple(details["quantization"]) != (1.0, 0):
            raise ValueError(f"The int8 file's input is {details['dtype'].__name__} with quantization "
                             f"{details['quantization']}, not uint8 (1.0, 0): it would not read raw pixels.")
    return content


def _convert_16x8(model, preprocessor, calibration_images):
    """int8 weights, int16 activations (see `convert`): a uint8-input device model, calibrated on the raw images."""
    if calibration_images is None:
        raise ValueError("int8 conversion needs calibration_images: raw uint8 training images [N, H, W, C].")
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("float32")
    try:
        device = build_device_model(model, preprocessor, quantized=False)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    calibration = np.clip(calibration_set(calibration_images), 0, 255).astype(np.uint8)
    spec = tf.TensorSpec([1, *device.input_shape[1:]], tf.uint8, name="images")
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("litert")) as tmp:
        device.export(tmp, format="tf_saved_model", verbose=False, input_signature=[spec])
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in calibration)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert()


def write_bytes(path, content):
    """Writes `content` to `path` atomically; returns `path`."""

    def save(tmp):
        with open(tmp, "wb") as f:
            f.write(content)

    atomic_save(path, save)
    return path


def write_tflite(model, preprocessor, path, quantization, calibration_images=None, activations="int8"):
    """Converts (see `convert`) and writes `path` atomically; returns `path`."""
    return write_bytes(path, convert(model, preprocessor, quantization, calibration_images, activations))


def accuracy_of(content, images, labels):
    """The accuracy of `.tflite` bytes on raw uint8 images, through the LiteRT runtime."""
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("litert")) as tmp:
        path = os.path.join(tmp, "candidate.tflite")
        with open(path, "wb") as f:
            f.write(content)
        return float(np.mean(LiteRTClassifier(path, num_threads=1).predict(images)["class_id"] == np.asarray(labels)))


def write_int8_within_tolerance(model, preprocessor, path, calibration_images, check_images, check_labels,
                                float32_accuracy, more_calibration_images=None, tolerance=INT8_TOLERANCE):
    """Writes the int8 file of `model` at `path`, never silently worse than its float32 file.

    The full-integer file is measured on `check_images` (the validation split); when it falls more than
    `tolerance` below `float32_accuracy` (the float32 file's on the same images), the fall-backs are tried in
    order: calibrated on `more_calibration_images`, then int16 activations with int8 weights. The first within
    `tolerance` is written; if none is, the most accurate one, and the record says what it lost.

    Returns the record: {"activations", "calibration_images", "validation_accuracy",
    "float32_validation_accuracy", "loss_points", "within_tolerance", "tried": [...]}.
    """
    candidates = [("int8", calibration_images)]
    if more_calibration_images is not None and len(more_calibration_images) > len(calibration_images):
        candidates.append(("int8", more_calibration_images))
    candidates.append(("int16", calibration_images))
    tried, best = [], None
    for activations, images in candidates:
        content = convert(model, preprocessor, "int8", images, activations=activations)
        accuracy = accuracy_of(content, check_images, check_labels)
        entry = {"activations": activations, "calibration_images": int(len(images)), "validation_accuracy": accuracy}
        tried.append(entry)
        if best is None or accuracy > best[0]["validation_accuracy"]:
            best = (entry, content)
        if float32_accuracy - accuracy <= tolerance:
            break
    entry, content = best
    write_bytes(path, content)
    loss = float32_accuracy - entry["validation_accuracy"]
    return {**entry, "float32_validation_accuracy": float32_accuracy, "loss_points": 100.0 * loss,
            "within_tolerance": bool(loss <= tolerance), "tried": tried}


# ------------------------------------------------------------------------------------------------- inspection
def operator_names(path):
    """The operators of a `.tflite` file as the converter wrote them (no delegate applied): builtin names such as
    "CONV_2D", or custom codes such as "FlexAddV2" for TF "flex" ops."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=path,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return [op["op_name"] for op in interpreter._get_ops_details()]


def xnnpack_partitions(path):
    """How XNNPACK (the runtime's default CPU delegate) took the file: the number of delegated partitions and the
    operators left outside it. One partition with only e.g. ARG_MAX / QUANTIZE outside means the whole network
    runs in XNNPACK."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    producer = {int(t): i for i, op in enumerate(ops) if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    # The nodes a delegate replaced are still listed; a node is delegated when its output is made inside the
    # delegate, i.e. it is reachable backwards from a delegate's outputs without crossing a delegate's inputs.
    delegated = set()
    for delegate in delegates:
        boundary = {int(t) for t in delegate["inputs"]}
        stack = [int(t) for t in delegate["outputs"]]
        while stack:
            tensor = stack.pop()
            node = producer.get(tensor)
            if tensor in boundary or node is None or node in delegated:
                continue
            delegated.add(node)
            stack.extend(int(t) for t in ops[node]["inputs"])
    outside = [op["op_name"] for i, op in enumerate(ops) if op["op_name"] != "DELEGATE" and i not in delegated]
    return {"partitions": len(delegates), "outside": outside}


# ------------------------------------------------------------------------------------------------ measurement
def measure(artifacts, images, labels, reference_class_ids, rounds=30, calls_per_sample=10):
    """Test accuracy, agreement with the Keras model, file size and batch-1 latency of `.tflite` files, measured
    through the LiteRT runtime (ai-edge-litert) on ONE thread.

    Args:
        artifacts: list of {"model": name, "format": "float32" | "int8", "path": file}.
        images, labels: the test split, raw uint8 [N, H, W, C] and int [N].
        reference_class_ids: {model name: the Keras model's class ids [N] on the same images}.
        rounds: interleaved timing rounds (every file takes one sample per round, so machine load hits all alike).
        calls_per_sample: invocations per sample, on one test image.

    Returns:
        One dict per artifact: its fields plus test_accuracy, agreement_with_keras (fraction of equal class ids),
        keras_test_accuracy (the Keras model's on the same images), size_bytes, latency_ms_per_image (median over
        rounds, batch 1, 1 thread), latency_samples_ms, xnnpack (see `xnnpack_partitions`).
    """
    labels = np.asarray(labels)
    rows, classifiers = [], []
    for artifact in artifacts:
        classifier = LiteRTClassifier(artifact["path"], num_threads=1)
        class_ids = classifier.predict(images)["class_id"]
        reference = np.asarray(reference_class_ids[artifact["model"]])
        rows.append({
            **artifact,
            "test_accuracy": float(np.mean(class_ids == labels)),
            "keras_test_accuracy": float(np.mean(reference == labels)),
            "agreement_with_keras": float(np.mean(class_ids == reference)),
            "size_bytes": os.path.getsize(artifact["path"]),
            "xnnpack": xnnpack_partitions(artifact["path"]),
            "threads": 1,
        })
        classifiers.append(classifier)
    image = classifier.check(images[:1]) if classifiers else None
    candidates = [Candidate(str(i), lambda c=c: c.invoke_one(image), 1, calls_per_sample=calls_per_sample)
                  for i, c in enumerate(classifiers)]
    timings = time_interleaved(candidates, rounds=rounds, warmup=2)
    for i, row in enumerate(rows):
        row["latency_ms_per_image"] = timings[str(i)]["seconds_per_call"] * 1e3
        row["latency_samples_ms"] = [s * 1e3 for s in timings[str(i)]["samples_s"]]
    return rows


def add_ratios(rows, multiplications, reference="teacher"):
    """Per row, against the teacher's file of the same format on the same runtime: speed-up (latency ratio),
    compression (file-size ratio) and the multiplication ratio the speed-up is to be read against
    (`multiplications`: {model: count}); plus speedup_fraction_of_multiplication_ratio and the accuracy change
    against the Keras model in points."""
    by_format = {r["format"]: r for r in rows if r["model"] == reference}
    for row in rows:
        ref = by_format.get(row["format"])
        row["multiplications"] = multiplications.get(row["model"])
        row["speedup_vs_teacher"] = None if ref is None else ref["latency_ms_per_image"] / row["latency_ms_per_image"]
        row["compression_vs_teacher"] = None if ref is None else ref["size_bytes"] / row["size_bytes"]
        ratio = None
        if ref is not None and row["multiplications"] and multiplications.get(reference):
            ratio = multiplications[reference] / row["multiplications"]
        row["multiplication_ratio"] = ratio
        row["speedup_fraction_of_multiplication_ratio"] = (
            None if ratio is None or row["speedup_vs_teacher"] is None else row["speedup_vs_teacher"] / ratio)
        row["accuracy_change_vs_keras_points"] = 100 * (row["test_accuracy"] - row["keras_test_accuracy"])
    return rows
