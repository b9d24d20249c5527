"""The optimizer updates as one compiled pass over the flat buffers, where Numba is installed (``xpnet[fast]``).

NumPy's Adam update is 13 whole-array passes; one loop that reads ``g, m, v, p`` once and writes ``m, v, p``
once does the same arithmetic in the same order and precision (the scalars are passed in the arrays' dtype,
as NumPy casts a Python float), so its results equal the NumPy passes bit for bit. ``error_model="numpy"``
lets a division by zero give inf as NumPy does; no ``fastmath``, which would reorder the arithmetic.
Where Numba is missing or fails to import or compile, where ``NUMBA_DISABLE_JIT`` is set, or where
``XPNET_NO_NUMBA`` is set to anything but empty or 0, `load` answers None and the step keeps its NumPy
passes; `describe` says which and why.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import one_line

DISABLE = "XPNET_NO_NUMBA"


def _sgd(p, g, lr):  # p <- p - lr g
    for i in range(p.size):
        p[i] = p[i] - lr * g[i]


def _momentum(p, g, v, lr, beta):  # v <- beta v + g; p <- p - lr v
    for i in range(p.size):
        vi = beta * v[i] + g[i]
        v[i] = vi
        p[i] = p[i] - lr * vi


def _adam(p, g, m, v, step_size, root_bc2, b1, one_minus_b1, b2, one_minus_b2, eps):
    # nn.adam_apply, element by element: m, v, then p - step_size m / (sqrt(v) / root_bc2 + eps).
    for i in range(p.size):
        gi = g[i]
        mi = b1 * m[i] + one_minus_b1 * gi
        vi = b2 * v[i] + one_minus_b2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - step_size * mi / (np.sqrt(vi) / root_bc2 + eps)


# Each update's kernel and how many arrays and dtype scalars it takes, for the trial call in `_kernel`.
KERNELS = {"sgd": (_sgd, 2, 1), "momentum": (_momentum, 3, 2), "adam": (_adam, 4, 7)}
# Each update this process has asked for, by (optimizer, dtype name): the kernel, or None, and why.
_loaded: dict[tuple[str, str], tuple[Any, str]] = {}


def _disabled() -> bool:
    # Read on every call, so that the bench can time both updates in one process.
    return os.environ.get(DISABLE, "").strip() not in ("", "0")


@functools.cache
def _numba() -> tuple[Any, str]:
    try:
        import numba
    except Exception as e:  # not installed, or built for another NumPy: both leave the NumPy passes
        return None, f"NumPy passes (numba unavailable: {one_line(e, named=True)}; pip install 'xpnet[fast]')"
    if numba.config.DISABLE_JIT:  # its loops would run as Python, 60 times slower than the passes
        return None, "NumPy passes (NUMBA_DISABLE_JIT is set)"
    return numba, f"numba {numba.__version__} one-pass update"


def _kernel(optimizer: str, dtype: str) -> tuple[Any, str]:
    """The update for ``dtype``, compiled once per process (`_compile`), or None and why not."""
    key = (optimizer, dtype)
    if key not in _loaded:
        _loaded[key] = _compile(optimizer, dtype)
    return _loaded[key]


def _compile(optimizer: str, dtype: str) -> tuple[Any, str]:
    """The update compiled for ``dtype`` and tried once on one-element arrays, or None and why not."""
    numba, said = _numba()
    if numba is None:
        return None, said
    fn, n_arrays, n_scalars = KERNELS[optimizer]
    kind = np.dtype(dtype)
    args = [np.ones(1, kind) for _ in range(n_arrays)] + [kind.type(0.5)] * n_scalars
    failure: Exception | None = None
    # First with Numba's on-disk cache (beside this file, or in the user's cache), so that later processes
    # skip the compile; where that cache cannot be read or written (a damaged file, a full disk, no writable
    # place), compiled again without it. The trial call is what compiles, so that is where either fails.
    for cache in (True, False):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Numba's cache warnings: the outcome is handled here
                kernel = numba.njit(error_model="numpy", cache=cache)(fn)
                kernel(*args)
            return kernel, said
        except Exception as e:
            failure = e
    return None, f"NumPy passes (numba could not compile the {optimizer} update: {one_line(failure, named=True)})"


def load(optimizer: str, dtype: Any) -> Callable[..., None] | None:
    """The compiled update of ``optimizer`` for arrays of ``dtype``, or None where NumPy's passes apply."""
    return None if _disabled() else _kernel(optimizer, np.dtype(dtype).name)[0]


def ready(optimizer: str, dtype: Any) -> bool:
    """Whether this process holds the compiled update already, so that a new step can use it at no cost."""
    found = _loaded.get((optimizer, np.dtype(dtype).name))
    return not _disabled() and found is not None and found[0] is not None


def describe(optimizer: str = "adam", dtype: Any = "float32") -> str:
    """How the in-place NumPy step's update runs here once compiled updates apply, in words (the bench and
    ``python -m xpnet.check`` print it); compiles the update to find out."""
    if _disabled():
        return f"NumPy passes ({DISABLE} is set)"
    return _kernel(optimizer, np.dtype(dtype).name)[1]
