"""A small, frozen description of a FitNets network: the builders turn it into a functional Keras model."""

import dataclasses
from typing import Optional, Tuple, Union

ACTIVATIONS = ("maxout", "relu")
INITIALIZERS = ("paper", "glorot_uniform", "he_normal")


@dataclasses.dataclass(frozen=True)
class PoolSpec:
    """Max-pooling after a block. `size=None` pools over the whole remaining map (the FitNets' final pool)."""

    size: Optional[int] = 2
    stride: Optional[int] = None  # defaults to size; the paper's teachers use overlapping pools (size 4, stride 2)
    padding: str = "valid"


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """Convolutions sharing a spatial size, then an optional pool.

    Attributes:
        widths: output units of each conv (maxout units, not pieces).
        kernel_size: one size for every conv of the block, or one per conv.
        padding: "same", "valid", or an explicit zero-padding in pixels (pylearn2's `pad`, then a valid conv).
        pool: pooling after the last conv, or None.
        num_pieces: maxout pieces of this block's convs (None: the net's `num_pieces`).
        max_norm: max-norm of this block's conv kernels (None: the paper's conv value, 0.9).
    """

    widths: Tuple[int, ...]
    kernel_size: Union[int, Tuple[int, ...]] = 3
    padding: Union[str, int, Tuple[Union[str, int], ...]] = "same"
    pool: Optional[PoolSpec] = PoolSpec()
    num_pieces: Optional[int] = None
    max_norm: Optional[float] = None

    def kernel_sizes(self):
        ks = self.kernel_size
        return tuple(ks) if isinstance(ks, (tuple, list)) else (ks,) * len(self.widths)

    def paddings(self):
        pad = self.padding
        return tuple(pad) if isinstance(pad, (tuple, list)) else (pad,) * len(self.widths)


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """A teacher or a FitNet: conv blocks, an optional fully connected head, a softmax classifier.

    Attributes:
        name: model name (also the prefix of nothing: layer names are stable across nets, see `builders`).
        input_shape: (height, width, channels).
        num_classes: classes of the softmax layer.
        blocks: the convolutional blocks, in order.
        fc_units: units of each hidden fully connected layer (the paper's maxout 500 x 5 head is `(500,)`).
        activation: "maxout" (every FitNets net but AFLW's) or "relu".
        num_pieces: maxout pieces of every conv unit.
        fc_pieces: maxout pieces of every fully connected unit.
        initializer: "paper" draws every weight from U(-0.005, 0.005) (Sec. 4); or a Keras initializer name.
        max_norm: apply the paper's max-norm constraints (conv 0.9, FC 1.9, softmax 1.9365).
        dropout: dropout rate before each fully connected layer and the classifier (0 disables).
        hint_layer: the default hint (teacher) or guided (student) layer: 1-based index or name, or None.
    """

    name: str
    input_shape: Tuple[int, int, int]
    num_classes: int
    blocks: Tuple[BlockSpec, ...]
    fc_units: Tuple[int, ...] = ()
    activation: str = "maxout"
    num_pieces: int = 2
    fc_pieces: int = 5
    initializer: str = "paper"
    max_norm: bool = True
    dropout: float = 0.0
    hint_layer: Optional[Union[int, str]] = None

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}. Received: activation={self.activation!r}")
        if self.initializer not in INITIALIZERS:
            raise ValueError(
                f"initializer must be one of {INITIALIZERS}. Received: initializer={self.initializer!r}"
            )
        if not self.blocks:
            raise ValueError(f"NetSpec '{self.name}' needs at least one conv block. Received: blocks=()")
        for block in self.blocks:
            if not block.widths or any(w < 1 for w in block.widths):
                raise ValueError(f"Block widths must be positive integers. Received: widths={block.widths}")
            if len(block.kernel_sizes()) != len(block.widths) or len(block.paddings()) != len(block.widths):
                raise ValueError(
                    f"A block needs one kernel size and padding per conv. Received: widths={block.widths}, "
                    f"kernel_size={block.kernel_size}, padding={block.padding}"
                )
        if self.num_pieces < 1 or self.fc_pieces < 1 or any(
                b.num_pieces is not None and b.num_pieces < 1 for b in self.blocks):
            raise ValueError(
                f"Maxout pieces must be >= 1. Received: num_pieces={self.num_pieces}, fc_pieces={self.fc_pieces}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")

    @property
    def num_conv_layers(self):
        return sum(len(b.widths) for b in self.blocks)

    @property
    def depth(self):
        """Layers with weights, as the paper counts them (convs + hidden FC + softmax)."""
        return self.num_conv_layers + len(self.fc_units) + 1
