"""An in-place NumPy training step: the reference step's operations, in its order, without temporaries.

The reference step allocates a fresh array for every intermediate, which at small batches costs about as much
as the matrix products. This step keeps every parameter, gradient and optimizer moment as a view into one
flat buffer each, writes matrix products with ``out=``, and updates the flat buffers in a handful of
whole-model operations (in a long run where Numba is installed, in one compiled pass: the compiled update below). It
performs the same floating-point operations in the same order as the reference, so the values are equal.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat.numpy as xp
import numpy as np

from ...errors import one_line
from ...nn import OPTIMIZERS, Recipe, adam_scalars, param_shapes, softmax_cross_entropy
from . import adopt, views

# Weights updated by NumPy's passes before the compiled update is loaded: loading it (importing Numba, reading
# its cache) costs more than a short run's passes, and a long run repays it (docs/benchmarks.md). The two
# updates give equal values, so switching mid-run changes no result.
SWITCH_AFTER = 100_000_000


def _activate(z: np.ndarray, activation: str) -> None:
    if activation == "relu":
        np.maximum(z, 0.0, out=z)
    elif activation == "logistic":  # 0.5 * tanh(0.5 z) + 0.5, as nn.sigmoid
        z *= 0.5
        np.tanh(z, out=z)
        z *= 0.5
        z += 0.5
    else:
        np.tanh(z, out=z)


def _activate_backward(a: np.ndarray, g: np.ndarray, tmp: np.ndarray, activation: str) -> None:
    """``g <- g * activation'`` given the activation output ``a``, as nn.*_backward computes it."""
    if activation == "relu":
        # g * (a > 0) rather than copyto(where=...), which is about 35 times slower. The values equal the
        # reference's where(a > 0, g, 0); only a zero may come out as -0.0, which compares equal.
        np.greater(a, 0.0, out=tmp)
        g *= tmp
    elif activation == "logistic":  # g * a * (1 - a)
        g *= a
        np.subtract(1.0, a, out=tmp)
        g *= tmp
    else:  # g * (1 - a * a)
        np.multiply(a, a, out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        g *= tmp


# -- the compiled update ----------------------------------------------------------------------------------
#
# The optimizer updates as one compiled pass over the flat buffers, where Numba is installed (``xpnet[fast]``).
#
# NumPy's Adam update is 13 whole-array passes; one loop that reads ``g, m, v, p`` once and writes ``m, v, p``
# once does the same arithmetic in the same order and precision (the scalars are passed in the arrays' dtype,
# as NumPy casts a Python float), so its results equal the NumPy passes bit for bit. ``error_model="numpy"``
# lets a division by zero give inf as NumPy does; no ``fastmath``, which would reorder the arithmetic.
# Where Numba is missing or fails to import or compile, where ``NUMBA_DISABLE_JIT`` is set, or where
# ``XPNET_NO_NUMBA`` is set to anything but empty or 0, `load` answers None and the step keeps its NumPy
# passes; `describe` says which and why.
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


class NumpyInplaceStep:
    """An `xpnet.nn.StepFn`. The returned ``params`` and ``state`` are views into buffers this object owns and
    overwrites on the next call; pass them back in unchanged (any other arrays are copied in first). ``logits``
    is valid until the next call.
    """

    def __init__(self, sizes: Sequence[int], recipe: Recipe, dtype: Any, compiled: bool | None = None):
        self.recipe, self.hyper = recipe, recipe.hyper
        self.activation, self.optimizer = recipe.activation, recipe.optimizer
        self.dtype = np.dtype(dtype)
        shapes = param_shapes(sizes)
        n = sum(math.prod(s) for s in shapes)
        self.theta, self.grad, self.tmp, self.tmp2 = (np.zeros(n, self.dtype) for _ in range(4))
        self.params, self.grads = views(self.theta, shapes), views(self.grad, shapes)
        self.moments = [np.zeros(n, self.dtype) for _ in OPTIMIZERS[self.optimizer].slots]
        self.state = [v for m in self.moments for v in views(m, shapes)]
        self.widths = list(sizes[1:])
        # The compiled one-pass update (below): from the first update (True), never (False), or once
        # SWITCH_AFTER weights have been updated (None; from the first where this process has loaded it, as a
        # second fit has); where it cannot be had, never.
        self.kernel = None
        if compiled is None and ready(self.optimizer, self.dtype):
            compiled = True
        self._until_compiled = SWITCH_AFTER if compiled is None else -1
        if compiled:
            self.as_in_long_runs()
        self._buffers: dict[int, tuple[list[np.ndarray], ...]] = {}

    def _batch_buffers(self, n: int) -> tuple[list[np.ndarray], ...]:
        """Per-layer outputs, backward deltas and scratch for a batch of ``n`` rows (two sizes per epoch)."""
        if n not in self._buffers:
            self._buffers[n] = tuple([np.empty((n, w), self.dtype) for w in self.widths] for _ in range(3))
        return self._buffers[n]

    def __call__(self, params, state, x, targets, count, lr):
        adopt(self.params, params)
        adopt(self.state, state)
        outs, deltas, scratch = self._batch_buffers(x.shape[0])
        ws, bs = self.params[0::2], self.params[1::2]

        a = x
        for i, (w, b) in enumerate(zip(ws, bs)):
            np.matmul(a, w, out=outs[i])
            outs[i] += b
            if i < len(ws) - 1:
                _activate(outs[i], self.activation)
            a = outs[i]
        logits = outs[-1]
        loss, delta = softmax_cross_entropy(xp, logits, targets)  # tiny arrays: in place gains nothing

        for i in reversed(range(len(ws))):
            a_in = x if i == 0 else outs[i - 1]
            np.matmul(a_in.T, delta, out=self.grads[2 * i])
            if self.recipe.alpha:  # + alpha / n * W, as nn.add_penalty
                w_tmp = self.tmp[: ws[i].size].reshape(ws[i].shape)
                np.multiply(ws[i], self.recipe.alpha / x.shape[0], out=w_tmp)
                self.grads[2 * i] += w_tmp
            np.sum(delta, axis=0, out=self.grads[2 * i + 1])
            if i > 0:
                g = deltas[i - 1]
                np.matmul(delta, ws[i].T, out=g)
                _activate_backward(a_in, g, scratch[i - 1], self.activation)
                delta = g

        self._update(count, lr)
        return self.params, self.state, loss, logits

    def _update(self, count: int, lr: float) -> None:
        if self._until_compiled >= 0:
            self._until_compiled -= self.theta.size
            if self._until_compiled < 0:
                self.as_in_long_runs()
        if self.kernel is not None:
            self._update_compiled(count, lr)
            return
        theta, g, tmp, h = self.theta, self.grad, self.tmp, self.hyper
        if self.optimizer == "sgd":  # p - lr * g
            np.multiply(g, lr, out=tmp)
        elif self.optimizer == "momentum":  # v <- mu v + g; p - lr v (Nesterov: p - lr (g + mu v))
            (v,) = self.moments
            v *= h.momentum
            v += g
            if h.nesterov:
                np.multiply(v, h.momentum, out=tmp)
                tmp += g
                tmp *= lr
            else:
                np.multiply(v, lr, out=tmp)
        else:  # Adam, in nn.adam_apply's order of operations
            m, v = self.moments
            step_size, root_bc2 = adam_scalars(lr, count, h)
            m *= h.beta_1
            np.multiply(g, 1.0 - h.beta_1, out=tmp)
            m += tmp
            v *= h.beta_2
            np.multiply(g, g, out=tmp)
            tmp *= 1.0 - h.beta_2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp /= root_bc2
            tmp += h.epsilon
            np.multiply(m, step_size, out=self.tmp2)
            np.divide(self.tmp2, tmp, out=tmp)
        theta -= tmp

    def as_in_long_runs(self) -> None:
        """Use from the next update what a run switches to after SWITCH_AFTER (``xpnet.check`` checks that)."""
        self._until_compiled = -1
        # The compiled momentum update is the heavy-ball one; Nesterov's keeps NumPy's passes.
        nesterov = self.optimizer == "momentum" and self.hyper.nesterov
        self.kernel = None if nesterov else load(self.optimizer, self.dtype)

    def _update_compiled(self, count: int, lr: float) -> None:
        # The scalars in the buffers' dtype: NumPy casts a Python float so before it multiplies (NEP 50).
        c, h = self.dtype.type, self.hyper
        if self.optimizer == "sgd":
            self.kernel(self.theta, self.grad, c(lr))
        elif self.optimizer == "momentum":
            self.kernel(self.theta, self.grad, *self.moments, c(lr), c(h.momentum))
        else:
            step_size, root_bc2 = adam_scalars(lr, count, h)
            scalars = (step_size, root_bc2, h.beta_1, 1.0 - h.beta_1, h.beta_2, 1.0 - h.beta_2, h.epsilon)
            self.kernel(self.theta, self.grad, *self.moments, *map(c, scalars))
