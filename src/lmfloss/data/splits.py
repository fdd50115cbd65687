"""The paper's stratified 70:15:15 split, group-aware splits, and the :class:`Splits` object.

The paper (Sadi et al., "Datasets") splits every dataset 70:15:15 keeping each class's
proportion in every set. Per class ``c`` with ``n_c`` images::

    n_val = n_test = round_half_up(0.15 * n_c)
    n_train = n_c - 2 * n_val

Members are chosen by a seeded shuffle (default seed 23). On the full metadata this
reproduces Table 1 (e.g. HAM10000 7011/1502/1502) and every per-class training count
of Table 5 (e.g. HAM10000 DF: 115 - 2 * 17 = 81).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmfloss.data.images import read_image
from lmfloss.data.records import SPLIT_NAMES, Box, DatasetIndex, Record
from lmfloss.errors import DataError
from lmfloss.fileio import atomic_write_text, csv_text, dict_rows_text

logger = logging.getLogger(__name__)

GROUP_KINDS = ("lesion", "patient")


def round_half_up_15_percent(n: int) -> int:
    """``round_half_up(0.15 * n)`` in exact integer arithmetic (no float ties to worry about)."""
    return (15 * n + 50) // 100


def paper_split_sizes(n: int) -> tuple[int, int, int]:
    """``(train, val, test)`` sizes of a class with ``n`` images in the paper's split."""
    held_out = round_half_up_15_percent(n)
    return n - 2 * held_out, held_out, held_out


def paper_split(labels: Sequence[int], num_classes: int, seed: int = 23) -> list[str]:
    """Assign each item to ``"train" | "val" | "test"``, stratified per class.

    Args:
        labels: class index of each item, in metadata order.
        num_classes: number of classes.
        seed: seed of the per-class shuffle (``numpy.random.default_rng``); classes are
            shuffled in class-index order from one generator, so the result depends only
            on the seed and the metadata order.

    Returns:
        One split name per item.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=object)
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        _, n_val, n_test = paper_split_sizes(len(members))
        assignment[members[:n_val]] = "val"
        assignment[members[n_val : n_val + n_test]] = "test"
        assignment[members[n_val + n_test :]] = "train"
    return assignment.tolist()


def group_split(records: Sequence[Record], num_classes: int, seed: int = 23) -> list[str]:
    """Like :func:`paper_split` but whole groups (lesions, patients) go to one split.

    Each group is stratified by its most common label (ties: the smallest class index).
    Per class, groups are shuffled with the seed and filled into val until it holds
    ``round_half_up(0.15 * n_c)`` images, then into test likewise, the rest into train,
    so the per-class counts come close to the paper's while no group straddles splits.
    A record without a group is a group of its own.
    """
    return _fill_groups(records, num_classes, seed, ("val", "test"))


def _fill_groups(records: Sequence[Record], num_classes: int, seed: int, holdouts: tuple[str, ...],
                 use_groups: bool = True) -> list[str]:
    """Per class, fill each of ``holdouts`` with whole groups up to ``round_half_up(0.15 n_c)``
    images (in order), the rest ``"train"`` (see :func:`group_split`)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        groups[record.group if record.group and use_groups else f"\0{record.id}"].append(i)
    by_class: dict[int, list[str]] = defaultdict(list)
    for key, members in groups.items():
        counts = Counter(records[i].label for i in members)
        label = min(counts, key=lambda c: (-counts[c], c))
        by_class[label].append(key)
    rng = np.random.default_rng(seed)
    assignment: list[str] = [""] * len(records)
    for c in range(num_classes):
        keys = sorted(by_class.get(c, []), key=lambda k: min(groups[k]))  # metadata order
        keys = [keys[j] for j in rng.permutation(len(keys))]
        n_c = sum(len(groups[k]) for k in keys)
        _, target, _ = paper_split_sizes(n_c)
        filled = dict.fromkeys(holdouts, 0)
        for key in keys:
            split = next((h for h in holdouts if filled[h] < target), "train")
            if split != "train":
                filled[split] += len(groups[key])
            for i in groups[key]:
                assignment[i] = split
    return assignment


