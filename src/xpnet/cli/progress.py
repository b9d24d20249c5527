"""Progress bars on a terminal only: the training bar (batches, samples/s, running loss) and the download bar.

The trainer calls `EpochBar.step` after every step with the epoch's device-side loss sum. Reading that sum
waits for the device, so the bar reads it only when it redraws, at most every `MIN_INTERVAL` seconds;
in between a step costs one clock read. When the stream is not a terminal (a log file, a pipe, CI) the
bars draw nothing and the per-epoch lines stand alone.

tqdm formats each line (`tqdm.format_meter`: the bar, sizes, rates, the time left, trimmed to the
terminal's width so that a redraw never wraps); this module decides when to draw and writes the line.
tqdm's own bar object is not used: it decides inside ``update`` whether to redraw, after the caller has
handed it the text, so the loss would be read from the device at every step; and it draws when made and
again when closed, twice for a bar whose first call finishes it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from tqdm import tqdm

WIDTH = 16  # characters of the training and download bars themselves; the whole line fits in 80 columns
MIN_INTERVAL = 0.25  # seconds between redraws: four device reads a second at most
FILLED = " #"  # tqdm's ``ascii``: blank, then filled


def rate_text(rate: float) -> str:
    """A rate in at most 6 characters: 950, 12.3k, 1.23M."""
    return tqdm.format_sizeof(rate)


def columns(stream: IO[str]) -> int | None:
    """The width of the terminal ``stream`` writes to, or None when it has none (a test's stream)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both of the last two
        return None


class _Line:
    """One line redrawn in place (``\\r``) on ``stream``; `clear` erases it, ``end="\\n"`` keeps it."""

    def __init__(self, stream: IO[str]):
        self.stream, self.drawn = stream, 0  # length of the line on screen, 0 when none

    def draw(self, text: str, end: str = "") -> None:
        self.stream.write("\r" + text.ljust(self.drawn) + end)
        self.stream.flush()
        self.drawn = 0 if end else len(text)

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
            self.drawn = 0


class EpochBar:
    """Redraws one line on ``stream`` while an epoch runs; `clear` erases it before other output.

    ``read`` turns the device loss sum into a float (one device sync); ``isatty`` overrides the
    stream's own answer, ``min_interval`` `MIN_INTERVAL` and ``clock`` the time source (for tests).
    """

    def __init__(
        self,
        epochs: int,
        n_rows: int,
        batch_size: int,
        read: Callable[[Any], float],
        stream: IO[str] | None = None,
        isatty: bool | None = None,
        min_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(self.stream.isatty()) if isatty is None else isatty
        self.epochs, self.n_rows = epochs, n_rows
        self.batch = n_rows if batch_size == 0 else min(batch_size, n_rows)
        self.read, self.clock = read, clock
        self.min_interval = MIN_INTERVAL if min_interval is None else min_interval
        self.epoch = 0
        self.start = self.last = 0.0
        self.rows_at_start = 0
        self.line = _Line(self.stream)

    def step(self, epoch: int, rows_done: int, loss_sum: Any) -> None:
        """After a step of ``epoch`` that brought it to ``rows_done`` rows with loss sum ``loss_sum``."""
        if not self.enabled:
            return
        now = self.clock()
        if epoch != self.epoch:  # the first step of an epoch starts its clock (a resumed one mid-way)
            self.epoch, self.start, self.last, self.rows_at_start = epoch, now, now, rows_done
            return
        if now - self.last < self.min_interval:
            return
        self.last = now
        self.draw(rows_done, self.read(loss_sum) / rows_done, (rows_done - self.rows_at_start) / (now - self.start))

    def draw(self, rows_done: int, loss: float, rate: float) -> None:
        text = tqdm.format_meter(
            -(-rows_done // self.batch),
            -(-self.n_rows // self.batch),
            0,
            ncols=columns(self.stream),
            prefix=f"epoch {self.epoch:{len(str(self.epochs))}d}/{self.epochs}",
            ascii=FILLED,
            bar_format=f"{{desc}} [{{bar:{WIDTH}}}] {{n_fmt}}/{{total_fmt}} batches  {{samples}} samples/s  {{loss}}",
            samples=rate_text(rate),
            loss=f"loss {loss:.4f}",
        )
        self.line.draw(text)

    @property
    def drawn(self) -> int:
        """The length of the bar on screen, 0 when none."""
        return self.line.drawn

    def clear(self) -> None:
        """Erase the bar, so that the next line starts clean at the left margin."""
        self.line.clear()


class ProgressBar:
    """A one-line progress bar on a terminal; writes nothing when ``stream`` is not a terminal.

    Counts bytes (shown as 12.3M/55.0MB, with the rate and the time left), or items named by ``unit``
    (``unit="pictures"``: "1200/5000 pictures"). The line stays when the count reaches the total.
    """

    def __init__(self, label: str, stream: IO[str] | None = None, min_interval: float = 0.1, unit: str = "MB"):
        self.label, self.stream, self.unit = label, stream if stream is not None else sys.stderr, unit
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval, self.last, self.start = min_interval, 0.0, None
        self.line = _Line(self.stream)

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        finished = total is not None and done >= total
        if now - self.last < self.min_interval and not finished:
            return
        self.last = now
        if self.start is None:
            self.start = now
        if self.unit == "MB":  # a narrower bar leaves room for the rate and the time left in 80 columns
            width, counts = WIDTH, "{n_fmt}/{total_fmt}B {rate_fmt} {remaining}" if total else "{n_fmt}B {rate_fmt}"
        else:
            width = 30
            counts = "{n_fmt}/{total_fmt} {unit}" if total else "{n_fmt} {unit}"
        text = tqdm.format_meter(
            done,
            total,
            now - self.start,
            ncols=columns(self.stream),
            prefix=self.label,
            ascii=FILLED,
            unit="B" if self.unit == "MB" else self.unit,
            unit_scale=self.unit == "MB",
            bar_format=(f"{{desc}} [{{bar:{width}}}] {{percentage:3.0f}}% " if total else "{desc} ") + counts,
        )
        self.line.draw(text, "\n" if finished else "")
