"""Issue 33: making a backend and calling the math leave no trace in the caller's process: warning filters,
signal handlers and threads are as they were (the floating-point mode: test_hostile3_fpmode.py)."""

from __future__ import annotations

import signal
import threading
import warnings

import numpy as np
import pytest

from helpers import run_python
from xpnet import nn
from xpnet.backend import fast_step, make_backend, registry
from xpnet.errors import BackendError

CPU_BACKENDS = [s.name for s in registry().values() if "cpu" in s.kinds]

# Run in a fresh process, so that the library is imported (and its threads started) by the backend's making.
WATCH = """
import signal, sys, threading, warnings
import numpy as np

def trace():
    handlers = {s: signal.getsignal(s) for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)}
    return list(warnings.filters), handlers, threading.active_count()

before = trace()
from xpnet import nn
from xpnet.backend import fast_step, make_backend

backend = make_backend(sys.argv[1], "cpu")
xp, sizes, recipe = backend.xp, [4, 3, 2], nn.Recipe()
params = [backend.asarray(a) for a in nn.init_params(np.random.default_rng(0), sizes, "relu")]
state = nn.OPTIMIZERS["adam"].init(xp, params)
x, targets = backend.asarray(np.ones((2, 4), "float32")), backend.asarray(np.eye(2, dtype="float32"))
nn.train_step(xp, recipe)(params, state, x, targets, 1, 0.01)
step = fast_step(backend, sizes, recipe, backend.dtype("float32"))
if step is not None:
    if hasattr(step, "as_in_long_runs"):  # NumPy's: the compiled update (Numba's import and compile) too
        step.as_in_long_runs()
    step(params, nn.OPTIMIZERS["adam"].init(xp, params), x, targets, 1, 0.01)
after = trace()
for what, old, new in zip(("warnings.filters", "signal handlers", "threads"), before, after):
    print(what, "kept" if old == new else f"changed: {old} -> {new}")
"""


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_a_backend_and_its_steps_leave_no_trace_in_a_fresh_process(name):
    pytest.importorskip(registry()[name].module)
    done = run_python("-c", WATCH, name, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-3:] == ["warnings.filters kept", "signal handlers kept", "threads kept"]


def process_trace():
    handlers = {s: signal.getsignal(s) for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)}
    return list(warnings.filters), handlers, threading.active_count()


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_the_math_on_each_backend_leaves_no_trace_in_this_process(name):
    before = process_trace()
    try:
        backend = make_backend(name, "cpu")
    except BackendError as e:
        pytest.skip(str(e))
    xp = backend.xp
    params = [backend.asarray(a) for a in nn.init_params(np.random.default_rng(1), [5, 4, 3], "tanh", "float64")]
    x = backend.asarray(np.random.default_rng(2).normal(size=(6, 5)))
    targets = nn.one_hot(xp, backend.asarray(np.arange(6) % 3), 3, xp.float64)
    logits, cache = nn.forward(xp, params, x, "tanh")
    _, dlogits = nn.softmax_cross_entropy(xp, logits, targets)
    nn.add_penalty(params, nn.backward(xp, params, cache, dlogits, "tanh"), 0.1, 6)
    nn.penalty(xp, params, 0.1, 6)
    for optimizer in nn.OPTIMIZERS:
        recipe = nn.Recipe("tanh", optimizer)
        state = nn.OPTIMIZERS[optimizer].init(xp, params)
        nn.train_step(xp, recipe)(params, state, x, targets, 1, 0.01)
        step = fast_step(backend, nn.sizes_of(params), recipe, xp.float64)
        if step is not None:  # a compiled step may donate its inputs: it gets copies
            copies = [backend.asarray(backend.to_numpy(p)) for p in params]
            step(copies, nn.OPTIMIZERS[optimizer].init(xp, copies), x, targets, 1, 0.01)
    assert process_trace() == before
