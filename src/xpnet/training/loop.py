"""The training loop (epochs of shuffled mini-batches whose loss and accuracy stay on the device until the epoch
ends), its `Callback`s and the one stopping rule. A run stopped between two steps resumes exactly there."""

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
from .model import (
    CLASSIFYING,
    ConfigError,
    EpochStats,
    TrainConfig,
    TrainState,
    best_epoch,
    dense,
    score,
    to_device,
    training_arrays,
)

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


def progress(history: Sequence[EpochStats], config: TrainConfig) -> tuple[int, int, bool]:
    """scikit-learn's rule, replayed from the history a checkpoint keeps: (epochs in a row that failed to beat the
    best before them by ``tol``, validation score with early stopping, else the loss; how often the ``adaptive``
    schedule cut the rate; whether to stop). More than ``n_iter_no_change`` such epochs stop a run, or cut an
    adaptive rate by 5 while it is above 1e-6 and start the count again. A NaN counts as no failure, as there."""
    count, best, cuts, stop = 0, -math.inf, 0, False
    for s in history:
        v = s.val_accuracy if config.early_stopping else -s.loss
        if v is None:  # an epoch not validated (a file's): it neither improves nor fails
            continue
        count, best = count + 1 if v < best + config.tol else 0, v if v > best else best
        stop = config.n_iter_no_change is not None and count > config.n_iter_no_change
        if stop and config.learning_rate == "adaptive" and config.solver == "sgd":
            if config.lr_at(s.epoch, 0, cuts) > 1e-6:
                count, cuts, stop = 0, cuts + 1, False
    return count, cuts, stop


