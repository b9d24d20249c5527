"""Fast steps, each overriding the reference step (`xpnet.nn.train_step`) for one library and agreeing with it:
a class made as ``Step(sizes, recipe, dtype)``, called as an `xpnet.nn.StepFn`, named by ``BackendSpec.fast``.
Also `flushed`, which runs training with subnormal floats flushed to zero."""

import contextlib
import ctypes.util
import functools
import itertools
import math
import platform
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from ...nn import ACTIVATIONS, OPTIMIZERS, Ops, Recipe, loss_and_grad, param_shapes


class InplaceStep:
    """The NumPy and PyTorch steps' body: the reference step's operations, in its order, into kept buffers (views
    of one flat buffer each, overwritten by the next call). A subclass sets ``lib``, its namespace ``xp``,
    ``ops(scratch)`` (an `xpnet.nn.Ops` for the rule) and ``layer(a, w, b, out)``: a @ w + b."""

    def __init__(self, sizes: Sequence[int], recipe: Recipe, dtype: Any):
        self.recipe, self.dtype, self.shapes, self.widths = recipe, dtype, param_shapes(sizes), sizes[1:]
        self.activation, self.optimizer = ACTIVATIONS[recipe.activation], OPTIMIZERS[recipe.optimizer]
        self.theta: Any = None  # allocated on the device of the first call's parameters
        self.inplace = SimpleNamespace(  # nn's activations, written into their first array
            add=lambda a, b: self.lib.add(a, b, out=a),
            multiply=lambda a, b: self.lib.multiply(a, b, out=a),
            maximum=lambda a, b: self.lib.clip(a, b, None, out=a),  # torch.maximum takes no number
            tanh=lambda a: self.lib.tanh(a, out=a),
            # where(keep, g, 0) as g * keep: copyto(where=...) is 35 times slower; a zero may come out as -0.0
            where=lambda keep, g, _: self.lib.multiply(g, keep, out=g),
        )

    def allocate(self, device: Any) -> None:
        ends = list(itertools.accumulate(math.prod(s) for s in self.shapes))
        flat = [self.lib.zeros(ends[-1], dtype=self.dtype, device=device) for _ in range(4 + len(self.optimizer.slots))]
        (self.theta, self.grad, *self.scratch), self.moments = flat[:4], flat[4:]
        views = [[a[end - math.prod(s) : end].reshape(s) for end, s in zip(ends, self.shapes)] for a in flat]
        self.params, self.grads, self.tmps = views[:3]
        self.state = [v for m in views[4:] for v in m]
        self.buffers: dict[int, list[Any]] = {}

    def update(self, scalars: tuple[float, ...]) -> None:
        rule = self.optimizer.rules[self.recipe.hyper.nesterov]
        self.theta -= rule(self.ops(self.scratch), self.grad, *self.moments, *scalars)[0]

    def __call__(self, params, state, x, targets, count, lr, weights=None):
        loss, logits = self.gradient(params, x, targets, weights, state)
        self.update(self.optimizer.scalars(lr, count, self.recipe.hyper))
        return self.params, self.state, loss, logits

    def gradient(self, params, x, targets, weights=None, state=()):
        """``(loss, logits)``, the gradient left in ``self.grads`` (views of ``self.grad``): the step less its
        update, also what the full-batch solver evaluates (`training.lbfgs`)."""
        if self.theta is None or self.theta.device != params[0].device:
            self.allocate(params[0].device)
        for mine, theirs in zip(self.params + self.state[: len(state)], [*params, *state], strict=True):
            if mine is not theirs:
                mine[...] = theirs
        n, lib, ws = x.shape[0], self.lib, self.params[0::2]
        if n not in self.buffers:  # per-layer outputs, then backward deltas (two batch sizes per epoch)
            self.buffers[n] = [lib.empty((n, w), dtype=self.dtype, device=x.device) for w in self.widths * 2]
        outs, deltas = self.buffers[n][: len(ws)], self.buffers[n][len(ws) :]
        for i, (w, b) in enumerate(zip(ws, self.params[1::2])):
            self.layer(x if i == 0 else outs[i - 1], w, b, outs[i])
            if i < len(ws) - 1:
                self.activation.forward(self.inplace, outs[i])
        # the loss layer is tiny: in place gains nothing there
        loss, delta, total = loss_and_grad(self.xp, self.recipe.output, outs[-1], targets, weights)
        for i in reversed(range(len(ws))):
            a_in = x if i == 0 else outs[i - 1]
            lib.matmul(a_in.T, delta, out=self.grads[2 * i])
            if self.recipe.alpha:  # + alpha / n * W, as nn.add_penalty
                self.grads[2 * i] += lib.multiply(ws[i], self.recipe.alpha / total, out=self.tmps[2 * i])
            lib.sum(delta, axis=0, out=self.grads[2 * i + 1])
            if i > 0:
                delta = self.activation.backward(self.inplace, a_in, lib.matmul(delta, ws[i].T, out=deltas[i - 1]))
        return loss, outs[-1]


