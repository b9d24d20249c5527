"""Progress bars on a terminal only: the training bar (batches, samples/s, running loss) and the download bar.

The trainer calls `EpochBar.step` after every step with the epoch's device-side loss sum. Reading that sum
waits for the device, so the bar reads it only when it redraws, at most every `MIN_INTERVAL` seconds;
in between a step costs one clock read. When the stream is not a terminal (a log file, a pipe, CI) the
bar draws nothing and the per-epoch lines stand alone.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

WIDTH = 16  # characters of the bar itself; the whole line fits in 80 columns
MIN_INTERVAL = 0.25  # seconds between redraws: four device reads a second at most


def rate_text(rate: float) -> str:
    """A rate in at most 6 characters: 950, 12.3k, 1.23M."""
    if rate < 1e4:
        return f"{rate:.0f}"
    return f"{rate / 1e3:.1f}k" if rate < 1e6 else f"{rate / 1e6:.2f}M"


class EpochBar:
    """Redraws one line (``\\r``) on ``stream`` while an epoch runs; `clear` erases it before other output.

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
        self.drawn = 0  # length of the line on screen, 0 when none

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
        total = -(-self.n_rows // self.batch)
        done = -(-rows_done // self.batch)
        filled = WIDTH * rows_done // self.n_rows
        width = len(str(self.epochs))
        line = (
            f"epoch {self.epoch:{width}d}/{self.epochs} [{'#' * filled:<{WIDTH}}] {done}/{total} batches  "
            f"{rate_text(rate)} samples/s  loss {loss:.4f}"
        )
        self.stream.write("\r" + line.ljust(self.drawn))
        self.stream.flush()
        self.drawn = len(line)

    def clear(self) -> None:
        """Erase the bar, so that the next line starts clean at the left margin."""
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
            self.drawn = 0


class ProgressBar:
    """A one-line progress bar on a terminal; writes nothing when ``stream`` is not a terminal.

    Counts bytes (shown in MB), or items named by ``unit`` (``unit="pictures"``: "1200/5000 pictures").
    """

    def __init__(self, label: str, stream: IO[str] | None = None, min_interval: float = 0.1, unit: str = "MB"):
        self.label, self.stream, self.unit = label, stream if stream is not None else sys.stderr, unit
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval, self.last = min_interval, 0.0

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < self.min_interval and (total is None or done < total):
            return
        self.last = now
        if self.unit == "MB":
            mb = f"{done / 1e6:6.1f}" + (f"/{total / 1e6:.1f} MB" if total else " MB")
        else:
            mb = f"{done}" + (f"/{total}" if total else "") + f" {self.unit}"
        pct = f"{100 * done / total:3.0f}% " if total else ""
        width = 30
        bar = "#" * (width * done // total) if total else ""
        self.stream.write(f"\r{self.label} [{bar:<{width}}] {pct}{mb}")
        if total is not None and done >= total:
            self.stream.write("\n")
        self.stream.flush()
