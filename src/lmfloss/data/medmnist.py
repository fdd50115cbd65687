"""MedMNIST v2/v3 2D datasets read from the official ``.npz`` files, official splits kept.

Dataset names are the MedMNIST flags (``dermamnist``, ``retinamnist``, ``breastmnist``,
``pneumoniamnist``, ``bloodmnist``...), optionally with a size suffix for MedMNIST+
(``dermamnist_64``, ``_128``, ``_224``). The file ``<flag>.npz`` / ``<flag>_<size>.npz`` is
looked up in ``root`` and ``root/<flag>``. With ``download=True`` it is fetched using the
``medmnist`` package's own URLs and MD5 checksums (``pip install lmfloss[medmnist]``).

Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical
image classification", Scientific Data 10, 41 (2023). https://medmnist.com/
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmfloss.data.records import DatasetIndex
from lmfloss.data.targets import targets_of
from lmfloss.errors import DataError
from lmfloss.extras import install_hint
from lmfloss.task import get_task

logger = logging.getLogger(__name__)

HOMEPAGE = "https://medmnist.com/ (files: https://zenodo.org/records/10519652)"
SIZES = (28, 64, 128, 224)

# Short class names per 2D flag, in label order (MedMNIST's INFO[flag]["label"] holds the
# long ones; these are used when the optional ``medmnist`` package is not installed).
# ``chestmnist`` is multi-label: 14 labels per image (NIH ChestX-ray14's findings), in
# MULTILABEL below.
CLASS_NAMES: dict[str, list[str]] = {
    "pathmnist": ["adipose", "background", "debris", "lymphocytes", "mucus", "smooth_muscle",
                  "normal_mucosa", "stroma", "adenocarcinoma"],
    "dermamnist": ["AKIEC", "BCC", "BKL", "DF", "MEL", "NV", "VASC"],
    "octmnist": ["CNV", "DME", "drusen", "normal"],
    "pneumoniamnist": ["normal", "pneumonia"],
    "retinamnist": ["grade0", "grade1", "grade2", "grade3", "grade4"],
    "breastmnist": ["malignant", "normal_benign"],
    "bloodmnist": ["basophil", "eosinophil", "erythroblast", "immature_granulocytes",
                   "lymphocyte", "monocyte", "neutrophil", "platelet"],
    "tissuemnist": ["CD_CT", "DCT", "GEC", "IEC", "leukocytes", "podocytes", "PT", "TAL"],
    "organamnist": ["bladder", "femur_left", "femur_right", "heart", "kidney_left",
                    "kidney_right", "liver", "lung_left", "lung_right", "pancreas", "spleen"],
}
CLASS_NAMES["organcmnist"] = CLASS_NAMES["organamnist"]
CLASS_NAMES["organsmnist"] = CLASS_NAMES["organamnist"]
CLASS_NAMES["chestmnist"] = ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule",
                             "pneumonia", "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis",
                             "pleural", "hernia"]

FLAGS = tuple(CLASS_NAMES)
MULTILABEL = frozenset({"chestmnist"})  # flags whose labels are [N, L] 0/1 rows


def task_of(flag: str) -> str:
    """``"multilabel"`` for ChestMNIST, ``"multiclass"`` for the other 2D flags."""
    return "multilabel" if flag in MULTILABEL else "multiclass"


def parse_name(name: str) -> tuple[str, int] | None:
    """``"dermamnist_64"`` -> ``("dermamnist", 64)``; ``None`` if not a 2D MedMNIST name."""
    flag, _, suffix = name.partition("_")
    if flag not in CLASS_NAMES:
        return None
    if not suffix:
        return flag, 28
    if suffix.isdigit() and int(suffix) in SIZES:
        return flag, int(suffix)
    return None


def file_name(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def _find_file(root: Path, flag: str, size: int) -> Path | None:
    for folder in (root, root / flag):
        candidate = folder / file_name(flag, size)
        if candidate.is_file():
            return candidate
    return None


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(flag: str, size: int, root: Path) -> Path:
    """Fetch ``<flag>[_<size>].npz`` into ``root`` with the ``medmnist`` package's URL and MD5.

    The file is written to a temporary name and renamed once its MD5 matches, so
    concurrent runs never see a partial file.

    Raises:
        DataError: ``medmnist`` is not installed, the URL is unknown, the download fails
            (offline) or the checksum does not match.
    """
    target = root / file_name(flag, size)
    manual = (
        f"download {file_name(flag, size)} from {HOMEPAGE} and put it at {str(target)!r}"
    )
    try:
        from medmnist import INFO  # optional extra: pip install lmfloss[medmnist]
    except ImportError:
        raise DataError(
            f"--download needs the optional 'medmnist' package ({install_hint('medmnist')}); "
            f"or {manual}"
        ) from None
    info = INFO.get(flag, {})
    suffix = "" if size == 28 else f"_{size}"
    url, md5 = info.get(f"url{suffix}"), info.get(f"MD5{suffix}")
    if not url or not md5:
        raise DataError(f"the installed medmnist package has no URL for {flag!r} at {size} px; {manual}")
    root.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s from %s", target.name, url)
    fd, tmp_name = tempfile.mkstemp(dir=root, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        actual = _md5(tmp)
        if actual != md5:
            raise DataError(f"downloaded {target.name} has MD5 {actual}, expected {md5}; {manual}")
        os.replace(tmp, target)
    except OSError as exc:  # URLError is an OSError: offline, DNS, HTTP errors
        raise DataError(f"could not download {target.name} from {url} ({exc}); {manual}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _class_names(flag: str) -> list[str]:
    return list(CLASS_NAMES[flag])


def _whole_numbers(labels: np.ndarray, path: Path, split: str) -> np.ndarray:
    """``labels`` as ``int64``, refusing a value that is not a whole number (``2.7`` cast to ``2``
    would be a label changed without a word), named with its split and row."""
    if labels.dtype.kind not in "iubf":
        raise DataError(f"{str(path)!r}: {split}_labels are {labels.dtype}; expected numeric labels")
    bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels))) if labels.dtype.kind == "f" else []
    if len(bad):
        raise DataError(f"{str(path)!r}: {split}_labels row {int(bad[0])} holds {labels[bad[0]]:g}; "
                        "a class index is a whole number")
    return labels.astype(np.int64)


def _class_column(labels: np.ndarray, class_names: list[str], path: Path, flag: str, split: str) -> np.ndarray:
    """A split's ``[N, 1]`` labels as ``int64 [N]`` class indices."""
    if labels.shape[1] != 1:
        raise DataError(f"{str(path)!r} holds multi-label targets; {flag} is a single-label dataset")
    return _whole_numbers(labels[:, 0], path, split)


