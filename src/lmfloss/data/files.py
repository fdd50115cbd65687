"""Adapters for datasets stored as image files: the paper's four datasets, folders, CSVs.

Each ``index_*`` function reads the published label file(s) of one layout, finds every
image by id, and returns a :class:`DatasetIndex` in metadata order. Nothing is decoded
here (``lmfloss split`` is instant on 25,000 images); missing files are reported by
count with the first few names, never silently dropped.
"""

from __future__ import annotations

import ast
import filecmp
import logging
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from lmfloss.data.images import IMAGE_EXTENSIONS
from lmfloss.data.multilabel import zero_one
from lmfloss.data.records import (
    SPLIT_NAMES,
    Box,
    DatasetIndex,
    Record,
    canonical_label,
    canonical_text,
    order_class_names,
)
from lmfloss.data.targets import targets_of
from lmfloss.errors import DataError
from lmfloss.fileio import read_csv_rows, require_file
from lmfloss.task import get_task

logger = logging.getLogger(__name__)

HAM_CLASSES = ["AKIEC", "BCC", "BKL", "DF", "MEL", "NV", "VASC"]
ISIC_CLASSES = ["AK", "BCC", "BKL", "DF", "MEL", "NV", "SCC", "VASC"]
ODIR_CLASSES = ["A", "C", "D", "G", "H", "M", "N", "O"]
# The official multi-label task's 8 labels, in the challenge's (and full_df.csv's) column order:
# normal, diabetes, glaucoma, cataract, AMD, hypertension, myopia, other.
ODIR_LABELS = ["N", "D", "G", "C", "A", "H", "M", "O"]
COVID_CLASSES = ["COVID", "Lung_Opacity", "Normal", "Viral Pneumonia"]


# --- shared helpers -------------------------------------------------------------------


def require_root(root: Path | None, name: str, layout: str) -> Path:
    """Check that ``root`` is an existing folder; the error names the expected layout."""
    if root is None:
        raise ValueError(f"dataset {name!r} needs --root; expected layout: {layout}")
    if not root.exists():
        raise FileNotFoundError(f"{name} root {str(root)!r} does not exist; expected layout: {layout}")
    if not root.is_dir():
        raise NotADirectoryError(f"{name} root {str(root)!r} is not a folder; expected layout: {layout}")
    return root


def find_metadata(root: Path, names: Sequence[str], depth: int = 2) -> Path | None:
    """The first of ``names`` found in ``root`` or up to ``depth`` folders below it."""
    for level in range(depth + 1):
        pattern = "/".join(["*"] * level)
        for name in names:
            hits = sorted(root.glob(f"{pattern}/{name}" if pattern else name))
            if hits:
                return hits[0]
    return None


