"""Issue 33: a library call leaves the caller's floating-point mode alone; only training runs flushed."""

from __future__ import annotations

import platform
import threading

import numpy as np
import pytest

import xpnet
from conftest import yield_backend_devices
from helpers import run_python
from xpnet import MLPClassifier, nn
from xpnet.backend import make_backend
from xpnet.backend.fast import flushed, flushes, flushing
from xpnet.errors import BackendError

CAN_FLUSH = platform.machine().lower() in ("x86_64", "amd64", "aarch64") and platform.libc_ver()[0] == "glibc"
needs_flush = pytest.mark.skipif(not CAN_FLUSH, reason="FTZ/DAZ is set where known to work: glibc, x86-64/AArch64")


def subnormals_hold() -> None:
    """Subnormals compute as themselves here and in a thread started now (threads inherit the mode)."""
    seen = []
    thread = threading.Thread(target=lambda: seen.append((5e-324 > 0, flushes())))
    thread.start()
    thread.join(timeout=30)
    assert (5e-324 > 0, flushes()) == (True, False)
    assert seen == [(True, False)]


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def digits():
    rng = np.random.default_rng(0)
    return rng.normal(size=(60, 8)).astype(np.float32), rng.integers(0, 3, size=60)


@pytest.fixture(autouse=True)
def unflushed_before():
    subnormals_hold()  # a test before this one (or xpnet's import) left the mode changed: that is the bug too


@pytest.mark.parametrize(("name", "device"), list(yield_backend_devices()))
def test_making_a_backend_leaves_the_mode(name, device):
    try:
        make_backend(name, device)
    except BackendError as e:
        pytest.skip(str(e))
    subnormals_hold()


def test_fit_partial_fit_predict_save_and_load_leave_the_mode(digits, tmp_path):
    x, y = digits
    model = MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    model.fit(x, y)
    subnormals_hold()
    model.partial_fit(x, y)
    subnormals_hold()
    model.predict(x)
    subnormals_hold()
    xpnet.load(model.save(tmp_path / "m.npz")).predict(x)
    subnormals_hold()


def test_the_math_leaves_the_mode():
    xp = make_backend("numpy", "cpu").xp
    params = [xp.asarray(a) for a in nn.init_params(np.random.default_rng(0), [4, 3, 2], "relu")]
    state = nn.OPTIMIZERS["adam"].init(xp, params)
    x, targets = xp.ones((2, 4), dtype=xp.float32), xp.asarray([[1.0, 0.0], [0.0, 1.0]], dtype=xp.float32)
    nn.train_step(xp, nn.Recipe())(params, state, x, targets, 1, 0.01)
    subnormals_hold()


@needs_flush
def test_pytorch_workers_keep_subnormals_after_training_on_pytorch_arrays():
    """PyTorch's CPU worker threads, started once per process, must not start inside training's flush."""
    pytest.importorskip("torch")
    code = (
        "import warnings, numpy as np, torch, xpnet; warnings.simplefilter('ignore'); torch.set_num_threads(2); "
        "x = torch.asarray(np.random.default_rng(0).normal(size=(200, 8)).astype('float32')); "
        "xpnet.MLPClassifier(hidden_layer_sizes=(5,), max_iter=1).fit(x, torch.arange(200) % 3); "
        "t = torch.full((1 << 22,), 1e-40); print(5e-324 > 0, bool((t * 1.0 > 0).all()))"
    )
    done = run_python("-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["True", "True"]


@needs_flush
def test_training_runs_flushed(digits, monkeypatch):
    from xpnet.training import loop

    seen = []

    def watching(*args, **kwargs):
        step = nn.train_step(args[0].xp, args[2])
        return lambda *a: (seen.append(flushes()), step(*a))[1]

    monkeypatch.setattr(loop, "fast_step", watching)
    MLPClassifier(hidden_layer_sizes=(5,), max_iter=1, random_state=0).fit(*digits)
    assert seen and all(seen)
    subnormals_hold()


@needs_flush
def test_the_mode_comes_back_after_an_exception_and_nests():
    @flushed
    def fails():
        assert flushes()
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        fails()
    subnormals_hold()
    with flushing() as outer:
        assert outer
        with flushing():
            assert flushes()
        assert flushes()  # the inner block restores the outer block's mode, not the default
    subnormals_hold()
