"""What ``python -m xpnet.train`` prints and logs about a run: its header line, one line per epoch, the log's
header record and the ``--json`` summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backend import Backend
from ..data import Dataset
from ..errors import printable
from ..training import early_stop, runlog
from ..training.checkpoint import Checkpoint
from ..training.config import TrainConfig
from ..training.state import EpochStats, TrainResult


def run_line(data: Dataset, config: TrainConfig, backend: Backend, with_classes: bool = False) -> str:
    """``fashion-mnist: 60000 train / 10000 test images; model 784-256-128-10 relu; adam ...; numpy on cpu``."""
    layers = "-".join(str(n) for n in (data.n_features, *config.hidden, data.n_classes))
    batch = "full" if config.batch_size == 0 else config.batch_size
    sizes = f"{len(data.y_train)} train / "
    sizes += f"{len(data.y_val)} validation / " if data.y_val is not None else ""
    sizes += f"{len(data.y_test)} test images" + (f", {data.n_classes} classes" if with_classes else "")
    return (
        f"{data.name}: {sizes}; model {layers} {config.activation}; {config.optimizer} lr {config.learning_rate:g} "
        f"x{config.gamma:g}/epoch, batch {batch}, {config.dtype}, seed {config.seed}; {backend}"
    )


def format_epoch(stats: EpochStats, epochs: int) -> str:
    width = len(str(epochs))
    held = ("val", stats.val_accuracy) if stats.val_accuracy is not None else ("test", stats.test_accuracy)
    return (
        f"epoch {stats.epoch:{width}d}/{epochs}  loss {stats.loss:.4f}  "
        f"train {100 * stats.train_accuracy:6.2f}%  {held[0]} {100 * held[1]:6.2f}%  "
        f"{stats.seconds:7.2f} s  {stats.samples_per_second:9.0f} samples/s"
    )


def log_header(
    data: Dataset, config: TrainConfig, backend: Backend, resumed_from: int | None, workers: str | None
) -> dict[str, Any]:
    """The first record of a run in its ``--log`` (see `xpnet.training.runlog`); ``workers`` as `summary`'s."""
    return runlog.header(
        dataset=data.name,
        n_train=len(data.y_train),
        n_val=0 if data.y_val is None else len(data.y_val),
        n_test=len(data.y_test),
        backend=backend.name,
        device=backend.device_name,
        workers=workers,
        seed=config.seed,
        config=config.to_dict(),
        resumed_from_epoch=resumed_from,
    )


def summary(
    data: Dataset, config: TrainConfig, backend: Backend, result: TrainResult, workers: str | None
) -> dict[str, Any]:
    """The ``--json`` line: the run's results and its full config; ``workers`` is what Dask workers computed
    the gradients with (`loop.workers_of`), or None.

    The accuracies are those of the weights the run kept and saved (with --patience, the best epoch's);
    ``final_loss`` and ``last_val_accuracy`` are the last epoch's, whichever weights were kept.
    """
    last, kept = result.history[-1], early_stop.kept_stats(result)
    n_seen = len(data.y_train) * len(result.history)
    return {
        "dataset": data.name,
        "backend": backend.name,
        "device": backend.device_name,
        "dtype": config.dtype,
        "epochs": config.epochs,
        "train_seconds": result.train_seconds,
        "samples_per_second": n_seen / result.train_seconds if result.train_seconds > 0 else None,
        "final_loss": last.loss,
        "train_accuracy": kept.train_accuracy,
        "val_accuracy": kept.val_accuracy,
        "test_accuracy": result.test_accuracy,
        "last_val_accuracy": last.val_accuracy,
        "epochs_run": len(result.history),
        "best_epoch": early_stop.best_epoch(result.history),
        "workers": workers,
        "config": config.to_dict(),
    }


def result_line(result: TrainResult, resumed: Checkpoint | None) -> str:
    """``test accuracy 86.75% after 32.73 s of training``; a resumed run's seconds count both runs, and say so."""
    line = f"test accuracy {100 * result.test_accuracy:.2f}% after {result.train_seconds:.2f} s of training"
    if resumed is None:
        return line
    # The checkpoint's epochs and its unfinished epoch's seconds (which the resumed epoch's seconds include).
    before = sum(s.seconds for s in resumed.state.history) + resumed.state.seconds
    return f"{line}, both runs together ({before:.2f} s before --resume, {result.train_seconds - before:.2f} s now)"


def checkpoint_line(path: Path, result: TrainResult) -> str:
    """``checkpoint: run.npz (epoch 5); continue it with --resume run.npz``, naming the epoch whose weights it
    holds: with --patience, the best one, and the last one trained, which --resume continues from."""
    last, kept, shown = result.history[-1], early_stop.kept_stats(result), printable(path)
    epoch = f"epoch {last.epoch}"
    if kept.epoch != last.epoch:
        epoch = f"the weights of epoch {kept.epoch}, the best on validation; trained to epoch {last.epoch}"
    return f"checkpoint: {shown} ({epoch}); continue it with --resume {shown}"
