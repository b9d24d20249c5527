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
from typing import Any

import array_api_compat.torch as xp
import torch

from ...nn import OPTIMIZERS, Recipe, adam_scalars, param_shapes, softmax_cross_entropy
from . import adopt, views


class TorchFusedStep:
    """An `xpnet.nn.StepFn` on the device of the batches it is given. The returned ``params`` and ``state`` are
    views into tensors this object owns and updates in place on the next call; pass them back in unchanged
    (other tensors are copied in first, never written to).
    """

    def __init__(self, sizes: Sequence[int], recipe: Recipe, dtype: Any):
        self.recipe, self.activation, self.optimizer, self.dtype = recipe, recipe.activation, recipe.optimizer, dtype
        self.shapes = param_shapes(sizes)
        self.theta: torch.Tensor | None = None  # allocated on the first call, on the device of the batch

    def _allocate(self, device: torch.device) -> None:
        n = sum(math.prod(s) for s in self.shapes)
        self.theta, self.grad = (torch.zeros(n, dtype=self.dtype, device=device) for _ in range(2))
        self.params, self.grads = views(self.theta, self.shapes), views(self.grad, self.shapes)
        self.moments = [torch.zeros(n, dtype=self.dtype, device=device) for _ in OPTIMIZERS[self.optimizer].slots]
        self.state = [v for m in self.moments for v in views(m, self.shapes)]

    def _activate(self, z: torch.Tensor) -> torch.Tensor:
        if self.activation == "relu":
            return z.relu_()
        if self.activation == "logistic":  # 0.5 * tanh(0.5 z) + 0.5, as nn.sigmoid
            return z.mul_(0.5).tanh_().mul_(0.5).add_(0.5)
        return z.tanh_()

    def _activate_backward(self, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if self.activation == "relu":  # where(a > 0, g, 0): a zero may come out as -0.0, which compares equal
            return g.mul_(a > 0)
        if self.activation == "logistic":
            return g.mul_(a).mul_(1.0 - a)
        return g.mul_(1.0 - a * a)

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
            a = z if i == len(ws) - 1 else self._activate(z)
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
                delta = self._activate_backward(a_in, delta @ ws[i].T)
        self._update(count, lr)
        return self.params, self.state, loss, logits

    def _update(self, count: int, lr: float) -> None:
        theta, g, h = self.theta, self.grad, self.recipe.hyper
        if self.optimizer == "sgd":
            theta.sub_(g * lr)
        elif self.optimizer == "momentum":
            (v,) = self.moments
            v.mul_(h.momentum).add_(g)
            theta.sub_((g + v * h.momentum if h.nesterov else v) * lr)
        else:  # Adam, in nn.adam_apply's order of operations
            m, v = self.moments
            step_size, root_bc2 = adam_scalars(lr, count, h)
            m.mul_(h.beta_1).add_(g * (1.0 - h.beta_1))
            v.mul_(h.beta_2).add_(g.square().mul_(1.0 - h.beta_2))
            denom = v.sqrt().div_(root_bc2).add_(h.epsilon)
            theta.sub_((m * step_size).div_(denom))
