"""``python -m xpnet.train``: train the MLP on a data set and report accuracy and speed."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from .backend import resolve_backend
from .cli import common as cli
from .cli import loading
from .cli.progress import EpochBar
from .data import DATASETS, hold_out
from .data.datasets import LOCAL_SETS
from .data.download import MIRRORS_ENV
from .files import check_writable
from .nn.model import ACTIVATIONS
from .nn.optim import OPTIMIZERS
from .training import early_stop, runlog
from .training.checkpoint import load_checkpoint
from .training.config import DTYPES, TrainConfig
from .training.resume import check_resumable, resumed_config
from .training.schedule import default_gamma
from .training.session import train_saving
from .training.state import EpochStats

EXIT_INTERRUPTED = cli.EXIT_INTERRUPTED

DEFAULTS = TrainConfig()


def _each(values: dict[str, float]) -> str:
    """``{"sgd": 0.1, "adam": 0.001}`` -> ``"sgd 0.1, adam 0.001"``, for defaults that depend on a choice."""
    return ", ".join(f"{name} {value:g}" for name, value in values.items())


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog=cli.program("train"),
        description="Train a multilayer perceptron on handwritten digits (or garments) with any of "
        f"{cli.libraries()}: the same code runs on each, on the CPU or a CUDA GPU.",
        epilog=cli.epilog(
            "python -m xpnet.train --dataset digits --epochs 20   (MNIST is downloaded on first use; offline, "
            "put the four IDX .gz files in --data-dir)",
            {
                0: "trained",
                1: "training diverged (NaN/Inf: try a lower --lr) or the device ran out of memory",
                2: "bad input: a flag, a data file, a --save/--log path, a checkpoint that does not match",
                130: "stopped by Ctrl-C or SIGTERM (after saving, with --save)",
            },
        ),
    )
    cli.add_device_flags(p)
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default="mnist",
        help="data set (default: mnist); idx and folder read your own IDX files or pictures from --data-dir",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="folder holding the four IDX files, downloaded there when missing, or, with --dataset folder, "
        "train/<class>/ and test/<class>/ picture folders (default: $XPNET_DATA/<dataset> or "
        "~/.cache/xpnet/<dataset>; required for idx and folder)",
    )
    loading.add_image_size_flag(p)
    p.add_argument(
        "--mirror",
        action="append",
        default=None,
        metavar="URL",
        help=f"base URL to download the IDX files from, instead of the public mirrors; repeat to try several "
        f"in order; {{dataset}} in it becomes the data set name (default: ${MIRRORS_ENV}, else public mirrors)",
    )
    p.add_argument(
        "--val-split",
        type=cli.non_negative_int,
        default=0,
        metavar="N",
        help="hold out N training images (stratified, fixed seed) and report validation accuracy each epoch; "
        "the test set is then scored only at the end (default: 0)",
    )
    p.add_argument(
        "--hidden",
        type=cli.setting("hidden", cli.hidden_sizes),
        default=DEFAULTS.hidden,
        metavar="N,N,...",
        help="units of each hidden layer (default: 256,128)",
    )
    p.add_argument("--activation", choices=ACTIVATIONS, default=DEFAULTS.activation, help="default: relu")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS.optimizer, help="default: adam")
    p.add_argument(
        "--lr",
        type=cli.setting("lr", float),
        default=None,
        help=f"learning rate (default: {_each({name: opt.default_lr for name, opt in OPTIMIZERS.items()})})",
    )
    p.add_argument(
        "--gamma",
        type=cli.setting("gamma", float),
        default=None,
        help="multiply the learning rate by this after every epoch; 1 keeps it constant (default: 0.8 per "
        "469 steps, i.e. 0.8 ** (steps per epoch / 469): 0.8 for 60,000 images at batch 128)",
    )
    p.add_argument(
        "--patience",
        type=cli.setting("patience", int),
        default=DEFAULTS.patience,
        metavar="N",
        help="with --val-split: stop when validation accuracy has not improved for N epochs and keep the best "
        "epoch's weights (default: 0, never stop early)",
    )
    p.add_argument("--epochs", type=cli.setting("epochs", int), default=DEFAULTS.epochs, help="default: 10")
    p.add_argument(
        "--batch-size",
        type=cli.setting("batch_size", int),
        default=DEFAULTS.batch_size,
        metavar="N",
        help="examples per step; 0 trains on the whole training set at once (default: 128)",
    )
    p.add_argument("--dtype", choices=DTYPES, default=DEFAULTS.dtype, help="default: float32")
    p.add_argument(
        "--seed", type=cli.setting("seed", int), default=DEFAULTS.seed, help="seeds weights and shuffling (default: 1)"
    )
    p.add_argument("--json", action="store_true", help="end with one JSON line of results on stdout")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no per-epoch lines (errors, the result and the --json line still print)",
    )
    p.add_argument(
        "--log",
        default=None,
        metavar="PATH",
        help="write one JSON object per epoch to PATH (JSON Lines, after a header line for the run); --resume "
        "appends; missing folders in PATH are created",
    )
    p.add_argument(
        "--save",
        default=None,
        metavar="PATH",
        help="write a checkpoint (.npz) to PATH after every epoch and on Ctrl-C, replaced atomically; missing "
        "folders in PATH are created",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="PATH",
        help="continue the run saved in PATH; --epochs is the total, model flags default to the checkpoint's",
    )
    return p


def explicit_flags(argv: Sequence[str] | None) -> set[str]:
    """The destinations of the flags given on the command line, as opposed to left at their defaults."""
    parser = build_parser()
    # With every default suppressed, only the flags given end up in the namespace.
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def format_epoch(stats: EpochStats, epochs: int) -> str:
    width = len(str(epochs))
    held = ("val", stats.val_accuracy) if stats.val_accuracy is not None else ("test", stats.test_accuracy)
    return (
        f"epoch {stats.epoch:{width}d}/{epochs}  loss {stats.loss:.4f}  "
        f"train {100 * stats.train_accuracy:6.2f}%  {held[0]} {100 * held[1]:6.2f}%  "
        f"{stats.seconds:7.2f} s  {stats.samples_per_second:9.0f} samples/s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Checked before any data is read or any epoch is run: a bad path must not cost an hour of training.
    save_path = check_writable(args.save) if args.save else None
    log_path = check_writable(args.log, flag="--log", example="train.jsonl") if args.log else None
    ckpt = load_checkpoint(args.resume) if args.resume else None
    config = TrainConfig(
        hidden=args.hidden,
        activation=args.activation,
        optimizer=args.optimizer,
        lr=args.lr,
        gamma=1.0 if args.gamma is None else args.gamma,  # None: set from the data's size below
        epochs=args.epochs,
        batch_size=args.batch_size,
        dtype=args.dtype,
        seed=args.seed,
        patience=args.patience,
    )
    dataset, val_split, image_size = args.dataset, args.val_split, args.image_size
    if ckpt is not None:
        config, dataset, val_split = resumed_config(ckpt, {k: getattr(args, k) for k in explicit_flags(argv)})
        if image_size is None and ckpt.layout is not None:
            image_size = ckpt.layout.side
    early_stop.require_validation(config.patience, val_split)
    backend = resolve_backend(args.device, args.backend)
    cli.announce(backend, args.verbose)
    data = hold_out(loading.load_for_training(args, dataset, image_size), val_split)
    if ckpt is None and args.gamma is None:
        config = dataclasses.replace(config, gamma=default_gamma(len(data.y_train), config.batch_size))
    if ckpt is not None:
        check_resumable(ckpt, config, data.name, data.n_features, len(data.y_train))

    layers = "-".join(str(n) for n in (data.n_features, *config.hidden, data.n_classes))
    batch = "full" if config.batch_size == 0 else config.batch_size
    print(
        f"{data.name}: {len(data.y_train)} train / "
        + (f"{len(data.y_val)} validation / " if data.y_val is not None else "")
        + f"{len(data.y_test)} test images"
        + (f", {data.n_classes} classes" if dataset in LOCAL_SETS else "")
        + f"; model {layers} "
        f"{config.activation}; {config.optimizer} lr {config.learning_rate:g} "
        f"x{config.gamma:g}/epoch, batch {batch}, "
        f"{config.dtype}, seed {config.seed}; {backend}",
        flush=True,
    )
    if ckpt is not None:
        was = f"{ckpt.meta['backend']} on {ckpt.meta['device']}"
        print(f"resuming {ckpt.path}: {ckpt.describe()} (saved from {was})", flush=True)
    bar = None
    if not args.quiet:
        bar = EpochBar(config.epochs, len(data.y_train), config.batch_size, lambda a: float(backend.to_numpy(a)))
    log = None
    if log_path is not None:
        log = open(log_path, "a" if ckpt is not None else "w", encoding="utf-8")  # closed in the finally below
        runlog.write_line(
            log,
            runlog.header(
                dataset=data.name,
                n_train=len(data.y_train),
                n_val=0 if data.y_val is None else len(data.y_val),
                n_test=len(data.y_test),
                backend=backend.name,
                device=backend.device_name,
                seed=config.seed,
                config=config.to_dict(),
                resumed_from_epoch=ckpt.state.epoch if ckpt is not None else None,
            ),
        )

    def show(stats: EpochStats) -> None:
        if log is not None:
            runlog.write_line(log, runlog.epoch_record(stats))
        if bar is not None:
            bar.clear()
            print(format_epoch(stats, config.epochs), flush=True)

    try:  # a second Ctrl-C quits at once through cli.run (exit 130); an unfinished checkpoint is discarded
        result = train_saving(
            backend,
            data,
            config,
            state=ckpt and ckpt.state,
            save_path=save_path,
            val_split=val_split,
            on_epoch=show,
            on_step=bar.step if bar is not None and bar.enabled else None,
            before_message=bar.clear if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.clear()
        if log is not None:
            log.close()
    if result.stopped:
        return EXIT_INTERRUPTED

    last = result.history[-1]
    best = early_stop.best_epoch(result.history)
    if result.state is not None and result.state.restored:
        why = f"no better validation accuracy for {config.patience} epochs" if result.stopped_early else "run ended"
        print(f"stopped after epoch {last.epoch} ({why}): kept the weights of epoch {best}, the best on validation")
    print(f"test accuracy {100 * result.test_accuracy:.2f}% after {result.train_seconds:.2f} s of training")
    if save_path is not None:
        print(f"checkpoint: {save_path} (epoch {last.epoch}); continue it with --resume {save_path}")
    if args.json:
        n_seen = len(data.y_train) * len(result.history)
        summary = {
            "dataset": data.name,
            "backend": backend.name,
            "device": backend.device_name,
            "dtype": config.dtype,
            "epochs": config.epochs,
            "train_seconds": result.train_seconds,
            "samples_per_second": n_seen / result.train_seconds if result.train_seconds > 0 else None,
            "final_loss": last.loss,
            "train_accuracy": last.train_accuracy,
            "val_accuracy": last.val_accuracy,
            "test_accuracy": result.test_accuracy,
            "epochs_run": len(result.history),
            "best_epoch": best,
            "config": config.to_dict(),
        }
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="xpnet.train"))
