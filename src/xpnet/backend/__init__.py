"""Resolve a device and a backend name into a `Backend`. Each array library is one module here defining ``SPEC``,
a `BackendSpec`, found by `registry`; it imports its library only when asked for it."""

import functools
import glob
import importlib.util
import pkgutil
import re
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ..errors import BackendError, one_line
from ..nn import Recipe, StepFn


@dataclass(frozen=True)
class Backend:
    """An Array API namespace on a device; ``sync`` waits for queued device work (before reading a clock)."""

    name: str
    xp: ModuleType
    device: Any
    device_name: str
    # Two backends are equal when they are the same library on the same device: these follow from that
    to_numpy: Callable[[Any], np.ndarray] = field(repr=False, compare=False)
    sync: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)
    note: str = field(default="", compare=False)  # worth printing: a GPU is here but could not be used
    fallback_reason: str = field(default="", compare=False)  # why device "auto" took the CPU
    copy_read_only: bool = field(
        default=False, repr=False, compare=False
    )  # PyTorch warns when it shares a read-only buffer

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """A host array (or scalar) on this backend's device; on the CPU it may share the host memory."""
        if self.copy_read_only and isinstance(a, np.ndarray) and not a.flags.writeable:
            a = a.copy()
        return self.xp.asarray(a, dtype=dtype, device=self.device)

    def dtype(self, name: str) -> Any:
        """The namespace's dtype object called ``name`` (``"float32"``, ``"int64"``...)."""
        return getattr(self.xp, name)

    def __str__(self) -> str:
        return f"{self.name} on {self.device_name}"

    def __reduce__(self) -> tuple[Any, ...]:  # pickled as its name and device, made anew where loaded
        return make_backend, (self.name, self.device_name)


@dataclass(frozen=True)
class Probe:
    """What one array library offers here, for ``check``: its version and devices, or why none."""

    name: str
    installed: bool
    version: str = ""  # library version, plus CUDA runtime/driver and TF32 settings where they matter
    devices: tuple[str, ...] = ()  # device names `make_backend` accepts
    problem: str = ""  # why an installed library has no usable device, with the fix


@dataclass(frozen=True)
class BackendSpec:
    """One array library: ``make(device)`` (``"cpu"``, ``"cuda:N"``, one of ``extra_devices``) gives a `Backend`,
    ``probe()`` a `Probe`, both or `BackendError`; ``device_of`` names a device object as ``make`` takes it."""

    name: str
    make: Callable[[str], Backend]
    probe: Callable[[], Probe]
    order: int  # position in listings: --help, check, the tests
    kinds: tuple[str, ...] = ("cpu",)  # of "cpu", "cuda"
    module: str = ""  # what ``import`` takes; by default the name, "-" as "_"
    install_hint: str = ""  # by default "pip install NAME"
    extra_devices: tuple[str, ...] = ()  # devices besides cpu/cuda:N (array-api-strict's simulated ones)
    fast: str = ""  # "module.Class" under fast/ overriding the reference step (`fast_step`)
    device_of: Callable[[Any], str] = lambda device: "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "module", self.module or self.name.replace("-", "_"))
        object.__setattr__(self, "install_hint", self.install_hint or f"pip install {self.name}")

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    @property
    def default_for(self) -> tuple[str, ...]:
        """The device kinds on which it is the default: those that no library listed before it offers."""
        return tuple(k for k in self.kinds if next(s for s in registry().values() if k in s.kinds) is self)

    def load(self) -> ModuleType:
        """The library, or `BackendError` with the install hint. Its import's warning filters are dropped."""
        try:
            with warnings.catch_warnings():  # PyTorch adds some on import: a library call leaves no trace
                return importlib.import_module(self.module)
        except ImportError as e:
            raise BackendError(f"{self.name} is not installed ({e}); install it with {self.install_hint}") from None


@functools.cache
def registry() -> dict[str, BackendSpec]:
    """Every backend module of this package, by name, in listing order (imports no array library)."""
    modules = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and m.name != "fast"]
    specs = [importlib.import_module(f"{__name__}.{m}").SPEC for m in modules]
    return {s.name: s for s in sorted(specs, key=lambda s: (s.order, s.name))}


def names() -> tuple[str, ...]:
    """The backends' names, the default CPU library first."""
    return tuple(registry())


def spec(name: str) -> BackendSpec:
    """The `BackendSpec` called ``name``, or `BackendError` listing the known ones."""
    if name not in registry():
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(names())}")
    return registry()[name]


def parse_device(device: str) -> tuple[str, int]:
    """``"auto" | "cpu" | "cuda" | "cuda:N"`` -> (kind, index)."""
    m = re.fullmatch(r"(auto|cpu|cuda)(?::(\d+))?", device.strip().lower())
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise BackendError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    return m.group(1), int(m.group(2) or 0)


