"""CuPy on an NVIDIA GPU: the default backend for ``--device cuda``."""

import os

from ..errors import BackendError, one_line
from . import Backend, BackendSpec, Probe, cuda_index

HINT = 'pip install "xpnet[cuda12]" (CUDA 12) or "xpnet[cuda13]" (CUDA 13)'


def make(device: str) -> Backend:
    cupy = SPEC.load()
    try:
        dev = cupy.cuda.Device(cuda_index(device, cupy.cuda.runtime.getDeviceCount(), "CUDA"))
        # A tiny allocation and kernel: a broken driver or toolkit fails here, not mid-training.
        with dev:
            cupy.ones(1).sum().get()
    except BackendError:
        raise
    except Exception as e:  # CUDARuntimeError, CompileException, missing libraries...
        raise BackendError(f"CuPy cannot use {device}: {one_line(e)}") from None
    import array_api_compat.cupy as xp

    dev.use()  # CuPy runs kernels on the *current* device
    return Backend("cupy", xp, dev, f"cuda:{dev.id}", cupy.asnumpy, dev.synchronize)


def probe() -> Probe:
    from importlib.metadata import distributions

    cupy = SPEC.load()
    # Two CuPy wheels installed side by side break each other; list them all.
    wheels = sorted({d.metadata["Name"] for d in distributions() if (d.metadata["Name"] or "").startswith("cupy")})
    version = f"cupy {cupy.__version__} ({', '.join(wheels) or 'from source'}"
    try:
        rt = cupy.cuda.runtime
        runtime, driver = (f"{v // 1000}.{v % 1000 // 10}" for v in (rt.runtimeGetVersion(), rt.driverGetVersion()))
        version += f"; CUDA runtime {runtime}, driver {driver}"
        n = rt.getDeviceCount()
    except Exception as e:
        raise BackendError(f"{version}) cannot reach a GPU: {one_line(e)}; check the driver, or {HINT}") from None
    version += f"; TF32 {'on' if os.environ.get('CUPY_TF32', '0') != '0' else 'off'})"
    if len(wheels) > 1:
        raise BackendError(f"{version}: several CuPy wheels are installed; keep one ({HINT})")
    if n == 0:
        raise BackendError(f"{version}: CUDA reports no GPU")
    return Probe("cupy", True, version, tuple(f"cuda:{i}" for i in range(n)))


SPEC = BackendSpec("cupy", make, probe, 1, ("cuda",), install_hint=HINT, device_of=lambda d: f"cuda:{d.id}")
