"""Every data set by name (`dataset_info`): the built-in ones, any TFDS image-classification data set by name, and
`folder:PATH`.

A TFDS data set qualifies when its builder has an `image` feature and a `label` class feature (its supervised
keys); its image shape and classes come from the builder's info (no data needed). Images of another size, or of
no fixed size, are resized with `image_size` (bilinear, to image_size x image_size). The defaults are the
conservative ones: "scale" preprocessing, no crops, no flips (a flip may change a label).
"""

import dataclasses

import tensorflow as tf

from fitnets_tf.data import folder
from fitnets_tf.data.dataset_info import BUILT_IN_INFOS, CHANNELS, DATASETS, DatasetInfo


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
                       preprocessing="scale", class_names=tuple(getattr(label, "names", None) or ()))


def other_info(name, image_size=None, channels=None):
    """The `DatasetInfo` of `folder:PATH` or of a TFDS data set (with `image_size` and `channels` applied)."""
    if folder.is_folder(name):
        return folder.folder_info(name, image_size, channels)
    info = tfds_info(name)
    return with_channels(with_image_size(info, image_size), channels)


def with_channels(info, channels):
    """`info` with its images converted to `channels` (1: grey, 3: RGB; None: unchanged)."""
    if channels is None or info.image_shape[-1] == channels:
        return info
    if info.image_shape[-1] not in (1, 3):
        raise ValueError(f"data set {info.name!r} has {info.image_shape[-1]} channels; only 1 (grey) and 3 (RGB) "
                         "images can be converted.")
    return dataclasses.replace(info, image_shape=(*info.image_shape[:2], int(channels)))


def convert_channels(images, channels):
    """uint8 images [..., H, W, C] with C in (1, 3) as `channels` (grey repeated into RGB, or RGB to grey with
    ITU-R 601 weights, rounded as `tf.image.rgb_to_grayscale` does); unchanged when they already have it."""
    depth = images.shape[-1]
    if channels is None or depth == channels:
        return images
    if channels == 3:
        return tf.repeat(images, 3, axis=-1)
    grey = tf.image.rgb_to_grayscale(tf.cast(images, tf.float32))
    return tf.cast(tf.clip_by_value(tf.round(grey), 0, 255), tf.uint8)


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


def dataset_info(name, image_size=None, channels=None):
    """Returns the `DatasetInfo` of `name` (a built-in name, any TFDS image-classification data set, or
    "folder:PATH"; see `catalog`), with images resized to `image_size` and converted to `channels` (1 or 3) when
    given; raises ValueError naming the choices for an unknown name."""
    if channels is not None and channels not in CHANNELS:
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB). Received: channels={channels!r}")
    if isinstance(name, str) and name in BUILT_IN_INFOS:
        return with_channels(with_image_size(BUILT_IN_INFOS[name], image_size), channels)
    try:
        return other_info(name, image_size, channels)
    except folder.FolderError:
        raise  # a folder named as one: its own message says what is wrong with it
    except ValueError as error:
        raise ValueError(f"Unknown dataset {name!r}. Choose one of: {', '.join(DATASETS)}, any TFDS "
                         f"image-classification data set by name, or folder:PATH ({error}).") from None
