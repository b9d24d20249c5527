"""The training loop: epochs of shuffled mini-batches whose loss and accuracy stay on the device until the
epoch ends (the step loop never waits for a GPU; divergence is checked once per epoch). Around it, a list of
`Callback`s; one step is a `StepSource`'s (this process's device, or Dask workers). A run stopped between two
steps returns a `TrainState` that resumes exactly there."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from .. import nn
from ..backend import Backend, fast_step
from ..backend.fast import flushed
from ..data import Dataset
from ..errors import TrainingDiverged, XpnetError
from .model import (
    ConfigError,
    EpochStats,
    TrainConfig,
    TrainState,
    accuracy,
    best_epoch,
    count_correct,
    initial_state,
    to_device,
)

# A mean cross-entropy 100 times that of guessing uniformly (ln k nats for k classes) needs logit gaps in the
# hundreds: the weights have blown up, even where ReLUs died and the stable softmax kept the loss finite.
LOSS_FACTOR = 100


class Callback:
    """What `train` calls as it runs, in the order of its list; each hook does nothing by default."""

    def on_train_begin(self, state: TrainState) -> None:
        """Before the first step, once the step source has made its step (Dask: the shards are loaded)."""

    def should_pause(self) -> bool:
        """Asked before each step: True ends the run there, with a state that resumes before that step."""
        return False

    def on_step(self, epoch: int, rows_done: int, loss_sum: Any) -> None:
        """After each step: the epoch's rows trained so far and their summed loss (a device array)."""

    def on_epoch_end(self, state: TrainState) -> bool:
        """After each epoch (``state.history[-1]``; its arrays may be buffers the next step overwrites). True ends
        the run (``stopped_early``) once every callback has seen the epoch."""
        return False

    def on_train_end(self, state: TrainState) -> None:
        """When the run ends, paused or not, before the test set is scored; not when it diverged. With early
        stopping ``state`` is a new object holding the best epoch's weights (``restored``)."""


# One stopping rule for the estimator and the command line (scikit-learn's), read from the history a
# checkpoint keeps, so a resumed run stops exactly where the uninterrupted one would.


def stalled(history: Sequence[EpochStats], config: TrainConfig) -> int:
    """How many epochs in a row, up to the last, failed to beat the best before them by ``config.tol``: on
    validation accuracy with early stopping, else on the training loss (scikit-learn's ``_no_improvement_count``)."""
    count, best = 0, None
    for s in history:
        v = s.val_accuracy if config.early_stopping else -s.loss
        count = count + 1 if best is not None and v < best + config.tol else 0
        best = v if best is None else max(best, v)
    return count


def should_stop(history: Sequence[EpochStats], config: TrainConfig) -> bool:
    """True once more than ``n_iter_no_change`` epochs in a row brought no improvement (None: never)."""
    return config.n_iter_no_change is not None and stalled(history, config) > config.n_iter_no_change


def host_copy(backend: Backend, params: Sequence[Any]) -> list[np.ndarray]:
    """Host copies of ``params``, safe from a fast step that updates the device arrays in place."""
    return [np.array(backend.to_numpy(p), copy=True) for p in params]


# ``(params, opt_state, rows, step, lr) -> (params, opt_state, mean loss, correct count)``: one optimizer
# update (number ``step``) on the training rows whose indices ``rows`` (a slice of the permutation) holds.
BatchStep = Callable[[list[Any], list[Any], Any, int, float], tuple[list[Any], list[Any], Any, Any]]


class StepSource(Protocol):
    """Makes a run's `BatchStep`. A step that raises an `XpnetError` (lost Dask workers) ends the run as a
    pause does, with that error in ``failure``."""

    # What computes the gradients besides this process (``numpy on cpu, 2 Dask workers``, known once the step
    # is made), else None: the --json line, the log header and the checkpoint record it.
    workers: str | None

    def __call__(
        self, backend: Backend, data: Dataset, config: TrainConfig, sizes: Sequence[int], fast: bool
    ) -> BatchStep: ...


class LocalSteps:
    """Steps on this process's device, with the backend's fast step where it has one (and ``fast``); the
    training set moves there once."""

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
    rate = f" (this epoch's rate {config.lr_at(epoch):g})" if config.lr_decay != 1 else ""
    return TrainingDiverged(
        f"training diverged {where}{rate}: try a lower {{name}} than {config.learning_rate:g}",
        parameter="learning_rate_init",
    )


