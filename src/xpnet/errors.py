"""Exceptions that carry a one-line message meant for the user, and the one place where lines reach the user.

The command-line tools print such a message alone (no traceback) and exit with its ``exit_status``:
2 for a bad request (flags, files), 1 for a run that failed on its way (divergence, out of memory).
Every line they print, error or report, passes through `escaped` (by `say`, or `cli.run` for an error), so a
file or class name holding a newline or a terminal escape stays on its line and cannot pass for other text.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO


class XpnetError(Exception):
    """A problem the user can fix; its message names the problem and the fix, on one line: the names in it are
    `escaped` here, once. ``details`` (a missing data set: what each mirror said, where to put which files)
    are lines of their own, which the command-line tools print indented below the message.

    A message about one of the library's parameters names it where ``{name}`` stands, and `naming` puts
    another name there: the command line's flag for that parameter."""

    exit_status = 2

    def __init__(
        self,
        message: str = "",
        *,
        details: Sequence[str] = (),
        exit_status: int | None = None,
        parameter: str | None = None,
    ):
        self.template, self.parameter = message, parameter
        self.message, self.details = self.naming(parameter or ""), tuple(escaped(line) for line in details)
        super().__init__("\n".join((self.message, *self.details)))
        if exit_status is not None:
            self.exit_status = exit_status

    def naming(self, name: str) -> str:
        """The message with ``name`` where the parameter goes."""
        return escaped(self.template.replace("{name}", name) if self.parameter else self.template)


class BackendError(XpnetError):
    """The requested backend or device cannot be used here."""


class DataError(XpnetError):
    """A data set is missing, unreadable or malformed."""


class CheckpointError(XpnetError):
    """A checkpoint cannot be written, read or resumed from."""


class TrainingDiverged(XpnetError, ValueError):
    """The loss or the weights became NaN or infinite (a ``ValueError``, as scikit-learn raises)."""

    exit_status = 1


class OutOfMemory(XpnetError):
    """The device ran out of memory while training."""

    exit_status = 1


def one_line(exc: BaseException, *, named: bool = False, limit: int = 300) -> str:
    """A library's exception as one line of at most ``limit`` characters (``named``: prefixed by its class).

    Messages from CUDA, Pillow or zlib can span lines; a user-facing error must not.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    if named and text != type(exc).__name__:
        text = f"{type(exc).__name__}: {text}"
    return text[:limit]


def escaped(line: str) -> str:
    """``line`` with each character that does not print as itself (a newline, a tab, an escape, a byte the file
    system could not decode) written as its Python escape: ``a\\nb.png``."""
    return line if line.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


def say(*lines: str, file: TextIO | None = None) -> None:
    """Print each of ``lines`` (each one line, names and all) `escaped`, to ``file`` (default: stdout)."""
    out = sys.stdout if file is None else file
    for line in lines:
        print(escaped(line), file=out, flush=True)  # a reader of a pipe sees each line as it happens


def listed(names: Sequence[object], limit: int = 4) -> str:
    """The first ``limit`` names, comma-separated, ending in ``...`` when there are more."""
    return ", ".join(map(str, names[:limit])) + (", ..." if len(names) > limit else "")


def class_list(classes: Sequence[object]) -> str:
    """``10 classes (0, 1, 2, 3, ...)``: how many classes, and the first names, for a message."""
    return f"{len(classes)} classes ({listed(classes)})"


def reason(e: BaseException) -> str:
    """The system's words for an `OSError` (``Permission denied``, without the errno and path Python adds),
    else the message on one line (`one_line`)."""
    return (e.strerror if isinstance(e, OSError) else None) or one_line(e)
