"""The training loop: epochs of shuffled mini-batches, metrics read once per epoch.

Data moves to the device once. Each epoch draws one permutation on the host, gathers the shuffled data
on the device in one operation, then walks contiguous slices of it. Loss and accuracy accumulate on the
device and are read when the epoch ends, so the step loop never waits for a GPU.

A run can start from a `TrainState` (a resumed checkpoint) and hands its state to ``on_state`` after every
epoch; ``stop`` is polled between steps, so an interrupt ends the run after a whole step with a state that
resumes exactly where it left off. Divergence (NaN/Inf) is checked once per epoch, not per step.
"""

from __future__ import annotations

import math
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
from .errors import TrainingDiverged
from .initializers import init_params
from .optim import OPTIMIZERS

EVAL_BATCH = 8192  # rows per forward pass when scoring: bounds memory, large enough to be fast
# Guessing uniformly costs ln(10) = 2.3 nats. A mean cross-entropy 100 times that needs logit gaps in the
# hundreds: the weights have blown up, even where ReLUs died and the stable softmax kept the loss finite.
LOSS_LIMIT = 100 * math.log(N_CLASSES)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run, apart from the data and the backend."""

    hidden: tuple[int, ...] = (256, 128)
    activation: str = "relu"
    optimizer: str = "adam"
    lr: float | None = None  # None: the optimizer's default (see optim.OPTIMIZERS)
    gamma: float = 1.0  # the learning rate of epoch e is lr * gamma ** (e - 1): set by the epoch alone
    epochs: int = 10
    batch_size: int = 128  # 0: the whole training set in every step (full-batch gradient descent)
    dtype: str = "float32"
    seed: int = 1

    @property
    def learning_rate(self) -> float:
        return OPTIMIZERS[self.optimizer].default_lr if self.lr is None else self.lr

    def lr_at(self, epoch: int) -> float:
        """Learning rate of epoch ``epoch`` (from 1). It does not depend on ``epochs``, so a run resumed
        with a new total trains its earlier epochs exactly as a run that asked for that total at once."""
        return self.learning_rate * self.gamma ** (epoch - 1)

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
    lr: float | None = None  # the epoch's learning rate


@dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped.

    ``rng`` is the host generator as it stood at the start of the unfinished epoch (or of the next one):
    resuming redraws that epoch's permutation from it and skips the ``offset`` rows already trained.
    ``loss_sum``, ``correct`` and ``seconds`` are the unfinished epoch's partial totals.
    """

    params: list[Any]  # on the backend's device, or host NumPy arrays when loaded from a checkpoint
    opt_state: list[Any]
    rng: np.random.Generator
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer updates done
    offset: int = 0  # rows of epoch ``epoch + 1`` already trained
    loss_sum: Any = 0.0  # host 0-d array in the training dtype, so a resumed sum is bitwise the same
    correct: int = 0
    seconds: float = 0.0
    history: list[EpochStats] = field(default_factory=list)


def initial_state(backend: Backend, n_features: int, config: TrainConfig) -> TrainState:
    """Freshly initialised weights and optimizer state for ``config``, from ``config.seed``."""
    rng = np.random.default_rng(config.seed)
    sizes = model.layer_sizes(n_features, config.hidden, N_CLASSES)
    params = [backend.asarray(p) for p in init_params(rng, sizes, config.activation, config.dtype)]
    return TrainState(params, OPTIMIZERS[config.optimizer].init(backend.xp, params), rng)


@dataclass
class TrainResult:
    params: list[Any]  # on the backend's device
    history: list[EpochStats] = field(default_factory=list)
    test_accuracy: float | None = None  # of the final parameters, set when training ends
    state: TrainState | None = None  # where the run ended: after the last epoch, or where ``stop`` said
    stopped: bool = False  # ``stop`` ended the run before ``config.epochs``

    @property
    def train_seconds(self) -> float:
        return sum(e.seconds for e in self.history)


def images_to_device(backend: Backend, images: np.ndarray, dtype: Any) -> Any:
    """Host uint8 image rows -> device rows scaled to [0, 1] in ``dtype``."""
    # Moving uint8 and scaling on the device sends a quarter of the bytes float32 would.
    return backend.xp.astype(backend.asarray(images), dtype) / 255.0


def to_device(backend: Backend, images: np.ndarray, labels: np.ndarray, dtype: Any) -> tuple[Any, Any]:
    """Host uint8 images and labels -> device images scaled to [0, 1] in ``dtype`` and int64 labels."""
    return images_to_device(backend, images, dtype), backend.asarray(labels.astype(np.int64))


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


def reference_step(xp: Any, activation: str, optimizer: str) -> StepFn:
    """One training step in the portable math: forward, loss, backward, update."""
    opt = OPTIMIZERS[optimizer]

    def step_fn(params, state, x, targets, step, lr):
        logits, cache = model.forward(xp, params, x, activation)
        loss, dlogits = losses.softmax_cross_entropy(xp, logits, targets)
        grads = model.backward(xp, params, cache, dlogits, activation)
        params, state = opt.update(xp, params, grads, state, step, lr)
        return params, state, loss, logits

    return step_fn


def make_step(backend: Backend, sizes: Sequence[int], config: TrainConfig, fast: bool = True) -> StepFn:
    """The backend's fast step for this model where it has one (and ``fast``), else the reference step."""
    args = (config.activation, config.optimizer)
    step_fn = make_fast_step(backend.name, sizes, *args, backend.dtype(config.dtype)) if fast else None
    return step_fn or reference_step(backend.xp, *args)


