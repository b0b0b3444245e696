"""Input preprocessing: uint8 images -> float32 network inputs, identical in tf.data and in the exported model.

Kinds (`PREPROCESSING_KINDS`); the last four are the input conventions of keras.applications, named as the modes of
Keras's `preprocess_input`, so that a pretrained teacher gets the inputs it was trained on:

| kind    | x (raw pixels 0..255) ->                                  | for                                          |
|---------|-----------------------------------------------------------|----------------------------------------------|
| scale   | x / 255, in [0, 1]                                        | networks trained from scratch                |
| gcn_zca | GCN + ZCA whitening, fitted on the train images (below)   | the paper's CIFAR-10/100 networks            |
| raw     | x unchanged (the model rescales itself)                   | EfficientNet, EfficientNetV2, ConvNeXt,      |
|         |                                                           | RegNet, MobileNetV3                          |
| tf      | x / 127.5 - 1, in [-1, 1]                                 | MobileNet, MobileNetV2, ResNet*V2, Xception, |
|         |                                                           | InceptionV3, InceptionResNetV2, NASNet       |
| caffe   | RGB -> BGR, then minus the ImageNet means (103.939,       | ResNet50/101/152 (v1), VGG16, VGG19          |
|         | 116.779, 123.68) in BGR order; no scaling                 |                                              |
| torch   | (x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225] | DenseNet                                     |

Only "gcn_zca" is fitted; the others are fixed functions. "caffe" and "torch" take 3-channel (RGB) images only (load
grey data with `channels=3`). Each fixed kind is tested against `keras.applications.<family>.preprocess_input`.

"gcn_zca" is the paper's CIFAR preprocessing (Romero et al. 2015, Sec. 4.1, after Goodfellow et al. 2013), as in
pylearn2's `make_cifar10_gcn_whitened.py`: global contrast normalisation of each image x in R^D (D = H*W*C,
raw 0..255 values)
    x <- x - mean(x);   x <- scale * x / sqrt(sqrt_bias + sum(x**2))    (divisor < min_divisor -> 1)
so every image has L2 norm `scale` (pylearn2: scale=55, sqrt_bias=0, i.e. about unit variance per pixel for
D=3072), then ZCA whitening with statistics of the TRAIN images only:
    mu = E[x],  C = E[(x - mu)(x - mu)^T],  C + filter_bias * I = E diag(l) E^T,
    W = E diag(l ** -1/2) E^T,   x <- (x - mu) W
(pylearn2's `ZCA(filter_bias=0.1)`; the covariance divides by N). `filter_bias` must be > 0: GCN removes each
image's mean, so C is singular along the all-ones direction. W is D x D, so "gcn_zca" is refused above
D = `GCN_ZCA_MAX_DIM` = 12288 (64x64x3); at 224x224x3 W alone would be 91 GB.
"""
import math

import numpy as np
import tensorflow as tf

from fitnets_tf.io_utils import atomic_write_file

PREPROCESSING_KINDS = ("scale", "gcn_zca", "raw", "tf", "caffe", "torch")
RGB_KINDS = ("caffe", "torch")  # per-channel constants in RGB order: 3-channel images only
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # ImageNet pixel means (0..255) in B, G, R order
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)  # ImageNet means and standard deviations of x / 255, R, G, B
TORCH_STD_RGB = (0.229, 0.224, 0.225)
GCN_ZCA_DEFAULTS = {"scale": 55.0, "sqrt_bias": 0.0, "min_divisor": 1e-8, "filter_bias": 0.1}
GCN_ZCA_MAX_DIM = 64 * 64 * 3  # W is D x D: 12288^2 float64 = 1.2 GB while fitting; twice the side is 16x that
_FIT_CHUNK = 4096


def _check_kind(kind):
    if kind not in PREPROCESSING_KINDS:
        raise ValueError(f"Unknown preprocessing kind {kind!r}. Choose one of: {', '.join(PREPROCESSING_KINDS)}.")


