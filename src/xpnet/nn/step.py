"""One training step in the portable math, and the contract every fast step must keep.

A step takes ``(params, state, x, targets, step, lr)`` and returns ``(params, state, loss, logits)``:
forward, loss, backward and the optimizer's update. `reference_step` is the definition; a backend may
override it with a fast step (``xpnet.backend.fast``) that must agree with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import losses, model
from .optim import OPTIMIZERS

StepFn = Callable[[Sequence[Any], Sequence[Any], Any, Any, int, float], tuple[list[Any], list[Any], Any, Any]]


def reference_step(xp: Any, activation: str, optimizer: str) -> StepFn:
    """One training step in the portable math: forward, loss, backward, update."""
    opt = OPTIMIZERS[optimizer]

    def step_fn(params, state, x, targets, step, lr):
        logits, cache = model.forward(xp, params, x, activation)
        loss, dlogits = losses.softmax_cross_entropy(xp, logits, targets)
        grads = model.backward(xp, params, cache, dlogits, activation)
        params, state = opt.update(xp, params, grads, state, step, lr)
        return params, state, loss, logits

    return step_fn
