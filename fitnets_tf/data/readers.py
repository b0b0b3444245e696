"""Examples read by index: a split whose i-th (uint8 image, int64 label) can be read on its own, from a file or
from a row of an array in memory or on disk.

An input pipeline over a reader shuffles the whole split every epoch at the cost of one int64 per example (the
index), shards by index before any file is read (each worker of a multi-worker run reads and decodes only its own
examples), and holds no image of the data set beyond the batches in flight. A stream without a reader (a TFDS data
set) is shuffled in a buffer instead (`input_pipeline.build_input`).

Readers never put the data set into the graph: file paths (a small per-image index) are the only per-example
tensor; array rows are read by a NumPy function per batch of indices.
"""

import abc
import dataclasses

import numpy as np
import tensorflow as tf

READ_BATCH = 32  # indices per call of an array reader's NumPy function


class ExampleReader(abc.ABC):
    """Base: `num_examples` (image uint8 `image_shape`, label int64) examples read by index.

    Subclasses give `read_one(index)` (graph ops of one example) or `read_batch(indices)` (of a batch) and may
    be transformed (`with_transform`: resize, channels) and cut (`subset`)."""

    batched = False  # read_batch (True) or read_one (False)
    decodes = False  # reading an example costs a decode (files), not a copy (arrays)
    # shuffled like the stream it caches (in windows of consecutive examples) rather than whole, so that caching
    # a stream never changes a run's order
    stream_order = False

    def __init__(self, num_examples, image_shape, transforms=()):
        self.num_examples = int(num_examples)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.transforms = tuple(transforms)

    @property
    def image_bytes(self):
        """The bytes of one decoded uint8 image."""
        return int(np.prod(self.image_shape))

    def with_transform(self, function, image_shape):
        """A reader whose images go through `function` (uint8 [..., H, W, C] -> uint8 `image_shape`)."""
        out = self._copy()
        out.transforms = (*self.transforms, function)
        out.image_shape = tuple(int(d) for d in image_shape)
        return out

    @abc.abstractmethod
    def subset(self, indices):
        """A reader of the examples `indices` (in that order) of this one."""

    def _copy(self):
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        return out

    def _transformed(self, images):
        for function in self.transforms:
            images = function(images)
        return images

    def read(self, indices):
        """A dataset of (index, image, label) for a dataset of int64 `indices`, read in parallel, in order."""
        if self.batched:
            def read_batch(batch):
                images, labels = self.read_batch(batch)
                images = tf.ensure_shape(self._transformed(images), (None, *self.image_shape))
                return batch, images, labels

            return indices.batch(READ_BATCH).map(read_batch, num_parallel_calls=tf.data.AUTOTUNE).unbatch()

        def read_one(index):
            image, label = self.read_one(index)
            return index, tf.ensure_shape(self._transformed(image), self.image_shape), label

        return indices.map(read_one, num_parallel_calls=tf.data.AUTOTUNE)

    def dataset(self):
        """The examples in order, as an unbatched dataset of (image uint8 [H, W, C], label int64 [])."""
        indices = tf.data.Dataset.range(self.num_examples)
        out = self.read(indices).map(lambda index, image, label: (image, label))
        return out.apply(tf.data.experimental.assert_cardinality(self.num_examples))


class ArrayReader(ExampleReader):
    """Rows of arrays: `images` [N, H, W, C] uint8 and `labels` [N], each a NumPy array or an object with
    `take(indices)` and `shape` (a `caching.MemoryArray` or `caching.DiskArray`). `rows` maps this reader's
    indices to rows of the arrays (None: all, in order)."""

    batched = True

    def __init__(self, images, labels, rows=None, transforms=()):
        self.images, self.labels = images, np.asarray(labels, np.int64)
        self.rows = None if rows is None else np.asarray(rows, np.int64)
        self.source_shape = tuple(int(d) for d in images.shape[1:])
        super().__init__(len(self.labels) if self.rows is None else len(self.rows), images.shape[1:], transforms)

    def subset(self, indices):
        out = self._copy()
        indices = np.asarray(indices, np.int64)
        out.rows = indices if self.rows is None else self.rows[indices]
        out.num_examples = len(indices)
        return out

    def _take(self, indices):
        rows = indices if self.rows is None else self.rows[indices]
        images = self.images.take(rows, axis=0) if isinstance(self.images, np.ndarray) else self.images.take(rows)
        return images, self.labels[rows]

    def read_batch(self, indices):
        images, labels = tf.numpy_function(self._take, [indices], (tf.uint8, tf.int64), stateful=False)
        return tf.ensure_shape(images, (None, *self.source_shape)), tf.ensure_shape(labels, (None,))


