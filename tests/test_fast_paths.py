"""Each backend fast path against the reference step it overrides."""

import array_api_compat.numpy as xp
import numpy as np
import pytest

from xpnet.backend.fast.numpy_inplace import NumpyInplaceStep
from xpnet.nn import losses, model
from xpnet.nn.initializers import init_params
from xpnet.nn.optim import OPTIMIZERS
from xpnet.nn.step import reference_step


def run_steps(step_fn, params, state, batches, lr):
    trace = []
    for step, (x, t) in enumerate(batches, start=1):
        # The rate changes between steps, as it does between epochs, so it must be read on every call.
        params, state, loss, logits = step_fn(params, state, x, t, step, lr * 0.8 ** (step // 3))
        # Copy: the in-place step overwrites its outputs on the next call.
        trace.append((float(loss), np.array(logits), [np.array(p) for p in params], [np.array(s) for s in state]))
    return trace


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", sorted(model.ACTIVATIONS))
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_numpy_inplace_step_equals_the_reference(optimizer, activation, dtype):
    rng = np.random.default_rng(5)
    sizes = [12, 9, 7, 10]
    params = init_params(rng, sizes, activation, dtype)
    lr = {"sgd": 0.1, "momentum": 0.05, "adam": 1e-2}[optimizer]
    # Two batch sizes, as at the end of an epoch, so both sets of buffers are used.
    batches = []
    for n in (16, 16, 5, 16, 16, 5):
        x = rng.random((n, sizes[0])).astype(dtype)
        batches.append((x, losses.one_hot(xp, rng.integers(0, 10, n), 10, getattr(xp, dtype))))

    init = OPTIMIZERS[optimizer].init
    ref = run_steps(reference_step(xp, activation, optimizer), params, init(xp, params), batches, lr)
    fast = run_steps(NumpyInplaceStep(sizes, activation, optimizer, dtype), params, init(xp, params), batches, lr)

    # Equal values (assert_array_equal treats -0.0 and 0.0 as equal: relu's backward may give either).
    for (l_ref, z_ref, p_ref, s_ref), (l_fast, z_fast, p_fast, s_fast) in zip(ref, fast, strict=True):
        assert l_ref == l_fast
        np.testing.assert_array_equal(z_ref, z_fast)
        for a, b in zip(p_ref + s_ref, p_fast + s_fast, strict=True):
            assert a.dtype == b.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(a, b)
    # The caller's initial arrays were copied in, never written to.
    np.testing.assert_array_equal(params[0], init_params(np.random.default_rng(5), sizes, activation, dtype)[0])
