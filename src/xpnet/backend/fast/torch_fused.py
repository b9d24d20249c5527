"""A PyTorch step with in-place updates (`InplaceStep`) on the device of its batches: the reference step's
operations, fewer kernels, each layer one ``addmm``. Why not ``torch.compile``: docs/benchmarks.md."""

import array_api_compat.torch as xp
import torch

from ...nn import Ops
from . import InplaceStep


class TorchFusedStep(InplaceStep):
    lib, xp = torch, xp
    layer = staticmethod(lambda a, w, b, out: torch.addmm(b, a, w, out=out))
    ops = staticmethod(lambda scratch: Ops(torch.sqrt, decay=lambda s, a, x: s.mul_(a).add_(x)))  # slots in place

    __call__ = torch.no_grad()(InplaceStep.__call__)
