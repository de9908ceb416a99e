import math

import numpy as np
import pytest

from cbal.strategies import scores


def test_entropy_hand_values():
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]])
    got = scores.entropy(p)
    want = [math.log(2), 0.0, -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    uniform = scores.entropy(np.full((1, 10), 0.1))
    np.testing.assert_allclose(uniform, [math.log(10)])


def test_entropy_exact_zero_and_one_are_finite():
    p = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    got = scores.entropy(p)
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got, [0.0, 0.0])


def test_bald_hand_values():
    # two passes disagreeing completely: H(mean) = log 2, mean H = 0 -> MI = log 2
    mc = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    np.testing.assert_allclose(scores.bald(mc), [math.log(2)])
    # agreeing passes carry no mutual information, even when uncertain
    mc = np.array([[[0.5, 0.5]], [[0.5, 0.5]]])
    np.testing.assert_allclose(scores.bald(mc), [0.0], atol=1e-15)
    # a hand-computed mixed case
    a, b = np.array([0.9, 0.1]), np.array([0.3, 0.7])
    m = (a + b) / 2
    h = lambda q: -np.sum(q * np.log(q))  # noqa: E731
    mc = np.stack([a[None], b[None]])
    np.testing.assert_allclose(scores.bald(mc), [h(m) - (h(a) + h(b)) / 2], rtol=1e-12)


def test_bald_shape_and_nan_errors():
    with pytest.raises(ValueError, match="mc_probs"):
        scores.bald(np.ones((3, 2)))
    with pytest.raises(ValueError, match="probs"):
        scores.entropy(np.array([[np.nan, 1.0]]))


def test_margin_and_top_k_ties():
    p = np.array([[0.6, 0.4], [0.9, 0.1], [0.5, 0.5]])
    np.testing.assert_allclose(scores.margin(p), [0.8, 0.2, 1.0])
    np.testing.assert_array_equal(scores.top_k(np.array([1.0, 3.0, 3.0, 2.0]), 3), [1, 2, 3])
