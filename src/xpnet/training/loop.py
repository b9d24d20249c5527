"""The training loop: epochs of shuffled mini-batches, metrics read once per epoch.

Data moves to the device once. Each epoch draws one permutation on the host, gathers the shuffled data
on the device in one operation, then walks contiguous slices of it. Loss and accuracy accumulate on the
device and are read when the epoch ends, so the step loop never waits for a GPU.

A run can start from a `TrainState` (a resumed checkpoint) and hands its state to ``on_state`` after every
epoch; ``stop`` is polled between steps, so an interrupt ends the run after a whole step with a state that
resumes exactly where it left off. Divergence (NaN/Inf) is checked once per epoch, not per step.

What one step does with a batch's row indices is pluggable (``steps``): `local_steps` computes on this
process's device; ``training.distributed`` sums the gradients of shards held by Dask workers. Epochs,
shuffles, stopping, checkpoints and metrics stay here, the same for both.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import nn
from ..backend import Backend, fast_step
from ..data import Dataset
from ..errors import TrainingDiverged, XpnetError
from ..nn import StepFn, train_step
from . import early_stop
from .config import TrainConfig
from .scoring import accuracy, count_correct, to_device
from .state import EpochStats, TrainResult, TrainState, initial_state, layer_sizes

# A mean cross-entropy 100 times that of guessing uniformly (ln k nats for k classes) needs logit gaps in the
# hundreds: the weights have blown up, even where ReLUs died and the stable softmax kept the loss finite.
LOSS_FACTOR = 100


def loss_limit(n_classes: int) -> float:
    return LOSS_FACTOR * math.log(max(n_classes, 2))


# ``(params, opt_state, rows, step, lr) -> (params, opt_state, mean loss, correct count)``: one optimizer
# update on the training rows whose indices ``rows`` (a slice of the epoch's permutation) holds.
BatchStep = Callable[[list[Any], list[Any], Any, int, float], tuple[list[Any], list[Any], Any, Any]]
# Makes the run's `BatchStep`: ``(backend, data, config, layer sizes, fast) -> BatchStep``. A source whose steps
# are computed elsewhere says by what in its ``workers`` attribute once it has made the step (`workers_of`).
StepSource = Callable[[Backend, Dataset, TrainConfig, Sequence[int], bool], BatchStep]


def workers_of(steps: StepSource) -> str | None:
    """What computes the gradients of ``steps`` besides this process, like ``numpy on cpu, 2 Dask workers``
    (known once the source has made its step); None for `local_steps`. The --json line, the log header and
    the checkpoint all read it here."""
    return getattr(steps, "workers", None)


class StepFailed(XpnetError):
    """A step could not be computed (its workers were lost); the run stops with the state before it."""

    exit_status = 1


def make_step(backend: Backend, sizes: Sequence[int], config: TrainConfig, fast: bool = True) -> StepFn:
    """The backend's fast step for this model where it has one (and ``fast``), else the reference step."""
    step_fn = fast_step(backend, sizes, config.recipe, backend.dtype(config.dtype)) if fast else None
    return step_fn or train_step(backend.xp, config.recipe)


def local_steps(backend: Backend, data: Dataset, config: TrainConfig, sizes: Sequence[int], fast: bool) -> BatchStep:
    """Steps on this process's device: the training set moves there once, each batch is gathered there."""
    xp = backend.xp
    dtype = backend.dtype(config.dtype)
    step_fn = make_step(backend, sizes, config, fast)
    x_train, y_train = to_device(backend, data.x_train, data.y_train, dtype)
    t_train = nn.one_hot(xp, y_train, data.n_classes, dtype)

    def batch_step(params, opt_state, rows, step, lr):
        # Gathering each batch (not the whole shuffled set) keeps the copy small and in cache.
        xb, tb, yb = (xp.take(a, rows, axis=0) for a in (x_train, t_train, y_train))
        params, opt_state, loss, logits = step_fn(params, opt_state, xb, tb, step, lr)
        return params, opt_state, loss, count_correct(xp, logits, yb)

    return batch_step


