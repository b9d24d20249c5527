"""Early stopping (``--patience N``): the best validation epoch, when to stop, and keeping its weights.

Everything is read from the history of per-epoch statistics, which a checkpoint keeps, so a resumed run
counts its patience exactly as the uninterrupted run would. Only the best epoch's weights need keeping
besides: host copies, taken once per improving epoch (never inside the step loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import Backend
from ..errors import XpnetError
from .state import EpochStats, TrainResult


def best_epoch(history: Sequence[EpochStats]) -> int | None:
    """The first epoch with the highest validation accuracy, or None when no epoch was validated."""
    scored = [(s.val_accuracy, -s.epoch) for s in history if s.val_accuracy is not None]
    return -max(scored)[1] if scored else None


def kept_stats(result: TrainResult) -> EpochStats:
    """The statistics of the epoch whose weights the run kept: the best one once --patience put its weights
    back, else the last. Its validation accuracy is that of the weights returned and saved."""
    best = best_epoch(result.history)
    if result.state is not None and result.state.restored and best is not None:
        return next(s for s in result.history if s.epoch == best)
    return result.history[-1]


def should_stop(history: Sequence[EpochStats], patience: int) -> bool:
    """True when the last ``patience`` epochs brought no better validation accuracy (``patience`` 0: never)."""
    best = best_epoch(history)
    return patience > 0 and best is not None and history[-1].epoch - best >= patience


def require_validation(patience: int, val_split: int, example: int | None = None) -> None:
    """Refuse early stopping without a validation set: the test set must not choose the model. ``example``
    is a --val-split that fits the data set (`splits.example_val_split`), if its size is known."""
    if patience and not val_split:
        size = f"e.g. --val-split {example}" if example else "about a tenth of the training images"
        raise XpnetError(
            f"--patience {patience} needs a validation set to watch: add --val-split N ({size}), "
            "or leave --patience out"
        )


def host_copy(backend: Backend, params: Sequence[Any]) -> list[np.ndarray]:
    """Host copies of ``params``, safe from a fast step that updates the device arrays in place."""
    return [np.array(backend.to_numpy(p), copy=True) for p in params]
