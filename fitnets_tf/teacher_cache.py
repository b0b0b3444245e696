"""Teacher-output caching: the frozen teacher's outputs for a stage, computed once and read back by example index.

When the training images are the same every epoch (no augmentation), the teacher's outputs are too, so stage 1
(its hints) and stage 2 (its logits) need the teacher's forward pass once, not once per epoch. Only the outputs are
kept -- never a second copy of the images -- one row per example of the train split in its fixed order, so a
shuffled training stream that carries each example's index (`build_input(with_index=True)`) finds its row. Rows
live in memory when they fit the memory budget, else in a file read back per batch (`data.caching`); hints are
kept in float16 (half the bytes; the hint loss compares them in float32, a relative rounding of 2^-11), logits in
float32. The decision and its bytes are logged and kept in `placement`.
"""

import logging
import os

import numpy as np
import tensorflow as tf

from fitnets_tf.data import caching

logger = logging.getLogger(__name__)

# A batch that carries the teacher's outputs: x = {IMAGES: images, TEACHER_OUTPUTS: (...)} (`cached_batch`).
IMAGES = "images"
TEACHER_OUTPUTS = "teacher_outputs"


def cached_batch(images, teacher_outputs):
    """The inputs of a batch that carries the teacher's outputs: {"images": images, "teacher_outputs": tuple}.

    The mark is explicit, so a model's own inputs (a tuple of two tensors for a two-input model) are never taken
    for cached outputs.
    """
    return {IMAGES: images, TEACHER_OUTPUTS: tuple(teacher_outputs)}


FLOAT16_MAX = 65504.0
DEFAULT_MEMORY_BUDGET = 512 * caching.MB


class TeacherOutputCache:
    """The teacher's outputs of one stage, one row per example: `arrays[k]` holds output k ([N, ...])."""

    def __init__(self, arrays, placement):
        self.arrays = arrays
        self.placement = placement
        self.num_examples = arrays[0].shape[0]

    def _lookup(self, indices):
        return [array.take(indices) for array in self.arrays]

    def attach(self, batches):
        """Batches of (index [b], images, labels) -> batches of ({"images", "teacher_outputs"}, labels) whose
        float32 outputs are this cache's rows `index` (`cached_batch`)."""

        dtypes = [tf.as_dtype(a.dtype) for a in self.arrays]
        shapes = [tuple(a.shape[1:]) for a in self.arrays]

        def with_outputs(index, images, labels):
            rows = tf.numpy_function(self._lookup, [index], dtypes, stateful=False)
            outputs = [tf.cast(tf.ensure_shape(r, (None, *s)), tf.float32) for r, s in zip(rows, shapes)]
            return cached_batch(images, outputs), labels

        return batches.map(with_outputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def build_cache(forward, ordered, num_examples, low_precision, memory_budget_bytes=DEFAULT_MEMORY_BUDGET,
                directory=None, mode="auto", name="teacher_outputs"):
    """Runs `forward` (images -> tuple of float32 outputs) once over `ordered` and keeps the rows; returns a
    `TeacherOutputCache`, or None when the rows fit neither the memory budget nor the disk (the caller then
    runs the teacher at every step).

    Args:
        ordered: finite batches of (images, labels) in the order that defines the index (the train split's).
        num_examples: the examples in `ordered`.
        low_precision: keep the outputs in float16 (hints); an output beyond float16's range is kept in float32.
        memory_budget_bytes, mode: where the rows go (`caching.choose_place`: "auto", "memory", "disk").
        directory: where an on-disk cache is written (`<directory>/<name>_<k>.bin`); None: memory only.
    """
    try:
        return _build(forward, ordered, num_examples, low_precision, memory_budget_bytes, directory, mode, name)
    except _Float16Overflow as overflow:
        logger.info("teacher output %d of %s exceeds float16's range: cached in float32", overflow.args[0], name)
        return _build(forward, ordered, num_examples, False, memory_budget_bytes, directory, mode, name)


def _build(forward, ordered, num_examples, low_precision, memory_budget_bytes, directory, mode, name):
    arrays, placement, start = None, None, 0
    for images, _ in ordered:
        outputs = [np.asarray(o, np.float32) for o in forward(images)]
        if arrays is None:
            arrays, placement = _new_arrays(outputs, num_examples, low_precision, memory_budget_bytes, directory,
                                            mode, name)
            if arrays is None:
                logger.info("teacher outputs of %s not cached: %s", name, placement.reason)
                return None
            if all(a.complete for a in arrays):  # a file of a resumed run: nothing to compute
                break
        for k, (array, output) in enumerate(zip(arrays, outputs)):
            if array.dtype == np.float16 and np.max(np.abs(output), initial=0.0) > FLOAT16_MAX:
                raise _Float16Overflow(k)
            array.write(start, output.astype(array.dtype))
        start += len(outputs[0])
    if arrays is None:
        raise ValueError("teacher-output caching got no batch: the training data are empty")
    if not all(a.complete for a in arrays):
        if start != num_examples:
            raise ValueError(f"teacher-output caching read {start} examples where {num_examples} were expected")
        for array in arrays:
            array.finish()
    logger.info("teacher outputs of %s cached in %s%s: %s, %s (%s)", name, placement.place,
                f" ({placement.path}.*)" if placement.place == "disk" else "", caching.megabytes(placement.nbytes),
                "float16" if arrays[0].dtype == np.float16 else "float32", placement.reason)
    return TeacherOutputCache(arrays, placement)


class _Float16Overflow(ValueError):
    pass


def _new_arrays(outputs, num_examples, low_precision, budget, directory, mode, name):
    dtypes = [np.float16 if low_precision else np.float32 for _ in outputs]
    nbytes = sum(num_examples * int(np.prod(o.shape[1:])) * np.dtype(d).itemsize for o, d in zip(outputs, dtypes))
    path = None if directory is None else os.path.join(directory, f"{name}.bin")
    placement = caching.choose_place(mode, nbytes, budget, path, decodes=True)
    if placement.place == "none":
        return None, placement
    arrays = []
    for k, (output, dtype) in enumerate(zip(outputs, dtypes)):
        part = placement if placement.place != "disk" else caching.Placement(
            "disk", placement.nbytes, placement.reason, f"{placement.path}.{k}")
        arrays.append(caching.new_array(part, (num_examples, *output.shape[1:]), dtype))
    return arrays, placement
