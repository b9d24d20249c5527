"""One training step in the portable math, and the contract every fast step must keep.

A step takes ``(params, state, x, targets, step, lr)`` and returns ``(params, state, loss, logits)``:
forward, loss, backward and the optimizer's update. What it computes besides the data is a `Recipe`.
`reference_step` is the definition; a backend may override it with a fast step (``xpnet.backend.fast``)
that must agree with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from . import losses, model
from .optim import DEFAULT, OPTIMIZERS, Hyper

StepFn = Callable[[Sequence[Any], Sequence[Any], Any, Any, int, float], tuple[list[Any], list[Any], Any, Any]]


class Recipe(NamedTuple):
    """What a training step computes: the activation, the optimizer with its hyperparameters, the L2 penalty."""

    activation: str = "relu"
    optimizer: str = "adam"
    # scikit-learn's alpha: the loss gains alpha / (2 n) * sum(W**2) over a batch of n rows, so each weight
    # matrix's gradient gains alpha / n * W (biases are not penalised).
    alpha: float = 0.0
    hyper: Hyper = DEFAULT


def add_penalty(params: Sequence[Any], grads: list[Any], alpha: float, n: int) -> list[Any]:
    """``grads`` with the L2 term ``alpha / n * W`` added to each weight matrix's gradient."""
    if alpha:
        scale = alpha / n
        for i in range(0, len(grads), 2):
            grads[i] = grads[i] + scale * params[i]
    return grads


def penalty(xp: Any, params: Sequence[Any], alpha: float, n: int) -> Any:
    """The L2 term of the loss over a batch of ``n`` rows, ``alpha / (2 n) * sum(W**2)``, a 0-d array."""
    return (0.5 * alpha / n) * sum(xp.sum(w * w) for w in params[0::2])


def reference_step(xp: Any, recipe: Recipe) -> StepFn:
    """One training step in the portable math: forward, loss, backward, penalty, update."""
    update, act = OPTIMIZERS[recipe.optimizer].update, recipe.activation

    def step_fn(params, state, x, targets, step, lr):
        logits, cache = model.forward(xp, params, x, act)
        loss, dlogits = losses.softmax_cross_entropy(xp, logits, targets)
        grads = add_penalty(params, model.backward(xp, params, cache, dlogits, act), recipe.alpha, x.shape[0])
        params, state = update(xp, params, grads, state, step, lr, recipe.hyper)
        return params, state, loss, logits

    return step_fn