def read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a metadata CSV as dicts (see :func:`lmfloss.fileio.read_csv_rows`): a missing
    column, a row short of a required value, or a file that is not UTF-8 is a
    :class:`DataError` naming the file (and the line)."""
    return read_csv_rows(path, required, what="metadata file")[1]


def walk_images(root: Path) -> tuple[list[Path], Counter[str]]:
    """Every image file under ``root`` at any depth, in sorted order (hidden folders such as
    ``.lmfloss-cache`` skipped), and a count of the other files by extension.

    Folder links are followed; one that leads back to a folder holding it (a symbolic-link
    loop, told by the real path of every folder on the way down) is a :class:`DataError`
    naming the link, instead of a walk 40 links deep that lists every image again. A folder
    that cannot be listed (no permission, gone while walking) is a :class:`DataError` naming
    it: ``os.walk`` would skip it without a word, and its images with it.
    """
    found: list[Path] = []
    others: Counter[str] = Counter()
    top = os.fspath(root)
    chains: dict[str, tuple[str, ...]] = {top: (os.path.realpath(top),)}  # folder -> real paths down to it
    for folder, dirs, files in os.walk(top, onerror=_unlistable, followlinks=True):
        chain = chains.pop(folder)
        kept = []
        for name in sorted(d for d in dirs if not d.startswith(".")):
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if real in chain or os.path.commonpath([real, chain[-1]]) == real:
                raise DataError(f"the folder link {path!r} leads back to {real!r}, which holds it (a "
                                "symbolic-link loop); remove the link or point it elsewhere")
            chains[path] = (*chain, real)
            kept.append(name)
        dirs[:] = kept
        for file in sorted(files):
            if file.startswith("."):
                continue
            ext = os.path.splitext(file)[1].lower()
            if ext in IMAGE_EXTENSIONS:
                found.append(Path(folder) / file)
            else:
                others[ext or "(no extension)"] += 1
    return found, others


def _unlistable(error: OSError) -> None:
    reason = error.strerror or type(error).__name__
    raise DataError(f"cannot list the folder {error.filename!r} ({reason}): the images in it would be "
                    "left out; make it readable, or move it out of the data folder")


def image_files(root: Path) -> dict[str, list[Path]]:
    """Map file stem -> every image path with that stem under ``root`` (any depth)."""
    found: dict[str, list[Path]] = {}
    for path in walk_images(root)[0]:
        found.setdefault(path.stem, []).append(path)
    return found


def _root_and_table(root: Path | None, name: str, table: str, layout: str,
                    required: Sequence[str]) -> tuple[Path, Path, list[dict[str, str]]]:
    """``(root, metadata file, rows)`` of a dataset whose labels are one CSV under the root."""
    root = require_root(root, name, layout)
    path = find_metadata(root, [table])
    if path is None:
        raise FileNotFoundError(f"{table} not found under {str(root)!r}; expected {layout}")
    return root, path, read_csv(path, required)


def missing_error(what: str, missing: Sequence[str], where: Path) -> FileNotFoundError:
    """Files the metadata lists that are not there: the same line with and without
    ``--skip-bad-images``, which covers files that are there but cannot be read, not missing ones
    (a missing file is a download or a path gone wrong, never skipped without a word)."""
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    return FileNotFoundError(
        f"{len(missing)} {what} listed in the metadata are missing under {str(where)!r} (first: {shown}); "
        "--skip-bad-images skips unreadable files, not missing ones: restore them or remove their rows"
    )


def _same_content(paths: Sequence[Path]) -> bool:
    return all(filecmp.cmp(paths[0], p, shallow=False) for p in paths[1:])


def lookup_images(ids: Iterable[str], images: dict[str, list[Path]], root: Path) -> list[str]:
    """Absolute paths of ``ids`` in ``images``; every missing one is reported at once.

    An id matching several files is refused unless the files are identical copies (then
    the first in sorted order is used): silently picking one of two different images
    would train on whichever the folder walk found first.
    """
    ids = list(ids)
    missing = [i for i in ids if i not in images]
    if missing:
        raise missing_error("image files", missing, root)
    paths = []
    for i in ids:
        candidates = images[i]
        if len(candidates) > 1 and not _same_content(candidates):
            shown = ", ".join(str(p.relative_to(root)) for p in candidates[:3])
            raise DataError(
                f"image id {i!r} matches {len(candidates)} different files under {str(root)!r} ({shown}); "
                "keep one, or point --root at the folder that holds only the dataset's images"
            )
        paths.append(os.path.abspath(candidates[0]))
    return paths


def one_hot_label(row: dict[str, str], columns: Sequence[str], path: Path, id_column: str = "image") -> str:
    """The one column of ``columns`` set to 1 in ``row``; anything else is a DataError."""
    try:
        hot = [c for c in columns if float(row[c] or 0) == 1.0]
    except ValueError:
        raise DataError(f"{str(path)!r}: row {row.get(id_column)!r} has a non-numeric class column") from None
    if len(hot) != 1:
        raise DataError(
            f"{str(path)!r}: row {row.get(id_column)!r} has {len(hot)} classes set ({hot}); expected exactly one of {list(columns)}"
        )
    return hot[0]


def check_labels(labels: Sequence[str], class_names: Sequence[str], source: Path, ids: Sequence[str]) -> list[int]:
    position = {name: i for i, name in enumerate(class_names)}
    for label, item in zip(labels, ids):
        if label not in position:
            raise DataError(
                f"{str(source)!r}: label {label!r} of {item!r} is not one of the classes {list(class_names)}"
            )
    return [position[label] for label in labels]


def mask_boxes(mask_path: Path) -> list[Box] | None:
    """The bounding box ``(x0, y0, x1, y1)`` (exclusive ends) of a binary lesion mask's foreground."""
    if not mask_path.is_file():
        return None
    with Image.open(mask_path) as image:
        mask = np.asarray(image.convert("L")) > 127
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return []
    return [(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)]


