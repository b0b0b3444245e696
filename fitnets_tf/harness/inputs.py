"""The data of one run: its splits, the preprocessing fitted on train (saved beside the run), and the input
pipelines of every stage.

`load_splits` reads the data and writes nothing (absent data fails before a run touches its model_dir);
`build_inputs` fits (or restores) the preprocessing and builds the batched datasets.
"""

import dataclasses
import os
from typing import Callable, Optional

import tensorflow as tf

from fitnets_tf import data as data_lib
from fitnets_tf.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The preprocessed, batched data of a run.

    `make_train()` returns a new training stream per stage (augmented, shuffled with the run's seed; endless and
    cut into epochs of `steps_per_epoch` batches when the train split's size is known), so that every stage sees
    the same seeded stream in a fresh process and in a long one alike, and a resumed stage skips exactly the
    batches it already trained on. `train_ordered` is the train split unaugmented and in order: the input of the
    teacher-output cache, used when `cache_teacher` is on."""

    preprocessor: data_lib.Preprocessor
    make_train: Callable[[], tf.data.Dataset]
    train_ordered: tf.data.Dataset
    validation: Optional[tf.data.Dataset]
    test: tf.data.Dataset
    steps_per_epoch: Optional[int]
    cache_teacher: bool


def load_splits(config):
    """The run's `data_lib.Splits`, the train split cut to `train_size` images if asked. Raises DataNotFoundError
    for absent data, ConfigError for a validation split the data cannot give."""
    c = config
    try:
        splits = data_lib.load_splits(c.dataset, data_dir=c.data_dir, download=c.download,
                                      validation_size=c.validation_size, use_extra=c.use_extra, seed=c.seed,
                                      image_size=c.image_size)
    except ValueError as error:  # a validation split the data cannot give
        raise ConfigError(f"`validation_size`: {error}") from None
    available = splits.num_examples.get("train")
    if c.train_size is not None and (available is None or c.train_size < available):
        splits = dataclasses.replace(splits, train=splits.train.take(c.train_size),
                                     num_examples={**splits.num_examples, "train": c.train_size if available else None})
    return splits


def _preprocessor(config, info, splits, path):
    """The preprocessing saved at `path`, else fitted on the train split and saved there."""
    if os.path.exists(path):
        return data_lib.Preprocessor.load(path)
    kind = config.preprocessing or info.preprocessing
    preprocessor = data_lib.Preprocessor.fit(kind, data_lib.images_to_numpy(splits.train) if kind != "scale" else None)
    preprocessor.save(path)
    return preprocessor


def build_inputs(config, info, splits, preprocessing_path):
    """The `Inputs` of a run on `splits` (data described by `info`); the preprocessing is kept at
    `preprocessing_path`. Raises ConfigError when the batch is larger than the train split."""
    c = config
    preprocessor = _preprocessor(c, info, splits, preprocessing_path)
    crop = info.crop_padding if c.crop_padding is None else c.crop_padding
    flip = info.allow_flip if c.flip is None else c.flip
    if not c.augment:
        crop, flip = 0, False
    augmented = bool(crop or flip)
    train_ordered = data_lib.build_input(splits.train, c.batch_size, False, preprocessor)
    num_train = splits.num_examples.get("train")
    if num_train is not None and num_train < c.batch_size:
        raise ConfigError(f"`batch_size`: {c.batch_size} is larger than the {num_train} training examples.")
    # An endless stream cut into epochs: Keras does not stall at epoch ends (TF-NOTES).
    steps_per_epoch = None if num_train is None else num_train // c.batch_size

    def make_train():
        return data_lib.build_input(splits.train, c.batch_size, True, preprocessor, crop_padding=crop, flip=flip,
                                    seed=c.seed, repeat=steps_per_epoch is not None)

    return Inputs(
        preprocessor=preprocessor, make_train=make_train, train_ordered=train_ordered,
        validation=None if splits.validation is None else data_lib.build_input(
            splits.validation, c.batch_size, False, preprocessor),
        test=data_lib.build_input(splits.test, c.batch_size, False, preprocessor),
        steps_per_epoch=steps_per_epoch,
        cache_teacher=c.cache_teacher_outputs == "true" or (c.cache_teacher_outputs == "auto" and not augmented),
    )
