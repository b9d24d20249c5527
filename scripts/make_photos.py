"""Draw handwritten digits as phone photos of paper show them, for the tests and docs/usage.md (issue 25).

    python scripts/make_photos.py photos              # writes photos/<case>-<digit>.png, every case and digit
    python scripts/make_photos.py --measure           # how xpnet.data.images.prepare reads them (no files)
    python scripts/make_photos.py --figure docs/img/photos-after.png

Each digit 0..9 is drawn as a person draws it (the 4, 5 and 7 in two strokes) with a round pen, in NumPy
alone (no Pillow: the tests call `photo` directly), on paper with grain, in one of these cases:

- ``plain``: dark pen on light paper, nothing else: what every other case is compared with;
- ``lines``: ruled paper, thin grey lines across the whole page and a margin line down it, through the digit;
- ``border``: a dark table along the bottom of the frame, and a thin dark strip down one side;
- ``pencil``: a faint pencil stroke on grey paper (a fifth of the paper's level darker, grainy);
- ``thin-pen``: a fine pen on a large photo, the stroke under 0.5% of the picture, with breaks in the line;
- ``shadow``: a soft shadow over a corner of the page, 45% darker.

``--measure`` prepares every photo for an MNIST-shaped model and prints, per case and over the ten digits:
how far the prepared image lies from the plain photo's (mean absolute difference in grey levels, the better
of a one-pixel move each way), the share of its ink off the plain photo's ink (lines, regions: stray), its
brightest pixel, and how often a model reads the digit drawn and agrees with its reading of the plain photo.
The model is the tests' (`--model`; else one is trained here, in seconds, on scikit-learn's digits laid out
as MNIST's, as tests/trained_models.py does). ``--figure`` writes, for digit 5 in each case, the photo and
the 28x28 image the model sees, side by side (needs Pillow).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

# Strokes of each digit: polylines in the digit's box, (x, y) in 0..1, y down.
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [[(0.5, 0.02), (0.2, 0.15), (0.1, 0.5), (0.2, 0.85), (0.5, 0.98), (0.8, 0.85), (0.9, 0.5), (0.8, 0.15),
         (0.5, 0.02)]],
    1: [[(0.3, 0.22), (0.55, 0.03), (0.55, 0.97)]],
    2: [[(0.15, 0.25), (0.3, 0.07), (0.55, 0.03), (0.8, 0.12), (0.85, 0.32), (0.7, 0.55), (0.15, 0.95),
         (0.9, 0.95)]],
    3: [[(0.15, 0.1), (0.5, 0.02), (0.8, 0.12), (0.8, 0.35), (0.45, 0.48), (0.85, 0.62), (0.85, 0.85),
         (0.5, 0.98), (0.12, 0.88)]],
    4: [[(0.6, 0.03), (0.1, 0.65), (0.92, 0.65)], [(0.68, 0.3), (0.68, 0.97)]],
    5: [[(0.85, 0.05), (0.3, 0.05)], [(0.26, 0.1), (0.22, 0.45), (0.5, 0.38), (0.78, 0.48), (0.86, 0.7),
                                      (0.7, 0.92), (0.4, 0.97), (0.13, 0.85)]],
    6: [[(0.75, 0.05), (0.45, 0.15), (0.2, 0.5), (0.18, 0.78), (0.35, 0.96), (0.65, 0.95), (0.8, 0.75),
         (0.7, 0.55), (0.45, 0.52), (0.22, 0.68)]],
    7: [[(0.1, 0.05), (0.9, 0.05)], [(0.88, 0.11), (0.42, 0.97)]],
    8: [[(0.5, 0.48), (0.2, 0.3), (0.25, 0.08), (0.5, 0.02), (0.75, 0.08), (0.8, 0.3), (0.5, 0.48), (0.15, 0.7),
         (0.2, 0.92), (0.5, 0.98), (0.8, 0.92), (0.85, 0.7), (0.5, 0.48)]],
    9: [[(0.8, 0.3), (0.65, 0.05), (0.35, 0.05), (0.2, 0.25), (0.35, 0.45), (0.65, 0.42), (0.8, 0.3), (0.75, 0.65),
         (0.55, 0.97)]],
}  # fmt: skip
CASES = ("plain", "lines", "border", "pencil", "thin-pen", "shadow")


def pen(shape: tuple[int, int], strokes, box: tuple[float, float, float, float], width: float,
        breaks: int = 0, seed: int = 0) -> np.ndarray:  # fmt: skip
    """How much of each pixel a round pen of ``width`` pixels covers, 0..1 (antialiased), drawing ``strokes``
    into ``box`` (top, left, height, width in pixels); ``breaks`` gaps of a few widths are left in the line."""
    top, left, h, w = box
    rows, cols = np.indices(shape, dtype=np.float64)
    distance = np.full(shape, np.inf)
    rng = np.random.default_rng(seed)
    for line in strokes:
        points = np.array([(left + x * w, top + y * h) for x, y in line])
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            dx, dy = x1 - x0, y1 - y0
            t = np.clip(((cols - x0) * dx + (rows - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
            d = np.hypot(cols - (x0 + t * dx), rows - (y0 + t * dy))
            for _ in range(breaks):  # the pen skips: a short stretch of this segment is left out
                at = rng.uniform(0.2, 0.8)
                d = np.where(np.abs(t - at) * np.hypot(dx, dy) < 1.5 * width, np.inf, d)
            distance = np.minimum(distance, d)
    return np.clip(width / 2 - distance + 0.5, 0.0, 1.0)


def photo(digit: int, case: str = "plain", seed: int = 0) -> np.ndarray:
    """The digit drawn in ``case`` (see the module docstring) as an 8-bit grey photo, dark ink on light paper."""
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}: choose one of {', '.join(CASES)}")
    rng = np.random.default_rng(1000 * digit + CASES.index(case) + seed)
    h, w = (1200, 900) if case == "thin-pen" else (480, 360)
    paper, ink, width, grain = 0.9, 0.12, 0.035 * h, 0.02
    if case == "pencil":
        paper, ink, width, grain = 0.72, 0.58, 0.03 * h, 0.025
    if case == "thin-pen":
        width = 0.004 * h
    top, left = h * rng.uniform(0.22, 0.3), w * rng.uniform(0.2, 0.3)
    box = (top, left, 0.45 * h, 0.5 * w)
    page = np.full((h, w), paper)
    rows, cols = np.indices((h, w), dtype=np.float64)
    if case == "lines":
        spacing = h / 9
        for k in range(1, 9):  # thin ruled lines from edge to edge, and a margin line from top to bottom
            line = k * spacing + 0.012 * (cols - w / 2)  # the page lies a little askew: 0.7 degrees
            page = np.minimum(page, paper - 0.3 * np.clip(1.2 - np.abs(rows - line), 0, 1))
        page = np.minimum(page, paper - 0.25 * np.clip(1.6 - np.abs(cols - 0.12 * w + 0.012 * (rows - h / 2)), 0, 1))
    cover = pen((h, w), STROKES[digit], box, width, breaks=2 if case == "thin-pen" else 0, seed=digit)
    page = page * (1 - cover) + ink * cover
    if case == "shadow":  # a soft-edged shadow over the bottom-right corner
        page *= 1 - 0.45 / (1 + np.exp(-((rows / h + cols / w) - 1.15) / 0.06))
    page += rng.normal(0.0, grain, (h, w))
    if case == "border":  # the dark table the page lies on, along the bottom and the left, its edge not straight
        edge = 0.86 * h + 0.03 * h * np.sin(cols / w * 3.0)
        table = (rows > edge) | (cols < 0.03 * w + 0.01 * w * np.cos(rows / h * 4.0))
        page = np.where(table, 0.12 + rng.normal(0.0, 0.03, (h, w)), page)
    return np.clip(np.rint(255 * page), 0, 255).astype(np.uint8)


def mnist_like_model(path: Path) -> Path:
    """A small model of scikit-learn's digits laid out as MNIST's, as the tests train theirs."""
    from xpnet.backend import resolve_backend
    from xpnet.data import Dataset, images, load_dataset
    from xpnet.training.loop import train
    from xpnet.training.model import Model, TrainConfig, save

    digits, layout = load_dataset("digits"), images.LAYOUTS["mnist"]

    def upscale(rows: np.ndarray) -> np.ndarray:
        return np.stack([images.prepare(np.kron(r.reshape(8, 8), np.ones((4, 4), np.uint8)), layout).ravel()
                         for r in rows])  # fmt: skip

    data = Dataset("mnist", upscale(digits.x_train), digits.y_train, upscale(digits.x_test), digits.y_test, (28, 28))
    backend = resolve_backend("cpu", "numpy")
    config = TrainConfig(hidden_layer_sizes=(64,), max_iter=12, random_state=3)
    return save(Model.of_data(config, train(backend, data, config), backend, data), path)


def measure(model: Path | None) -> list[dict[str, float | str]]:
    """Per case: distance to the plain photo's preparation, ink height, brightest pixel, right and agreeing."""
    import tempfile

    from xpnet.backend import resolve_backend
    from xpnet.data import images
    from xpnet.training.model import load

    layout, backend = images.LAYOUTS["mnist"], resolve_backend("cpu", "numpy")
    with tempfile.TemporaryDirectory() as tmp:
        net = load(model or mnist_like_model(Path(tmp) / "m.npz"), backend)
    seen = {c: np.stack([images.prepare(photo(d, c), layout) for d in range(10)]) for c in CASES}
    read = {c: net.classify(x.reshape(10, -1))[0] for c, x in seen.items()}
    rows = []
    for c in CASES:
        rows.append({
            "case": c,
            "distance": float(np.mean([distance(a, b) for a, b in zip(seen[c], seen["plain"])])),
            "stray": float(np.mean([stray(a, b) for a, b in zip(seen[c], seen["plain"])])),
            "brightest": float(seen[c].max(axis=(1, 2)).mean()),
            "right": float(np.mean(read[c] == np.arange(10))),
            "agree": float(np.mean(read[c] == read["plain"])),
        })  # fmt: skip
    return rows


