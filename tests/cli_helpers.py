"""What every command-line test checks about a refused command."""

from __future__ import annotations

import pytest


def one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    """The single stderr line of a refused command (no traceback), which it returns."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"lmfloss {command}: error: "), lines[0]
    return lines[0]
