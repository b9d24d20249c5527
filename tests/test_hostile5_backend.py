"""Hostile checks of the backends, the fast steps and the math (round 5)."""

import tracemalloc

import array_api_compat.numpy as xp
import numpy as np
import pytest

from xpnet.backend.fast.numpy_inplace import NumpyInplaceStep
from xpnet.nn import OPTIMIZERS, Hyper, Recipe, init_params, one_hot


@pytest.mark.parametrize(
    ("optimizer", "nesterov"), [("sgd", False), ("momentum", False), ("momentum", True), ("adam", False)]
)
def test_the_numpy_passes_allocate_no_temporary_the_size_of_the_weights(optimizer, nesterov):
    """Without Numba the update runs as NumPy passes; each temporary the size of the weights costs time (issue 31)."""
    sizes, rng = [784, 128, 10], np.random.default_rng(0)
    recipe = Recipe("relu", optimizer, alpha=0.01, hyper=Hyper(nesterov=nesterov))
    step = NumpyInplaceStep(sizes, recipe, "float32", compiled=False)
    params = init_params(rng, sizes, "relu", "float32")
    state = OPTIMIZERS[optimizer].init(xp, params)
    x, t = rng.random((8, 784), dtype=np.float32), one_hot(xp, rng.integers(0, 10, 8), 10, xp.float32)
    params, state, _, _ = step(params, state, x, t, 1, 1e-3)  # the first call allocates the step's buffers
    tracemalloc.start()
    try:
        step(params, state, x, t, 2, 1e-3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < step.theta.nbytes / 8
