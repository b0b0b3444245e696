"""The architectures of the FitNets paper (Romero et al., ICLR 2015, Sec. 4 and appendix) as `NetSpec`s.

Every spec carries its default hint layer (teacher) or guided layer (FitNet) in `NetSpec.hint_layer`, as the
paper's 1-based layer index (convs, then hidden FC layers, then the classifier; see `builders`).

Conventions shared by the paper's maxout nets:
- conv units have 2 pieces, the hidden FC layer 5 pieces (the original code's `Maxout(num_units=500, num_pieces=5)`);
- initializer "paper" (U(-0.005, 0.005)) and the paper's max-norm constraints;
- FitNets: 3x3 "same" convs, 2x2 max-pool after blocks 1 and 2, a max-pool over the whole final 8x8 map (the code's
  8x8 pool with stride 1 on an 8x8 map), FC maxout 500 x 5, softmax. The guided layer is the last conv of block 2.

Where the paper is silent the choice follows the original code (adri-romsor/FitNets yaml files) or the pylearn2
maxout-paper yaml files the teachers come from (pylearn2/scripts/papers/maxout/{cifar10,svhn,mnist}.yaml), and
each spec below says so.

Teachers and pooling: pylearn2 pools in "ceil mode" (out = ceil((H - p) / s) + 1, the last window hangs over the
edge); Keras' "valid" pooling floors (out = floor((H - p) / s) + 1). With the same kernels and pads our teachers'
maps are therefore one pixel smaller after each overlapping pool (CIFAR teacher: 15/6/4 instead of pylearn2's
16/7/5), and their FC layers, which see the flattened map, have fewer weights. The FitNets (2x2 pools on even maps)
are unaffected. Measured parameter counts are given per spec (from `counting.count_parameters`).

Parameter counts in the paper versus here: the paper's figures are reproduced when biases are left out and the hidden
FC maxout layer is counted with 2 pieces instead of the 5 the code trains: FitNets 1/2/3/4 then count 249.6K /
861.9K / 1.50M / 2.54M (paper ~250K / ~862K / ~1.6M / ~2.5M); the teachers, with pylearn2's ceil-mode maps, 4.24M
conv + 4800*500*2 = 9.04M (CIFAR, paper ~9M), 1.24M + 4608*400*2 = 4.92M (SVHN, ~4.9M) and, without an FC layer,
360.8K (MNIST, ~361K). Counting every weight and the FC's 5 pieces (`counting.count_parameters`) gives FitNets
1/2/3/4 348.7K / 1.058M / 1.700M / 2.742M, the "recounts" above the paper's figures.
"""

import dataclasses

from fitnets_tf.models.spec import BlockSpec, NetSpec, PoolSpec

CIFAR_SHAPE = (32, 32, 3)
SVHN_SHAPE = (32, 32, 3)
MNIST_SHAPE = (28, 28, 1)
AFLW_SHAPE = (16, 16, 1)
DIGITS_SHAPE = (8, 8, 1)

# The original MNIST yaml's kernel max-norm after the first two convs (the paper's general conv value is 0.9).
MNIST_CODE_LATE_MAX_NORM = 1.9365
_POOL2 = PoolSpec(2)
_GLOBAL_POOL = PoolSpec(None)


def _three_block_fitnet(name, widths, hint_layer, input_shape=CIFAR_SHAPE, num_classes=10):
    """A CIFAR-style FitNet: 3x3 same convs in 3 blocks, 2x2 pools, a global final pool, FC maxout 500x5."""
    block1, block2, block3 = widths
    return NetSpec(
        name=name,
        input_shape=input_shape,
        num_classes=num_classes,
        blocks=(BlockSpec(block1, pool=_POOL2), BlockSpec(block2, pool=_POOL2), BlockSpec(block3, pool=_GLOBAL_POOL)),
        fc_units=(500,),
        num_pieces=2,
        fc_pieces=5,
        initializer="paper",
        max_norm=True,
        hint_layer=hint_layer,
    )


def _relu_stack(name, widths, hint_layer):
    """An AFLW net: 3x3 "same" ReLU convs in one block without pooling, then the 2-way classifier."""
    return NetSpec(
        name=name,
        input_shape=AFLW_SHAPE,
        num_classes=2,
        blocks=(BlockSpec(widths, pool=None),),
        activation="relu",
        initializer="paper",
        max_norm=True,
        hint_layer=hint_layer,
    )