class ImageFileReader(ExampleReader):
    """Image files (PNG, JPEG, GIF, BMP): `paths` [N] str and `labels` [N], decoded to `channels` and resized
    (bilinear) to `image_shape`'s height and width when they differ from it."""

    decodes = True

    def __init__(self, paths, labels, image_shape, transforms=()):
        self.paths = np.asarray(paths, object)
        self.labels = np.asarray(labels, np.int64)
        super().__init__(len(self.paths), image_shape, transforms)

    def subset(self, indices):
        out = self._copy()
        indices = np.asarray(indices, np.int64)
        out.paths, out.labels, out.num_examples = self.paths[indices], self.labels[indices], len(indices)
        return out

    def read_one(self, index):
        paths = tf.constant(self.paths.astype(str))  # the per-image index: one path per example
        labels = tf.constant(self.labels)
        height, width, channels = self.image_shape
        image = decode_image_file(tf.gather(paths, index), channels)
        image = resize_uint8(image, height, width)
        return tf.ensure_shape(image, self.image_shape), tf.gather(labels, index)


def decode_image_file(path, channels):
    """The uint8 image [h, w, `channels`] of one file (its first frame for an animated GIF)."""
    return tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)


def resize_uint8(image, height, width):
    """uint8 image(s) resized (bilinear, rounded) to height x width; unchanged when they already have that size."""
    shape = tf.shape(image)

    def resize():
        out = tf.image.resize(image, (height, width), method="bilinear")
        return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)

    same = tf.logical_and(tf.equal(shape[-3], height), tf.equal(shape[-2], width))
    return tf.cond(same, lambda: tf.identity(image), resize)


def cache_examples(source, placement, num_examples=None, image_shape=None, log=None):
    """An `ArrayReader` over the decoded uint8 images of `source` kept where `placement` says (a
    `caching.Placement`, "memory" or "disk"), filled by one pass over `source` in order; labels stay in memory.
    A reader of a cached stream keeps the stream's order (`stream_order`): caching changes where the images come
    from, never the run's results.

    `source`: an `ExampleReader`, or an unbatched (image, label) dataset with `num_examples` and `image_shape`
    given. A complete file of the same shape on disk is reused without a pass."""
    from fitnets_tf.data import caching  # caching imports nothing of this module

    if isinstance(source, ExampleReader):
        num_examples, image_shape, ordered = source.num_examples, source.image_shape, source.dataset()
    else:
        ordered = source
    shape = (int(num_examples), *image_shape)
    images = caching.new_array(placement, shape, np.uint8)
    labels_path = None if placement.place != "disk" else placement.path + ".labels"
    labels_array = caching.new_array(placement if labels_path is None else
                                     dataclasses.replace(placement, path=labels_path), (shape[0],), np.int64)
    if not (images.complete and labels_array.complete):
        start = 0
        for batch_images, batch_labels in ordered.batch(256).as_numpy_iterator():
            images.write(start, batch_images)
            labels_array.write(start, batch_labels)
            start += len(batch_labels)
        if start != shape[0]:
            raise ValueError(f"the data gave {start} examples where {shape[0]} were expected")
        images.finish()
        labels_array.finish()
        if log:
            log(f"wrote {shape[0]} examples")
    labels = labels_array.take(np.arange(shape[0]))
    out = ArrayReader(images, labels)
    out.stream_order = not isinstance(source, ExampleReader)
    return out
