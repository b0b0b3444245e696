"""Export of a trained student for serving: a SavedModel that takes raw uint8 images.

The serving signature `serving_default` takes `images`: uint8 [batch, H, W, C] (the dataset's raw pixels; for the
embedded digits, 0..16 scaled to 0..255) and returns `probabilities` float32 [batch, classes], `class_id`
int64 [batch] and `class_name` string [batch] (the data set's name of that label, e.g. b"cat"; the label number
b"3" when the data set names none). The run's preprocessing (scale, or GCN + ZCA with the statistics fitted on the
train split) is inside the graph, so clients never reimplement it. The forward pass goes through `model.call`
(inference mode). The names are also the asset `assets/class_names.txt` (UTF-8, one per line, in label order), so
that a client holding only the export can read them without calling it.

The signature declares uint8 [-1, H, W, C] (what `saved_model_cli show`, TF Serving's metadata and converters
read), and bad input still never reaches a kernel. A declared shape is not enforced when a reloaded SavedModel's
signature is called (measured, TF 2.21: [N, H, W] or one unbatched [H, W, C] image aborted the whole process in the
CPU convolution, and [N, 2H, W/2, C] returned predictions), and a shape check traced against the declared shape can
be folded away, so the check runs first in a function of its own, traced for images of any shape and never inlined:
anything but [batch, H, W, C] raises InvalidArgumentError naming the expected input and the shape received. A wrong dtype is refused by TensorFlow itself before the graph runs, in
words we cannot change except for the function's name, which therefore spells the expected input:
"cannot compute __inference_signature_wrapper_expects_images_uint8_batch_8_8_1_246 as input #0(zero-based) was
expected to be a uint8 tensor but is a float tensor".
"""

import os
import tempfile

import keras
import tensorflow as tf

from fitnets_tf.io_utils import atomic_save, atomic_write_file, scratch_prefix

CLASS_NAMES_FILE = "class_names.txt"  # beside the exports (assets/ of the SavedModel, litert/): one name per line


def resolve_class_names(class_names, num_classes):
    """The name of each of the `num_classes` labels, in label order: `class_names` (a data set's
    `DatasetInfo.class_names`), or the label numbers "0", "1", ... when it is empty.

    Raises ValueError when the count differs from `num_classes`, or when a name holds a line break (it could not
    be read back from a file of one name per line).
    """
    names = tuple(str(name) for name in class_names) or tuple(str(i) for i in range(num_classes))
    if len(names) != num_classes:
        raise ValueError(f"class_names must name each of the {num_classes} classes, in label order. Received "
                         f"{len(names)} names: {list(names)[:5]}{' ...' if len(names) > 5 else ''}")
    broken = [name for name in names if "\n" in name or "\r" in name]
    if broken:
        raise ValueError(f"class names cannot hold a line break. Received: {broken[0]!r}")
    return names


def write_class_names(path, names):
    """Writes `names` to `path` atomically: UTF-8, one name per line in label order, each line ending in a newline
    (what `LiteRTClassifier` reads back)."""
    atomic_write_file(path, lambda f: f.write("".join(f"{name}\n" for name in names).encode("utf-8")), binary=True)


def expected_input(image_shape):
    """The sentence every bad-input error of an exported model starts with, e.g. for (8, 8, 1):
    "Expected images: uint8 [batch, 8, 8, 1] (raw pixels 0..255)"."""
    height, width, channels = (int(d) for d in image_shape)
    return f"Expected images: uint8 [batch, {height}, {width}, {channels}] (raw pixels 0..255)"


def check_images(images, image_shape):
    """`images` with its static shape set to [None, H, W, C], after a run-time check of its shape.

    Raises (when the graph runs) InvalidArgumentError "assertion failed: [Expected images: uint8 [batch, H, W, C]
    (raw pixels 0..255). Received shape:] [...]" for any other rank or size, so that no wrongly shaped tensor
    reaches a convolution or a reshape.
    """
    expected = tf.constant([int(d) for d in image_shape], tf.int32)
    shape = tf.shape(images, out_type=tf.int32)
    # Pad with -1 so that the comparison of dims 1..3 is defined for every rank (rank 0..3 included).
    padded = tf.concat([shape, tf.fill([4], -1)], axis=0)
    valid = tf.logical_and(tf.equal(tf.size(shape), 4), tf.reduce_all(tf.equal(padded[1:4], expected)))
    check = tf.debugging.Assert(valid, [f"{expected_input(image_shape)}. Received shape:", shape], summarize=8)
    with tf.control_dependencies([check]):
        images = tf.identity(images)
    return tf.ensure_shape(images, [None, *image_shape])


class ServingModule(tf.Module):
    """Preprocessing + network + softmax + the class's name, behind a uint8 input whose shape is checked in the
    graph.

    Args:
        model: the network, images -> logits [batch, classes].
        preprocessor: the run's `Preprocessor`.
        temperature: of the softmax.
        class_names: the name of each label in label order; () (or None): the label numbers.
    """

    def __init__(self, model, preprocessor, temperature=1.0, class_names=None):
        super().__init__(name="fitnets_serving")
        self.model = model
        self.preprocessor = preprocessor
        self.temperature = float(temperature)
        self.image_shape = tuple(int(d) for d in model.input_shape[1:])
        self.class_names = resolve_class_names(class_names or (), int(model.output_shape[-1]))
        # The check (not the signature, which a reloaded model does not enforce) refuses a wrong shape, with a
        # message naming the expected one: traced for any shape and not inlined, so no declared shape folds it.
        self.checked_images = tf.function(lambda images: check_images(images, self.image_shape),
                                          input_signature=[tf.TensorSpec(None, tf.uint8)],
                                          experimental_attributes={"_noinline": True})
        # A wrong dtype is refused by TensorFlow before any op runs, with a message of its own that names only the
        # function: the function's name carries the expected input, so that this message names it too.
        def serve(images):
            return self._serve(images)

        serve.__name__ = "expects_images_uint8_batch_{}_{}_{}".format(*self.image_shape)
        self.serve = tf.function(serve, input_signature=[
            tf.TensorSpec([None, *self.image_shape], tf.uint8, name="images")])

    def _serve(self, images):
        images = self.checked_images(images)
        logits = tf.cast(self.model(self.preprocessor(images), training=False), tf.float32)
        probabilities = tf.nn.softmax(logits / self.temperature, axis=-1)
        class_id = tf.argmax(probabilities, axis=-1)
        # A constant in the graph: the served names cannot drift from the asset file, written from the same tuple.
        class_name = tf.gather(tf.constant(self.class_names, tf.string), class_id)
        return {"probabilities": probabilities, "class_id": class_id, "class_name": class_name}


def export_saved_model(model: keras.Model, preprocessor, path, class_names=None):
    """Writes the serving SavedModel to `path` atomically (a crash leaves the previous export intact), with the
    name of each label (`class_names`; the label numbers when empty or None) served as `class_name` and written
    to `path`/assets/class_names.txt."""
    module = ServingModule(model, preprocessor, class_names=class_names)
    with tempfile.TemporaryDirectory(prefix=scratch_prefix("export")) as scratch:
        names_file = os.path.join(scratch, CLASS_NAMES_FILE)
        write_class_names(names_file, module.class_names)
        # A tracked Asset: tf.saved_model.save copies the file into assets/ (and a reload points at that copy).
        module.class_names_file = tf.saved_model.Asset(names_file)
        atomic_save(path, lambda tmp: tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve}))
    return path
