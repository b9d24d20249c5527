"""The optimizer updates as one compiled pass over the flat buffers, where Numba is installed (``xpnet[fast]``).

NumPy's Adam update is 13 whole-array passes (each operation reads and writes all 235k weights); on the CPUs
measured it was about a quarter of a training step at batch 128. One loop that reads ``g, m, v, p`` once and
writes ``m, v, p`` once does the same arithmetic, in the same order and precision (the scalars are passed in
the arrays' dtype, as NumPy casts a Python float), so its results equal the NumPy passes bit for bit.

``error_model="numpy"`` lets a division by zero give inf as NumPy does, instead of a Python check that would
keep the loop from being vectorised. No ``fastmath``: it would reorder the arithmetic and fuse multiply-adds.
Where Numba is missing, fails to import (a NumPy it does not support yet), or ``XPNET_NO_NUMBA=1`` is set,
`load` answers None and the step keeps its NumPy passes; `describe` says which and why.
"""

from __future__ import annotations

import functools
import os
from types import SimpleNamespace
from typing import Any

import numpy as np

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
    # optim.adam_update, element by element: m, v, then p - step_size m / (sqrt(v) / root_bc2 + eps).
    for i in range(p.size):
        gi = g[i]
        mi = b1 * m[i] + one_minus_b1 * gi
        vi = b2 * v[i] + one_minus_b2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - step_size * mi / (np.sqrt(vi) / root_bc2 + eps)


def _compile(numba: Any, fn: Any) -> Any:
    try:  # cached on disk beside this file (or in the user's cache) so that later runs skip the compile
        return numba.njit(error_model="numpy", cache=True)(fn)
    except RuntimeError:  # no writable cache location: compile in every process instead
        return numba.njit(error_model="numpy")(fn)


@functools.cache
def _compiled() -> tuple[SimpleNamespace | None, str]:
    try:
        import numba
    except Exception as e:  # not installed, or built for another NumPy: both leave the NumPy passes
        return None, f"NumPy passes (numba unavailable: {type(e).__name__}: {e}; pip install 'xpnet[fast]')"
    kernels = SimpleNamespace(**{name: _compile(numba, fn) for name, fn in
                                 (("sgd", _sgd), ("momentum", _momentum), ("adam", _adam))})  # fmt: skip
    return kernels, f"numba {numba.__version__} one-pass update"


def _choice() -> tuple[SimpleNamespace | None, str]:
    # The switch is read on every call, so that the bench can time both paths in one process.
    if os.environ.get(DISABLE, "") not in ("", "0"):
        return None, f"NumPy passes ({DISABLE} is set)"
    return _compiled()


def load() -> SimpleNamespace | None:
    """The compiled updates (``sgd``, ``momentum``, ``adam``), or None where only the NumPy passes apply."""
    return _choice()[0]


def describe() -> str:
    """How the in-place NumPy step updates the weights here, in words (for --verbose and the bench)."""
    return _choice()[1]
