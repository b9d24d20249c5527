"""The flags of ``python -m xpnet.train`` (and ``xpnet train``): one parser, and which flags a user gave."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..data import DATASETS
from ..data.download import MIRRORS_ENV
from ..nn import ACTIVATIONS, OPTIMIZERS
from ..training.config import DTYPES, TrainConfig
from . import common as cli
from . import loading
from .cluster import add_cluster_flags

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
                1: "training diverged (NaN/Inf: try a lower --lr), the device ran out of memory, a file could not "
                "be written (disk full), or Dask workers were lost (the last state is saved)",
                2: "bad input: a flag, a data file, a --save/--log path, a checkpoint that does not match",
                130: "stopped by Ctrl-C or SIGTERM during training (after saving, with --save)",
                143: "stopped by SIGTERM before training started",
            },
        ),
    )
    cli.add_device_flags(p)
    add_cluster_flags(p)
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
        "--alpha",
        type=cli.setting("alpha", float),
        default=DEFAULTS.alpha,
        help="L2 penalty on the weights, as scikit-learn's alpha: each step adds alpha / batch * W to the "
        "weights' gradients (default: 0, none)",
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
