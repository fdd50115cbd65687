"""The :class:`Splits` object: a dataset divided into train/val/test, and its checks.

How the records are divided is the targets' (:mod:`lmfloss.data.targets`): the paper's
stratified 70:15:15 split of class-index data (:mod:`lmfloss.data.classindex`, re-exported
here: :func:`paper_split`, :func:`group_split`, :func:`assign_folds`, :func:`fold_split`),
or the iterative stratification of multi-label data (:mod:`lmfloss.data.multilabel`).
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmfloss.data.classindex import (
    assign_folds,
    fold_split,
    group_split,
    mixed_class_groups,
    paper_split,
    paper_split_sizes,
    round_half_up_15_percent,
)
from lmfloss.data.images import read_image
from lmfloss.data.multilabel import label_count_table
from lmfloss.data.records import SPLIT_NAMES, Box, DatasetIndex, Record
from lmfloss.data.targets import Targets, targets_of
from lmfloss.fileio import atomic_write_text, csv_text, dict_rows_text
from lmfloss.task import get_task

__all__ = [
    "GROUP_KINDS",
    "Splits",
    "assign_folds",
    "check_split_classes",
    "count_straddling_groups",
    "fold_split",
    "group_split",
    "mixed_class_groups",
    "paper_split",
    "paper_split_sizes",
    "round_half_up_15_percent",
]

GROUP_KINDS = ("lesion", "patient")


def count_straddling_groups(records: Sequence[Record], assignment: Sequence[str]) -> int:
    """Number of groups (lesions/patients) whose images fall into more than one split."""
    seen: dict[str, set[str]] = defaultdict(set)
    for record, split in zip(records, assignment):
        if record.group:
            seen[record.group].add(split)
    return sum(1 for splits in seen.values() if len(splits) > 1)


class Splits:
    """A dataset divided into train/val/test (see ``docs/ARCHITECTURE.md``).

    Attributes:
        name: adapter name.
        class_names: class names; their order is the class index used everywhere.
        root: dataset root or ``None``.
        seed: split seed; ``group_by``: ``None | "lesion" | "patient"``.
        official: True when the dataset's own split was kept (MedMNIST, csv ``split`` column).
        straddling_groups: groups whose images fall into more than one split (0 with group_by).
        skipped: paths (or ids) of undecodable images left out (``skip_bad_images=True``).
        cv: ``{"folds", "fold", "fold_seed"}`` for a cross-validation fold's split, else ``None``.
        task: the task's name (the index's: :mod:`lmfloss.task`); with ``multi-hot`` targets
            ``class_names`` are the label names and records carry ``labels``.
    """

    def __init__(
        self,
        index: DatasetIndex,
        assignment: Sequence[str],
        *,
        seed: int,
        group_by: str | None,
        official: bool,
        skip_bad_images: bool = False,
        skipped: Sequence[str] = (),
        cv: dict[str, int] | None = None,
    ) -> None:
        if len(assignment) != len(index.records):
            raise ValueError(f"{len(assignment)} split assignments for {len(index.records)} records")
        self.index = index
        self.name = index.name
        self.class_names = list(index.class_names)
        self.root = index.root
        self.seed = seed
        self.group_by = group_by
        self.official = official
        self.skip_bad_images = skip_bad_images
        self.skipped: list[str] = list(skipped)
        self.cv = dict(cv) if cv else None
        self.task = index.task
        self._by_split: dict[str, list[Record]] = {s: [] for s in SPLIT_NAMES}
        for record, split in zip(index.records, assignment):
            self._by_split[split].append(record)
        self.straddling_groups = count_straddling_groups(index.records, assignment)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def targets(self) -> Targets:
        """What the task's targets are to the data layer (:func:`lmfloss.data.targets.targets_of`)."""
        return targets_of(self.task)

    def _check_split(self, split: str) -> str:
        if split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {list(SPLIT_NAMES)}, got {split!r}")
        return split

    def records(self, split: str) -> list[Record]:
        """The records of ``split`` (``"train" | "val" | "test"``), in metadata order."""
        return list(self._by_split[self._check_split(split)])

    def class_counts(self, split: str) -> list[int]:
        """Images per class in ``split``, in class-index order (multi-label: the positive
        images of each label)."""
        return self.targets.counts(self._by_split[self._check_split(split)], self.num_classes)

    def label_counts(self, split: str) -> list[list[int]]:
        """Multi-label: ``[L, 2]`` -- (negatives, positives) of each label among ``split``'s images."""
        return label_count_table(self._by_split[self._check_split(split)], self.num_classes)

    def label_text(self, record: Record) -> str:
        """The record's class name, or for a multi-label record its label names joined by ``;``
        (empty for no finding) -- the form of a manifest and of a ``csv`` dataset's ``labels``."""
        return self.targets.text(record, self.class_names)

    def load_image(self, record: Record, intensity: str = "dtype") -> np.ndarray:
        """The image of ``record`` as ``uint8 [H, W, 3]`` at its original resolution
        (non-8-bit files through the ``intensity`` rule of :mod:`lmfloss.data.images`)."""
        if record.row is not None and self.index.images is not None:
            return np.array(self.index.images[record.row])  # a writable copy
        if record.path is None:
            raise ValueError(f"record {record.id!r} has neither an image path nor an array row")
        return read_image(record.path, intensity=intensity)

    def boxes(self, record: Record, label: int | None = None) -> list[Box] | None:
        """Lesion boxes ``[(x0, y0, x1, y1)]`` in original pixels, or ``None`` if unknown.

        ``x1``/``y1`` are exclusive (the box covers columns ``x0 .. x1-1``). Multi-label data
        with boxes per label (the synthetic set): ``label`` keeps that label's boxes only.
        """
        if self.index.boxes is not None:
            boxes = self.index.boxes.get(record.id)
            kinds = (self.index.box_labels or {}).get(record.id)
            if label is None or boxes is None:
                return boxes
            if kinds is None:
                return None  # boxes of unknown kind cannot be told apart by label
            return [box for box, kind in zip(boxes, kinds) if kind == label]
        if self.index.box_loader is not None:
            return self.index.box_loader(record)
        return None

    def relative_path(self, record: Record) -> str:
        """The manifest path of ``record``: relative to the root, or the record id."""
        if record.path is None:
            return record.id
        if self.root is None:
            return record.path
        return Path(os.path.relpath(record.path, self.root)).as_posix()

    def manifest_rows(self) -> list[dict[str, str]]:
        """``{"path", "label", "split", "id", "unknown"}`` for every record, train then val then test
        (``unknown``: the names of the labels whose value is not known, joined by ``;``)."""
        return [
            {
                "path": self.relative_path(r),
                "label": self.label_text(r),
                "split": split,
                "id": r.id,
                "unknown": ";".join(self.class_names[j] for j in r.unknown),
            }
            for split in SPLIT_NAMES
            for r in self._by_split[split]
        ]

    def write_manifest(self, path: str | Path) -> Path:
        """Write ``path,label,split`` (paths relative to the root) as CSV; multi-label:
        ``path,labels,split`` with the label names joined by ``;`` (what ``--dataset csv --task
        multilabel`` reads back) and, when some label's value is unknown (CheXpert under U-Ignore),
        a column ``unknown`` of those label names (read back as a csv, they would be negative)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        column = self.targets.column
        rows = [{**row, column: row["label"]} for row in self.manifest_rows()]
        unknown = ["unknown"] if any(row["unknown"] for row in rows) else []
        atomic_write_text(dict_rows_text(["path", column, "split", *unknown], rows), path)
        return path

    def write_boxes(self, path: str | Path) -> Path | None:
        """Write ``id,x0,y0,x1,y1`` (one row per box) when the dataset knows its boxes."""
        if self.index.boxes is None and self.index.box_loader is None:
            return None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.index.box_labels is not None:  # boxes of known kinds: say which label each box is
            rows = [[record.id, *box, self.class_names[kind]] for split in SPLIT_NAMES
                    for record in self._by_split[split]
                    for box, kind in zip(self.boxes(record) or [], self.index.box_labels.get(record.id, []))]
            atomic_write_text(csv_text(["id", "x0", "y0", "x1", "y1", "label"], rows), path)
            return path
        rows = [[record.id, *box] for split in SPLIT_NAMES for record in self._by_split[split]
                for box in self.boxes(record) or []]
        atomic_write_text(csv_text(["id", "x0", "y0", "x1", "y1"], rows), path)
        return path

    def leakage(self) -> dict[str, object] | None:
        """How much the split leaks through groups (lesions, patients), or ``None`` when the
        data has no group ids: ``straddling_groups`` (groups with images in more than one
        split), ``test_images_affected`` (test images whose group also has training or
        validation images) and ``test_share`` (their share of the test split)."""
        if not any(r.group for r in self.index.records):
            return None
        outside_test = {r.group for s in ("train", "val") for r in self._by_split[s] if r.group}
        test = self._by_split["test"]
        affected = sum(1 for r in test if r.group and r.group in outside_test)
        return {
            "group_kind": self.index.group_kind,
            "group_by": self.group_by,
            "straddling_groups": self.straddling_groups,
            "test_images_affected": affected,
            "test_share": affected / len(test) if test else 0.0,
        }

    def fingerprint(self) -> str:
        """A short hash of the data a run sees: the class names in index order and every
        image's manifest path (relative to the root), class and split.

        Equal for the same data found under another root (another machine); different when
        an image, a label (or which labels are unknown), a split or the class order differs. ``report.json`` records it so
        that runs on different data are never compared, and ``evaluate``/``--resume``/``cam``
        check that the data did not change since training.
        """
        digest = hashlib.sha256(("\t".join(self.class_names) + "\n").encode())
        # an unknown label (U-Ignore) is data too: U-Zeros and U-Ignore differ only there
        rows = sorted(f"{r['path']}\t{r['label']}\t{r['split']}" + (f"\t?{r['unknown']}" if r["unknown"] else "")
                      for r in self.manifest_rows())
        for row in rows:
            digest.update(f"{row}\n".encode())
        return digest.hexdigest()[:12]

    @property
    def display_name(self) -> str:
        """A short name for reports: the CSV's file stem, the image folder's name, else the adapter's."""
        if self.name == "csv" and self.index.source is not None:
            return Path(self.index.source).stem
        if self.name == "imagefolder" and self.root is not None:
            return Path(self.root).name
        return self.name

    def identity(self) -> dict[str, object]:
        """What ``report.json`` records about the data (``data``): adapter, display name,
        fingerprint, where it was read from and the images per split."""
        source = self.index.source or self.root
        return {
            "dataset": self.name,
            "name": self.display_name,
            "fingerprint": self.fingerprint(),
            "source": None if source is None else str(source),
            "images": {s: len(self._by_split[s]) for s in SPLIT_NAMES},
            "leakage": self.leakage(),
            "split": self.rule(),
            # A record without a task is the default task's (lmfloss 0.1 wrote none): only another is written.
            **({} if get_task(self.task) is get_task(None) else {"task": self.task}),
        }

    def rule(self) -> str:
        """How the images were split, in words (for reports and model cards)."""
        grouped = f", grouped by {self.group_by}" if self.group_by else ""
        if self.cv:
            return (f"{self.cv['folds']}-fold cross-validation (stratified{grouped}, fold seed "
                    f"{self.cv['fold_seed']}): fold {self.cv['fold']} as test, 15% of the rest as validation")
        if self.official:
            return self.index.split_rule or "the dataset's own train/val/test split"
        return self.targets.rule(grouped, self.seed)

    def count_table(self) -> list[tuple[str, int, int, int]]:
        """``(class, train, val, test)`` rows in class-index order (multi-label: positives per label)."""
        columns = [self.class_counts(s) for s in SPLIT_NAMES]
        return [(name, *(col[c] for col in columns)) for c, name in enumerate(self.class_names)]

    def __repr__(self) -> str:
        sizes = "/".join(str(len(self._by_split[s])) for s in SPLIT_NAMES)
        return f"Splits({self.name!r}, classes={self.num_classes}, train/val/test={sizes})"


def check_split_classes(splits: Splits) -> None:
    """Every class needs training images; an empty val/test class is only a warning.

    Multi-label: every label needs a positive (and a negative) training image; a label no
    validation or test image has is a warning (its scores there are listed as undefined).
    The check is the targets' (:meth:`lmfloss.data.targets.Targets.check_splits`).
    """
    splits.targets.check_splits(splits.name, splits.class_names, {s: splits.records(s) for s in SPLIT_NAMES})
