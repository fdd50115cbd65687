"""What the command-line and disk tests share: the check of a refused command, a full disk."""

from __future__ import annotations

import errno
import io

import pytest


def one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    """The single stderr line of a refused command (no traceback), which it returns."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"lmfloss {command}: error: "), lines[0]
    return lines[0]


class FullDisk(io.RawIOBase):
    """A real file that takes ``budget`` bytes, then fails every write with ENOSPC."""

    def __init__(self, path, budget: int) -> None:
        self._file = open(path, "xb", buffering=0)  # noqa: SIM115 - closed by close()
        self._budget = budget

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self._budget:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._budget -= len(data)
        return self._file.write(data)

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()
        super().close()
