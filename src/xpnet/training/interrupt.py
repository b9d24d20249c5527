"""Ctrl-C and SIGTERM during training: the first asks the run to stop after its current step, the second quits.

`StopOnSignal` is a context manager and a `loop.Callback` that pauses the run between steps. Outside the
main thread (where Python cannot install signal handlers) it installs nothing and never asks to stop.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

from .loop import Callback

SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)


class StopOnSignal(Callback):
    """While active, the first SIGINT/SIGTERM pauses the run before its next step; the next one raises
    `KeyboardInterrupt` at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def should_pause(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        message = "stopping after the current step (press Ctrl-C again to quit at once)"
        print(f"\n{signal.Signals(signum).name}: {message}", file=sys.stderr, flush=True)

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


class Terminated(KeyboardInterrupt):
    """A SIGTERM outside the window in which a run stops gracefully (before training, after the last save)."""


class TerminateLoudly:
    """While active, SIGTERM raises `Terminated`, so the command line says why it ends instead of dying
    silently with status 143; `StopOnSignal` takes over during training and gives it back afterwards."""

    def __init__(self) -> None:
        self._previous: Any = None

    @staticmethod
    def _handle(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    def __enter__(self) -> TerminateLoudly:
        term = getattr(signal, "SIGTERM", None)
        if term is not None and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(term, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
