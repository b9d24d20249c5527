"""What a reader needs to judge the numbers: the CPU and its ISA, the BLAS and its kernel, threads, load."""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Sequence
from typing import Any

import numpy as np

from xpnet import __version__
from xpnet.data import Dataset

# Settings a reader needs to know, reported and never set here: CPU threads, and whether GPU GEMMs may use TF32.
THREAD_AND_TF32_ENV = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "CUPY_TF32", "NVIDIA_TF32_OVERRIDE",
)  # fmt: skip
# x86-64 micro-architecture levels (the psABI's), each by the /proc/cpuinfo flags it adds to the one below.
ISA_LEVELS = (
    ("x86-64-v2", ("cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3")),
    ("x86-64-v3", ("avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave")),
    ("x86-64-v4", ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")),
)
# The flags that decide which GEMM and element-wise kernels the libraries pick.
KEY_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "asimd", "sve")


def cpu_info() -> dict[str, Any]:
    """Model name, ISA level and key flags from /proc/cpuinfo (Linux); ``unknown`` elsewhere."""
    model, vendor, flags = "unknown", "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model == "unknown":
                    model = value.strip()
                elif key == "vendor_id" and vendor == "unknown":
                    vendor = value.strip()  # GenuineIntel, AuthenticAMD: the CPU targets differ (report.py)
                elif key in ("flags", "Features") and not flags:  # x86 / ARM
                    flags = set(value.split())
    except OSError:
        pass
    level = platform.machine() if flags else "unknown"
    for name, needed in ISA_LEVELS:
        if not all(f in flags for f in needed):
            break
        level = name
    return {"cpu": model, "cpu_vendor": vendor, "isa_level": level, "cpu_flags": [f for f in KEY_FLAGS if f in flags]}


def _loaded_openblas() -> list[ctypes.CDLL]:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
        return [ctypes.CDLL(p) for p in sorted(paths)]
    except (OSError, ValueError):
        return []


def _openblas_call(names: Sequence[str], restype: Any) -> Any:
    for lib in _loaded_openblas():
        for symbol in names:
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn.restype = restype
                return fn()
    return None


def openblas_threads() -> int | None:
    """Threads NumPy's OpenBLAS will use, asked of the loaded library itself (None when unknown)."""
    n = _openblas_call(
        ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"), ctypes.c_int
    )
    return None if n is None else int(n)


def openblas_kernel() -> str | None:
    """The kernel family OpenBLAS picked for this CPU (``Haswell``, ``SkylakeX``, ``Zen``...)."""
    try:
        import threadpoolctl

        for info in threadpoolctl.threadpool_info():
            if info.get("internal_api") == "openblas" and info.get("architecture"):
                return str(info["architecture"])
    except Exception:  # optional, and its report's layout is not a stable API
        pass
    name = _openblas_call(
        ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"), ctypes.c_char_p
    )
    return None if name is None else name.decode()


def cpu_pressure() -> float | None:
    """Percent of the last minute in which runnable tasks waited for a CPU (Linux PSI), or None."""
    try:
        with open("/proc/pressure/cpu") as f:
            some = f.readline().split()
        return float(dict(field.split("=") for field in some[1:])["avg60"])
    except (OSError, KeyError, ValueError, IndexError):
        return None


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def describe_setup(data: Dataset, argv: Sequence[str]) -> dict[str, Any]:
    """Machine, libraries, threads, data and load, as one flat dictionary (the JSON's ``setup``)."""
    from xpnet.backend.fast import flushing
    from xpnet.backend.fast import numpy_inplace as kernels

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        numpy_blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # show_config's layout is not a stable API
        numpy_blas = "unknown"
    setup: dict[str, Any] = {
        "command": "python scripts/bench.py " + " ".join(argv),
        "xpnet": __version__,
        "python": platform.python_version(),
        **cpu_info(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "numpy": np.__version__,
        "numpy_blas": numpy_blas,
        "numpy_blas_kernel": openblas_kernel(),
        "numpy_blas_threads": openblas_threads(),
        "thread_env": {k: os.environ[k] for k in THREAD_AND_TF32_ENV if k in os.environ},
        "load_average_at_start": os.getloadavg()[0],
        "cpu_pressure_at_start": cpu_pressure(),
        "data": data.name,
        "data_source": data.source,
        "train_samples": len(data.y_train),
    }
    torch = import_torch()
    if torch is not None:
        setup |= {
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_cuda": torch.cuda.is_available(),
            "torch_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        }
    try:
        import jax

        setup["jax"] = jax.__version__
    except ImportError:
        pass
    setup["numpy_update"] = kernels.describe()
    with flushing() as flushed:  # as training runs (fast/__init__.py); the mode is put back after
        setup["subnormals_flushed"] = flushed
    return setup


def pressure_note(pressure: float | None) -> str:
    return "" if pressure is None else f", tasks waited for a CPU {pressure:.0f}% of the last minute"


def format_setup(s: dict[str, Any]) -> str:
    """The first lines of the output: the CPU, then libraries and threads, then the data."""
    flags = ",".join(s["cpu_flags"]) or "none of " + ",".join(KEY_FLAGS[:3])
    torch = (
        f"; torch {s['torch']} ({s['torch_threads']} threads, kernels {s['torch_cpu_capability']}, "
        f"cuda {s['torch_cuda']})"
        if "torch" in s
        else ""
    )
    return "\n".join([
        f"cpu: {s['cpu']} ({s.get('cpu_vendor', '?')}), {s['isa_level']} ({flags}), {s['cpus_usable']} usable CPUs, "
        f"load average {s['load_average_at_start']:.2f} at start" + pressure_note(s.get("cpu_pressure_at_start")),
        f"numpy {s['numpy']} ({s['numpy_blas']}, kernel {s['numpy_blas_kernel'] or '?'}, "
        f"{s['numpy_blas_threads'] or '?'} BLAS threads){torch}" + (f"; jax {s['jax']}" if "jax" in s else "")
        + (f"; env {s['thread_env']}" if s["thread_env"] else "") + f"; subnormals flushed: {s['subnormals_flushed']}",
        f"numpy step's update: {s.get('numpy_update', '?')}" + (
            " (loaded before the runs, so each run updates with it from its first step)"
            if s.get("numpy_update", "").startswith("numba") else ""),
        f"data: {s['data']} ({s['data_source']}), {s['train_samples']} training images per epoch",
    ])  # fmt: skip
