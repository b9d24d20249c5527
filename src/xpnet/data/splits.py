"""Hold out a validation set from the training rows: stratified by class, exactly N rows, seeded.

The split uses its own fixed seed by default, so that ``--seed`` changes the model and never which
images are held out: validation scores of runs with different seeds stay comparable.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DataError
from .datasets import Dataset

VAL_SPLIT_SEED = 0
# A validation set to suggest for each named set, before it is read: about a tenth of its training images
# (60,000 for MNIST and Fashion-MNIST, 1,438 for digits). A set read from --data-dir has no known size.
EXAMPLE_VAL_SPLIT = {"mnist": 5000, "fashion-mnist": 5000, "digits": 150}


def example_val_split(dataset: str) -> int | None:
    """A --val-split that fits the named set ``dataset``, or None for a set whose size is not known yet."""
    return EXAMPLE_VAL_SPLIT.get(dataset)


def stratified_holdout(labels: np.ndarray, n_holdout: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out), each sorted, holding out exactly ``n_holdout`` rows.

    Every class gives rows in proportion to its size; the rounding remainder goes to the classes with
    the largest fractional shares (ties to the smaller label), so the split is a pure function of the
    labels and the generator's state.
    """
    n = labels.shape[0]
    if not 0 <= n_holdout <= n:
        raise ValueError(f"cannot hold out {n_holdout} of {n} rows")
    classes, counts = np.unique(labels, return_counts=True)
    share = counts * (n_holdout / n) if n else counts * 0.0
    take = np.floor(share).astype(np.int64)
    short = n_holdout - int(take.sum())
    order = np.lexsort((classes, -(share - take)))  # largest remainder first, then smaller label
    take[order[:short]] += 1
    held = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(n), held_out, assume_unique=True)
    return kept, held_out


def hold_out(data: Dataset, n_val: int, seed: int = VAL_SPLIT_SEED) -> Dataset:
    """``data`` with ``n_val`` of its training rows moved to ``x_val``/``y_val`` (0: unchanged)."""
    if n_val == 0:
        return data
    n = data.y_train.shape[0]
    if not 0 < n_val < n:
        raise DataError(
            f"--val-split {n_val} is out of range: {data.name} has {n} training images, hold out 1 to {n - 1}"
        )
    kept, held = stratified_holdout(data.y_train, n_val, np.random.default_rng(seed))
    return dataclasses.replace(
        data,
        x_train=data.x_train[kept],
        y_train=data.y_train[kept],
        x_val=data.x_train[held],
        y_val=data.y_train[held],
    )
