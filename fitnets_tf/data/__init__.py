"""Data for FitNets experiments: splits, preprocessing (scale or GCN + ZCA), augmentation and input pipelines.

Typical use:
    splits = load_splits("cifar10", data_dir=DIR)
    pre = Preprocessor.fit("gcn_zca", images_to_numpy(splits.train))
    train = build_input(splits.train, 128, True, pre, splits.info.crop_padding, splits.info.allow_flip)
    test = build_input(splits.test, 128, False, pre)

`data` knows nothing of models: it yields (float32 images [b, H, W, C], int64 labels [b]) batches.
"""

from fitnets_tf.data.augment import AUGMENTATIONS, Augmentation, augment, random_resized_crop
from fitnets_tf.data.caching import CACHE_MODES, Placement, choose_place
from fitnets_tf.data.catalog import dataset_info
from fitnets_tf.data.dataset_info import CHANNELS, DATASETS, DatasetInfo
from fitnets_tf.data.folder import FolderError
from fitnets_tf.data.image_check import BAD_IMAGE_CHOICES
from fitnets_tf.data.input_pipeline import build_input, make_input_fn
from fitnets_tf.data.readers import ArrayReader, ExampleReader, ImageFileReader, cache_examples
from fitnets_tf.data.preprocessing import PREPROCESSING_KINDS, Preprocessor, images_to_numpy
from fitnets_tf.data.sources import DataNotFoundError, Splits, load_splits

__all__ = [
    "AUGMENTATIONS",
    "ArrayReader",
    "BAD_IMAGE_CHOICES",
    "FolderError",
    "Augmentation",
    "CACHE_MODES",
    "CHANNELS",
    "ExampleReader",
    "ImageFileReader",
    "Placement",
    "cache_examples",
    "choose_place",
    "random_resized_crop",
    "DATASETS",
    "DataNotFoundError",
    "DatasetInfo",
    "PREPROCESSING_KINDS",
    "Preprocessor",
    "Splits",
    "augment",
    "build_input",
    "dataset_info",
    "images_to_numpy",
    "load_splits",
    "make_input_fn",
]
