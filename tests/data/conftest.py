"""Fixtures for the data tests: no network, and small TFDS datasets written to a temporary data_dir."""

import ipaddress
import socket

import numpy as np
import pytest


def _is_local(address):
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fails any Python-level connection to a non-loopback address: these tests must run offline."""
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            raise AssertionError(f"A data test tried to reach the network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


def _examples(num, features, offset):
    """(key, example) pairs whose image is filled with its global index, so order and identity are checkable."""
    shape = features["image"].shape
    examples = []
    for i in range(num):
        example = {"image": np.full(shape, (offset + i) % 256, np.uint8), "label": (offset + i) % 10}
        if "id" in features:
            example["id"] = f"fake_{offset + i}"
        examples.append((str(i), example))
    return examples


FAKE_SIZES = {
    "mnist": {"train": 50, "test": 20},
    "svhn_cropped": {"train": 30, "test": 10, "extra": 20},
}
FAKE_OFFSETS = {"train": 0, "test": 100, "extra": 200}


@pytest.fixture(scope="session")
def fake_tfds_dir(tmp_path_factory):
    """A data_dir holding real on-disk TFDS 'mnist' and 'svhn_cropped' datasets with a few fake examples each.

    Image i of a split is filled with the value offset + i (train 0, test 100, extra 200), in file order.
    """
    import tensorflow_datasets as tfds

    data_dir = tmp_path_factory.mktemp("tfds")
    for name, sizes in FAKE_SIZES.items():
        features = tfds.builder(name).info.features
        tfds.dataset_builders.store_as_tfds_dataset(
            name=name,
            version=str(tfds.builder(name).version),
            features=features,
            split_datasets={split: _examples(n, features, FAKE_OFFSETS[split]) for split, n in sizes.items()},
            data_dir=str(data_dir),
            disable_shuffling=True,
        )
    return str(data_dir)
