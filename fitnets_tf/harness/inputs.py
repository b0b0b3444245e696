"""The data of one run: its splits, the preprocessing fitted on train (saved beside the run), and the input
pipelines of every stage.

`load_splits` reads the data and writes nothing (absent data fails before a run touches its model_dir);
`build_inputs` fits (or restores) the preprocessing and builds the batched datasets.
"""

import dataclasses
import os
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from fitnets_tf import data as data_lib
from fitnets_tf.data.caching import MB
from fitnets_tf.errors import ConfigError
from fitnets_tf.harness.config import training_augmentation

CACHE_DIR = "cache"  # <model_dir>/cache: on-disk caches (input images, teacher outputs), removed when a run ends
GCN_ZCA_FIT_IMAGES = 50000  # GCN + ZCA statistics come from the first 50,000 training images (all of CIFAR's)


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The preprocessed, batched data of a run, streamed from disk in bounded memory.

    `make_train(start_epoch=0, with_index=False)` returns a new training stream per stage (augmented, shuffled
    with the run's seed and the epoch; endless and cut into epochs of `steps_per_epoch` batches when the train
    split's size is known), starting at `start_epoch` without reading the epochs before it, so that a resumed
    stage continues the same stream. `train_ordered` is the train split unaugmented and in order: the input of
    the teacher-output cache, whose rows the indexed stream (`with_index=True`) finds.

    `input_cache` records where the decoded training images are kept between epochs, `augmentation` what the
    training images go through."""

    preprocessor: data_lib.Preprocessor
    make_train: Callable[..., tf.data.Dataset]
    train_ordered: tf.data.Dataset
    validation: Optional[tf.data.Dataset]
    test: tf.data.Dataset
    steps_per_epoch: Optional[int]
    cache_teacher: bool
    num_train: Optional[int] = None
    augmentation: Optional[data_lib.Augmentation] = None
    input_cache: Optional[data_lib.Placement] = None


def load_splits(config):
    """The run's `data_lib.Splits`, the train split cut to `train_size` images if asked. Raises DataNotFoundError
    for absent data, ConfigError for a validation split the data cannot give."""
    c = config
    try:
        splits = data_lib.load_splits(c.dataset, data_dir=c.data_dir, download=c.download,
                                      validation_size=c.validation_size, use_extra=c.use_extra, seed=c.seed,
                                      image_size=c.image_size, channels=c.channels, bad_images=c.bad_images)
    except data_lib.FolderError as error:  # unreadable files, a class with no readable image
        raise ConfigError(f"`dataset`: {error}") from None
    except ValueError as error:  # a validation split the data cannot give
        raise ConfigError(f"`validation_size`: {error}") from None
    available = splits.num_examples.get("train")
    if c.train_size is not None and (available is None or c.train_size < available):
        readers = dict(splits.readers)
        if "train" in readers:
            readers["train"] = readers["train"].subset(range(c.train_size))
        splits = dataclasses.replace(splits, train=splits.train.take(c.train_size), readers=readers,
                                     num_examples={**splits.num_examples, "train": c.train_size if available else None})
    return splits


def _preprocessor(config, info, splits, path):
    """The preprocessing saved at `path`, else fitted on the train split and saved there."""
    if os.path.exists(path):
        return data_lib.Preprocessor.load(path)
    kind = config.preprocessing or info.preprocessing
    images = None
    if kind == "gcn_zca":
        images = data_lib.images_to_numpy(splits.train, limit=GCN_ZCA_FIT_IMAGES)
    try:
        preprocessor = data_lib.Preprocessor.fit(kind, images)
    except ValueError as error:
        raise ConfigError(f"`preprocessing`: {error}") from None
    preprocessor.save(path)
    return preprocessor


def cache_path(config, name):
    """Where a run keeps an on-disk cache: <model_dir>/cache/<name>."""
    return os.path.join(config.model_dir, CACHE_DIR, name)


def _input_cache(config, splits):
    """The train split's source for the stream: its reader (or stream), or an `ArrayReader` over its decoded
    uint8 images kept in memory or on disk (`input_cache`, under `memory_budget_mb`), with the decision."""
    c = config
    source = splits.source("train")
    num_train = splits.num_examples.get("train")
    reader = source if isinstance(source, data_lib.ExampleReader) else None
    if num_train is None:
        return source, data_lib.Placement("none", 0, "the train split's size is unknown")
    if reader is not None and not reader.decodes:
        return source, data_lib.Placement("none", 0, "the images are arrays in memory already")
    image_bytes = int(np.prod(splits.info.image_shape))
    decodes = True
    placement = data_lib.choose_place(c.input_cache, num_train * image_bytes, c.memory_budget_mb * MB,
                                      cache_path(c, "train_images.u8"), decodes=decodes)
    if placement.place == "none":
        logging.info("[fitnets] input cache: none (%s): the %d training images are read%s every epoch",
                     placement.reason, num_train, " and decoded" if decodes else "")
        return source, placement
    logging.info("[fitnets] input cache: %s%s, %s of uint8 images (%s); filling it with one pass over the %d "
                 "training images", placement.place, f" at {placement.path}" if placement.place == "disk" else "",
                 data_lib.caching.megabytes(placement.nbytes), placement.reason, num_train)
    cached = data_lib.cache_examples(source, placement, num_train, splits.info.image_shape)
    return cached, placement


def build_inputs(config, info, splits, preprocessing_path, strategy=None):
    """The `Inputs` of a run on `splits` (data described by `info`); the preprocessing is kept at
    `preprocessing_path`. Raises ConfigError when the batch is larger than the train split.

    Under a strategy with several replicas the training stream is built per input pipeline
    (`strategy.distribute_datasets_from_function`): each worker of a multi-worker run shuffles the same order,
    then reads and decodes only its own shard of the examples, in per-replica batches."""
    c = config
    num_train = splits.num_examples.get("train")
    if num_train is not None and num_train < c.batch_size:
        raise ConfigError(f"`batch_size`: {c.batch_size} is larger than the {num_train} training examples.")
    preprocessor = _preprocessor(c, info, splits, preprocessing_path)
    augmentation = training_augmentation(c, info)
    train_source, placement = _input_cache(c, splits)
    train_ordered = data_lib.build_input(train_source, c.batch_size, False, preprocessor)
    # An endless stream cut into epochs: Keras does not stall at epoch ends (TF-NOTES).
    steps_per_epoch = None if num_train is None else num_train // c.batch_size
    shuffle_bytes = c.shuffle_buffer_mb * MB

    def make_train(start_epoch=0, with_index=False, transform=None):
        """The training stream from `start_epoch`; `transform(batches)` is applied per input pipeline (e.g. the
        teacher-output cache's `attach`)."""
        def input_fn(input_context=None):
            ds = data_lib.build_input(train_source, c.batch_size, True, preprocessor, augmentation=augmentation,
                                      seed=c.seed, repeat=steps_per_epoch is not None, start_epoch=start_epoch,
                                      with_index=with_index, shuffle_buffer_bytes=shuffle_bytes,
                                      input_context=input_context)
            return ds if transform is None else transform(ds)

        if strategy is not None and strategy.num_replicas_in_sync > 1:
            return strategy.distribute_datasets_from_function(input_fn)
        return input_fn()

    def evaluation(split):
        return data_lib.build_input(splits.source(split), c.batch_size, False, preprocessor)

    return Inputs(
        preprocessor=preprocessor, make_train=make_train, train_ordered=train_ordered,
        validation=None if splits.validation is None else evaluation("validation"),
        test=evaluation("test"),
        steps_per_epoch=steps_per_epoch,
        cache_teacher=c.cache_teacher_outputs == "true" or (c.cache_teacher_outputs == "auto"
                                                            and not augmentation.active),
        num_train=num_train, augmentation=augmentation, input_cache=placement,
    )
