"""The preprocessing inside LiteRT files (`litert.RawImagePreprocessing`) against `Preprocessor`, for every kind.

The layer is checked without conversion; one test converts a tiny 3-channel model with "caffe" (the kind with a
channel permutation) through the float32 path of `litert.convert`.
"""

import keras
import numpy as np
import pytest

from fitnets_tf.data import PREPROCESSING_KINDS, Preprocessor
from fitnets_tf.harness import litert
from fitnets_tf.harness.litert_classifier import LiteRTClassifier


def _rgb_images(num, seed, shape=(4, 4, 3)):
    """uint8 [num, *shape] with channels of different ranges (a channel-order mistake shows), 0 and 255 included."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num, *shape)) * np.linspace(0.3, 1.0, shape[-1])
    images = images.astype(np.uint8)
    images[0].flat[0], images[0].flat[-1] = 0, 255
    return images


@pytest.fixture(scope="module")
def images():
    return _rgb_images(12, seed=0)


def _preprocessor(kind):
    return Preprocessor.fit(kind, _rgb_images(200, seed=1) if kind == "gcn_zca" else None)


@pytest.mark.parametrize("kind", PREPROCESSING_KINDS)
def test_layer_matches_the_preprocessor(kind, images):
    pre = _preprocessor(kind)
    expected = pre(images).numpy()
    layer = litert.RawImagePreprocessing(pre, name="preprocessing")
    for pixels in (images.astype(np.float32), images):  # the int8 file's float32 input, the float32 file's uint8
        out = np.asarray(layer(pixels))
        assert out.dtype == np.float32 and out.shape == images.shape
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", PREPROCESSING_KINDS)
def test_layer_config_round_trip(kind, images):
    layer = litert.RawImagePreprocessing(_preprocessor(kind), name="preprocessing")
    expected = np.asarray(layer(images))
    config = layer.get_config()
    assert config["name"] == "preprocessing" and config["preprocessor"]["kind"] == kind
    clone = litert.RawImagePreprocessing.from_config(config)
    clone.set_weights(layer.get_weights())  # the ZCA statistics ("gcn_zca") are weights, not config
    assert len(clone.get_weights()) == (2 if kind == "gcn_zca" else 0)
    np.testing.assert_array_equal(np.asarray(clone(images)), expected)
    assert keras.saving.get_registered_object("fitnets_tf>RawImagePreprocessing") is litert.RawImagePreprocessing


@pytest.mark.parametrize("kind", ["caffe", "torch"])
def test_layer_refuses_one_channel_images(kind):
    layer = litert.RawImagePreprocessing(Preprocessor(kind))
    with pytest.raises(ValueError, match=r"needs 3-channel RGB images.*--channels=3"):
        layer(np.zeros((1, 4, 4, 1), np.float32))


def test_caffe_float32_file_gives_the_keras_probabilities(tmp_path):
    # GlobalAveragePooling2D + Dense: the logits depend on which mean goes with which channel.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(5, kernel_initializer=keras.initializers.RandomNormal(0, 0.05))])
    pre = Preprocessor("caffe")
    images = _rgb_images(6, seed=2, shape=(8, 8, 3))
    path = litert.write_tflite(model, pre, str(tmp_path / "caffe_float32.tflite"), "float32")
    out = LiteRTClassifier(path).predict(images)
    logits = np.asarray(model(pre(images).numpy()), np.float64)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    assert np.ptp(expected, axis=-1).min() > 0.01  # the probabilities are far from uniform: the check has teeth
    np.testing.assert_allclose(out["probabilities"], expected, rtol=0, atol=2e-5)
    np.testing.assert_array_equal(out["class_id"], expected.argmax(-1))
    # The channel permutation is one FULLY_CONNECTED, which XNNPACK runs (REVERSE_V2 / GATHER it would leave out).
    names = set(litert.operator_names(path))
    assert not any(name.startswith("Flex") for name in names) and not {"REVERSE_V2", "GATHER"} & names
    assert litert.xnnpack_partitions(path) == {"partitions": 1, "outside": ["CAST", "ARG_MAX"]}
