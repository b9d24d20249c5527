"""How `xpnet.data.images.prepare` sees a picture, and the data sets' conventions it follows (issue 18).

    python scripts/prep_example.py              # writes docs/img/prep-before.png and docs/img/prep-after.png
    python scripts/prep_example.py --measure    # also prints each data set's measured convention

The "before" picture is a drawn 3, dark on grey paper with grain, off centre; the "after" picture is the
28x28 image an MNIST model is given, enlarged 4x (nearest) so its pixels show. ``--measure`` prints, for
Fashion-MNIST (Debian's package, if installed) and scikit-learn's digits, the numbers quoted in the module
docstring of `xpnet.data.images`: centres of mass and of the ink's box (pixel-index coordinates: the middle
of 28 pixels is 13.5), box sizes, background and brightest levels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from xpnet.data import images, load_dataset
from xpnet.data.idx import read_idx

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def drawn_three(seed: int = 0) -> np.ndarray:
    """A 3 drawn with a thick pen on grey paper (240x200, uint8), off centre, with grain and a shadow."""
    im = Image.new("L", (200, 240), 200)
    pen = ImageDraw.Draw(im)
    pen.arc((40, 30, 130, 110), start=200, end=90, fill=40, width=12)
    pen.arc((35, 95, 135, 185), start=270, end=160, fill=40, width=12)
    page = np.asarray(im, dtype=float)
    page -= np.linspace(0, 40, 200)[None, :]  # light falls off to the right
    page += np.random.default_rng(seed).normal(0, 6, page.shape)
    return np.clip(page, 0, 255).astype(np.uint8)


def write_example(folder: Path) -> list[Path]:
    before = drawn_three()
    after = images.prepare(before, images.LAYOUTS["mnist"])
    paths = [folder / "prep-before.png", folder / "prep-after.png"]
    Image.fromarray(before).save(paths[0], optimize=True)
    Image.fromarray(np.kron(after, np.ones((4, 4), np.uint8))).save(paths[1], optimize=True)
    return paths


def spread(values: np.ndarray) -> str:
    return f"{values.mean():.2f} +- {values.std():.2f}"


def measure(name: str, x: np.ndarray) -> None:
    """Print the convention of the (n, side, side) images ``x``: where the ink sits, its size, its levels."""
    n, side, _ = x.shape
    x = x.astype(float)
    idx = np.arange(side)
    total = x.sum(axis=(1, 2))
    mass = [(x.sum(axis=2) * idx).sum(axis=1) / total, (x.sum(axis=1) * idx).sum(axis=1) / total]
    lit_rows, lit_cols = (x > 0).any(axis=2), (x > 0).any(axis=1)
    first = [m.argmax(axis=1) for m in (lit_rows, lit_cols)]
    last = [side - 1 - m[:, ::-1].argmax(axis=1) for m in (lit_rows, lit_cols)]
    size = [b - a + 1 for a, b in zip(first, last)]
    longest = np.maximum(*size)
    odd = [(side - s) % 2 == 1 for s in size]
    before = sum(int(((a - (side - 1 - b)) == 1)[o].sum()) for a, b, o in zip(first, last, odd))
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)
    print(f"{name}: {n} images {side}x{side}, middle {(side - 1) / 2}")
    print(f"  centre of mass   row {spread(mass[0])}, column {spread(mass[1])}")
    print(f"  centre of box    row {spread((first[0] + last[0]) / 2)}, column {spread((first[1] + last[1]) / 2)}")
    shares = {int(k): f"{c / n:.1%}" for k, c in zip(*np.unique(longest, return_counts=True)) if c / n >= 0.001}
    print(f"  longest side of the ink's box: {shares}")
    print(f"  odd leftover placed before (top/left): {before} of {sum(int(o.sum()) for o in odd)}")
    print(f"  every image has pixels at 0: {bool((x.min(axis=(1, 2)) == 0).all())}")
    print(f"  least share of an image's border at exactly 0: {(border == 0).mean(axis=1).min():.1%}")
    print(f"  brightest pixel: {x.max(axis=(1, 2)).min():.0f}..255")
    print(f"  lit pixels fainter than 13/255: {((x > 0) & (x < 13)).sum() / (x > 0).sum():.1%}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "img")
    p.add_argument("--measure", action="store_true", help="print the data sets' measured conventions")
    args = p.parse_args()
    for path in write_example(args.out):
        print(f"wrote {path}")
    if args.measure:
        if FASHION.is_file():
            measure("Fashion-MNIST test set", read_idx(FASHION, ndim=3))
        else:
            print(f"Fashion-MNIST: not measured, no {FASHION}")
        digits = load_dataset("digits")
        measure("scikit-learn digits (all)", np.concatenate([digits.x_train, digits.x_test]).reshape(-1, 8, 8))


if __name__ == "__main__":
    main()
