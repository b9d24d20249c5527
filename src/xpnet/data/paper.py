"""What is paper and what is ink in a photo or a scan (shadows, ruled lines, a table in the frame, a faint pencil),
judged by the picture's own statistics; each helper takes light ink on a darker background, at most 1024 pixels."""

import math

import numpy as np
from scipy import ndimage

NOISE, MAX_NOISE = 0.05, 0.5  # ink fainter than this share of the strokes is dropped (more on a noisy photo)
GRID, PAPER_SHARE = 10, 50  # the paper's level: blocks along the short side, the percentile of each taken
DARKEST, FLAT = 0.6, 0.04  # a block this share of the way from paper to ink is no paper; paper varying less is flat
# A ruled line lights this share of the width, reaches within this share of each side, is this thick, slants 2°.
LINE_SHARE, LINE_REACH, LINE_THICK, LINE_SLOPE = 0.6, 0.05, 0.015, 0.035
REGION_WIDTH, FRAME = 2.0, 0.1  # a region is this many strokes thick; a frame's ink stays this near the border
MIN_DIGIT = 0.001  # the ink left besides the regions must be at least this share of the picture
PIECE = np.ones((3, 3), bool)  # pixels touching, at a corner too, are one piece: a diagonal stroke is one line
STEPS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float64)  # a block's 4 neighbours
ALONG_ROWS = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], bool)  # a run: pixels joined along a row only


def on_paper(gray: np.ndarray) -> np.ndarray | None:
    """The ink of a photo or scan (light on darker paper) in [0, 1] on 0, or None: what stands out of the grain."""
    level = paper_level(gray)
    # A shadow dims ink and paper alike (light is multiplied): contrast is (paper - ink) / paper.
    x = gray if level is None else (gray - level) / np.maximum(1.0 - level, 0.05)
    # The darker quarter is paper: its 5th and 25th percentiles lie 0.97 deviations apart, the 25th 0.67 below.
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
    lit = solid(strong & (x >= min(MAX_NOISE, max(NOISE, 4.0 * spread / top))))
    x[~(lit & ~specks(lit))] = 0.0
    return x


def solid(lit: np.ndarray) -> np.ndarray:
    """``lit`` less its lone pixels (dust, sensor noise), unless that is all there is (a tiny .npy, say)."""
    padded = np.pad(lit, 1).view(np.uint8)
    rows = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]  # sums of 3 along rows, then of those along columns
    kept = lit & (rows[:-2] + rows[1:-1] + rows[2:] > 1)  # itself and a neighbour; 10 times faster than ndimage's
    return kept if kept.any() else lit


def widened(x: np.ndarray, span: float) -> np.ndarray:
    """``x`` with its strokes widened to ``span`` of the ink's longest side at least (a fine pen's line)."""
    lit = solid(x >= NOISE)
    extent = max(s.stop - s.start for s in ndimage.find_objects(lit.view(np.int8))[0])
    r = math.ceil((span * extent - stroke_width(lit)) / 2)
    return ndimage.maximum_filter(x, size=2 * r + 1, mode="constant") if r > 0 else x


