"""What the pipeline needs to know about each supported dataset before reading a single image.

The defaults follow the FitNets experiments (Romero et al., ICLR 2015, Sec. 4) and the paper's pylearn2 code
(github.com/adri-romsor/FitNets): CIFAR-10/100 are GCN + ZCA whitened and trained with random flips and random
32x32 windows of the image zero-padded by 8 pixels per side (`WindowAndFlip(pad_randomized=8)` in
`yaml/cifar10_fitnet19_valid.yaml`). MNIST and SVHN were trained without augmentation, and digits are never flipped
(a mirrored 2 is not a 2).
"""

import dataclasses

DATASETS = ("digits", "mnist", "fashion_mnist", "svhn_cropped", "cifar10", "cifar100")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one dataset.

    Attributes:
        name: one of `DATASETS`.
        image_shape: (H, W, C) of one uint8 image.
        num_classes: number of labels; labels are int64 in [0, num_classes).
        allow_flip: whether a random horizontal flip keeps the label (False for every digit dataset).
        crop_padding: default zero padding, in pixels per side, of the random-crop augmentation (0 = no crop).
        preprocessing: the paper's input preprocessing, a `Preprocessor` kind ("scale" or "gcn_zca"). The maxout
            SVHN setting used local contrast normalisation, which is not implemented: SVHN uses "scale".
        has_extra: whether the dataset has an `extra` training split (`load_splits(use_extra=True)`).
    """

    name: str
    image_shape: tuple
    num_classes: int
    allow_flip: bool
    crop_padding: int
    preprocessing: str
    has_extra: bool = False


_INFOS = {
    "digits": DatasetInfo("digits", (8, 8, 1), 10, allow_flip=False, crop_padding=0, preprocessing="scale"),
    "mnist": DatasetInfo("mnist", (28, 28, 1), 10, allow_flip=False, crop_padding=0, preprocessing="scale"),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", (28, 28, 1), 10, allow_flip=False, crop_padding=0, preprocessing="scale"
    ),
    "svhn_cropped": DatasetInfo(
        "svhn_cropped", (32, 32, 3), 10, allow_flip=False, crop_padding=0, preprocessing="scale", has_extra=True
    ),
    "cifar10": DatasetInfo("cifar10", (32, 32, 3), 10, allow_flip=True, crop_padding=8, preprocessing="gcn_zca"),
    "cifar100": DatasetInfo("cifar100", (32, 32, 3), 100, allow_flip=True, crop_padding=8, preprocessing="gcn_zca"),
}


def dataset_info(name, image_size=None):
    """Returns the `DatasetInfo` of `name` (a built-in name, any TFDS image-classification data set, or
    "folder:PATH"; see `catalog`), with images resized to `image_size` when given; raises ValueError naming the
    choices for an unknown name."""
    from fitnets_tf.data import catalog  # catalog imports this module

    if isinstance(name, str) and name in _INFOS:
        return catalog.with_image_size(_INFOS[name], image_size)
    try:
        return catalog.other_info(name, image_size)
    except ValueError as error:
        raise ValueError(f"Unknown dataset {name!r}. Choose one of: {', '.join(DATASETS)}, any TFDS "
                         f"image-classification data set by name, or folder:PATH ({error}).") from None
