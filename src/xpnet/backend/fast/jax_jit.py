"""A `jax.jit`-compiled training step: the reference step's body (`nn.step_body`) as one program XLA fuses; the host
scalars are traced, so it compiles once per batch shape, never per update; parameters and state are donated."""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as xp

from ...nn import OPTIMIZERS, Recipe, step_body


class JaxJitStep:
    """A compiled `xpnet.nn.StepFn`: pass the returned ``params`` and ``state`` back in, and do not read the
    donated ones after the call. Shapes and dtype are read from the arrays at trace time."""

    def __init__(self, sizes: Sequence[int], recipe: Recipe, dtype: Any):
        self.recipe, self.scalars = recipe, OPTIMIZERS[recipe.optimizer].scalars
        self._compiled = jax.jit(step_body(xp, recipe), donate_argnums=(0, 1))

    def __call__(self, params, state, x, targets, count, lr, weights=None):
        # Python floats are traced as weakly typed scalars: the dtype of the arrays decides, as in NumPy.
        scalars = self.scalars(lr, count, self.recipe.hyper)
        return self._compiled(list(params), list(state), x, targets, weights, *scalars)
