"""A training run as the command line runs it: a checkpoint after every epoch, a graceful first Ctrl-C,
and one-line failures that say what was kept."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import nn
from ..backend import Backend, is_out_of_memory
from ..data import Dataset
from ..errors import CheckpointError, OutOfMemory, TrainingDiverged, reason, say
from ..files import WriteError
from ..nn import OPTIMIZERS
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .interrupt import StopOnSignal
from .loop import Callback, StepSource, TrainResult, TrainState, local_steps, train


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
