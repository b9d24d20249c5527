"""A `jax.jit`-compiled training step: the reference math of `model`, `losses` and `optim`, traced once.

Run eagerly, JAX dispatches every operation of a step on its own (2.8x slower than a compiled step in
issue 12). Here the whole step (forward, loss, backward through the portable ``nn`` functions with
``xp = jax.numpy``, and the optimizer's update; `traced.traced_body`) is one compiled program per batch
shape, which XLA fuses into a few loops on a CPU and a few kernels on a GPU.

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

from ...nn import model
from ...nn.optim import OPTIMIZERS
from ...nn.step import Recipe
from .traced import host_scalars, traced_body


class JaxJitStep:
    """A callable ``(params, state, x, targets, step, lr) -> (params, state, loss, logits)``, compiled.

    ``params`` and ``state`` are donated to the compiled step: pass the returned ones back in, and do not
    read the arrays passed in after the call.
    """

    def __init__(self, recipe: Recipe, donate: bool = True):
        self.recipe = recipe
        self._compiled = jax.jit(traced_body(xp, recipe), donate_argnums=(0, 1) if donate else ())

    def __call__(self, params, state, x, targets, step, lr):
        # Python floats are traced as weakly typed scalars: the dtype of the arrays decides, as in NumPy.
        a, b = host_scalars(self.recipe, step, lr)
        return self._compiled(list(params), list(state), x, targets, a, b)


def make_step(sizes: Sequence[int], recipe: Recipe, dtype: Any) -> JaxJitStep | None:
    """The compiled step for this model, or None for an optimizer it does not know."""
    if recipe.optimizer not in OPTIMIZERS or recipe.activation not in model.ACTIVATIONS:
        return None
    return JaxJitStep(recipe)
