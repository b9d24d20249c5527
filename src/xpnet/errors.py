"""Exceptions with a one-line message (each a `ValueError`, which the command line prints alone, exiting with its
``exit_status``), and the one place where lines reach the user: `escaped`, so a name stays on its line."""

import sys
from collections.abc import Sequence
from typing import TextIO


class XpnetError(ValueError):
    """A problem the user can fix, on one line (`escaped`), with ``details`` printed indented below it. A
    message about a parameter names it where ``{name}`` stands; `naming` puts another name there (a flag)."""

    exit_status = 2  # 1: a run that failed on its way

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
        self.exit_status = self.exit_status if exit_status is None else exit_status

    def naming(self, name: str) -> str:
        """The message with ``name`` where the parameter goes."""
        return escaped(self.template.replace("{name}", name) if self.parameter else self.template)


class BackendError(XpnetError):
    """The requested backend or device cannot be used here."""


class DataError(XpnetError):
    """A data set is missing, unreadable or malformed."""


class CheckpointError(XpnetError):
    """A checkpoint cannot be written, read or resumed from."""


class TrainingDiverged(XpnetError):
    """The loss or the weights became NaN or infinite (a ``ValueError``, as scikit-learn raises)."""

    exit_status = 1


class OutOfMemory(XpnetError, MemoryError):
    """The device ran out of memory while training (a ``MemoryError`` too)."""

    exit_status = 1


def one_line(exc: BaseException, *, named: bool = False, limit: int = 300) -> str:
    """A library's exception (CUDA's may span lines) as one line of at most ``limit`` chars; ``named``: by class."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if named and text != type(exc).__name__:
        text = f"{type(exc).__name__}: {text}"
    return text[:limit]


def escaped(line: str) -> str:
    """``line`` with each character that does not print as itself written as its Python escape: ``a\\nb.png``."""
    return line if line.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


def say(*lines: str, file: TextIO | None = None) -> None:
    """Print each of ``lines`` `escaped` to ``file`` (default: stdout), flushed: a pipe sees each as it comes."""
    for line in lines:
        print(escaped(line), file=sys.stdout if file is None else file, flush=True)


def listed(names: Sequence[object], limit: int = 4) -> str:
    """The first ``limit`` names, comma-separated, ending in ``...`` when there are more."""
    return ", ".join(map(str, names[:limit])) + (", ..." if len(names) > limit else "")


def class_list(classes: Sequence[object]) -> str:
    """``10 classes (0, 1, 2, 3, ...)``: how many classes, and the first names, for a message."""
    return f"{len(classes)} classes ({listed(classes)})"


def reason(e: BaseException) -> str:
    """The system's words for an `OSError` (``Permission denied``, without errno and path), else `one_line`."""
    return (e.strerror if isinstance(e, OSError) else None) or one_line(e)
