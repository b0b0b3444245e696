"""Golden values for the FitNets losses: NumPy formulas and a hand-computed example."""

import numpy as np
import pytest

from fitnets_tf.losses import cross_entropy, hint_loss, kd_loss, soft_cross_entropy


def np_softmax(a):
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_hint_loss_hand_computed():
    hint = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], "float32")
    regressed = np.array([[1.0, 0.0, 4.0], [1.0, 1.0, 1.0]], "float32")
    # example 1: 0.5 * (0 + 4 + 1) = 2.5; example 2: 0.5 * 3 = 1.5
    np.testing.assert_allclose(np.asarray(hint_loss(hint, regressed)), [2.5, 1.5], rtol=1e-6)


def test_hint_loss_sums_over_all_features_of_a_map():
    rng = np.random.default_rng(0)
    u, r = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5))
    expected = 0.5 * ((u - r) ** 2).reshape(2, -1).sum(axis=1)
    np.testing.assert_allclose(np.asarray(hint_loss(u, r)), expected, rtol=1e-5)
    # The original code's reduction: sum over channels, mean over positions.
    expected_code = 0.5 * ((u - r) ** 2).sum(axis=-1).reshape(2, -1).mean(axis=1)
    np.testing.assert_allclose(np.asarray(hint_loss(u, r, spatial_mean=True)), expected_code, rtol=1e-5)


def test_hint_loss_is_float32_for_float16_inputs():
    u = np.ones((2, 4), "float16")
    assert hint_loss(u, u * 0).dtype == "float32"


def test_cross_entropy_matches_numpy():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(5, 4)), np.array([0, 3, 1, 2, 3])
    expected = -np.log(np_softmax(logits)[np.arange(5), labels])
    np.testing.assert_allclose(np.asarray(cross_entropy(labels, logits)), expected, rtol=1e-5)


@pytest.mark.parametrize("tau_squared", [False, True])
def test_kd_loss_matches_numpy(tau_squared):
    rng = np.random.default_rng(2)
    s, t, y = rng.normal(size=(6, 10)) * 3, rng.normal(size=(6, 10)) * 3, rng.integers(0, 10, 6)
    tau, lam = 3.0, 2.5
    ce = -np.log(np_softmax(s)[np.arange(6), y])
    soft = -(np_softmax(t / tau) * np.log(np_softmax(s / tau))).sum(-1)
    expected = ce + lam * (tau**2 if tau_squared else 1.0) * soft
    total, got_ce, got_soft = kd_loss(y, s, t, tau, lam, tau_squared)
    np.testing.assert_allclose(np.asarray(total), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(got_ce), ce, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(got_soft), soft, rtol=1e-5)


def test_kd_loss_hand_computed_two_classes():
    # Teacher logits (0, 0) -> P_T^tau = (1/2, 1/2) at any tau; student logits (ln 3, 0) at tau = 1 -> (3/4, 1/4).
    student = np.array([[np.log(3.0), 0.0]], "float32")
    teacher = np.zeros((1, 2), "float32")
    total, ce, soft = kd_loss(np.array([0]), student, teacher, temperature=1.0, kd_lambda=4.0)
    np.testing.assert_allclose(np.asarray(ce), [-np.log(0.75)], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(soft), [-(0.5 * np.log(0.75) + 0.5 * np.log(0.25))], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(total), np.asarray(ce) + 4.0 * np.asarray(soft), rtol=1e-5)


def test_soft_cross_entropy_is_minimised_by_matching_the_teacher():
    t = np.array([[2.0, 0.5, -1.0]])
    at_teacher = float(np.asarray(soft_cross_entropy(t, t, 3.0))[0])
    entropy = -(np_softmax(t / 3.0) * np.log(np_softmax(t / 3.0))).sum()
    np.testing.assert_allclose(at_teacher, entropy, rtol=1e-5)
    assert float(np.asarray(soft_cross_entropy(t, t + np.array([[0.0, 1.0, 0.0]]), 3.0))[0]) > at_teacher


def test_kd_loss_float32_under_float16_logits():
    s = np.zeros((2, 3), "float16")
    total, ce, soft = kd_loss(np.array([0, 1]), s, s, 3.0, 1.0)
    assert total.dtype == ce.dtype == soft.dtype == "float32"
