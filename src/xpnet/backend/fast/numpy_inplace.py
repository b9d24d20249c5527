"""The in-place NumPy step (`InplaceStep`): the reference's operations in its order, so the values are equal;
in a long run where Numba is installed, the optimizer's rule runs as one compiled pass over the weights."""

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat.numpy as xp
import numpy as np

from ...errors import one_line
from ...nn import OPTIMIZERS, Ops, Recipe
from . import InplaceStep, passes

# Weights updated by NumPy's passes before the compiled update is loaded, which costs more than a short run's
# passes (docs/benchmarks.md). Both give equal values, so switching mid-run changes no result.
SWITCH_AFTER = 100_000_000


# The compiled update (``xpnet[fast]``): the rule as one Numba loop, NumPy's arithmetic in its order (no fastmath),
# so equal bits. Off where Numba is missing or fails, or NUMBA_DISABLE_JIT or XPNET_NO_NUMBA (not empty or 0) is set.
DISABLE = "XPNET_NO_NUMBA"
# Each rule this process has asked for, by (rule, dtype name): the compiled update, or None, and why.
_loaded: dict[tuple[Any, str], tuple[Any, str]] = {}


def _loops(rule, ops):
    """The compiled update's loops over ``rule`` by (slots, scalars), naming its arguments so that Numba inlines
    it with ``ops`` (a first-class function call would not vectorise)."""

    def slots0(p, g, a):
        for i in range(p.size):
            p[i] = p[i] - rule(ops, g[i], a)[0]

    def slots1(p, g, s, a, b):
        for i in range(p.size):
            step, s[i] = rule(ops, g[i], s[i], a, b)
            p[i] = p[i] - step

    def slots2(p, g, s, t, a, b, c, d, e, f, h):
        for i in range(p.size):
            step, s[i], t[i] = rule(ops, g[i], s[i], t[i], a, b, c, d, e, f, h)
            p[i] = p[i] - step

    return {(0, 1): slots0, (1, 2): slots1, (2, 7): slots2}


def _find(optimizer: str, dtype: Any, nesterov: bool = False) -> tuple[Any, str]:
    """The update compiled once per process for ``dtype`` (by a trial call), or None; and why, in words."""
    if os.environ.get(DISABLE, "").strip() not in ("", "0"):  # read on every call: the bench times both updates
        return None, f"NumPy passes ({DISABLE} is set)"
    rule, n_slots, kind = OPTIMIZERS[optimizer].rules[nesterov], len(OPTIMIZERS[optimizer].slots), np.dtype(dtype)
    if (key := (rule, kind.name)) in _loaded:
        return _loaded[key]
    try:
        import numba
    except Exception as e:  # not installed, or built for another NumPy: both leave the NumPy passes
        numba, said = None, f"NumPy passes (numba unavailable: {one_line(e, named=True)}; pip install 'xpnet[fast]')"
    else:
        said = f"numba {numba.__version__} one-pass update"
        if numba.config.DISABLE_JIT:  # its loops would run as Python, 60 times slower than the passes
            numba, said = None, "NumPy passes (NUMBA_DISABLE_JIT is set)"
    compiled, n_scalars = None, rule.__code__.co_argcount - 2 - n_slots  # after (ops, g, *slots)
    # With Numba's on-disk cache for later processes, then without (a damaged file, a full disk, no writable place).
    for cache in (True, False) if numba else ():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Numba's cache warnings: the outcome is handled here
                inline = numba.njit(error_model="numpy", inline="always")
                loops = _loops(inline(rule), Ops(*map(inline, Ops(lambda a: np.sqrt(a)))))
                compiled = numba.njit(error_model="numpy", cache=cache)(loops[n_slots, n_scalars])
                compiled(*[np.ones(1, kind)] * (2 + n_slots), *[kind.type(0.5)] * n_scalars)
            break
        except Exception as e:
            compiled, failure = None, one_line(e, named=True)
    if numba and compiled is None:
        said = f"NumPy passes (numba could not compile the {rule.__name__} update: {failure})"
    _loaded[key] = compiled, said
    return _loaded[key]


def load(optimizer: str, dtype: Any, nesterov: bool = False) -> Callable[..., None] | None:
    """The compiled update of ``optimizer`` for arrays of ``dtype``, or None where NumPy's passes apply."""
    return _find(optimizer, dtype, nesterov)[0]


def ready(optimizer: str, dtype: Any) -> bool:
    """Whether this process holds the compiled update already, so that a new step can use it at no cost."""
    return (OPTIMIZERS[optimizer].rules[0], np.dtype(dtype).name) in _loaded and load(optimizer, dtype) is not None


def describe(optimizer: str = "adam", dtype: Any = "float32") -> str:
    """In words, how a long run's update runs here (the bench and ``check`` print it); compiles it to know."""
    return _find(optimizer, dtype)[1]


def _decay(s: np.ndarray, a: Any, x: np.ndarray) -> np.ndarray:
    return np.add(np.multiply(s, a, out=s), x, out=s)


class NumpyInplaceStep(InplaceStep):
    """`InplaceStep` on NumPy arrays; ``compiled``: the compiled update from the first update (True), never
    (False), or once SWITCH_AFTER weights have been updated (None; from the first where this process has it)."""

    lib, xp = np, xp
    ops = staticmethod(lambda scratch: passes(scratch, np.sqrt, np.multiply, np.add, np.divide, _decay))
    layer = staticmethod(lambda a, w, b, out: np.add(np.matmul(a, w, out=out), b, out=out))

    def __init__(self, sizes: Sequence[int], recipe: Recipe, dtype: Any, compiled: bool | None = None):
        super().__init__(sizes, recipe, np.dtype(dtype))
        self.allocate("cpu")
        compiled = True if compiled is None and ready(recipe.optimizer, self.dtype) else compiled
        self.kernel, self._until_compiled = None, SWITCH_AFTER if compiled is None else -1
        if compiled:
            self.as_in_long_runs()

    def update(self, scalars: tuple[float, ...]) -> None:
        if self._until_compiled >= 0:
            self._until_compiled -= self.theta.size
            if self._until_compiled < 0:
                self.as_in_long_runs()
        if self.kernel is None:
            return super().update(scalars)
        # The scalars in the buffers' dtype: NumPy casts a Python float so before it multiplies (NEP 50).
        self.kernel(self.theta, self.grad, *self.moments, *map(self.dtype.type, scalars))

    def as_in_long_runs(self) -> None:
        """Use from the next update what a run switches to after SWITCH_AFTER (``xpnet.check`` checks that)."""
        self._until_compiled = -1
        self.kernel = load(self.recipe.optimizer, self.dtype, self.recipe.hyper.nesterov)