def _check_class_column(labels: np.ndarray, class_names: list[str], path: Path, flag: str) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= len(class_names)))
    if bad.size:
        raise DataError(
            f"{str(path)!r}: label {int(labels[bad[0]])} outside 0..{len(class_names) - 1} ({flag} classes {class_names})"
        )


def _label_rows(labels: np.ndarray, class_names: list[str], path: Path, flag: str, split: str) -> np.ndarray:
    """A split's ``[N, L]`` 0/1 labels as ``int64 [N, L]``; any other value (``0.7``, ``2``, ``-1``,
    NaN) is refused with its split, row and label -- never cast (``0.7`` would become ``0``)."""
    if labels.shape[1] != len(class_names):
        raise DataError(f"{str(path)!r}: {split}_labels has {labels.shape[1]} columns; {flag} has "
                        f"{len(class_names)} labels {class_names}")
    if labels.dtype.kind not in "iubf":
        raise DataError(f"{str(path)!r}: {split}_labels are {labels.dtype}; expected 0/1 per finding")
    bad = np.argwhere((labels != 0) & (labels != 1))
    if bad.size:
        row, column = (int(i) for i in bad[0])
        raise DataError(f"{str(path)!r}: {split}_labels row {row}, label {class_names[column]!r} holds "
                        f"{labels[row, column]:g}; {flag}'s labels are 0/1 per finding")
    return labels.astype(np.int64)


