"""A `jax.jit`-compiled training step: the reference step's body (`nn.step_body`), traced once per batch shape.

Run eagerly, JAX dispatches every operation on its own; compiled, the whole step (forward, loss, backward and
the update through the portable ``nn`` functions with ``xp = jax.numpy``) is one program that XLA fuses into a
few loops on a CPU and a few kernels on a GPU. The optimizer's host scalars (the rate, Adam's bias
corrections) are traced inputs, so the step compiles once per batch shape (twice an epoch at most), never per
update. The parameters and optimizer state are donated: XLA may write the new ones over the old buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as xp

from ...nn import OPTIMIZERS, Recipe, step_body


class JaxJitStep:
    """A compiled `xpnet.nn.StepFn`. ``params`` and ``state`` are donated: pass the returned ones back in, and
    do not read the arrays passed in after the call.

    ``sizes`` and ``dtype`` are those of the arrays it is given: the compiler reads them at trace time.
    """

    def __init__(self, sizes: Sequence[int], recipe: Recipe, dtype: Any):
        self.recipe, self.scalars = recipe, OPTIMIZERS[recipe.optimizer].scalars
        self._compiled = jax.jit(step_body(xp, recipe), donate_argnums=(0, 1))

    def __call__(self, params, state, x, targets, count, lr):
        # Python floats are traced as weakly typed scalars: the dtype of the arrays decides, as in NumPy.
        return self._compiled(list(params), list(state), x, targets, *self.scalars(lr, count, self.recipe.hyper))
