import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from fitnets_tf.data import Preprocessor, build_input, dataset_info, load_splits, make_input_fn

N, SHAPE = 50, (6, 5, 1)


@pytest.fixture(scope="module")
def images():
    """Distinct, left-right asymmetric uint8 images; image i has label i, so outputs can be traced back."""
    rng = np.random.default_rng(0)
    return rng.integers(1, 256, size=(N, *SHAPE), dtype=np.uint8)


@pytest.fixture(scope="module")
def ds(images):
    return tf.data.Dataset.from_tensor_slices((images, np.arange(N, dtype=np.int32)))


def _epoch(batches):
    xs, ys = zip(*batches.as_numpy_iterator())
    return np.concatenate(xs), np.concatenate(ys)


def _windows(image, padding):
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    h, w = image.shape[:2]
    return [padded[i : i + h, j : j + w] for i in range(2 * padding + 1) for j in range(2 * padding + 1)]


def test_evaluation_batches_are_preprocessed_in_order(ds, images):
    out = build_input(ds, 8, training=False, preprocessor=Preprocessor("scale"))
    assert out.element_spec[0].dtype == tf.float32 and out.element_spec[1].dtype == tf.int64
    batches = list(out.as_numpy_iterator())
    assert [len(y) for _, y in batches] == [8] * 6 + [2]  # Evaluation keeps the last partial batch.
    x, y = _epoch(out)
    np.testing.assert_array_equal(y, np.arange(N))
    np.testing.assert_allclose(x, images / 255.0, rtol=1e-6)


def test_training_shuffles_drops_remainder_and_reshuffles_each_epoch(ds, images):
    out = build_input(ds, 8, training=True, preprocessor=Preprocessor("scale"), seed=3)
    assert out.element_spec[0].shape.as_list() == [8, *SHAPE]
    x, y = _epoch(out)
    assert len(y) == 48 and len(set(y.tolist())) == 48 and not np.array_equal(y, np.arange(48))
    np.testing.assert_allclose(x, images[y] / 255.0, rtol=1e-6)  # No augmentation asked for: images unchanged.
    _, y_second_epoch = _epoch(out)
    assert not np.array_equal(y, y_second_epoch)
    again = build_input(ds, 8, training=True, preprocessor=Preprocessor("scale"), seed=3)
    np.testing.assert_array_equal(_epoch(again)[1], y)  # Same seed, same first epoch.


def test_augmentation_only_when_training(ds, images):
    pre = Preprocessor("scale")
    kwargs = dict(preprocessor=pre, crop_padding=1, flip=True, seed=0)
    x_eval, y_eval = _epoch(build_input(ds, 10, training=False, **kwargs))
    np.testing.assert_allclose(x_eval, images[y_eval] / 255.0, rtol=1e-6)

    x_train, y_train = _epoch(build_input(ds, 10, training=True, **kwargs))
    changed = 0
    for out, label in zip(x_train, y_train):
        plain = images[label] / 255.0
        candidates = _windows(plain, 1) + _windows(plain[:, ::-1], 1)
        assert any(np.allclose(out, c) for c in candidates)
        changed += not np.allclose(out, plain)
    assert changed > N // 2


def test_per_replica_batch_and_shard(ds):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=0, num_replicas_in_sync=2)
    out = build_input(ds, 8, training=False, preprocessor=Preprocessor("scale"), input_context=context)
    batches = list(out.as_numpy_iterator())
    assert len(batches[0][1]) == 4  # Half of the global batch.
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), np.arange(0, N, 2))

    input_fn = make_input_fn(ds, 8, True, Preprocessor("scale"), seed=1)
    train = input_fn(context)
    assert train.element_spec[0].shape.as_list() == [4, *SHAPE]
    assert set(_epoch(train)[1].tolist()) <= set(range(0, N, 2))


def test_batch_not_divisible_by_replicas(ds):
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)
    with pytest.raises(ValueError):
        build_input(ds, 7, training=True, preprocessor=Preprocessor("scale"), input_context=context)
    with pytest.raises(ValueError, match="global_batch_size must be a positive int"):
        build_input(ds, 0, training=True, preprocessor=Preprocessor("scale"))


def test_options_repeat_and_file_cache(ds, tmp_path):
    cache = str(tmp_path / "cache")
    out = build_input(ds, 8, training=True, preprocessor=Preprocessor("scale"), repeat=True, cache=cache)
    assert out.options().autotune.enabled is False  # Avoids Keras fit's stall at epoch boundaries.
    assert out.cardinality() == tf.data.INFINITE_CARDINALITY
    assert len(list(out.take(20))) == 20  # More than one pass over the 50 examples.
    assert any(p.name.startswith("cache") for p in tmp_path.iterdir())
    finite = build_input(ds, 8, training=False, preprocessor=Preprocessor("scale"), cache=False)
    assert finite.cardinality() == 7


def test_mocked_cifar10_end_to_end(tmp_path):
    info = dataset_info("cifar10")
    dim = 32 * 32 * 3
    # Identity ZCA statistics (a real fit's 3072x3072 eigendecomposition is too slow for this test): GCN only.
    pre = Preprocessor("gcn_zca", info.image_shape, np.zeros(dim), np.eye(dim))
    with tfds.testing.mock_data(num_examples=12):
        splits = load_splits("cifar10", data_dir=str(tmp_path))
        train = build_input(splits.train, 4, True, pre, info.crop_padding, info.allow_flip)
        x, y = next(iter(train))
        assert x.shape == (4, 32, 32, 3) and x.dtype == tf.float32 and y.dtype == tf.int64
        x_test, _ = _epoch(build_input(splits.test, 4, False, pre))
        test_images = np.stack([x for x, _ in splits.test.as_numpy_iterator()]).reshape(12, -1).astype(np.float64)
        centred = test_images - test_images.mean(axis=1, keepdims=True)
        expected = 55.0 * centred / np.linalg.norm(centred, axis=1, keepdims=True)
        np.testing.assert_allclose(x_test.reshape(12, -1), expected, rtol=1e-4, atol=1e-4)
