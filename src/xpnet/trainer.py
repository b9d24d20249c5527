"""The training loop: epochs of shuffled mini-batches, metrics read once per epoch.

Data moves to the device once. Each epoch draws one permutation on the host, gathers the shuffled data
on the device in one operation, then walks contiguous slices of it. Loss and accuracy accumulate on the
device and are read when the epoch ends, so the step loop never waits for a GPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import losses, model
from .backend import Backend
from .backend_fast import StepFn, make_fast_step
from .data import Dataset
from .data.datasets import N_CLASSES
from .initializers import init_params
from .optim import OPTIMIZERS

EVAL_BATCH = 8192  # rows per forward pass when scoring: bounds memory, large enough to be fast


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run, apart from the data and the backend."""

    hidden: tuple[int, ...] = (256, 128)
    activation: str = "relu"
    optimizer: str = "adam"
    lr: float | None = None  # None: the optimizer's default (see optim.OPTIMIZERS)
    epochs: int = 10
    batch_size: int = 128  # 0: the whole training set in every step (full-batch gradient descent)
    dtype: str = "float32"
    seed: int = 1

    @property
    def learning_rate(self) -> float:
        return OPTIMIZERS[self.optimizer].default_lr if self.lr is None else self.lr

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hidden": list(self.hidden), "lr": self.learning_rate}


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    loss: float  # mean training loss over the epoch's steps
    train_accuracy: float  # of the epoch's batches, each scored just before its update
    test_accuracy: float | None  # None when a validation set is scored instead (test set kept for the end)
    seconds: float  # training time of this epoch, scoring excluded
    samples_per_second: float
    val_accuracy: float | None = None  # on data.x_val/y_val, when the data set has them


@dataclass
class TrainResult:
    params: list[Any]  # on the backend's device
    history: list[EpochStats] = field(default_factory=list)
    test_accuracy: float | None = None  # of the final parameters, set when training ends

    @property
    def train_seconds(self) -> float:
        return sum(e.seconds for e in self.history)


def to_device(backend: Backend, images: np.ndarray, labels: np.ndarray, dtype: Any) -> tuple[Any, Any]:
    """Host uint8 images and labels -> device images scaled to [0, 1] in ``dtype`` and int64 labels."""
    xp = backend.xp
    # Moving uint8 and scaling on the device sends a quarter of the bytes float32 would.
    x = xp.astype(backend.asarray(images), dtype) / 255.0
    return x, backend.asarray(labels.astype(np.int64))


def count_correct(xp: Any, logits: Any, labels: Any) -> Any:
    """Number of rows whose largest logit is the label, as a 0-d int64 device array."""
    return xp.sum(xp.astype(xp.argmax(logits, axis=1) == labels, xp.int64))


def accuracy(backend: Backend, params: Sequence[Any], x: Any, y: Any, activation: str) -> float:
    """Fraction of rows of device arrays ``x`` classified as ``y``; one read from the device."""
    xp = backend.xp
    n = x.shape[0]
    correct = xp.zeros((), dtype=xp.int64, device=backend.device)
    for i in range(0, n, EVAL_BATCH):
        j = min(i + EVAL_BATCH, n)
        logits, _ = model.forward(xp, params, x[i:j, ...], activation)
        correct = correct + count_correct(xp, logits, y[i:j])
    return int(backend.to_numpy(correct)) / max(n, 1)


def reference_step(xp: Any, activation: str, optimizer: str, lr: float) -> StepFn:
    """One training step in the portable math: forward, loss, backward, update."""
    opt = OPTIMIZERS[optimizer]

    def step_fn(params, state, x, targets, step):
        logits, cache = model.forward(xp, params, x, activation)
        loss, dlogits = losses.softmax_cross_entropy(xp, logits, targets)
        grads = model.backward(xp, params, cache, dlogits, activation)
        params, state = opt.update(xp, params, grads, state, step, lr)
        return params, state, loss, logits

    return step_fn


def make_step(backend: Backend, sizes: Sequence[int], config: TrainConfig, fast: bool = True) -> StepFn:
    """The backend's fast step for this model where it has one (and ``fast``), else the reference step."""
    args = (config.activation, config.optimizer, config.learning_rate)
    step_fn = make_fast_step(backend.name, sizes, *args, backend.dtype(config.dtype)) if fast else None
    return step_fn or reference_step(backend.xp, *args)


def train(
    backend: Backend,
    data: Dataset,
    config: TrainConfig,
    on_epoch: Callable[[EpochStats], None] | None = None,
    fast: bool = True,
) -> TrainResult:
    """Train an MLP on ``data`` with ``backend``; call ``on_epoch`` after each epoch.

    ``fast=False`` forces the portable reference step even where the backend has a fast path.
    """
    xp = backend.xp
    dtype = backend.dtype(config.dtype)
    rng = np.random.default_rng(config.seed)
    sizes = model.layer_sizes(data.n_features, config.hidden, N_CLASSES)
    params = [backend.asarray(p) for p in init_params(rng, sizes, config.activation, config.dtype)]
    state = OPTIMIZERS[config.optimizer].init(xp, params)
    step_fn = make_step(backend, sizes, config, fast)

    x_train, y_train = to_device(backend, data.x_train, data.y_train, dtype)
    t_train = losses.one_hot(xp, y_train, N_CLASSES, dtype)
    x_test, y_test = to_device(backend, data.x_test, data.y_test, dtype)
    # With a validation set, epochs are scored on it and the test set is read once, at the end.
    validating = data.x_val is not None and data.y_val is not None
    if validating:
        x_val, y_val = to_device(backend, data.x_val, data.y_val, dtype)
    n = x_train.shape[0]
    batch = n if config.batch_size == 0 else min(config.batch_size, n)

    result = TrainResult(params)
    step = 0
    for epoch in range(1, config.epochs + 1):
        backend.sync()
        start = time.perf_counter()
        perm = backend.asarray(rng.permutation(n))
        loss_sum = xp.zeros((), dtype=dtype, device=backend.device)
        correct = xp.zeros((), dtype=xp.int64, device=backend.device)
        for i in range(0, n, batch):
            j = min(i + batch, n)
            # Gathering each batch (not the whole shuffled set) keeps the copy small and in cache.
            idx = perm[i:j]
            xb, tb, yb = (xp.take(a, idx, axis=0) for a in (x_train, t_train, y_train))
            step += 1
            params, state, loss, logits = step_fn(params, state, xb, tb, step)
            loss_sum = loss_sum + loss * float(j - i)
            correct = correct + count_correct(xp, logits, yb)
        backend.sync()
        seconds = time.perf_counter() - start
        stats = EpochStats(
            epoch=epoch,
            loss=float(backend.to_numpy(loss_sum)) / n,
            train_accuracy=int(backend.to_numpy(correct)) / n,
            test_accuracy=None if validating else accuracy(backend, params, x_test, y_test, config.activation),
            seconds=seconds,
            samples_per_second=n / seconds if seconds > 0 else float("inf"),
            val_accuracy=accuracy(backend, params, x_val, y_val, config.activation) if validating else None,
        )
        result.params = params
        result.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    if validating:
        result.test_accuracy = accuracy(backend, params, x_test, y_test, config.activation)
    elif result.history:
        result.test_accuracy = result.history[-1].test_accuracy
    return result
