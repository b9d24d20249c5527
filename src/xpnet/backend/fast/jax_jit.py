"""A `jax.jit`-compiled training step: the reference math of `model`, `losses` and `optim`, traced once.

Run eagerly, JAX dispatches every operation of a step on its own (2.8x slower than a compiled step in
issue 12). Here the whole step (forward, loss, backward through the portable ``nn`` functions with
``xp = jax.numpy``, and the optimizer's update) is one compiled program per batch shape, which XLA fuses
into a few loops on a CPU and a few kernels on a GPU.

The learning rate and Adam's bias corrections change from call to call: they are passed in as traced
scalars, so the step compiles once per batch shape (twice an epoch at most) and never per step. The
parameters and optimizer state are donated: XLA may write the new ones over the old buffers, so the
arrays passed in must not be used again (the training loop never does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as xp

from ...nn import losses, model
from ...nn.optim import ADAM_B1, ADAM_B2, ADAM_EPS, OPTIMIZERS, adam_scalars


def _forward_backward(params: Sequence[Any], x: Any, targets: Any, activation: str) -> tuple[Any, Any, list[Any]]:
    logits, cache = model.forward(xp, params, x, activation)
    loss, dlogits = losses.softmax_cross_entropy(xp, logits, targets)
    return loss, logits, model.backward(xp, params, cache, dlogits, activation)


def _adam(params, grads, state, step_size, root_bc2):
    # optim.adam_update in the same order of operations, with its two host scalars (optim.adam_scalars)
    # traced rather than computed from a Python step count, which would be a constant of the compiled code.
    k = len(params)
    m = [ADAM_B1 * m_ + (1.0 - ADAM_B1) * g for m_, g in zip(state[:k], grads)]
    v = [ADAM_B2 * v_ + (1.0 - ADAM_B2) * (g * g) for v_, g in zip(state[k:], grads)]
    new = [p - step_size * m_ / (xp.sqrt(v_) / root_bc2 + ADAM_EPS) for p, m_, v_ in zip(params, m, v)]
    return new, m + v


class JaxJitStep:
    """A callable ``(params, state, x, targets, step, lr) -> (params, state, loss, logits)``, compiled.

    ``params`` and ``state`` are donated to the compiled step: pass the returned ones back in, and do not
    read the arrays passed in after the call.
    """

    def __init__(self, activation: str, optimizer: str, donate: bool = True):
        self.optimizer = optimizer
        update = OPTIMIZERS[optimizer].update

        def body(params, state, x, targets, a, b):
            loss, logits, grads = _forward_backward(params, x, targets, activation)
            if optimizer == "adam":
                params, state = _adam(params, grads, state, a, b)
            else:  # SGD and momentum read only the rate, which is traced as ``a``; the step is unused
                params, state = update(xp, params, grads, state, 0, a)
            return params, state, loss, logits

        self._compiled = jax.jit(body, donate_argnums=(0, 1) if donate else ())

    def __call__(self, params, state, x, targets, step, lr):
        # Python floats are traced as weakly typed scalars: the dtype of the arrays decides, as in NumPy.
        a, b = adam_scalars(lr, step) if self.optimizer == "adam" else (lr, 0.0)
        return self._compiled(list(params), list(state), x, targets, a, b)


def make_step(sizes: Sequence[int], activation: str, optimizer: str, dtype: Any) -> JaxJitStep | None:
    """The compiled step for this model, or None for an optimizer it does not know."""
    if optimizer not in OPTIMIZERS or activation not in model.ACTIVATIONS:
        return None
    return JaxJitStep(activation, optimizer)
