"""Exceptions that mean "the user asked for something wrong", not "lmfloss has a bug".

The library raises the built-in ``ValueError`` / ``FileNotFoundError`` with a message
naming the value received and what was expected; the command line turns every
exception in :data:`USER_ERRORS` into one line on stderr (``--debug`` for the traceback).
"""

from __future__ import annotations

from pathlib import Path


class LmflossError(Exception):
    """A user-facing error that is neither a bad value nor a missing file (e.g. a finished run)."""


class DataError(LmflossError, ValueError):
    """Data on disk does not match what an adapter expects (missing columns, corrupt images...)."""


class DiskFull(LmflossError):
    """The file system holding an output is full (or over quota); the file being written is
    left as it was before the write (writes are atomic), so the work can resume once space
    is freed. Made by :func:`lmfloss.fileio.disk_full`, which owns the message.

    Attributes:
        path: the file being written (``None`` when the failing writer did not name it).
        kept: what was left intact (e.g. "last.pt holds epoch 3").
        then: how to continue once space is freed.
        quota: the user's disk quota, not the device, is full (EDQUOT).
    """

    def __init__(self, message: str, *, path: Path | None = None, kept: str = "", then: str = "",
                 quota: bool = False) -> None:
        super().__init__(message)
        self.path = path
        self.kept = kept
        self.then = then
        self.quota = quota


class Interrupted(LmflossError):
    """SIGINT/SIGTERM stopped the work at a safe point; what was finished is kept.

    Attributes:
        signal_number: the signal that stopped it (``signal.SIGINT`` or ``SIGTERM``); the
            command line exits with ``128 + signal_number`` (130, 143), as a shell does.
    """

    def __init__(self, message: str, signal_number: int = 2) -> None:
        super().__init__(message)
        self.signal_number = signal_number


class TrainingInterrupted(Interrupted):
    """SIGINT/SIGTERM stopped a training run after the current step; ``last.pt`` holds the
    last finished epoch."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    LmflossError,
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    FileExistsError,
    PermissionError,
)
