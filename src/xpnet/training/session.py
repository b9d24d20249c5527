"""A training run as the command line runs it: a checkpoint after every epoch, a graceful first Ctrl-C,
and one-line failures that say what was kept."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import nn
from ..backend import Backend, is_out_of_memory
from ..data import Dataset
from ..errors import CheckpointError, OutOfMemory, TrainingDiverged, printable
from ..files import WriteError
from ..nn import OPTIMIZERS
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .interrupt import StopOnSignal
from .loop import StepFailed, StepSource, local_steps, train, workers_of
from .state import EpochStats, TrainResult, TrainState, layer_sizes


def train_saving(
    backend: Backend,
    data: Dataset,
    config: TrainConfig,
    *,
    state: TrainState | None = None,
    save_path: Path | None = None,
    val_split: int = 0,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_step: Callable[[int, int, Any], None] | None = None,
    before_message: Callable[[], None] | None = None,
    steps: StepSource = local_steps,
) -> TrainResult:
    """Run `train` from ``state`` (or fresh), saving to ``save_path`` after each epoch and when stopped.

    The first SIGINT/SIGTERM stops after the current step and saves; the run's status lines go to stdout
    after ``before_message`` (which clears a progress bar). Divergence and running out of memory become
    one-line errors naming the fix and what the checkpoint on disk holds. ``steps`` is passed on to `train`;
    a step that fails (workers lost) saves the state before it, then raises its `StepFailed` with where.
    """
    saved: list[int] = []  # the epoch the checkpoint on disk holds, once one is written

    def save(s: TrainState) -> None:
        if save_path is None:
            return
        try:
            save_checkpoint(
                save_path, s, config, backend, data.name, len(data.y_train), val_split, data.classes, data.layout,
                workers=workers_of(steps), data_dir=data.folder,
            )  # fmt: skip
        except (OSError, WriteError) as e:  # a disk that filled up during a long run
            why = e.reason if isinstance(e, WriteError) else e.strerror or e
            kept = "the previous one is intact" if save_path.exists() else "no checkpoint was written"
            raise CheckpointError(
                f"cannot write the checkpoint {printable(save_path)} ({why}); {kept}: "
                "free some space or give --save another place" + (", then --resume it" if save_path.exists() else ""),
                exit_status=1,
            ) from None
        saved[:] = [s.epoch]

    try:
        # NumPy's overflow warnings from a huge --lr would precede the one-line divergence message.
        with StopOnSignal() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            result = train(
                backend, data, config, on_epoch, state=state, on_state=save, stop=stop, on_step=on_step, steps=steps
            )
            if before_message is not None:
                before_message()
            if result.stopped and result.state is not None:
                where = f"epoch {result.state.epoch + 1}, step {result.state.step}"
                if save_path is None:
                    kept = "nothing saved (pass --save PATH to keep a checkpoint)"
                else:
                    save(result.state)
                    kept = f"checkpoint saved to {printable(save_path)}: continue with --resume {printable(save_path)}"
                if result.failure is not None:
                    raise StepFailed(f"{result.failure}; stopped in {where}; {kept}")
                print(f"stopped in {where}; {kept}")
    except TrainingDiverged as e:
        kept = f"; {printable(save_path)} still holds epoch {saved[0]}" if saved else ""
        if not saved and save_path is not None and save_path.exists():
            kept = f"; {printable(save_path)} is left as it was"
        raise TrainingDiverged(f"{e}{kept}") from None
    except Exception as e:
        if not is_out_of_memory(e):
            raise
        raise OutOfMemory(_memory_hint(backend, data, config)) from None
    return result


def _memory_hint(backend: Backend, data: Dataset, config: TrainConfig) -> str:
    """What to shrink after running out of memory: the batch, or the model when it alone is too big."""
    size = len(data.y_train) if config.batch_size == 0 else config.batch_size
    sizes = layer_sizes(data.n_features, data.n_classes, config)
    itemsize = 8 if config.dtype == "float64" else 4
    n_params = sum(math.prod(s) for s in nn.param_shapes(sizes))
    # Weights, gradients and the optimizer's slots, against one batch's activations and their gradients.
    model_bytes = n_params * itemsize * (2 + len(OPTIMIZERS[config.optimizer].state_shapes([()])))
    batch_bytes = 2 * size * sum(sizes) * itemsize
    if model_bytes > batch_bytes:
        return (
            f"out of memory on {backend}: the {'-'.join(map(str, sizes))} model alone needs "
            f"{model_bytes / 2**30:.1f} GiB ({n_params:,} weights with their gradients and {config.optimizer} "
            "state): try smaller --hidden layers"
        )
    return (
        f"out of memory on {backend} with --batch-size {config.batch_size} ({size} rows per step): "
        f"try --batch-size {max(size // 2, 1)}"
    )