def paper_level(gray: np.ndarray) -> np.ndarray | None:
    """The paper's level at each pixel (None where flat): blocks' percentiles, median-filtered, interpolated."""
    h, w = gray.shape
    b = max(4, -(-min(h, w) // GRID))  # a block's side
    nh, nw = -(-h // b), -(-w // b)
    padded = np.pad(gray, ((0, nh * b - h), (0, nw * b - w)), mode="edge")
    grid = np.percentile(padded.reshape(nh, b, nw, b).transpose(0, 2, 1, 3).reshape(nh, nw, b * b), PAPER_SHARE, 2)
    # A block nearly as light as the ink is no paper (a table): it takes its paper neighbours' mean level.
    paper = float(np.median(grid))
    dark = grid > paper + DARKEST * (float(np.percentile(gray, 99.5)) - paper)
    while dark.any() and not dark.all():  # each pass fills the dark blocks next to paper: at most nh + nw passes
        total = ndimage.correlate(np.where(dark, 0.0, grid), STEPS, mode="constant")
        count = ndimage.correlate((~dark).astype(np.float64), STEPS, mode="constant")
        fill = dark & (count > 0)
        grid, dark = np.where(fill, total / np.maximum(count, 1), grid), dark & ~fill
    grid = ndimage.median_filter(grid, size=3, mode="nearest")
    if grid.max() - grid.min() < FLAT:
        return None
    rows, cols = (
        np.stack([np.interp(np.arange(s), (np.arange(n) + 0.5) * b - 0.5, e) for e in np.eye(n)], 1)
        for n, s in ((nh, h), (nw, w))
    )
    return rows @ grid @ cols.T


def ruled_lines(lit: np.ndarray) -> np.ndarray:
    """The pixels of ``lit`` on thin lines across the picture, less where a stroke crosses or touches one."""

    def along_rows(lit: np.ndarray) -> np.ndarray:  # lines from side to side, slanting by LINE_SLOPE at most
        h, w = lit.shape
        rows, cols = np.nonzero(lit)
        drop = np.zeros_like(lit)
        thick, reach = max(2, round(LINE_THICK * h)), max(1, round(LINE_REACH * w))
        pad = math.ceil(LINE_SLOPE * w / 2) + 1
        for slope in np.linspace(-LINE_SLOPE, LINE_SLOPE, 15) if rows.size >= LINE_SHARE * w else ():
            sheared = rows - np.rint(slope * (cols - w / 2)).astype(np.int64) + pad  # the row of each pixel's line
            full, _ = ndimage.label(np.bincount(sheared, minlength=h + 2 * pad) >= LINE_SHARE * w)
            for (band,) in ndimage.find_objects(full):
                on = (sheared >= band.start - 1) & (sheared <= band.stop)  # with the line's soft edges
                if band.stop - band.start <= thick and cols[on].min() <= reach and cols[on].max() >= w - 1 - reach:
                    drop[rows[on], cols[on]] = True  # not a broad bar, and from side to side
        return drop

    def unless_beyond(drop: np.ndarray, ink: np.ndarray) -> np.ndarray:  # less where ink goes on past the line
        h = drop.shape[0]
        k = max(2, round(LINE_THICK * h)) + 2  # a line's thickness + 3 rows
        pair = np.pad(ink[:-1] & ink[1:], ((k + 1, k + 2), (0, 0)))  # pair[j + k + 1]: rows j and j + 1 both lit
        beyond = np.zeros_like(drop)  # boolean passes: 15 times faster than ndimage.maximum_filter
        for d in (*range(-k - 1, -1), *range(1, k + 1)):  # a pair wholly above the row or below it
            beyond |= pair[k + 1 + d : k + 1 + d + h]
        return drop & ~beyond

    across, down = along_rows(lit), along_rows(lit.T).T
    ink = lit & ~across & ~down  # where lines cross each other, neither is a stroke
    return unless_beyond(across, ink) | unless_beyond(down.T, ink.T).T


def border_regions(lit: np.ndarray) -> np.ndarray:
    """The pixels of ``lit`` in thick regions at the border (a table) or ink in its outer band (a frame)."""
    r = max(2, math.ceil(REGION_WIDTH * stroke_width(lit) / 2))
    core = ndimage.grey_opening(lit, size=2 * r + 1, mode="nearest")
    drop = ndimage.maximum_filter(core & ~_inner(core), size=5, mode="constant") & lit
    rest, _ = ndimage.label(lit & ~drop, PIECE)
    band = max(2, round(FRAME * min(lit.shape)))
    edge = np.concatenate([rest[0], rest[-1], rest[:, 0], rest[:, -1]])
    drop |= np.isin(rest, np.setdiff1d(edge[edge > 0], rest[band:-band, band:-band]))  # never leaves the band
    return drop if drop.any() and _inner(lit & ~drop).sum() >= MIN_DIGIT * lit.size else np.zeros_like(lit)


def specks(lit: np.ndarray) -> np.ndarray:
    """The pixels of ``lit`` in pieces smaller than half a square of stroke width: grain, dust, a shadow's edge."""
    labels, _ = ndimage.label(lit, PIECE)
    drop = lit & (np.bincount(labels.ravel()) < stroke_width(lit) ** 2 / 2)[labels]
    return drop if (lit & ~drop).any() else np.zeros_like(lit)


def _inner(lit: np.ndarray) -> np.ndarray:
    """The pixels of ``lit`` in pieces that do not touch the border (which a lit frame joins into one piece)."""
    labels, _ = ndimage.label(np.pad(lit, 1, constant_values=True), PIECE)
    return lit & (labels[1:-1, 1:-1] != labels[0, 0])


def stroke_width(lit: np.ndarray) -> float:
    """The strokes' width: the median run of lit pixels along rows and columns (of the ink off the border)."""
    inner = _inner(lit)
    ink = inner if inner.any() else lit
    lengths = np.concatenate([np.bincount(ndimage.label(m, ALONG_ROWS)[0].ravel())[1:] for m in (ink, ink.T)])
    return float(np.percentile(lengths, 50 if inner.any() else 25)) if lengths.size else 0.0
