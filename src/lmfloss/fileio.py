"""Small file helpers every area uses: atomic writes, CSV text, reading user CSV files.

Atomic writes go to a temporary file in the destination's folder, are flushed to disk and
``os.replace``-d over the destination, so a reader (another process, a resumed run, the
report) sees the old file or the new one, never half of one -- even after SIGKILL.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from lmfloss.errors import DataError, DiskFull

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _temp_path(path: Path) -> Path:
    # Same folder (os.replace is atomic only within a file system); opened with "x" so the
    # file gets the user's umask permissions, unlike tempfile.mkstemp's 0600.
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _no_space(exc: BaseException) -> bool:
    """``exc`` is, or was raised while handling, "no space left on device" / "quota exceeded".

    ``torch.save`` to a file object swallows the ``OSError`` of a failed write and raises
    ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos ...`` instead; the
    ``OSError`` survives only as the exception's context.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def atomic_write(path: str | Path, write: Callable[[IO[Any]], Any], *, binary: bool = False) -> None:
    """Call ``write(handle)`` on a temporary file, then move it over ``path`` atomically.

    Raises:
        IsADirectoryError: ``path`` is a folder (named, not the temporary file).
        DiskFull: the file system ran out of space (or quota); ``path`` is as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder; expected the path of a file to write")
    tmp = _temp_path(path)
    try:
        kwargs = {} if binary else {"encoding": "utf-8", "newline": ""}
        with open(tmp, "xb" if binary else "x", **kwargs) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if _no_space(exc):
            free = shutil.disk_usage(path.parent).free / 2**20
            raise DiskFull(
                f"no space left on the device writing {str(path)!r} ({free:.0f} MiB free there after "
                "removing the partial file); the previous file, if any, is intact: free some space "
                "and run again (a training run continues with --resume)",
            ) from exc
        raise


def atomic_write_text(text: str, path: str | Path) -> None:
    """Write a text file atomically (UTF-8)."""
    atomic_write(path, lambda handle: handle.write(text))


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV text (``\\n`` line ends) of a header and rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def dict_rows_text(columns: Sequence[str], rows: Sequence[dict[str, Any]], fmt: Callable[[Any], Any] | None = None) -> str:
    """CSV text of mappings; ``None`` becomes an empty cell, ``fmt`` formats the rest."""
    fmt = fmt or (lambda v: v)
    return csv_text(columns, [["" if row.get(c) is None else fmt(row[c]) for c in columns] for row in rows])


def require_file(path: str | Path, what: str, expected: str) -> Path:
    """``path`` as a Path if it is a file; else ``FileNotFoundError``/``IsADirectoryError``
    naming ``what`` (e.g. "config file") and the ``expected`` kind of file."""
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise IsADirectoryError(f"{what} {str(path)!r} is a folder; expected {expected}")
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    return path


def read_text(path: str | Path, what: str = "file") -> str:
    """The text of a UTF-8 file (a byte-order mark is dropped); other encodings are a
    ``ValueError`` naming the file and how to fix it."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{what} {str(path)!r} is not UTF-8 text (byte {exc.object[exc.start]:#x} at position {exc.start}); "
            "save it as UTF-8 (Excel: 'CSV UTF-8'; or: iconv -f cp1252 -t utf-8 FILE > NEW)"
        ) from None


def read_csv_rows(path: str | Path, required: Sequence[str] = (), what: str = "CSV file") -> tuple[list[str], list[dict[str, str]]]:
    """``(columns, rows)`` of a UTF-8 CSV; every problem is a :class:`DataError` naming the file and line.

    Column names are stripped of spaces. A row with fewer fields than the header (a value
    missing from a required column) or more (an unquoted comma) is refused with its line
    number, rather than read as ``None`` or silently truncated.

    Raises:
        FileNotFoundError: no such file.
        DataError: not UTF-8, missing required columns, or malformed rows.
    """
    path = require_file(path, what, "a CSV file")
    try:
        text = read_text(path, what)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{what} {str(path)!r} is empty; expected a header line") from None
    except csv.Error as exc:
        raise DataError(f"{what} {str(path)!r}: {exc}") from None
    columns = [c.strip() for c in header]
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(f"{what} {str(path)!r} lacks column(s) {missing}; found columns {columns}")
    needed = max((columns.index(c) for c in required), default=-1)
    rows = []
    try:
        for values in reader:
            line = reader.line_num
            if not values or not any(v.strip() for v in values):
                continue  # blank line
            if len(values) > len(columns):
                raise DataError(
                    f"{what} {str(path)!r} line {line} has {len(values)} fields but the header has "
                    f"{len(columns)}; quote values that contain commas"
                )
            if len(values) <= needed:
                absent = [c for c in required if columns.index(c) >= len(values)]
                raise DataError(f"{what} {str(path)!r} line {line} has no value for column(s) {absent}")
            rows.append({c: (values[i] if i < len(values) else "") for i, c in enumerate(columns)} | {"_line": str(line)})
    except csv.Error as exc:
        raise DataError(f"{what} {str(path)!r} line {reader.line_num}: {exc}") from None
    return columns, rows
