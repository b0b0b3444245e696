import numpy as np
import pytest
import tensorflow as tf

from fitnets_tf.data import augment

H, W, C = 6, 5, 2


def _image():
    """An image with no left-right symmetry: every pixel value is distinct."""
    return np.arange(1, H * W * C + 1, dtype=np.float32).reshape(H, W, C)


def _windows(image, padding):
    """Every H x W window of the zero-padded image: the outputs a random crop may give."""
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    return [padded[i : i + H, j : j + W] for i in range(2 * padding + 1) for j in range(2 * padding + 1)]


def _seeds(num):
    return [tf.constant([7, i], tf.int64) for i in range(num)]


def test_no_crop_no_flip_is_identity():
    image = _image()
    np.testing.assert_array_equal(augment(image, 0, False).numpy(), image)
    np.testing.assert_array_equal(augment(image, 0, False, seed=_seeds(1)[0]).numpy(), image)


@pytest.mark.parametrize("padding", [1, 2])
def test_crop_is_a_window_of_the_zero_padded_image(padding):
    image = _image()
    windows = _windows(image, padding)
    outputs = [augment(image, padding, False, seed=seed).numpy() for seed in _seeds(60)]
    for out in outputs:
        assert out.shape == (H, W, C)
        assert any(np.array_equal(out, window) for window in windows)
    assert len({out.tobytes() for out in outputs}) > 1


def test_flip_sometimes_mirrors_and_never_without_flip():
    image = _image()
    mirrored = image[:, ::-1]
    flipped = [augment(image, 0, True, seed=seed).numpy() for seed in _seeds(40)]
    assert any(np.array_equal(out, mirrored) for out in flipped)
    assert any(np.array_equal(out, image) for out in flipped)
    assert all(np.array_equal(out, image) or np.array_equal(out, mirrored) for out in flipped)
    # Without flip, no output (cropped or not) is a window of the mirrored image.
    mirrored_windows = _windows(mirrored, 1)
    for padding in (0, 1):
        for seed in _seeds(40):
            out = augment(image, padding, False, seed=seed).numpy()
            assert not any(np.array_equal(out, window) for window in mirrored_windows)


def test_stateless_seed_is_deterministic_and_stateful_runs():
    image = _image()
    seed = tf.constant([3, 4], tf.int64)
    np.testing.assert_array_equal(augment(image, 2, True, seed=seed), augment(image, 2, True, seed=seed))
    assert augment(image, 2, True).shape == (H, W, C)


def test_works_inside_dataset_map():
    image = _image()
    ds = tf.data.Dataset.from_tensors(image).repeat(30)
    seeds = tf.data.Dataset.random(seed=1).batch(2)
    mapped = tf.data.Dataset.zip((ds, seeds)).map(lambda x, s: augment(x, 1, True, seed=s))
    assert mapped.element_spec.shape == (H, W, C)
    windows = _windows(image, 1) + _windows(image[:, ::-1], 1)
    outputs = list(mapped.as_numpy_iterator())
    assert all(any(np.array_equal(out, w) for w in windows) for out in outputs)
    assert len({out.tobytes() for out in outputs}) > 1
    stateful = tf.data.Dataset.from_tensors(image).repeat(3).map(lambda x: augment(x, 1, True))
    assert all(out.shape == (H, W, C) for out in stateful.as_numpy_iterator())


def test_bad_arguments():
    with pytest.raises(ValueError, match="crop_padding must be an int >= 0"):
        augment(_image(), -1, False)
    with pytest.raises(ValueError, match=r"one image \[H, W, C\]"):
        augment(_image()[None], 1, False)
    with pytest.raises(ValueError, match="seed must be an int tensor of shape"):
        augment(_image(), 1, False, seed=3)
