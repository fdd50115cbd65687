"""The on-disk image cache: decoded, resized ``uint8 [N, 3, S, S]`` arrays, memory-mapped.

Decoding a 600x450 JPEG and resizing it every epoch starves a GPU, so every image of a
split is decoded and resized once (the paper: 224x224) into a ``.npy`` file that later
epochs and runs memory-map. The file name carries a hash of the split's records (ids,
paths, file sizes and modification times) and the image size, so a changed manifest or
image gets a new cache. Building writes to a temporary file in the same folder and
renames it atomically, so concurrent runs never read a half-written cache. Images are
stored channels-first so that one item is one contiguous block, ready for ``torch``.

Killed work leaves nothing behind: the temporary file's name carries the builder's host
and process id, and the next build in the folder removes those whose process is gone
(never a live concurrent builder's). Decoding processes end with the process that
started them, even after ``kill -9``. The file is allocated before it is filled, so a full
disk is one line naming the cache (:func:`lmfloss.fileio.disk_full`), not a ``SIGBUS``
on the memory map.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import logging
import multiprocessing
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lmfloss.data.images import read_image
from lmfloss.data.records import Record
from lmfloss.errors import DataError, DiskFull, Interrupted
from lmfloss.fileio import atomic_write_text, disk_full

logger = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when the decoding/resizing/layout changes (3: the intensity rules)


def default_cache_dir(root: Path | None) -> Path:
    """``$LMFLOSS_CACHE_DIR``, else ``<root>/.lmfloss-cache`` if writable, else ``~/.cache/lmfloss``."""
    env = os.environ.get("LMFLOSS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if root is not None and root.is_dir() and os.access(root, os.W_OK):
        return root / ".lmfloss-cache"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lmfloss"


def cache_key(name: str, records: Sequence[Record], image_size: int, intensity: str = "dtype") -> str:
    """A hash of everything the cached pixels depend on."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{name}|{image_size}|{intensity}".encode())
    for record in records:
        stat = os.stat(record.path) if record.path else None
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}" if stat else "-"
        digest.update(f"\n{record.id}|{record.path}|{stamp}".encode())
    return digest.hexdigest()[:16]


def cache_paths(cache_dir: Path, name: str, split: str, image_size: int, key: str) -> tuple[Path, Path]:
    """``(images .npy, list of skipped ids .txt)`` for one split."""
    stem = f"{name}-{split}-{image_size}px-{key}"
    return cache_dir / f"{stem}.npy", cache_dir / f"{stem}.skipped.txt"


