import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from fitnets_tf.data import Preprocessor, images_to_numpy

SHAPE = (4, 4, 2)
DIM = 32


def _correlated_images(num, seed):
    """uint8 images [num, 4, 4, 2] with strongly correlated pixels (a smooth ramp + noise), like natural images."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, DIM).reshape(SHAPE)
    base = rng.uniform(0, 200, size=(num, 1, 1, 1)) * ramp + rng.uniform(0, 40, size=(num, 1, 1, 1))
    return np.clip(base + rng.normal(0, 12, size=(num, *SHAPE)), 0, 255).astype(np.uint8)


def _reference_gcn(images, scale=55.0, sqrt_bias=0.0):
    x = images.reshape(len(images), -1).astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    return scale * x / np.sqrt(sqrt_bias + (x**2).sum(axis=1, keepdims=True))


def _reference_zca(train_gcn, eps):
    mean = train_gcn.mean(axis=0)
    covariance = np.cov(train_gcn, rowvar=False, bias=True)
    values, vectors = np.linalg.eigh(covariance + eps * np.eye(covariance.shape[0]))
    return mean, vectors @ np.diag(1.0 / np.sqrt(values)) @ vectors.T


@pytest.fixture(scope="module")
def train_images():
    return _correlated_images(600, seed=0)


@pytest.fixture(scope="module")
def test_images():
    return _correlated_images(40, seed=1)


def test_scale_maps_uint8_to_unit_interval():
    pre = Preprocessor.fit("scale")
    images = np.array([[[[0], [51]], [[255], [128]]]], np.uint8)
    out = pre(tf.constant(images))
    assert out.dtype == tf.float32 and out.shape == images.shape
    np.testing.assert_allclose(out.numpy(), images / 255.0, rtol=1e-6)
    assert pre.kind == "scale"


def test_gcn_zca_matches_numpy_reference(train_images, test_images):
    pre = Preprocessor.fit("gcn_zca", train_images, filter_bias=0.1)
    mean, matrix = _reference_zca(_reference_gcn(train_images), eps=0.1)
    expected = (_reference_gcn(test_images) - mean) @ matrix
    out = pre(tf.constant(test_images))
    assert out.dtype == tf.float32 and out.shape == test_images.shape
    np.testing.assert_allclose(out.numpy().reshape(len(test_images), -1), expected, rtol=1e-3, atol=1e-3)


def test_gcn_gives_zero_mean_and_norm_scale_per_image(test_images):
    # With the ZCA statistics set to identity, the preprocessor is GCN alone.
    pre = Preprocessor("gcn_zca", SHAPE, np.zeros(DIM), np.eye(DIM), {"scale": 55.0})
    out = pre(tf.constant(test_images)).numpy().reshape(len(test_images), -1)
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 55.0, rtol=1e-5)
    np.testing.assert_allclose(out, _reference_gcn(test_images), rtol=1e-5, atol=1e-4)


def test_gcn_leaves_a_flat_image_at_zero():
    pre = Preprocessor("gcn_zca", SHAPE, np.zeros(DIM), np.eye(DIM))
    out = pre(tf.fill((1, *SHAPE), tf.constant(7, tf.uint8)))
    np.testing.assert_array_equal(out.numpy(), 0.0)


def test_whitened_train_data_has_identity_covariance(train_images):
    pre = Preprocessor.fit("gcn_zca", train_images, filter_bias=1e-6)
    white = pre(tf.constant(train_images)).numpy().reshape(len(train_images), -1).astype(np.float64)
    np.testing.assert_allclose(white.mean(axis=0), 0.0, atol=1e-3)
    # GCN removes each image's mean, so the data span the complement of the all-ones direction: there the
    # whitened covariance is the identity.
    complement = np.eye(DIM) - np.full((DIM, DIM), 1.0 / DIM)
    covariance = np.cov(white, rowvar=False, bias=True)
    np.testing.assert_allclose(complement @ covariance @ complement, complement, atol=2e-3)


def test_max_examples_fits_on_the_first_images(train_images):
    capped = Preprocessor.fit("gcn_zca", train_images, max_examples=300)
    direct = Preprocessor.fit("gcn_zca", train_images[:300])
    np.testing.assert_allclose(capped.matrix.numpy(), direct.matrix.numpy())


def test_single_image_and_batch_agree(train_images, test_images):
    pre = Preprocessor.fit("gcn_zca", train_images)
    batch = pre(tf.constant(test_images)).numpy()
    single = pre(tf.constant(test_images[3])).numpy()
    assert single.shape == SHAPE
    np.testing.assert_allclose(single, batch[3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["scale", "gcn_zca"])
def test_same_result_eagerly_and_inside_dataset_map(kind, train_images, test_images):
    pre = Preprocessor.fit(kind, train_images if kind == "gcn_zca" else None)
    eager = pre(tf.constant(test_images)).numpy()
    per_image = tf.data.Dataset.from_tensor_slices(test_images).map(pre)
    batched = tf.data.Dataset.from_tensor_slices(test_images).batch(16).map(pre)
    np.testing.assert_allclose(np.stack(list(per_image.as_numpy_iterator())), eager, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(list(batched.as_numpy_iterator())), eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["scale", "gcn_zca"])
def test_save_load_round_trip(kind, train_images, test_images, tmp_path):
    params = {"scale": 30.0} if kind == "gcn_zca" else {}
    pre = Preprocessor.fit(kind, train_images, **params)
    path = tmp_path / "sub" / "preprocessor.npz"
    pre.save(str(path))
    assert os.listdir(path.parent) == ["preprocessor.npz"]  # No temporary file left behind.
    loaded = Preprocessor.load(str(path))
    assert loaded.kind == kind and loaded.params == pre.params and loaded.image_shape == pre.image_shape
    np.testing.assert_array_equal(loaded(tf.constant(test_images)).numpy(), pre(tf.constant(test_images)).numpy())
    pre.save(str(path))  # Overwriting an existing file works too.
    assert os.listdir(path.parent) == ["preprocessor.npz"]


def test_works_inside_an_exported_saved_model(train_images, test_images, tmp_path):
    pre = Preprocessor.fit("gcn_zca", train_images)

    class Serving(tf.Module):
        def __init__(self, preprocessor):
            super().__init__()
            self.preprocessor = preprocessor

        @tf.function(input_signature=[tf.TensorSpec([None, *SHAPE], tf.uint8)])
        def serve(self, images):
            return {"inputs": self.preprocessor(images)}

    module = Serving(pre)
    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"serving_default": module.serve})
    del module, pre
    reloaded = tf.saved_model.load(str(tmp_path / "model"))
    out = reloaded.signatures["serving_default"](images=tf.constant(test_images))["inputs"].numpy()
    expected = Preprocessor.fit("gcn_zca", train_images)(tf.constant(test_images)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_images_to_numpy_stacks_unbatched_images(test_images):
    ds = tf.data.Dataset.from_tensor_slices((test_images, np.arange(len(test_images))))
    np.testing.assert_array_equal(images_to_numpy(ds), test_images)
    np.testing.assert_array_equal(images_to_numpy(ds, limit=7), test_images[:7])


def test_errors_name_the_problem(train_images):
    with pytest.raises(ValueError, match=r"Unknown preprocessing kind 'zca'\. Choose one of: scale, gcn_zca, raw, "
                                         r"tf, caffe, torch\."):
        Preprocessor.fit("zca", train_images)
    with pytest.raises(ValueError, match=r"Unknown 'gcn_zca' parameter\(s\) \['eps'\]"):
        Preprocessor.fit("gcn_zca", train_images, eps=0.1)
    with pytest.raises(ValueError, match="filter_bias > 0"):
        Preprocessor.fit("gcn_zca", train_images, filter_bias=0.0)
    with pytest.raises(ValueError, match="needs uint8 train images"):
        Preprocessor.fit("gcn_zca", train_images.astype(np.float32))
    pre = Preprocessor.fit("gcn_zca", train_images)
    with pytest.raises(TypeError, match="raw uint8 images"):
        pre(tf.zeros((1, *SHAPE), tf.float32))
    with pytest.raises(ValueError, match=r"fitted on images \(4, 4, 2\)"):
        pre(tf.zeros((1, 8, 8, 1), tf.uint8))


# keras.applications' own `preprocess_input` per kind: the reference the fixed kinds must reproduce.
KERAS_APPLICATIONS = {
    "raw": keras.applications.efficientnet.preprocess_input,
    "tf": keras.applications.mobilenet_v2.preprocess_input,
    "caffe": keras.applications.resnet50.preprocess_input,
    "torch": keras.applications.densenet.preprocess_input,
}


@pytest.fixture(scope="module")
def rgb_images():
    """uint8 [6, 5, 7, 3] with channels of different ranges (so a channel-order mistake shows), 0 and 255 included."""
    rng = np.random.default_rng(2)
    images = np.stack([rng.integers(0, 90, (6, 5, 7)), rng.integers(80, 200, (6, 5, 7)),
                       rng.integers(150, 256, (6, 5, 7))], axis=-1)
    images[0, 0, 0] = (0, 0, 0)
    images[0, 0, 1] = (255, 255, 255)
    return images.astype(np.uint8)


def _keras_reference(kind, images):
    # preprocess_input works in place on float NumPy arrays: give it a fresh copy.
    return np.asarray(KERAS_APPLICATIONS[kind](images.astype(np.float32)))


@pytest.mark.parametrize("kind", sorted(KERAS_APPLICATIONS))
def test_keras_applications_kinds_match_preprocess_input_eagerly_and_in_dataset_map(kind, rgb_images):
    expected = _keras_reference(kind, rgb_images)
    assert not np.allclose(expected[..., 0], expected[..., 2], atol=1)  # channels stay distinguishable
    for pre in (Preprocessor(kind), Preprocessor.fit(kind)):
        assert pre.kind == kind and pre.params == {} and pre.mean is None
        out = pre(tf.constant(rgb_images))
        assert out.dtype == tf.float32 and out.shape == rgb_images.shape
        np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-4)
        np.testing.assert_allclose(pre(tf.constant(rgb_images[2])).numpy(), expected[2], rtol=0, atol=1e-4)
        per_image = tf.data.Dataset.from_tensor_slices(rgb_images).map(pre)
        batched = tf.data.Dataset.from_tensor_slices(rgb_images).batch(4).map(pre)
        np.testing.assert_allclose(np.stack(list(per_image.as_numpy_iterator())), expected, rtol=0, atol=1e-4)
        np.testing.assert_allclose(np.concatenate(list(batched.as_numpy_iterator())), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", sorted(KERAS_APPLICATIONS))
def test_keras_applications_kinds_save_load_round_trip(kind, rgb_images, tmp_path):
    path = tmp_path / "preprocessor.npz"
    Preprocessor(kind).save(str(path))
    loaded = Preprocessor.load(str(path))
    assert loaded.kind == kind and loaded.params == {} and loaded.image_shape is None
    np.testing.assert_allclose(loaded(tf.constant(rgb_images)).numpy(), _keras_reference(kind, rgb_images),
                               rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", ["caffe", "torch"])
def test_caffe_and_torch_refuse_one_channel_images_naming_the_fix(kind):
    grey = tf.zeros((2, 8, 8, 1), tf.uint8)
    pre = Preprocessor(kind)
    message = r"needs 3-channel RGB images.*Received images with 1 channel\(s\).*channels=3 \(--channels=3\)"
    with pytest.raises(ValueError, match=message):
        pre(grey)
    with pytest.raises(ValueError, match=message):
        pre(grey[0])
    with pytest.raises(ValueError, match=message):
        tf.data.Dataset.from_tensor_slices(grey).map(pre)
    # Without a static channel count the check happens when the images arrive.
    unknown = tf.function(pre, input_signature=[tf.TensorSpec([None, 8, 8, None], tf.uint8)])
    with pytest.raises(tf.errors.InvalidArgumentError):
        unknown(grey)
    assert unknown(tf.zeros((2, 8, 8, 3), tf.uint8)).shape == (2, 8, 8, 3)


@pytest.mark.parametrize("kind", ["raw", "tf"])
def test_raw_and_tf_take_any_number_of_channels(kind):
    grey = np.array([[[[0], [255]], [[51], [128]]]], np.uint8)
    out = Preprocessor(kind)(tf.constant(grey)).numpy()
    np.testing.assert_allclose(out, _keras_reference(kind, grey), rtol=0, atol=1e-4)


def test_fixed_kinds_take_no_parameters():
    with pytest.raises(ValueError, match=r"Preprocessing 'torch' takes no parameters\. Received: \['scale'\]"):
        Preprocessor.fit("torch", scale=2.0)


def test_gcn_zca_refuses_large_images_at_once(monkeypatch):
    from fitnets_tf.data import preprocessing

    def no_fitting(*args, **kwargs):
        raise AssertionError("fitting started: the refusal must come first (the matrix would need 91 GB)")

    monkeypatch.setattr(preprocessing, "_gcn_numpy", no_fitting)
    monkeypatch.setattr(np.linalg, "eigh", no_fitting)
    images = np.zeros((2, 224, 224, 3), np.uint8)
    with pytest.raises(ValueError) as info:
        Preprocessor.fit("gcn_zca", images)
    message = str(info.value)
    assert "150528 x 150528 floats (90.6 GB" in message  # D = 224 * 224 * 3, D^2 float32
    assert "at most D = H*W*C = 12288 (64x64x3)" in message
    assert "another preprocessing kind" in message and "smaller `image_size`" in message
    with pytest.raises(ValueError, match="16384 x 16384 floats"):
        Preprocessor.fit("gcn_zca", np.zeros((2, 64, 64, 4), np.uint8))  # one channel too many