# --- HAM10000 -------------------------------------------------------------------------

HAM_LAYOUT = (
    "GroundTruth.csv + images/ + masks/ (Kaggle ham1000-segmentation-and-classification) or "
    "HAM10000_metadata.csv + HAM10000_images_part_1/ + HAM10000_images_part_2/ (Harvard Dataverse)"
)


def _ham_lesions(path: Path | None) -> dict[str, str]:
    """Lesion id per image id from ``HAM10000_metadata.csv`` (empty without the file)."""
    if path is None:
        return {}
    return {row["image_id"]: row["lesion_id"] for row in read_csv(path, ["lesion_id", "image_id"])}


def index_ham10000(root: Path | None, csv_path: Path | None = None) -> DatasetIndex:
    """HAM10000 (Tschandl et al. 2018) in either published layout; groups are lesion ids."""
    root = require_root(root, "ham10000", HAM_LAYOUT)
    kaggle = find_metadata(root, ["GroundTruth.csv"])
    dataverse = find_metadata(root, ["HAM10000_metadata.csv", "HAM10000_metadata"])
    if kaggle is None and dataverse is None:
        raise FileNotFoundError(
            f"no HAM10000 label file under {str(root)!r}; expected {HAM_LAYOUT}"
        )
    if kaggle is not None:
        lesions = _ham_lesions(dataverse)  # the Dataverse metadata, if also present, gives lesion ids
        rows = read_csv(kaggle, ["image", *HAM_CLASSES])
        ids = [r["image"] for r in rows]
        names = [one_hot_label(r, HAM_CLASSES, kaggle) for r in rows]
        source = kaggle
    else:
        rows = read_csv(dataverse, ["lesion_id", "image_id", "dx"])
        lesions = {r["image_id"]: r["lesion_id"] for r in rows}
        ids = [r["image_id"] for r in rows]
        names = [r["dx"].strip().upper() for r in rows]
        source = dataverse
    labels = check_labels(names, HAM_CLASSES, source, ids)
    paths = lookup_images(ids, image_files(source.parent), source.parent)
    records = [
        Record(id=i, label=y, path=p, group=lesions.get(i) or None) for i, y, p in zip(ids, labels, paths)
    ]
    mask_dir = source.parent / "masks"
    box_loader = None
    if kaggle is not None and mask_dir.is_dir():
        def box_loader(record: Record) -> list[Box] | None:
            return mask_boxes(mask_dir / f"{record.id}_segmentation.png")

    return DatasetIndex(
        name="ham10000", class_names=list(HAM_CLASSES), records=records, root=source.parent,
        group_kind="lesion", box_loader=box_loader,
    )


# --- ISIC 2019 ------------------------------------------------------------------------