def gpu_present() -> bool:
    """Whether this machine shows an NVIDIA GPU (a device node, or ``nvidia-smi``), loading no CUDA library."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


def resolve_backend(device: str = "auto", backend: str | None = None) -> Backend:
    """The `Backend` for a device (``auto``, ``cpu``, ``cuda``, ``cuda:N``) and a backend name, or a one-line
    `BackendError`; ``auto`` takes the first GPU that answers, else the CPU, saying why (``fallback_reason``)."""
    kind, index = parse_device(device)
    chosen = spec(backend) if backend is not None else None
    default = {k: next(s for s in registry().values() if k in s.kinds) for k in ("cpu", "cuda")}
    if kind == "auto":
        gpu, cpu = chosen or default["cuda"], chosen or default["cpu"]
        if "cuda" not in gpu.kinds:
            return cpu.make("cpu")
        try:
            return gpu.make("cuda:0")
        except BackendError as e:
            if "cpu" not in cpu.kinds:
                raise
            fallback, found = cpu.make("cpu"), gpu_present()
            reason = f"{'a GPU is present but unusable' if found else 'no GPU found'}: using {fallback} ({e})"
            return replace(fallback, note=reason if found else "", fallback_reason=reason)
    chosen = chosen or default[kind]
    if kind not in chosen.kinds:
        words = " and ".join({"cpu": "the CPU", "cuda": "CUDA devices"}[k] for k in chosen.kinds)
        others = "/".join(s.name for s in registry().values() if kind in s.kinds)
        raise BackendError(
            f"{chosen.name} runs only on {words}: use the device {chosen.kinds[0]}, or the backend {others} on {kind}"
        )
    try:
        return chosen.make("cpu" if kind == "cpu" else f"cuda:{index}")
    except BackendError as e:  # installing the library alone would not help where there is no GPU at all
        if kind == "cpu" or gpu_present():
            raise
        raise BackendError(f"no GPU found on this machine (no /dev/nvidia*, no nvidia-smi), and {e}") from None


def make_backend(name: str, device: str = "cpu") -> Backend:
    """`resolve_backend` with a name, where ``device`` may also be one of the library's extra devices."""
    s = spec(name)
    return s.make(device) if device in s.extra_devices else resolve_backend(device, name)


def backend_of(x: Any) -> Backend:
    """The backend of the array ``x``, its library and device (scikit-learn's "everything follows X")."""
    try:
        namespace = array_api_compat.array_namespace(x)
    except TypeError:
        raise BackendError(f"{type(x).__name__} is not an array xpnet can compute with") from None
    library = namespace.__name__.removeprefix("array_api_compat.").split(".")[0]
    found = next((s for s in registry().values() if s.module == library), None)
    if found is None:
        raise BackendError(f"xpnet has no backend for {library} arrays: use one of {', '.join(names())}")
    # Making a backend may touch the driver (CuPy's trial allocation): once per library and device.
    return _made(found.name, found.device_of(array_api_compat.device(x)))


_made = functools.cache(make_backend)


def cuda_index(device: str, count: int, who: str) -> int:
    """``"cuda:N"`` -> N, or `BackendError` when the library sees fewer than N + 1 devices."""
    if (index := int(device.split(":")[1])) >= count:
        raise BackendError(f"cuda:{index} does not exist: {who} reports {count} device(s)")
    return index


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the device or host ran out of memory (an ``OutOfMemoryError`` known by name)."""
    libraries = {s.module for s in registry().values()}
    named = any(c.__module__.split(".")[0] in libraries and c.__name__ == "OutOfMemoryError" for c in type(exc).__mro__)
    # Allocation failures in a library's generic error (older PyTorch, cuBLAS, the CUDA runtime, JAX's XLA).
    texts = ("out of memory", "cublas_status_alloc_failed", "cudaerrormemoryallocation", "resource_exhausted")
    return isinstance(exc, MemoryError) or named or any(text in str(exc).lower() for text in texts)


def probe(name: str) -> Probe:
    """Whether ``name`` is installed and which devices it can use (it talks to the driver: ``check`` only)."""
    s = spec(name)
    if not s.installed:
        return Probe(name, installed=False, problem=f"not installed: {s.install_hint}")
    try:
        return s.probe()
    except Exception as e:  # not a BackendError: a broken install, there but failing to import or to start
        problem = str(e) if isinstance(e, BackendError) else f"installed but unusable: {one_line(e)}"
        return Probe(name, installed=True, problem=problem)


def fast_step(backend: Backend, sizes: Sequence[int], recipe: Recipe, dtype: Any) -> StepFn | None:
    """The backend's fast training step for this model and ``recipe``, or None where it has none."""
    module, _, name = spec(backend.name).fast.rpartition(".")
    return getattr(importlib.import_module(f"{__name__}.fast.{module}"), name)(sizes, recipe, dtype) if name else None
