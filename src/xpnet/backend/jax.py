"""JAX arrays on the CPU or a CUDA GPU, with a `jax.jit`-compiled fast step (``fast/jax_jit.py``)."""

from __future__ import annotations

import numpy as np

from ..errors import BackendError
from . import Backend, BackendSpec, Probe, cuda_index, import_library


def make(device: str) -> Backend:
    jax = import_library(SPEC)
    # Without x64 JAX silently makes float64 float32 and int64 int32 (a global flag, set before arrays exist);
    # "highest" keeps GPU matmuls out of TF32, as the other libraries do (docs/agreement.md).
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    if device == "cpu":
        dev = jax.devices("cpu")[0]
    else:
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:
            hint = "install jax[cuda12] (or jax[cuda13]) and a driver"
            raise BackendError(f"JAX has no CUDA device here: {hint}") from None
        dev = gpus[cuda_index(device, len(gpus), "JAX")]
    import jax.numpy as xp

    # JAX has no device-wide barrier: a tiny computation queued on the device and waited for stands in.
    return Backend("jax", xp, dev, device, np.asarray, lambda: (xp.zeros((), device=dev) + 1).block_until_ready())


def probe() -> Probe:
    import jax

    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    kinds = f"; {', '.join(g.device_kind for g in gpus)}" if gpus else " (no GPU)"
    return Probe("jax", True, f"jax {jax.__version__}{kinds}", ("cpu", *(f"cuda:{i}" for i in range(len(gpus)))))


SPEC = BackendSpec(
    name="jax", module="jax", kinds=("cpu", "cuda"), make=make, probe=probe,
    install_hint='pip install jax (CPU) or "jax[cuda12]"', order=3, fast_class="jax_jit.JaxJitStep",
    device_of=lambda d: "cpu" if d.platform == "cpu" else f"cuda:{d.id}",
)  # fmt: skip
