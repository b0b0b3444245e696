"""Data sets beyond the built-in ones: any TFDS image-classification data set by name, and `folder:PATH`.

A TFDS data set qualifies when its builder has an `image` feature and a `label` class feature (its supervised
keys); its image shape and classes come from the builder's info (no data needed). Images of another size, or of
no fixed size, are resized with `image_size` (bilinear, to image_size x image_size). The defaults are the
conservative ones: "scale" preprocessing, no crops, no flips (a flip may change a label).
"""

import dataclasses

import tensorflow as tf

from fitnets_tf.data import folder
from fitnets_tf.data.dataset_info import DatasetInfo


def tfds_info(name):
    """The `DatasetInfo` of a TFDS image-classification data set; ValueError when `name` is none."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name)
    except Exception as error:  # DatasetNotFoundError and friends
        raise ValueError(f"no TFDS data set {name!r} ({type(error).__name__})") from None
    features = builder.info.features
    image = features["image"] if "image" in features else None
    label = features["label"] if "label" in features else None
    if image is None or label is None or not hasattr(label, "num_classes") or len(image.shape) != 3:
        raise ValueError(f"TFDS data set {name!r} is not an image-classification data set: it needs an 'image' "
                         f"feature and a 'label' class feature. Its features: {', '.join(features)}")
    return DatasetInfo(name, tuple(image.shape), int(label.num_classes), allow_flip=False, crop_padding=0,
                       preprocessing="scale")


def other_info(name, image_size=None):
    """The `DatasetInfo` of `folder:PATH` or of a TFDS data set (with `image_size` applied)."""
    if folder.is_folder(name):
        return folder.folder_info(name, image_size)
    info = tfds_info(name)
    return with_image_size(info, image_size)


def with_image_size(info, image_size):
    """`info` with its images resized to image_size x image_size (None: unchanged; refused if they have no size)."""
    height, width, depth = info.image_shape
    if image_size:
        return dataclasses.replace(info, image_shape=(int(image_size), int(image_size), depth))
    if height is None or width is None:
        raise ValueError(f"data set {info.name!r} has images of no fixed size {info.image_shape}: set "
                         "`image_size` to resize them.")
    return info


def resize_split(ds, image_shape):
    """Resizes the uint8 images of an unbatched (image, label) dataset to `image_shape`'s height and width."""
    height, width, depth = image_shape

    def resize(image, label):
        if tuple(image.shape) == (height, width, depth):
            return image, label
        image = tf.image.resize(image, (height, width), method="bilinear")
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    return ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE)
