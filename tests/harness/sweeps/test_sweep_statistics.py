"""Aggregation over seeds on hand values."""

import math

import pytest

from fitnets_tf.harness.sweeps.statistics import format_mean_std, mean_std


def test_mean_std_on_hand_values():
    stats = mean_std([0.90, 0.92, 0.94])
    assert stats["n"] == 3
    assert stats["mean"] == pytest.approx(0.92)
    assert stats["std"] == pytest.approx(0.02)  # sqrt((0.02^2 + 0 + 0.02^2) / 2)
    stats = mean_std([0.8, 1.0])
    assert stats["mean"] == pytest.approx(0.9)
    assert stats["std"] == pytest.approx(math.sqrt(0.02))
    assert mean_std([0.5]) == {"mean": 0.5, "std": None, "n": 1}
    assert mean_std([]) == {"mean": None, "std": None, "n": 0}


def test_format_mean_std_in_percent():
    assert format_mean_std({"mean": 0.91234, "std": 0.00451, "n": 3}) == "91.23 ± 0.45"
    assert format_mean_std({"mean": 0.5, "std": None, "n": 1}) == "50.00"
    assert format_mean_std({"mean": None, "std": None, "n": 0}) == "-"
