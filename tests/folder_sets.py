"""Real picture folders for the tests: scikit-learn's digits written out as PNGs (and Fashion-MNIST garments),
by ``scripts/make_pictures.py --folder``'s own `write_folder`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers import load_script
from xpnet.data import load_dataset
from xpnet.data.datasets import IDX_FILES
from xpnet.data.idx import write_idx

FASHION = Path("/usr/share/datasets/fashion-mnist")
make_pictures = load_script("make_pictures")


def write_digits(root: Path, per_class: tuple[int, int] | None = None) -> Path:
    """digits as ``root/train/digit-<k>/*.png`` and ``root/test/...``; ``per_class`` (train, test) caps each class."""
    make_pictures.write_folder(root, "digits", per_class=per_class)
    return root


def write_garments(root: Path, per_class: tuple[int, int]) -> Path:
    """The first Fashion-MNIST images of each class as PNGs, in folders named after the classes (``Trouser``)."""
    make_pictures.write_folder(root, "fashion-mnist", FASHION, per_class)
    return root


def write_digits_idx(root: Path, shift_half: bool = True) -> Path:
    """digits enlarged to 28x28 as the four IDX files; every second image mirrored and labelled + 10 (20 classes)."""
    d = load_dataset("digits")
    arrays = {}
    for split, x, y in (("train", d.x_train, d.y_train), ("t10k", d.x_test, d.y_test)):
        big = np.zeros((len(y), 28, 28), np.uint8)
        big[:, 2:26, 2:26] = np.kron(x.reshape(-1, 8, 8), np.ones((3, 3), np.uint8))
        labels = y.astype(np.uint8).copy()
        if shift_half:
            labels[1::2] += 10
            big[1::2] = big[1::2, :, ::-1]
        key = "train" if split == "train" else "test"
        arrays[f"{key}_images"], arrays[f"{key}_labels"] = big, labels
    root.mkdir(parents=True, exist_ok=True)
    for key, base in IDX_FILES.items():
        write_idx(root / f"{base}.gz", arrays[key])
    return root