def index_isic2019(root: Path | None, csv_path: Path | None = None) -> DatasetIndex:
    """ISIC 2019 training set (8 classes; the UNK column is empty in training and dropped)."""
    layout = "ISIC_2019_Training_GroundTruth.csv and the <id>.jpg images anywhere under the root"
    root, truth, rows = _root_and_table(root, "isic2019", "ISIC_2019_Training_GroundTruth.csv", layout,
                                        ["image", *ISIC_CLASSES])
    has_unknown = "UNK" in (rows[0] if rows else {})
    columns = [*ISIC_CLASSES, "UNK"] if has_unknown else ISIC_CLASSES
    ids = [r["image"] for r in rows]
    names = [one_hot_label(r, columns, truth) for r in rows]
    labels = check_labels(names, ISIC_CLASSES, truth, ids)
    meta = find_metadata(root, ["ISIC_2019_Training_Metadata.csv"])
    lesions: dict[str, str] = {}
    if meta is not None:
        lesions = {r["image"]: r.get("lesion_id", "") for r in read_csv(meta, ["image"])}
    paths = lookup_images(ids, image_files(root), root)
    records = [Record(id=i, label=y, path=p, group=lesions.get(i) or None) for i, y, p in zip(ids, labels, paths)]
    return DatasetIndex(name="isic2019", class_names=list(ISIC_CLASSES), records=records, root=root, group_kind="lesion")


# --- ODIR-5K --------------------------------------------------------------------------


def _odir_label(raw: str, filename: str, path: Path) -> str:
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise DataError(f"{str(path)!r}: image {filename!r} has labels {raw!r}; expected exactly one")
        value = value[0]
    return str(value).strip()


def index_odir5k(root: Path | None, csv_path: Path | None = None, task: str = "multiclass") -> DatasetIndex:
    """ODIR-5K as preprocessed on Kaggle (``full_df.csv``, one row per eye); groups are patient ids.

    A task with class-index targets (``multiclass``): the paper's single-label form (the
    ``labels`` column, one class per eye). With multi-hot targets (``multilabel``): the official
    ODIR-2019 task -- every eye carries its patient's 8 labels (the ``N,D,G,C,A,H,M,O`` columns,
    :data:`ODIR_LABELS` order); the patient is the group, so a patient-level score
    (``score_by: patient``) combines the two eyes.
    """
    return _ODIR_READERS[get_task(task).target](root, task)


ODIR_LAYOUT = "full_df.csv with images in preprocessed_images/ (or anywhere under the root)"


def _index_odir5k_classes(root: Path | None, task: str) -> DatasetIndex:
    root, table, rows = _root_and_table(root, "odir5k", "full_df.csv", ODIR_LAYOUT, ["ID", "labels", "filename"])
    files = [r["filename"].strip() for r in rows]
    names = [_odir_label(r["labels"], f, table) for r, f in zip(rows, files)]
    labels = check_labels(names, ODIR_CLASSES, table, files)
    images = image_files(root)
    stems = [os.path.splitext(f)[0] for f in files]
    paths = lookup_images(stems, images, root)
    records = [
        Record(id=stem, label=y, path=p, group=f"patient-{r['ID'].strip()}")
        for stem, y, p, r in zip(stems, labels, paths, rows)
    ]
    return DatasetIndex(name="odir5k", class_names=list(ODIR_CLASSES), records=records, root=root,
                        group_kind="patient", task=task)


def _index_odir5k_multilabel(root: Path | None, task: str) -> DatasetIndex:
    root, table, rows = _root_and_table(root, "odir5k", "full_df.csv", ODIR_LAYOUT, ["ID", "filename", *ODIR_LABELS])
    files = [r["filename"].strip() for r in rows]
    stems = [os.path.splitext(f)[0] for f in files]
    paths = lookup_images(stems, image_files(root), root)
    records = []
    for stem, path, row in zip(stems, paths, rows):
        labels = tuple(j for j, c in enumerate(ODIR_LABELS) if zero_one(row[c], c, row["_line"], table))
        records.append(Record(id=stem, label=None, path=path, group=f"patient-{row['ID'].strip()}", labels=labels))
    return DatasetIndex(name="odir5k", class_names=list(ODIR_LABELS), records=records, root=root,
                        group_kind="patient", task=task)


# The reading of full_df.csv that gives each kind of targets (:attr:`lmfloss.task.Task.target`).
_ODIR_READERS = {"index": _index_odir5k_classes, "multi-hot": _index_odir5k_multilabel}


# --- COVID-19 Radiography Database ----------------------------------------------------


def _covid_folder(root: Path) -> Path | None:
    for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if any((candidate / name).is_dir() for name in COVID_CLASSES):
            return candidate
    return None


