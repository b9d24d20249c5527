"""The same model written plainly in other libraries, as a user would: PyTorch eager, and a jitted JAX step.

Each starts from xpnet's initial weights (seed 1) and draws the same permutations, trains the reference model
with Adam at a constant rate on data already on the device, and accumulates loss and correct predictions on
the device, as xpnet's trainer does: same model, optimizer, batch and data, so their test accuracies agree.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import numpy as np

from xpnet.data import Dataset
from xpnet.nn import DEFAULT, OPTIMIZERS, init_params, layer_sizes

from .runs import REFERENCE_HIDDEN, TrainRow, count_params, split_warmup

ADAM_B1, ADAM_B2, ADAM_EPS = DEFAULT.beta_1, DEFAULT.beta_2, DEFAULT.epsilon

LR = OPTIMIZERS["adam"].default_lr


def _timed_epochs(n_epochs: int, epoch: Callable[[], None], sync: Callable[[], None]) -> list[float]:
    seconds = []
    for _ in range(n_epochs):
        sync()
        start = time.perf_counter()
        epoch()
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds


def _row(impl: str, dev_kind: str, dev_name: str, data: Dataset, batch: int, seconds, warmup, acc) -> TrainRow:
    warm, timed = split_warmup(seconds, warmup)
    sizes = layer_sizes(data.n_features, REFERENCE_HIDDEN, 10)
    return TrainRow(impl, dev_kind, dev_name, batch, len(data.y_train), timed, warm, acc, count_params(sizes))


def bench_torch(device: str, data: Dataset, batch: int, epochs: int, warmup: int, seed: int = 1) -> TrainRow:
    """The same model in plain PyTorch, as a user would write it with the data already on the device.

    nn.Sequential, CrossEntropyLoss, torch.optim.Adam with its defaults, a fresh permutation each epoch
    and contiguous slices of the shuffled tensors; it starts from xpnet's initial weights and, like
    xpnet's trainer, accumulates loss and correct predictions on the device.
    """
    import torch
    from torch import nn

    dev = torch.device("cuda", 0) if device == "cuda" else torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    sizes = layer_sizes(data.n_features, REFERENCE_HIDDEN, 10)
    rng = np.random.default_rng(seed)
    host = init_params(rng, sizes, "relu", "float32")
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        linear = nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(host[2 * i].T.copy()))
            linear.bias.copy_(torch.from_numpy(host[2 * i + 1]))
        layers += [linear, nn.ReLU()]
    net = nn.Sequential(*layers[:-1]).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()

    # np.array copies: IDX arrays are read-only views of the file's bytes, which torch.from_numpy warns about.
    x = torch.from_numpy(np.array(data.x_train)).to(dev).float() / 255.0
    y = torch.from_numpy(data.y_train.astype(np.int64)).to(dev)
    n = x.shape[0]

    def epoch() -> None:
        perm = torch.from_numpy(rng.permutation(n)).to(dev)
        xs, ys = x[perm], y[perm]
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        for i in range(0, n, batch):
            xb, yb = xs[i : i + batch], ys[i : i + batch]
            logits = net(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * xb.shape[0]
            correct += (logits.argmax(1) == yb).sum()

    seconds = _timed_epochs(warmup + epochs, epoch, sync)
    with torch.no_grad():
        x_test = torch.from_numpy(np.array(data.x_test)).to(dev).float() / 255.0
        y_test = torch.from_numpy(data.y_test.astype(np.int64)).to(dev)
        acc = float((net(x_test).argmax(1) == y_test).float().mean())
    name = "cpu" if dev.type == "cpu" else f"cuda:{dev.index}"
    return _row("pytorch", dev.type, name, data, batch, seconds, warmup, acc)


def bench_jax(device: str, data: Dataset, batch: int, epochs: int, warmup: int, seed: int = 1) -> TrainRow:
    """The same model as one hand-written ``jax.jit`` step: ``jax.value_and_grad``, Adam, donated buffers."""
    import jax
    import jax.numpy as jnp

    dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
    sizes = layer_sizes(data.n_features, REFERENCE_HIDDEN, 10)
    rng = np.random.default_rng(seed)
    params = [jax.device_put(p, dev) for p in init_params(rng, sizes, "relu", "float32")]
    m, v = [jnp.zeros_like(p) for p in params], [jnp.zeros_like(p) for p in params]

    def forward(params, x):
        for w, b in zip(params[:-2:2], params[1:-2:2]):
            x = jax.nn.relu(x @ w + b)
        return x @ params[-2] + params[-1]

    def loss_fn(params, x, y):
        logits = forward(params, x)
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), logits

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2, 3))
    def step(params, m, v, sums, t, x, y):
        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
        m = [ADAM_B1 * a + (1 - ADAM_B1) * g for a, g in zip(m, grads)]
        v = [ADAM_B2 * a + (1 - ADAM_B2) * g * g for a, g in zip(v, grads)]
        c1, c2 = 1 - ADAM_B1**t, 1 - ADAM_B2**t
        params = [p - LR * (a / c1) / (jnp.sqrt(b / c2) + ADAM_EPS) for p, a, b in zip(params, m, v)]
        correct = jnp.sum(jnp.argmax(logits, axis=1) == y)
        return params, m, v, sums + jnp.stack([loss * x.shape[0], correct.astype(loss.dtype)])

    x = jax.device_put(np.asarray(data.x_train, np.float32) / 255.0, dev)
    y = jax.device_put(data.y_train.astype(np.int32), dev)
    n = x.shape[0]
    state: dict[str, Any] = {"params": params, "m": m, "v": v, "t": 0}

    def epoch() -> None:
        perm = jax.device_put(rng.permutation(n), dev)
        xs, ys = x[perm], y[perm]
        p, m_, v_, sums = state["params"], state["m"], state["v"], jnp.zeros(2, jnp.float32, device=dev)
        for i in range(0, n, batch):
            state["t"] += 1
            p, m_, v_, sums = step(p, m_, v_, sums, jnp.float32(state["t"]), xs[i : i + batch], ys[i : i + batch])
        state.update(params=p, m=m_, v=v_)
        sums.block_until_ready()

    seconds = _timed_epochs(warmup + epochs, epoch, lambda: None)
    x_test = jax.device_put(np.asarray(data.x_test, np.float32) / 255.0, dev)
    acc = float(jnp.mean(jnp.argmax(forward(state["params"], x_test), axis=1) == data.y_test.astype(np.int32)))
    return _row("jax-jit", device, "cpu" if device == "cpu" else "cuda:0", data, batch, seconds, warmup, acc)


# The estimator fits timed beside scikit-learn's, by row name: (which estimator, solver).
FITS = {
    "fit": ("classifier", "adam"),
    "fit-reg": ("regressor", "adam"),
    "lbfgs": ("classifier", "lbfgs"),
    "lbfgs-reg": ("regressor", "lbfgs"),
}


def estimator_class(which: str, fit: str) -> type:
    """scikit-learn's ``MLPClassifier``/``MLPRegressor`` (``which`` "sklearn"), or xpnet's of the same name."""
    name = "MLPRegressor" if FITS[fit][0] == "regressor" else "MLPClassifier"
    home = "sklearn.neural_network" if which == "sklearn" else "xpnet"
    return getattr(importlib.import_module(home), name)


def lower_half_ink(x: np.ndarray, image_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A real regression target read off the pictures: the upper half's pixels in [0, 1] as the features, and
    the mean ink of the lower half (in [0, 1], positive) as the target; nothing is invented."""
    top = image_shape[0] // 2 * image_shape[1]  # rows are pictures flattened row by row
    pixels = x.astype(np.float32) / np.float32(255)
    return np.ascontiguousarray(pixels[:, :top]), pixels[:, top:].mean(axis=1, dtype=np.float32)


