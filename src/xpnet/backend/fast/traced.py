"""The reference step as one function of arrays and two scalars, for a compiler to trace (jax.jit, torch.compile).

The reference step takes the step count as a Python integer and folds Adam's bias corrections into host
scalars (`optim.adam_scalars`). A tracing compiler would make those constants of the compiled code and
recompile every step; here they are computed on the host and passed in as two traced scalars ``a, b``
(Adam: step size and sqrt(1 - b2**step); SGD and momentum: the rate and an unused 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...nn import losses, model
from ...nn.optim import ADAM_B1, ADAM_B2, ADAM_EPS, OPTIMIZERS, adam_scalars


def host_scalars(optimizer: str, step: int, lr: float) -> tuple[float, float]:
    """The two scalars the traced body takes for this step and rate."""
    return adam_scalars(lr, step) if optimizer == "adam" else (lr, 0.0)


def _adam(xp: Any, params, grads, state, step_size, root_bc2):
    # optim.adam_update in the same order of operations, with its two host scalars traced.
    k = len(params)
    m = [ADAM_B1 * m_ + (1.0 - ADAM_B1) * g for m_, g in zip(state[:k], grads)]
    v = [ADAM_B2 * v_ + (1.0 - ADAM_B2) * (g * g) for v_, g in zip(state[k:], grads)]
    new = [p - step_size * m_ / (xp.sqrt(v_) / root_bc2 + ADAM_EPS) for p, m_, v_ in zip(params, m, v)]
    return new, m + v


def traced_body(xp: Any, activation: str, optimizer: str) -> Callable[..., tuple[list[Any], list[Any], Any, Any]]:
    """``body(params, state, x, targets, a, b) -> (params, state, loss, logits)`` in the portable math."""
    update = OPTIMIZERS[optimizer].update

    def body(params, state, x, targets, a, b):
        logits, cache = model.forward(xp, params, x, activation)
        loss, dlogits = losses.softmax_cross_entropy(xp, logits, targets)
        grads = model.backward(xp, params, cache, dlogits, activation)
        if optimizer == "adam":
            params, state = _adam(xp, params, grads, state, a, b)
        else:  # SGD and momentum read only the rate; the step count is unused
            params, state = update(xp, params, grads, state, 0, a)
        return params, state, loss, logits

    return body
