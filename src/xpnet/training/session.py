"""A training run as the command line runs it: resuming a checkpoint (which settings may change), a
checkpoint after every epoch, Ctrl-C and SIGTERM, and one-line failures that say what was kept.

The first Ctrl-C or SIGTERM during training asks the run to stop after its current step (`StopOnSignal`, a
`loop.Callback`), the second quits; outside the main thread, where Python cannot install signal handlers,
nothing is installed. Outside training, `TerminateLoudly` turns SIGTERM into a one-line exit.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from .. import nn
from ..backend import Backend, is_out_of_memory
from ..data import Dataset
from ..errors import CheckpointError, OutOfMemory, TrainingDiverged, class_list, reason, say
from ..files import WriteError
from ..nn import OPTIMIZERS
from .checkpoint import Checkpoint, save_checkpoint
from .config import FIXED_FIELDS, TrainConfig, spelled
from .loop import Callback, StepSource, TrainResult, TrainState, best_epoch, local_steps, patience_ran_out, train

# Resuming.


def resumed_settings(ckpt: Checkpoint, named: dict[str, Any]) -> tuple[dict[str, Any], str, int]:
    """The checkpoint's config fields, data set and validation split, overridden by the settings ``named`` on
    the command line (by field name); `check_resumable` vets them once the data is read."""
    settings = {f.name: named.get(f.name, getattr(ckpt.config, f.name)) for f in fields(TrainConfig)}
    return settings, named.get("dataset", ckpt.dataset), named.get("val_split", ckpt.val_split)


def check_resumable(
    ckpt: Checkpoint,
    config: TrainConfig,
    dataset: str,
    n_features: int,
    n_train: int,
    classes: tuple[str, ...] | None = None,
) -> None:
    """Refuse to resume ``ckpt`` into a run whose model or data (``classes``: its class names) differ from
    the checkpoint's, or that its own --patience has already ended."""
    wanted = {f: getattr(config, f) for f in FIXED_FIELDS} | {"dataset": dataset, "inputs": n_features}
    saved = {f: getattr(ckpt.config, f) for f in FIXED_FIELDS} | {
        "dataset": ckpt.dataset,
        "inputs": ckpt.layer_sizes[0],
    }
    diff = [f"{k} {spelled(saved[k])} (you asked for {spelled(wanted[k])})" for k in wanted if wanted[k] != saved[k]]
    if diff:
        raise CheckpointError(
            f"{ckpt.path} cannot be resumed as asked: it holds {'; '.join(diff)}; "
            "drop those flags to continue it, or start a new run without --resume"
        )
    if n_train != ckpt.n_train:
        raise CheckpointError(
            f"{ckpt.path} trained on {ckpt.n_train} images of {ckpt.dataset} but this run has "
            f"{n_train} (the checkpoint used --val-split {ckpt.val_split}): resume with the same data"
        )
    if classes is not None and tuple(classes) != ckpt.classes:
        raise CheckpointError(
            f"{ckpt.path} trained on {class_list(ckpt.classes)} but this data has "
            f"{class_list(classes)}: resume with the data it trained on, or start a new run without --resume"
        )
    if patience_ran_out(ckpt.state.history, config.patience):
        raise CheckpointError(
            f"{ckpt.path} already stopped early: validation accuracy has not improved since epoch "
            f"{best_epoch(ckpt.state.history)} for {config.patience} epochs; resume with a larger "
            "--patience to train on"
        )
    check_patience(ckpt, config.patience)
    if ckpt.state.epoch >= config.epochs:
        raise CheckpointError(
            f"{ckpt.path} has already trained {ckpt.state.epoch} epochs: --epochs counts all epochs, "
            f"pass --epochs N with N > {ckpt.state.epoch} to train more"
        )


def check_patience(ckpt: Checkpoint, patience: int) -> None:
    """Refuse --patience on a checkpoint trained without it (it kept no best weights to compare with).

    Checked first on a resume: asking for the --val-split that --patience needs would only lead here."""
    if patience and ckpt.state.best_params is None and ckpt.state.epoch:
        raise CheckpointError(
            f"{ckpt.path} was trained without --patience, so it kept no best weights: resume it without "
            "--patience, or start a new run with it"
        )


# Saving, and the run.


