"""scikit-learn's 8x8 handwritten digits: a real, offline, 1797-image dataset for quick runs and tests."""

import functools

import numpy as np

DIGITS_TEST_FRACTION = 0.2


@functools.lru_cache(maxsize=1)
def digits_arrays():
    """All 1797 digits as (images uint8 [1797, 8, 8, 1], labels int64 [1797]), read-only and cached.

    `sklearn.datasets.load_digits` gives grey levels 0..16 (float); they are mapped to 0..255 by
    round(x * 255 / 16), so digits go through the same uint8 -> `Preprocessor` path as the TFDS datasets.
    """
    from sklearn.datasets import load_digits  # Imported here: only this dataset needs scikit-learn.

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    labels = bunch.target.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def split_digits(validation_count, seed=0, test_fraction=DIGITS_TEST_FRACTION):
    """Stratified (train, validation, test) split of the digits; each part is (images, labels) or None.

    `test_fraction` of the 1797 images (rounded up: 360 for 0.2) go to test, then `validation_count` of the rest
    to validation (None when it is 0). Every split keeps the class proportions, and the same `seed` always gives
    the same split and order. Arrays: images uint8 [n, 8, 8, 1], labels int64 [n].
    """
    from sklearn.model_selection import train_test_split

    images, labels = digits_arrays()
    num_classes = int(labels.max()) + 1
    rest_x, test_x, rest_y, test_y = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    if validation_count == 0:
        return (rest_x, rest_y), None, (test_x, test_y)
    if not num_classes <= validation_count <= len(rest_y) - num_classes:
        raise ValueError(
            f"A stratified digits validation split needs between {num_classes} and {len(rest_y) - num_classes} "
            f"images (one per class, and one per class left to train); validation_size gave {validation_count}. "
            "Pass a larger (or smaller) validation_size, or 0 for no validation split."
        )
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=validation_count, stratify=rest_y, random_state=seed
    )
    return (train_x, train_y), (val_x, val_y), (test_x, test_y)
