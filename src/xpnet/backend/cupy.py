"""CuPy on an NVIDIA GPU: the default backend for ``--device cuda``."""

from __future__ import annotations

import os

from ..errors import BackendError, one_line
from . import Backend, BackendSpec, Probe, cuda_index, import_library

CUDA_EXTRA_HINT = 'pip install "xpnet[cuda12]" (CUDA 12) or "xpnet[cuda13]" (CUDA 13)'


def make(device: str) -> Backend:
    cupy = import_library(SPEC)
    try:
        index = cuda_index(device, cupy.cuda.runtime.getDeviceCount(), "CUDA")
        dev = cupy.cuda.Device(index)
        # A tiny allocation and kernel: a broken driver or toolkit fails here, not mid-training.
        with dev:
            cupy.ones(1).sum().get()
    except BackendError:
        raise
    except Exception as e:  # CUDARuntimeError, CompileException, missing libraries...
        raise BackendError(f"CuPy cannot use {device}: {one_line(e)}") from None
    import array_api_compat.cupy as xp

    # CuPy runs kernels on the *current* device; make it the one we were asked for.
    dev.use()
    return Backend("cupy", xp, dev, f"cuda:{index}", cupy.asnumpy, dev.synchronize)


def probe() -> Probe:
    from importlib.metadata import distributions

    cupy = import_library(SPEC)
    # Two CuPy wheels installed side by side break each other; list them all.
    wheels = sorted({d.metadata["Name"] for d in distributions() if (d.metadata["Name"] or "").startswith("cupy")})
    version = f"cupy {cupy.__version__} ({', '.join(wheels) or 'from source'}"
    try:
        runtime, driver = cupy.cuda.runtime.runtimeGetVersion(), cupy.cuda.runtime.driverGetVersion()
        version += (
            f"; CUDA runtime {runtime // 1000}.{runtime % 1000 // 10}, driver {driver // 1000}.{driver % 1000 // 10}"
        )
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        reason = f"cannot reach a GPU: {one_line(e)}; check the driver, or {CUDA_EXTRA_HINT}"
        raise BackendError(f"{version}) {reason}") from None
    version += f"; TF32 {'on' if os.environ.get('CUPY_TF32', '0') != '0' else 'off'})"
    if len(wheels) > 1:
        raise BackendError(f"{version}: several CuPy wheels are installed; keep one ({CUDA_EXTRA_HINT})")
    if n == 0:
        raise BackendError(f"{version}: CUDA reports no GPU")
    return Probe("cupy", True, version, tuple(f"cuda:{i}" for i in range(n)))


SPEC = BackendSpec(
    name="cupy", module="cupy", kinds=("cuda",), make=make, probe=probe, install_hint=CUDA_EXTRA_HINT, order=1,
    default_for=("cuda",), device_of=lambda d: f"cuda:{d.id}",
)  # fmt: skip
