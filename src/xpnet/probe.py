"""What each array library offers on this machine, for ``python -m xpnet.check``.

Probing imports CUDA libraries and talks to the driver, so nothing in training calls it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .backend import CUDA_EXTRA_HINT, _import_cupy
from .errors import BackendError

# The module each backend needs, looked up without importing it.
MODULES = {"numpy": "numpy", "cupy": "cupy", "torch": "torch", "jax": "jax", "array-api-strict": "array_api_strict"}
INSTALL_HINTS = {
    "cupy": CUDA_EXTRA_HINT,
    "torch": "see https://pytorch.org",
    "jax": 'pip install jax (CPU) or "jax[cuda12]"',
    "array-api-strict": "pip install array-api-strict",
}


@dataclass(frozen=True)
class Probe:
    """What one array library offers here: its version and devices, or why it offers none."""

    name: str
    installed: bool
    version: str = ""  # library version, plus CUDA runtime/driver and TF32 settings where they matter
    devices: tuple[str, ...] = ()  # device names `make_backend` accepts
    problem: str = ""  # why an installed library has no usable device, with the fix


def probe(name: str) -> Probe:
    """Find out whether ``name`` is installed and which devices it can use, importing it only if installed.

    Meant for ``python -m xpnet.check``: it imports CUDA libraries and talks to the driver.
    """
    if importlib.util.find_spec(MODULES[name]) is None:
        return Probe(name, installed=False, problem=f"not installed: {INSTALL_HINTS.get(name, '')}")
    try:
        return _PROBES[name]()
    except BackendError as e:
        return Probe(name, installed=True, problem=str(e))
    except Exception as e:  # a broken install: the library is there but fails to import or to start
        reason = " ".join(str(e).split()) or type(e).__name__
        return Probe(name, installed=True, problem=f"installed but unusable: {reason}")


def _probe_numpy() -> Probe:
    return Probe("numpy", True, f"numpy {np.__version__}", ("cpu",))


def _probe_strict() -> Probe:
    import array_api_strict

    return Probe("array-api-strict", True, f"array-api-strict {array_api_strict.__version__}", ("cpu",))


def _probe_torch() -> Probe:
    import torch

    version = f"torch {torch.__version__}"
    if not torch.cuda.is_available():
        return Probe("torch", True, f"{version} (no CUDA)", ("cpu",))
    n = torch.cuda.device_count()
    tf32 = "on" if torch.backends.cuda.matmul.allow_tf32 else "off"
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(n))
    version += f" (CUDA {torch.version.cuda}; {names}; TF32 matmul {tf32})"
    return Probe("torch", True, version, ("cpu", *(f"cuda:{i}" for i in range(n))))


def _probe_cupy() -> Probe:
    from importlib.metadata import distributions

    cupy = _import_cupy()
    # Two CuPy wheels installed side by side break each other; list them all.
    wheels = sorted({d.metadata["Name"] for d in distributions() if (d.metadata["Name"] or "").startswith("cupy")})
    version = f"cupy {cupy.__version__} ({', '.join(wheels) or 'from source'}"
    try:
        runtime = cupy.cuda.runtime.runtimeGetVersion()
        driver = cupy.cuda.runtime.driverGetVersion()
        version += f"; CUDA runtime {_cuda_version(runtime)}, driver {_cuda_version(driver)}"
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise BackendError(f"{version}) cannot reach a GPU: {reason}; check the driver, or {CUDA_EXTRA_HINT}") from None
    version += f"; TF32 {'on' if os.environ.get('CUPY_TF32', '0') != '0' else 'off'})"
    if len(wheels) > 1:
        raise BackendError(f"{version}: several CuPy wheels are installed; keep one ({CUDA_EXTRA_HINT})")
    if n == 0:
        raise BackendError(f"{version}: CUDA reports no GPU")
    return Probe("cupy", True, version, tuple(f"cuda:{i}" for i in range(n)))


def _cuda_version(number: int) -> str:
    """CUDA's 12040 -> "12.4"."""
    return f"{number // 1000}.{number % 1000 // 10}"


def _probe_jax() -> Probe:
    import jax

    devices = ["cpu"]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    devices += [f"cuda:{i}" for i in range(len(gpus))]
    kinds = f"; {', '.join(g.device_kind for g in gpus)}" if gpus else " (no GPU)"
    return Probe("jax", True, f"jax {jax.__version__}{kinds}", tuple(devices))


_PROBES: dict[str, Callable[[], Probe]] = {
    "numpy": _probe_numpy,
    "array-api-strict": _probe_strict,
    "torch": _probe_torch,
    "cupy": _probe_cupy,
    "jax": _probe_jax,
}
