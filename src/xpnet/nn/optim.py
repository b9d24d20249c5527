"""Optimizers as pure functions: ``update(xp, params, grads, state, step, lr, hyper) -> (params, state)``.

``state`` is a flat list of arrays (empty for plain SGD), so a checkpoint can store it as it is. ``step``
counts updates from 1 and stays a host integer: bias corrections are computed in Python, not on the
device. Updates are functional (``p - lr * g``) so that immutable arrays (JAX) work too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

Params = list[Any]



class Hyper(NamedTuple):
    """The optimizers' hyperparameters, with scikit-learn's names and defaults; each update reads its own."""

    momentum: float = 0.9
    nesterov: bool = False  # momentum only: step along g + momentum * v (PyTorch's form of Nesterov's method)
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8


DEFAULT = Hyper()


class Optimizer(NamedTuple):
    """An update rule and the state it keeps: one array per weight array for each of its ``slots``."""

    slots: tuple[str, ...]  # e.g. ("m", "v"): the state is [m_1..m_k, v_1..v_k], each shaped like its weight
    update: Callable[[Any, Sequence[Any], Sequence[Any], Sequence[Any], int, float, Hyper], tuple[Params, list[Any]]]
    default_lr: float

    def init(self, xp: Any, params: Sequence[Any]) -> list[Any]:
        """The initial state: zeros for every slot and weight array, in slot-major order."""
        return [xp.zeros_like(p) for _ in self.slots for p in params]

    def state_shapes(self, shapes: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """The state's array shapes for weight arrays of ``shapes``, in the order `init` makes them."""
        return [s for _ in self.slots for s in shapes]


def sgd_update(xp, params, grads, state, step, lr, h=DEFAULT):
    """Plain gradient descent, the blog post's rule: ``p <- p - lr * g``."""
    return [p - lr * g for p, g in zip(params, grads)], []


def momentum_update(xp, params, grads, state, step, lr, h=DEFAULT):
    """Heavy-ball momentum as PyTorch writes it: ``v <- mu v + g``, ``p <- p - lr v``; with ``h.nesterov``,
    ``p <- p - lr (g + mu v)``."""
    mu = h.momentum
    velocity = [mu * v + g for v, g in zip(state, grads)]
    steps = [g + mu * v for g, v in zip(grads, velocity)] if h.nesterov else velocity
    return [p - lr * d for p, d in zip(params, steps)], velocity


def adam_scalars(lr: float, step: int, h: Hyper = DEFAULT) -> tuple[float, float]:
    """Adam's bias corrections folded into two host scalars: (step size, sqrt(1 - beta_2**step))."""
    return lr / (1.0 - h.beta_1**step), math.sqrt(1.0 - h.beta_2**step)


def adam_update(xp, params, grads, state, step, lr, h=DEFAULT):
    """Adam (Kingma & Ba) with bias correction, as PyTorch computes it; ``state`` is ``[m_1..m_k, v_1..v_k]``."""
    return adam_apply(xp, params, grads, state, *adam_scalars(lr, step, h), h)


def adam_apply(xp, params, grads, state, step_size, root_bc2, h=DEFAULT):
    """Adam's update given its two scalars (`adam_scalars`), which a tracing compiler takes as inputs."""
    k, b1, b2 = len(params), h.beta_1, h.beta_2
    m = [b1 * m_ + (1.0 - b1) * g for m_, g in zip(state[:k], grads)]
    v = [b2 * v_ + (1.0 - b2) * (g * g) for v_, g in zip(state[k:], grads)]
    new = [p - step_size * m_ / (xp.sqrt(v_) / root_bc2 + h.epsilon) for p, m_, v_ in zip(params, m, v)]
    return new, m + v


OPTIMIZERS: dict[str, Optimizer] = {
    "sgd": Optimizer((), sgd_update, 0.1),
    "momentum": Optimizer(("velocity",), momentum_update, 0.05),
    "adam": Optimizer(("m", "v"), adam_update, 1e-3),
}
