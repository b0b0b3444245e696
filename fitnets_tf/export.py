"""Export of a trained student for serving: a SavedModel that takes raw uint8 images.

The serving signature `serving_default` takes `images`: uint8 [batch, H, W, C] (the dataset's raw pixels; for the
embedded digits, 0..16 scaled to 0..255) and returns `probabilities` float32 [batch, classes] and `class_id`
int64 [batch]. The run's preprocessing (scale, or GCN + ZCA with the statistics fitted on the train split) is
inside the graph, so clients never reimplement it. The forward pass goes through `model.call` (inference mode).
"""

import keras
import tensorflow as tf

from fitnets_tf.io_utils import atomic_save


class ServingModule(tf.Module):
    """Preprocessing + network + softmax, with a fixed uint8 input signature."""

    def __init__(self, model, preprocessor, temperature=1.0):
        super().__init__(name="fitnets_serving")
        self.model = model
        self.preprocessor = preprocessor
        self.temperature = float(temperature)
        height, width, channels = model.input_shape[1:]
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None, height, width, channels], tf.uint8, name="images")],
        )

    def _serve(self, images):
        logits = tf.cast(self.model(self.preprocessor(images), training=False), tf.float32)
        probabilities = tf.nn.softmax(logits / self.temperature, axis=-1)
        return {"probabilities": probabilities, "class_id": tf.argmax(probabilities, axis=-1)}


def export_saved_model(model: keras.Model, preprocessor, path):
    """Writes the serving SavedModel to `path` atomically (a crash leaves the previous export intact)."""
    module = ServingModule(model, preprocessor)
    atomic_save(path, lambda tmp: tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve}))
    return path
