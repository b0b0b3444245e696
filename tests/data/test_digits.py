import collections

import numpy as np
import pytest
from sklearn.datasets import load_digits

from fitnets_tf.data import load_splits


def _arrays(ds):
    images, labels = zip(*ds.as_numpy_iterator())
    return np.stack(images), np.array(labels)


def _counter(images, labels):
    return collections.Counter((image.tobytes(), int(label)) for image, label in zip(images, labels))


@pytest.fixture(scope="module")
def splits():
    return load_splits("digits", validation_size=0.1, seed=0)


def test_sizes_add_up_to_1797(splits):
    assert splits.num_examples == {"train": 1293, "validation": 144, "test": 360}
    for name, ds in (("train", splits.train), ("validation", splits.validation), ("test", splits.test)):
        assert len(_arrays(ds)[1]) == splits.num_examples[name]
    assert sum(splits.num_examples.values()) == 1797


def test_splits_partition_the_converted_sklearn_digits(splits):
    bunch = load_digits()
    reference = np.rint(bunch.images * 255 / 16).astype(np.uint8)[..., None]
    together = collections.Counter()
    for ds in (splits.train, splits.validation, splits.test):
        together += _counter(*_arrays(ds))
    # Every sklearn image (with its label) appears exactly as often as in sklearn: disjoint and complete.
    assert together == _counter(reference, bunch.target)


def test_dtypes_shapes_and_labels(splits):
    images, labels = _arrays(splits.train)
    assert splits.train.element_spec[0].dtype.name == "uint8"
    assert splits.train.element_spec[1].dtype.name == "int64"
    assert images.shape[1:] == (8, 8, 1)
    assert images.max() == 255 and images.min() == 0
    assert set(labels.tolist()) == set(range(10))


def test_every_class_in_every_split_in_proportion(splits):
    full = np.bincount(load_digits().target, minlength=10) / 1797
    for ds in (splits.train, splits.validation, splits.test):
        labels = _arrays(ds)[1]
        counts = np.bincount(labels, minlength=10)
        assert counts.min() > 0
        np.testing.assert_allclose(counts / len(labels), full, atol=0.01)


def test_deterministic_across_calls_and_seed_dependent(splits):
    again = load_splits("digits", validation_size=0.1, seed=0)
    for first, second in ((splits.train, again.train), (splits.test, again.test)):
        np.testing.assert_array_equal(_arrays(first)[0], _arrays(second)[0])
        np.testing.assert_array_equal(_arrays(first)[1], _arrays(second)[1])
    other = load_splits("digits", validation_size=0.1, seed=1)
    assert not np.array_equal(_arrays(splits.test)[1], _arrays(other.test)[1])


def test_validation_size_count_and_zero():
    for count in (200, 200.0):  # A whole float is a count too (float command-line flags).
        counted = load_splits("digits", validation_size=count)
        assert counted.num_examples == {"train": 1237, "validation": 200, "test": 360}
    none = load_splits("digits", validation_size=0)
    assert none.validation is None
    assert none.num_examples == {"train": 1437, "validation": 0, "test": 360}


@pytest.mark.parametrize("bad", [-1, 1.5, -0.1, True, "10%", 5, 1437, 1437.0])
def test_bad_validation_size_is_refused(bad):
    with pytest.raises(ValueError, match="validation_size"):
        load_splits("digits", validation_size=bad)


def test_use_extra_only_for_svhn():
    with pytest.raises(ValueError, match="use_extra=True needs .*svhn_cropped"):
        load_splits("digits", use_extra=True)


def test_unknown_dataset():
    with pytest.raises(ValueError, match=r"Unknown dataset 'foo'\. Choose one of: digits, mnist"):
        load_splits("foo")
