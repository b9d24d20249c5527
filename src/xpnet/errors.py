"""Exceptions that carry a one-line message meant for the user.

The command-line tools print such a message alone (no traceback) and exit with status 2.
"""


class XpnetError(Exception):
    """A problem the user can fix; its message names the problem and the fix."""


class BackendError(XpnetError):
    """The requested backend or device cannot be used here."""


class DataError(XpnetError):
    """A data set is missing, unreadable or malformed."""