def check_channels(kind, channels):
    """Raises ValueError if `kind` cannot take images with `channels` channels ("caffe" and "torch" need 3);
    `channels` None (not known yet) passes."""
    if kind in RGB_KINDS and channels is not None and channels != 3:
        raise ValueError(
            f"Preprocessing {kind!r} needs 3-channel RGB images (its ImageNet constants are per R, G, B channel). "
            f"Received images with {channels} channel(s). Load the data with channels=3 (--channels=3) to repeat "
            "grey images into RGB."
        )


def _check_gcn_zca_size(image_shape):
    dim = math.prod(image_shape)
    if dim > GCN_ZCA_MAX_DIM:
        gigabytes = dim * dim * 4 / 1e9
        raise ValueError(
            f"Preprocessing 'gcn_zca' on images {tuple(image_shape)} would need a ZCA matrix of D x D = {dim} x {dim} "
            f"floats ({gigabytes:.1f} GB in float32; fitting holds several in float64) and its eigendecomposition. "
            f"It takes images of at most D = H*W*C = {GCN_ZCA_MAX_DIM} (64x64x3). Choose another preprocessing kind "
            f"({', '.join(k for k in PREPROCESSING_KINDS if k != 'gcn_zca')}; a keras.applications teacher needs its "
            "own, see fitnets_tf.data.preprocessing) or a smaller `image_size`."
        )


def _gcn_params(kind, params):
    if kind != "gcn_zca":
        if params:
            raise ValueError(f"Preprocessing {kind!r} takes no parameters. Received: {sorted(params)}")
        return {}
    unknown = sorted(set(params) - set(GCN_ZCA_DEFAULTS))
    if unknown:
        raise ValueError(
            f"Unknown 'gcn_zca' parameter(s) {unknown}. Choose from: {', '.join(GCN_ZCA_DEFAULTS)}."
        )
    merged = {key: float(params.get(key, default)) for key, default in GCN_ZCA_DEFAULTS.items()}
    if merged["scale"] <= 0 or merged["filter_bias"] <= 0 or merged["sqrt_bias"] < 0 or merged["min_divisor"] <= 0:
        raise ValueError(
            "gcn_zca needs scale > 0, filter_bias > 0, sqrt_bias >= 0 and min_divisor > 0. "
            f"Received: {merged}"
        )
    return merged


def _gcn_numpy(flat, scale, sqrt_bias, min_divisor):
    flat = flat - flat.mean(axis=1, keepdims=True)
    divisor = np.sqrt(sqrt_bias + np.square(flat).sum(axis=1, keepdims=True)) / scale
    divisor[divisor < min_divisor] = 1.0
    return flat / divisor