@flushed
def train(
    backend: Backend,
    data: Dataset,
    config: TrainConfig,
    *,
    state: TrainState | None = None,
    callbacks: Sequence[Callback] = (),
    steps: StepSource = local_steps,
    fast: bool = True,
) -> TrainState:
    """Train an MLP on ``data`` up to ``config.max_iter`` epochs in all, from ``state`` (resuming) or fresh
    weights; the state where it ended.

    Stops early by `should_stop`; with ``config.early_stopping`` (which needs validation rows) host copies of
    the best epoch's weights are kept and put back at the end, in a new state (``restored``). Raises
    `TrainingDiverged` when an epoch ends with NaN/Inf weights or a loss far above chance; no callback sees
    that epoch. With validation rows the test set is scored once, at the end. ``fast=False`` forces the
    reference step.
    """
    dtype = backend.dtype(config.dtype)
    sizes = nn.layer_sizes(data.n_features, config.hidden_layer_sizes, data.n_classes)
    state = state or initial_state(backend, sizes, config)
    testing, validating = data.x_test is not None, data.x_val is not None
    if config.early_stopping and not validating:
        raise ConfigError("early_stopping", "needs validation rows to watch")
    test = to_device(backend, data.x_test, data.y_test, dtype) if testing else None
    val = to_device(backend, data.x_val, data.y_val, dtype) if validating else None
    params = [backend.asarray(p) for p in (state.last_params if state.restored else state.params)]
    opt_state = [backend.asarray(s) for s in state.opt_state]
    batch_step = steps(backend, data, config, sizes, fast)
    for cb in callbacks:
        cb.on_train_begin(state)

    n, rng, step, history, best = data.y_train.shape[0], state.rng, state.step, list(state.history), state.best_params
    limit = LOSS_FACTOR * math.log(max(data.n_classes, 2))
    batch = n if config.batch_size == 0 else min(config.batch_size, n)
    offset, loss_start, correct_start, seconds_before = state.offset, state.loss_sum, state.correct, state.seconds
    for epoch in range(state.epoch + 1, config.max_iter + 1):
        backend.sync()
        start, rng_at_start = time.perf_counter(), rng.bit_generator.state
        perm = backend.asarray(rng.permutation(n) if config.shuffle else np.arange(n))
        loss_sum = backend.asarray(np.asarray(loss_start, dtype=config.dtype))
        correct = backend.asarray(np.asarray(correct_start, dtype=np.int64))
        first_step, step_losses, lr = step + 1, [], config.lr_at(epoch)
        for i in range(offset, n, batch):
            j = min(i + batch, n)
            failure = None
            if not any(cb.should_pause() for cb in callbacks):
                try:
                    params, opt_state, loss, count = batch_step(params, opt_state, perm[i:j], step + 1, lr)
                except XpnetError as e:
                    failure = e
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
            state = TrainState(
                params=params, opt_state=opt_state, rng=paused, epoch=epoch - 1, step=step, offset=i,
                loss_sum=backend.to_numpy(loss_sum), correct=int(backend.to_numpy(correct)),
                seconds=seconds_before + time.perf_counter() - start, history=history, best_params=best,
                stopped=True, failure=failure,
            )  # fmt: skip
            for cb in callbacks:
                cb.on_train_end(state)
            return state
        # A NaN anywhere propagates into the sum; one read covers the loss and every weight.
        xp = backend.xp
        finite = xp.all(xp.stack([xp.all(xp.isfinite(p)) for p in params]))
        backend.sync()
        seconds = seconds_before + time.perf_counter() - start
        loss_mean = float(backend.to_numpy(loss_sum)) / n
        if not (loss_mean <= limit and bool(backend.to_numpy(finite))):
            raise _diverged(backend, epoch, first_step, step_losses, config, limit)
        if config.alpha:  # the L2 term as scikit-learn reports it: each batch's, at the epoch's last weights
            loss_mean += math.ceil(n / batch) * float(backend.to_numpy(nn.penalty(xp, params, config.alpha, n)))
        scored = accuracy(backend, params, *(val or test), config.activation) if testing or validating else None
        speed = n / seconds if seconds > 0 else float("inf")
        stats = EpochStats(epoch, loss_mean, int(backend.to_numpy(correct)) / n, None, seconds, speed, lr=lr)
        history = [*history, dataclasses.replace(stats, **{"val_accuracy" if validating else "test_accuracy": scored})]
        if config.early_stopping and best_epoch(history) == epoch:  # once per improving epoch, off the step loop
            best = host_copy(backend, params)
        state = TrainState(params, opt_state, rng, epoch, step, history=history, best_params=best)
        offset, loss_start, correct_start, seconds_before = 0, 0.0, 0, 0.0
        ended = [cb.on_epoch_end(state) for cb in callbacks]  # a list: every callback sees the epoch
        if any(ended) or should_stop(history, config):
            state.stopped_early = True
            break
    if config.early_stopping and not state.restored and best is not None and best_epoch(history) != state.epoch:
        last = host_copy(backend, state.params)  # resuming continues from these
        state = dataclasses.replace(state, params=[backend.asarray(p) for p in best], restored=True, last_params=last)
    for cb in callbacks:
        cb.on_train_end(state)
    if validating and testing:
        state.test_accuracy = accuracy(backend, state.params, *test, config.activation)
    elif history:
        state.test_accuracy = history[-1].test_accuracy
    return state
