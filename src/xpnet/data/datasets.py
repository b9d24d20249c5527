"""What a data set is: the `Dataset` record, the named sets' facts, and its stratified splits (`load` reads the
sets). Every split uses a fixed seed: ``--seed`` changes the model, never which images are tested or held out."""

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .images import Layout

DATASETS = ("mnist", "fashion-mnist", "digits", "idx", "folder")
LOCAL_SETS = ("idx", "folder")  # read from the folder the caller names (data_dir), never downloaded
DIGITS = tuple(str(k) for k in range(10))
# Each named set's classes in the order of its labels (Fashion-MNIST's from Zalando's README).
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CLASS_NAMES = {"mnist": DIGITS, "digits": DIGITS, "fashion-mnist": FASHION}
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SPLIT_SEED = 0
# A --val-split to suggest before a named set is read, about a tenth of its training images (None: unknown).
example_val_split = {"mnist": 5000, "fashion-mnist": 5000, "digits": 150}.get


@dataclass(frozen=True)
class Dataset:
    """Training, test and (`hold_out`) validation rows (uint8 from files, else any namespace's) and their labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]
    source: str = ""
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    layout: Layout | None = None  # how pictures are prepared for it, when not the named set's (a folder set)
    w_train: Any = None  # weights of the training and validation rows (None: each counts once)
    w_val: Any = None

    def __post_init__(self) -> None:
        if not self.classes:
            labels = [y for y in (self.y_train, self.y_test, self.y_val) if y is not None and y.size]
            top = max((int(y.max()) for y in labels), default=0)
            object.__setattr__(self, "classes", tuple(str(k) for k in range(top + 1)))

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def folder(self) -> str | None:
        """The folder the set was read from, made absolute (a checkpoint records it), or None (digits, arrays)."""
        return None if self.name == "digits" or not os.path.isdir(self.source) else str(Path(self.source).absolute())


def class_names(name: str) -> tuple[str, ...]:
    """The classes of the named data set ``name``: its digits "0".."9", or Fashion-MNIST's garments."""
    return CLASS_NAMES.get(name, DIGITS)


def default_data_dir(name: str) -> Path:
    """``$XPNET_DATA/<name>``, or ``~/.cache/xpnet/<name>`` when XPNET_DATA is unset."""
    return Path(os.environ.get("XPNET_DATA") or Path.home() / ".cache" / "xpnet") / name


def stratified_holdout(labels: np.ndarray, n_holdout: int, rng: np.random.Generator | None = None):
    """Sorted indices (kept, held out): ``n_holdout`` drawn by ``rng`` (default: seeded) in proportion to classes."""
    rng = np.random.default_rng(SPLIT_SEED) if rng is None else rng
    classes, counts = np.unique(labels, return_counts=True)
    share = counts * (n_holdout / max(labels.shape[0], 1))
    take = np.floor(share).astype(np.int64)
    take[np.lexsort((classes, take - share))[: n_holdout - int(take.sum())]] += 1
    held = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    return np.setdiff1d(np.arange(labels.shape[0]), held_out, assume_unique=True), held_out


def hold_out(data: Dataset, n_val: int) -> Dataset:
    """``data`` with ``n_val`` of its training rows moved to ``x_val``/``y_val`` (0: unchanged)."""
    if n_val == 0:
        return data
    n = data.y_train.shape[0]
    if not 0 < n_val < n:
        message = f"{{name}} {n_val} is out of range: {data.name} has {n} training images, hold out 1 to {n - 1}"
        raise DataError(message, parameter="val_split")
    kept, held = stratified_holdout(data.y_train, n_val)
    x, y = data.x_train, data.y_train
    return replace(data, x_train=x[kept], y_train=y[kept], x_val=x[held], y_val=y[held])
