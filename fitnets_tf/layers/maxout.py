"""Maxout non-linearity (Goodfellow et al., 2013), the unit of every FitNets network."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fitnets_tf")
class Maxout(keras.layers.Layer):
    """Max over `num_pieces` consecutive channels of the last axis.

    A maxout unit j takes the max over its pieces: `y[..., j] = max_p x[..., j * num_pieces + p]`, so an input of
    shape `(..., units * num_pieces)` gives `(..., units)`. Placed after a `Conv2D` it is a maxout convolution,
    after a `Dense` a maxout fully connected layer (pylearn2's `MaxoutConvC01B` / `Maxout`, which group the
    pieces of one unit as consecutive channels, as here).

    Args:
        num_pieces: number of linear pieces per unit (the paper uses 2 for convs, 5 for the FC layer).
    """

    def __init__(self, num_pieces, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_pieces, int) or isinstance(num_pieces, bool) or num_pieces < 1:
            raise ValueError(f"num_pieces must be an integer >= 1. Received: num_pieces={num_pieces!r}")
        self.num_pieces = num_pieces

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.num_pieces:
            raise ValueError(
                f"Maxout layer '{self.name}' needs a last axis divisible by num_pieces={self.num_pieces}. "
                f"Received: input_shape={tuple(input_shape)}. Give the layer before it units * num_pieces "
                f"channels."
            )
        self.built = True

    def call(self, inputs):
        shape = ops.shape(inputs)
        units = inputs.shape[-1] // self.num_pieces
        grouped = ops.reshape(inputs, (*shape[:-1], units, self.num_pieces))
        return ops.max(grouped, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // self.num_pieces)

    def get_config(self):
        config = super().get_config()
        config.update({"num_pieces": self.num_pieces})
        return config
