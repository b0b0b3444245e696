"""The training input pipeline (`build_input`), measured alone, before the steps."""

import time

import numpy as np
import tensorflow as tf

from benchmarking.config import BenchmarkConfig
from fitnets_tf.data import Preprocessor, build_input, dataset_info, load_splits
from fitnets_tf.harness.timing import Candidate, time_interleaved


def source_dataset(config: BenchmarkConfig, image_shape, num_classes):
    """Unbatched (uint8 image, int64 label) data: synthetic random images, or the digits' train split.

    Returns (dataset, number of examples, default crop padding, default flip).
    """
    if config.data == "digits":
        info = dataset_info("digits")
        if tuple(image_shape) != tuple(info.image_shape):
            raise ValueError(
                f"data='digits' gives {info.image_shape} images, but the networks take {tuple(image_shape)}. "
                "Use data='synthetic' or digits-sized networks (digits_teacher, digits_fitnet)."
            )
        splits = load_splits("digits", validation_size=0, seed=config.seed)
        return splits.train, splits.num_examples["train"], info.crop_padding, info.allow_flip
    rng = np.random.default_rng(config.seed)
    images = rng.integers(0, 256, (config.pipeline_examples, *image_shape), dtype=np.uint8)
    labels = rng.integers(0, num_classes, (config.pipeline_examples,), dtype=np.int64)
    cifar = dataset_info("cifar10")
    augment = tuple(image_shape) == tuple(cifar.image_shape)
    crop, flip = (cifar.crop_padding, cifar.allow_flip) if augment else (0, False)
    return tf.data.Dataset.from_tensor_slices((images, labels)), config.pipeline_examples, crop, flip


def build_pipeline(config: BenchmarkConfig, image_shape, num_classes):
    """The training input pipeline (`build_input`, repeated) and how it was made."""
    ds, num_examples, crop, flip = source_dataset(config, image_shape, num_classes)
    crop = crop if config.crop_padding is None else config.crop_padding
    flip = flip if config.flip is None else config.flip
    if config.preprocessing == "scale":
        preprocessor = Preprocessor("scale")
    else:
        images = np.concatenate([b for b, _ in ds.batch(4096).as_numpy_iterator()])
        preprocessor = Preprocessor.fit(config.preprocessing, images)
    dataset = build_input(ds, config.batch_size, True, preprocessor, crop_padding=crop, flip=flip,
                          seed=config.seed, repeat=True)
    info = {"data": config.data, "examples": num_examples, "preprocessing": config.preprocessing,
            "crop_padding": crop, "flip": flip, "batch_size": config.batch_size}
    return dataset, info


def measure_pipeline(dataset, num_examples, batch_size, batches_per_sample, rounds, warmup):
    """Images/s of iterating `dataset` alone; returns (result dict, the first batch after the measurement).

    The first epoch (preprocessing + cache fill + shuffle-buffer fill) is timed once, as `first_epoch_s` /
    `first_epoch_images_per_second`. After it the cache holds the preprocessed examples and every epoch only
    shuffles, augments and batches: that steady state is `images_per_second`, the median of `rounds` back-to-back
    samples of `batches_per_sample` batches, after `warmup` samples.

    Not interleaved with the steps, on purpose: a prefetching pipeline keeps producing while other candidates run,
    so a sample taken after them reads its full buffers (interleaved, this measured 840,000 images/s here instead
    of the producer's rate). Back to back, the consumer is far faster than the producer and the buffers stay empty.
    """
    iterator = iter(dataset)
    epoch_batches = max(1, num_examples // batch_size)
    start = time.perf_counter()
    for _ in range(epoch_batches):
        next(iterator)
    first_epoch_s = time.perf_counter() - start

    def run():
        for _ in range(batches_per_sample):
            next(iterator)

    candidate = Candidate("input_pipeline", run, batch_size * batches_per_sample,
                          info={"step": "input_pipeline", "kind": "input_pipeline", "xla": None,
                                "batches_per_sample": batches_per_sample})
    result = time_interleaved([candidate], rounds, warmup)["input_pipeline"]
    result.update(first_epoch_s=first_epoch_s,
                  first_epoch_images_per_second=epoch_batches * batch_size / first_epoch_s)
    return result, next(iterator)

