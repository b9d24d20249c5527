"""The state of a run: per-epoch statistics, everything needed to resume, and the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import nn
from ..backend import Backend
from ..nn import OPTIMIZERS, init_params
from .config import TrainConfig


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    loss: float  # mean training loss over the epoch's steps
    train_accuracy: float  # of the epoch's batches, each scored just before its update
    test_accuracy: float | None  # None when a validation set is scored instead (test set kept for the end)
    seconds: float  # training time of this epoch, scoring excluded
    samples_per_second: float
    val_accuracy: float | None = None  # on data.x_val/y_val, when the data set has them
    lr: float | None = None  # the epoch's learning rate


@dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped.

    ``rng`` is the host generator as it stood at the start of the unfinished epoch (or of the next one):
    resuming redraws that epoch's permutation from it and skips the ``offset`` rows already trained.
    ``loss_sum``, ``correct`` and ``seconds`` are the unfinished epoch's partial totals.
    """

    params: list[Any]  # on the backend's device, or host NumPy arrays when loaded from a checkpoint
    opt_state: list[Any]
    rng: np.random.Generator
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer updates done
    offset: int = 0  # rows of epoch ``epoch + 1`` already trained
    loss_sum: Any = 0.0  # host 0-d array in the training dtype, so a resumed sum is bitwise the same
    correct: int = 0
    seconds: float = 0.0
    history: list[EpochStats] = field(default_factory=list)
    best_params: list[Any] | None = None  # host copies of the best validation epoch's weights (--patience)
    restored: bool = False  # ``params`` are the best epoch's, put back when the run ended (--patience) ...
    last_params: list[Any] | None = None  # ... and these the last epoch's, from which a resumed run continues


def initial_state(backend: Backend, sizes: list[int], config: TrainConfig) -> TrainState:
    """Freshly initialised weights for layers of ``sizes`` and optimizer state, from ``config.seed``."""
    rng = np.random.default_rng(config.seed)
    params = [backend.asarray(p) for p in init_params(rng, sizes, config.activation, config.dtype)]
    return TrainState(params, OPTIMIZERS[config.optimizer].init(backend.xp, params), rng)


def layer_sizes(n_features: int, n_classes: int, config: TrainConfig) -> list[int]:
    """``[inputs, hidden..., classes]`` of the model ``config`` describes."""
    return nn.layer_sizes(n_features, config.hidden, n_classes)


@dataclass
class TrainResult:
    params: list[Any]  # on the backend's device
    history: list[EpochStats] = field(default_factory=list)
    test_accuracy: float | None = None  # of the final parameters, set when training ends
    state: TrainState | None = None  # where the run ended: after the last epoch, or where ``stop`` said
    stopped: bool = False  # ``stop`` (or a failed step) ended the run before ``config.epochs``
    stopped_early: bool = False  # --patience ended it: validation accuracy stopped improving
    failure: Exception | None = None  # the `StepFailed` that ended it, when a step could not be computed

    @property
    def train_seconds(self) -> float:
        return sum(e.seconds for e in self.history)
