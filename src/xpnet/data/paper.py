"""What is paper and what is ink in a photo or a scan (the pictures `images.ink` does not find clean).

A phone photo of a digit on paper holds more than the digit: the paper's level changes under a shadow,
ruled paper has thin lines from edge to edge, the frame catches a dark table, a pencil is faint. Each
helper here takes light ink on a dark background (`images.ink` has inverted dark-on-light pictures) and
uses the picture's own statistics, so a faint pencil and a black marker come out alike:

- `on_paper`: the ink of such a picture, by the helpers below;
- `paper_level`: the paper's level at each pixel, from the median of each block of a grid, so that a shadow
  is measured where it lies, not taken as ink (a table is no paper: it stays for `border_regions`);
- `ruled_lines`: the pixels of thin straight lines (nearly horizontal or vertical) that run across the whole
  picture, less where a stroke crosses or touches them;
- `border_regions`: the pixels of broad regions that touch the border (a table, a dark frame), thicker
  than the strokes, which stay even when they touch such a region;
- `specks`, `stroke_width`, `widened`: dust, the strokes' width in pixels, and strokes made wide enough.

Everything is NumPy on the host, on pictures `images.shrink` has made at most 1024 pixels a side.
"""

from __future__ import annotations

import math

import numpy as np

# Ink fainter than this share of the strokes is dropped: JPEG ringing, scanner dust. More is dropped on a
# noisy photo (see `on_paper`), never more than MAX_NOISE.
NOISE = 0.05
MAX_NOISE = 0.5
GRID = 10  # blocks along the picture's short side for the paper's level
PAPER_SHARE = 50  # percentile of a block taken as its paper: its median (ink, light here, is the minority)
DARKEST = 0.6  # a block whose level is this share of the way from the paper's to the ink's is no paper
STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))
FLAT = 0.04  # a paper level varying less than this over the picture is taken as flat (one level)
LINE_SHARE = 0.6  # a line lights at least this share of the picture's width (or height) ...
LINE_REACH = 0.05  # ... from within this share of each side ...
LINE_THICK = 0.015  # ... and is at most this share of the height (or width) thick
LINE_SLOPE = 0.035  # lines may slant by up to this much (2 degrees): a photo is rarely square to the page
REGION_WIDTH = 2.0  # a region is thicker than this many stroke widths
FRAME = 0.1  # ink that touches the border and stays within this share of it is the frame's
MIN_DIGIT = 0.001  # the ink left besides the regions must be at least this share of the picture


def on_paper(gray: np.ndarray) -> np.ndarray | None:
    """The ink of a photo or scan (light ink on darker paper) in [0, 1] on 0, by the picture's own contrast:
    against the paper's level where it lies (a shadow), what stands out of the paper's grain by 4 of its
    deviations, less ruled lines, regions touching the border and specks, scaled so its strokes reach 1.
    None when nothing stands out."""
    level = paper_level(gray)
    # A shadow dims the ink as much as the paper (light is multiplied): the ink's contrast is measured
    # against the paper's level where it lies, (paper - ink) / paper in the picture before it was inverted.
    x = gray if level is None else (gray - level) / np.maximum(1.0 - level, 0.05)
    # The paper's level and grain, from the darker quarter of the picture, which is paper whatever else the
    # picture holds (ink, a table, lines: all lighter here) as long as paper is most of it: its 5th and 25th
    # percentiles lie 0.97 standard deviations apart, and the 25th 0.67 below its middle. 4 deviations is
    # grain; a clean digital image has none and keeps even its faintest ink.
    q05, q25 = np.percentile(x, [5, 25])
    spread = float(q25 - q05) / 0.97
    x = x - (q25 + 0.674 * spread)
    strong = x > max(4.0 * spread, 0.02)
    strong &= ~ruled_lines(strong)
    strong &= ~border_regions(strong)
    if not strong.any():
        return None
    top = float(np.percentile(x[strong], 90))  # the strokes' level, not a speck's nor the table's
    x = np.clip(x / top, 0.0, 1.0)
    lit = strong & (x >= min(MAX_NOISE, max(NOISE, 4.0 * spread / top)))
    lit = solid(lit)
    lit &= ~specks(lit)
    x[~lit] = 0.0
    return x


