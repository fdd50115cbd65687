"""Small file helpers every area uses: atomic writes, CSV text, reading user CSV files.

Atomic writes go to a temporary file in the destination's folder, are flushed to disk and
``os.replace``-d over the destination, so a reader (another process, a resumed run, the
report) sees the old file or the new one, never half of one -- even after SIGKILL.

A full disk (ENOSPC, EDQUOT, SQLite's "database or disk is full") has one owner here,
:func:`disk_full`: it recognises the error behind any library's wrapper and makes the one
line the user sees (the file, the free space, what was kept, how to continue).
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


def _no_space_error(exc: BaseException | None) -> BaseException | None:
    """The first exception in ``exc``'s cause/context chain that means "no space left".

    That is an ``OSError`` with ``errno`` ENOSPC or EDQUOT, SQLite's "database or disk is
    full" (``sqlite3.OperationalError`` carries no errno; SQLAlchemy keeps it as the cause of
    its own ``OperationalError``), or a :class:`DiskFull` already made. ``torch.save`` to a
    file object swallows the ``OSError`` of a failed write and raises ``RuntimeError: [enforce
    fail at inline_container.cc] unexpected pos ...`` instead; the ``OSError`` survives only as
    the exception's context -- hence the walk down the chain (stopping on a cycle).
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, DiskFull):
            return exc
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return exc
        if _sqlite_full(exc):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _sqlite_full(exc: BaseException) -> bool:
    # SQLITE_FULL; Python 3.11+ also sets sqlite_errorcode (13), older ones only the message.
    return (type(exc).__module__ == "sqlite3" and type(exc).__name__ == "OperationalError"
            and (getattr(exc, "sqlite_errorcode", None) == 13 or "database or disk is full" in str(exc)))


def _free_mib(path: Path) -> float | None:
    """Free space (MiB) of the file system holding ``path`` (its nearest existing folder)."""
    folder = path.parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free / 2**20
    except OSError:
        return None


ATOMIC_KEPT = "the previous file, if any, is intact"
_RAW_KEPT = "the file being written may be incomplete; the files finished before it are kept"
DEFAULT_THEN = "run the same command again (a training run continues with lmfloss train --resume RUN_DIR)"


def disk_full(exc: BaseException, path: str | Path | None = None, *, kept: str | None = None,
              then: str | None = None) -> DiskFull | None:
    """The one-line :class:`DiskFull` for ``exc`` if it comes from a full disk, else ``None``.

    The one owner of "no space left": every writer that catches an error (``atomic_write``,
    the image cache, training, the sweep's database, the command line for everything else)
    asks this function whether it means a full disk and gets the message from it, so that a
    user sees the same line whatever was being written::

        no space left on the device writing 'FILE' (N MiB free there); KEPT. Free some space,
        then THEN

    Args:
        exc: the exception caught; its cause/context chain is searched (see
            :func:`_no_space_error`), so a library's wrapper (torch's RuntimeError,
            SQLAlchemy's OperationalError) is recognised by the ``OSError`` behind it.
        path: the file being written; default: the ``DiskFull``'s own path or the
            ``OSError``'s ``filename`` when the chain holds one.
        kept: what is left intact, e.g. "last.pt holds epoch 3" or :data:`ATOMIC_KEPT` ("the
            previous file, if any, is intact") for an atomic write. Default: that of the
            ``DiskFull`` in the chain, else "the file being written may be incomplete; the
            files finished before it are kept" (a writer that did not go through
            :func:`atomic_write`).
        then: how to continue once space is freed (default: run the same command again).

    Returns:
        A :class:`DiskFull` to raise (``raise disk_full(...) from exc``), or ``None`` when
        ``exc`` is not about space.
    """
    origin = _no_space_error(exc)
    if origin is None:
        return None
    if isinstance(origin, DiskFull):
        path = path if path is not None else origin.path
        kept = kept if kept is not None else origin.kept
        then = then if then is not None else origin.then
    elif path is None and isinstance(origin, OSError) and origin.filename not in (None, ""):
        path = os.fsdecode(origin.filename)
    kept = kept or _RAW_KEPT
    then = then or DEFAULT_THEN
    quota = (isinstance(origin, OSError) and origin.errno == errno.EDQUOT
             or isinstance(origin, DiskFull) and origin.quota)
    what = "no space left in the disk quota" if quota else "no space left on the device"
    if path is None:
        where = " (the writer did not name the file)"
    else:
        path = Path(path)
        free = _free_mib(path)
        where = f" writing {str(path)!r}" + ("" if free is None else f" ({free:.0f} MiB free there)")
    return DiskFull(f"{what}{where}; {kept}. Free some space, then {then}", path=path, kept=kept, then=then,
                    quota=bool(quota))


