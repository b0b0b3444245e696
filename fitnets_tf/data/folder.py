"""A local folder of images as a data set, `dataset="folder:PATH"`: one subfolder per class.

    PATH/cat/001.png, PATH/cat/002.jpg, ..., PATH/dog/...   ->  labels 0 (cat), 1 (dog): subfolders sorted by name

Images are PNG, JPEG, GIF or BMP (what `tf.io.decode_image` reads), decoded to uint8 with the channels of the first
image (or `channels`) and resized (bilinear) to `image_size` x `image_size`, or to the first image's size when
`image_size` is None. The test and validation splits are drawn reproducibly with `seed` and stratified by class
(when every class has enough images): `test_fraction` of all files is the test split, `validation_size` of the rest
the validation split.
"""

import math
import os

import numpy as np
import tensorflow as tf

from fitnets_tf.data.dataset_info import DatasetInfo
from fitnets_tf.data.readers import ImageFileReader

PREFIX = "folder:"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
TEST_FRACTION = 0.2


def is_folder(name):
    return isinstance(name, str) and name.startswith(PREFIX)


def _listing(path):
    """(class names, [(file path, label)]) of a class-per-subfolder directory; ValueError when it is not one."""
    if not os.path.isdir(path):
        raise ValueError(f"folder:{path}: no such directory. Give a folder with one subfolder per class.")
    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    files = []
    for label, name in enumerate(classes):
        for root, _, names in sorted(os.walk(os.path.join(path, name))):
            files += [(os.path.join(root, f), label) for f in sorted(names) if f.lower().endswith(IMAGE_EXTENSIONS)]
    if len(classes) < 2 or not files:
        raise ValueError(f"folder:{path}: found {len(classes)} class subfolders and {len(files)} images "
                         f"({', '.join(IMAGE_EXTENSIONS)}); a classification folder needs >= 2 subfolders of images.")
    return classes, files


def folder_info(name, image_size=None, channels=None):
    """The `DatasetInfo` of `folder:PATH` (shape from the first image unless `image_size` is given; channels from
    the first image unless `channels` is given). Its default training augmentation is ImageNet style:
    random_resized_crop and random mirrors."""
    path = name[len(PREFIX):]
    classes, files = _listing(path)
    first = tf.io.decode_image(tf.io.read_file(files[0][0]), channels=channels or 0, expand_animations=False)
    height, width, depth = first.shape
    if image_size:
        height = width = int(image_size)
    return DatasetInfo(name, (int(height), int(width), int(depth)), len(classes), allow_flip=True, crop_padding=0,
                       preprocessing="scale", class_names=tuple(classes), augmentation="random_resized_crop")


def _split(indices, labels, count, seed):
    """(`count` of `indices`, the rest), drawn with `seed`, stratified by class when every class can give one."""
    from sklearn.model_selection import train_test_split

    try:
        rest, taken = train_test_split(indices, test_size=count, random_state=seed, stratify=labels[indices])
    except ValueError:  # a class too small to stratify: a plain seeded draw
        order = np.random.default_rng(seed).permutation(indices)
        taken, rest = order[:count], order[count:]
    return np.sort(taken), np.sort(rest)


def folder_splits(info, validation_size, seed, count_fn, splits_cls, test_fraction=TEST_FRACTION):
    """`Splits` of a folder (see the module docstring). `count_fn` is `sources.validation_count`."""
    _, files = _listing(info.name[len(PREFIX):])
    labels_all = np.array([label for _, label in files])
    num_test = max(1, math.ceil(test_fraction * len(files)))
    test, rest = _split(np.arange(len(files)), labels_all, num_test, seed)
    count = count_fn(validation_size, len(rest))
    validation, train = _split(rest, labels_all, count, seed + 1) if count else (rest[:0], rest)
    parts = {"test": test, "validation": validation, "train": train}
    everything = ImageFileReader([p for p, _ in files], labels_all, info.image_shape)
    return splits_cls.from_readers(info, everything.subset(parts["train"]),
                                   everything.subset(parts["validation"]) if count else None,
                                   everything.subset(parts["test"]))


def write_digits_folder(path, size=32, channels=3):
    """Writes scikit-learn's 1,797 8x8 digits as `size` x `size` PNGs, one subfolder per class ("0".."9"), into
    `path`: an example class-per-subfolder folder for `folder:PATH`, made offline. Returns `path`.

    The grey levels (0..255, see `digits_arrays`) are upscaled (bilinear) and repeated over `channels`. An
    existing, complete folder is left as it is."""
    from fitnets_tf.data.digits import digits_arrays

    images, labels = digits_arrays()
    if os.path.isdir(path) and sum(len(files) for _, _, files in os.walk(path)) == len(labels):
        return path
    scaled = tf.image.resize(tf.cast(images, tf.float32), (size, size), method="bilinear")
    scaled = tf.cast(tf.clip_by_value(tf.round(scaled), 0, 255), tf.uint8)
    for i, (image, label) in enumerate(zip(scaled, labels)):
        folder = os.path.join(path, str(int(label)))
        os.makedirs(folder, exist_ok=True)
        image = tf.repeat(image[..., :1], channels, axis=-1)
        tf.io.write_file(os.path.join(folder, f"{i:04d}.png"), tf.io.encode_png(image))
    return path
