"""The training loop (epochs of shuffled mini-batches whose loss and accuracy stay on the device until the epoch
ends), its `Callback`s and the one stopping rule. A run stopped between two steps resumes exactly there."""

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import nn
from ..backend import Backend, fast_step
from ..backend.fast import flushed
from ..data import Dataset
from ..errors import TrainingDiverged, XpnetError
from . import model
from .model import ConfigError, EpochStats, TrainConfig, TrainState, accuracy, best_epoch, to_device

# A mean cross-entropy 100 times that of guessing uniformly (ln k nats for k classes) needs logit gaps in the
# hundreds: the weights have blown up, even where ReLUs died and the stable softmax kept the loss finite.
LOSS_FACTOR = 100


class Callback:
    """What `train` calls as it runs, in the order of its list; each hook does nothing by default."""

    def on_train_begin(self, state: TrainState) -> None:
        """Before the first step, once the step is made (Dask: the shards are loaded)."""

    def should_pause(self) -> bool:
        """Asked before each step: True ends the run there, with a state that resumes before that step."""
        return False

    def on_step(self, epoch: int, rows_done: int, loss_sum: Any) -> None:
        """After each step: the epoch's rows trained so far and their summed loss (a device array)."""

    def on_epoch_end(self, state: TrainState) -> bool:
        """After each epoch (its arrays may be overwritten by the next step); True ends the run once all saw it."""
        return False

    def on_train_end(self, state: TrainState) -> None:
        """When the run ends, paused or not (not when it diverged), before the test set is scored."""


def should_stop(history: Sequence[EpochStats], config: TrainConfig) -> bool:
    """scikit-learn's rule: more than ``n_iter_no_change`` epochs in a row failed to beat the best before them by
    ``tol`` (validation accuracy with early stopping, else the loss), read from the history a checkpoint keeps."""
    count, best = 0, -math.inf
    for s in history:
        v = s.val_accuracy if config.early_stopping else -s.loss
        count, best = count + 1 if v < best + config.tol else 0, max(best, v)
    return config.n_iter_no_change is not None and count > config.n_iter_no_change


# ``(params, opt_state, rows, step, lr) -> (params, opt_state, mean loss, correct count)``: update ``step`` on the
# training rows whose indices ``rows`` holds. A `StepSource` makes it from (backend, data, config, layer sizes, fast);
# its ``workers`` names what computes it besides this process, else None. An `XpnetError` from a step (lost Dask
# workers) ends the run as a pause does, in ``failure``.
BatchStep = Callable[[list[Any], list[Any], Any, int, float], tuple[list[Any], list[Any], Any, Any]]
StepSource = Callable[[Backend, Dataset, TrainConfig, Sequence[int], bool], BatchStep]


class LocalSteps:
    """A `StepSource`: steps on this process's device (where the training set moves once), fast where possible."""

    workers = None

    def __call__(self, backend, data, config, sizes, fast) -> BatchStep:
        xp, dtype = backend.xp, backend.dtype(config.dtype)
        step_fn = (fast and fast_step(backend, sizes, config.recipe, dtype)) or nn.train_step(xp, config.recipe)
        x_train, y_train = to_device(backend, data.x_train, data.y_train, dtype)
        t_train = nn.one_hot(xp, y_train, data.n_classes, dtype)

        def batch_step(params, opt_state, rows, step, lr):
            # Gathering each batch (not the whole shuffled set) keeps the copy small and in cache.
            xb, tb, yb = (xp.take(a, rows, axis=0) for a in (x_train, t_train, y_train))
            params, opt_state, loss, logits = step_fn(params, opt_state, xb, tb, step, lr)
            return params, opt_state, loss, model.count_correct(xp, logits, yb)

        return batch_step


