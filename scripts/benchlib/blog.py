"""The blog post's comparison: a sigmoid 784-30-10 network trained one example at a time versus vectorised."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from xpnet import nn
from xpnet.backend import Backend
from xpnet.data import Dataset
from xpnet.nn import OPTIMIZERS, init_params

BLOG_HIDDEN = (30,)  # Nielsen's network.py [784, 30, 10], the shape of the blog post's 3-layer network


@dataclass
class BlogResult:
    layers: list[int]
    batch: int
    examples: int
    per_example_seconds: float
    vectorised_seconds: float  # median over repeats of one pass over the same examples
    max_param_difference: float  # per-example vs vectorised final weights: the same updates, so ~rounding
    dtype: str

    @property
    def speedup(self) -> float:
        return self.per_example_seconds / self.vectorised_seconds


def blog_sgd_pass(
    backend: Backend, params: list[Any], x: Any, t: Any, batch: int, lr: float, per_example: bool
) -> list[Any]:
    """One pass of SGD over (x, targets t) in mini-batches, as the blog post trains its network.

    ``per_example`` computes each mini-batch's gradient one example at a time and sums them (the loop
    the post started from); otherwise one forward/backward over the stacked batch gives the same mean.
    """
    xp = backend.xp
    n = x.shape[0]
    for i in range(0, n, batch):
        j = min(i + batch, n)
        if per_example:
            grads = None
            for r in range(i, j):
                logits, cache = nn.forward(xp, params, x[r : r + 1, ...], "logistic")
                _, dlogits = nn.softmax_cross_entropy(xp, logits, t[r : r + 1, ...])
                g = nn.backward(xp, params, cache, dlogits, "logistic")
                grads = g if grads is None else [s + d for s, d in zip(grads, g)]
            grads = [g / float(j - i) for g in grads]
        else:
            logits, cache = nn.forward(xp, params, x[i:j, ...], "logistic")
            _, dlogits = nn.softmax_cross_entropy(xp, logits, t[i:j, ...])
            grads = nn.backward(xp, params, cache, dlogits, "logistic")
        params, _ = OPTIMIZERS["sgd"].update(xp, params, grads, [], 0, lr)
    return params


def bench_blog(
    backend: Backend, data: Dataset, examples: int, batch: int, repeats: int, dtype: str = "float32"
) -> BlogResult:
    """Per-example versus vectorised training of the sigmoid 784-30-10 network on the same examples."""
    xp = backend.xp
    n = min(examples, len(data.y_train))
    sizes = nn.layer_sizes(data.n_features, BLOG_HIDDEN, 10)
    start_params = init_params(np.random.default_rng(1), sizes, "logistic", dtype)
    x = xp.astype(backend.asarray(data.x_train[:n]), backend.dtype(dtype)) / 255.0
    t = nn.one_hot(xp, backend.asarray(data.y_train[:n].astype(np.int64)), 10, backend.dtype(dtype))
    lr = 0.5

    def run(per_example: bool) -> tuple[float, list[Any]]:
        params = [backend.asarray(p) for p in start_params]
        backend.sync()
        begin = time.perf_counter()
        params = blog_sgd_pass(backend, params, x, t, batch, lr, per_example)
        backend.sync()
        return time.perf_counter() - begin, params

    slow, slow_params = run(per_example=True)
    fast_runs = [run(per_example=False) for _ in range(repeats)]
    fast = statistics.median(s for s, _ in fast_runs)
    diff = max(
        float(np.max(np.abs(backend.to_numpy(a) - backend.to_numpy(b)))) for a, b in zip(slow_params, fast_runs[0][1])
    )
    return BlogResult(sizes, batch, n, slow, fast, diff, dtype)
