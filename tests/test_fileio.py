"""Atomic writes when the disk fills up: a one-line error, the previous file intact.

A full disk is simulated by a file whose raw writes fail with ENOSPC past a byte budget,
as ``write(2)`` does on a full file system.
"""

from __future__ import annotations

import errno
import io

import pytest
import torch

import lmfloss.fileio as fileio
from lmfloss.cli import main
from lmfloss.errors import DiskFull
from lmfloss.train.checkpoint import atomic_save, load_checkpoint


class _FullDisk(io.RawIOBase):
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


@pytest.fixture
def disk_full_after(monkeypatch):
    """``disk_full_after(n)``: from now on, atomic writes fail once ``n`` bytes are written."""

    def arm(budget: int) -> None:
        def fake_open(path, mode="r", **kwargs):
            raw = _FullDisk(path, budget)
            if "b" in mode:
                return io.BufferedWriter(raw)
            return io.TextIOWrapper(io.BufferedWriter(raw), **kwargs)

        monkeypatch.setattr(fileio, "open", fake_open, raising=False)

    return arm


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_checkpoint_on_a_full_disk_keeps_the_previous_one(tmp_path, disk_full_after):
    path = tmp_path / "last.pt"
    atomic_save({"model": {}, "epoch": 1, "w": torch.arange(10.0)}, path)
    disk_full_after(50_000)
    # torch.save reports a failed write as "RuntimeError: ... unexpected pos ..."; the
    # OSError behind it must reach the user as what it is.
    with pytest.raises(DiskFull, match="no space left on the device writing .*last.pt") as info:
        atomic_save({"epoch": 2, "w": torch.zeros(100_000)}, path)
    assert "--resume" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.arange(10.0))
    assert _leftovers(tmp_path) == []


def test_text_file_on_a_full_disk(tmp_path, disk_full_after):
    path = tmp_path / "report.json"
    path.write_text("old")
    disk_full_after(10)
    with pytest.raises(DiskFull, match="report.json"):
        fileio.atomic_write_text("x" * 100_000, path)
    assert path.read_text() == "old" and _leftovers(tmp_path) == []


def test_other_write_errors_pass_through_and_leave_nothing(tmp_path):
    def fail(handle):
        handle.write("partial")
        raise ValueError("bad value")

    with pytest.raises(ValueError, match="bad value"):
        fileio.atomic_write(tmp_path / "out.csv", fail)
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_says_it_in_one_line(tmp_path, disk_full_after, capsys):
    disk_full_after(100)
    out = tmp_path / "manifest.csv"
    assert main(["split", "--dataset", "synthetic", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lmfloss split: error: no space left on the device writing")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_a_folder_given_as_the_file_is_named(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    assert main(["split", "--dataset", "synthetic", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == f"lmfloss split: error: {str(tmp_path / 'out')!r} is a folder; expected the path of a file to write\n"
    assert list((tmp_path / "out").iterdir()) == [] and _leftovers(tmp_path) == []
