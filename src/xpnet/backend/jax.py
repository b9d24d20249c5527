"""JAX arrays on the CPU or a CUDA GPU, with a `jax.jit`-compiled fast step (``fast/jax_jit.py``)."""

import numpy as np

from ..errors import BackendError
from . import Backend, BackendSpec, Probe, cuda_index

HINT = 'pip install jax (CPU) or "jax[cuda12]"'


def make(device: str) -> Backend:
    jax = SPEC.load()
    # Without x64 JAX silently makes float64 float32 and int64 int32 (a global flag, set before arrays exist);
    # "highest" keeps GPU matmuls out of TF32, as the other libraries do (docs/agreement.md).
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    try:
        found = jax.devices("cpu" if device == "cpu" else "gpu")
    except RuntimeError:
        raise BackendError("JAX has no CUDA device here: install jax[cuda12] (or jax[cuda13]) and a driver") from None
    dev = found[0 if device == "cpu" else cuda_index(device, len(found), "JAX")]
    import jax.numpy as xp

    # JAX has no device-wide barrier: a tiny computation queued on the device and waited for stands in.
    return Backend("jax", xp, dev, device, np.asarray, lambda: (xp.zeros((), device=dev) + 1).block_until_ready())


def probe() -> Probe:
    jax = SPEC.load()
    found = [d for d in jax.devices() if d.platform == "gpu"]  # the default backend is the GPU where one works
    kinds = f"; {', '.join(g.device_kind for g in found)}" if found else " (no GPU)"
    return Probe("jax", True, f"jax {jax.__version__}{kinds}", ("cpu", *(f"cuda:{i}" for i in range(len(found)))))


def device_of(device) -> str:
    return "cpu" if device.platform == "cpu" else f"cuda:{device.id}"


SPEC = BackendSpec(
    "jax", make, probe, 3, ("cpu", "cuda"), install_hint=HINT, fast="jax_jit.JaxJitStep", device_of=device_of
)
