"""The data sets: host NumPy uint8 images and labels, flattened to rows.

``digits`` is scikit-learn's bundled 8x8 digits (no download); ``mnist`` and ``fashion-mnist`` are read
from the four standard IDX files in a data directory (downloaded when missing); ``idx`` is any such folder,
with any number of classes; ``folder`` is a folder of pictures, one sub-folder per class (``folder.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, printable, printable_list
from . import download as dl
from .idx import IdxError, read_idx
from .images import Layout

DATASETS = ("mnist", "fashion-mnist", "digits", "idx", "folder")
# Sets read from a folder the user names (--data-dir), never downloaded: any classes, named or numbered.
LOCAL_SETS = ("idx", "folder")
DIGITS = tuple(str(k) for k in range(10))
IMAGE_SHAPE = (28, 28)  # of every image in the MNIST-style IDX data sets
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# Where Debian's package dataset-fashion-mnist puts the files.
SYSTEM_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
# Each named set's classes in the order of its labels (Fashion-MNIST's from Zalando's README).
CLASS_NAMES = {
    "mnist": DIGITS,
    "digits": DIGITS,
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # fixed, so that --seed changes the model and never the test set


@dataclass(frozen=True)
class Dataset:
    """Train and test images as (n, pixels) uint8 rows in 0..255, labels as (n,) integers in 0..n_classes-1.

    ``x_val``/``y_val`` hold validation rows taken out of the training set (see `splits.hold_out`), or None.
    ``classes`` names each class in label order; left empty, the classes are ``"0"`` up to the largest label.
    """

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

    def __post_init__(self) -> None:
        if not self.classes:
            labels = [y for y in (self.y_train, self.y_test, self.y_val) if y is not None and y.size]
            top = max((int(y.max()) for y in labels), default=0)
            object.__setattr__(self, "classes", tuple(str(k) for k in range(top + 1)))

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def folder(self) -> str | None:
        """The folder the set was read from, made absolute (a checkpoint records it), or None: ``digits``
        comes with scikit-learn, and a set made in memory has no ``source``."""
        if self.name == "digits" or not self.source or not Path(self.source).is_dir():
            return None
        return str(Path(self.source).expanduser().absolute())

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def class_names(name: str) -> tuple[str, ...]:
    """The name of each class of the named data set ``name``: its digits "0".."9", or Fashion-MNIST's garments."""
    return CLASS_NAMES.get(name, DIGITS)


def default_data_dir(name: str) -> Path:
    """``$XPNET_DATA/<name>``, or ``~/.cache/xpnet/<name>`` when XPNET_DATA is unset."""
    root = os.environ.get("XPNET_DATA")
    return (Path(root) if root else Path.home() / ".cache" / "xpnet") / name


def missing_idx_files(directory: Path) -> list[str]:
    """The ``.gz`` names of the IDX files absent from ``directory`` (in neither ``.gz`` nor plain form)."""
    present = {b for b in IDX_FILES.values() if (directory / f"{b}.gz").is_file() or (directory / b).is_file()}
    return [f"{b}.gz" for b in IDX_FILES.values() if b not in present]


