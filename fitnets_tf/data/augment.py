"""Training-time augmentation of one image: random translation (zero-pad + random crop) and random mirror."""

import numbers

import tensorflow as tf


def augment(image, crop_padding, flip, seed=None):
    """Randomly translates and (if `flip`) mirrors one image [H, W, C]; returns the same shape and dtype.

    The image is zero-padded by `crop_padding` pixels on each side and a random H x W window is cut out of it:
    a translation by up to +-crop_padding pixels (pylearn2's `WindowAndFlip(pad_randomized=...)` in the paper's
    CIFAR runs). Applied to preprocessed inputs, the zero padding is the whitened data's mean.

    Args:
        image: float (or any dtype) tensor [H, W, C].
        crop_padding: int >= 0, padding per side; 0 disables cropping.
        flip: whether to mirror left-right with probability 1/2 (never for digits).
        seed: None for TF's stateful RNG, or an int tensor of shape [2] for deterministic stateless ops; give each
            image its own seed (a constant seed gives every image the same crop and flip).
    """
    if isinstance(crop_padding, bool) or not isinstance(crop_padding, numbers.Integral) or crop_padding < 0:
        raise ValueError(f"crop_padding must be an int >= 0. Received: crop_padding={crop_padding!r}")
    image = tf.convert_to_tensor(image)
    if image.shape.rank != 3:
        raise ValueError(f"augment expects one image [H, W, C]; map it over a batch. Received shape {image.shape}")
    crop_padding = int(crop_padding)
    if crop_padding == 0 and not flip:
        return image
    if seed is not None:
        seed = tf.convert_to_tensor(seed)
        if not seed.dtype.is_integer or not seed.shape.is_compatible_with([2]):
            raise ValueError(f"seed must be an int tensor of shape [2]. Received: {seed.dtype.name} {seed.shape}")
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    out = image
    if crop_padding:
        padding = [[crop_padding, crop_padding], [crop_padding, crop_padding], [0, 0]]
        padded = tf.pad(out, padding)
        size = tf.shape(out)
        if seed is None:
            out = tf.image.random_crop(padded, size)
        else:
            out = tf.image.stateless_random_crop(padded, size, seed=crop_seed)
    if flip:
        if seed is None:
            out = tf.image.random_flip_left_right(out)
        else:
            out = tf.image.stateless_random_flip_left_right(out, seed=flip_seed)
    return tf.ensure_shape(out, image.shape)
