"""A PyTorch training step with fused, in-place updates: the reference step's operations, fewer kernels.

The reference step on PyTorch allocates every intermediate and runs Adam as about ten element-wise passes per
weight array. This step keeps the parameters and the optimizer's moments as views into one flat tensor each,
so the update is a handful of whole-model in-place operations, and writes the layers with ``addmm`` and
in-place activations. It performs the reference's operations in the same order, so results agree to float
rounding (the tests compare them). Why not ``torch.compile``: docs/benchmarks.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import array_api_compat.torch as xp
import torch

from ...nn import ACTIVATIONS, OPTIMIZERS, Recipe, param_shapes, softmax_cross_entropy
from . import adopt, views

# nn's activations written into their first tensor (relu's backward: a zero may come out as -0.0, equal to 0.0).
INPLACE = SimpleNamespace(
    add=torch.Tensor.add_,
    multiply=torch.Tensor.mul_,
    maximum=torch.Tensor.clamp_min_,
    tanh=torch.Tensor.tanh_,
    where=lambda keep, g, _: g.mul_(keep),
)


class TorchFusedStep:
    """An `xpnet.nn.StepFn` on the device of the batches it is given. The returned ``params`` and ``state`` are
    views into tensors this object owns and updates in place on the next call; pass them back in unchanged
    (other tensors are copied in first, never written to).
    """

    def __init__(self, sizes: Sequence[int], recipe: Recipe, dtype: Any):
        self.recipe, self.dtype, self.shapes = recipe, dtype, param_shapes(sizes)
        self.activation, self.optimizer = ACTIVATIONS[recipe.activation], OPTIMIZERS[recipe.optimizer]
        self.theta: torch.Tensor | None = None  # allocated on the first call, on the device of the batch

    def _allocate(self, device: torch.device) -> None:
        n = sum(math.prod(s) for s in self.shapes)
        self.theta, self.grad = (torch.zeros(n, dtype=self.dtype, device=device) for _ in range(2))
        self.params, self.grads = views(self.theta, self.shapes), views(self.grad, self.shapes)
        self.moments = [torch.zeros(n, dtype=self.dtype, device=device) for _ in self.optimizer.slots]
        self.state = [v for m in self.moments for v in views(m, self.shapes)]

    @torch.no_grad()
    def __call__(self, params, state, x, targets, count, lr):
        if self.theta is None or self.theta.device != params[0].device:
            self._allocate(params[0].device)
        adopt(self.params, params)
        adopt(self.state, state)
        ws, bs = self.params[0::2], self.params[1::2]
        outs, a = [], x
        for i, (w, b) in enumerate(zip(ws, bs)):
            z = torch.addmm(b, a, w)
            a = z if i == len(ws) - 1 else self.activation.forward(INPLACE, z)
            outs.append(a)
        logits = outs[-1]
        loss, delta = softmax_cross_entropy(xp, logits, targets)
        for i in reversed(range(len(ws))):
            a_in = x if i == 0 else outs[i - 1]
            torch.mm(a_in.T, delta, out=self.grads[2 * i])
            if self.recipe.alpha:  # + alpha / n * W, as nn.add_penalty
                self.grads[2 * i].add_(ws[i] * (self.recipe.alpha / x.shape[0]))
            torch.sum(delta, dim=0, out=self.grads[2 * i + 1])
            if i > 0:
                delta = self.activation.backward(INPLACE, a_in, delta @ ws[i].T)
        self._update(count, lr)
        return self.params, self.state, loss, logits

    def _update(self, count: int, lr: float) -> None:
        h = self.recipe.hyper
        rule = self.optimizer.rules[h.nesterov]
        self.theta.sub_(
            rule(torch.Tensor.mul_, torch.sqrt, self.grad, *self.moments, *self.optimizer.scalars(lr, count, h))[0]
        )