def index_covid19(root: Path | None, csv_path: Path | None = None) -> DatasetIndex:
    """COVID-19 Radiography Database: one folder per class, images in ``images/`` or directly."""
    layout = "class folders " + ", ".join(COVID_CLASSES) + " (each with images/ or the images directly)"
    root = require_root(root, "covid19", layout)
    folder = _covid_folder(root)
    if folder is None:
        raise FileNotFoundError(f"no COVID-19 class folder in {str(root)!r} or the folders below it; expected {layout}")
    records = []
    for label, name in enumerate(COVID_CLASSES):
        class_dir = folder / name
        if not class_dir.is_dir():
            logger.warning("COVID-19 class folder %s is missing", class_dir)
            continue
        image_dir = class_dir / "images" if (class_dir / "images").is_dir() else class_dir
        for path in sorted(image_dir.iterdir(), key=lambda p: _natural_key(p.name)):
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                records.append(Record(id=path.stem, label=label, path=os.path.abspath(path)))
    return DatasetIndex(name="covid19", class_names=list(COVID_CLASSES), records=records, root=folder)


def _natural_key(name: str) -> list[object]:
    """``COVID-2`` before ``COVID-10`` (the database's own numbering order)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# --- your own data --------------------------------------------------------------------


GROUP_COLUMNS = ("group", "patient_id", "patient", "lesion_id", "lesion")


def _duplicates(keys: Sequence[str]) -> list[list[int]]:
    """Indices of entries sharing a key, each group in entry order, groups by their first entry."""
    seen: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        seen.setdefault(key, []).append(i)
    return sorted((group for group in seen.values() if len(group) > 1), key=lambda group: group[0])


def _realpath_duplicates(paths: Sequence[str]) -> list[list[int]]:
    """Indices of entries naming one file (after resolving ``.``, ``..``, ``//`` and symlinks)."""
    return _duplicates([os.path.realpath(path) for path in paths])


def _same_file_twice(ids: Sequence[str], paths: Sequence[str]) -> tuple[int, int] | None:
    """The first two entries naming one file: the same file on disk (through ``..`` or a link),
    or the same id (two spellings of one name, NFC and NFD, that are two files on a file
    system keeping them apart -- no one can tell such files apart)."""
    pairs = [(group[0], group[1]) for group in _realpath_duplicates(paths) + _duplicates(ids)]
    return min(pairs) if pairs else None


def locate_file(path: str, listings: dict[str, dict[str, list[str]]] | None = None) -> str:
    """``path`` as the file system spells it: as written when that exists, else the one entry
    whose name, folder by folder, is the same in Unicode NFC form (a CSV typed on one system
    naming files created on another). ``path`` itself when nothing matches (it is missing).

    ``listings`` caches folder listings between calls (one listing per folder searched).
    """
    if os.path.lexists(path):
        return path
    for form in ("NFC", "NFD"):
        candidate = unicodedata.normalize(form, path)
        if os.path.lexists(candidate):
            return candidate
    listings = {} if listings is None else listings
    parts = Path(path).parts
    found = ""  # a relative path is searched from the current folder
    if Path(path).anchor:
        found, parts = parts[0], parts[1:]
    for part in parts:
        exact = os.path.join(found, part)
        if os.path.lexists(exact):
            found = exact
            continue
        if found not in listings:
            try:
                names = os.listdir(found or ".")
            except OSError:
                return path
            listings[found] = {}
            for name in names:
                listings[found].setdefault(canonical_text(name), []).append(name)
        matches = listings[found].get(canonical_text(part), [])
        if len(matches) != 1:
            return path
        found = os.path.join(found, matches[0])
    return found


def index_imagefolder(root: Path | None, csv_path: Path | None = None) -> DatasetIndex:
    """``root/<class>/...<image>``: every image at any depth under a class folder.

    The record id is the image's path relative to the root (``benign/patient01/image.png``),
    so files sharing a name in different sub-folders are different images. The first
    folder level under the class (``patient01``) is the image's group, for
    ``--group-by patient`` (or ``lesion``): a patient's images then stay in one split.
    Class order: :func:`lmfloss.data.records.order_class_names` of the folder names;
    folder names that differ only by Unicode normalisation or surrounding spaces are one
    class, and ids and groups are in NFC form (one name, one spelling).
    """
    layout = "<root>/<class>/<image> (sub-folders below a class, e.g. one per patient, allowed)"
    root = require_root(root, "imagefolder", layout)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise FileNotFoundError(f"no class folders in {str(root)!r}; expected {layout}")
    class_names = order_class_names(folders, f"imagefolder {str(root)!r}")
    folders_of: dict[str, list[str]] = {}
    for folder in folders:
        folders_of.setdefault(canonical_label(folder), []).append(folder)
    loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if loose:
        logger.warning("%d image file(s) directly in %s are in no class folder and are not used (first: %s)",
                       len(loose), root, ", ".join(sorted(loose)[:3]))
    records = []
    ignored: Counter[str] = Counter()
    for label, name in enumerate(class_names):
        for folder in folders_of[name]:
            found, others = walk_images(root / folder)
            ignored.update(others)
            for path in found:
                parts = path.relative_to(root / folder).parts
                group = canonical_text(parts[0]) if len(parts) > 1 else None
                records.append(Record(id="/".join([name, *(canonical_text(p) for p in parts)]), label=label,
                                      path=os.path.abspath(path), group=group))
    if ignored:
        logger.warning("ignored %d file(s) that are not images (%s) under %s; images: %s",
                       sum(ignored.values()), ", ".join(f"{e} x{n}" for e, n in ignored.most_common(5)),
                       root, ", ".join(IMAGE_EXTENSIONS))
    pair = _same_file_twice([r.id for r in records], [r.path for r in records])
    if pair is not None:
        first, second = records[pair[0]], records[pair[1]]
        if first.id == second.id:
            raise DataError(
                f"imagefolder {str(root)!r}: {ascii(os.path.relpath(first.path, root))} and "
                f"{ascii(os.path.relpath(second.path, root))} are two files whose names differ only by "
                "Unicode normalisation (NFC/NFD); rename or remove one")
        kind = "in two classes" if first.label != second.label else "twice"
        raise DataError(f"imagefolder {str(root)!r}: one file is listed {kind}, as {first.id!r} and "
                        f"{second.id!r} (a link or a copy of a folder?); keep one")
    return DatasetIndex(name="imagefolder", class_names=class_names, records=records, root=root,
                        group_kind="patient" if any(r.group for r in records) else None)


def _dangling(path: str) -> bool:
    """``path`` is a symbolic link whose target does not exist."""
    return os.path.islink(path) and not os.path.exists(path)


def index_csv(root: Path | None, csv_path: Path | None, task: str = "multiclass",
              label_columns: Sequence[str] | None = None, no_finding: str | None = None) -> DatasetIndex:
    """A CSV with ``path,label``, optional ``split`` and an optional group column.

    The labels are read as the task's targets are (:mod:`lmfloss.data.targets`). Multi-label
    (``task="multilabel"``): a ``labels`` column of ``;``-separated label names
    (an empty cell is an image with no finding), or one 0/1 column per label named by
    ``label_columns`` (their order is the label order); a row with both is refused, as is a
    label column holding anything but 0 or 1 and, with a ``split`` column, a label no train
    row has. ``no_finding``: the label name that means "none of the labels" (``No Finding``),
    read as no label (multi-label only).

    Paths are relative to ``root`` when given, else to the CSV's folder (absolute paths
    are kept); they are normalised (``./a.png``, ``dir//a.png``, ``x/../a.png``) and two
    rows naming one file (also through a symbolic link, or spelled in two Unicode forms) are
    refused. A path in another Unicode form than the file's name (NFD typed, NFC on disk, or
    the reverse) finds the file (:func:`locate_file`). The record id is the normalised path
    as written, in NFC form; labels and groups are compared as
    :func:`lmfloss.data.records.canonical_label` makes them. A ``split`` column (``train``/``val``/``test``) replaces the
    paper's split; a ``group`` (or ``patient_id``, ``patient``, ``lesion_id``, ``lesion``)
    column enables ``--group-by``. Class order:
    :func:`lmfloss.data.records.order_class_names` of the labels.
    """
    if csv_path is None:
        raise ValueError("dataset 'csv' needs --csv FILE with columns path,label[,split]")
    require_file(csv_path, "CSV file", "a CSV file with columns path,label[,split]")  # a folder, a pipe: one line
    base = require_root(root, "csv", "a folder the CSV's paths are relative to") if root is not None else csv_path.parent
    targets = targets_of(task)
    columns, rows = read_csv_rows(csv_path, targets.csv_columns(label_columns), what="CSV file")
    if not rows:
        raise DataError(f"{str(csv_path)!r} has no rows")
    labels = targets.csv_labels(rows, columns, label_columns, csv_path, no_finding=no_finding)
    empty = [r["_line"] for r in rows if not r["path"].strip()]
    if empty:
        raise DataError(f"{str(csv_path)!r}: empty path on line(s) {', '.join(empty[:5])}")
    labels = targets.csv_classes(labels, rows, csv_path)
    ids = [canonical_text(Path(os.path.normpath(r["path"].strip())).as_posix()) for r in rows]
    listings: dict[str, dict[str, list[str]]] = {}
    paths = [locate_file(os.path.normpath(base / r["path"].strip()), listings) for r in rows]
    # A dangling link is there but unreadable: load_splits reports it with the hint to skip it.
    missing = [r["path"] for r, p in zip(rows, paths) if not (os.path.isfile(p) or _dangling(p))]
    if missing:
        raise missing_error("image files", missing, base)
    _refuse_one_image_twice(rows, ids, paths, labels.texts, csv_path)
    official = _csv_split(rows, columns, csv_path)
    group_column = next((c for c in GROUP_COLUMNS if c in columns), None)
    groups = [(canonical_label(r[group_column]) or None) if group_column else None for r in rows]
    if official is not None:
        targets.check_csv_split(rows, labels, official, csv_path)
    records = [targets.record(i, value, path=os.path.abspath(p), group=g)
               for i, value, p, g in zip(ids, labels.values, paths, groups)]
    kind = None
    if group_column:
        kind = "lesion" if "lesion" in group_column else "patient"
    return DatasetIndex(name="csv", class_names=labels.class_names, records=records, root=base,
                        official_split=official, group_kind=kind, source=csv_path.resolve(), task=task)


def _refuse_one_image_twice(rows: list[dict[str, str]], ids: Sequence[str], paths: Sequence[str],
                            labels: Sequence[str], csv_path: Path) -> None:
    """Two rows naming one image (:func:`_same_file_twice`) are refused, naming both lines."""
    pair = _same_file_twice(ids, paths)
    if pair is None:
        return
    a, b = rows[pair[0]], rows[pair[1]]
    labels_note = (f" with labels {labels[pair[0]]!r} and {labels[pair[1]]!r}"
                   if labels[pair[0]] != labels[pair[1]] else "")
    # Two spellings that print alike (NFC and NFD) are shown with their code points.
    show = ascii if a["path"] != b["path"] and canonical_text(a["path"]) == canonical_text(b["path"]) else repr
    raise DataError(
        f"{str(csv_path)!r}: lines {a['_line']} and {b['_line']} name the same image "
        f"({show(a['path'])} and {show(b['path'])}){labels_note}; keep one row per image"
    )


def _csv_split(rows: list[dict[str, str]], columns: list[str], csv_path: Path) -> list[str] | None:
    """The CSV's own split (its ``split`` column), or ``None`` without one."""
    if "split" not in columns:
        return None
    official = [(r.get("split") or "").strip().lower() for r in rows]
    bad = sorted({s for s in official if s not in SPLIT_NAMES})
    if bad:
        raise DataError(f"{str(csv_path)!r}: split values {bad} are not among {list(SPLIT_NAMES)}")
    return official
