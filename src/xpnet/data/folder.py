"""Pictures in ``DIR/train/<class>/`` (torchvision's ImageFolder) and ``DIR/test/<class>/`` as a `Dataset`, prepared as
``predict`` prepares them and cached (`cache`); without ``test/``, a stratified fifth of ``train/`` is held out."""

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DataError, listed, reason
from . import cache, images
from .datasets import Dataset, stratified_holdout
from .pictures import import_pillow, prepare_file

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".npy")
TEST_FRACTION = 0.2  # held out as the test set when there is no test/ folder

Progress = Callable[[int, int | None], None]
Notify = Callable[[str], None]


def read_folder(root: Path, layout: images.Layout, progress: Progress, notify: Notify) -> dict[str, np.ndarray]:
    """The prepared arrays of ``root``'s train/ and test/ (from its cache when fresh), as `cache` stores them."""
    train, test = root / "train", root / "test"

    def pictures(split: Path) -> dict[str, list[Path]]:  # of each class, hidden entries left out
        shown = {d.name: sorted(d.iterdir()) for d in sorted(split.iterdir()) if d.is_dir() and d.name[0] != "."}
        return {c: [p for p in ps if p.suffix.lower() in SUFFIXES and p.name[0] != "."] for c, ps in shown.items()}

    try:
        if not train.is_dir():
            raise DataError(f"folder: {root} has no train/ folder: put the pictures in {train}/<class>/")
        splits = {"train": pictures(train), "test": pictures(test) if test.is_dir() else {}}
    except OSError as e:  # a folder one may not list or enter
        raise DataError(f"folder: cannot read {e.filename or root} ({reason(e)}): make it readable") from None
    if len(classes := tuple(splits["train"])) < 2:
        raise DataError(f"folder: {train} has {len(classes)} class folder(s): a classifier needs at least 2")
    if unknown := sorted(set(splits["test"]) - set(classes)):
        raise DataError(f"folder: {test} has classes that train/ lacks ({listed(unknown, 3)}): name them as in train/")
    all_files = [p for files in splits.values() for paths in files.values() for p in paths]
    recipe = f"{layout!r} preparation {images.PREPARATION}"  # a new preparation makes old caches stale
    key, where = cache.fingerprint(root, all_files, recipe), cache.cache_path(root, layout.side)
    cached, why = cache.load(where, key, len(all_files), layout.n_features)
    if cached is not None and tuple(cached["classes"].tolist()) == classes:
        if cached["skipped"].size:
            notify(f"folder: {cached['skipped'].size} unreadable picture(s) skipped (named when {where} was made)")
        return cached
    if why or cached is not None:
        notify(f"folder: the cache {where} is {why or 'of other classes'}: reading the pictures again")
    pil = import_pillow() if any(p.suffix.lower() != ".npy" for p in all_files) else None
    arrays, skipped, done = {"classes": np.array(classes, dtype=str)}, [], 0
    for split, files in splits.items():
        rows, labels = [], []
        for name, paths in files.items():
            found = len(rows)
            for path in paths:
                try:
                    rows.append(prepare_file(path, pil, layout).ravel())
                    labels.append(classes.index(name))
                except (ValueError, OSError) as e:  # PictureError, BlankImage; OSError: no access
                    skipped.append(str(path))
                    notify(f"{path}: skipped: {reason(e)}")
                done += 1
                progress(done, len(all_files))
            if len(rows) == found:
                raise DataError(f"folder: {root / split / name} has no readable picture (of {len(paths)} files)")
        arrays[f"x_{split}"] = np.stack(rows) if rows else np.zeros((0, layout.n_features), np.uint8)
        arrays[f"y_{split}"] = np.asarray(labels, dtype=np.int64)
    if skipped:
        notify(f"folder: {len(skipped)} unreadable picture(s) skipped, {len(all_files) - len(skipped)} read")
    arrays["skipped"] = np.array(skipped, dtype=str)
    if cache.fingerprint(root, all_files, recipe) == key:  # else a picture changed while being read
        cache.save(where, key, arrays)
    return arrays


def load_folder_dataset(root: Path, side: int | None, progress: Progress | None, notify: Notify | None) -> Dataset:
    """The folder ``root`` as a `Dataset` of ``side``-pixel squares (default 28); notes to ``notify``, one a line."""
    layout, say = images.folder_layout(side), notify or (lambda line: None)
    a = read_folder(root, layout, progress or (lambda done, total: None), say)
    classes, x, y, x_test, y_test = tuple(a["classes"].tolist()), a["x_train"], a["y_train"], a["x_test"], a["y_test"]
    if not y_test.size:  # only classes with a picture to spare give test pictures
        counts = np.bincount(y, minlength=len(classes))
        testable = np.flatnonzero(counts[y] > 1)
        if not testable.size:
            raise DataError(f"folder: {root / 'train'} has only {len(y)} readable pictures; add a test/ folder")
        n_test = max(int(np.count_nonzero(counts > 1)), round(TEST_FRACTION * testable.size))
        held = testable[stratified_holdout(y[testable], n_test)[1]]
        say(f"folder: {root} has no test/ folder: holding out {len(held)} of {len(y)} pictures (stratified, seeded)")
        if lone := [classes[c] for c in np.flatnonzero(counts == 1)]:
            say(f"folder: {len(lone)} class(es) have a single picture, trained on but never tested: {listed(lone, 3)}")
        kept = np.setdiff1d(np.arange(len(y)), held)
        x, y, x_test, y_test = x[kept], y[kept], x[held], y[held]
    return Dataset("folder", x, y, x_test, y_test, (layout.side,) * 2, str(root), classes=classes, layout=layout)