# FitNet block widths (paper, Table "CIFAR-10 FitNets"): (block 1 at 32x32, block 2 at 16x16, block 3 at 8x8).
FITNET_WIDTHS = {
    "fitnet1": ((16, 16, 16), (32, 32, 32), (48, 48, 64)),
    "fitnet2": ((16, 32, 32), (48, 64, 80), (96, 96, 128)),
    "fitnet3": ((32, 48, 64, 64), (80, 80, 80, 80), (128, 128, 128)),
    "fitnet4": ((32, 32, 32, 48, 48), (80,) * 6, (128,) * 6),
}

# Depth study at a fixed budget (paper Sec. 4.4): widths for ~30M and ~107M mult-adds, and the guided layer.
DEPTH_STUDY = {
    5: ({"30m": ((64,), (64,), (64,)), "107m": ((128,), (128,), (128,))}, 2),
    7: ({"30m": ((16, 32), (32, 64), (64,)), "107m": ((32, 64), (80, 80), (128,))}, 4),
    9: ({"30m": ((16, 32), (32, 32, 32), (48, 64)), "107m": ((32, 32), (64, 80, 80), (96, 128))}, 5),
    # The 11-layer nets are FitNet 1 / FitNet 2, but the paper's depth study guides layer 7 (first conv of block 3),
    # not FitNet 1/2's layer 6.
    11: ({"30m": FITNET_WIDTHS["fitnet1"], "107m": FITNET_WIDTHS["fitnet2"]}, 7),
}

# The depth study sized for 28x28 grey images (MNIST, Fashion-MNIST) at ~5M multiplications, about the MNIST
# FitNet's 5.3M: the same three-block structure, pools (28 -> 14 -> 7 -> global) and FC maxout 500x5 head as the
# CIFAR depth nets, widths scaled down, the same guided layers (each taps a 7x7 map). Not in the paper; measured
# (scripts/count.py): 5.05M / 4.94M / 5.05M / 5.45M mults for 5 / 7 / 9 / 11 layers.
DEPTH_STUDY_28 = {
    5: (((32,), (32,), (32,)), 2),
    7: (((8, 12), (16, 32), (32,)), 4),
    9: (((8, 12), (16, 16, 16), (24, 32)), 5),
    11: (((8, 8, 8), (12, 16, 16), (24, 24, 32)), 7),
}
DEPTH_BUDGET_28 = "5m"


