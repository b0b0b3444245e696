"""Teachers and FitNets as functional Keras models built from specs."""

from fitnets_tf.models.builders import layer_index, resolve_layer, resolve_tap, tap_names, truncated_model
from fitnets_tf.models.network import FitNetsNetwork, build_network
from fitnets_tf.models.spec import BlockSpec, NetSpec, PoolSpec

__all__ = [
    "BlockSpec", "FitNetsNetwork", "NetSpec", "PoolSpec", "build_network", "layer_index", "resolve_layer", "resolve_tap", "tap_names",
    "truncated_model",
]