def find_idx_files(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in ``directory`` (``.gz`` or uncompressed), or None if any is missing."""
    found = {}
    for key, base in IDX_FILES.items():
        for candidate in (directory / f"{base}.gz", directory / base):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def missing_files_message(name: str, directory: Path) -> str:
    missing = missing_idx_files(directory) or [f"{base}.gz" for base in IDX_FILES.values()]
    if name == "idx":
        return f"idx: {printable(directory)} lacks IDX files: put {', '.join(missing)} (or uncompressed copies) in it"
    where = "" if directory == default_data_dir(name) else f" --data-dir {printable(directory)}"
    return "\n".join(
        [
            f"{name} not found in {printable(directory)}",
            *dl.fix_lines(missing, directory),
            f"or let python -m xpnet.train --dataset {name}{where} --epochs 1 download them there",
        ]
    )


def load_idx_dataset(name: str, directory: Path) -> Dataset:
    files = find_idx_files(directory)
    if files is None:
        raise dl.MissingData(missing_files_message(name, directory))
    arrays = {
        k: read_idx(p, ndim=3, shape=(None, *IMAGE_SHAPE)) if k.endswith("images") else read_idx(p, ndim=1)
        for k, p in files.items()
    }
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise IdxError(
                f"{printable(files[f'{split}_images'])}: {images.shape[0]} images but "
                f"{printable(files[f'{split}_labels'])} has {labels.shape[0]} labels"
            )
        n_classes = len(CLASS_NAMES.get(name, ()))  # only the named sets have a fixed class count
        if n_classes and labels.size and labels.max() >= n_classes:
            raise IdxError(
                f"{printable(files[f'{split}_labels'])}: labels must lie in 0..{n_classes - 1}, found {labels.max()}"
            )
    # A class the training set lacks cannot be learnt: refused as a folder set refuses a class without pictures.
    taught = np.unique(arrays["train_labels"])
    lacking = np.setdiff1d(np.unique(arrays["test_labels"]), taught)
    if taught.size < 2:
        raise IdxError(
            f"{printable(files['train_labels'])}: the training set has {taught.size} class(es) "
            f"({', '.join(map(str, taught.tolist()))}): a classifier needs training images of at least 2"
        )
    if lacking.size:
        raise IdxError(
            f"{printable(files['train_labels'])}: the training set has no image of class(es) "
            f"{printable_list([str(c) for c in lacking.tolist()], 10)}, which the test set has: a classifier learns "
            "only the classes it is trained on; give training images of every class"
        )
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise IdxError(
            f"{printable(directory)}: train images are {arrays['train_images'].shape[1:]} "
            f"but test images are {arrays['test_images'].shape[1:]}"
        )
    flat = {k: a.reshape(a.shape[0], -1) if k.endswith("images") else a for k, a in arrays.items()}
    return Dataset(
        name,
        flat["train_images"],
        flat["train_labels"],
        flat["test_images"],
        flat["test_labels"],
        image_shape=tuple(arrays["train_images"].shape[1:]),
        source=str(directory),
        classes=CLASS_NAMES.get(name, ()),  # an idx set: "0" up to its largest label
    )


def stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out), holding out ``fraction`` of every class, each sorted."""
    held = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        held.append(rng.permutation(idx)[: round(fraction * idx.size)])
    held_out = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(labels.size), held_out), held_out


def load_digits_dataset() -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError('--dataset digits needs scikit-learn: pip install scikit-learn (or "xpnet[test]")') from None
    digits = load_digits()
    # 0..16 intensities to 0..255, the range of the IDX data sets, so every data set is normalised alike.
    images = np.rint(digits.data * (255 / 16)).astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    train, test = stratified_split(labels, DIGITS_TEST_FRACTION, np.random.default_rng(DIGITS_SPLIT_SEED))
    return Dataset(
        "digits", images[train], labels[train], images[test], labels[test], (8, 8), "scikit-learn", classes=DIGITS
    )


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    download: bool = False,
    mirrors: Sequence[str] | None = None,
    source: dl.Source | None = None,
    on_download: Callable[[str, Path], None] | None = None,
    progress: Callable[[str], Callable[[int, int | None], None]] | None = None,
    image_size: int | None = None,
    picture_progress: Callable[[int, int | None], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> Dataset:
    """Load a data set by name. ``data_dir`` overrides where the IDX files are looked for.

    ``idx`` and ``folder`` are read from ``data_dir`` alone (never downloaded): any four IDX files, or a
    picture folder (`folder.load_folder_dataset`, at ``image_size`` pixels a side, calling
    ``picture_progress(done, total)`` as pictures are read and ``notify`` with one-line notes).

    With ``download``, files missing from the data directory are fetched from ``mirrors`` (default:
    ``$XPNET_MIRRORS``, else the data set's public mirrors) and checked against published checksums first.
    ``source`` replaces both the mirrors and the checksums (an internal data set, or a test's server).
    ``on_download(name, directory)`` is called before, ``progress`` is passed on to `download.download`.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if name == "digits":
        return load_digits_dataset()
    if name in LOCAL_SETS and data_dir is None:
        what = (
            "an idx set: the folder of its four IDX files"
            if name == "idx"
            else "a folder set: the folder of train/<class>/"
        )
        raise DataError(f"give --data-dir DIR for {what}")
    if name == "folder":
        from .folder import DEFAULT_SIZE, load_folder_dataset  # folder imports this module

        return load_folder_dataset(data_dir, image_size or DEFAULT_SIZE, progress=picture_progress, notify=notify)
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
    else:
        directory = default_data_dir(name)
        system = SYSTEM_DIRS.get(name)
        if find_idx_files(directory) is None and system is not None and find_idx_files(system) is not None:
            directory = system
    missing = missing_idx_files(directory)
    if missing and download and name not in LOCAL_SETS:
        if on_download is not None:
            on_download(name, directory)
        dl.download(source or dl.source_for(name, mirrors), directory, missing, progress=progress)
    return load_idx_dataset(name, directory)