@dataclass
class Saver(Callback):
    """Writes the state to ``path`` after every epoch, and where the run ended when that is another state
    (stopped between steps, or the best epoch's weights put back)."""

    path: Path
    backend: Backend
    data: Dataset
    config: TrainConfig
    val_split: int
    steps: StepSource
    saved: TrainState | None = None  # the state the file on disk holds, once one is written

    def save(self, state: TrainState) -> None:
        data = self.data
        try:
            save_checkpoint(
                self.path, state, self.config, self.backend, data.name, len(data.y_train), self.val_split,
                data.classes, data.layout, workers=self.steps.workers, data_dir=data.folder,
            )  # fmt: skip
        except (OSError, WriteError) as e:  # a disk that filled up during a long run
            why = e.reason if isinstance(e, WriteError) else reason(e)
            kept = "the previous one is intact" if self.path.exists() else "no checkpoint was written"
            raise CheckpointError(
                f"cannot write the checkpoint {self.path} ({why}); {kept}: free some space or give "
                "--save another place" + (", then --resume it" if self.path.exists() else ""),
                exit_status=1,
            ) from None
        self.saved = state

    def on_epoch_end(self, state: TrainState) -> bool:
        self.save(state)
        return False

    def on_train_end(self, result: TrainResult) -> None:
        if result.state is not self.saved:
            self.save(result.state)


def train_saving(
    backend: Backend,
    data: Dataset,
    config: TrainConfig,
    *,
    state: TrainState | None = None,
    save_path: Path | None = None,
    val_split: int = 0,
    callbacks: Sequence[Callback] = (),
    steps: StepSource = local_steps,
) -> TrainResult:
    """`train` from ``state`` (or fresh) with a `Saver` on ``save_path`` (before ``callbacks``, so a reader
    that stops early, ``| head``, cannot cost the checkpoint) and `StopOnSignal`.

    A stopped run says where on stdout, and what was kept; a step that failed (workers lost) raises its error
    with where. Divergence and running out of memory become one-line errors naming the fix and what the
    checkpoint on disk holds.
    """
    saver = Saver(save_path, backend, data, config, val_split, steps) if save_path is not None else None
    try:
        # NumPy's overflow warnings from a huge --lr would precede the one-line divergence message.
        with StopOnSignal() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            hooks = [stop, *([saver] if saver is not None else []), *callbacks]
            result = train(backend, data, config, state=state, callbacks=hooks, steps=steps)
    except TrainingDiverged as e:
        kept = ""
        if saver is not None and saver.saved is not None:
            kept = f"; {save_path} still holds epoch {saver.saved.epoch}"
        elif save_path is not None and save_path.exists():
            kept = f"; {save_path} is left as it was"
        raise TrainingDiverged(f"{e}{kept}") from None
    except Exception as e:
        if not is_out_of_memory(e):
            raise
        raise OutOfMemory(_memory_hint(backend, data, config)) from None
    if result.stopped:
        where = f"epoch {result.state.epoch + 1}, step {result.state.step}"
        kept = "nothing saved (pass --save PATH to keep a checkpoint)"
        if save_path is not None:
            kept = f"checkpoint saved to {save_path}: continue with --resume {save_path}"
        if result.failure is not None:
            raise type(result.failure)(f"{result.failure}; stopped in {where}; {kept}") from None
        say(f"stopped in {where}; {kept}")
    return result


def _memory_hint(backend: Backend, data: Dataset, config: TrainConfig) -> str:
    """What to shrink after running out of memory: the batch, or the model when it alone is too big."""
    size = len(data.y_train) if config.batch_size == 0 else config.batch_size
    sizes = nn.layer_sizes(data.n_features, config.hidden, data.n_classes)
    itemsize = 8 if config.dtype == "float64" else 4
    n_params = sum(math.prod(s) for s in nn.param_shapes(sizes))
    # Weights, gradients and the optimizer's slots, against one batch's activations and their gradients.
    model_bytes = n_params * itemsize * (2 + len(OPTIMIZERS[config.optimizer].state_shapes([()])))
    batch_bytes = 2 * size * sum(sizes) * itemsize
    if model_bytes > batch_bytes:
        return (
            f"out of memory on {backend}: the {nn.layer_text(sizes)} model alone needs "
            f"{model_bytes / 2**30:.1f} GiB ({n_params:,} weights with their gradients and {config.optimizer} "
            "state): try smaller --hidden layers"
        )
    return (
        f"out of memory on {backend} with --batch-size {config.batch_size} ({size} rows per step): "
        f"try --batch-size {max(size // 2, 1)}"
    )


# Signals.

SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)


class StopOnSignal(Callback):
    """While active, the first SIGINT/SIGTERM pauses the run before its next step; the next one raises
    `KeyboardInterrupt` at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def should_pause(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        message = "stopping after the current step (press Ctrl-C again to quit at once)"
        print(f"\n{signal.Signals(signum).name}: {message}", file=sys.stderr, flush=True)

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


class Terminated(KeyboardInterrupt):
    """A SIGTERM outside the window in which a run stops gracefully (before training, after the last save)."""


class TerminateLoudly:
    """While active, SIGTERM raises `Terminated`, so the command line says why it ends instead of dying
    silently with status 143; `StopOnSignal` takes over during training and gives it back afterwards."""

    def __init__(self) -> None:
        self._previous: Any = None

    @staticmethod
    def _handle(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    def __enter__(self) -> TerminateLoudly:
        term = getattr(signal, "SIGTERM", None)
        if term is not None and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(term, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
