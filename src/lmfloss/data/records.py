"""What every adapter produces: :class:`Record` rows and a :class:`DatasetIndex`.

An adapter turns a dataset root into a ``DatasetIndex``: the fixed class names (their
order is the class index used everywhere), one :class:`Record` per image and, for
datasets that publish them, the official train/val/test assignment. Array datasets
(MedMNIST, synthetic) also carry the images themselves as one uint8 array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLIT_NAMES = ("train", "val", "test")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Record:
    """One labelled image.

    Attributes:
        id: unique identifier (file stem or ``<flag>-<split>-<row>``); written to predictions.csv.
        label: class index into ``class_names``.
        path: absolute path of the image file, or ``None`` for array datasets.
        group: lesion or patient identifier shared by images of one lesion/patient, or ``None``.
        row: row of the image in the dataset's in-memory array (array datasets only).
    """

    id: str
    label: int
    path: str | None = None
    group: str | None = None
    row: int | None = None


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


def check_class_names(class_names: Sequence[str]) -> None:
    if len(class_names) < 2:
        raise ValueError(f"a classification dataset needs at least 2 classes, got {list(class_names)}")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class names must be unique, got {list(class_names)}")
