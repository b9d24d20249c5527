"""Fast steps: each overrides the reference training step (`xpnet.nn.train_step`) for one array library.

A fast step is a class made as ``Step(sizes, recipe, dtype)`` and called as an `xpnet.nn.StepFn`; a backend
names its class in ``BackendSpec.fast_class``. The reference math stays the definition; the tests compare the
fast steps with it. `flushed` runs training with subnormal floats flushed to zero.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import itertools
import math
import platform
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np


def views(flat: Any, shapes: Sequence[tuple[int, ...]]) -> list[Any]:
    """Consecutive views of the 1-d NumPy array or PyTorch tensor ``flat``, shaped as ``shapes``."""
    ends = list(itertools.accumulate(math.prod(s) for s in shapes))
    return [flat[end - math.prod(s) : end].reshape(s) for end, s in zip(ends, shapes)]


def adopt(mine: Sequence[Any], theirs: Sequence[Any]) -> None:
    """Copy arrays from outside (initial weights, a checkpoint) into the views ``mine``; the views themselves,
    passed back in as a step returned them, are left alone."""
    for a, b in zip(mine, theirs, strict=True):
        if a is not b:
            a[...] = b


# Flushing subnormals to zero (FTZ/DAZ): Adam's moments of dead ReLU units decay into subnormals, and every
# pass over them costs a microcode assist on many x86 CPUs (docs/benchmarks.md). Results change only where a
# value below float32's smallest normal (1.2e-38) becomes zero. The mode is per thread, set and restored
# through the C library's fegetenv/fesetenv (glibc on x86-64 and AArch64; macOS's layout untested). Where each
# fenv_t keeps the control register (byte offset) and the bits that flush: MXCSR's FTZ (15) and DAZ (6) on
# x86-64, FPCR's FZ (24) on AArch64.
_LAYOUT = {
    ("Linux", "x86_64"): (28, 0x8040),  # glibc: __mxcsr after the 28-byte x87 environment
    ("Linux", "aarch64"): (0, 1 << 24),  # glibc: __fpcr first
    ("Darwin", "x86_64"): (4, 0x8040),  # Apple: __control, __status, then __mxcsr
    ("Darwin", "arm64"): (8, 1 << 24),  # Apple: 64-bit __fpsr, then __fpcr
}


def flushes() -> bool:
    """Whether this thread now computes a subnormal operand as zero."""
    tiny = np.array([1e-40], dtype=np.float32)
    return bool((tiny * np.float32(1.0))[0] == 0.0)


@functools.cache
def _fenv() -> tuple[ctypes.CDLL, int, int] | None:
    """The C library and the layout of its fenv_t, or None where the mode cannot be set."""
    system = platform.system()
    layout = _LAYOUT.get((system, platform.machine().lower().replace("amd64", "x86_64")))
    name = ctypes.util.find_library("m")
    if layout is None or name is None or (system == "Linux" and platform.libc_ver()[0] != "glibc"):
        return None
    return ctypes.CDLL(name), *layout


def flush_denormals() -> bool:
    """Set FTZ/DAZ for the calling thread, for good, where the CPU and C library allow it; True when it took
    effect. Training uses `flushed`, which puts the caller's mode back."""
    fenv = _fenv()
    if fenv is None:
        return flushes()
    libm, offset, bits = fenv
    env = (ctypes.c_ubyte * 64)()  # larger than any fenv_t
    if libm.fegetenv(env) != 0:
        return False
    old = bytes(env)
    ctypes.c_uint32.from_buffer(env, offset).value |= bits
    if libm.fesetenv(env) == 0 and flushes():
        return True
    libm.fesetenv((ctypes.c_ubyte * 64).from_buffer_copy(old))
    return False


@contextlib.contextmanager
def flushing() -> Iterator[bool]:
    """FTZ/DAZ in the calling thread inside the block (True where it took effect); on leaving, also by an
    exception, the thread's whole floating-point environment is as it was before."""
    fenv = _fenv()
    saved = (ctypes.c_ubyte * 64)()
    if fenv is None or fenv[0].fegetenv(saved) != 0:
        yield flushes()
        return
    try:
        yield flush_denormals()
    finally:
        fenv[0].fesetenv(saved)


def flushed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``fn`` to run inside `flushing`: the library's calls leave the caller's mode as it was."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with flushing():
            return fn(*args, **kwargs)

    return run
