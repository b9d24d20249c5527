"""Initial weights, drawn on the host with a seeded NumPy generator.

The Array API has no random numbers, and drawing on the host means the same seed gives bit-identical
initial weights on every backend: the trainer casts them to the chosen dtype here, then moves them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np


def init_params(
    rng: np.random.Generator, sizes: Sequence[int], activation: str, dtype: str = "float32"
) -> list[np.ndarray]:
    """``[W1, b1, W2, b2, ...]`` for layers of the given sizes, as host arrays of ``dtype``.

    He-normal for relu (keeps the variance of activations constant through rectifiers), Glorot-uniform
    for sigmoid and tanh; biases start at zero.
    """
    params: list[np.ndarray] = []
    for n_in, n_out in itertools.pairwise(sizes):
        if activation == "relu":
            w = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))
        else:
            limit = np.sqrt(6.0 / (n_in + n_out))
            w = rng.uniform(-limit, limit, size=(n_in, n_out))
        params += [w.astype(dtype), np.zeros(n_out, dtype=dtype)]
    return params
