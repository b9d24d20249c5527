"""xpnet.MLPClassifier beside scikit-learn's on the same real data: accuracy, epochs and seconds per epoch.

The same script for both, only the class changes (the drop-in promise): float32 pixels in [0, 1] of the first
``--n-train`` Fashion-MNIST training images (Debian's package; else scikit-learn's digits), scored on the whole
test set, for each seed, with and without early stopping. Each pair of fits runs back to back, so a burst of
load on a shared machine hits both alike; the last lines give the ratios.

Run from the repository root: ``PYTHONPATH=src python scripts/compare_sklearn.py [--n-train 4000] [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as Theirs

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib sits beside this script

from benchlib import machine
from xpnet import MLPClassifier as Ours
from xpnet.data import Dataset
from xpnet.data.load import SYSTEM_DIRS, find_idx_files, load_dataset


def data(n_train: int) -> tuple[Dataset, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d = load_dataset("fashion-mnist" if find_idx_files(SYSTEM_DIRS["fashion-mnist"]) is not None else "digits")
    scale = np.float32(1 / 255)
    return d, d.x_train[:n_train] * scale, d.y_train[:n_train], d.x_test * scale, d.y_test


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--hidden", type=lambda t: tuple(int(h) for h in t.split(",")), default=(256, 128))
    args = p.parse_args(argv)
    d, x, y, xt, yt = data(args.n_train)
    print("\n".join(machine.format_setup(machine.describe_setup(d, argv or sys.argv[1:])).splitlines()[:2]))
    print(f"{d.name}: {len(y)} training images, {len(yt)} test images; hidden {args.hidden}, batch 128")
    ratios: list[float] = []
    print(f"{'early stop':<11}{'seed':>5}{'impl':>9}{'accuracy':>10}{'epochs':>8}{'s/epoch':>9}")
    for early in (True, False):
        for seed in range(args.seeds):
            per = {}
            for impl, cls in (("xpnet", Ours), ("sklearn", Theirs)):
                clf = cls(hidden_layer_sizes=args.hidden, batch_size=128, early_stopping=early, random_state=seed,
                          max_iter=200 if early else 30)  # fmt: skip
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    start = time.perf_counter()
                    clf.fit(x, y)
                    seconds = time.perf_counter() - start
                per[impl] = seconds / clf.n_iter_
                print(f"{early!s:<11}{seed:>5}{impl:>9}{clf.score(xt, yt):>10.4f}{clf.n_iter_:>8}{per[impl]:>9.3f}")
            ratios.append(per["xpnet"] / per["sklearn"])
    print(f"xpnet / sklearn seconds per epoch: median {statistics.median(ratios):.2f} "
          f"(from {min(ratios):.2f} to {max(ratios):.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