# ``.<cache stem>.<host>.<pid>.<8 hex>.npy.part``: whose it is, so a later build can tell a
# killed builder's file (its process is gone) from a live concurrent one's.
_PART = re.compile(r"^\.(?P<stem>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.npy\.part$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "localhost"


def part_path(images_path: Path) -> Path:
    """The temporary file a build of ``images_path`` writes (same folder, owner in the name)."""
    return images_path.with_name(f".{images_path.stem}.{_host()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.npy.part")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    try:  # Linux: a killed process its parent has not reaped yet is a zombie, not a builder
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_parts(folder: Path) -> list[Path]:
    """Remove the temporary files of cache builds on this host whose process is gone
    (killed by ``kill -9``, out of memory, a power cut) from ``folder``; return them.

    A file of another host (a cache folder on a network drive) or of a live process is
    kept: its builder may still be writing it.
    """
    host, removed = _host(), []
    for path in folder.glob(".*.npy.part"):
        match = _PART.match(path.name)
        if match and match["host"] == host and not _process_alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        logger.info("removed %d partial image cache file(s) left in %s by killed runs", len(removed), folder)
    return removed


def _allocate(path: Path) -> None:
    """Reserve the disk blocks of ``path`` (``posix_fallocate``): a full disk is an
    ``OSError`` ENOSPC here, not a ``SIGBUS`` when a memory-mapped page is first written."""
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows: the memory map finds out
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
    finally:
        os.close(fd)


def _end_with_parent(parent_pid: int, start_method: str) -> None:
    """Initializer of a decoding process: end when the process that started it dies.

    Linux: the kernel sends ``SIGKILL`` when the parent dies (``PR_SET_PDEATHSIG``).
    Everywhere: a daemon thread exits the process once its parent is gone (re-parented, or
    the parent's sentinel closed), so no decoder outlives a ``kill -9`` of the command.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    watched = os.getppid()
    parent = multiprocessing.parent_process()

    def gone() -> bool:
        return os.getppid() != watched or (parent is not None and not parent.is_alive())

    # fork and spawn children are the command's own; a forkserver's children are the server's.
    if (start_method in ("fork", "spawn") and watched != parent_pid) or gone():
        os._exit(1)  # the command died before this process got here

    def watch() -> None:
        while not gone():
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="lmfloss-parent-watch", daemon=True).start()


def _fill_rows(
    array_path: str, rows: Sequence[tuple[int, str]], image_size: int, intensity: str = "dtype"
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Decode ``(row, image path)`` pairs into the ``.npy`` at ``array_path``.

    Runs in the main process or in a worker process (it opens its own memory map).
    Returns ``(failures, notes)``: ``(row, error message)`` for every image that could not
    be decoded and ``(row, note)`` for every image the intensity rule left nearly constant.
    """
    array = np.load(array_path, mmap_mode="r+")
    failures, notes = [], []
    for row, path in rows:
        image_notes: list[str] = []
        try:
            array[row] = read_image(path, image_size, intensity, image_notes).transpose(2, 0, 1)
        except DataError as exc:
            array[row] = 0
            failures.append((row, str(exc)))
        notes += [(row, note) for note in image_notes]
    array.flush()
    return failures, notes


ImageNotes = list[tuple[str, str]]  # (image path, what the intensity rule did to it)


def warn_intensity_notes(notes: ImageNotes, intensity: str) -> None:
    """One warning for a dataset's images the intensity rule left nearly constant (or whose
    values fell outside their type's range): the count, the first image and a hint.

    The caller that builds a dataset's splits gathers their notes (``dataset.intensity_notes``)
    and warns once for them all, not once per split.
    """
    if not notes:
        return
    paths = sorted({path for path, _ in notes})
    first = paths[0]
    kind = next(note for path, note in notes if path == first)
    wide = any("16/32-bit or float" in note or "outside" in note for _, note in notes)
    if intensity == "dtype" and wide:
        hint = "16-bit files holding 12-bit values, or floats outside [0, 1]? try --intensity minmax"
    else:
        hint = "are these images blank or nearly so? check them"
    logger.warning("%d image(s) are nearly constant or out of range after the '%s' intensity rule (first: %s: %s); %s",
                   len(paths), intensity, first, kind, hint)


def notes_path(images_path: Path) -> Path:
    """Where the intensity notes of a cache's images are kept (``<cache stem>.notes.json``),
    so a run that reuses the cache warns as the one that built it did."""
    return images_path.with_name(f"{images_path.stem}.notes.json")


def read_notes(images_path: Path) -> ImageNotes:
    """The intensity notes kept with a cache (none for a cache without them)."""
    try:
        return [(str(path), str(note)) for path, note in json.loads(notes_path(images_path).read_text())]
    except (OSError, ValueError, TypeError):
        return []


def build_cache(
    records: Sequence[Record],
    image_size: int,
    images_path: Path,
    skipped_path: Path,
    *,
    skip_bad_images: bool = False,
    progress: bool = False,
    workers: int = 1,
    intensity: str = "dtype",
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[str], ImageNotes]:
    """Decode and resize every record's image into ``images_path`` (``uint8 [N, 3, S, S]``).

    Args:
        records: file records (``record.path`` set) in item order.
        image_size: side ``S`` of the square output.
        images_path, skipped_path: destination files (see :func:`cache_paths`).
        skip_bad_images: leave an undecodable image's row black and list its id in
            ``skipped_path`` instead of raising.
        progress: show a tqdm progress bar (images/s) on stderr.
        workers: decoding processes (JPEG decoding is CPU-bound); 0 or 1 decode in this
            process, as ``--workers 0`` means for training's DataLoader.
        intensity: how non-8-bit pixels become 8 bits (:mod:`lmfloss.data.images`).
        should_stop: polled between chunks of 64 images; when it returns True the build
            stops, nothing is left behind, and :class:`lmfloss.errors.Interrupted` is raised.

    Returns:
        ``(ids of the skipped records, intensity notes)``: the notes name the images the
        intensity rule left nearly constant (:func:`warn_intensity_notes` warns about them;
        they are kept next to the cache, :func:`read_notes`).

    Raises:
        DataError: an image cannot be decoded and ``skip_bad_images`` is False.
        DiskFull: the cache does not fit on its disk (nothing is left behind).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 (0: decode in this process), got {workers!r}")
    images_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(images_path.parent)
    tmp = part_path(images_path)
    bar = tqdm(total=len(records), desc=f"caching {images_path.stem}", unit="img") if progress else None
    outcome = _Outcome(bar, skip_bad_images)
    try:
        _decode_into(tmp, records, image_size, intensity, workers, _stopper(should_stop, images_path), outcome)
        skipped, image_notes = _keep_outcome(records, outcome, images_path, skipped_path, skip_bad_images)
        os.replace(tmp, images_path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)  # before disk_full measures the free space
        full = None if isinstance(exc, DiskFull) else disk_full(
            exc, images_path, kept="nothing else was written (the partial cache file is removed)",
            then="run the same command again (image caches finished before this one are reused)")
        if full is not None:
            raise full from exc
        raise
    finally:
        if bar is not None:
            bar.close()
        tmp.unlink(missing_ok=True)
    logger.info("cached %d images of %d px in %s", len(records), image_size, images_path)
    return skipped, image_notes


class _Outcome:
    """What the decoding of a cache's chunks found, gathered as each chunk is done."""

    def __init__(self, bar: tqdm | None, skip_bad_images: bool) -> None:
        self.bar = bar
        self.skip_bad_images = skip_bad_images
        self.failures: list[tuple[int, str]] = []  # (row, why it could not be decoded)
        self.notes: list[tuple[int, str]] = []  # (row, what the intensity rule did to it)

    def done(self, task: list[tuple[int, str]], result: tuple[list, list]) -> bool:
        """Take one chunk's ``(failures, notes)``; True: stop at the first bad image."""
        self.failures.extend(result[0])
        self.notes.extend(result[1])
        if self.bar is not None:
            self.bar.update(len(task))
        return bool(result[0]) and not self.skip_bad_images


def _stopper(should_stop: Callable[[], bool] | None, images_path: Path) -> Callable[[], None]:
    """Raises :class:`Interrupted` once ``should_stop`` says so (polled between chunks)."""
    def stop_now() -> None:
        if should_stop is not None and should_stop():
            raise Interrupted(f"stopped while building the image cache {images_path.name} "
                              f"(nothing written); run the command again to continue",
                              getattr(should_stop, "signal_number", None) or 2)

    return stop_now


def _decode_into(tmp: Path, records: Sequence[Record], image_size: int, intensity: str, workers: int,
                 stop_now: Callable[[], None], outcome: _Outcome, chunk: int = 64) -> None:
    """Allocate ``tmp`` (``uint8 [N, 3, S, S]``) and decode every record into it, ``chunk`` images
    a task, in this process or in ``workers`` processes."""
    tasks = [
        [(i, str(r.path)) for i, r in enumerate(records[start : start + chunk], start)]
        for start in range(0, len(records), chunk)
    ]
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(records), 3, image_size, image_size))
    del array  # header written; the rows are filled through fresh memory maps
    _allocate(tmp)
    if workers <= 1 or len(tasks) < 2:
        for task in tasks:
            stop_now()
            if outcome.done(task, _fill_rows(str(tmp), task, image_size, intensity)):
                break
    else:
        _fill_in_processes(str(tmp), tasks, image_size, intensity, workers, stop_now, outcome.done)