def should_stop(history: Sequence[EpochStats], config: TrainConfig) -> bool:
    """Whether the run ends here (`progress`)."""
    return progress(history, config)[2]


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
        xp, dtype, kind = backend.xp, backend.dtype(config.dtype), config.out_activation
        step_fn = (fast and fast_step(backend, sizes, config.recipe, dtype)) or nn.train_step(xp, config.recipe)
        sparse = hasattr(data.x_train, "toarray")  # scipy.sparse rows stay on the host, each batch made dense
        x_train, y_train, t_train, w_train = training_arrays(
            backend, data.x_train, data.y_train, data.w_train, dtype, kind, sizes[-1]
        )

        def batch_step(params, opt_state, rows, step, lr):
            # Gathering each batch (not the whole shuffled set) keeps the copy small and in cache.
            tb, yb = (xp.take(a, rows, axis=0) for a in (t_train, y_train))
            xb = (
                dense(backend, data.x_train[backend.to_numpy(rows)], dtype)
                if sparse
                else xp.take(x_train, rows, axis=0)
            )
            wb = None if w_train is None else xp.take(w_train, rows, axis=0)
            params, opt_state, loss, logits = step_fn(params, opt_state, xb, tb, step, lr, wb)
            return params, opt_state, loss, model.count_correct(xp, logits, yb, kind)

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
    guard: bool = True,
) -> TrainState:
    """Train an MLP on ``data`` up to ``config.max_iter`` epochs in all, from ``state`` or fresh weights; the state
    where it ended (`should_stop`; with early stopping, the best epoch's weights, ``restored``). ``guard``:
    `TrainingDiverged` for NaN/Inf weights or a loss far above chance (else train on, as scikit-learn does).
    ``fast=False``: the reference step."""
    xp, dtype, n = backend.xp, backend.dtype(config.dtype), data.y_train.shape[0]
    n_out = data.n_classes if config.out_activation == "softmax" else data.y_train.shape[1]
    sizes = nn.layer_sizes(data.n_features, config.hidden_layer_sizes, n_out)
    state = state or model.initial_state(backend, sizes, config)
    if config.early_stopping and data.x_val is None:
        raise ConfigError("early_stopping", "needs validation rows to watch")
    test = (*to_device(backend, data.x_test, data.y_test, dtype), None) if data.x_test is not None else None
    val = None
    if data.x_val is not None:
        x_val, y_val, _, w_val = training_arrays(backend, data.x_val, data.y_val, data.w_val, dtype, "", None)
        val = (x_val, y_val, w_val)
    params = [backend.asarray(p) for p in (state.last_params if state.restored else state.params)]
    opt_state = [backend.asarray(s) for s in state.opt_state]
    batch_step = steps(backend, data, config, sizes, fast)
    for cb in callbacks:
        cb.on_train_begin(state)
    rng, step, history, best = state.rng, state.step, list(state.history), state.best_params
    if config.early_stopping and best is None:  # kept when no epoch scores (NaN), as scikit-learn keeps them
        best = [np.array(backend.to_numpy(p), copy=True) for p in params]
    limit, seen = LOSS_FACTOR * math.log(max(data.n_classes, 2)), state.seen
    weights = None if data.w_train is None else np.asarray(backend.to_numpy(backend.asarray(data.w_train)), float)
    batch = n if config.batch_size == 0 else min(config.batch_size, n)
    for epoch in range(state.epoch + 1, config.max_iter + 1):
        backend.sync()
        start, rng_start = time.perf_counter(), rng.bit_generator.state  # a dict: cheaper than a copy
        order = rng.permutation(n) if config.shuffle else np.arange(n)
        perm = backend.asarray(order)
        loss_sum = backend.asarray(np.asarray(state.loss_sum, dtype=config.dtype))
        correct = backend.asarray(np.asarray(state.correct, dtype=np.int64))
        cuts = progress(history, config)[1] if config.learning_rate == "adaptive" else 0
        lr = config.lr_at(epoch, seen, cuts)
        first_step, step_losses, failure = step + 1, [], None
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
            state = TrainState(
                params,
                opt_state,
                _generator(rng, rng_start),
                epoch - 1,
                step,
                i,
                total,
                right,
                seconds,
                history,
                seen,
                best,
            )
            state.stopped, state.failure = True, failure
            for cb in callbacks:
                cb.on_train_end(state)
            return state
        loss_mean = float(total) / n
        if guard and not (loss_mean <= limit and bool(backend.to_numpy(finite))):  # which step, found after the fact
            losses = backend.to_numpy(xp.stack(step_losses)) if step_losses else np.zeros(0)
            bad = np.flatnonzero(~(np.abs(losses) <= limit))  # NaN compares false: it counts as bad
            if bad.size:
                where = f"at epoch {epoch}, step {first_step + int(bad[0])} (loss {losses[bad[0]]:.4g})"
            else:  # the last update of the epoch broke the weights; no loss has seen them yet
                where = f"at epoch {epoch}, by step {step} (weights became NaN/Inf)"
            rate = f" (this epoch's rate {lr:g})" if config.lr_decay != 1 else ""
            raise TrainingDiverged(
                f"training diverged {where}{rate}: try a lower {{name}} than {config.lr:g}",
                parameter="learning_rate_init",
            )
        if config.alpha:  # the L2 term as scikit-learn reports it: each batch's, at the epoch's last weights
            loss_mean += batches_over_weight(order, batch, weights) * float(
                backend.to_numpy(nn.penalty(xp, params, config.alpha, n))
            )
        scored = score(backend, params, *(val or test)[:2], config, (val or test)[2]) if val or test else None
        speed, seen = n / seconds if seconds > 0 else float("inf"), seen + n
        trained = right / n if config.out_activation in CLASSIFYING else None
        stats = EpochStats(epoch, loss_mean, trained, None, seconds, speed, lr=lr)
        history = [*history, dataclasses.replace(stats, **{"val_accuracy" if val else "test_accuracy": scored})]
        if config.early_stopping and best_epoch(history) == epoch:  # once per improving epoch, off the step loop
            best = [np.array(backend.to_numpy(p), copy=True) for p in params]  # a copy: fast steps work in place
        state = TrainState(params, opt_state, rng, epoch, step, history=history, seen=seen, best_params=best)
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
        state.test_accuracy = score(backend, state.params, *test[:2], config)
    elif history:
        state.test_accuracy = history[-1].test_accuracy
    return state


def _generator(like: np.random.Generator, state: dict[str, Any]) -> np.random.Generator:
    """A new generator of ``like``'s kind in ``state``."""
    rng = np.random.Generator(type(like.bit_generator)())
    rng.bit_generator.state = state
    return rng


def batches_over_weight(order: np.ndarray, batch: int, weights: np.ndarray | None) -> float:
    """The sum over an epoch's batches of their rows over their summed weights (their count, unweighted): what
    scales an L2 term of ``alpha / (2 n)`` to scikit-learn's report, each batch's term over its weight."""
    if weights is None:
        return math.ceil(len(order) / batch)
    starts = np.arange(0, len(order), batch)
    rows = np.diff(np.append(starts, len(order)))
    return float(np.sum(rows / np.add.reduceat(weights[order], starts)))
