"""What every adapter produces: :class:`Record` rows and a :class:`DatasetIndex`.

An adapter turns a dataset root into a ``DatasetIndex``: the fixed class names (their
order is the class index used everywhere), one :class:`Record` per image and, for
datasets that publish them, the official train/val/test assignment. Array datasets
(MedMNIST, synthetic) also carry the images themselves as one uint8 array.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmfloss.errors import DataError

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Record:
    """One labelled image.

    Attributes:
        id: unique identifier (the metadata's image id, the path relative to the root for
            ``imagefolder``/``csv``, or ``<flag>-<split>-<row>``); written to predictions.csv.
        label: class index into ``class_names`` (multi-class); ``None`` in a multi-label
            dataset, whose records carry ``labels`` instead (so that code counting classes
            fails loudly on multi-label records rather than miscounting them).
        path: absolute path of the image file, or ``None`` for array datasets.
        group: lesion or patient identifier shared by images of one lesion/patient, or ``None``.
        row: row of the image in the dataset's in-memory array (array datasets only).
        labels: multi-label datasets: the indices (into ``class_names``, the label names) of
            the labels present, sorted; ``()`` is a valid image with no finding. ``None`` in a
            multi-class dataset.
        unknown: multi-label datasets: the indices of the labels whose value is not known for
            this image (CheXpert's uncertain labels under U-Ignore, a blank under ``blank:
            ignore``), sorted, disjoint from ``labels``; ``-1`` in the label array, left out by
            the losses and metrics. ``()``: every label is known (a label not in ``labels`` is
            negative).
        study: the imaging study the image belongs to (CheXpert's ``patientX/studyY``: the views
            of one examination), for scoring studies (``score_by: study``); ``None`` otherwise.
    """

    id: str
    label: int | None
    path: str | None = None
    group: str | None = None
    row: int | None = None
    labels: tuple[int, ...] | None = None
    unknown: tuple[int, ...] = ()
    study: str | None = None


@dataclass
class DatasetIndex:
    """An adapter's view of one dataset root, before splitting.

    Attributes:
        name: adapter name.
        class_names: class names in class-index order.
        records: every image, in metadata order (the order the seeded split shuffles).
        root: dataset root (``None`` for synthetic); manifest paths are relative to it.
        official_split: per record ``"train" | "val" | "test"`` when the dataset publishes one.
        images: ``uint8 [N, H, W, 3]`` for array datasets (``Record.row`` indexes it).
        group_kind: what ``Record.group`` means (``"lesion"``, ``"patient"``) or ``None``.
        boxes: lesion boxes per record id, in original pixels (synthetic).
        box_loader: lazily computes the boxes of one record (e.g. from a mask file).
        source: the file the index was read from when it is not the root (the ``csv``
            adapter's CSV), for naming the dataset.
        task: ``"multiclass"`` (one class per image) or ``"multilabel"`` (any subset of the
            labels ``class_names`` per image, in ``Record.labels``). The data layer decides it
            once; everything downstream asks ``Splits.task``.
        box_labels: multi-label datasets with boxes: the label index of each box of
            ``boxes[id]``, in the same order.
        split_rule: how the adapter made ``official_split``, in words, when the dataset's own
            lists leave part of it to be drawn (NIH ChestX-ray14's validation from its
            ``train_val_list.txt``); ``None``: the dataset's own split as published.
        split_groups: the group kind ``official_split`` keeps whole (``"patient"`` for NIH's
            patient-disjoint lists), so ``group_by`` of that kind agrees with it.
    """

    name: str
    class_names: list[str]
    records: list[Record]
    root: Path | None = None
    official_split: list[str] | None = None
    images: np.ndarray | None = None
    group_kind: str | None = None
    boxes: dict[str, list[Box]] | None = None
    box_loader: Callable[[Record], list[Box] | None] | None = field(default=None, repr=False)
    source: Path | None = None
    task: str = "multiclass"
    box_labels: dict[str, list[int]] | None = None
    split_rule: str | None = None
    split_groups: str | None = None


@dataclass
class CsvLabels:
    """The labels of a CSV's rows as a kind of targets reads them (:mod:`lmfloss.data.targets`).

    Attributes:
        texts: each row's label(s) as one text: its class name, or its label names joined by ``;``.
        class_names: the class (label) names in index order, once known.
        values: each row's target, once the order is known: a class index, or the sorted
            indices of the labels present.
    """

    texts: list[str]
    class_names: list[str] | None = None
    values: list[Any] | None = None


def check_class_names(class_names: Sequence[str]) -> None:
    if len(class_names) < 2:
        raise ValueError(f"a classification dataset needs at least 2 classes, got {list(class_names)}")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class names must be unique, got {list(class_names)}")


NAN_LIKE = frozenset({"nan", "none", "null", "na", "n/a", "#n/a", "missing", "?"})


def _number(label: str) -> float | None:
    try:
        value = float(label)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def canonical_label(label: str) -> str:
    """``label`` as a class name: surrounding white space stripped, Unicode NFC form.

    ``"Névus"`` typed on one system and ``"Ne\u0301vus"`` (NFD, as macOS file names and some
    exports spell it) look the same and are one class; so are ``"Névus"`` and ``"Névus "``.
    The same rule makes one spelling of a file path or a group id (:func:`canonical_text`).
    """
    return unicodedata.normalize("NFC", label.strip())


def canonical_text(text: str) -> str:
    """``text`` in Unicode NFC form (ids, paths, group names: two spellings of one name are one)."""
    return unicodedata.normalize("NFC", text)


def _report_merged_spellings(labels: Iterable[str], source: str) -> None:
    """One INFO line naming the classes written in more than one way (see :func:`canonical_label`)."""
    spellings: dict[str, set[str]] = {}
    for label in labels:
        spellings.setdefault(canonical_label(label), set()).add(label)
    merged = {name: sorted(ways) for name, ways in sorted(spellings.items()) if len(ways) > 1}
    if merged:
        shown = "; ".join(f"{name!r} as {', '.join(ascii(w) for w in ways)}"
                          for name, ways in list(merged.items())[:5])
        more = f" (and {len(merged) - 5} more)" if len(merged) > 5 else ""
        logger.info("%s: %d label(s) written in several ways that differ only by Unicode normalisation or "
                    "surrounding spaces are one class each: %s%s", source, len(merged), shown, more)


def order_class_names(labels: Iterable[str], source: str) -> list[str]:
    """The class order of a dataset whose classes are label strings (``csv``, ``imagefolder``).

    Labels are compared as :func:`canonical_label` makes them (Unicode NFC, surrounding
    spaces stripped): spellings that differ only so are one class, named in its NFC form,
    and one INFO line lists them. Callers map each label with :func:`canonical_label`.

    The order is total and deterministic -- it depends only on the set of label strings,
    never on the order they appear in or on ``PYTHONHASHSEED``:

    * every label reads as a number (``"0"``, ``"2"``, ``"10"``, ``"1.5"``): by value;
    * otherwise: by the strings' Unicode code points (``"B" < "a"``; Python's ``sorted``).

    Two labels that are the same number written two ways (``"1"`` and ``"01"``, ``"1"`` and
    ``"1.0"``) are refused: they would be two classes whose order could only be guessed.
    Labels that differ only by case, or that look like a missing value (``nan``, ``NA``,
    ``none``...), are kept as classes of their own with a warning naming them.

    Raises:
        DataError: two labels are equal as numbers but different as strings.
    """
    labels = list(labels)
    _report_merged_spellings(labels, source)
    unique = sorted({canonical_label(label) for label in labels})
    numbers = {label: _number(label) for label in unique}
    by_value: dict[float, list[str]] = {}
    for label, value in numbers.items():
        if value is not None:
            by_value.setdefault(value, []).append(label)
    clash = next((names for names in by_value.values() if len(names) > 1), None)
    if clash:
        raise DataError(
            f"{source}: labels {clash[0]!r} and {clash[1]!r} are the same number written two ways; "
            "write each class the same way everywhere"
        )
    by_case: dict[str, list[str]] = {}
    for label in unique:
        by_case.setdefault(label.casefold(), []).append(label)
    for names in by_case.values():
        if len(names) > 1:
            logger.warning("%s: labels %s differ only by case and are separate classes; "
                           "is that intended?", source, " and ".join(repr(n) for n in names))
    missing = [label for label in unique if label.strip().casefold() in NAN_LIKE]
    if missing:
        logger.warning("%s: label(s) %s look like missing values but are used as class names",
                       source, ", ".join(repr(m) for m in missing))
    if all(value is not None for value in numbers.values()):
        return sorted(unique, key=lambda label: (numbers[label], label))
    return unique
