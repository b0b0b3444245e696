"""Runs an exported FitNets `.tflite` on raw uint8 images, refusing bad input with a message naming the expected one.

Self-contained: it imports only NumPy and `ai_edge_litert` (LiteRT's Python runtime, no TensorFlow), and a run
copies it beside its `.tflite` files (`<model_dir>/litert/litert_classifier.py`), so that the folder is all a device
needs:

    from litert_classifier import LiteRTClassifier
    classifier = LiteRTClassifier("fitnet_int8.tflite", num_threads=1)
    out = classifier.predict(images)     # images: uint8 [batch, H, W, C], raw pixels 0..255
    out["class_id"], out["probabilities"], out["class_name"]

Why a wrapper: a `.tflite` file cannot check its input. Its input tensor has a fixed shape [1, H, W, C] and dtype
uint8; `set_tensor` with another shape or dtype raises ValueError naming one mismatch ("Dimension mismatch. Got 3
but expected 4 for input 0"), not the layout or its meaning, and after `resize_tensor_input` to [1, 16, 4, 1] the
file runs and returns predictions (measured, ai-edge-litert 2.3.0). This class checks shape and dtype before invoking and runs a batch one image
at a time (the files have a static batch of 1, so that every reshape is static and XNNPACK runs the whole network).

The files (see `fitnets_tf.harness.litert`): input `images` uint8 [1, H, W, C], raw pixels; the run's preprocessing is
inside. Outputs: `class_id` int32 [1]; `probabilities` [1, classes], float32 in the float32 file and uint8 in the
int8 file, where probability = value / 256 (the quantization of a softmax output: scale 1/256, zero point 0).
A run writes the name of each label beside them, `class_names.txt` (UTF-8, one name per line, in label order);
when that file is next to the `.tflite` file, `predict` also returns each image's `class_name`.
"""

import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter

SIGNATURE = "serving_default"
CLASS_NAMES_FILE = "class_names.txt"


def read_class_names(path):
    """The names in a `class_names.txt`: one per line, in label order (a trailing newline ends the last one)."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(line[:-1] if line.endswith("\r") else line for line in lines)


class LiteRTClassifier:
    """One `.tflite` classifier of this project, behind an input check.

    Args:
        model_path: the `.tflite` file; a `class_names.txt` in the same folder names its labels (`class_names`,
            None without the file).
        num_threads: CPU threads of the interpreter (1: the figures of the report).
    """

    def __init__(self, model_path, num_threads=1):
        if not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be an integer >= 1. Received: num_threads={num_threads!r}")
        self.model_path = model_path
        self.interpreter = Interpreter(model_path=model_path, num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if SIGNATURE not in signatures or signatures[SIGNATURE]["inputs"] != ["images"]:
            raise ValueError(f"{model_path!r} is not a FitNets classifier: it has no {SIGNATURE!r} signature taking "
                             f"'images' (signatures: {signatures}).")
        self.interpreter.allocate_tensors()
        runner = self.interpreter.get_signature_runner(SIGNATURE)  # for the tensor names only
        details = runner.get_input_details()["images"]
        self.image_shape = tuple(int(d) for d in details["shape"][1:])
        if details["dtype"] != np.uint8 or len(self.image_shape) != 3:
            raise ValueError(f"{model_path!r} takes {details['dtype'].__name__} {list(details['shape'])}; "
                             "this class runs the uint8 [1, H, W, C] files this project exports.")
        self.quantized = details["quantization"][0] != 0.0
        outputs = runner.get_output_details()
        self._probability_scale, self._probability_zero = outputs["probabilities"]["quantization"]
        self.num_classes = int(outputs["probabilities"]["shape"][-1])
        # Single images go through the interpreter's own tensor indices (the signature runner's per-call
        # bookkeeping costs as much as a small network).
        self._input_index = details["index"]
        self._class_index = outputs["class_id"]["index"]
        self._probability_index = outputs["probabilities"]["index"]
        self.class_names = None
        names_path = os.path.join(os.path.dirname(os.path.abspath(model_path)), CLASS_NAMES_FILE)
        if os.path.exists(names_path):
            names = read_class_names(names_path)
            if len(names) != self.num_classes:
                raise ValueError(f"{names_path!r} names {len(names)} classes but {model_path!r} predicts "
                                 f"{self.num_classes}: it belongs to another model (one name per line, in label "
                                 "order).")
            self.class_names = names
            self._names = np.asarray(names, dtype=str)

    def expected(self):
        """The input this file takes, as every error message states it."""
        return "uint8 [batch, {}, {}, {}] (raw pixels 0..255)".format(*self.image_shape)

    def check(self, images):
        """Returns `images` as a uint8 array [batch, H, W, C], or raises TypeError / ValueError naming the input
        this file expects and what was received. Nothing is converted: a float or int64 array is refused (values
        already scaled to [0, 1] would otherwise be read as near-black pixels)."""
        array = np.asarray(images)
        if array.dtype != np.uint8:
            raise TypeError(f"Expected images: {self.expected()}. Received dtype {array.dtype}; pass the raw "
                            "pixels as uint8 (e.g. np.asarray(images, np.uint8) if they are 0..255 integers).")
        if array.ndim != 4 or tuple(array.shape[1:]) != self.image_shape:
            hint = " (one image? add the batch axis: images[None])" if tuple(array.shape) == self.image_shape else ""
            raise ValueError(f"Expected images: {self.expected()}. Received shape {list(array.shape)}{hint}.")
        return array

    def predict(self, images):
        """Class ids and probabilities of uint8 images [batch, H, W, C].

        Returns:
            {"class_id": int64 [batch], "probabilities": float32 [batch, classes]} (dequantized for the int8 file),
            and "class_name": str [batch] when a class_names.txt is beside the file.
        """
        images = self.check(images)
        class_ids, probabilities = [], []
        for image in images:
            class_ids.append(self.invoke_one(image[None]))
            probabilities.append(self.interpreter.get_tensor(self._probability_index)[0])
        probabilities = np.asarray(probabilities).reshape(len(images), self.num_classes)
        if self._probability_scale:
            probabilities = (probabilities.astype(np.float32) - self._probability_zero) * self._probability_scale
        out = {"class_id": np.asarray(class_ids, np.int64), "probabilities": probabilities.astype(np.float32)}
        if self.class_names is not None:
            out["class_name"] = self._names[out["class_id"]]
        return out

    def invoke_one(self, image):
        """Runs one already-checked uint8 image [1, H, W, C]; returns its class id (the timed call of the report)."""
        self.interpreter.set_tensor(self._input_index, image)
        self.interpreter.invoke()
        return int(self.interpreter.get_tensor(self._class_index)[0])
