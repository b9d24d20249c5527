"""Shared test machinery: the one generator of (backend, device, dtype) combinations and their backends.

Every combination is always yielded, GPU ones included, and a test that cannot run one here skips with a
reason naming what is missing (``pytest -ra`` lists them), so a GPU case never vanishes silently.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

# The test problems are tiny: with one thread per process PyTorch and NumPy's BLAS answer in milliseconds,
# while their default of one thread per core spin-waits for seconds on a shared two-core machine. Set
# before NumPy is imported; the numerics stay within the tolerances whatever the thread count.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# GPU agreement must not depend on the user's environment: CuPy uses TF32 matmuls only when CUPY_TF32 is
# set, so the tests pin it off (PyTorch's matmul TF32 flag is pinned in `backend_or_skip`, and the JAX
# backend asks for full float32 precision itself).
os.environ["CUPY_TF32"] = "0"
# scikit-learn's Array API checks of xpnet.MLPClassifier (tests/test_estimator.py) need SciPy's Array API mode,
# which SciPy reads once, when it is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
# JAX compiles every operation the first time it meets its shapes and dtype, some 300 small programs and
# most of this suite's time; its persistent cache (same programs, so the same numbers) makes reruns fast.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

# The picture-folder cache lives in the user's cache folder: the tests (and the commands they start) keep
# theirs in a private folder of their own, removed at the end.
os.environ["XPNET_FOLDER_CACHE"] = tempfile.mkdtemp(prefix="xpnet-folder-cache-")

# Imported after the settings above, which NumPy and the device libraries read when they load.
import pytest

import trained_models
from helpers import CHECKPOINT_CONFIG, tiny_data
from xpnet.backend import Backend, make_backend, registry, resolve_backend
from xpnet.errors import BackendError
from xpnet.training.loop import train
from xpnet.training.model import Model, save

atexit.register(shutil.rmtree, os.environ["XPNET_FOLDER_CACHE"], ignore_errors=True)


def _backend_devices() -> tuple[tuple[str, str], ...]:
    """(backend, device) pairs from the registry, CPU first. A library's first extra device (array-api-strict's
    simulated "device1") proves that arrays stay on the device they were put on, without a GPU."""
    specs = registry().values()
    cpu = [(s.name, d) for s in specs if "cpu" in s.kinds for d in ("cpu", *s.extra_devices[:1])]
    return (*cpu, *((s.name, "cuda") for s in specs if "cuda" in s.kinds))


BACKEND_DEVICES = _backend_devices()
DTYPES = ("float64", "float32")


def yield_backend_device_dtype_combinations(dtypes: Sequence[str] = DTYPES) -> Iterator[pytest.param]:
    """``pytest.param(backend, device, dtype)`` for every combination, with ids like ``torch-cpu-float32``."""
    for name, device in BACKEND_DEVICES:
        for dtype in dtypes:
            yield pytest.param(name, device, dtype, id=f"{name}-{device}-{dtype}")


def yield_backend_devices() -> Iterator[pytest.param]:
    """``pytest.param(backend, device)`` for every pair, with ids like ``torch-cpu``."""
    for name, device in BACKEND_DEVICES:
        yield pytest.param(name, device, id=f"{name}-{device}")


@functools.cache
def _backend_or_reason(name: str, device: str) -> Backend | str:
    try:
        backend = make_backend(name, device)
    except BackendError as e:
        return f"{name} on {device}: {e}"
    if name == "torch" and device.startswith("cuda"):
        import torch

        # PyTorch's default, pinned: TF32 would put float32 matmuls near 1e-3 and fail the tolerances.
        torch.backends.cuda.matmul.allow_tf32 = False
    return backend


def backend_or_skip(name: str, device: str) -> Backend:
    """The backend, made once per session, or a skip naming what is missing here."""
    backend = _backend_or_reason(name, device)
    if isinstance(backend, str):
        pytest.skip(backend)
    return backend


# Small trained models for the predict and evaluate tests, trained once per session.
@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """scikit-learn's digits and a model trained on them."""
    data = trained_models.load_dataset("digits")
    return data, trained_models.save_model(data, tmp_path_factory.mktemp("digits") / "digits.npz")


@pytest.fixture(scope="session")
def mnist(tmp_path_factory):
    """The MNIST-shaped set made from the digits, and a model trained on it."""
    folder = tmp_path_factory.mktemp("mnist")
    data = trained_models.load_dataset("mnist", trained_models.write_mnist_like(folder / "data"))
    return data, trained_models.save_model(data, folder / "mnist.npz")


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, object]:
    """A checkpoint after 2 epochs of adam on numpy, and the run's state."""
    numpy = resolve_backend("cpu", "numpy")
    data = tiny_data()
    state = train(numpy, data, CHECKPOINT_CONFIG)
    path = save(Model.of_data(CHECKPOINT_CONFIG, state, numpy, data), tmp_path / "model.npz")
    return path, state
