"""Old against new learning-rate defaults, by test accuracy, on sets of about 1,500, 5,000 and 60,000 images.

"old" is the per-name factor xpnet used before issue 13 (0.8 per epoch for mnist/fashion-mnist, 1.0 for
digits), "constant" a rate that never decays and "new" `schedule.default_decay` (0.8 per 469 steps). The
Fashion-MNIST subsets are drawn stratified with a fixed seed, written as IDX files to a temporary folder
and read back as ``--dataset idx`` reads them; each is scored on the full 10,000-image test set. Prints a
Markdown table (mean and range over the seeds) and, with --json PATH, writes every run.

    OMP_NUM_THREADS=1 python scripts/bench_schedule.py --seeds 1 2 3 --json /tmp/schedule.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from xpnet.backend import make_backend
from xpnet.data import load_dataset
from xpnet.data.datasets import IDX_FILES, stratified_holdout
from xpnet.data.idx import write_idx
from xpnet.training.config import TrainConfig, default_decay
from xpnet.training.loop import train

SETS = {
    "digits": "digits",
    "fashion 1,500": "fashion-mnist",
    "fashion 5,000": "fashion-mnist",
    "fashion 60,000": "fashion-mnist",
}
OLD_GAMMA = {"digits": 1.0, "fashion-mnist": 0.8}  # train.DEFAULT_GAMMA before issue 13, by the name given


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
            big = len(data.y_train) > 10000
            gammas = {"old": OLD_GAMMA[named], "constant": 1.0, "new": default_decay(len(data.y_train), 128)}
            for epochs in [10] if big else args.epochs:
                for seed in args.big_seeds if big else args.seeds:
                    done: dict[float, float] = {}
                    for kind, gamma in gammas.items():
                        if big and kind == "constant":
                            continue  # the 60,000-image comparison is old against new
                        if gamma not in done:  # identical factors give bitwise identical runs
                            config = TrainConfig(lr_decay=gamma, max_iter=epochs, random_state=seed)
                            done[gamma] = train(backend, data, config).test_accuracy
                        runs.append(
                            {
                                "set": label,
                                "n_train": len(data.y_train),
                                "epochs": epochs,
                                "seed": seed,
                                "schedule": kind,
                                "gamma": gamma,
                                "test_accuracy": done[gamma],
                            }
                        )
                        print(json.dumps(runs[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    if args.merge:  # earlier runs (other seeds), to tabulate together
        runs += [r for path in args.merge for r in json.loads(path.read_text())]
    print(table(runs))


def table(runs: list[dict]) -> str:
    """Markdown: one row per (set, epochs), mean (min-max) test accuracy per schedule and each factor."""
    lines = [
        "| set | train images | epochs | seeds | old: factor, accuracy | constant | new: factor, accuracy |",
        "|---|---:|---:|---|---|---|---|",
    ]
    rows = sorted({(r["set"], r["n_train"], r["epochs"]) for r in runs}, key=lambda k: (k[1], k[2]))
    for name, n, epochs in rows:
        cells = []
        for kind in ("old", "constant", "new"):
            acc = [r["test_accuracy"] for r in runs if (r["set"], r["epochs"], r["schedule"]) == (name, epochs, kind)]
            gamma = next((r["gamma"] for r in runs if (r["set"], r["schedule"]) == (name, kind)), None)
            if not acc:
                cells.append("-")
                continue
            text = f"{100 * np.mean(acc):.2f}% ({100 * min(acc):.2f}-{100 * max(acc):.2f})"
            cells.append(text if kind == "constant" else f"x{gamma:g}: {text}")
        seeds = sorted({r["seed"] for r in runs if (r["set"], r["epochs"]) == (name, epochs)})
        lines.append(f"| {name} | {n:,} | {epochs} | {','.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
