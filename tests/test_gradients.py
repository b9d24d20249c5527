"""Hand-written backward passes against central finite differences, in float64."""

import array_api_compat.numpy as xp
import numpy as np
import pytest

from xpnet import nn
from xpnet.nn import init_params


def loss_of(params, x, targets, activation):
    logits, _ = nn.forward(xp, params, x, activation)
    return float(nn.softmax_cross_entropy(xp, logits, targets)[0])


@pytest.fixture
def batch():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5, 6))
    targets = nn.one_hot(xp, rng.integers(0, 4, size=5), 4, xp.float64)
    return rng, x, targets


@pytest.mark.parametrize("activation", sorted(nn.ACTIVATIONS))
def test_backward_matches_finite_differences(activation, batch):
    rng, x, targets = batch
    params = init_params(rng, [6, 7, 5, 4], activation, "float64")
    # Non-zero biases so that every bias gradient is exercised away from the initial point.
    params = [p + 0.1 * rng.normal(size=p.shape) for p in params]
    logits, cache = nn.forward(xp, params, x, activation)
    _, dlogits = nn.softmax_cross_entropy(xp, logits, targets)
    grads = nn.backward(xp, params, cache, dlogits, activation)

    h = 1e-6
    for p, g in zip(params, grads, strict=True):
        assert g.shape == p.shape
        numeric = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            saved = p[idx]
            p[idx] = saved + h
            up = loss_of(params, x, targets, activation)
            p[idx] = saved - h
            down = loss_of(params, x, targets, activation)
            p[idx] = saved
            numeric[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-9)


def test_cross_entropy_gradient_and_stability():
    rng = np.random.default_rng(3)
    targets = nn.one_hot(xp, np.array([0, 2, 1]), 3, xp.float64)
    logits = rng.normal(size=(3, 3))
    loss, dlogits = nn.softmax_cross_entropy(xp, logits, targets)
    h = 1e-6
    numeric = np.empty_like(logits)
    for idx in np.ndindex(logits.shape):
        bumped = logits.copy()
        bumped[idx] += h
        up = float(nn.softmax_cross_entropy(xp, bumped, targets)[0])
        bumped[idx] -= 2 * h
        down = float(nn.softmax_cross_entropy(xp, bumped, targets)[0])
        numeric[idx] = (up - down) / (2 * h)
    np.testing.assert_allclose(dlogits, numeric, rtol=1e-6, atol=1e-10)
    # Log-sum-exp keeps huge logits finite, and adding a constant to a row changes nothing.
    big, dbig = nn.softmax_cross_entropy(xp, logits + 1e4, targets)
    assert np.isfinite(big) and np.all(np.isfinite(dbig))
    np.testing.assert_allclose(big, loss, rtol=1e-9)


def test_sigmoid_does_not_overflow_in_float32():
    z = xp.asarray([-1000.0, 0.0, 1000.0], dtype=xp.float32)
    with np.errstate(all="raise"):
        a = nn.ACTIVATIONS["logistic"].forward(xp, z)
    np.testing.assert_allclose(a, [0.0, 0.5, 1.0])
    assert a.dtype == xp.float32


def test_one_hot():
    labels = xp.asarray([2, 0, 1])
    np.testing.assert_array_equal(nn.one_hot(xp, labels, 3, xp.float32), np.eye(3, dtype=np.float32)[[2, 0, 1]])
