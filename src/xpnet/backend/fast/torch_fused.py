"""A PyTorch step with in-place updates (`InplaceStep`) on the device of its batches: the reference step's
operations, fewer kernels, each layer one ``addmm``. Why not ``torch.compile``: docs/benchmarks.md."""

from types import SimpleNamespace

import array_api_compat.torch as xp
import torch

from ...nn import Ops
from . import InplaceStep


class TorchFusedStep(InplaceStep):
    # nn's activations written into their first tensor (relu's backward: a zero may come out as -0.0); its rules'
    # slots updated in place.
    lib, xp = torch, xp
    ops = staticmethod(lambda scratch: Ops(torch.sqrt, decay=lambda s, a, x: s.mul_(a).add_(x)))
    inplace = SimpleNamespace(
        add=torch.Tensor.add_,
        multiply=torch.Tensor.mul_,
        maximum=torch.Tensor.clamp_min_,
        tanh=torch.Tensor.tanh_,
        where=lambda keep, g, _: g.mul_(keep),
    )

    def layer(self, a: torch.Tensor, w: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> None:
        torch.addmm(b, a, w, out=out)

    __call__ = torch.no_grad()(InplaceStep.__call__)
