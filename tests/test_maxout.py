import numpy as np
import keras
import pytest
import tensorflow as tf

from fitnets_tf.layers import Maxout


def numpy_maxout(x, pieces):
    units = x.shape[-1] // pieces
    out = np.empty(x.shape[:-1] + (units,), x.dtype)
    for j in range(units):
        out[..., j] = np.max(x[..., j * pieces:(j + 1) * pieces], axis=-1)
    return out


@pytest.mark.parametrize("shape,pieces", [((2, 4, 4, 6), 2), ((3, 10), 5), ((2, 3, 3, 4), 1), ((1, 2, 2, 9), 3)])
def test_maxout_matches_numpy(shape, pieces):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    got = Maxout(pieces)(x)
    np.testing.assert_array_equal(np.asarray(got), numpy_maxout(x, pieces))


def test_maxout_hand_computed():
    x = np.array([[1.0, -2.0, 5.0, 3.0, -1.0, -4.0]], "float32")
    np.testing.assert_array_equal(np.asarray(Maxout(2)(x)), [[1.0, 5.0, -1.0]])
    np.testing.assert_array_equal(np.asarray(Maxout(3)(x)), [[5.0, 3.0]])


def test_maxout_inside_dataset_map_and_tf_function():
    x = np.random.default_rng(1).normal(size=(4, 3, 3, 8)).astype("float32")
    layer = Maxout(4)
    mapped = next(iter(tf.data.Dataset.from_tensors(x).map(layer)))
    np.testing.assert_array_equal(mapped.numpy(), numpy_maxout(x, 4))
    traced = tf.function(layer)(x)
    np.testing.assert_array_equal(traced.numpy(), numpy_maxout(x, 4))


def test_maxout_after_conv_and_dense_shapes():
    inputs = keras.Input((8, 8, 3))
    conv = Maxout(2)(keras.layers.Conv2D(12, 3, padding="same")(inputs))
    dense = Maxout(5)(keras.layers.Dense(50)(keras.layers.Flatten()(conv)))
    assert tuple(conv.shape) == (None, 8, 8, 6)
    assert tuple(dense.shape) == (None, 10)


def test_maxout_rejects_indivisible_channels():
    with pytest.raises(ValueError, match=r"divisible by num_pieces=4.*\(None, 8, 8, 6\)"):
        Maxout(4)(keras.Input((8, 8, 6)))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_maxout_rejects_bad_pieces(bad):
    with pytest.raises(ValueError, match=f"num_pieces={bad!r}"):
        Maxout(bad)


def test_maxout_get_config_round_trip():
    layer = Maxout(3, name="m")
    clone = Maxout.from_config(layer.get_config())
    assert clone.num_pieces == 3 and clone.name == "m"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, Maxout) and restored.num_pieces == 3
