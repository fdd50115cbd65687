"""Class-index data, one class per image: the paper's stratified split, group-aware splits
and folds, and :data:`CLASS_INDEX`, the data layer's ``index`` targets
(:mod:`lmfloss.data.targets`; a multi-class task's, or any task whose target is a class index).

The paper (Sadi et al., "Datasets") splits every dataset 70:15:15 keeping each class's
proportion in every set. Per class ``c`` with ``n_c`` images::

    n_val = n_test = round_half_up(0.15 * n_c)
    n_train = n_c - 2 * n_val

Members are chosen by a seeded shuffle (default seed 23). On the full metadata this
reproduces Table 1 (e.g. HAM10000 7011/1502/1502) and every per-class training count
of Table 5 (e.g. HAM10000 DF: 115 - 2 * 17 = 81).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lmfloss.data.records import (
    SPLIT_NAMES,
    CsvLabels,
    DatasetIndex,
    Record,
    canonical_label,
    order_class_names,
)
from lmfloss.errors import DataError

logger = logging.getLogger(__name__)


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
    # deferred: scikit-learn takes seconds to import and only k-fold needs it (lmfloss split stays instant)
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


class ClassIndex:
    """The ``index`` targets: a record's ``label`` is its one class's index.

    What the data layer does with such targets -- count, show, split, fold and check them, read
    them from a CSV -- asked through :func:`lmfloss.data.targets.targets_of`, never by the task's
    name (a one-logit binary task has these targets as well as the multi-class one).
    """

    kind = "index"
    column = "label"  # the manifest's and the folds file's column
    table_words = ("class", "total")  # the count table's first column and its last row
    has_positive_class = True  # a binary task's positive class (Youden threshold)
    takes_label_columns = False

    # ---- records --------------------------------------------------------------------------
    def record(self, id: str, value: int, *, path: str | None = None, group: str | None = None,
               row: int | None = None) -> Record:
        """A :class:`Record` of class ``value``."""
        return Record(id=id, label=value, path=path, group=group, row=row)

    def has(self, record: Record, c: int) -> bool:
        return record.label == c

    def counts(self, records: Sequence[Record], num_classes: int) -> list[int]:
        """Images per class."""
        counts = [0] * num_classes
        for record in records:
            counts[record.label] += 1
        return counts

    def text(self, record: Record, class_names: Sequence[str]) -> str:
        """The record's class name (a manifest's ``label``)."""
        return class_names[record.label]

    def array(self, records: Sequence[Record], num_classes: int) -> np.ndarray:
        """``int64 [N]``: the class index of each record (a dataset's ``labels``)."""
        return np.array([r.label for r in records], dtype=np.int64)

    def table_totals(self, column_sums: list[int], images: list[int]) -> list[int]:
        """The count table's last row: the images per split, the sum of its class rows."""
        return column_sums

    # ---- splits ---------------------------------------------------------------------------
    def split(self, records: Sequence[Record], num_classes: int, seed: int, grouped: bool) -> list[str]:
        """The paper's split (:func:`paper_split`), or with ``grouped`` :func:`group_split`."""
        if grouped:
            return group_split(records, num_classes, seed)
        return paper_split([r.label for r in records], num_classes, seed)

    def folds(self, records: Sequence[Record], num_classes: int, k: int, seed: int, grouped: bool) -> list[int]:
        return assign_folds(records, num_classes, k, seed, grouped=grouped)

    def fold_split(self, records: Sequence[Record], num_classes: int, k: int, fold: int, seed: int,
                   grouped: bool) -> list[str]:
        return fold_split(records, num_classes, k, fold, seed, grouped=grouped)

    def rule(self, grouped: str, seed: int) -> str:
        """How :meth:`split` split the images, in words (``grouped``: ``", grouped by patient"``)."""
        return f"the paper's stratified 70:15:15 split{grouped}, seed {seed}"

    def check_splits(self, name: str, class_names: Sequence[str], records: Mapping[str, Sequence[Record]]) -> None:
        """Every class needs training images; an empty val/test class is only a warning."""
        counts = {split: self.counts(records[split], len(class_names)) for split in SPLIT_NAMES}
        for c, class_name in enumerate(class_names):
            total = sum(counts[s][c] for s in SPLIT_NAMES)
            if total == 0:
                raise DataError(
                    f"class {class_name!r} of dataset {name!r} has no images; "
                    f"expected at least one image of every class in {list(class_names)}"
                )
            if counts["train"][c] == 0:
                raise DataError(
                    f"class {class_name!r} has 0 training images after splitting ({total} in all); "
                    "every class needs at least one training image"
                )
            for split in ("val", "test"):
                if counts[split][c] == 0:
                    logger.warning("class %r has no %s images (%d in all)", class_name, split, total)

    def warn_groups(self, index: DatasetIndex, group_by: str) -> None:
        """One warning naming the groups with images of several classes (the first few and the
        count): a grouped split or fold keeps each in one place, stratified as one class."""
        mixed = mixed_class_groups(index.records)
        if not mixed:
            return
        kind = index.group_kind or group_by

        def counts(count: Counter[int]) -> str:
            return ", ".join(f"{index.class_names[c]} {n}" for c, n in sorted(count.items()))

        shown = "; ".join(f"{group!r} ({counts(count)})" for group, count in list(mixed.items())[:3])
        more = "; ..." if len(mixed) > 3 else ""
        logger.warning("%d %s group(s) have images of more than one class: %s%s; each stays whole in one split, "
                       "stratified as its most common class (ties: the first in class order), and takes its other "
                       "images along", len(mixed), kind, shown, more)

    # ---- a CSV's labels -------------------------------------------------------------------
    def csv_columns(self, label_columns: Sequence[str] | None) -> list[str]:
        """The columns a CSV of these targets must have."""
        return ["path", "label"]

    def csv_labels(self, rows: list[dict[str, str]], columns: list[str], label_columns: Sequence[str] | None,
                   csv_path: Path, no_finding: str | None = None) -> CsvLabels:
        """Each row's ``label`` (:func:`lmfloss.data.records.canonical_label`); an empty one names its lines.
        ``no_finding`` is refused: an image has exactly one class, so "no label" is a class here."""
        if no_finding is not None:
            raise ValueError(f"--no-finding {no_finding!r} is for multi-label tasks (--task multilabel); an image of "
                             "a multi-class task has one class, and a class meaning 'no finding' is one of them")
        labels = [canonical_label(r["label"]) for r in rows]
        empty = [r["_line"] for r, label in zip(rows, labels) if not label]
        if empty:
            raise DataError(f"{str(csv_path)!r}: empty label on line(s) {', '.join(empty[:5])}")
        return CsvLabels(labels)

    def csv_classes(self, labels: CsvLabels, rows: list[dict[str, str]], csv_path: Path) -> CsvLabels:
        """``labels`` with the class order (:func:`lmfloss.data.records.order_class_names`) and
        each row's class index."""
        class_names = order_class_names([r["label"] for r in rows], f"{str(csv_path)!r}")
        position = {name: i for i, name in enumerate(class_names)}
        return CsvLabels(labels.texts, class_names, [position[label] for label in labels.texts])

    def check_csv_split(self, rows: list[dict[str, str]], labels: CsvLabels, official: list[str],
                        csv_path: Path) -> None:
        """Nothing to check here: a class with no training image is refused once split
        (:meth:`check_splits`)."""


CLASS_INDEX = ClassIndex()
