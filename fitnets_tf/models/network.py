"""`FitNetsNetwork`: the zoo's teachers and FitNets as a `keras.Model` subclass that exposes named intermediates.

It is functional inside (the graph `builders.network_graph` builds from a `NetSpec`), so it is cut at any layer
like every functional model, and it implements the intermediate-outputs protocol of `fitnets_tf.taps`:

    intermediate_names                      conv1.., pool1.., flatten, fc1.., logits (forward order)
    intermediate_outputs(x, names, training) -> {name: tensor}

It serializes by its spec (`get_config` -> {"spec": ...}), so a saved .keras file reloads as a `FitNetsNetwork`;
files saved before it existed reload as plain functional models with the same layer names, which the taps and the
paper's indices address the same way.
"""

import dataclasses
import re

import keras

from fitnets_tf.models import builders
from fitnets_tf.models.spec import BlockSpec, NetSpec, PoolSpec

_INTERMEDIATE = re.compile(r"^(conv\d+|pool\d+|fc\d+|flatten|logits)$")


def spec_to_config(spec):
    return dataclasses.asdict(spec)


def spec_from_config(config):
    """The `NetSpec` of `spec_to_config(spec)` (JSON turns tuples into lists: they are turned back)."""
    def tup(value):
        return tuple(tup(v) for v in value) if isinstance(value, list) else value

    blocks = []
    for block in config["blocks"]:
        pool = None if block.get("pool") is None else PoolSpec(**block["pool"])
        blocks.append(BlockSpec(**{**{k: tup(v) for k, v in block.items() if k != "pool"}, "pool": pool}))
    fields = {k: tup(v) for k, v in config.items() if k != "blocks"}
    return NetSpec(**{**fields, "blocks": tuple(blocks)})


@keras.saving.register_keras_serializable(package="fitnets_tf")
class FitNetsNetwork(keras.Model):
    """A teacher or FitNet built from `spec` (images -> logits); see `builders` for the layer names.

    Args:
        spec: the architecture, a `NetSpec`.
        seed: makes the initial weights reproducible.
    """

    def __init__(self, spec, seed=None, **kwargs):
        if isinstance(spec, dict):
            spec = spec_from_config(spec)
        if not isinstance(spec, NetSpec):
            raise ValueError(f"spec must be a NetSpec. Received: spec={spec!r}")
        inputs, logits = builders.network_graph(spec, seed)
        kwargs.setdefault("name", spec.name)
        super().__init__(inputs, logits, **kwargs)
        self.spec = spec
        self.seed = seed

    @property
    def intermediate_names(self):
        return tuple(layer.name for layer in self.layers if _INTERMEDIATE.match(layer.name))

    def intermediate_outputs(self, inputs, names, training=False):
        names = list(names)
        unknown = [n for n in names if n not in self.intermediate_names]
        if unknown:
            raise ValueError(f"{unknown} are not intermediate outputs of '{self.name}'. Choose from: "
                             f"{', '.join(self.intermediate_names)}.")
        sub = keras.Model(self.input, [self.get_layer(n).output for n in names], name=f"{self.name}_intermediates")
        outputs = sub(inputs, training=training)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return dict(zip(names, outputs))

    def get_config(self):
        return {"spec": spec_to_config(self.spec), "seed": self.seed, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        return cls(spec_from_config(config.pop("spec")), **config)


def build_network(spec: NetSpec, seed=None) -> keras.Model:
    """Builds the teacher or FitNet described by `spec`; the model maps images to logits.

    Args:
        spec: the architecture.
        seed: makes the initial weights reproducible (each layer draws from its own derived seed).
    Returns:
        A `FitNetsNetwork` (a functional `keras.Model` subclass exposing named intermediate outputs) named
        `spec.name`, output `logits` of shape (batch, num_classes).
    """
    return FitNetsNetwork(spec, seed=seed)
