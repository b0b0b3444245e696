"""Every image of a folder read and decoded once before any training, so a corrupt file stops a run at its start
(naming the file) instead of in the middle of stage 2 with a TensorFlow traceback that names none.

The pass runs in tf.data (parallel decoding, no Python per image) with the same decoding as training
(`readers.decode_image_file`); a file that cannot be read or decoded is dropped by `ignore_errors` and so found
by its absence. Large folders get a progress line every `PROGRESS_SECONDS`.
"""

import time

from absl import logging
import numpy as np
import tensorflow as tf

from fitnets_tf.data.readers import decode_image_file

BAD_IMAGE_CHOICES = ("stop", "skip")  # what a run does with unreadable files: stop naming them, or leave them out
LISTED = 5  # the unreadable files named in a message (the rest are counted)
PROGRESS_SECONDS = 10.0
_BATCH = 512


def unreadable_images(paths, channels, log=logging.info, progress_seconds=PROGRESS_SECONDS):
    """The sorted indices of the files in `paths` that cannot be read or decoded as images of `channels` (None:
    their own), found by decoding each once."""
    paths = np.asarray(paths, dtype=object).astype(str)
    count = len(paths)

    def decoded_index(index, path):
        image = decode_image_file(path, channels or 0)
        return index + 0 * tf.cast(tf.size(image), tf.int64)  # depends on the decoded image, so it decodes

    found = (tf.data.Dataset.from_tensor_slices((np.arange(count, dtype=np.int64), paths))
             .map(decoded_index, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
             .ignore_errors()
             .batch(_BATCH)
             .prefetch(2))
    readable = np.zeros(count, bool)
    start = last = time.monotonic()
    checked = 0
    for batch in found.as_numpy_iterator():
        readable[batch] = True
        checked += len(batch)
        now = time.monotonic()
        if now - last >= progress_seconds:
            last = now
            log("[fitnets] checking images: %d of %d decoded (%.0f images/s)", checked, count,
                checked / (now - start))
    return np.flatnonzero(~readable)


def describe(paths, bad):
    """'N of M files cannot be read or decoded as images: a, b, ... (and K more)'."""
    listed = ", ".join(str(paths[i]) for i in bad[:LISTED])
    more = f" and {len(bad) - LISTED} more" if len(bad) > LISTED else ""
    return f"{len(bad)} of {len(paths)} files cannot be read or decoded as images: {listed}{more}"
