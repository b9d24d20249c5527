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
from ...nn.optim import OPTIMIZERS, adam_apply, adam_scalars
from ...nn.step import Recipe, add_penalty


def host_scalars(recipe: Recipe, step: int, lr: float) -> tuple[float, float]:
    """The two scalars the traced body takes for this step and rate."""
    return adam_scalars(lr, step, recipe.hyper) if recipe.optimizer == "adam" else (lr, 0.0)


def traced_body(xp: Any, recipe: Recipe) -> Callable[..., tuple[list[Any], list[Any], Any, Any]]:
    """``body(params, state, x, targets, a, b) -> (params, state, loss, logits)`` in the portable math."""
    update, act = OPTIMIZERS[recipe.optimizer].update, recipe.activation

    def body(params, state, x, targets, a, b):
        logits, cache = model.forward(xp, params, x, act)
        loss, dlogits = losses.softmax_cross_entropy(xp, logits, targets)
        grads = add_penalty(params, model.backward(xp, params, cache, dlogits, act), recipe.alpha, x.shape[0])
        if recipe.optimizer == "adam":
            params, state = adam_apply(xp, params, grads, state, a, b, recipe.hyper)
        else:  # SGD and momentum read only the rate; the step count is unused
            params, state = update(xp, params, grads, state, 0, a, recipe.hyper)
        return params, state, loss, logits

    return body