def solid(lit: np.ndarray) -> np.ndarray:
    """``lit`` less its specks: a lit pixel with no lit neighbour is dust or sensor noise, strokes are thicker.
    A lone pixel is kept when it is all there is (a tiny .npy, say)."""
    h, w = lit.shape
    padded = np.pad(lit, 1)
    near = np.zeros_like(lit)  # any of the 8 neighbours lit: boolean passes, not a count in int64 (serve's speed)
    for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)):
        near |= padded[1 + dy : h + 1 + dy, 1 + dx : w + 1 + dx]
    speck = lit & ~near
    return lit & ~speck if speck.sum() < lit.sum() else lit


def widened(x: np.ndarray, span: float) -> np.ndarray:
    """``x`` with its strokes widened to at least ``span`` of the ink's longest side (a fine pen's line,
    shrunk 30 times to a model's image, would be a fraction of a pixel: fainter and thinner than any digit's)."""
    lit = solid(x >= NOISE)
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    longest = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    r = math.ceil((span * longest - stroke_width(lit)) / 2)
    return widen(x, r) if r > 0 else x


def paper_level(gray: np.ndarray) -> np.ndarray | None:
    """The paper's level at each pixel of ``gray`` (light ink on a darker paper), or None where the paper
    is flat: each block's `PAPER_SHARE` percentile, a 3x3 median over blocks (a block filled by a stroke
    is an outlier among paper), interpolated bilinearly between block centres."""
    h, w = gray.shape
    b = max(4, -(-min(h, w) // GRID))
    nh, nw = -(-h // b), -(-w // b)
    padded = np.pad(gray, ((0, nh * b - h), (0, nw * b - w)), mode="edge")
    blocks = padded.reshape(nh, b, nw, b).transpose(0, 2, 1, 3).reshape(nh, nw, b * b)
    grid = np.percentile(blocks, PAPER_SHARE, axis=2)
    # A block nearly as light as the ink is no paper (a table, a dark frame): it takes its neighbours' level,
    # and stays ink for `border_regions` to find. A shadow, through which the ink still shows, is paper.
    paper = float(np.median(grid))
    dark = grid > paper + DARKEST * (float(np.percentile(gray, 99.5)) - paper)
    for _ in range(nh + nw):
        if not dark.any() or dark.all():
            break
        known = np.pad(np.where(dark, 0.0, grid), 1), np.pad(~dark, 1).astype(np.float64)
        total, count = (sum(a[1 + dy : 1 + dy + nh, 1 + dx : 1 + dx + nw] for dy, dx in STEPS) for a in known)
        fill = dark & (count > 0)
        grid, dark = np.where(fill, total / np.maximum(count, 1), grid), dark & ~fill
    around = np.pad(grid, 1, mode="edge")
    grid = np.median(np.stack([around[i : i + nh, j : j + nw] for i in range(3) for j in range(3)]), axis=0)
    if grid.max() - grid.min() < FLAT:
        return None
    return _between(nh, b, h) @ grid @ _between(nw, b, w).T  # bilinear between block centres, flat beyond


def _between(n: int, b: int, size: int) -> np.ndarray:
    """(size, n) weights that interpolate linearly between the centres of n blocks of b pixels."""
    centres = (np.arange(n) + 0.5) * b - 0.5
    return np.stack([np.interp(np.arange(size), centres, e) for e in np.eye(n)], axis=1)


def ruled_lines(lit: np.ndarray) -> np.ndarray:
    """The pixels of ``lit`` on thin straight lines across the whole picture, less those where a stroke of
    the digit crosses or touches a line (its ink goes on beyond the line, two pixels at least)."""
    h, w = lit.shape
    across, down = _lines_along_rows(lit), _lines_along_rows(lit.T).T
    ink = lit & ~across & ~down  # where lines cross each other, neither is a stroke
    return _unless_beyond(across, ink, max(2, round(LINE_THICK * h))) | _unless_beyond(
        down.T, ink.T, max(2, round(LINE_THICK * w))).T  # fmt: skip


def _unless_beyond(drop: np.ndarray, ink: np.ndarray, thick: int) -> np.ndarray:
    """``drop`` less the pixels with two lit pixels of ``ink`` in a row, just above or below the line."""
    h = drop.shape[0]
    beyond = np.zeros_like(drop)
    pair = ink[:-1] & ink[1:]  # pair[j]: rows j and j + 1 both lit
    for k in range(1, thick + 3):
        beyond[k + 1 :] |= pair[: h - k - 1]  # rows i - k - 1 and i - k, above row i ...
        beyond[: h - k - 1] |= pair[k:]  # ... or rows i + k and i + k + 1, below it
    return drop & ~beyond


def _lines_along_rows(lit: np.ndarray) -> np.ndarray:
    """The pixels on thin lines that run from side to side along the rows (slanting by `LINE_SLOPE` at most)."""
    h, w = lit.shape
    rows, cols = np.nonzero(lit)
    drop = np.zeros_like(lit)
    if rows.size < LINE_SHARE * w:
        return drop
    thick, reach = max(2, round(LINE_THICK * h)), max(1, round(LINE_REACH * w))
    pad = math.ceil(LINE_SLOPE * w / 2) + 1
    for slope in np.linspace(-LINE_SLOPE, LINE_SLOPE, 15):
        sheared = rows - np.rint(slope * (cols - w / 2)).astype(np.int64) + pad  # the row each pixel's line has
        full = np.flatnonzero(np.bincount(sheared, minlength=h + 2 * pad) >= LINE_SHARE * w)
        for band in np.split(full, np.flatnonzero(np.diff(full) > 1) + 1) if full.size else []:
            if band.size > thick:
                continue  # a broad bar, not a ruled line
            on = (sheared >= band[0] - 1) & (sheared <= band[-1] + 1)  # with the line's soft edges
            if cols[on].min() <= reach and cols[on].max() >= w - 1 - reach:
                drop[rows[on], cols[on]] = True
    return drop


def border_regions(lit: np.ndarray) -> np.ndarray:
    """The pixels of ``lit`` in regions thicker than `REGION_WIDTH` strokes that touch the border, and of
    ink that touches the border and stays within its outer `FRAME` (the edge of a dark frame), when ink away
    from the border is left besides them; the strokes of a digit that touches such a region stay."""
    width = stroke_width(lit)
    r = max(2, math.ceil(REGION_WIDTH * width / 2))
    core = _grow(~_grow(~lit, r), r)  # opening: what a (2r+1)-square fits in
    none = np.zeros_like(lit)
    labels, _ = components(core)
    regions = np.isin(labels, _touching(labels))
    drop = _grow(regions, 2) & lit
    h, w = lit.shape
    band = max(2, round(FRAME * min(h, w)))
    rest, _ = components(lit & ~drop)
    inside = np.ones_like(lit)
    inside[band:-band, band:-band] = False
    edge = _touching(rest)
    framed = edge[[bool(np.all(inside[rest == k])) for k in edge]] if edge.size else edge
    drop |= np.isin(rest, framed)
    if not drop.any():
        return none
    rest, _ = components(lit & ~drop)
    inner = np.setdiff1d(np.unique(rest), np.unique(np.concatenate([rest[0], rest[-1], rest[:, 0], rest[:, -1]])))
    if np.isin(rest, inner[inner > 0]).sum() < MIN_DIGIT * lit.size:
        return none  # nothing would be left but what touches the border: a garment filling the frame, say
    return drop


def specks(lit: np.ndarray) -> np.ndarray:
    """The pixels of ``lit`` in pieces smaller than half a square of stroke width: grain, dust and what a
    shadow's edge leaves, never a stroke (a broken line's pieces are longer than they are wide)."""
    labels, n = components(lit)
    area = np.bincount(labels.ravel(), minlength=n + 1)
    small = np.flatnonzero(area < stroke_width(lit) ** 2 / 2)
    drop = np.isin(labels, small[small > 0])
    return drop if (lit & ~drop).any() else np.zeros_like(lit)


def _touching(labels: np.ndarray) -> np.ndarray:
    """The labels (> 0) of the components that touch the border of the picture."""
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return edge[edge > 0]


def widen(x: np.ndarray, r: int) -> np.ndarray:
    """``x`` with every pixel the brightest of the (2r+1)-square around it: strokes r pixels wider each side."""
    out = x
    for axis in (0, 1):
        padded = np.pad(out, [(r, r) if a == axis else (0, 0) for a in (0, 1)])
        n = out.shape[axis]
        brightest = np.take(padded, np.arange(n), axis=axis)
        for k in range(1, 2 * r + 1):
            brightest = np.maximum(brightest, np.take(padded, np.arange(k, k + n), axis=axis))
        out = brightest
    return out


def stroke_width(lit: np.ndarray) -> float:
    """The strokes' width in pixels: the median length of the runs of lit pixels along rows and columns, of
    the ink that does not touch the border when there is some (a region there is no stroke); else, of all
    the ink, the lower quartile (a digit touching a region has more, and shorter, runs than the region)."""
    labels, _ = components(lit)
    inner = lit & ~np.isin(labels, _touching(labels))
    ink = inner if inner.any() else lit
    lengths = np.concatenate([_runs(ink)[2] - _runs(ink)[1], _runs(ink.T)[2] - _runs(ink.T)[1]])
    return float(np.percentile(lengths, 50 if inner.any() else 25)) if lengths.size else 0.0


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, start, stop) of every run of True along the rows of ``mask``, in reading order."""
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    starts, stops = np.argwhere(edges == 1), np.argwhere(edges == -1)
    return starts[:, 0], starts[:, 1], stops[:, 1]


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of ``mask``: (labels 1..n, 0 off the mask; n), by joining runs of adjacent rows."""
    row, start, stop = _runs(mask)
    parent = list(range(row.size))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = np.searchsorted(row, np.arange(mask.shape[0] + 1))  # runs of row y: first[y]..first[y + 1]
    for y in range(1, mask.shape[0]):
        a, a_end, b, b_end = first[y - 1], first[y], first[y], first[y + 1]
        while a < a_end and b < b_end:  # two sorted lists of runs: touching (diagonals too) ones join
            if start[a] <= stop[b] and start[b] <= stop[a]:
                parent[root(a)] = root(b)
            if stop[a] < stop[b]:
                a += 1
            else:
                b += 1
    roots = np.array([root(i) for i in range(row.size)], dtype=np.int64)
    ids, label_of_run = np.unique(roots, return_inverse=True)
    labels = np.zeros(mask.shape, dtype=np.int64)
    lengths = stop - start
    flat = np.repeat(row * mask.shape[1] + start, lengths) + (np.arange(lengths.sum()) - np.repeat(
        np.cumsum(lengths) - lengths, lengths))  # fmt: skip
    labels.ravel()[flat] = np.repeat(label_of_run + 1, lengths)
    return labels, int(ids.size)


def _grow(mask: np.ndarray, r: int, outside: bool = False) -> np.ndarray:
    """``mask`` dilated by a (2r+1)-square; pixels beyond the picture count as ``outside``."""
    out = mask
    for axis in (0, 1):
        padded = np.pad(out, [(r, r) if a == axis else (0, 0) for a in (0, 1)], constant_values=outside)
        sums = np.cumsum(padded, axis=axis, dtype=np.int64)
        sums = np.concatenate([np.zeros_like(np.take(sums, [0], axis=axis)), sums], axis=axis)
        n = out.shape[axis]
        window = np.take(sums, np.arange(2 * r + 1, n + 2 * r + 1), axis=axis) - np.take(sums, np.arange(n), axis=axis)
        out = window > 0
    return out
