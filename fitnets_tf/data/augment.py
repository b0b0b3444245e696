"""Training-time augmentation of one image: random translation (zero-pad + random crop) and random mirror."""

import dataclasses
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


AUGMENTATIONS = ("pad_crop", "random_resized_crop", "none")
# ImageNet-style random resized crop (Szegedy et al. 2015; torchvision's and keras_cv's defaults).
RRC_AREA = (0.08, 1.0)
RRC_ASPECT = (3 / 4, 4 / 3)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """The training augmentation of one data set.

    kind: "pad_crop" (a random window of the image zero-padded by `crop_padding` pixels per side, applied to the
        preprocessed image, as the paper's CIFAR runs did), "random_resized_crop" (a random box of `area` of the
        image's area and aspect ratio in `aspect`, resized back to the image's size, applied to the uint8 image)
        or "none".
    flip: random horizontal mirror (with any kind).
    """

    kind: str = "none"
    crop_padding: int = 0
    flip: bool = False
    area: tuple = RRC_AREA
    aspect: tuple = RRC_ASPECT

    def __post_init__(self):
        if self.kind not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}. Received: {self.kind!r}")
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, numbers.Integral) or (
                self.crop_padding < 0):
            raise ValueError(f"crop_padding must be an int >= 0. Received: crop_padding={self.crop_padding!r}")
        if self.kind == "pad_crop" and not self.crop_padding:
            raise ValueError("augmentation 'pad_crop' needs crop_padding >= 1 (pixels of zero padding per side).")

    @property
    def active(self):
        """Whether the training images change from epoch to epoch."""
        return self.kind != "none" or self.flip

    @classmethod
    def resolve(cls, info, kind=None, crop_padding=None, flip=None):
        """The augmentation of the data set of `info` (a `DatasetInfo`), each setting None taking its default.

        A `crop_padding` given without a kind means pad_crop (0: none), as before kinds existed."""
        padding = info.crop_padding if crop_padding is None else int(crop_padding)
        if kind is None:
            kind = info.augmentation
            if crop_padding is not None:
                kind = "pad_crop" if padding else ("none" if kind == "pad_crop" else kind)
        if kind == "pad_crop" and not padding:
            padding = 4  # the usual CIFAR-style translation when the data set has no default
        return cls(kind, padding if kind == "pad_crop" else 0, info.allow_flip if flip is None else bool(flip))

    def to_json(self):
        out = {"kind": self.kind, "flip": self.flip}
        if self.kind == "pad_crop":
            out["crop_padding"] = self.crop_padding
        if self.kind == "random_resized_crop":
            out.update(area=list(self.area), aspect=list(self.aspect))
        return out


def random_resized_crop(image, seed, area=RRC_AREA, aspect=RRC_ASPECT):
    """A random box of `area` (fraction of the image's area) and `aspect` (width / height) cut out of one uint8
    image [H, W, C] and resized (bilinear) back to [H, W, C] uint8: the ImageNet-style crop, stateless.

    `seed`: int tensor [2]; the same seed gives the same box. When 10 draws find no box inside the image, the
    whole image is kept (`tf.image.stateless_sample_distorted_bounding_box`'s fall-back)."""
    image = tf.convert_to_tensor(image)
    if image.shape.rank != 3:
        raise ValueError(f"random_resized_crop expects one image [H, W, C]. Received shape {image.shape}")
    shape = tf.shape(image)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed, min_object_covered=0.0,
        aspect_ratio_range=aspect, area_range=area, max_attempts=10, use_image_if_no_bounding_boxes=True)
    box = tf.slice(image, begin, size)
    resized = tf.image.resize(box, shape[:2], method="bilinear")
    out = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), image.dtype)
    return tf.ensure_shape(out, image.shape)
