"""Fast steps: each overrides the reference training step (`xpnet.nn.train_step`) for one array library.

A fast step is a class made as ``Step(sizes, recipe, dtype)`` and called as an `xpnet.nn.StepFn`; a backend
names its class in ``BackendSpec.fast_class``. The reference math stays the definition: these only make it
cheaper on one library, and the tests compare them with it. The in-place steps keep every parameter and
moment as a view into one flat buffer, through the two helpers below. `flush_denormals` keeps subnormal
floats from slowing their element-wise passes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import platform
from collections.abc import Sequence
from typing import Any

import numpy as np


def views(flat: Any, shapes: Sequence[tuple[int, ...]]) -> list[Any]:
    """Consecutive views of the 1-d NumPy array or PyTorch tensor ``flat``, shaped as ``shapes``."""
    out, offset = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(flat[offset : offset + size].reshape(shape))
        offset += size
    return out


def adopt(mine: Sequence[Any], theirs: Sequence[Any]) -> None:
    """Copy arrays from outside (initial weights, a checkpoint) into the views ``mine``; the views themselves,
    passed back in as a step returned them, are left alone."""
    for a, b in zip(mine, theirs, strict=True):
        if a is not b:
            a[...] = b


# Flushing subnormal floats to zero in this thread (FTZ/DAZ), so that no element-wise pass pays for them.
# Adam's moments of weights whose gradient is exactly zero (dead ReLU units) decay into subnormals, and every
# later pass over them costs a microcode assist on many x86 CPUs (docs/benchmarks.md). Flushing changes results
# only where a value below the smallest normal float (1.2e-38 in float32) becomes zero: far inside the float32
# tolerances. The mode is per thread and inherited by threads started later; it is set through the C library's
# ``fegetenv``/``fesetenv`` (glibc on x86-64 and AArch64 Linux; macOS's layout is included but untested), and
# checked by computing with a subnormal: where that fails the old mode is put back and the answer is False.
# Where each C library's fenv_t keeps the SSE/FP control register (byte offset), and the bits that flush:
# MXCSR's FTZ (bit 15) and DAZ (bit 6) on x86-64, FPCR's FZ (bit 24, inputs and outputs) on AArch64.
_LAYOUT = {
    ("Linux", "x86_64"): (28, 0x8040),  # glibc: __mxcsr after the 28-byte x87 environment
    ("Linux", "aarch64"): (0, 1 << 24),  # glibc: __fpcr first
    ("Darwin", "x86_64"): (4, 0x8040),  # Apple: __control, __status, then __mxcsr
    ("Darwin", "arm64"): (8, 1 << 24),  # Apple: 64-bit __fpsr, then __fpcr
}


def flushes() -> bool:
    """Whether this thread now computes a subnormal operand as zero."""
    tiny = np.array([1e-40], dtype=np.float32)  # subnormal in float32
    return bool((tiny * np.float32(1.0))[0] == 0.0)


@functools.cache
def _libm() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("m")
    return None if name is None else ctypes.CDLL(name)


def flush_denormals() -> bool:
    """Set FTZ/DAZ for the calling thread where the CPU and C library allow it; True when it took effect."""
    system = platform.system()
    layout = _LAYOUT.get((system, platform.machine().lower().replace("amd64", "x86_64")))
    if layout is None or (system == "Linux" and platform.libc_ver()[0] != "glibc"):
        return flushes()
    libm = _libm()
    if libm is None:
        return False
    offset, bits = layout
    env = (ctypes.c_ubyte * 64)()  # larger than any fenv_t
    if libm.fegetenv(env) != 0:
        return False
    old = bytes(env)
    ctypes.c_uint32.from_buffer(env, offset).value |= bits
    if libm.fesetenv(env) == 0 and flushes():
        return True
    libm.fesetenv((ctypes.c_ubyte * 64).from_buffer_copy(old))
    return False
