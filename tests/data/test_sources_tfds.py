
import numpy as np
import pytest
import tensorflow_datasets as tfds

from fitnets_tf.data import DataNotFoundError, Splits, load_splits

MOCK_EXAMPLES = 6


def _first_pixels(ds):
    return [int(image[0, 0, 0]) for image, _ in ds.as_numpy_iterator()]


@pytest.mark.parametrize(
    "name, shape", [("svhn_cropped", (32, 32, 3)), ("cifar10", (32, 32, 3)), ("mnist", (28, 28, 1))]
)
def test_mocked_tfds_gives_three_splits(name, shape, tmp_path):
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        splits = load_splits(name, data_dir=str(tmp_path), validation_size=0.1)
        assert isinstance(splits, Splits)
        assert splits.info.name == name
        for ds in (splits.train, splits.validation, splits.test):
            assert ds.element_spec[0].shape == shape
            assert ds.element_spec[0].dtype.name == "uint8"
            assert ds.element_spec[1].dtype.name == "int64"
            images, labels = next(ds.batch(MOCK_EXAMPLES).as_numpy_iterator())
            assert images.shape == (MOCK_EXAMPLES, *shape) and labels.shape == (MOCK_EXAMPLES,)
            assert labels.min() >= 0 and labels.max() < 10
        # The mock ignores split slicing: every split yields the mock's examples.
        assert splits.num_examples == {"train": MOCK_EXAMPLES, "validation": MOCK_EXAMPLES, "test": MOCK_EXAMPLES}


def test_mocked_svhn_use_extra_appends_extra(tmp_path):
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        plain = load_splits("svhn_cropped", data_dir=str(tmp_path), validation_size=0)
        extra = load_splits("svhn_cropped", data_dir=str(tmp_path), validation_size=0, use_extra=True)
        assert plain.validation is None
        assert plain.num_examples["train"] == MOCK_EXAMPLES
        assert extra.num_examples["train"] == 2 * MOCK_EXAMPLES
        assert sum(1 for _ in extra.train) == 2 * MOCK_EXAMPLES


def test_validation_comes_from_the_end_of_train(fake_tfds_dir):
    splits = load_splits("mnist", data_dir=fake_tfds_dir, validation_size=0.1)
    # 50 train examples: ceil(0.1 * 50) = 5 validation examples, the last five in file order.
    assert splits.num_examples == {"train": 45, "validation": 5, "test": 20}
    assert _first_pixels(splits.train) == list(range(45))
    assert _first_pixels(splits.validation) == list(range(45, 50))
    assert _first_pixels(splits.test) == list(range(100, 120))
    assert splits.train.element_spec[0].shape == (28, 28, 1)


def test_validation_count_and_no_validation(fake_tfds_dir):
    counted = load_splits("mnist", data_dir=fake_tfds_dir, validation_size=12)
    assert counted.num_examples == {"train": 38, "validation": 12, "test": 20}
    assert _first_pixels(counted.validation) == list(range(38, 50))
    none = load_splits("mnist", data_dir=fake_tfds_dir, validation_size=0)
    assert none.validation is None
    assert _first_pixels(none.train) == list(range(50))


def test_order_is_deterministic(fake_tfds_dir):
    first = load_splits("mnist", data_dir=fake_tfds_dir)
    second = load_splits("mnist", data_dir=fake_tfds_dir)
    np.testing.assert_array_equal(
        np.stack([x for x, _ in first.train.as_numpy_iterator()]),
        np.stack([x for x, _ in second.train.as_numpy_iterator()]),
    )


def test_svhn_use_extra_appends_extra_after_the_validation_cut(fake_tfds_dir):
    splits = load_splits("svhn_cropped", data_dir=fake_tfds_dir, validation_size=0.1, use_extra=True)
    # 30 train: 3 validation from train's end; train keeps 27 and gains the 20 extra images.
    assert splits.num_examples == {"train": 47, "validation": 3, "test": 10}
    assert _first_pixels(splits.train) == list(range(27)) + list(range(200, 220))
    assert _first_pixels(splits.validation) == [27, 28, 29]
    plain = load_splits("svhn_cropped", data_dir=fake_tfds_dir, validation_size=0.1)
    assert plain.num_examples["train"] == 27


def test_validation_count_too_large(fake_tfds_dir):
    with pytest.raises(ValueError, match=r"validation_size as a count must be >= 0 and < 50"):
        load_splits("mnist", data_dir=fake_tfds_dir, validation_size=50)


def test_use_extra_refused_without_extra_split(fake_tfds_dir):
    with pytest.raises(ValueError, match="use_extra"):
        load_splits("mnist", data_dir=fake_tfds_dir, use_extra=True)


@pytest.mark.parametrize("name", ["svhn_cropped", "cifar10"])
def test_absent_data_fails_fast_with_a_fix(name, tmp_path):
    empty = tmp_path / "empty_tfds"
    empty.mkdir()
    with pytest.raises(DataNotFoundError) as caught:  # at once: any network connection fails this test (conftest)
        load_splits(name, data_dir=str(empty), download=False)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert name in message and str(empty) in message
    assert f"tfds build {name}" in message and "`data_dir`" in message and "`download`" in message