def fit_data(data: Dataset, fit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, X_test, y_test) of a fit: float32 pixels and labels, or `lower_half_ink` for a regressor."""
    if FITS[fit][0] == "regressor":
        return (*lower_half_ink(data.x_train, data.image_shape), *lower_half_ink(data.x_test, data.image_shape))
    x, xt = (a.astype(np.float32) / np.float32(255) for a in (data.x_train, data.x_test))
    return x, data.y_train, xt, data.y_test


@contextlib.contextmanager
def counted_evaluations() -> Iterator[list[int]]:
    """The loss-and-gradient evaluations of each lbfgs fit inside: the ``nfev`` of SciPy's L-BFGS-B result."""
    import scipy.optimize

    seen: list[int] = []
    minimize = scipy.optimize.minimize

    def counting(*args: Any, **kwargs: Any) -> Any:
        result = minimize(*args, **kwargs)
        seen.append(int(result.nfev))
        return result

    with mock.patch.object(scipy.optimize, "minimize", counting):
        yield seen


def bench_estimator(
    which: str, data: Dataset, batch: int, epochs: int, warmup: int, seed: int = 1, fit: str = "fit"
) -> TrainRow:
    """A whole ``fit`` of xpnet's estimator (``which`` "xpnet", or "xpnet-cuda" for ``device="cuda"``) or
    scikit-learn's (``"sklearn"``), with the same parameters on the same float32 features (`fit_data`).

    ``fit`` picks the row (`FITS`): ``"fit"`` the classifier, ``"fit-reg"`` the regressor, each the reference
    model with Adam at scikit-learn's defaults (rate 1e-3, alpha 1e-4) for ``warmup + epochs`` epochs that none
    stops early, reported as the whole fit's time per epoch; ``"lbfgs"`` and ``"lbfgs-reg"`` the same model and
    data with ``solver="lbfgs"`` for at most ``warmup + epochs`` iterations (``batch`` unused: every row is one
    batch), reported per iteration and per loss-and-gradient evaluation. Timed as a user sees it, set-up
    included; the score is the test accuracy, or R² for a regressor.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    task, solver = FITS[fit]
    x, y, xt, yt = fit_data(data, fit)
    n = warmup + epochs
    extra = {"device": "cuda"} if which == "xpnet-cuda" else {}
    if solver == "lbfgs":
        extra |= {"solver": "lbfgs"}
    else:
        extra |= {"batch_size": batch, "n_iter_no_change": n + 1}
    est = estimator_class(which, fit)(
        hidden_layer_sizes=REFERENCE_HIDDEN, max_iter=n, tol=0.0, random_state=seed, **extra
    )
    with warnings.catch_warnings(), counted_evaluations() as evaluations:
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(x, y)
        seconds = time.perf_counter() - start
    device = "cuda" if which == "xpnet-cuda" else "cpu"
    params = sum(w.shape[0] * w.shape[1] + w.shape[1] for w in est.coefs_)
    score = "r2" if task == "regressor" else "accuracy"
    if solver != "lbfgs":
        warm, timed = split_warmup([seconds / n] * n, warmup)
        return TrainRow(fit, which, device, batch, len(y), timed, warm, est.score(xt, yt), params, score=score)
    iterations = int(est.n_iter_)
    return TrainRow(
        fit,
        which,
        device,
        len(y),
        len(y),
        [seconds / iterations],
        [],
        est.score(xt, yt),
        params,
        unit="iteration",
        score=score,
        evaluation_seconds=[seconds / e for e in evaluations[-1:]],
        evaluations=evaluations[-1:],
        iterations=[iterations],
    )
