import dataclasses

import pytest

from fitnets_tf.data import DATASETS, dataset_info


def test_every_dataset_has_info():
    assert DATASETS == ("digits", "mnist", "fashion_mnist", "svhn_cropped", "cifar10", "cifar100")
    shapes = {name: dataset_info(name).image_shape for name in DATASETS}
    assert shapes == {
        "digits": (8, 8, 1),
        "mnist": (28, 28, 1),
        "fashion_mnist": (28, 28, 1),
        "svhn_cropped": (32, 32, 3),
        "cifar10": (32, 32, 3),
        "cifar100": (32, 32, 3),
    }
    assert dataset_info("cifar100").num_classes == 100
    assert all(dataset_info(name).num_classes == 10 for name in DATASETS if name != "cifar100")


def test_digits_are_never_flipped_and_cifar_is():
    for name in ("digits", "mnist", "svhn_cropped"):
        assert dataset_info(name).allow_flip is False
    for name in ("cifar10", "cifar100"):
        info = dataset_info(name)
        assert info.allow_flip is True
        assert info.crop_padding == 8  # The paper's WindowAndFlip(pad_randomized=8).
        assert info.preprocessing == "gcn_zca"


def test_info_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        dataset_info("mnist").num_classes = 3


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match=r"Unknown dataset 'foo'\. Choose one of: digits, mnist, fashion_mnist, svhn_cropped"):
        dataset_info("foo")


def test_catalog_matches_tfds_builders():
    import tensorflow_datasets as tfds

    for name in DATASETS[1:]:
        features = tfds.builder(name).info.features
        info = dataset_info(name)
        assert features["image"].shape == info.image_shape
        assert features["label"].num_classes == info.num_classes
