"""Batched, preprocessed, (for training) shuffled and augmented input datasets, streamed in bounded memory.

Nothing here holds the data set: images are read (decoded) on the fly, in parallel and prefetched; the only
per-example state is one int64 index per example for a reader's shuffle, and a shuffle buffer sized in bytes for a
stream. Caching decoded images is a separate, explicit step (`readers.cache_examples`, under a memory budget).
"""

import numbers

import tensorflow as tf

from fitnets_tf.data.augment import Augmentation, augment, random_resized_crop
from fitnets_tf.data.readers import ExampleReader

DEFAULT_SHUFFLE_BUFFER_BYTES = 256 * 2 ** 20
_EPOCH_SEED_MIX = 1_000_003


def build_input(
    source,
    global_batch_size,
    training,
    preprocessor,
    crop_padding=0,
    flip=False,
    seed=0,
    input_context=None,
    repeat=False,
    drop_remainder=None,
    shuffle_buffer_bytes=DEFAULT_SHUFFLE_BUFFER_BYTES,
    augmentation=None,
    with_index=False,
    start_epoch=0,
):
    """Turns examples into batches of (float32 images [b, H, W, C], int64 labels [b]).

    Per epoch: [shard] -> [training: shuffle] -> read (decode) -> [training: uint8 augmentation
    (random_resized_crop)] -> batch -> preprocess -> [training: augmentation of the preprocessed images (pad_crop,
    flip)] -> prefetch. Each epoch's order and augmentation are drawn from (`seed`, epoch, example index), so a
    stream restarted at `start_epoch` continues the same stream without reading the epochs before it, and every
    example is augmented the same way whichever worker or position reads it.

    Args:
        source: an `ExampleReader` (shuffled whole each epoch by index, sharded before reading: each input
            pipeline reads only its own examples), or an unbatched dataset of (image uint8 [H, W, C], integer
            label) (a stream: sharded, then shuffled within consecutive windows of `shuffle_buffer_bytes`).
        global_batch_size: examples per step over all replicas.
        training: shuffle and augment (True) or keep order and images as they are (False).
        preprocessor: callable mapping uint8 [B, H, W, C] -> float32 [B, H, W, C] (a `Preprocessor`).
        crop_padding, flip: the augmentation when `augmentation` is None: pad_crop with `crop_padding` (0: none)
            and random mirrors.
        seed: seeds the shuffles and the augmentation.
        input_context: `tf.distribute.InputContext`: the examples are sharded by `input_pipeline_id` and batched
            by the per-replica batch size.
        repeat: an endless stream of epochs (pass `steps_per_epoch` to Keras), starting at `start_epoch`. Else one
            pass; a training dataset iterated again draws a new epoch (new order and augmentation).
        drop_remainder: drop each epoch's last partial batch; None means `training`.
        shuffle_buffer_bytes: a stream's shuffle window, in bytes of uint8 images (at least 1 example): each
            window of that many consecutive examples is permuted (stateless, from the seed, epoch and window), so
            memory holds one window (twice, while it is permuted) and a resumed epoch gets the same order. Unlike
            `Dataset.shuffle`, whose seed must be a Python int once a global seed is set, this takes the epoch as
            a tensor.
        augmentation: an `Augmentation` (training only); None: from `crop_padding` and `flip`.
        with_index: batches of (index [b], images, labels): the example's position in the source's order (the key
            of the teacher-output cache).

    Returns:
        A batched `tf.data.Dataset` with `autotune.enabled = False`: with autotuning on, Keras `fit` on a finite
        dataset stalled 3.5-3.9 s at about half of the epoch boundaries on this 2-core machine.
    """
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, numbers.Integral):
        raise ValueError(f"global_batch_size must be a positive int. Received: global_batch_size={global_batch_size!r}")
    if global_batch_size < 1:
        raise ValueError(f"global_batch_size must be a positive int. Received: global_batch_size={global_batch_size}")
    reader = source if isinstance(source, ExampleReader) else None
    if reader is None and (not isinstance(source.element_spec, tuple) or len(source.element_spec) != 2):
        raise ValueError(f"build_input expects an ExampleReader or unbatched (image, label) pairs. Received "
                         f"element_spec {source.element_spec}")
    if augmentation is None:
        augmentation = Augmentation("pad_crop" if crop_padding else "none", int(crop_padding or 0), bool(flip))
    if not training:
        augmentation = Augmentation("none")
    batch_size = int(global_batch_size)
    shards, shard = 1, 0
    if input_context is not None:
        # Raises ValueError itself when global_batch_size is not a multiple of num_replicas_in_sync.
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        shards, shard = input_context.num_input_pipelines, input_context.input_pipeline_id
    drop = training if drop_remainder is None else drop_remainder
    seed = int(seed)

    def preprocess(index, images, labels, example_seeds):
        images = preprocessor(images)
        if augmentation.kind == "pad_crop" or augmentation.flip:
            padding = augmentation.crop_padding if augmentation.kind == "pad_crop" else 0
            images = tf.map_fn(lambda args: augment(args[0], padding, augmentation.flip, seed=args[1]),
                               (images, example_seeds), fn_output_signature=images.dtype)
        return index, images, tf.cast(labels, tf.int64)

    def epoch(epoch_key):
        epoch_seed = tf.cast(seed, tf.int64) * _EPOCH_SEED_MIX + tf.cast(epoch_key, tf.int64)
        def in_windows(ds, element_bytes):
            """A stateless window shuffle: the same order for the same (seed, epoch) in any process."""
            window = max(1, int(shuffle_buffer_bytes) // max(1, element_bytes))

            def permute(k, examples):
                perm = tf.random.experimental.stateless_shuffle(
                    tf.range(tf.shape(examples[0])[0]), seed=tf.stack([epoch_seed, k]))
                return tuple(tf.gather(t, perm) for t in examples)

            return ds.map(lambda *e: e).batch(window).enumerate().map(permute).unbatch()

        if reader is not None:
            order = tf.range(reader.num_examples, dtype=tf.int64)
            if training and not reader.stream_order:
                order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([epoch_seed, 7]))
            indices = tf.data.Dataset.from_tensor_slices(order).shard(shards, shard)
            if training and reader.stream_order:  # a cached stream keeps the stream's order
                indices = in_windows(indices, reader.image_bytes).map(lambda index: index)
            ds = reader.read(indices)
        else:
            ds = source.enumerate().map(lambda index, example: (index, example[0], example[1]))
            ds = ds.shard(shards, shard)
            if training:
                ds = in_windows(ds, int(tf.TensorShape(source.element_spec[0].shape).num_elements() or 1))

        def with_seed(index, image, label):
            example_seed = tf.stack([epoch_seed, index])
            if augmentation.kind == "random_resized_crop":
                crop_seed = tf.random.experimental.stateless_fold_in(example_seed, 1)
                image = random_resized_crop(image, crop_seed, augmentation.area, augmentation.aspect)
            return index, image, label, tf.random.experimental.stateless_fold_in(example_seed, 2)

        ds = ds.map(with_seed, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size, drop_remainder=drop).map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)

    if repeat:
        ds = tf.data.Dataset.range(int(start_epoch), tf.int64.max).flat_map(epoch)
        ds = ds.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
    elif training:  # a new epoch key per iteration: a training dataset reshuffles when iterated again
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
        ds = keys.flat_map(lambda key: epoch(tf.math.floormod(key, 2 ** 31)))
    else:
        ds = epoch(tf.constant(int(start_epoch), tf.int64))
    size = reader.num_examples if reader is not None else int(source.cardinality())
    if not repeat and size >= 0:  # Keras uses the size for steps and progress bars
        per_shard = (size - shard + shards - 1) // shards
        ds = ds.apply(tf.data.experimental.assert_cardinality(
            per_shard // batch_size if drop else -(-per_shard // batch_size)))
    ds = ds.map(lambda index, images, labels: (index, images, labels) if with_index else (images, labels))
    ds = ds.prefetch(2)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return ds.with_options(options)


def make_input_fn(source, global_batch_size, training, preprocessor, **kwargs):
    """Returns `input_fn(input_context)` for `strategy.distribute_datasets_from_function`.

    `input_fn` calls `build_input(source, global_batch_size, training, preprocessor, input_context=input_context,
    **kwargs)`, so each input pipeline reads its own shard in per-replica batches.
    """

    def input_fn(input_context=None):
        return build_input(source, global_batch_size, training, preprocessor, input_context=input_context, **kwargs)

    return input_fn
