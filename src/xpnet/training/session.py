"""A training run as the command line runs it: a checkpoint after every epoch, a graceful first Ctrl-C,
and one-line failures that say what was kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..backend import Backend, is_out_of_memory
from ..data import Dataset
from ..errors import CheckpointError, OutOfMemory, TrainingDiverged
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .interrupt import StopOnSignal
from .loop import StepFailed, StepSource, local_steps, train
from .state import EpochStats, TrainResult, TrainState


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
            save_checkpoint(save_path, s, config, backend, data.name, len(data.y_train), val_split, data.classes)
        except OSError as e:  # a disk that filled up during a long run
            raise CheckpointError(
                f"cannot write the checkpoint {save_path} ({e.strerror or e}); the previous one is intact: "
                "free some space or give --save another place, then --resume it",
                exit_status=1,
            ) from None
        saved[:] = [s.epoch]

    try:
        with StopOnSignal() as stop:
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
                    kept = f"checkpoint saved to {save_path}: continue with --resume {save_path}"
                if result.failure is not None:
                    raise StepFailed(f"{result.failure}; stopped in {where}; {kept}")
                print(f"stopped in {where}; {kept}")
    except TrainingDiverged as e:
        kept = f"; {save_path} still holds epoch {saved[0]}" if saved else ""
        if not saved and save_path is not None and save_path.exists():
            kept = f"; {save_path} is left as it was"
        raise TrainingDiverged(f"{e}{kept}") from None
    except Exception as e:
        if not is_out_of_memory(e):
            raise
        size = len(data.y_train) if config.batch_size == 0 else config.batch_size
        raise OutOfMemory(
            f"out of memory on {backend} with --batch-size {config.batch_size} ({size} rows per step): "
            f"try --batch-size {max(size // 2, 1)}"
        ) from None
    return result
