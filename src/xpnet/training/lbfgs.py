"""The full-batch solver ``lbfgs``: SciPy's L-BFGS-B on the host, as scikit-learn runs it, with the loss and its
gradient computed where the weights live: per evaluation the packed weights go to the device and the loss and
gradient come back in one read. The quasi-Newton update itself works on one vector of all the weights and a few
of history, small next to the matrix products that stay on the device."""

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.optimize

from .. import nn
from ..backend import Backend, fast_step
from ..data import Dataset
from . import model
from .model import EpochStats, TrainConfig, TrainState, chunk_rows

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def objective(backend: Backend, x: Any, t: Any, w: Any, sizes: Sequence[int], config: TrainConfig):
    """``(loss_and_gradient(theta), unpack(theta), pack(params))`` for rows ``x`` (device, or host sparse: made
    dense `chunk_rows` at a time), targets ``t`` and weights ``w`` (None: each row once). ``theta`` is
    float64 host, the weights in the model's order, ``[W1, b1, W2, b2, ...]`` (`scikit_learn_order`: theirs)."""
    xp, dtype, n = backend.xp, backend.dtype(config.dtype), t.shape[0]
    shapes = nn.param_shapes(sizes)
    ends = np.cumsum([math.prod(s) for s in shapes]).tolist()
    recipe, rows = config.recipe._replace(alpha=0.0), chunk_rows(x) if hasattr(x, "toarray") else max(n, 1)
    total = n if w is None else xp.sum(w)

    def unpack(theta: np.ndarray) -> list[Any]:
        flat = xp.astype(backend.asarray(theta), dtype, copy=False)
        return [xp.reshape(flat[end - math.prod(s) : end], s) for end, s in zip(ends, shapes)]

    def pack(params: Sequence[Any]) -> np.ndarray:
        return np.concatenate([np.asarray(backend.to_numpy(p), dtype=np.float64).ravel() for p in params])

    # The backend's in-place step, less its update, where it has one: the reference's arithmetic, fewer copies;
    # theta goes straight into its flat buffer and the gradient comes out of its flat one.
    step = None if hasattr(x, "toarray") else fast_step(backend, sizes, config.recipe._replace(optimizer="sgd"), dtype)
    in_place = getattr(step, "gradient", None)
    if in_place is not None and step.theta is None:
        step.allocate(x.device)

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        if in_place is not None:
            step.theta[...] = backend.asarray(theta)
            loss = in_place(step.params, x, t, w)[0]
            loss = loss + nn.penalty(xp, step.params, config.alpha, total) if config.alpha else loss
            # a copy: SciPy keeps each gradient it is given, and the buffer is overwritten by the next evaluation
            return float(backend.to_numpy(loss)), np.array(backend.to_numpy(step.grad), dtype=np.float64)
        params, loss, grads = unpack(theta), 0.0, None
        for i in range(0, n, rows):  # the parts' means, each weighted by its share of the rows (or weights)
            j = min(i + rows, n)
            part = None if w is None else w[i:j]
            xb = model.dense(backend, x[i:j, :], dtype)
            part_loss, part_grads, _ = nn.gradients(xp, params, xb, t[i:j, :], recipe, part)
            if rows < n:
                share = (j - i) / n if w is None else xp.sum(part) / total
                part_loss, part_grads = part_loss * share, [g * share for g in part_grads]
            loss = loss + part_loss
            grads = part_grads if grads is None else [a + g for a, g in zip(grads, part_grads)]
        grads = nn.add_penalty(params, grads, config.alpha, total)
        loss = loss + nn.penalty(xp, params, config.alpha, total) if config.alpha else loss
        flat = [xp.reshape(xp.astype(loss, dtype), (1,)), *(xp.reshape(g, (-1,)) for g in grads)]
        host = np.asarray(backend.to_numpy(xp.concat(flat)), dtype=np.float64)  # one read from the device
        return float(host[0]), host[1:]

    return loss_and_gradient, unpack, pack


def scikit_learn_order(sizes: Sequence[int]) -> np.ndarray:
    """Where each entry of scikit-learn's packing (every layer's weights, then every layer's biases) sits in
    ours (``[W1, b1, W2, b2, ...]``): ``theirs = ours[scikit_learn_order(sizes)]``."""
    shapes = nn.param_shapes(sizes)
    starts = np.cumsum([0, *(math.prod(s) for s in shapes)])
    parts = [np.arange(starts[i], starts[i + 1]) for i in [*range(0, len(shapes), 2), *range(1, len(shapes), 2)]]
    return np.concatenate(parts)


def fit_lbfgs(
    backend: Backend, data: Dataset, config: TrainConfig, state: TrainState | None = None
) -> tuple[TrainState, scipy.optimize.OptimizeResult]:
    """Minimise the loss on all of ``data``'s training rows from ``state`` (or fresh weights), up to
    ``config.max_iter`` iterations in all and ``config.max_fun`` evaluations, until the projected gradient is below
    ``config.tol``: the state where it ended (an iteration is an epoch of its history) and SciPy's result."""
    dtype, kind, n = backend.dtype(config.dtype), config.out_activation, data.y_train.shape[0]
    n_out = data.n_classes if kind == "softmax" else data.y_train.shape[1]
    x, _, t, w = model.training_arrays(backend, data.x_train, data.y_train, data.w_train, dtype, kind, n_out)
    sizes = nn.layer_sizes(data.n_features, config.hidden_layer_sizes, n_out)
    state = state or model.initial_state(backend, sizes, config)
    loss_and_gradient, unpack, pack = objective(backend, x, t, w, sizes, config)
    history, clock = list(state.history), [time.perf_counter()]

    def record(intermediate_result: scipy.optimize.OptimizeResult) -> None:  # each iteration, as an epoch
        now = time.perf_counter()
        seconds, clock[0] = now - clock[0], now
        stats = EpochStats(
            len(history) + 1, float(intermediate_result.fun), None, None, seconds, n / max(seconds, 1e-9)
        )
        history.append(stats)

    options = {"maxiter": max(config.max_iter - state.epoch, 1), "maxfun": config.max_fun, "gtol": config.tol}
    theta = pack(state.params)
    result = scipy.optimize.minimize(
        loss_and_gradient, theta, method="L-BFGS-B", jac=True, options=options, callback=record
    )
    done = TrainState(unpack(result.x), [], state.rng, len(history), state.step + int(result.nfev), history=history)
    done.seen, done.stopped_early = state.seen, result.status == 0
    return done, result