def mixed_class_groups(records: Sequence[Record]) -> dict[str, Counter[int]]:
    """The groups (lesions, patients) whose images are of more than one class, with their
    images per class, in metadata order. A grouped split stratifies such a group as its
    most common class (ties: the lower class index), as :func:`group_split` does."""
    counts: dict[str, Counter[int]] = {}
    for record in records:
        if record.group and record.label is not None:
            counts.setdefault(record.group, Counter())[record.label] += 1
    return {group: count for group, count in counts.items() if len(count) > 1}


def assign_folds(records: Sequence[Record], num_classes: int, k: int, seed: int = 23,
                 grouped: bool = False) -> list[int]:
    """The fold (1..k) of every record: stratified by class and, when ``grouped``, keeping
    every group (lesion, patient) in one fold (scikit-learn's ``StratifiedKFold`` /
    ``StratifiedGroupKFold``, shuffled with ``seed``: the same seed gives the same folds).

    Raises:
        ValueError: ``k < 2``, or more folds than the smallest class has images (or, grouped,
            than there are groups) -- naming the class or the count.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"--folds must be an integer >= 2, got {k!r}")
    labels = np.array([r.label for r in records], dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes)
    smallest = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
    if counts[smallest] < k:
        raise ValueError(f"--folds {k} is more than the smallest class has images (class {smallest}: "
                         f"{int(counts[smallest])}); every fold needs each class -- use --folds {int(counts[smallest])} or fewer")
    folds = np.zeros(len(records), dtype=np.int64)
    index = np.arange(len(records))
    if grouped:
        groups = [r.group if r.group else f"\0{r.id}" for r in records]
        n_groups = len(set(groups))
        if n_groups < k:
            raise ValueError(f"--folds {k} is more than the {n_groups} groups the data has")
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        parts = splitter.split(index, labels, groups)
    else:
        parts = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(index, labels)
    for fold, (_, test) in enumerate(parts, start=1):
        folds[test] = fold
    return folds.tolist()


def fold_split(records: Sequence[Record], num_classes: int, k: int, fold: int, seed: int = 23,
               grouped: bool = False) -> list[str]:
    """The split of cross-validation fold ``fold`` of ``k``: test = that fold; validation = a
    stratified (grouped) 15% of the others, per class as :func:`group_split` fills it;
    train = the rest.

    Raises:
        ValueError: see :func:`assign_folds`; ``fold`` outside ``1..k``.
    """
    if isinstance(fold, bool) or not isinstance(fold, int) or not 1 <= fold <= k:
        raise ValueError(f"fold must be an integer in 1..{k}, got {fold!r}")
    folds = assign_folds(records, num_classes, k, seed, grouped)
    rest = [i for i, f in enumerate(folds) if f != fold]
    inner = _fill_groups([records[i] for i in rest], num_classes, seed + fold, ("val",), use_groups=grouped)
    assignment = ["test" if f == fold else "" for f in folds]
    for i, split in zip(rest, inner):
        assignment[i] = split
    return assignment


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
        task: ``"multiclass"`` or ``"multilabel"`` (the index's; ``class_names`` are then the
            label names and records carry ``labels``).
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
        counts = [0] * self.num_classes
        for record in self._by_split[self._check_split(split)]:
            if self.task == "multilabel":
                for label in record.labels:
                    counts[label] += 1
            else:
                counts[record.label] += 1
        return counts

    def label_counts(self, split: str) -> list[list[int]]:
        """Multi-label: ``[L, 2]`` -- (negatives, positives) of each label among ``split``'s images."""
        from lmfloss.data.multilabel import label_count_table

        return label_count_table(self._by_split[self._check_split(split)], self.num_classes)

    def label_text(self, record: Record) -> str:
        """The record's class name, or for a multi-label record its label names joined by ``;``
        (empty for no finding) -- the form of a manifest and of a ``csv`` dataset's ``labels``."""
        if self.task == "multilabel":
            return ";".join(self.class_names[j] for j in record.labels)
        return self.class_names[record.label]

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
        """``{"path", "label", "split", "id"}`` for every record, train then val then test."""
        return [
            {
                "path": self.relative_path(r),
                "label": self.label_text(r),
                "split": split,
                "id": r.id,
            }
            for split in SPLIT_NAMES
            for r in self._by_split[split]
        ]

    def write_manifest(self, path: str | Path) -> Path:
        """Write ``path,label,split`` (paths relative to the root) as CSV; multi-label:
        ``path,labels,split`` with the label names joined by ``;`` (what ``--dataset csv --task
        multilabel`` reads back)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = self.manifest_rows()
        if self.task == "multilabel":
            rows = [{**row, "labels": row["label"]} for row in rows]
            atomic_write_text(dict_rows_text(["path", "labels", "split"], rows), path)
        else:
            atomic_write_text(dict_rows_text(["path", "label", "split"], rows), path)
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
        an image, a label, a split or the class order differs. ``report.json`` records it so
        that runs on different data are never compared, and ``evaluate``/``--resume``/``cam``
        check that the data did not change since training.
        """
        digest = hashlib.sha256(("\t".join(self.class_names) + "\n").encode())
        rows = sorted(f"{r['path']}\t{r['label']}\t{r['split']}" for r in self.manifest_rows())
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
            **({"task": "multilabel"} if self.task == "multilabel" else {}),
        }

    def rule(self) -> str:
        """How the images were split, in words (for reports and model cards)."""
        grouped = f", grouped by {self.group_by}" if self.group_by else ""
        if self.cv:
            return (f"{self.cv['folds']}-fold cross-validation (stratified{grouped}, fold seed "
                    f"{self.cv['fold_seed']}): fold {self.cv['fold']} as test, 15% of the rest as validation")
        if self.official:
            return "the dataset's own train/val/test split"
        if self.task == "multilabel":
            return f"an iteratively stratified 70:15:15 multi-label split{grouped}, seed {self.seed}"
        return f"the paper's stratified 70:15:15 split{grouped}, seed {self.seed}"

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
    """
    if splits.task == "multilabel":
        _check_split_labels(splits)
        return
    for c, name in enumerate(splits.class_names):
        total = sum(splits.class_counts(s)[c] for s in SPLIT_NAMES)
        if total == 0:
            raise DataError(
                f"class {name!r} of dataset {splits.name!r} has no images; "
                f"expected at least one image of every class in {splits.class_names}"
            )
        if splits.class_counts("train")[c] == 0:
            raise DataError(
                f"class {name!r} has 0 training images after splitting ({total} in all); "
                "every class needs at least one training image"
            )
        for split in ("val", "test"):
            if splits.class_counts(split)[c] == 0:
                logger.warning("class %r has no %s images (%d in all)", name, split, total)


def _check_split_labels(splits: Splits) -> None:
    tables = {s: splits.label_counts(s) for s in SPLIT_NAMES}
    for j, name in enumerate(splits.class_names):
        total = sum(tables[s][j][1] for s in SPLIT_NAMES)
        negatives, positives = tables["train"][j]
        if positives == 0:
            where = "" if not total else f"; its {total} positive image(s) are all in validation/test"
            raise DataError(f"label {name!r} of dataset {splits.name!r} has no positive training image{where}; "
                            "every label needs at least one -- fix the label name, add training images or drop it")
        if negatives == 0:
            raise DataError(f"label {name!r} is positive on every training image ({positives}); it cannot be "
                            "learned as a decision -- drop the label")
        for split in ("val", "test"):
            if tables[split][j][1] == 0:
                logger.warning("label %r has no positive %s image (%d in all); its %s scores are undefined and "
                               "listed as such", name, split, total, split)