def _keep_outcome(records: Sequence[Record], outcome: _Outcome, images_path: Path, skipped_path: Path,
                  skip_bad_images: bool) -> tuple[list[str], ImageNotes]:
    """``(skipped ids, intensity notes)`` of a decoded cache, written next to it (their files
    removed when there are none); the first undecodable image is a :class:`DataError` unless
    ``skip_bad_images``."""
    failures = sorted(outcome.failures)
    image_notes = [(str(records[row].path), note) for row, note in sorted(outcome.notes)]
    if failures and not skip_bad_images:
        raise DataError(failures[0][1])
    skipped = [records[row].id for row, _ in failures]
    for row, _ in failures:
        logger.warning("skipping undecodable image %s", records[row].path)
    if skipped:
        atomic_write_text("".join(f"{s}\n" for s in skipped), skipped_path)
    else:
        skipped_path.unlink(missing_ok=True)
    if image_notes:
        atomic_write_text(json.dumps(image_notes, ensure_ascii=False), notes_path(images_path))
    else:
        notes_path(images_path).unlink(missing_ok=True)
    return skipped, image_notes


def _fill_in_processes(array_path: str, tasks: list[list[tuple[int, str]]], image_size: int, intensity: str,
                       workers: int, stop_now: Callable[[], None], done: Callable[..., bool]) -> None:
    """:func:`_fill_rows` of every task in ``workers`` processes, polling ``stop_now`` while waiting."""
    context = multiprocessing.get_context()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_end_with_parent,
                             initargs=(os.getpid(), context.get_start_method())) as pool:
        futures = [pool.submit(_fill_rows, array_path, task, image_size, intensity) for task in tasks]
        try:
            for task, future in zip(tasks, futures):
                while not future.done():
                    stop_now()
                    try:
                        future.result(timeout=0.2)
                    except FutureTimeout:
                        pass
                done(task, future.result())
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def open_cache(
    records: Sequence[Record],
    name: str,
    split: str,
    image_size: int,
    cache_dir: Path,
    *,
    skip_bad_images: bool = False,
    progress: bool = False,
    workers: int = 1,
    intensity: str = "dtype",
    should_stop: Callable[[], bool] | None = None,
) -> tuple[Path, list[str], ImageNotes]:
    """Return ``(images .npy path, skipped ids, intensity notes)``, building the cache on first use."""
    key = cache_key(name, records, image_size, intensity)
    images_path, skipped_path = cache_paths(cache_dir, name, split, image_size, key)
    if images_path.is_file():
        # One id a line: an id is a path relative to the root and may hold spaces.
        skipped = skipped_path.read_text(encoding="utf-8").splitlines() if skipped_path.is_file() else []
        if skipped and not skip_bad_images:
            raise DataError(
                f"the cache {str(images_path)!r} was built skipping {len(skipped)} undecodable images "
                f"(first: {skipped[:3]}); pass --skip-bad-images or fix the files"
            )
        return images_path, skipped, read_notes(images_path)
    skipped, notes = build_cache(
        records, image_size, images_path, skipped_path,
        skip_bad_images=skip_bad_images, progress=progress, workers=workers,
        intensity=intensity, should_stop=should_stop,
    )
    return images_path, skipped, notes