def _diverged(
    backend: Backend, epoch: int, first_step: int, step_losses: list[Any], config: TrainConfig, limit: float
) -> TrainingDiverged:
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
    on_epoch: Callable[[EpochStats], None] | None = None,
    fast: bool = True,
    *,
    state: TrainState | None = None,
    on_state: Callable[[TrainState], None] | None = None,
    stop: Callable[[], bool] | None = None,
    on_step: Callable[[int, int, Any], None] | None = None,
    steps: StepSource = local_steps,
    should_stop: Callable[[list[EpochStats]], bool] | None = None,
) -> TrainResult:
    """Train an MLP on ``data`` with ``backend`` up to ``config.epochs`` epochs in all.

    Starts from ``state`` (a resumed run) or from fresh weights; calls ``on_epoch`` with the epoch's
    statistics and then ``on_state`` with the state after it (to save a checkpoint: its arrays may be
    buffers the next step overwrites). ``stop`` is polled before each step; when it answers true the run
    returns with ``stopped`` set. With ``config.patience`` and a validation set, the run ends once that many
    epochs bring no better validation accuracy (``stopped_early``), and the best epoch's weights are put back
    (and handed to ``on_state``) before the test set is scored. Raises `TrainingDiverged` when an epoch ends
    with NaN/Inf weights, or a loss that is NaN/Inf or far above chance (`loss_limit`); ``on_state`` is then
    not called, so the last checkpoint saved stays the last good one. ``fast=False`` forces the portable
    reference step even where the backend has a fast path. ``on_step(epoch, rows_done, loss_sum)`` is called
    after every step with the epoch's rows trained so far and their summed loss, a device array: reading it
    waits for the device. ``steps`` makes the function that computes each step (default: `local_steps`);
    when a step raises `StepFailed`, the run returns as if stopped before that step, with ``failure`` set.
    ``should_stop(history)``, asked after each epoch, replaces the ``config.patience`` rule (``stopped_early``);
    with a validation set the best epoch's weights are still kept and put back. Without a test set
    (``data.x_test`` None) no test accuracy is computed.
    """
    xp = backend.xp
    dtype = backend.dtype(config.dtype)
    sizes = layer_sizes(data.n_features, data.n_classes, config)
    limit = loss_limit(data.n_classes)
    if state is None:
        state = initial_state(backend, sizes, config)
    rng = state.rng
    params = [backend.asarray(p) for p in (state.last_params if state.restored else state.params)]
    opt_state = [backend.asarray(s) for s in state.opt_state]
    batch_step = steps(backend, data, config, sizes, fast)

    testing = data.x_test is not None and data.y_test is not None
    if testing:
        x_test, y_test = to_device(backend, data.x_test, data.y_test, dtype)
    # With a validation set, epochs are scored on it and the test set is read once, at the end.
    validating = data.x_val is not None and data.y_val is not None
    tracking = validating and (config.patience > 0 or should_stop is not None)
    if should_stop is None:
        def should_stop(history: list[EpochStats]) -> bool:
            return early_stop.should_stop(history, config.patience)
    best_params = state.best_params
    if validating:
        x_val, y_val = to_device(backend, data.x_val, data.y_val, dtype)
    n = data.y_train.shape[0]
    batch = n if config.batch_size == 0 else min(config.batch_size, n)

    result = TrainResult(params, list(state.history), state=state)
    step = state.step
    offset, loss_start, correct_start, seconds_before = state.offset, state.loss_sum, state.correct, state.seconds
    for epoch in range(state.epoch + 1, config.epochs + 1):
        backend.sync()
        start = time.perf_counter()
        rng_at_start = rng.bit_generator.state
        perm = backend.asarray(rng.permutation(n) if config.shuffle else np.arange(n))
        loss_sum = backend.asarray(np.asarray(loss_start, dtype=config.dtype))
        correct = backend.asarray(np.asarray(correct_start, dtype=np.int64))
        first_step, step_losses, lr = step + 1, [], config.lr_at(epoch)
        for i in range(offset, n, batch):
            j, failure = min(i + batch, n), None
            if stop is None or not stop():
                try:
                    params, opt_state, loss, count = batch_step(params, opt_state, perm[i:j], step + 1, lr)
                except StepFailed as e:
                    failure = e
                else:
                    step += 1
                    loss_sum = loss_sum + loss * float(j - i)
                    correct = correct + count
                    step_losses.append(loss)  # a reference, not a read: used only to name a divergent step
                    if on_step is not None:
                        on_step(epoch, j, loss_sum)
                    continue
            # Stopped, or the step failed: the state before this step resumes exactly here.
            backend.sync()
            paused = np.random.Generator(type(rng.bit_generator)())
            paused.bit_generator.state = rng_at_start
            result.params, result.stopped, result.failure = params, True, failure
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
                best_params,
            )
            return result
        # A NaN anywhere propagates into the sum; one read covers the loss and every weight.
        finite = xp.all(xp.stack([xp.all(xp.isfinite(p)) for p in params]))
        backend.sync()
        seconds = seconds_before + time.perf_counter() - start
        loss_mean = float(backend.to_numpy(loss_sum)) / n
        if not (loss_mean <= limit and bool(backend.to_numpy(finite))):
            raise _diverged(backend, epoch, first_step, step_losses, config, limit)
        stats = EpochStats(
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
        offset, loss_start, correct_start, seconds_before = 0, 0.0, 0, 0.0
        result.params = params
        result.history.append(stats)
        if tracking and early_stop.best_epoch(result.history) == epoch:
            best_params = early_stop.host_copy(backend, params)
        result.state = TrainState(params, opt_state, rng, epoch, step, history=list(result.history))
        result.state.best_params = best_params if tracking else None
        # Saved before the epoch is reported: a reader that stops early (| head) must not cost the checkpoint.
        if on_state is not None:
            on_state(result.state)
        if on_epoch is not None:
            on_epoch(stats)
        if should_stop(result.history):
            result.stopped_early = True
            break
    if tracking and best_params is not None and early_stop.best_epoch(result.history) != result.state.epoch:
        params = [backend.asarray(p) for p in best_params]
        result.params = params
        last = early_stop.host_copy(backend, result.state.params)  # resuming continues from these
        result.state = dataclasses.replace(result.state, params=params, restored=True, last_params=last)
        if on_state is not None:
            on_state(result.state)
    if validating and testing:
        result.test_accuracy = accuracy(backend, params, x_test, y_test, config.activation)
    elif result.history:
        result.test_accuracy = result.history[-1].test_accuracy
    return result
