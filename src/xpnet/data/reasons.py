"""`reason`: the cause of an error as a one-line message shows it."""

from __future__ import annotations

from ..errors import one_line


def reason(e: BaseException) -> str:
    """The system's words for an `OSError` ("Permission denied"), else the message on one line (`one_line`)."""
    return (e.strerror if isinstance(e, OSError) else None) or one_line(e)
