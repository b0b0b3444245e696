"""Generic layers; nothing here knows about FitNets."""

from fitnets_tf.layers.maxout import Maxout

__all__ = ["Maxout"]