def _diverged(
    backend: Backend, epoch: int, first_step: int, step_losses: list[Any], config: TrainConfig
) -> TrainingDiverged:
    """Name the first step whose loss blew up; found after the fact, so the loop never syncs."""
    losses_host = backend.to_numpy(backend.xp.stack(step_losses)) if step_losses else np.zeros(0)
    bad = np.flatnonzero(~(np.abs(losses_host) <= LOSS_LIMIT))  # NaN compares false: it counts as bad
    if bad.size:
        where = f"at epoch {epoch}, step {first_step + int(bad[0])} (loss {losses_host[bad[0]]:.4g})"
    else:  # the last update of the epoch broke the weights; no loss has seen them yet
        where = f"at epoch {epoch}, by step {first_step + len(step_losses) - 1} (weights became NaN/Inf)"
    rate = f" (this epoch's rate {config.lr_at(epoch):g})" if config.gamma != 1 else ""
    return TrainingDiverged(f"training diverged {where}{rate}: try a lower --lr than {config.learning_rate:g}")


def train(
    backend: Backend,
    data: Dataset,
    config: TrainConfig,
    on_epoch: Callable[[EpochStats], None] | None = None,
    fast: bool = True,
    *,
    state: TrainState | None = None,
    on_state: Callable[[TrainState], None] | None = None,
    stop: Callable[[], bool] | None = None,
    on_step: Callable[[int, int, Any], None] | None = None,
) -> TrainResult:
    """Train an MLP on ``data`` with ``backend`` up to ``config.epochs`` epochs in all.

    Starts from ``state`` (a resumed run) or from fresh weights; calls ``on_epoch`` with the epoch's
    statistics and then ``on_state`` with the state after it (to save a checkpoint: its arrays may be
    buffers the next step overwrites). ``stop`` is polled before each step; when it answers true the run
    returns with ``stopped`` set. Raises `TrainingDiverged` when an epoch ends with NaN/Inf weights, or a
    loss that is NaN/Inf or above `LOSS_LIMIT`; ``on_state`` is then not called, so the last checkpoint
    saved stays the last good one. ``fast=False`` forces the portable reference step even where the
    backend has a fast path. ``on_step(epoch, rows_done, loss_sum)`` is called after every step with the
    epoch's rows trained so far and their summed loss, a device array: reading it waits for the device.
    """
    xp = backend.xp
    dtype = backend.dtype(config.dtype)
    if state is None:
        state = initial_state(backend, data.n_features, config)
    rng = state.rng
    sizes = model.layer_sizes(data.n_features, config.hidden, N_CLASSES)
    params = [backend.asarray(p) for p in state.params]
    opt_state = [backend.asarray(s) for s in state.opt_state]
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

    result = TrainResult(params, list(state.history), state=state)
    step = state.step
    offset, loss_start, correct_start, seconds_before = state.offset, state.loss_sum, state.correct, state.seconds
    for epoch in range(state.epoch + 1, config.epochs + 1):
        backend.sync()
        start = time.perf_counter()
        rng_at_start = rng.bit_generator.state
        perm = backend.asarray(rng.permutation(n))
        loss_sum = backend.asarray(np.asarray(loss_start, dtype=config.dtype))
        correct = backend.asarray(np.asarray(correct_start, dtype=np.int64))
        first_step, step_losses, lr = step + 1, [], config.lr_at(epoch)
        for i in range(offset, n, batch):
            if stop is not None and stop():
                backend.sync()
                paused = np.random.Generator(type(rng.bit_generator)())
                paused.bit_generator.state = rng_at_start
                result.params, result.stopped = params, True
                result.state = TrainState(
                    params,
                    opt_state,
                    paused,
                    epoch - 1,
                    step,
                    i,
                    backend.to_numpy(loss_sum),
                    int(backend.to_numpy(correct)),
                    seconds_before + time.perf_counter() - start,
                    list(result.history),
                )
                return result
            j = min(i + batch, n)
            # Gathering each batch (not the whole shuffled set) keeps the copy small and in cache.
            idx = perm[i:j]
            xb, tb, yb = (xp.take(a, idx, axis=0) for a in (x_train, t_train, y_train))
            step += 1
            params, opt_state, loss, logits = step_fn(params, opt_state, xb, tb, step, lr)
            loss_sum = loss_sum + loss * float(j - i)
            correct = correct + count_correct(xp, logits, yb)
            step_losses.append(loss)  # a reference, not a read: used only to name a divergent step
            if on_step is not None:
                on_step(epoch, j, loss_sum)
        # A NaN anywhere propagates into the sum; one read covers the loss and every weight.
        finite = xp.all(xp.stack([xp.all(xp.isfinite(p)) for p in params]))
        backend.sync()
        seconds = seconds_before + time.perf_counter() - start
        loss_mean = float(backend.to_numpy(loss_sum)) / n
        if not (loss_mean <= LOSS_LIMIT and bool(backend.to_numpy(finite))):
            raise _diverged(backend, epoch, first_step, step_losses, config)
        stats = EpochStats(
            epoch=epoch,
            loss=loss_mean,
            train_accuracy=int(backend.to_numpy(correct)) / n,
            test_accuracy=None if validating else accuracy(backend, params, x_test, y_test, config.activation),
            seconds=seconds,
            samples_per_second=n / seconds if seconds > 0 else float("inf"),
            val_accuracy=accuracy(backend, params, x_val, y_val, config.activation) if validating else None,
            lr=lr,
        )
        offset, loss_start, correct_start, seconds_before = 0, 0.0, 0, 0.0
        result.params = params
        result.history.append(stats)
        result.state = TrainState(params, opt_state, rng, epoch, step, history=list(result.history))
        if on_epoch is not None:
            on_epoch(stats)
        if on_state is not None:
            on_state(result.state)
    if validating:
        result.test_accuracy = accuracy(backend, params, x_test, y_test, config.activation)
    elif result.history:
        result.test_accuracy = result.history[-1].test_accuracy
    return result
