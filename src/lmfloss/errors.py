"""Exceptions that mean "the user asked for something wrong", not "lmfloss has a bug".

The library raises the built-in ``ValueError`` / ``FileNotFoundError`` with a message
naming the value received and what was expected; the command line turns every
exception in :data:`USER_ERRORS` into one line on stderr (``--debug`` for the traceback).
"""

from __future__ import annotations


class LmflossError(Exception):
    """A user-facing error that is neither a bad value nor a missing file (e.g. a finished run)."""


class DataError(LmflossError, ValueError):
    """Data on disk does not match what an adapter expects (missing columns, corrupt images...)."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    LmflossError,
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    FileExistsError,
    PermissionError,
)
