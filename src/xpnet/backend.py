"""Resolve ``--device``/``--backend`` into a `Backend`: the array namespace, the device and a name.

This is the only module that imports CuPy, PyTorch, JAX or array-api-strict by name, and it imports each
one only when it is asked for: ``--device cpu`` never imports CuPy. Everything above this layer receives a
`Backend` and does its math through ``backend.xp``.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import numpy as np

from .errors import BackendError

BACKENDS = ("numpy", "cupy", "torch", "jax", "array-api-strict")
CUDA_EXTRA_HINT = 'pip install "xpnet[cuda12]" (CUDA 12) or "xpnet[cuda13]" (CUDA 13)'


def _no_sync() -> None:
    return None


@dataclass(frozen=True)
class Backend:
    """An array namespace bound to one device.

    ``xp`` is an Array API namespace, ``device`` an object that namespace accepts as ``device=``,
    ``to_numpy`` copies a device array to a host NumPy array and ``sync`` waits for queued device work
    (a no-op on the CPU), so that a clock read after it measures finished work.
    """

    name: str
    xp: ModuleType
    device: Any
    device_name: str
    to_numpy: Callable[[Any], np.ndarray] = field(repr=False)
    sync: Callable[[], None] = field(default=_no_sync, repr=False)
    note: str = field(default="", compare=False)

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """A host array (or scalar) on this backend's device; on the CPU it may share the host memory."""
        if self.name == "torch" and isinstance(a, np.ndarray) and not a.flags.writeable:
            # Tensors cannot be read-only: sharing a read-only buffer (the IDX reader's) makes PyTorch warn.
            a = a.copy()
        return self.xp.asarray(a, dtype=dtype, device=self.device)

    def dtype(self, name: str) -> Any:
        """The namespace's dtype object called ``name`` (``"float32"``, ``"int64"``...)."""
        return getattr(self.xp, name)

    def __str__(self) -> str:
        return f"{self.name} on {self.device_name}"


def _numpy() -> Backend:
    import array_api_compat.numpy as xp

    return Backend("numpy", xp, "cpu", "cpu", np.asarray)


def _array_api_strict(device: Any = None) -> Backend:
    import array_api_strict as xp

    device = xp.Device("CPU_DEVICE") if device is None else device
    cpu = xp.Device("CPU_DEVICE")
    name = "cpu" if device == cpu else str(device).split("'")[1]
    return Backend("array-api-strict", xp, device, name, lambda a: np.asarray(a.to_device(cpu)))


def array_api_strict_backend(device_name: str = "CPU_DEVICE") -> Backend:
    """array-api-strict on one of its simulated devices (``"CPU_DEVICE"``, ``"device1"``...).

    Its extra devices let tests check that every array stays on the device it was put on, without a GPU.
    """
    import array_api_strict as xp

    return _array_api_strict(xp.Device(device_name))


def _import_cupy() -> ModuleType:
    try:
        import cupy
    except ImportError as e:
        raise BackendError(f"CuPy is not installed ({e}); install it with {CUDA_EXTRA_HINT}") from None
    return cupy


def _cupy(index: int) -> Backend:
    cupy = _import_cupy()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if index >= count:
            raise BackendError(f"cuda:{index} does not exist: CUDA reports {count} device(s)")
        dev = cupy.cuda.Device(index)
        # A tiny allocation and kernel: a broken driver or toolkit fails here, not mid-training.
        with dev:
            cupy.ones(1).sum().get()
    except BackendError:
        raise
    except Exception as e:  # CUDARuntimeError, CompileException, missing libraries...
        reason = " ".join(str(e).split()) or type(e).__name__
        raise BackendError(f"CuPy cannot use cuda:{index}: {reason}") from None
    import array_api_compat.cupy as xp

    # CuPy runs kernels on the *current* device; make it the one we were asked for.
    dev.use()
    return Backend("cupy", xp, dev, f"cuda:{index}", cupy.asnumpy, dev.synchronize)


def _torch(kind: str, index: int) -> Backend:
    try:
        import torch
    except ImportError as e:
        raise BackendError(f"PyTorch is not installed ({e}); see https://pytorch.org") from None
    import array_api_compat.torch as xp

    if kind == "cpu":
        return Backend("torch", xp, torch.device("cpu"), "cpu", lambda a: a.detach().cpu().numpy())
    if not torch.cuda.is_available():
        raise BackendError("PyTorch has no CUDA device here (a CPU-only build, or no driver/GPU)")
    if index >= torch.cuda.device_count():
        raise BackendError(f"cuda:{index} does not exist: PyTorch sees {torch.cuda.device_count()} device(s)")
    dev = torch.device("cuda", index)
    return Backend(
        "torch",
        xp,
        dev,
        f"cuda:{index}",
        lambda a: a.detach().cpu().numpy(),
        lambda: torch.cuda.synchronize(dev),
    )


