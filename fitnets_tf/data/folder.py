"""A local folder of images as a data set, `dataset="folder:PATH"`: one subfolder per class.

    PATH/cat/001.png, PATH/cat/002.jpg, ..., PATH/dog/...   ->  labels 0 (cat), 1 (dog): subfolders sorted by name

Images are PNG, JPEG, GIF or BMP (what `tf.io.decode_image` reads), decoded to uint8 with the channels of the first
image (or `channels`) and resized (bilinear) to `image_size` x `image_size`, or to the first image's size when
`image_size` is None. The test and validation splits are drawn reproducibly with `seed` and stratified by class
(when every class has enough images): `test_fraction` of all files is the test split, `validation_size` of the rest
the validation split.

Before the split every file is decoded once (`image_check`): unreadable files stop the run, naming them, or with
`bad_images="skip"` are left out and counted. An empty class subfolder is refused; a class too small to appear in
every split is warned about and recorded (`Splits.checks`).
"""

import math
import os

from absl import logging
import numpy as np
import tensorflow as tf

from fitnets_tf.data import image_check
from fitnets_tf.data.dataset_info import DatasetInfo
from fitnets_tf.data.readers import ImageFileReader, decode_image_file

PREFIX = "folder:"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
TEST_FRACTION = 0.2


class FolderError(ValueError):
    """A `folder:PATH` that cannot be a classification data set; the message names the folder or files and the
    fix."""


def is_folder(name):
    return isinstance(name, str) and name.startswith(PREFIX)


def _listing(path):
    """(class names, [(file path, label)]) of a class-per-subfolder directory; FolderError when it is not one or
    when a class subfolder holds no image."""
    if not os.path.isdir(path):
        raise FolderError(f"folder:{path}: no such directory. Give a folder with one subfolder per class.")
    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    files, empty = [], []
    for label, name in enumerate(classes):
        found = []
        for root, _, names in sorted(os.walk(os.path.join(path, name))):
            found += [(os.path.join(root, f), label) for f in sorted(names) if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not found:
            empty.append(name)
        files += found
    if len(classes) < 2 or not files:
        raise FolderError(f"folder:{path}: found {len(classes)} class subfolders and {len(files)} images "
                          f"({', '.join(IMAGE_EXTENSIONS)}); a classification folder needs >= 2 subfolders of "
                          "images.")
    if empty:
        raise FolderError(f"folder:{path}: class subfolder(s) {', '.join(repr(e) for e in empty)} hold no image "
                          f"({', '.join(IMAGE_EXTENSIONS)}); each subfolder is a class, and a class without "
                          "examples would be an output that never learns. Add images to it or remove it.")
    return classes, files


def _first_image(path, files, channels):
    """The first file of `files` that decodes (a corrupt file is named by the full check of `folder_splits`)."""
    for file, _ in files:
        try:
            return decode_image_file(file, channels or 0)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.UnknownError):
            continue
    raise FolderError(f"folder:{path}: none of its {len(files)} image files can be read or decoded. Check that "
                      "they are PNG, JPEG, GIF or BMP images.")


def folder_info(name, image_size=None, channels=None):
    """The `DatasetInfo` of `folder:PATH` (shape from the first readable image unless `image_size` is given;
    channels from it unless `channels` is given). Its default training augmentation is ImageNet style:
    random_resized_crop and random mirrors."""
    path = name[len(PREFIX):]
    classes, files = _listing(path)
    height, width, depth = _first_image(path, files, channels).shape
    if image_size:
        height = width = int(image_size)
    return DatasetInfo(name, (int(height), int(width), int(depth)), len(classes), allow_flip=True, crop_padding=0,
                       preprocessing="scale", class_names=tuple(classes), augmentation="random_resized_crop")


