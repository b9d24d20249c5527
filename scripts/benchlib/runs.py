"""The timed runs of xpnet itself: targets from the backend registry, the data, the GEMM ceiling, training."""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from unittest import mock

import numpy as np

from xpnet.backend import Backend, registry, resolve_backend
from xpnet.backend.fast import numpy_inplace as kernels
from xpnet.data import Dataset, load_dataset
from xpnet.data.load import SYSTEM_DIRS, find_idx_files
from xpnet.errors import BackendError, XpnetError
from xpnet.nn import layer_sizes
from xpnet.training.loop import train
from xpnet.training.model import TrainConfig

REFERENCE_HIDDEN = (256, 128)
# Targets that time a backend with an environment setting, beside the plain one: ``label -> (base, env)``.
# ``numpy-passes`` is NumPy's in-place step with its NumPy update instead of the Numba one (fast/numpy_inplace.py).
VARIANTS = {"numpy-passes": ("numpy", {kernels.DISABLE: "1"})}
# Backends too slow to time by default (array-api-strict checks every call): run only when named.
SLOW_BACKENDS = ("array-api-strict",)


class BenchError(XpnetError):
    """A benchmark option cannot be honoured."""


def xpnet_targets() -> dict[str, tuple[str, str]]:
    """``label -> (--device, --backend)`` for every backend and device kind in the registry.

    A library with one kind is labelled by its name (``numpy``, ``cupy``), one with several by name and kind
    (``torch-cpu``, ``jax-cuda``).
    """
    out = {}
    for spec in registry().values():
        for kind in spec.kinds:
            out[spec.name if len(spec.kinds) == 1 else f"{spec.name}-{kind}"] = (kind, spec.name)
    return out | {label: out[base] for label, (base, _) in VARIANTS.items() if base in out}


def default_targets() -> tuple[str, ...]:
    """Every target but the slow backends, and the variants only where they differ from their base run."""
    with_numba = kernels.load("adam", "float32") is not None  # the reference model's update
    return tuple(
        t for t, (_, name) in xpnet_targets().items() if name not in SLOW_BACKENDS and (t not in VARIANTS or with_numba)
    )


@dataclass
class TrainRow:
    """One training run: who, where, at what batch, and its timed epochs (lbfgs: its iterations)."""

    impl: str  # "xpnet", "pytorch", "jax-jit", or an estimator's fit: "fit", "fit-reg", "lbfgs", "lbfgs-reg"
    target: str  # "numpy", "torch-cpu", "cpu", "cuda", ...; a fit's "xpnet", "xpnet-cuda" or "sklearn"
    device: str  # "cpu" or "cuda:0"
    batch: int  # lbfgs: every training example, its one batch
    samples: int  # training examples per epoch
    epoch_seconds: list[float]  # timed epochs only, warm-up discarded; lbfgs: seconds per iteration, per round
    warmup_seconds: list[float]
    test_accuracy: float  # the estimator's `score`: R² for a regressor (see `score`)
    params: int
    unit: str = "epoch"  # what `epoch_seconds` times: "epoch", or an lbfgs "iteration"
    score: str = "accuracy"  # what `test_accuracy` holds: "accuracy" or "r2"
    evaluation_seconds: list[float] = field(default_factory=list)  # lbfgs: seconds per loss-and-gradient evaluation
    evaluations: list[int] = field(default_factory=list)  # lbfgs: evaluations of each round's fit
    iterations: list[int] = field(default_factory=list)  # lbfgs: iterations of each round's fit

    def pool(self, other: TrainRow) -> None:
        """Add another round of the same run."""
        self.epoch_seconds += other.epoch_seconds
        self.warmup_seconds += other.warmup_seconds
        self.evaluation_seconds += other.evaluation_seconds
        self.evaluations += other.evaluations
        self.iterations += other.iterations

    @property
    def seconds(self) -> float:
        return statistics.median(self.epoch_seconds)

    @property
    def seconds_per_evaluation(self) -> float | None:
        return statistics.median(self.evaluation_seconds) if self.evaluation_seconds else None

    @property
    def best(self) -> float:
        """The fastest timed epoch: on a shared machine, the one least slowed by other processes."""
        return min(self.epoch_seconds)

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds

    @property
    def gflops(self) -> float:
        """Achieved GFLOP/s; an lbfgs run's by its evaluations, each a forward and backward pass over all rows."""
        return training_flops(self.params, self.samples) / (self.seconds_per_evaluation or self.seconds) / 1e9

    def to_dict(self, ceiling: float | None) -> dict[str, Any]:
        return asdict(self) | {
            "median_epoch_seconds": self.seconds,
            "median_evaluation_seconds": self.seconds_per_evaluation,
            "best_epoch_seconds": self.best,
            "samples_per_second": self.samples_per_second,
            "gflops": self.gflops,
            "fraction_of_ceiling": self.gflops / ceiling if ceiling else None,
        }


@dataclass
class GemmRow:
    library: str
    device: str
    shape: tuple[int, int, int]  # (m, k, n): (m x k) @ (k x n)
    seconds: float  # best of the repeats
    gflops: float


def count_params(sizes: Sequence[int]) -> int:
    """Weights and biases of an MLP with these layer sizes."""
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def training_flops(params: int, samples: int) -> float:
    """FLOPs to train on ``samples`` examples: 2 per weight forward, 4 backward (the usual 6 x P x N)."""
    return 6.0 * params * samples