def _registry():
    specs = {}

    # CIFAR-10/100 teacher: pylearn2 maxout cifar10.yaml. Maps: 32 -pad 4, 8x8-> 33 -pool 4/2-> 15 -pad 3, 8x8-> 14
    # -pool-> 6 -pad 3, 5x5-> 8 -pool 2/2-> 4; FC sees 4*4*192 = 3072 inputs.
    # Measured: 11,927,830 params, 628.2M mults (paper ~9M; with pylearn2's ceil-mode pools the maps are 16/7/5, the
    # FC sees 4800 inputs and the net has 16,247,830 params; see the module docstring).
    specs["cifar_teacher"] = NetSpec(
        name="cifar_teacher",
        input_shape=CIFAR_SHAPE,
        num_classes=10,
        blocks=(
            BlockSpec((96,), kernel_size=8, padding=4, pool=PoolSpec(4, 2)),
            BlockSpec((192,), kernel_size=8, padding=3, pool=PoolSpec(4, 2)),
            BlockSpec((192,), kernel_size=5, padding=3, pool=PoolSpec(2, 2)),
        ),
        fc_units=(500,),
        hint_layer=2,
    )

    # SVHN teacher: pylearn2 maxout svhn.yaml (the maxout paper's SVHN net, 64-128-128 + FC maxout 400 as in the
    # FitNets paper): 5x5 kernels, pads 4/3/3, 3x3 pools with stride 2. Maps: 32 -> 36 -> 17 -> 19 -> 9 -> 11 -> 5;
    # FC sees 5*5*128 = 3200 inputs. Measured: 7,645,050 params, 265.8M mults (paper ~4.9M; pylearn2's ceil-mode maps
    # 18/10/6 give 10,461,050; see the module docstring).
    specs["svhn_teacher"] = NetSpec(
        name="svhn_teacher",
        input_shape=SVHN_SHAPE,
        num_classes=10,
        blocks=(
            BlockSpec((64,), kernel_size=5, padding=4, pool=PoolSpec(3, 2)),
            BlockSpec((128,), kernel_size=5, padding=3, pool=PoolSpec(3, 2)),
            BlockSpec((128,), kernel_size=5, padding=3, pool=PoolSpec(3, 2)),
        ),
        fc_units=(400,),
        hint_layer=2,
    )

    # MNIST teacher: pylearn2 maxout mnist.yaml (8x8 valid, 8x8 pad 3, 5x5 pad 3; pools 4/2, 4/2, 2/2), with the
    # paper's 2 pieces everywhere (the yaml gives its last conv 4 pieces). Maps: 28 -> 21 -> 9 -> 8 -> 3 -> 5 -> 2.
    # Measured: 359,866 params (pylearn2's ceil-mode pools leave a 3x3 map: 361,066, the paper's ~361K).
    specs["mnist_teacher"] = NetSpec(
        name="mnist_teacher",
        input_shape=MNIST_SHAPE,
        num_classes=10,
        blocks=(
            BlockSpec((48,), kernel_size=8, padding="valid", pool=PoolSpec(4, 2)),
            BlockSpec((48,), kernel_size=8, padding=3, pool=PoolSpec(4, 2)),
            BlockSpec((24,), kernel_size=5, padding=3, pool=PoolSpec(2, 2)),
        ),
        hint_layer=2,
    )

    # CIFAR-10 FitNets 1-4, guided layer = last conv of block 2 (6, 6, 8, 11).
    for name, widths in FITNET_WIDTHS.items():
        guided = len(widths[0]) + len(widths[1])
        specs[name] = _three_block_fitnet(name, widths, guided)

    # MNIST FitNet: the original code's MNIST_fitnet_valid.yaml (kernels 5,3 | 5,3 | 3,3; pads 0,0 | 3,0 | 3,0;
    # pools 4/2, 4/2, 2/2 after every 2nd conv; guided layer 4). The paper gives only the widths (16-16-16-16-12-12),
    # so the rest follows the code: 2 maxout pieces in blocks 1-2 and 4 in block 3 (h4, h5), kernel max-norm 0.9
    # for the first two convs and 1.9365 after (the paper's general rule says 0.9 for every conv; that variant,
    # with 2 pieces everywhere, is `mnist_fitnet_uniform`). Maps: 28 -> 24 -> 22 -> 10 -> 12 -> 10 -> 4 -> 8 -> 6
    # -> 3. Measured: 36,226 params, 5.63M mults (paper ~30K); `mnist_fitnet_uniform`: 30,130 params, 5.31M.
    mnist_blocks = (
        BlockSpec((16, 16), kernel_size=(5, 3), padding="valid", pool=PoolSpec(4, 2)),
        BlockSpec((16, 16), kernel_size=(5, 3), padding=(3, "valid"), pool=PoolSpec(4, 2)),
        BlockSpec((12, 12), kernel_size=3, padding=(3, "valid"), pool=PoolSpec(2, 2)),
    )
    specs["mnist_fitnet_uniform"] = NetSpec(
        name="mnist_fitnet_uniform", input_shape=MNIST_SHAPE, num_classes=10, blocks=mnist_blocks, hint_layer=4,
    )
    code_norm = MNIST_CODE_LATE_MAX_NORM
    specs["mnist_fitnet"] = NetSpec(
        name="mnist_fitnet",
        input_shape=MNIST_SHAPE,
        num_classes=10,
        blocks=(
            mnist_blocks[0],
            dataclasses.replace(mnist_blocks[1], max_norm=code_norm),
            dataclasses.replace(mnist_blocks[2], max_norm=code_norm, num_pieces=4),
        ),
        hint_layer=4,
    )

    # SVHN FitNet: the paper's "13-layer FitNet with 11 maxout convs" (+ FC + softmax), given no widths; this is
    # FitNet 4's block 1 with blocks 2 and 3 cut to 3 convs each. Measured: 1,510,518 params, 236.8M mults
    # (paper ~1.5M).
    specs["svhn_fitnet"] = _three_block_fitnet(
        "svhn_fitnet", ((32, 32, 32, 48, 48), (80, 80, 80), (128, 128, 128)), 8, input_shape=SVHN_SHAPE
    )

    for depth, (budgets, guided) in DEPTH_STUDY.items():
        for budget, widths in budgets.items():
            name = f"depth{depth}_{budget}"
            specs[name] = _three_block_fitnet(name, widths, guided)
    for depth, (widths, guided) in DEPTH_STUDY_28.items():
        name = f"depth{depth}_{DEPTH_BUDGET_28}"
        specs[name] = _three_block_fitnet(name, widths, guided, input_shape=MNIST_SHAPE)

    # AFLW (face / non-face on 16x16 grey patches): ReLU convs, no pooling. The paper gives no kernel sizes: 3x3
    # "same" keeps every map 16x16 so that the regressor from guided layer 5 to hint layer 3 is a 1x1 conv. The
    # paper's sigmoid face/non-face output is modelled as a 2-way softmax (the same function of one logit
    # difference). No hidden FC layer: the classifier reads the flattened 16x16 map.
    specs["aflw_teacher"] = _relu_stack("aflw_teacher", (128, 512, 512), 3)
    specs["aflw_fitnet1"] = _relu_stack("aflw_fitnet1", (16,) + (32,) * 6, 5)
    specs["aflw_fitnet2"] = _relu_stack("aflw_fitnet2", (32,) + (64,) * 6, 5)

    # The project's embedded 8x8 digits: a small teacher and a deep thin FitNet that train in seconds on a CPU.
    # Teacher hint = conv2 (8x8x64); guided = conv4 (8x8x8): the regressor is a 1x1 maxout conv.
    specs["digits_teacher"] = NetSpec(
        name="digits_teacher",
        input_shape=DIGITS_SHAPE,
        num_classes=10,
        blocks=(BlockSpec((64, 64), pool=_POOL2), BlockSpec((64,), pool=_GLOBAL_POOL)),
        initializer="glorot_uniform",
        max_norm=True,
        hint_layer=2,
    )
    specs["digits_fitnet"] = NetSpec(
        name="digits_fitnet",
        input_shape=DIGITS_SHAPE,
        num_classes=10,
        blocks=(BlockSpec((8, 8, 8, 8), pool=_POOL2), BlockSpec((16, 16, 16, 16), pool=_GLOBAL_POOL)),
        initializer="glorot_uniform",
        max_norm=True,
        hint_layer=4,
    )
    return specs