def _split(indices, labels, count, seed):
    """(`count` of `indices`, the rest), drawn with `seed`, stratified by class when every class can give one."""
    from sklearn.model_selection import train_test_split

    try:
        rest, taken = train_test_split(indices, test_size=count, random_state=seed, stratify=labels[indices])
    except ValueError:  # a class too small to stratify: a plain seeded draw (the absent classes are reported)
        order = np.random.default_rng(seed).permutation(indices)
        taken, rest = order[:count], order[count:]
    return np.sort(taken), np.sort(rest)


def _checked_files(path, files, channels, bad_images, log):
    """`files` without the unreadable ones (`bad_images="skip"`), or FolderError naming them ("stop"); returns
    (files, record of what was left out)."""
    if bad_images not in image_check.BAD_IMAGE_CHOICES:
        raise ValueError(f"bad_images must be one of {', '.join(image_check.BAD_IMAGE_CHOICES)}. "
                         f"Received: bad_images={bad_images!r}")
    paths = [p for p, _ in files]
    bad = image_check.unreadable_images(paths, channels, log=log)
    if not len(bad):
        return files, {"checked_images": len(files), "skipped_images": 0}
    found = image_check.describe(paths, bad)
    if bad_images == "stop":
        raise FolderError(f"folder:{path}: {found}. Remove or replace them, or set `bad_images` to 'skip' to "
                          "leave them out (the count is recorded).")
    logging.warning("[fitnets] folder:%s: %s; left out (bad_images=skip).", path, found)
    keep = np.ones(len(files), bool)
    keep[bad] = False
    record = {"checked_images": len(files), "skipped_images": int(len(bad)),
              "skipped_files": [paths[i] for i in bad[:image_check.LISTED]]}
    return [f for f, k in zip(files, keep) if k], record


def _absent_classes(path, classes, labels_all, parts):
    """{split: [class names with no example in it]} for the splits some class is missing from, each warned."""
    absent = {}
    for split, indices in parts.items():
        missing = sorted(set(range(len(classes))) - set(labels_all[indices].tolist()))
        if missing and len(indices):
            absent[split] = [classes[m] for m in missing]
            sizes = ", ".join(f"'{classes[m]}' ({int(np.sum(labels_all == m))} images)" for m in missing)
            logging.warning("[fitnets] folder:%s: class(es) %s have no image in the %s split (%d images for %d "
                            "classes); its %s figures leave them out. More images per class (or a larger split) "
                            "give every class a place in it.", path, sizes, split, len(indices), len(classes), split)
    return absent


def folder_splits(info, validation_size, seed, count_fn, splits_cls, test_fraction=TEST_FRACTION,
                  bad_images="stop", log=logging.info):
    """`Splits` of a folder (see the module docstring). `count_fn` is `sources.validation_count`; `bad_images`:
    "stop" (FolderError naming the unreadable files) or "skip" (leave them out, counted in `Splits.checks`)."""
    path = info.name[len(PREFIX):]
    classes, files = _listing(path)
    files, record = _checked_files(path, files, info.image_shape[-1], bad_images, log)
    labels_all = np.array([label for _, label in files])
    empty = [classes[c] for c in range(len(classes)) if not np.any(labels_all == c)]
    if empty:
        raise FolderError(f"folder:{path}: every image of class subfolder(s) {', '.join(map(repr, empty))} is "
                          "unreadable, so the class has no example. Replace the images or remove the subfolder.")
    num_test = max(1, math.ceil(test_fraction * len(files)))
    test, rest = _split(np.arange(len(files)), labels_all, num_test, seed)
    count = count_fn(validation_size, len(rest))
    validation, train = _split(rest, labels_all, count, seed + 1) if count else (rest[:0], rest)
    parts = {"test": test, "validation": validation, "train": train}
    absent = _absent_classes(path, classes, labels_all, parts)
    if absent:
        record["classes_absent_from"] = absent
    everything = ImageFileReader([p for p, _ in files], labels_all, info.image_shape)
    return splits_cls.from_readers(info, everything.subset(parts["train"]),
                                   everything.subset(parts["validation"]) if count else None,
                                   everything.subset(parts["test"]), checks=record)


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