def split_warmup(seconds: Sequence[float], warmup: int) -> tuple[list[float], list[float]]:
    """(warm-up epochs, timed epochs); refuses to time nothing."""
    if len(seconds) <= warmup:
        raise BenchError(f"{len(seconds)} epoch(s) recorded but {warmup} are warm-up: raise --epochs")
    return list(seconds[:warmup]), list(seconds[warmup:])


def ceilings(gemm: Sequence[GemmRow]) -> dict[str, float]:
    """Best square-GEMM GFLOP/s per device, over the libraries measured there."""
    best: dict[str, float] = {}
    for row in gemm:
        if row.shape[0] == row.shape[1] == row.shape[2]:
            best[row.device] = max(best.get(row.device, 0.0), row.gflops)
    return best


def synthetic_dataset(n_train: int = 60_000, n_test: int = 10_000, seed: int = 0) -> Dataset:
    """Random uint8 images and labels shaped like Fashion-MNIST: speed is all they are good for."""
    rng = np.random.default_rng(seed)
    return Dataset(
        "synthetic",
        rng.integers(0, 256, size=(n_train, 784), dtype=np.uint8),
        rng.integers(0, 10, size=n_train, dtype=np.uint8),
        rng.integers(0, 256, size=(n_test, 784), dtype=np.uint8),
        rng.integers(0, 10, size=n_test, dtype=np.uint8),
        (28, 28),
        source="random uint8, seed 0 (Fashion-MNIST not installed)",
    )


def bench_data(kind: str, n_train: int | None) -> Dataset:
    """Fashion-MNIST from Debian's package when asked for (or ``auto`` and present), scikit-learn's digits when
    asked for (small and real: the fit rows' smoke test), else synthetic."""
    if kind == "auto":
        kind = "fashion-mnist" if find_idx_files(SYSTEM_DIRS["fashion-mnist"]) is not None else "synthetic"
    data = load_dataset(kind) if kind in ("fashion-mnist", "digits") else synthetic_dataset()
    if n_train is not None and n_train < len(data.y_train):
        data = Dataset(
            data.name,
            data.x_train[:n_train],
            data.y_train[:n_train],
            data.x_test,
            data.y_test,
            data.image_shape,
            f"{data.source} (first {n_train} training images)",
        )
    return data


def available_backends(targets: Sequence[str], skipped: list[str]) -> dict[str, Backend]:
    """The backends of ``targets`` that can be had here; the others go to ``skipped`` with the reason."""
    found, known = {}, xpnet_targets()
    for target in targets:
        device, name = known[target]
        try:
            found[target] = resolve_backend(device, name)
        except BackendError as e:
            skipped.append(f"xpnet {target}: {e}")
    return found


def time_gemm(backend: Backend, m: int, k: int, n: int, repeats: int) -> GemmRow:
    """Best-of-``repeats`` float32 ``(m x k) @ (k x n)`` on ``backend``, after one untimed call."""
    rng = np.random.default_rng(0)
    a = backend.asarray(rng.standard_normal((m, k), dtype=np.float32))
    b = backend.asarray(rng.standard_normal((k, n), dtype=np.float32))
    c = a @ b  # warm-up: library initialisation, kernel selection, thread pool start
    backend.sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        c = a @ b
        backend.sync()
        best = min(best, time.perf_counter() - start)
    del c
    return GemmRow(backend.name, backend.device_name, (m, k, n), best, 2.0 * m * k * n / best / 1e9)


def bench_gemm(backends: dict[str, Backend], size: int, batches: Sequence[int], repeats: int) -> list[GemmRow]:
    """Square GEMM (the ceiling) and the reference model's largest batch-shaped GEMM on each backend."""
    rows, seen = [], set()
    for backend in backends.values():
        if (backend.name, backend.device_name) in seen:  # a variant target shares its base's GEMMs
            continue
        seen.add((backend.name, backend.device_name))
        # GPUs need a larger problem than CPUs to reach their peak.
        n = size * 4 if backend.device_name.startswith("cuda") else size
        rows.append(time_gemm(backend, n, n, n, repeats))
        for b in batches:
            rows.append(time_gemm(backend, b, 784, REFERENCE_HIDDEN[0], repeats * 5))
    return rows


def bench_xpnet(target: str, backend: Backend, data: Dataset, batch: int, epochs: int, warmup: int) -> TrainRow:
    """xpnet's own trainer; its per-epoch seconds exclude scoring and sync the device around each epoch."""
    config = TrainConfig(hidden_layer_sizes=REFERENCE_HIDDEN, solver="adam", max_iter=warmup + epochs, batch_size=batch)
    with mock.patch.dict(os.environ, VARIANTS.get(target, ("", {}))[1]):  # put back however the run ends
        state = train(backend, data, config)
    warm, timed = split_warmup([e.seconds for e in state.history], warmup)
    sizes = layer_sizes(data.n_features, REFERENCE_HIDDEN, 10)
    return TrainRow(
        "xpnet",
        target,
        backend.device_name,
        batch,
        len(data.y_train),
        timed,
        warm,
        state.history[-1].test_accuracy,
        count_params(sizes),
    )