local_steps = LocalSteps()


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
    """Train an MLP on ``data`` up to ``config.max_iter`` epochs in all, from ``state`` or fresh weights; the state
    where it ended (`should_stop`; with early stopping, the best epoch's weights, ``restored``). `TrainingDiverged`
    for NaN/Inf weights or a loss far above chance. ``fast=False``: the reference step."""
    xp, dtype, n = backend.xp, backend.dtype(config.dtype), data.y_train.shape[0]
    sizes = nn.layer_sizes(data.n_features, config.hidden_layer_sizes, data.n_classes)
    state = state or model.initial_state(backend, sizes, config)
    if config.early_stopping and data.x_val is None:
        raise ConfigError("early_stopping", "needs validation rows to watch")
    test = to_device(backend, data.x_test, data.y_test, dtype) if data.x_test is not None else None
    val = to_device(backend, data.x_val, data.y_val, dtype) if data.x_val is not None else None
    params = [backend.asarray(p) for p in (state.last_params if state.restored else state.params)]
    opt_state = [backend.asarray(s) for s in state.opt_state]
    batch_step = steps(backend, data, config, sizes, fast)
    for cb in callbacks:
        cb.on_train_begin(state)
    rng, step, history, best = state.rng, state.step, list(state.history), state.best_params
    limit = LOSS_FACTOR * math.log(max(data.n_classes, 2))
    batch = n if config.batch_size == 0 else min(config.batch_size, n)
    for epoch in range(state.epoch + 1, config.max_iter + 1):
        backend.sync()
        start, rng_start = time.perf_counter(), copy.deepcopy(rng)
        perm = backend.asarray(rng.permutation(n) if config.shuffle else np.arange(n))
        loss_sum = backend.asarray(np.asarray(state.loss_sum, dtype=config.dtype))
        correct = backend.asarray(np.asarray(state.correct, dtype=np.int64))
        first_step, step_losses, lr, failure = step + 1, [], config.lr_at(epoch), None
        for i in range(state.offset, n, batch):
            if any(cb.should_pause() for cb in callbacks):
                break
            j = min(i + batch, n)
            try:
                params, opt_state, loss, count = batch_step(params, opt_state, perm[i:j], step + 1, lr)
            except XpnetError as e:
                failure = e
                break
            step += 1
            loss_sum, correct = loss_sum + loss * float(j - i), correct + count
            step_losses.append(loss)  # a reference, not a read: used only to name a divergent step
            for cb in callbacks:
                cb.on_step(epoch, j, loss_sum)
        else:
            i = n
        # A NaN anywhere propagates into the sum; one read covers the loss and every weight.
        finite = xp.all(xp.stack([xp.all(xp.isfinite(p)) for p in params]))
        backend.sync()
        seconds = state.seconds + time.perf_counter() - start
        total, right = backend.to_numpy(loss_sum), int(backend.to_numpy(correct))
        if i < n:  # paused, or the step failed: the state before this step resumes exactly here
            state = TrainState(params, opt_state, rng_start, epoch - 1, step, i, total, right, seconds, history, best)
            state.stopped, state.failure = True, failure
            for cb in callbacks:
                cb.on_train_end(state)
            return state
        loss_mean = float(total) / n
        if not (loss_mean <= limit and bool(backend.to_numpy(finite))):  # which step, found after the fact
            losses = backend.to_numpy(xp.stack(step_losses)) if step_losses else np.zeros(0)
            bad = np.flatnonzero(~(np.abs(losses) <= limit))  # NaN compares false: it counts as bad
            if bad.size:
                where = f"at epoch {epoch}, step {first_step + int(bad[0])} (loss {losses[bad[0]]:.4g})"
            else:  # the last update of the epoch broke the weights; no loss has seen them yet
                where = f"at epoch {epoch}, by step {step} (weights became NaN/Inf)"
            rate = f" (this epoch's rate {lr:g})" if config.lr_decay != 1 else ""
            raise TrainingDiverged(
                f"training diverged {where}{rate}: try a lower {{name}} than {config.learning_rate:g}",
                parameter="learning_rate_init",
            )
        if config.alpha:  # the L2 term as scikit-learn reports it: each batch's, at the epoch's last weights
            loss_mean += math.ceil(n / batch) * float(backend.to_numpy(nn.penalty(xp, params, config.alpha, n)))
        scored = accuracy(backend, params, *(val or test), config.activation) if val or test else None
        speed = n / seconds if seconds > 0 else float("inf")
        stats = EpochStats(epoch, loss_mean, right / n, None, seconds, speed, lr=lr)
        history = [*history, dataclasses.replace(stats, **{"val_accuracy" if val else "test_accuracy": scored})]
        if config.early_stopping and best_epoch(history) == epoch:  # once per improving epoch, off the step loop
            best = [np.array(backend.to_numpy(p), copy=True) for p in params]  # a copy: fast steps work in place
        state = TrainState(params, opt_state, rng, epoch, step, history=history, best_params=best)
        ended = [cb.on_epoch_end(state) for cb in callbacks]  # a list: every callback sees the epoch
        if any(ended) or should_stop(history, config):
            state.stopped_early = True
            break
    if config.early_stopping and not state.restored and best is not None and best_epoch(history) != state.epoch:
        last = [np.array(backend.to_numpy(p), copy=True) for p in state.params]  # resuming continues from these
        state = dataclasses.replace(state, params=[backend.asarray(p) for p in best], restored=True, last_params=last)
    for cb in callbacks:
        cb.on_train_end(state)
    if val and test:
        state.test_accuracy = accuracy(backend, state.params, *test, config.activation)
    elif history:
        state.test_accuracy = history[-1].test_accuracy
    return state
