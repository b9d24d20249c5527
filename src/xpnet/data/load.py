"""`load_dataset`: a data set by name, from scikit-learn (``digits``), four IDX files, or a picture folder."""

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError, listed, reason
from . import download as dl
from .datasets import CLASS_NAMES, DATASETS, IDX_FILES, LOCAL_SETS, Dataset, default_data_dir, stratified_holdout
from .folder import load_folder_dataset
from .idx import IdxError, read_idx

IMAGE_SHAPE = (28, 28)  # of every image in the MNIST-style IDX data sets
SYSTEM_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}  # Debian's dataset-fashion-mnist


def idx_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """The IDX files in ``directory`` by key (``<name>.gz``, else ``<name>``), and the ``.gz`` names it lacks."""
    choices = {k: (directory / f"{b}.gz", directory / b) for k, b in IDX_FILES.items()}
    try:  # is_file() raises, rather than answer False, in a folder one may not enter
        paths = {k: next((p for p in both if p.is_file()), None) for k, both in choices.items()}
    except OSError as e:
        message = f"cannot read data folder {directory}: {reason(e)}; choose another {{name}}"
        raise DataError(message, parameter="data_dir") from None
    return {k: p for k, p in paths.items() if p}, [f"{IDX_FILES[k]}.gz" for k, p in paths.items() if not p]


def find_idx_files(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in ``directory``, or None if any is missing or the folder cannot be looked in."""
    with contextlib.suppress(DataError):
        found, missing = idx_files(directory)
        return None if missing else found
    return None


def load_idx_dataset(name: str, directory: Path) -> Dataset:
    """The four IDX files in ``directory`` as the set ``name`` (a named set's labels must be its classes')."""
    files, missing = idx_files(directory)
    if missing:
        where = "" if directory == default_data_dir(name) else f" --data-dir {directory}"
        tip = f"let python -m xpnet.train --dataset {name}{where} --epochs 1 download them there"
        tip = "their uncompressed copies (an idx set is never downloaded)" if name == "idx" else tip
        raise dl.MissingData(f"{name} not found in {directory}", details=dl.fix_lines(missing, directory, tip))
    a = {k: read_idx(p, 3, (None, *IMAGE_SHAPE)) if "images" in k else read_idx(p, 1) for k, p in files.items()}
    classes = CLASS_NAMES.get(name, ())  # only the named sets have fixed classes; an idx set's: 0 up to its largest
    for split in ("train", "test"):
        images, labels = files[f"{split}_images"], files[f"{split}_labels"]
        if (n := len(a[f"{split}_images"])) != len(y := a[f"{split}_labels"]):
            raise IdxError(f"{images}: {n} images but {labels} has {len(y)} labels")
        if classes and y.max() >= len(classes):
            raise IdxError(f"{labels}: labels must lie in 0..{len(classes) - 1}, found {y.max()}")
    x_train, y_train, x_test, y_test = (a[k].reshape(len(a[k]), -1) if "images" in k else a[k] for k in IDX_FILES)
    # A class the training set lacks cannot be learnt: refused as a folder set refuses a class without pictures.
    taught, lacking = np.unique(y_train).tolist(), np.setdiff1d(y_test, y_train).tolist()
    if len(taught) < 2 or lacking:
        few = f"{len(taught)} class(es) ({listed(taught)}): a classifier needs at least 2"
        why = few if len(taught) < 2 else f"no image of class(es) {listed(lacking, 10)}, which the test set has"
        raise IdxError(f"{files['train_labels']}: the training set has {why}")
    return Dataset(name, x_train, y_train, x_test, y_test, IMAGE_SHAPE, str(directory), classes=classes)


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    download: bool = False,
    mirrors: Sequence[str] | None = None,
    on_download: Callable[[str, Path], None] | None = None,
    progress: Callable[[str], Callable[[int, int | None], None]] | None = None,
    image_size: int | None = None,
    picture_progress: Callable[[int, int | None], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> Dataset:
    """A data set by name, from ``data_dir``; with ``download``, a named set's missing files from ``mirrors`` first."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if image_size is not None and name != "folder":
        raise DataError(f"{{name}} sizes a folder set's pictures; {name} has its own", parameter="image_size")
    if name == "digits":
        from sklearn.datasets import load_digits  # a dependency, slow to import: only when asked for

        digits = load_digits()  # its 0..16 made the IDX sets' 0..255, so that every set is normalised alike
        x, y = np.rint(digits.data * (255 / 16)).astype(np.uint8), digits.target.astype(np.uint8)
        train, test = stratified_holdout(y, round(0.2 * y.size))  # a stratified fifth to test on
        return Dataset(name, x[train], y[train], x[test], y[test], (8, 8), "scikit-learn", classes=CLASS_NAMES[name])
    directory = default_data_dir(name) if data_dir is None else Path(data_dir).expanduser()
    if name in LOCAL_SETS and (data_dir is None or not os.path.isdir(directory)):  # a named set's: a download makes it
        what = "its four IDX files" if name == "idx" else "train/<class>/"
        where = "" if data_dir is None else f"{directory} is not a folder: "
        raise DataError(f"{name}: {where}give {{name}} the folder of {what}", parameter="data_dir")
    if name == "folder":
        return load_folder_dataset(directory, image_size, picture_progress, notify)
    if data_dir is None and (copy := SYSTEM_DIRS.get(name)) and not find_idx_files(directory) and find_idx_files(copy):
        directory = copy  # the system's copy of the set
    if (missing := idx_files(directory)[1]) and download and name != "idx":
        source = dl.source_for(name, mirrors)
        if on_download is not None:
            on_download(name, directory)
        dl.download(source, directory, missing, progress=progress)
    return load_idx_dataset(name, directory)
