"""``python -m xpnet.train``: train the MLP on a data set and report accuracy and speed."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from . import cli
from .backend import resolve_backend
from .data import DATASETS, hold_out, load_dataset
from .data.download import MIRRORS_ENV, ProgressBar, parse_mirrors
from .model import ACTIVATIONS
from .optim import OPTIMIZERS
from .trainer import EpochStats, TrainConfig, train

DEFAULTS = TrainConfig()


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m xpnet.train",
        description="Train a multilayer perceptron on handwritten digits with NumPy, CuPy, PyTorch or "
        "array-api-strict; the same code runs on each.",
        epilog="Example: python -m xpnet.train --dataset digits --epochs 20   "
        "(MNIST is downloaded on first use; offline, put the four IDX .gz files in --data-dir)",
    )
    cli.add_device_flags(p)
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
        type=cli.hidden_sizes,
        default=DEFAULTS.hidden,
        metavar="N,N,...",
        help="units of each hidden layer (default: 256,128)",
    )
    p.add_argument("--activation", choices=ACTIVATIONS, default=DEFAULTS.activation, help="default: relu")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS.optimizer, help="default: adam")
    p.add_argument(
        "--lr",
        type=cli.positive_float,
        default=None,
        help="learning rate (default: "
        + ", ".join(f"{name} {opt.default_lr:g}" for name, opt in OPTIMIZERS.items())
        + ")",
    )
    p.add_argument("--epochs", type=cli.positive_int, default=DEFAULTS.epochs, help="default: 10")
    p.add_argument(
        "--batch-size",
        type=cli.non_negative_int,
        default=DEFAULTS.batch_size,
        metavar="N",
        help="examples per step; 0 trains on the whole training set at once (default: 128)",
    )
    p.add_argument("--dtype", choices=("float32", "float64"), default=DEFAULTS.dtype, help="default: float32")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seeds weights and shuffling (default: 1)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of results on stdout")
    return p


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
    config = TrainConfig(
        hidden=args.hidden,
        activation=args.activation,
        optimizer=args.optimizer,
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        dtype=args.dtype,
        seed=args.seed,
    )
    backend = resolve_backend(args.device, args.backend)
    if backend.note:
        print(backend.note, file=sys.stderr)
    data = load_dataset(
        args.dataset,
        args.data_dir,
        download=True,
        mirrors=parse_mirrors(" ".join(args.mirror)) if args.mirror else None,
        on_download=lambda name, where: print(f"{name}: downloading missing files to {where}", file=sys.stderr),
        progress=lambda file: ProgressBar(f"  {file}"),
    )
    data = hold_out(data, args.val_split)

    layers = "-".join(str(n) for n in (data.n_features, *config.hidden, 10))
    batch = "full" if config.batch_size == 0 else config.batch_size
    print(
        f"{data.name}: {len(data.y_train)} train / "
        + (f"{len(data.y_val)} validation / " if data.y_val is not None else "")
        + f"{len(data.y_test)} test images; model {layers} "
        f"{config.activation}; {config.optimizer} lr {config.learning_rate:g}, batch {batch}, "
        f"{config.dtype}, seed {config.seed}; {backend}",
        flush=True,
    )
    result = train(backend, data, config, lambda s: print(format_epoch(s, config.epochs), flush=True))

    last = result.history[-1]
    print(f"test accuracy {100 * result.test_accuracy:.2f}% after {result.train_seconds:.2f} s of training")
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
