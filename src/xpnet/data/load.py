"""`load_dataset`: a data set by name, from scikit-learn (``digits``), four IDX files, or a picture folder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError, listed
from . import download as dl
from .datasets import (
    CLASS_NAMES,
    DATASETS,
    DIGITS,
    IDX_FILES,
    LOCAL_SETS,
    Dataset,
    default_data_dir,
    stratified_holdout,
)
from .folder import load_folder_dataset
from .idx import IdxError, read_idx

IMAGE_SHAPE = (28, 28)  # of every image in the MNIST-style IDX data sets
# Where Debian's package dataset-fashion-mnist puts the files.
SYSTEM_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
DIGITS_TEST_FRACTION = 0.2


def idx_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """The IDX files in ``directory`` by key (``<name>.gz``, else ``<name>``), and the ``.gz`` names of those
    it lacks."""
    found = {}
    for key, base in IDX_FILES.items():
        for candidate in (directory / f"{base}.gz", directory / base):
            if candidate.is_file():
                found[key] = candidate
                break
    return found, [f"{base}.gz" for key, base in IDX_FILES.items() if key not in found]


def find_idx_files(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in ``directory``, or None if any is missing."""
    found, missing = idx_files(directory)
    return None if missing else found


def missing_files(name: str, directory: Path, missing: list[str]) -> dl.MissingData:
    if name == "idx":
        return dl.MissingData(
            f"idx: {directory} lacks IDX files: put {', '.join(missing)} (or uncompressed copies) in it"
        )
    where = "" if directory == default_data_dir(name) else f" --data-dir {directory}"
    return dl.MissingData(
        f"{name} not found in {directory}",
        details=[
            *dl.fix_lines(missing, directory),
            f"or let python -m xpnet.train --dataset {name}{where} --epochs 1 download them there",
        ],
    )


def load_idx_dataset(name: str, directory: Path) -> Dataset:
    """The four IDX files in ``directory`` as the set ``name`` (a named set's class count is checked)."""
    files, missing = idx_files(directory)
    if missing:
        raise missing_files(name, directory, missing)
    arrays = {
        k: read_idx(p, ndim=3, shape=(None, *IMAGE_SHAPE)) if k.endswith("images") else read_idx(p, ndim=1)
        for k, p in files.items()
    }
    n_classes = len(CLASS_NAMES.get(name, ()))  # only the named sets have a fixed class count
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise IdxError(
                f"{files[f'{split}_images']}: {images.shape[0]} images but "
                f"{files[f'{split}_labels']} has {labels.shape[0]} labels"
            )
        if n_classes and labels.max() >= n_classes:
            raise IdxError(f"{files[f'{split}_labels']}: labels must lie in 0..{n_classes - 1}, found {labels.max()}")
    # A class the training set lacks cannot be learnt: refused as a folder set refuses a class without pictures.
    taught = np.unique(arrays["train_labels"])
    lacking = np.setdiff1d(np.unique(arrays["test_labels"]), taught)
    if taught.size < 2:
        raise IdxError(
            f"{files['train_labels']}: the training set has {taught.size} class(es) "
            f"({', '.join(map(str, taught.tolist()))}): a classifier needs training images of at least 2"
        )
    if lacking.size:
        raise IdxError(
            f"{files['train_labels']}: the training set has no image of class(es) "
            f"{listed([str(c) for c in lacking.tolist()], 10)}, which the test set has: a classifier learns "
            "only the classes it is trained on; give training images of every class"
        )
    flat = {k: a.reshape(a.shape[0], -1) if k.endswith("images") else a for k, a in arrays.items()}
    return Dataset(
        name,
        flat["train_images"],
        flat["train_labels"],
        flat["test_images"],
        flat["test_labels"],
        image_shape=IMAGE_SHAPE,
        source=str(directory),
        classes=CLASS_NAMES.get(name, ()),  # an idx set: "0" up to its largest label
    )


def load_digits_dataset() -> Dataset:
    """scikit-learn's digits at 0..255, a stratified fifth held out as the test set."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError('--dataset digits needs scikit-learn: pip install scikit-learn (or "xpnet[test]")') from None
    digits = load_digits()
    # 0..16 intensities to 0..255, the range of the IDX data sets, so every data set is normalised alike.
    images = np.rint(digits.data * (255 / 16)).astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    train, test = stratified_holdout(labels, round(DIGITS_TEST_FRACTION * labels.size))
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
    if image_size is not None and name != "folder":
        raise DataError(f"--image-size sizes the pictures of --dataset folder; {name} has its own: leave it out")
    if name == "digits":
        return load_digits_dataset()
    if name in LOCAL_SETS and data_dir is None:
        what = {
            "idx": "an idx set: the folder of its four IDX files",
            "folder": "a folder set: the folder of train/<class>/",
        }
        raise DataError(f"give --data-dir DIR for {what[name]}")
    if name == "folder":
        return load_folder_dataset(data_dir, image_size, progress=picture_progress, notify=notify)
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
    else:
        directory = default_data_dir(name)
        system = SYSTEM_DIRS.get(name)
        if find_idx_files(directory) is None and system is not None and find_idx_files(system) is not None:
            directory = system
    missing = idx_files(directory)[1]
    if missing and download and name != "idx":
        if on_download is not None:
            on_download(name, directory)
        dl.download(source or dl.source_for(name, mirrors), directory, missing, progress=progress)
    return load_idx_dataset(name, directory)
