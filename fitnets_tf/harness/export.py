"""Export of a trained student for serving: a SavedModel that takes raw uint8 images.

The serving signature `serving_default` takes `images`: uint8 [batch, H, W, C] (the dataset's raw pixels; for the
embedded digits, 0..16 scaled to 0..255) and returns `probabilities` float32 [batch, classes] and `class_id`
int64 [batch]. The run's preprocessing (scale, or GCN + ZCA with the statistics fitted on the train split) is
inside the graph, so clients never reimplement it. The forward pass goes through `model.call` (inference mode).

Bad input never reaches a kernel. A signature declared as [None, H, W, C] is not enforced when a reloaded
SavedModel's signature is called (measured, TF 2.21: [N, H, W] or one unbatched [H, W, C] image aborted the whole
process in the CPU convolution, and [N, 2H, W/2, C] returned predictions), so the signature takes uint8 images of
any shape and its first op checks the shape: anything but [batch, H, W, C] raises InvalidArgumentError naming the
expected input and the shape received. A wrong dtype is refused by TensorFlow itself before the graph runs, in
words we cannot change except for the function's name, which therefore spells the expected input:
"cannot compute __inference_signature_wrapper_expects_images_uint8_batch_8_8_1_246 as input #0(zero-based) was
expected to be a uint8 tensor but is a float tensor".
"""

import keras
import tensorflow as tf

from fitnets_tf.io_utils import atomic_save


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
    """Preprocessing + network + softmax, behind a uint8 input whose shape is checked in the graph."""

    def __init__(self, model, preprocessor, temperature=1.0):
        super().__init__(name="fitnets_serving")
        self.model = model
        self.preprocessor = preprocessor
        self.temperature = float(temperature)
        self.image_shape = tuple(int(d) for d in model.input_shape[1:])
        # Unknown shape: the check in `_serve` (not the signature, which a reloaded model does not enforce) is
        # what refuses a wrong shape, with a message naming the expected one.
        # A wrong dtype is refused by TensorFlow before any op runs, with a message of its own that names only the
        # function: the function's name carries the expected input, so that this message names it too.
        def serve(images):
            return self._serve(images)

        serve.__name__ = "expects_images_uint8_batch_{}_{}_{}".format(*self.image_shape)
        self.serve = tf.function(serve, input_signature=[tf.TensorSpec(None, tf.uint8, name="images")])

    def _serve(self, images):
        images = check_images(images, self.image_shape)
        logits = tf.cast(self.model(self.preprocessor(images), training=False), tf.float32)
        probabilities = tf.nn.softmax(logits / self.temperature, axis=-1)
        return {"probabilities": probabilities, "class_id": tf.argmax(probabilities, axis=-1)}


def export_saved_model(model: keras.Model, preprocessor, path):
    """Writes the serving SavedModel to `path` atomically (a crash leaves the previous export intact)."""
    module = ServingModule(model, preprocessor)
    atomic_save(path, lambda tmp: tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve}))
    return path
