"""Resuming a checkpoint: which settings a continued run may change, and refusing one that does not fit."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..errors import CheckpointError, class_list
from .checkpoint import Checkpoint
from .config import TrainConfig, spelled
from .loop import best_epoch, patience_ran_out

# What a resumed run must share with its checkpoint; --lr, --gamma, --batch-size and --epochs may change. A
# run and its continuations share them: `runlog.read_log` tells another run's log by them too.
FIXED_FIELDS = ("hidden", "activation", "optimizer", "dtype", "seed")


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