class Preprocessor(tf.Module):
    """Maps uint8 images [B, H, W, C] or [H, W, C] to float32 inputs of the same shape, with pure TF ops.

    Build one with `Preprocessor.fit(kind, train_images)` (or `Preprocessor(kind)` for any kind but "gcn_zca", which
    needs no fitting), or `Preprocessor.load`.
    It is a `tf.Module`: the ZCA mean [D] and matrix [D, D] are non-trainable variables, so a serving module that
    holds the preprocessor as an attribute exports them with the SavedModel. Fit or load it outside
    `strategy.scope()`: it is an input-side object, not a replicated model weight.
    """

    def __init__(self, kind, image_shape=None, mean=None, matrix=None, params=None, name=None):
        """Wraps already-fitted statistics; most callers want `fit` or `load` instead.

        Args:
            kind: one of `PREPROCESSING_KINDS` (see the module docstring).
            image_shape: (H, W, C) the statistics were fitted on ("gcn_zca" only).
            mean: ZCA mean, shape [H*W*C] ("gcn_zca" only).
            matrix: ZCA matrix W, shape [H*W*C, H*W*C] ("gcn_zca" only).
            params: GCN/ZCA parameters (see `GCN_ZCA_DEFAULTS`); missing ones take the defaults.
            name: tf.Module name.
        """
        super().__init__(name=name or "preprocessor")
        _check_kind(kind)
        self.kind = kind
        self.params = _gcn_params(kind, dict(params or {}))
        self.image_shape = None if image_shape is None else tuple(int(d) for d in image_shape)
        if kind != "gcn_zca":
            self.mean = self.matrix = None
            return
        if self.image_shape is None or mean is None or matrix is None:
            raise ValueError("A 'gcn_zca' Preprocessor needs image_shape, mean and matrix; use Preprocessor.fit.")
        dim = math.prod(self.image_shape)
        mean, matrix = np.asarray(mean, np.float32), np.asarray(matrix, np.float32)
        if mean.shape != (dim,) or matrix.shape != (dim, dim):
            raise ValueError(
                f"For image_shape {self.image_shape} the ZCA mean must be [{dim}] and the matrix [{dim}, {dim}]. "
                f"Received: mean {mean.shape}, matrix {matrix.shape}"
            )
        self.mean = tf.Variable(mean, trainable=False, name="zca_mean")
        self.matrix = tf.Variable(matrix, trainable=False, name="zca_matrix")

    @classmethod
    def fit(cls, kind, train_images=None, max_examples=50000, **params):
        """Fits a preprocessor of `kind` on TRAIN images only (never validation or test).

        Args:
            kind: one of `PREPROCESSING_KINDS`; all but "gcn_zca" are fixed functions and ignore `train_images`.
            train_images: uint8 array [N, H, W, C] (see `images_to_numpy`).
            max_examples: fit on the first `max_examples` images at most (50000 = all of CIFAR's train).
            **params: "gcn_zca" parameters: scale=55, sqrt_bias=0, min_divisor=1e-8, filter_bias=0.1 (pylearn2's).

        Returns:
            A `Preprocessor`. The covariance is accumulated in float64 in chunks, so memory stays at a few [D, D]
            matrices (D = 3072 for CIFAR: ~75 MB each); the eigendecomposition takes seconds.

        Raises:
            ValueError: for "gcn_zca" on images with D = H*W*C > `GCN_ZCA_MAX_DIM` (64x64x3), before any work.
        """
        _check_kind(kind)
        merged = _gcn_params(kind, params)
        if kind != "gcn_zca":
            return cls(kind)
        images = np.asarray(train_images) if train_images is not None else None
        if images is not None and images.ndim == 4:
            _check_gcn_zca_size(images.shape[1:])
        if images is None or images.dtype != np.uint8 or images.ndim != 4 or len(images) < 2:
            got = None if images is None else f"{images.dtype} {images.shape}"
            raise ValueError(
                f"Preprocessor.fit('gcn_zca') needs uint8 train images [N >= 2, H, W, C]. Received: {got}. "
                "Use images_to_numpy(splits.train) to collect them."
            )
        images = images[:max_examples]
        num, dim = len(images), math.prod(images.shape[1:])
        total, outer = np.zeros(dim), np.zeros((dim, dim))
        for start in range(0, num, _FIT_CHUNK):
            chunk = images[start : start + _FIT_CHUNK].reshape(-1, dim).astype(np.float64)
            chunk = _gcn_numpy(chunk, merged["scale"], merged["sqrt_bias"], merged["min_divisor"])
            total += chunk.sum(axis=0)
            outer += chunk.T @ chunk
        mean = total / num
        covariance = outer / num - np.outer(mean, mean)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance + merged["filter_bias"] * np.eye(dim))
        matrix = (eigenvectors * eigenvalues ** -0.5) @ eigenvectors.T
        return cls("gcn_zca", images.shape[1:], mean, matrix, merged)

    def __call__(self, images):
        """Preprocesses uint8 images [B, H, W, C] or [H, W, C] into float32 of the same shape (graph-safe)."""
        images = tf.convert_to_tensor(images)
        if images.dtype != tf.uint8:
            raise TypeError(
                f"Preprocessor expects raw uint8 images (0..255). Received dtype {images.dtype.name}; "
                "pass the images before any scaling."
            )
        rank = images.shape.rank
        if rank not in (3, 4):
            raise ValueError(f"Preprocessor expects images [B, H, W, C] or [H, W, C]. Received shape {images.shape}")
        check_channels(self.kind, images.shape[-1])
        if self.kind in RGB_KINDS and images.shape[-1] is None:
            images = tf.ensure_shape(images, [None] * (rank - 1) + [3])
        x = tf.cast(images, tf.float32)
        # The fixed kinds in the arithmetic of keras.applications' `preprocess_input` (float32).
        if self.kind == "scale":
            return x / 255.0
        if self.kind == "raw":
            return x
        if self.kind == "tf":
            return x / 127.5 - 1.0
        if self.kind == "caffe":
            return tf.reverse(x, axis=[-1]) - tf.constant(CAFFE_MEAN_BGR, tf.float32)
        if self.kind == "torch":
            return (x / 255.0 - tf.constant(TORCH_MEAN_RGB, tf.float32)) / tf.constant(TORCH_STD_RGB, tf.float32)
        if not images.shape[-3:].is_compatible_with(self.image_shape):
            raise ValueError(
                f"This 'gcn_zca' Preprocessor was fitted on images {self.image_shape}; received {images.shape}. "
                "Fit one on this dataset's train images."
            )
        batch = x if rank == 4 else x[tf.newaxis]
        flat = tf.reshape(batch, [-1, math.prod(self.image_shape)])
        flat = flat - tf.reduce_mean(flat, axis=1, keepdims=True)
        divisor = tf.sqrt(self.params["sqrt_bias"] + tf.reduce_sum(tf.square(flat), axis=1, keepdims=True))
        divisor = divisor / self.params["scale"]
        divisor = tf.where(divisor < self.params["min_divisor"], tf.ones_like(divisor), divisor)
        white = tf.matmul(flat / divisor - self.mean, self.matrix)
        out = tf.reshape(white, tf.shape(batch))
        return out if rank == 4 else out[0]

    def save(self, path):
        """Writes the preprocessor to the .npz file `path` atomically (temp file in the same directory + rename)."""
        arrays = {"kind": np.array(self.kind)}
        if self.kind == "gcn_zca":
            arrays.update(
                image_shape=np.array(self.image_shape, np.int64),
                mean=self.mean.numpy(),
                matrix=self.matrix.numpy(),
                **{f"param_{key}": np.array(value) for key, value in self.params.items()},
            )
        atomic_write_file(path, lambda f: np.savez(f, **arrays), binary=True)

    @classmethod
    def load(cls, path):
        """Reads a preprocessor written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            kind = str(data["kind"])
            _check_kind(kind)
            if kind != "gcn_zca":
                return cls(kind)
            params = {key[len("param_") :]: float(data[key]) for key in data.files if key.startswith("param_")}
            return cls(kind, tuple(data["image_shape"]), data["mean"], data["matrix"], params)


def images_to_numpy(ds, limit=None):
    """Stacks the images of an unbatched (image uint8 [H, W, C], label) dataset into uint8 [N, H, W, C].

    Used to fit `Preprocessor`; `limit` keeps the first `limit` images (CIFAR's 50000 train images take 150 MB).
    """
    if limit is not None:
        ds = ds.take(limit)
    chunks = [images for images, _ in ds.batch(1024).as_numpy_iterator()]
    if not chunks:
        raise ValueError("images_to_numpy got an empty dataset; check the split it was given.")
    images = np.concatenate(chunks)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"images_to_numpy expects unbatched uint8 images [H, W, C]; got {images.dtype} batches "
            f"{images.shape}."
        )
    return images
