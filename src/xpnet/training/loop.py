"""The training loop: epochs of shuffled mini-batches, metrics read once per epoch, and what it hands around.

Data moves to the device once. Each epoch draws one permutation on the host and walks contiguous slices of
it; loss and accuracy accumulate on the device and are read when the epoch ends, so the step loop never
waits for a GPU. Divergence (NaN/Inf) is checked once per epoch, not per step.

What happens around the loop is a list of `Callback` objects (saving a checkpoint, a progress bar, Ctrl-C,
early stopping); what one step does with a batch's rows is a `StepSource` (this process's device, or
``training.distributed``'s Dask workers). A run can start from a `TrainState` and, stopped between two
steps, returns a state that resumes exactly there.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .. import nn
from ..backend import Backend, fast_step
from ..data import Dataset
from ..errors import TrainingDiverged, XpnetError
from .config import TrainConfig
from .scoring import accuracy, count_correct, to_device

# A mean cross-entropy 100 times that of guessing uniformly (ln k nats for k classes) needs logit gaps in the
# hundreds: the weights have blown up, even where ReLUs died and the stable softmax kept the loss finite.
LOSS_FACTOR = 100


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
    best_params: list[Any] | None = None  # host copies of the best validation epoch's weights (`KeepBest`)
    restored: bool = False  # ``params`` are the best epoch's, put back when the run ended ...
    last_params: list[Any] | None = None  # ... and these the last epoch's, from which a resumed run continues


@dataclass
class TrainResult:
    params: list[Any]  # on the backend's device
    history: list[EpochStats] = field(default_factory=list)
    test_accuracy: float | None = None  # of the final parameters, set when training ends
    state: TrainState | None = None  # where the run ended: after the last epoch, or where it was stopped
    stopped: bool = False  # a callback's `Callback.should_pause` (or a failed step) ended it between steps
    stopped_early: bool = False  # a callback's `Callback.on_epoch_end` ended it (--patience)
    failure: XpnetError | None = None  # the error of the step that could not be computed, when one ended it

    @property
    def train_seconds(self) -> float:
        return sum(e.seconds for e in self.history)


def initial_state(backend: Backend, sizes: Sequence[int], config: TrainConfig) -> TrainState:
    """Freshly initialised weights for layers of ``sizes`` and optimizer state, from ``config.seed``."""
    rng = np.random.default_rng(config.seed)
    params = [backend.asarray(p) for p in nn.init_params(rng, list(sizes), config.activation, config.dtype)]
    return TrainState(params, nn.OPTIMIZERS[config.optimizer].init(backend.xp, params), rng)


class Callback:
    """What `train` calls as it runs, in the order of its list; each hook does nothing by default."""

    def on_train_begin(self, state: TrainState) -> None:
        """Before the first step, once the step source has made its step (Dask: the shards are loaded)."""

    def should_pause(self) -> bool:
        """Asked before each step: True ends the run there, with a state that resumes before that step."""
        return False

    def on_step(self, epoch: int, rows_done: int, loss_sum: Any) -> None:
        """After each step: the epoch's rows trained so far and their summed loss, a device array (reading it
        waits for the device)."""

    def on_epoch_end(self, state: TrainState) -> bool:
        """After each epoch (its statistics are ``state.history[-1]``; its arrays may be buffers the next
        step overwrites). True ends the run (``stopped_early``), once every callback has seen the epoch."""
        return False

    def on_train_end(self, result: TrainResult) -> None:
        """When the run ends, stopped or not, before the test set is scored; not called when it diverged."""


# Early stopping: everything is read from the history of per-epoch statistics, which a checkpoint keeps, so a
# resumed run counts its patience exactly as the uninterrupted run would.


def best_epoch(history: Sequence[EpochStats]) -> int | None:
    """The first epoch with the highest validation accuracy, or None when no epoch was validated."""
    scored = [(s.val_accuracy, -s.epoch) for s in history if s.val_accuracy is not None]
    return -max(scored)[1] if scored else None


def patience_ran_out(history: Sequence[EpochStats], patience: int) -> bool:
    """True when the last ``patience`` epochs brought no better validation accuracy (``patience`` 0: never)."""
    best = best_epoch(history)
    return patience > 0 and best is not None and history[-1].epoch - best >= patience


def kept_stats(result: TrainResult) -> EpochStats:
    """The statistics of the epoch whose weights the run kept: the best one once `KeepBest` put its weights
    back, else the last."""
    best = best_epoch(result.history)
    if result.state is not None and result.state.restored and best is not None:
        return next(s for s in result.history if s.epoch == best)
    return result.history[-1]


def host_copy(backend: Backend, params: Sequence[Any]) -> list[np.ndarray]:
    """Host copies of ``params``, safe from a fast step that updates the device arrays in place."""
    return [np.array(backend.to_numpy(p), copy=True) for p in params]


class KeepBest(Callback):
    """Early stopping: keeps host copies of the best validation epoch's weights (taken once per improving
    epoch, never inside the step loop), ends the run after ``patience`` epochs without a better one (0: never,
    another callback decides) and puts the best weights back when the run ends."""

    def __init__(self, backend: Backend, patience: int = 0):
        self.backend, self.patience = backend, patience
        self.best: list[Any] | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self.best = state.best_params

    def on_epoch_end(self, state: TrainState) -> bool:
        if best_epoch(state.history) == state.epoch:
            self.best = host_copy(self.backend, state.params)
        state.best_params = self.best
        return patience_ran_out(state.history, self.patience)

    def on_train_end(self, result: TrainResult) -> None:
        state = result.state
        state.best_params = self.best
        if result.stopped or state.restored or self.best is None or best_epoch(state.history) == state.epoch:
            return
        result.params = [self.backend.asarray(p) for p in self.best]
        last = host_copy(self.backend, state.params)  # resuming continues from these
        result.state = dataclasses.replace(state, params=result.params, restored=True, last_params=last)


# ``(params, opt_state, rows, step, lr) -> (params, opt_state, mean loss, correct count)``: one optimizer
# update (number ``step``) on the training rows whose indices ``rows`` (a slice of the permutation) holds.
BatchStep = Callable[[list[Any], list[Any], Any, int, float], tuple[list[Any], list[Any], Any, Any]]


class StepSource(Protocol):
    """Makes a run's `BatchStep`. A step that raises an `XpnetError` (its Dask workers were lost) ends the run
    as a pause does, with that error in ``failure``."""

    # What computes the gradients besides this process, like ``numpy on cpu, 2 Dask workers`` (known once the
    # step is made); None when nothing does. The --json line, the log header and the checkpoint record it.
    workers: str | None

    def __call__(
        self, backend: Backend, data: Dataset, config: TrainConfig, sizes: Sequence[int], fast: bool
    ) -> BatchStep: ...


class LocalSteps:
    """Steps on this process's device with the backend's fast step where it has one (and ``fast``), else the
    reference step: the training set moves there once, each batch is gathered there."""

    workers = None

    def __call__(
        self, backend: Backend, data: Dataset, config: TrainConfig, sizes: Sequence[int], fast: bool
    ) -> BatchStep:
        xp, dtype = backend.xp, backend.dtype(config.dtype)
        step_fn = fast_step(backend, sizes, config.recipe, dtype) if fast else None
        step_fn = step_fn or nn.train_step(xp, config.recipe)
        x_train, y_train = to_device(backend, data.x_train, data.y_train, dtype)
        t_train = nn.one_hot(xp, y_train, data.n_classes, dtype)

        def batch_step(params, opt_state, rows, step, lr):
            # Gathering each batch (not the whole shuffled set) keeps the copy small and in cache.
            xb, tb, yb = (xp.take(a, rows, axis=0) for a in (x_train, t_train, y_train))
            params, opt_state, loss, logits = step_fn(params, opt_state, xb, tb, step, lr)
            return params, opt_state, loss, count_correct(xp, logits, yb)

        return batch_step


local_steps = LocalSteps()


def _diverged(backend: Backend, epoch: int, first_step: int, step_losses: list[Any], config: TrainConfig, limit: float):
    """Name the first step whose loss blew up; found after the fact, so the loop never syncs."""
    losses_host = backend.to_numpy(backend.xp.stack(step_losses)) if step_losses else np.zeros(0)
    bad = np.flatnonzero(~(np.abs(losses_host) <= limit))  # NaN compares false: it counts as bad
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
    *,
    state: TrainState | None = None,
    callbacks: Sequence[Callback] = (),
    steps: StepSource = local_steps,
    fast: bool = True,
) -> TrainResult:
    """Train an MLP on ``data`` with ``backend`` up to ``config.epochs`` epochs in all, from ``state`` (a
    resumed run) or fresh weights.

    With ``config.patience`` and a validation set, a `KeepBest` runs first among the callbacks. Raises
    `TrainingDiverged` when an epoch ends with NaN/Inf weights or a loss far above chance; no callback then
    sees that epoch, so the last checkpoint saved stays the last good one. With a validation set epochs are
    scored on it and the test set once, at the end; without a test set no test accuracy is computed.
    ``fast=False`` forces the reference step even where the backend has a fast path.
    """
    dtype = backend.dtype(config.dtype)
    sizes = nn.layer_sizes(data.n_features, config.hidden, data.n_classes)
    if state is None:
        state = initial_state(backend, sizes, config)
    testing, validating = data.x_test is not None, data.x_val is not None
    if validating and config.patience:
        callbacks = [KeepBest(backend, config.patience), *callbacks]
    if testing:
        x_test, y_test = to_device(backend, data.x_test, data.y_test, dtype)
    if validating:
        x_val, y_val = to_device(backend, data.x_val, data.y_val, dtype)
    params = [backend.asarray(p) for p in (state.last_params if state.restored else state.params)]
    opt_state = [backend.asarray(s) for s in state.opt_state]
    batch_step = steps(backend, data, config, sizes, fast)
    for cb in callbacks:
        cb.on_train_begin(state)

    n, rng, step = data.y_train.shape[0], state.rng, state.step
    limit = LOSS_FACTOR * math.log(max(data.n_classes, 2))
    batch = n if config.batch_size == 0 else min(config.batch_size, n)
    result = TrainResult(params, list(state.history), state=state)
    offset, loss_start, correct_start, seconds_before = state.offset, state.loss_sum, state.correct, state.seconds
    for epoch in range(state.epoch + 1, config.epochs + 1):
        backend.sync()
        start, rng_at_start = time.perf_counter(), rng.bit_generator.state
        perm = backend.asarray(rng.permutation(n) if config.shuffle else np.arange(n))
        loss_sum = backend.asarray(np.asarray(loss_start, dtype=config.dtype))
        correct = backend.asarray(np.asarray(correct_start, dtype=np.int64))
        first_step, step_losses, lr = step + 1, [], config.lr_at(epoch)
        for i in range(offset, n, batch):
            j = min(i + batch, n)
            if not any(cb.should_pause() for cb in callbacks):
                try:
                    params, opt_state, loss, count = batch_step(params, opt_state, perm[i:j], step + 1, lr)
                except XpnetError as e:
                    result.failure = e
                else:
                    step += 1
                    loss_sum, correct = loss_sum + loss * float(j - i), correct + count
                    step_losses.append(loss)  # a reference, not a read: used only to name a divergent step
                    for cb in callbacks:
                        cb.on_step(epoch, j, loss_sum)
                    continue
            # Paused, or the step failed: the state before this step resumes exactly here.
            backend.sync()
            paused = np.random.Generator(type(rng.bit_generator)())
            paused.bit_generator.state = rng_at_start
            result.params, result.stopped = params, True
            result.state = TrainState(
                params=params, opt_state=opt_state, rng=paused, epoch=epoch - 1, step=step, offset=i,
                loss_sum=backend.to_numpy(loss_sum), correct=int(backend.to_numpy(correct)),
                seconds=seconds_before + time.perf_counter() - start, history=list(result.history),
            )  # fmt: skip
            for cb in callbacks:
                cb.on_train_end(result)
            return result
        # A NaN anywhere propagates into the sum; one read covers the loss and every weight.
        finite = backend.xp.all(backend.xp.stack([backend.xp.all(backend.xp.isfinite(p)) for p in params]))
        backend.sync()
        seconds = seconds_before + time.perf_counter() - start
        loss_mean = float(backend.to_numpy(loss_sum)) / n
        if not (loss_mean <= limit and bool(backend.to_numpy(finite))):
            raise _diverged(backend, epoch, first_step, step_losses, config, limit)
        result.params = params
        result.history.append(
            EpochStats(
                epoch=epoch,
                loss=loss_mean,
                train_accuracy=int(backend.to_numpy(correct)) / n,
                test_accuracy=accuracy(backend, params, x_test, y_test, config.activation)
                if testing and not validating
                else None,
                seconds=seconds,
                samples_per_second=n / seconds if seconds > 0 else float("inf"),
                val_accuracy=accuracy(backend, params, x_val, y_val, config.activation) if validating else None,
                lr=lr,
            )
        )
        result.state = TrainState(params, opt_state, rng, epoch, step, history=list(result.history))
        offset, loss_start, correct_start, seconds_before = 0, 0.0, 0, 0.0
        if any([cb.on_epoch_end(result.state) for cb in callbacks]):  # a list: every callback sees the epoch
            result.stopped_early = True
            break
    for cb in callbacks:
        cb.on_train_end(result)
    if validating and testing:
        result.test_accuracy = accuracy(backend, result.params, x_test, y_test, config.activation)
    elif result.history:
        result.test_accuracy = result.history[-1].test_accuracy
    return result
