"""What the pipeline needs to know about each supported dataset before reading a single image.

The defaults follow the FitNets experiments (Romero et al., ICLR 2015, Sec. 4) and the paper's pylearn2 code
(github.com/adri-romsor/FitNets): CIFAR-10/100 are GCN + ZCA whitened and trained with random flips and random
32x32 windows of the image zero-padded by 8 pixels per side (`WindowAndFlip(pad_randomized=8)` in
`yaml/cifar10_fitnet19_valid.yaml`). MNIST and SVHN were trained without augmentation, and digits are never flipped
(a mirrored 2 is not a 2).
"""

import dataclasses

CHANNELS = (1, 3)
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
        class_names: the name of each label, in label order (() when the data set does not name them).
        augmentation: the default training augmentation, an `augment.AUGMENTATIONS` kind: "pad_crop" (CIFAR:
            random windows of the zero-padded image, `crop_padding`), "random_resized_crop" (ImageNet style:
            a random box of 8-100% of the area, aspect 3/4-4/3, resized back; folders) or "none".
    """

    name: str
    image_shape: tuple
    num_classes: int
    allow_flip: bool
    crop_padding: int
    preprocessing: str
    has_extra: bool = False
    class_names: tuple = ()
    augmentation: str = "none"


_DIGITS = tuple(str(i) for i in range(10))
_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# CIFAR-100's fine labels in label order (alphabetical, as in the data set's meta file).
_CIFAR100 = tuple("""apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant
flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree
motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel
streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
willow_tree wolf woman worm""".split())

BUILT_IN_INFOS = {
    "digits": DatasetInfo("digits", (8, 8, 1), 10, allow_flip=False, crop_padding=0, preprocessing="scale",
                          class_names=_DIGITS),
    "mnist": DatasetInfo("mnist", (28, 28, 1), 10, allow_flip=False, crop_padding=0, preprocessing="scale",
                         class_names=_DIGITS),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", (28, 28, 1), 10, allow_flip=False, crop_padding=0, preprocessing="scale",
        class_names=_FASHION),
    "svhn_cropped": DatasetInfo(
        "svhn_cropped", (32, 32, 3), 10, allow_flip=False, crop_padding=0, preprocessing="scale", has_extra=True,
        class_names=_DIGITS),
    "cifar10": DatasetInfo("cifar10", (32, 32, 3), 10, allow_flip=True, crop_padding=8, preprocessing="gcn_zca",
                           class_names=_CIFAR10, augmentation="pad_crop"),
    "cifar100": DatasetInfo("cifar100", (32, 32, 3), 100, allow_flip=True, crop_padding=8, preprocessing="gcn_zca",
                            class_names=_CIFAR100, augmentation="pad_crop"),
}
