"""``python -m xpnet.train``: train the MLP on a data set and report accuracy and speed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .cli import common as cli
from .cli.cluster import add_cluster_flags, client_backend, cluster_steps
from .cli.progress import EpochBar, ProgressBar
from .data import DATASETS, hold_out, load_dataset
from .data.download import MIRRORS_ENV, parse_mirrors
from .files import check_writable
from .nn.model import ACTIVATIONS
from .nn.optim import OPTIMIZERS
from .training import runlog
from .training.checkpoint import load_checkpoint
from .training.config import DTYPES, TrainConfig
from .training.resume import check_resumable, resumed_config
from .training.session import train_saving
from .training.state import EpochStats

EXIT_INTERRUPTED = cli.EXIT_INTERRUPTED

DEFAULTS = TrainConfig()
# The learning rate shrinks by this factor after each epoch. On the 60,000-image sets, 0.8 adds about a
# point of Fashion-MNIST test accuracy after 10 epochs; digits' 1,438 images make only 12 steps an epoch,
# too few to spare any, so its rate stays constant.
DEFAULT_GAMMA = {"mnist": 0.8, "fashion-mnist": 0.8, "digits": 1.0}


def _each(values: dict[str, float]) -> str:
    """``{"sgd": 0.1, "adam": 0.001}`` -> ``"sgd 0.1, adam 0.001"``, for defaults that depend on a choice."""
    return ", ".join(f"{name} {value:g}" for name, value in values.items())


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m xpnet.train",
        description="Train a multilayer perceptron on handwritten digits with NumPy, CuPy, PyTorch or "
        "array-api-strict; the same code runs on each.",
        epilog="Example: python -m xpnet.train --dataset digits --epochs 20   "
        "(MNIST is downloaded on first use; offline, put the four IDX .gz files in --data-dir)",
    )
    cli.add_device_flags(p)
    add_cluster_flags(p)
    p.add_argument("--dataset", choices=DATASETS, default="mnist", help="data set (default: mnist)")
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="folder holding the four IDX files, downloaded there when missing "
        "(default: $XPNET_DATA/<dataset> or ~/.cache/xpnet/<dataset>)",
    )
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
        help=f"multiply the learning rate by this after every epoch; 1 keeps it constant (default: "
        f"{_each(DEFAULT_GAMMA)})",
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
        help="write one JSON object per epoch to PATH (JSON Lines, after a header line for the run); --resume appends",
    )
    p.add_argument(
        "--save",
        default=None,
        metavar="PATH",
        help="write a checkpoint (.npz) to PATH after every epoch and on Ctrl-C; replaced atomically",
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
        gamma=DEFAULT_GAMMA[args.dataset] if args.gamma is None else args.gamma,
        epochs=args.epochs,
        batch_size=args.batch_size,
        dtype=args.dtype,
        seed=args.seed,
    )
    dataset, val_split = args.dataset, args.val_split
    if ckpt is not None:
        config, dataset, val_split = resumed_config(ckpt, {k: getattr(args, k) for k in explicit_flags(argv)})
    backend = client_backend(args)  # NumPy, when Dask workers compute
    if backend.note:
        print(backend.note, file=sys.stderr)
    data = load_dataset(
        dataset,
        args.data_dir,
        download=True,
        mirrors=parse_mirrors(" ".join(args.mirror)) if args.mirror else None,
        on_download=lambda name, where: print(f"{name}: downloading missing files to {where}", file=sys.stderr),
        progress=lambda file: ProgressBar(f"  {file}"),
    )
    data = hold_out(data, val_split)
    if ckpt is not None:
        check_resumable(ckpt, config, data.name, data.n_features, len(data.y_train))

    layers = "-".join(str(n) for n in (data.n_features, *config.hidden, data.n_classes))
    batch = "full" if config.batch_size == 0 else config.batch_size
    print(
        f"{data.name}: {len(data.y_train)} train / "
        + (f"{len(data.y_val)} validation / " if data.y_val is not None else "")
        + f"{len(data.y_test)} test images; model {layers} "
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
        with cluster_steps(args, data, val_split) as steps:  # a Dask cluster is open for the run
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
                steps=steps,
            )
    finally:
        if bar is not None:
            bar.clear()
        if log is not None:
            log.close()
    if result.stopped:
        return EXIT_INTERRUPTED

    last = result.history[-1]
    print(f"test accuracy {100 * result.test_accuracy:.2f}% after {result.train_seconds:.2f} s of training")
    if save_path is not None:
        print(f"checkpoint: {save_path} (epoch {last.epoch}); continue it with --resume {save_path}")
    if args.json:
        n_seen = len(data.y_train) * config.epochs
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
            "config": config.to_dict(),
        }
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="xpnet.train"))