def atomic_write(path: str | Path, write: Callable[[IO[Any]], Any], *, binary: bool = False) -> None:
    """Call ``write(handle)`` on a temporary file, then move it over ``path`` atomically.

    Raises:
        IsADirectoryError: ``path`` is a folder (named, not the temporary file).
        DiskFull: the file system ran out of space (or quota); ``path`` is as it was.
    """
    atomic_write_all([(path, write)], binary=binary)


def atomic_write_all(files: Sequence[tuple[str | Path, Callable[[IO[Any]], Any]]], *, binary: bool = False) -> None:
    """:func:`atomic_write` for files that belong together: all are written, then all replaced.

    Every file is written to its temporary file and flushed to disk before the first one
    replaces its destination, so a full disk (or any error while writing) leaves every
    destination as it was -- not the first file new and the second old (``best.pt`` of an
    epoch that ``last.pt`` does not hold). The price: the new files coexist with the old
    ones for a moment (one more file's worth of space than writing them one by one).

    Raises:
        IsADirectoryError: a path is a folder (named, not the temporary file).
        DiskFull: the file system ran out of space (or quota); every path is as it was.
    """
    paths = [Path(path) for path, _ in files]
    for path in paths:
        if path.is_dir():
            raise IsADirectoryError(f"{str(path)!r} is a folder; expected the path of a file to write")
    temps: list[Path] = []
    current = paths[0] if paths else None
    try:
        kwargs = {} if binary else {"encoding": "utf-8", "newline": ""}
        for path, (_, write) in zip(paths, files):
            current = path
            tmp = _temp_path(path)
            temps.append(tmp)
            with open(tmp, "xb" if binary else "x", **kwargs) as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
        for path, tmp in zip(paths, temps):
            current = path
            os.replace(tmp, path)
    except BaseException as exc:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        full = disk_full(exc, current, kept=ATOMIC_KEPT)
        if full is not None:
            raise full from exc
        raise


def save_figure(fig: Any, path: str | Path, **savefig_kwargs: Any) -> Path:
    """``fig.savefig(path, **savefig_kwargs)`` written atomically (the same bytes).

    The format comes from ``path``'s suffix, as ``savefig`` takes it from a file name (the
    temporary file's name does not tell it). A full disk is a :class:`DiskFull` naming
    ``path``, and a previous figure there stays whole, never half a PNG.
    """
    path = Path(path)
    fmt = path.suffix[1:].lower()
    if not fmt:
        raise ValueError(f"figure path {str(path)!r} has no suffix; expected e.g. .png or .pdf")
    atomic_write(path, lambda handle: fig.savefig(handle, format=fmt, **savefig_kwargs), binary=True)
    return path


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


def require_file(path: str | Path, what: str, expected: str, stream_ok: bool = False) -> Path:
    """``path`` as a Path if it is a regular file -- or, with ``stream_ok`` (a file read once,
    such as a config), a pipe or device like bash's ``<(...)`` or ``/dev/null``; else
    ``FileNotFoundError``/``IsADirectoryError``/``ValueError`` naming ``what`` (e.g. "config
    file") and the ``expected`` kind of file."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} is a folder; expected {expected}")
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    if not path.is_file() and not stream_ok:  # read more than once (identity, split): a pipe would hang
        raise ValueError(f"{what} {str(path)!r} is a pipe or device, not a file; expected {expected} "
                         "(save it to a file first)")
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
    width = len(columns)
    rows = []
    try:
        for values in reader:
            line = reader.line_num
            if not values or not "".join(values).strip():
                continue  # blank line
            if len(values) > width:
                raise DataError(
                    f"{what} {str(path)!r} line {line} has {len(values)} fields but the header has "
                    f"{len(columns)}; quote values that contain commas"
                )
            if len(values) <= needed:
                absent = [c for c in required if columns.index(c) >= len(values)]
                raise DataError(f"{what} {str(path)!r} line {line} has no value for column(s) {absent}")
            # dict(zip(...)): a 1,500-line predictions.csv is read per run of a 300-run report
            row = dict(zip(columns, values if len(values) == width else values + [""] * (width - len(values))))
            row["_line"] = str(line)
            rows.append(row)
    except csv.Error as exc:
        raise DataError(f"{what} {str(path)!r} line {reader.line_num}: {exc}") from None
    return columns, rows
