"""Train / validation / test splits of every supported dataset, as unbatched (uint8 image, int64 label) datasets.

TFDS datasets are read from a local `data_dir` with `download=False` first, because offline that fails in well under
a second, while `download=True` spends minutes in retries. Validation images are always carved from the END of the
train split (as the paper's pylearn2 runs did: CIFAR-10 train[40000:50000], MNIST train[50000:60000]), so the test
split is never touched before the final evaluation.
"""

import dataclasses
import math
import os

import numpy as np
import tensorflow as tf

from fitnets_tf.data import catalog, folder, readers
from fitnets_tf.data.catalog import dataset_info
from fitnets_tf.data.dataset_info import DatasetInfo
from fitnets_tf.data.digits import DIGITS_TEST_FRACTION, digits_arrays, split_digits
from fitnets_tf.data.idx import DEBIAN_FASHION_MNIST_DIR, idx_directory, load_idx_split


class DataNotFoundError(FileNotFoundError):
    """A TFDS dataset is not prepared in the data directory and downloading was not allowed."""


@dataclasses.dataclass(frozen=True)
class Splits:
    """The three splits of one dataset.

    Attributes:
        train, validation, test: unbatched `tf.data.Dataset`s of (image uint8 [H, W, C], label int64 []) in a
            fixed order; `validation` is None when no validation split was asked for.
        info: the dataset's `DatasetInfo`.
        num_examples: {"train", "validation", "test"} -> number of examples, or None when unknown
            (0 for an absent validation split).
        readers: {"train", "validation", "test"} -> the split's `readers.ExampleReader` when its examples can be
            read by index (folders, arrays), else absent (TFDS streams). A reader is what `build_input` shuffles
            whole and shards before reading; the datasets above read through it.
        checks: what the checks of the data found, for results.json (a folder: images checked and skipped,
            classes absent from a split); empty when nothing was checked.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    test: tf.data.Dataset
    info: DatasetInfo
    num_examples: dict
    readers: dict = dataclasses.field(default_factory=dict)
    checks: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_readers(cls, info, train, validation, test, checks=None):
        """Splits over `ExampleReader`s (validation may be None)."""
        parts = {"train": train, "validation": validation, "test": test}
        return cls(train=train.dataset(), validation=None if validation is None else validation.dataset(),
                   test=test.dataset(), info=info,
                   num_examples={k: 0 if r is None else r.num_examples for k, r in parts.items()},
                   readers={k: r for k, r in parts.items() if r is not None}, checks=dict(checks or {}))

    def source(self, split):
        """What `build_input` should read for `split`: its reader when it has one, else its dataset."""
        return self.readers.get(split) or getattr(self, split)


def validation_count(validation_size, num_train):
    """How many training examples go to validation: an int count, or None if only a fraction is known.

    `validation_size` is a fraction in [0, 1) of the `num_train` training examples (rounded up, like
    scikit-learn), or a count >= 0: an int, or a whole float >= 1 (so a float command-line flag can say 10000).
    When `num_train` is None (unknown), a fraction gives None.
    """
    if isinstance(validation_size, (bool, np.bool_)) or not isinstance(validation_size, (int, float, np.number)):
        raise ValueError(
            "validation_size must be a fraction in [0, 1) or a whole-number count >= 0. "
            f"Received: validation_size={validation_size!r}"
        )
    if isinstance(validation_size, (float, np.floating)) and validation_size >= 1 and validation_size.is_integer():
        validation_size = int(validation_size)
    if isinstance(validation_size, (int, np.integer)):
        count = int(validation_size)
        if count < 0 or (num_train is not None and count >= num_train):
            limit = "" if num_train is None else f" and < {num_train} (the training examples)"
            raise ValueError(f"validation_size as a count must be >= 0{limit}. Received: validation_size={count}")
        return count
    if not 0.0 <= validation_size < 1.0:
        raise ValueError(
            "validation_size as a fraction must be in [0, 1); pass a whole number for a count. "
            f"Received: validation_size={validation_size!r}"
        )
    if validation_size == 0.0:
        return 0
    if num_train is None:
        return None
    return min(math.ceil(validation_size * num_train), num_train - 1)


def load_splits(name, data_dir=None, download=False, validation_size=0.1, use_extra=False, seed=0, image_size=None,
                channels=None, bad_images="stop"):
    """Loads `name` as `Splits` of unbatched (image uint8 [H, W, C], label int64) datasets in a fixed order.

    Args:
        name: one of `DATASETS`, any TFDS image-classification data set, or "folder:PATH" (see `catalog`).
        data_dir: TFDS data directory (None: TFDS's default, `$TFDS_DATA_DIR` or ~/tensorflow_datasets).
            Ignored for "digits".
        download: let TFDS download and prepare a missing dataset (needs internet). When False, a missing dataset
            raises `DataNotFoundError` at once.
        validation_size: fraction in [0, 1) of the training examples, or a count (int or whole float), held out
            for validation from the END of the train split (for digits: a stratified sample of the non-test
            images); 0 for none.
        use_extra: svhn_cropped only: append the 531,131-image `extra` split to train (the paper's SVHN setting;
            the validation examples still come from `train` only).
        seed: seed of the stratified digits split and of a folder's split. TFDS splits are fixed and ignore it.
        image_size: resize every image to image_size x image_size (bilinear); None keeps the data set's size.
        channels: 1 (grey) or 3 (RGB): convert every image (grey repeated into RGB; RGB to grey with ITU-R 601
            weights); None keeps the data's own.
        bad_images: folders only: "stop" (a `folder.FolderError` naming the files that cannot be decoded) or
            "skip" (leave them out; the count is in `Splits.checks`).

    Returns:
        `Splits`. For TFDS datasets `num_examples` comes from the datasets' cardinality (under
        `tfds.testing.mock_data` that is the mock's example count, since the mock ignores slicing).
    """
    info = dataset_info(name, image_size, channels)
    if use_extra and not info.has_extra:
        raise ValueError(
            f"use_extra=True needs a dataset with an 'extra' split (svhn_cropped); got {name!r}. "
            "Drop use_extra, or load svhn_cropped."
        )
    validation_count(validation_size, None)  # Refuse a bad value before any loading.
    if folder.is_folder(name):
        return folder.folder_splits(info, validation_size, seed, validation_count, Splits, bad_images=bad_images)
    if name == "digits":
        splits = _digits_splits(info, validation_size, seed)
    elif name == "fashion_mnist":
        splits = _fashion_mnist_splits(info, data_dir, download, validation_size)
    else:
        splits = _tfds_splits(info, data_dir, download, validation_size, use_extra)
    return _converted(splits, info)


def _converted(splits, info):
    """`splits` with images resized and converted to `info.image_shape` where they differ."""
    height, width, depth = info.image_shape

    def convert(images):
        images = catalog.convert_channels(images, depth)
        return images if tuple(images.shape[-3:-1]) == (height, width) else readers.resize_uint8(images, height,
                                                                                                    width)

    if splits.readers:
        parts = {k: r if r is None or r.image_shape == tuple(info.image_shape) else
                 r.with_transform(convert, info.image_shape)
                 for k, r in ((k, splits.readers.get(k)) for k in ("train", "validation", "test"))}
        return Splits.from_readers(info, parts["train"], parts["validation"], parts["test"])
    if tuple(splits.train.element_spec[0].shape) == tuple(info.image_shape):
        return dataclasses.replace(splits, info=info)
    train, validation, test = (None if ds is None else ds.map(
        lambda image, label: (tf.ensure_shape(convert(image), info.image_shape), label),
        num_parallel_calls=tf.data.AUTOTUNE) for ds in (splits.train, splits.validation, splits.test))
    return dataclasses.replace(splits, train=train, validation=validation, test=test, info=info)


def _digits_splits(info, validation_size, seed):
    num_total = len(digits_arrays()[1])
    num_rest = num_total - math.ceil(num_total * DIGITS_TEST_FRACTION)
    count = validation_count(validation_size, num_rest)
    parts = [None if p is None else readers.ArrayReader(*p) for p in split_digits(count, seed=seed)]
    return Splits.from_readers(info, *parts)


def _array_splits(info, train, test, validation_size):
    """Splits from in-memory (images, labels) arrays; validation from the END of train, as for TFDS."""
    images, labels = train
    count = validation_count(validation_size, len(labels))
    cut = len(labels) - count
    train_reader = readers.ArrayReader(images, labels)
    return Splits.from_readers(info, train_reader.subset(range(cut)),
                               train_reader.subset(range(cut, len(labels))) if count else None,
                               readers.ArrayReader(*test))


def _fashion_mnist_splits(info, data_dir, download, validation_size):
    """Fashion-MNIST from its IDX files when they are at hand, else from TFDS.

    Order: IDX files in `data_dir`; a TFDS-prepared `fashion_mnist` (in `data_dir` or TFDS's default); IDX files
    of Debian's `dataset-fashion-mnist` package (`DEBIAN_FASHION_MNIST_DIR`); a TFDS download when `download`.
    Both sources hold the same 60,000 + 10,000 images in the same order.
    """
    if idx_directory(data_dir):
        source = data_dir
    else:
        try:
            return _tfds_splits(info, data_dir, False, validation_size, False)
        except DataNotFoundError as error:
            if idx_directory(DEBIAN_FASHION_MNIST_DIR):
                source = DEBIAN_FASHION_MNIST_DIR
            elif download:
                return _tfds_splits(info, data_dir, True, validation_size, False)
            else:
                raise DataNotFoundError(
                    "Fashion-MNIST was not found: no IDX files (train-images-idx3-ubyte[.gz] and the three others) "
                    f"in {data_dir or DEBIAN_FASHION_MNIST_DIR!r}, and no TFDS-prepared 'fashion_mnist'. Either "
                    "install them offline with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, as root; "
                    f"files land in {DEBIAN_FASHION_MNIST_DIR}) or set `data_dir` to a directory holding the four "
                    "IDX files; or set `download` to let TFDS fetch it (needs internet)."
                ) from error
    return _array_splits(info, load_idx_split(source, "train"), load_idx_split(source, "test"), validation_size)


def _tfds_load(name, split, data_dir, download, with_info=False):
    import tensorflow_datasets as tfds  # Imported here: digits-only runs need not pay for it.

    return tfds.load(
        name,
        split=split,
        data_dir=data_dir,
        as_supervised=True,
        shuffle_files=False,
        download=download,
        with_info=with_info,
    )


def _not_found_message(name, data_dir, error):
    if data_dir is None:
        searched = os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
        searched = f"TFDS's default data directory ({searched}; set by $TFDS_DATA_DIR)"
    else:
        searched = f"data_dir {data_dir!r}"
    return (
        f"Dataset {name!r} is not prepared in {searched}, and download=False. To fix it, either run "
        f"`TFDS_DATA_DIR=DIR tfds build {name}` on a machine with internet, copy DIR here and set `data_dir` to "
        f"it; or set `download` to let TFDS fetch it now (needs internet). TFDS said: {error}"
    )


def _cardinality(ds):
    count = int(ds.cardinality())
    return count if count >= 0 else None


def _tfds_splits(info, data_dir, download, validation_size, use_extra):
    name = info.name
    try:
        test, tfds_info = _tfds_load(name, "test", data_dir, download, with_info=True)
    except AssertionError as error:  # TFDS's "could not find data in <dir>" when download=False.
        if download:
            raise
        raise DataNotFoundError(_not_found_message(name, data_dir, error)) from error

    splits = tfds_info.splits
    num_train = splits["train"].num_examples if "train" in splits else None  # Unknown under tfds mock_data.
    count = validation_count(validation_size, num_train)
    if count == 0:
        train_split, validation_split = "train", None
    elif count is None:  # Fraction of an unknown count: whole percents.
        percent = min(99, max(1, round(validation_size * 100)))
        train_split, validation_split = f"train[:{100 - percent}%]", f"train[{100 - percent}%:]"
    else:
        train_split, validation_split = f"train[:-{count}]", f"train[-{count}:]"

    train = _tfds_load(name, train_split, data_dir, download=False)
    validation = None if validation_split is None else _tfds_load(name, validation_split, data_dir, download=False)
    if use_extra:
        train = train.concatenate(_tfds_load(name, "extra", data_dir, download=False))
    num_examples = {
        "train": _cardinality(train),
        "validation": 0 if validation is None else _cardinality(validation),
        "test": _cardinality(test),
    }
    return Splits(train=train, validation=validation, test=test, info=info, num_examples=num_examples)