ARCHITECTURES = _registry()


def list_architectures():
    """The registered architecture names, in registration order (teachers, FitNets, depth study, AFLW, digits)."""
    return list(ARCHITECTURES)


def _lookup(name):
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}. Choose one of: {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[name]


def get_spec(name, input_shape=None, num_classes=None) -> NetSpec:
    """The `NetSpec` of architecture `name`, optionally for another input shape or number of classes.

    Args:
        name: one of `list_architectures()`.
        input_shape: (height, width, channels) replacing the default (e.g. a CIFAR FitNet on 8x8 digits). The
            convs and pools are unchanged: the map must stay large enough for them, which `build_network` checks.
        num_classes: classes of the softmax layer, replacing the default (e.g. 100 for CIFAR-100).
    Raises:
        ValueError for an unknown name or a malformed override.
    """
    spec = _lookup(name)
    overrides = {}
    if input_shape is not None:
        input_shape = tuple(input_shape)
        if len(input_shape) != 3 or not all(isinstance(d, int) and d >= 1 for d in input_shape):
            raise ValueError(
                f"input_shape must be (height, width, channels) of positive integers. Received: "
                f"input_shape={input_shape}"
            )
        overrides["input_shape"] = input_shape
    if num_classes is not None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}")
        overrides["num_classes"] = num_classes
    return dataclasses.replace(spec, **overrides) if overrides else spec


def default_hint_layer(name):
    """The paper's default hint layer (teacher) or guided layer (FitNet) of `name`, as a 1-based layer index."""
    return _lookup(name).hint_layer
