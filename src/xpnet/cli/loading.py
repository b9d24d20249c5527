"""Reading a run's data set for the command line: downloads and picture reading with progress bars on a
terminal, and the data layer's one-line notes (skipped pictures, a held-out test set) on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data import Dataset, load_dataset
from ..data.download import parse_mirrors
from ..errors import say
from ..training.checkpoint import Checkpoint
from .progress import ProgressBar


def load_for_training(args: argparse.Namespace, dataset: str, image_size: int | None) -> Dataset:
    """``dataset`` from ``args.data_dir`` (downloading what is missing from ``args.mirror``), at ``image_size``."""
    return load_dataset(
        dataset,
        args.data_dir,
        download=True,
        mirrors=parse_mirrors(" ".join(args.mirror)) if args.mirror else None,
        on_download=lambda name, where: say(f"{name}: downloading missing files to {where}", file=sys.stderr),
        progress=lambda file: ProgressBar(f"  {file}"),
        image_size=image_size,
        picture_progress=ProgressBar(f"{dataset}: reading pictures", unit="pictures"),
        notify=lambda line: say(line, file=sys.stderr),
    )


def model_data_dir(given: str | None, ckpt: Checkpoint) -> str | None:
    """Where to read the model's data set: ``--data-dir`` when given, else the folder its checkpoint records
    it was trained from (said on stderr), else None (where xpnet.train looks by default)."""
    if given is not None or ckpt.data_dir is None:
        return given
    folder = Path(ckpt.data_dir)
    if not folder.is_dir():
        say(
            f"{ckpt.dataset}: {folder}, where {ckpt.path} was trained, is gone; "
            "looking where xpnet.train looks (--data-dir DIR names another folder)",
            file=sys.stderr,
        )
        return None
    say(
        f"{ckpt.dataset}: reading {folder}, where {ckpt.path} was trained (--data-dir DIR reads another folder)",
        file=sys.stderr,
    )
    return str(folder)
