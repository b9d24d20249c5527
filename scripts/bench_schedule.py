"""Learning-rate defaults compared by test accuracy, by set size (1,500 to 60,000 images) and batch size.

The schedules are per-epoch factors: "name" the per-name default before issue 13 (0.8 per epoch for
mnist/fashion-mnist, 1.0 for digits), "step" the default of issues 13-30 (0.8 per 469 optimizer steps: it
shrank the rate faster per epoch at a smaller batch), "example" 0.8 per 60,000 examples seen whatever the
batch (it decays a large batch's few steps fast), "default" `config.default_decay` (issue 31: whichever of
those two decays slower) and "constant" a rate that never decays. The Fashion-MNIST subsets are drawn
stratified with a fixed seed, written as IDX files to a temporary folder and read back as ``--dataset idx``
reads them; each is scored on the full 10,000-image test set. Prints a Markdown table (mean and range over
the seeds) and, with --json PATH, writes every run.

    OMP_NUM_THREADS=1 python scripts/bench_schedule.py --seeds 1 2 3 --json /tmp/schedule.json
    OMP_NUM_THREADS=1 python scripts/bench_schedule.py --sets digits "fashion 60,000" \\
        --batch-sizes 16 32 128 1024 --schedules step example default constant --seeds 1 --big-seeds 1
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from xpnet.backend import make_backend
from xpnet.data import load_dataset
from xpnet.data.datasets import IDX_FILES, stratified_holdout
from xpnet.data.idx import write_idx
from xpnet.training.loop import train
from xpnet.training.model import TrainConfig, default_decay

SETS = {
    "digits": "digits",
    "fashion 1,500": "fashion-mnist",
    "fashion 5,000": "fashion-mnist",
    "fashion 60,000": "fashion-mnist",
}
OLD_GAMMA = {"digits": 1.0, "fashion-mnist": 0.8}  # train.DEFAULT_GAMMA before issue 13, by the name given


def step_gamma(n_train: int, batch_size: int) -> float:
    """The default of issues 13-30: 0.8 per 469 optimizer steps (one epoch of 60,000 images at batch 128)."""
    steps = 1 if batch_size == 0 or n_train < 1 else math.ceil(n_train / min(batch_size, n_train))
    return round(0.8 ** (steps / 469), 4)


SCHEDULES = {  # (data set name, training images, batch size) -> per-epoch factor
    "name": lambda named, n, batch: OLD_GAMMA[named],
    "step": lambda named, n, batch: step_gamma(n, batch),
    "example": lambda named, n, batch: round(0.8 ** (n / 60000), 4),
    "default": lambda named, n, batch: default_decay(n, batch),
    "constant": lambda named, n, batch: 1.0,
}


def fashion_subset(n: int, folder: Path) -> Path:
    """``n`` stratified Fashion-MNIST training images (and the whole test set) as four IDX files in ``folder``."""
    full = load_dataset("fashion-mnist")
    _, picked = stratified_holdout(full.y_train, n, np.random.default_rng(0))
    folder.mkdir()
    arrays = {
        "train_images": full.x_train[picked].reshape(-1, 28, 28),
        "train_labels": full.y_train[picked],
        "test_images": full.x_test.reshape(-1, 28, 28),
        "test_labels": full.y_test,
    }
    for key, base in IDX_FILES.items():
        write_idx(folder / base, arrays[key])
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--big-seeds", type=int, nargs="+", default=[1, 2], help="seeds for the 60,000-image set")
    p.add_argument("--epochs", type=int, nargs="+", default=[10, 30], help="epochs on the small sets")
    p.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), help="which sets to run (default: all)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[128], help="batch sizes to run (default: 128)")
    p.add_argument(
        "--schedules", nargs="+", choices=SCHEDULES, default=list(SCHEDULES), help="which to run (default: all)"
    )
    p.add_argument("--json", type=Path, default=None, help="write every run to this JSON file")
    p.add_argument("--merge", type=Path, nargs="*", default=[], help="JSON files of earlier runs to add to the table")
    args = p.parse_args()
    backend = make_backend("numpy", "cpu")
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        loaders = {
            "digits": lambda: load_dataset("digits"),
            "fashion 1,500": lambda: load_dataset("idx", fashion_subset(1500, Path(tmp) / "f1500")),
            "fashion 5,000": lambda: load_dataset("idx", fashion_subset(5000, Path(tmp) / "f5000")),
            "fashion 60,000": lambda: load_dataset("fashion-mnist"),
        }
        for label in args.sets:
            named, data = SETS[label], loaders[label]()
            n_train = len(data.y_train)
            big = n_train > 10000
            for batch in args.batch_sizes:
                gammas = {kind: SCHEDULES[kind](named, n_train, batch) for kind in args.schedules}
                for epochs in [10] if big else args.epochs:
                    for seed in args.big_seeds if big else args.seeds:
                        done: dict[float, float] = {}
                        for kind, gamma in gammas.items():
                            if gamma not in done:  # identical factors give bitwise identical runs
                                config = TrainConfig(
                                    lr_decay=gamma, max_iter=epochs, batch_size=batch, random_state=seed
                                )
                                done[gamma] = train(backend, data, config).test_accuracy
                            run = {"set": label, "n_train": n_train, "batch_size": batch, "epochs": epochs}
                            run |= {"seed": seed, "schedule": kind, "gamma": gamma, "test_accuracy": done[gamma]}
                            runs.append(run)
                            print(json.dumps(run), flush=True)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    if args.merge:  # earlier runs (other seeds), to tabulate together
        runs += [r for path in args.merge for r in json.loads(path.read_text())]
    print(table(runs))


def table(runs: list[dict]) -> str:
    """Markdown: one row per (set, batch, epochs), each schedule's factor and mean (min-max) test accuracy."""
    kinds = [k for k in SCHEDULES if any(r["schedule"] == k for r in runs)]
    lines = [
        "| set | train images | batch | epochs | seeds | " + " | ".join(f"{k}: factor, accuracy" for k in kinds) + " |",
        "|---|---:|---:|---:|---|" + "---|" * len(kinds),
    ]
    keys = sorted({(r["set"], r["n_train"], r.get("batch_size", 128), r["epochs"]) for r in runs}, key=lambda k: k[1:])
    for name, n, batch, epochs in keys:
        mine = [r for r in runs if (r["set"], r.get("batch_size", 128), r["epochs"]) == (name, batch, epochs)]
        cells = []
        for kind in kinds:
            acc = [r["test_accuracy"] for r in mine if r["schedule"] == kind]
            if not acc:
                cells.append("-")
                continue
            gamma = next(r["gamma"] for r in mine if r["schedule"] == kind)
            cells.append(f"x{gamma:g}: {100 * np.mean(acc):.2f}% ({100 * min(acc):.2f}-{100 * max(acc):.2f})")
        seeds = ",".join(map(str, sorted({r["seed"] for r in mine})))
        lines.append(f"| {name} | {n:,} | {batch} | {epochs} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