def _jax(kind: str, index: int) -> Backend:
    try:
        import jax
    except ImportError as e:
        raise BackendError(f"JAX is not installed ({e}); install it with pip install jax") from None
    # Without x64 JAX silently turns float64 into float32 and int64 labels into int32. The flag is global
    # and must be set before arrays exist, so it is set here, the moment a JAX backend is asked for; the
    # trainer names every dtype, so float32 runs stay float32. Matmuls on a GPU default to TF32 in JAX
    # (10-bit mantissa); "highest" makes them true float32 like NumPy, CuPy and PyTorch's defaults, so that
    # switching backend changes the speed and not the numbers.
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    import jax.numpy as xp

    if kind == "cpu":
        dev = jax.devices("cpu")[0]
        name = "cpu"
    else:
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:
            hint = "install jax[cuda12] (or jax[cuda13]) and a driver"
            raise BackendError(f"JAX has no CUDA device here: {hint}") from None
        if index >= len(gpus):
            raise BackendError(f"cuda:{index} does not exist: JAX sees {len(gpus)} GPU(s)")
        dev = gpus[index]
        name = f"cuda:{index}"

    def sync() -> None:
        # JAX has no device-wide barrier: a tiny computation queued on the device and waited for stands in.
        (xp.zeros((), device=dev) + 1).block_until_ready()

    return Backend("jax", xp, dev, name, np.asarray, sync)


def make_backend(name: str, device: str = "cpu") -> Backend:
    """The backend ``name`` on ``device``, or `BackendError` saying why it cannot be had here.

    Like `resolve_backend` with both flags given, but ``device`` may also name one of array-api-strict's
    simulated devices (``"device1"``...), which tests use to prove that arrays stay where they were put.
    """
    if name == "array-api-strict" and device not in ("cpu", "auto"):
        if importlib.util.find_spec("array_api_strict") is None:
            raise BackendError("array-api-strict is not installed: pip install array-api-strict")
        try:
            return array_api_strict_backend(device)
        except ValueError as e:
            raise BackendError(f"array-api-strict has no device {device!r} ({e})") from None
    return resolve_backend(device, name)


def parse_device(device: str) -> tuple[str, int]:
    """``"auto" | "cpu" | "cuda" | "cuda:N"`` -> (kind, index)."""
    m = re.fullmatch(r"(auto|cpu|cuda)(?::(\d+))?", device.strip().lower())
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise BackendError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    return m.group(1), int(m.group(2) or 0)


def resolve_backend(device: str = "auto", backend: str | None = None) -> Backend:
    """Turn the ``--device`` and ``--backend`` flags into a `Backend`.

    ``cpu`` defaults to NumPy and ``cuda`` to CuPy. ``auto`` takes CuPy on the first GPU when CuPy
    imports and a device answers, and otherwise NumPy on the CPU, with the reason in ``Backend.note``.
    Raises `BackendError` with a one-line message when the request cannot be met.
    """
    kind, index = parse_device(device)
    if backend is not None and backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")

    if kind == "auto":
        if backend in (None, "cupy"):
            try:
                return _cupy(0)
            except BackendError as e:
                if backend == "cupy":
                    raise
                fallback = _numpy()
                return replace(fallback, note=f"no CUDA device: using {fallback} ({e})")
        if backend in ("torch", "jax"):
            make = _torch if backend == "torch" else _jax
            try:
                return make("cuda", 0)
            except BackendError as e:
                reason = str(e)
            fallback = make("cpu", 0)
            return replace(fallback, note=f"no CUDA device: using {fallback} ({reason})")
        kind = "cpu"

    if kind == "cpu":
        if backend in (None, "numpy"):
            return _numpy()
        if backend == "array-api-strict":
            return _array_api_strict()
        if backend == "torch":
            return _torch("cpu", 0)
        if backend == "jax":
            return _jax("cpu", 0)
        raise BackendError("cupy runs only on CUDA devices: use --device cuda, or --backend numpy on cpu")

    # kind == "cuda"
    if backend in (None, "cupy"):
        return _cupy(index)
    if backend == "torch":
        return _torch("cuda", index)
    if backend == "jax":
        return _jax("cuda", index)
    raise BackendError(f"{backend} runs only on the CPU: use --device cpu, or --backend cupy/torch/jax on cuda")


# Allocation failures that surface as a library's generic error (older PyTorch's RuntimeError, a cuBLAS
# workspace, a CUDA runtime call, JAX's XlaRuntimeError).
_OOM_TEXT = ("out of memory", "cublas_status_alloc_failed", "cudaerrormemoryallocation", "resource_exhausted")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the device (or the host, for NumPy) ran out of memory.

    Recognises cupy's and torch's ``OutOfMemoryError`` by module and class name, so nothing is imported.
    """
    if isinstance(exc, MemoryError):
        return True
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] in ("cupy", "torch") and cls.__name__ == "OutOfMemoryError":
            return True
    message = str(exc).lower()
    return any(text in message for text in _OOM_TEXT)


# What each library offers on this machine, for ``python -m xpnet.check``. Probing imports CUDA libraries
# and talks to the driver, so nothing in training calls it.
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