def shifts(image: np.ndarray) -> list[np.ndarray]:
    """``image`` moved by up to one pixel each way (centring by mass moves by whole pixels)."""
    return [np.roll(image, (dy, dx), axis=(0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def distance(seen: np.ndarray, plain: np.ndarray) -> float:
    """Mean absolute difference in grey levels between two prepared images, the better of 9 alignments."""
    return min(float(np.abs(seen.astype(float) - s).mean()) for s in shifts(plain.astype(float)))


def stray(seen: np.ndarray, plain: np.ndarray) -> float:
    """The share of ``seen``'s ink that lies off ``plain``'s ink (and the pixel around it): lines, regions."""
    near = np.max(shifts(np.max(shifts(plain), axis=0)), axis=0) > 0  # the plain ink, 2 pixels wider
    return float(seen[~near].sum() / max(seen.sum(), 1))


def figure(path: Path, digit: int = 5) -> None:
    """Digit ``digit`` in each case: the photo (shrunk to 168 pixels high) beside the 28x28 image, 6x."""
    from PIL import Image

    from xpnet.data import images

    tiles = []
    for c in CASES:
        shot = Image.fromarray(photo(digit, c)).resize((126, 168), Image.Resampling.BOX)
        seen = np.kron(images.prepare(photo(digit, c), images.LAYOUTS["mnist"]), np.ones((6, 6), np.uint8))
        tile = np.full((168, 126 + 8 + 168), 255, np.uint8)
        tile[:, :126], tile[:, 134:] = np.asarray(shot), seen
        tiles.append(tile)
    grid = np.full((2 * 168 + 8, 3 * (302 + 12)), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, 3)
        grid[r * 176 : r * 176 + 168, c * 314 : c * 314 + 302] = tile
    Image.fromarray(grid).save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", type=Path, help="write <case>-<digit>.png for every case and digit here")
    p.add_argument("--measure", action="store_true", help="print how prepare reads each case")
    p.add_argument("--model", type=Path, default=None, help="with --measure: the model to read them with")
    p.add_argument("--figure", type=Path, default=None, metavar="PNG", help="write the figure of digit 5")
    args = p.parse_args(argv)
    if args.folder is not None:
        from PIL import Image

        args.folder.mkdir(parents=True, exist_ok=True)
        for c in CASES:
            for d in range(10):
                Image.fromarray(photo(d, c)).save(args.folder / f"{c}-{d}.png")
        print(f"{args.folder}: {len(CASES) * 10} photos")
    if args.figure is not None:
        figure(args.figure)
        print(f"wrote {args.figure}")
    if args.measure:
        print(f"{'case':<9} {'off plain':>9} {'stray':>6} {'brightest':>9} {'right':>6} {'agree':>6}")
        for r in measure(args.model):
            print(f"{r['case']:<9} {r['distance']:9.1f} {r['stray']:6.1%} {r['brightest']:9.0f} "
                  f"{r['right']:6.0%} {r['agree']:6.0%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
