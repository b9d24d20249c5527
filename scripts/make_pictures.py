"""Write a few real test images as the pictures a user might have, for the walk-through of docs/usage.md.

    python scripts/make_pictures.py pictures                            # from Fashion-MNIST's test set
    python scripts/make_pictures.py --dataset digits /tmp/fm/pictures   # from scikit-learn's digits

writes, into the folder (created if missing):

- ``catalogue.jpg``: test image 0 as a catalogue-style photo, dark on white, enlarged 10x, JPEG quality 90;
- ``test-1.png``: test image 1 as the data set stores it, light on black, at its own size;
- ``test-2.npy``: test image 2 as a NumPy array;
- ``notes.txt``: a text file, to show what ``predict`` says about a file that is not a picture.

Their true classes are printed. With ``--folder``, the whole data set is written instead as a picture folder
for ``xpnet.train --dataset folder``: ``FOLDER/train/<class>/*.png`` and ``FOLDER/test/<class>/*.png``, one
PNG per image as the data set stores it (digit classes are named ``digit-<k>``); ``--per-class 40,10`` keeps
only the first 40 training and 10 test images of each class. The tests make their picture folders with it.

    python scripts/make_pictures.py --folder --dataset digits digits

Needs Pillow; reads the data set as ``xpnet.train`` does (no download).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from xpnet.cli import common as cli
from xpnet.data import DATASETS, load_dataset
from xpnet.data.pictures import import_pillow
from xpnet.errors import say
from xpnet.files import check_writable

ENLARGE = 10


def make_pictures(folder: Path, dataset: str = "fashion-mnist", data_dir: str | None = None) -> dict[str, str]:
    """Write the four files into ``folder``; return each picture's name and true class (``"9 Ankle boot"``)."""
    pil = import_pillow()
    check_writable(folder / "catalogue.jpg", flag="FOLDER")
    data = load_dataset(dataset, data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    images = data.x_test[:3].reshape(-1, *data.image_shape)
    side = ENLARGE * data.image_shape[0]
    catalogue = pil.fromarray(255 - images[0]).resize((side, side), pil.Resampling.BILINEAR)
    catalogue.save(folder / "catalogue.jpg", quality=90)
    pil.fromarray(images[1]).save(folder / "test-1.png")
    np.save(folder / "test-2.npy", images[2])
    (folder / "notes.txt").write_text("not a picture\n", encoding="utf-8")
    names = ("catalogue.jpg", "test-1.png", "test-2.npy")
    labels = [int(k) for k in data.y_test[:3]]
    return {name: f"{k} {data.classes[k]}" if data.classes[k] != str(k) else str(k) for name, k in zip(names, labels)}


def class_folder(name: str) -> str:
    """A folder name for a class: ``digit-7`` for a digit, else the name with path separators replaced."""
    return f"digit-{name}" if name.isdigit() else name.replace("/", "-").replace("\\", "-")


def write_folder(
    root: Path,
    dataset: str = "digits",
    data_dir: str | Path | None = None,
    per_class: tuple[int, int] | None = None,
) -> dict[str, int]:
    """Every image of ``dataset`` as a PNG under ``root/train|test/<class>/`` (``<index in its split>.png``),
    or with ``per_class`` (train, test) only the first so many of each class; return how many per split."""
    pil = import_pillow()
    check_writable(root / "train" / "00000.png", flag="FOLDER")  # as every output is checked, before any work
    data = load_dataset(dataset, data_dir)
    counts = {}
    for split, x, y, cap in (("train", data.x_train, data.y_train, 0), ("test", data.x_test, data.y_test, 1)):
        counts[split] = 0
        for k, name in enumerate(data.classes):
            folder = root / split / class_folder(name)
            folder.mkdir(parents=True, exist_ok=True)
            for i in np.flatnonzero(y == k)[: per_class[cap] if per_class else None]:
                pil.fromarray(x[i].reshape(data.image_shape)).save(folder / f"{i:05d}.png")
                counts[split] += 1
    return counts


def caps(text: str) -> tuple[int, int]:
    """``--per-class``: ``40,10`` (training, test images of each class), or ``40`` for both."""
    parts = text.split(",")
    if len(parts) > 2:
        raise argparse.ArgumentTypeError(f"give TRAIN,TEST like 40,10, got {text!r}")
    counts = [cli.positive_int(p) for p in parts]
    return counts[0], counts[-1]


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python scripts/make_pictures.py", description=__doc__.splitlines()[0])
    p.add_argument("folder_", type=Path, metavar="FOLDER", help="where to write the pictures (created if missing)")
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist", help="default: fashion-mnist")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="as xpnet.train's --data-dir")
    p.add_argument("--folder", action="store_true", help="write the whole data set as a picture folder instead")
    p.add_argument(
        "--per-class",
        type=caps,
        default=None,
        metavar="TRAIN,TEST",
        help="with --folder: only the first TRAIN training and TEST test images of each class",
    )
    args = p.parse_args(argv)
    if args.per_class is not None and not args.folder:
        p.error("--per-class sizes the picture folder of --folder: add --folder, or leave --per-class out")
    if args.folder:
        counts = write_folder(args.folder_, args.dataset, args.data_dir, args.per_class)
        made = f"{counts['train']} training and {counts['test']} test pictures of {args.dataset}"
        say(f"{args.folder_}: {made}")
        return 0
    truth = make_pictures(args.folder_, args.dataset, args.data_dir)
    for name, label in truth.items():
        say(f"{args.folder_ / name}: true class {label}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="make_pictures"))
