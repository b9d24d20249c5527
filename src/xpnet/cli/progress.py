"""Progress bars, drawn on a terminal only: the training bar (batches, samples/s, loss) and the download bar.

tqdm formats each line (`tqdm.format_meter`, trimmed to the terminal's width); its bar object would read the loss,
a wait for the device, at every step: `EpochBar` reads it only when it redraws, every `MIN_INTERVAL` seconds."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from tqdm import tqdm

WIDTH = 16  # characters of the bars themselves; the whole line fits in 80 columns
MIN_INTERVAL = 0.25  # seconds between redraws of the training bar: four device reads a second at most


class _Line:
    """One line redrawn in place (``\\r``) on ``stream`` (stderr), when it is a terminal or ``isatty`` says so."""

    def __init__(self, stream: IO[str] | None = None, isatty: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", bool)()) if isatty is None else isatty
        self.drawn = 0  # length of the line on screen, 0 when none

    def draw(self, end: str = "", **meter: Any) -> None:
        """Draw `tqdm.format_meter` of ``meter``'s arguments, with the bar drawn in ``#``."""
        try:  # the terminal's width; a test's stream has none (io.UnsupportedOperation is an OSError)
            width = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            width = None
        text = tqdm.format_meter(ncols=width, ascii=" #", **meter)
        self.stream.write("\r" + text.ljust(self.drawn) + end)
        self.stream.flush()
        self.drawn = 0 if end else len(text)

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
            self.drawn = 0


class EpochBar(_Line):
    """The training bar: `step` after every step with the epoch's loss sum, which ``read`` turns into a float
    (one device sync); ``clock`` is the time source, ``line`` `_Line`'s stream and isatty."""

    def __init__(
        self, epochs: int, n_rows: int, batch_size: int, read: Callable[[Any], float], clock=time.monotonic, **line: Any
    ):
        super().__init__(**line)
        self.epochs, self.n_rows, self.read, self.clock = epochs, n_rows, read, clock
        self.batch = n_rows if batch_size == 0 else min(batch_size, n_rows)
        self.epoch, self.start, self.last, self.rows_at_start = 0, 0.0, 0.0, 0

    def step(self, epoch: int, rows_done: int, loss_sum: Any) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if epoch != self.epoch:  # the first step of an epoch starts its clock (a resumed one mid-way)
            self.epoch, self.start, self.last, self.rows_at_start = epoch, now, now, rows_done
        if now - self.last < MIN_INTERVAL or now == self.start:
            return
        self.last, rate = now, (rows_done - self.rows_at_start) / (now - self.start)
        self.draw(
            n=-(-rows_done // self.batch),
            total=-(-self.n_rows // self.batch),
            elapsed=0,
            prefix=f"epoch {self.epoch:{len(str(self.epochs))}d}/{self.epochs}",
            bar_format=f"{{desc}} [{{bar:{WIDTH}}}] {{n_fmt}}/{{total_fmt}} batches  {{samples}} samples/s  {{loss}}",
            samples=tqdm.format_sizeof(rate),  # at most 6 characters: 950, 12.3k, 1.23M
            loss=f"loss {self.read(loss_sum) / rows_done:.4f}",
        )


class ProgressBar(_Line):
    """A download bar counting bytes (12.3M/55.0MB, with the rate and the time left), or items named by
    ``unit`` (``"pictures"``: 1200/5000 pictures). The line stays when the count reaches the total."""

    def __init__(self, label: str, stream: IO[str] | None = None, min_interval: float = 0.1, unit: str = "MB"):
        super().__init__(stream)
        self.label, self.unit, self.min_interval, self.last, self.start = label, unit, min_interval, 0.0, None

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if not self.enabled or (now - self.last < self.min_interval and not finished):
            return
        self.last, self.start = now, self.start or now
        if self.unit == "MB":  # a narrower bar leaves room for the rate and the time left in 80 columns
            width, counts = WIDTH, "{n_fmt}/{total_fmt}B {rate_fmt} {remaining}" if total else "{n_fmt}B {rate_fmt}"
        else:
            width, counts = 30, "{n_fmt}/{total_fmt} {unit}" if total else "{n_fmt} {unit}"
        self.draw(
            "\n" if finished else "",
            n=done,
            total=total,
            elapsed=now - self.start,
            prefix=self.label,
            unit="B" if self.unit == "MB" else self.unit,
            unit_scale=self.unit == "MB",
            bar_format=(f"{{desc}} [{{bar:{width}}}] {{percentage:3.0f}}% " if total else "{desc} ") + counts,
        )