def _values_checked_as_read(labels: np.ndarray, class_names: list[str], path: Path, flag: str) -> None:
    """Nothing left to check: :func:`_label_rows` refused every value but 0 and 1 per split."""


@dataclass(frozen=True)
class _LabelReader:
    """How an npz's ``{split}_labels`` give one kind of targets (:attr:`lmfloss.task.Task.target`)."""

    read: Callable[[np.ndarray, list[str], Path, str, str], np.ndarray]  # one split's labels, their shape checked
    check: Callable[[np.ndarray, list[str], Path, str], None]  # every label's value
    value: Callable[[np.ndarray], Any]  # one image's target, as its Record holds it


_READERS = {
    "index": _LabelReader(_class_column, _check_class_column, int),
    "multi-hot": _LabelReader(_label_rows, _values_checked_as_read, lambda row: tuple(np.flatnonzero(row).tolist())),
}


def _images(array: np.ndarray, path: Path) -> np.ndarray:
    """``uint8 [N, H, W, 3]`` of the npz's images (grayscale repeated into 3 channels), read-only."""
    if array.ndim == 3:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or array.dtype != np.uint8:
        raise DataError(f"{str(path)!r}: expected uint8 images [N, H, W] or [N, H, W, 3], got {array.dtype} {array.shape}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    array.setflags(write=False)
    return array


def index_medmnist(name: str, root: str | Path | None, download_missing: bool = False) -> DatasetIndex:
    """Read a MedMNIST 2D ``.npz`` into a :class:`DatasetIndex` with its official split.

    Grayscale images (``[N, H, W]``) are repeated into 3 channels for ImageNet networks.
    Record ids are ``<flag>-<split>-<row within split>``. ChestMNIST's labels are 0/1 rows
    (multi-label), the others' one class index per image.

    Raises:
        FileNotFoundError: the file is missing and ``download_missing`` is False.
        DataError: the file lacks the ``{split}_images``/``{split}_labels`` arrays or holds
            labels outside the flag's classes.
    """
    parsed = parse_name(name)
    if parsed is None:
        raise ValueError(f"{name!r} is not a MedMNIST 2D name; expected one of {list(FLAGS)} with optional _64/_128/_224")
    flag, size = parsed
    if root is None:
        root = Path(os.environ.get("MEDMNIST_ROOT", Path.home() / ".medmnist"))
    root = Path(root).expanduser()
    path = _find_file(root, flag, size)
    if path is None:
        if not download_missing:
            raise FileNotFoundError(
                f"MedMNIST file {file_name(flag, size)!r} not found in {str(root)!r} or {str(root / flag)!r}; "
                f"put it there (from {HOMEPAGE}) or pass --download (needs {install_hint('medmnist')})"
            )
        path = download(flag, size, root)
    class_names = _class_names(flag)
    task = task_of(flag)
    reader = _READERS[get_task(task).target]
    try:
        data = np.load(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read MedMNIST file {str(path)!r}: {exc}") from None
    with data:
        images, labels, official = [], [], []
        for split in ("train", "val", "test"):
            needed = (f"{split}_images", f"{split}_labels")
            missing = [key for key in needed if key not in data.files]
            if missing:
                raise DataError(f"MedMNIST file {str(path)!r} lacks arrays {missing}; found {data.files}")
            split_images = data[f"{split}_images"]
            split_labels = np.asarray(data[f"{split}_labels"]).reshape(len(split_images), -1)
            images.append(split_images)
            labels.append(reader.read(split_labels, class_names, path, flag, split))
            official += [split] * len(split_images)
    array = _images(np.concatenate(images), path)
    all_labels = np.concatenate(labels)
    reader.check(all_labels, class_names, path, flag)
    targets = targets_of(task)
    records, counters = [], {"train": 0, "val": 0, "test": 0}
    for row, (label, split) in enumerate(zip(all_labels, official)):
        records.append(targets.record(f"{flag}-{split}-{counters[split]}", reader.value(label), row=row))
        counters[split] += 1
    return DatasetIndex(
        name=name, class_names=class_names, records=records, root=root, official_split=official, images=array,
        task=task,
    )