def passes(scratch: Sequence[Any], sqrt: Any, mul: Any, add: Any, div: Any, decay: Any) -> Ops:
    """nn's rules as passes that allocate nothing, given a library's functions that take ``out=``: an operation
    writes into its first operand that is one of the ``scratch`` buffers, else into a free one (two suffice for
    nn's rules); ``decay`` writes into its slot. A number first (NumPy's order) swaps a commutative operation's
    operands: PyTorch takes an array first, and the product or sum is the same."""
    free, ids = list(scratch), {id(a) for a in scratch}

    def into(f, commutes, *args):
        mine = [a for a in args if id(a) in ids]
        free.extend(mine[1:])  # read for the last time
        args = args[::-1] if commutes and isinstance(args[0], (int, float)) else args
        return f(*args, out=mine[0] if mine else free.pop())

    def decay_into(s, a, x):
        free.extend([x] if id(x) in ids else [])
        return decay(s, a, x)

    ops = (functools.partial(into, f, c) for f, c in ((sqrt, False), (mul, True), (add, True), (div, False)))
    return Ops(*ops, decay_into)


# Flushing subnormals to zero (FTZ/DAZ): Adam's moments of dead ReLU units decay into subnormals, each a microcode
# assist on many x86 CPUs (docs/benchmarks.md); only values below 1.2e-38 change. The mode is per thread, set with
# fegetenv/fesetenv: where a fenv_t keeps the control register (byte offset), and its bits that flush.
_LAYOUT = {
    ("Linux", "x86_64"): (28, 0x8040),  # glibc: __mxcsr after the 28-byte x87 environment; FTZ bit 15, DAZ 6
    ("Linux", "aarch64"): (0, 1 << 24),  # glibc: __fpcr first; FZ bit 24
    ("Darwin", "x86_64"): (4, 0x8040),  # Apple (untested): __control, __status, then __mxcsr
    ("Darwin", "arm64"): (8, 1 << 24),  # Apple (untested): 64-bit __fpsr, then __fpcr
}


def flushes() -> bool:
    """Whether this thread now computes a subnormal operand as zero."""
    return bool(np.float32(1e-40) * np.float32(1.0) == 0.0)


@functools.cache
def _fenv() -> tuple[ctypes.CDLL, int, int] | None:
    """The C library and the layout of its fenv_t, or None where the mode cannot be set."""
    system, name = platform.system(), ctypes.util.find_library("m")
    layout = _LAYOUT.get((system, platform.machine().lower().replace("amd64", "x86_64")))
    if layout is None or name is None or (system == "Linux" and platform.libc_ver()[0] != "glibc"):
        return None
    return ctypes.CDLL(name), *layout


def flush_denormals() -> bool:
    """Set FTZ/DAZ in this thread for good where the CPU and C library allow it (xpnet only flushes in `flushing`)."""
    fenv, env = _fenv(), (ctypes.c_ubyte * 64)()  # larger than any fenv_t
    if fenv is not None and fenv[0].fegetenv(env) == 0:
        old = (ctypes.c_ubyte * 64).from_buffer_copy(env)
        ctypes.c_uint32.from_buffer(env, fenv[1]).value |= fenv[2]
        if fenv[0].fesetenv(env) != 0 or not flushes():
            fenv[0].fesetenv(old)
    return flushes()


@contextlib.contextmanager
def flushing() -> Iterator[bool]:
    """FTZ/DAZ in this thread inside the block (True where it took effect); on leaving, the old environment."""
    fenv, saved = _fenv(), (ctypes.c_ubyte * 64)()
    restore = fenv is not None and fenv[0].fegetenv(saved) == 0
    try:
        yield flush_denormals() if restore else flushes()
    finally:
        if restore:
            fenv[0].fesetenv(saved)


flushed = flushing()  # ``@flushed``: each call inside a fresh `flushing` block (training/loop.py)
