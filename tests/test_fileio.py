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
from cli_helpers import FullDisk
from lmfloss.cli import main
from lmfloss.errors import DiskFull
from lmfloss.train.checkpoint import atomic_save, load_checkpoint


@pytest.fixture
def disk_full_after(monkeypatch):
    """``disk_full_after(n)``: from now on, atomic writes fail once ``n`` bytes are written."""

    def arm(budget: int) -> None:
        def fake_open(path, mode="r", **kwargs):
            raw = FullDisk(path, budget)
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


# ---- disk_full: the one owner of "no space left" ------------------------------------------
def _raised(make):
    """The exception ``make()`` raises (with the cause/context Python gives it)."""
    try:
        make()
    except Exception as exc:
        return exc
    raise AssertionError("nothing raised")


def test_disk_full_names_the_file_of_the_oserror(tmp_path):
    error = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "fig.png"))
    full = fileio.disk_full(error)
    assert isinstance(full, DiskFull) and full.path == tmp_path / "fig.png"
    text = str(full)
    assert text.startswith(f"no space left on the device writing {str(tmp_path / 'fig.png')!r} (")
    assert " MiB free there); the file being written may be incomplete" in text
    assert "Free some space, then run the same command again" in text and "\n" not in text


def test_disk_full_finds_the_oserror_behind_a_wrapper(tmp_path):
    def torch_like():  # torch.save to a handle: RuntimeError with the OSError as its context
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos 64") from None

    full = fileio.disk_full(_raised(torch_like), tmp_path / "last.pt", kept="last.pt holds epoch 1",
                            then="lmfloss train --resume RUN")
    assert str(full).startswith(f"no space left in the disk quota writing {str(tmp_path / 'last.pt')!r} (")
    assert str(full).endswith("; last.pt holds epoch 1. Free some space, then lmfloss train --resume RUN")


def test_disk_full_knows_sqlite_full_behind_sqlalchemy():
    import sqlite3

    class OperationalError(Exception):  # stands for sqlalchemy.exc.OperationalError
        pass

    def sqlalchemy_like():
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as exc:
            raise OperationalError("(sqlite3.OperationalError) database or disk is full") from exc

    full = fileio.disk_full(_raised(sqlalchemy_like), "/nowhere/at/all/study.db")
    assert str(full).startswith("no space left on the device writing '/nowhere/at/all/study.db' (")
    # "database is locked" is another OperationalError: not about space.
    assert fileio.disk_full(sqlite3.OperationalError("database is locked")) is None


def test_disk_full_keeps_what_a_disk_full_in_the_chain_said(tmp_path):
    first = fileio.disk_full(OSError(errno.ENOSPC, "full"), tmp_path / "best.pt", kept="best.pt is intact",
                             then="rerun")

    def rewrapped():
        try:
            raise first
        except DiskFull:
            raise RuntimeError("while cleaning up") from None

    again = fileio.disk_full(_raised(rewrapped))
    assert (again.path, again.kept, again.then) == (tmp_path / "best.pt", "best.pt is intact", "rerun")


def test_disk_full_is_none_for_other_errors_and_stops_on_a_cycle():
    assert fileio.disk_full(OSError(errno.EACCES, "Permission denied", "x")) is None
    assert fileio.disk_full(ValueError("bad")) is None
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert fileio.disk_full(a) is None
    assert str(fileio.disk_full(OSError(errno.ENOSPC, "full"))).startswith(
        "no space left on the device (the writer did not name the file); ")


def test_files_written_together_are_replaced_together(tmp_path, disk_full_after):
    best, last = tmp_path / "best.pt", tmp_path / "last.pt"
    best.write_bytes(b"best 1")
    last.write_bytes(b"last 1")
    disk_full_after(1000)
    # The first file fits, the second does not: neither may change (a best.pt of an epoch
    # that last.pt does not hold would be resumed as the best of an earlier epoch).
    with pytest.raises(DiskFull, match="last.pt"):
        fileio.atomic_write_all([(best, lambda h: h.write(b"best 2")), (last, lambda h: h.write(b"x" * 5000))],
                                binary=True)
    assert best.read_bytes() == b"best 1" and last.read_bytes() == b"last 1"
    assert _leftovers(tmp_path) == []
