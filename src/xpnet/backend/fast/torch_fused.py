"""A PyTorch step with in-place updates (`InplaceStep`) on the device of its batches: the reference step's
operations, fewer kernels, each layer one ``addmm``. Why not ``torch.compile``: docs/benchmarks.md."""

import array_api_compat.torch as xp
import torch

from . import InplaceStep, passes


def _decay(s: torch.Tensor, a: float, x: torch.Tensor) -> torch.Tensor:
    return s.mul_(a).add_(x)


class TorchFusedStep(InplaceStep):
    lib, xp = torch, xp
    layer = staticmethod(lambda a, w, b, out: torch.addmm(b, a, w, out=out))
    ops = staticmethod(lambda scratch: passes(scratch, torch.sqrt, torch.mul, torch.add, torch.div, _decay))

    __call__ = torch.no_grad()(InplaceStep.__call__)
