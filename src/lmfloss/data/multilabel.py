"""Multi-label data: target matrices, label counts, splits by iterative stratification, a CSV's
labels column, and :data:`MULTI_HOT`, the data layer's ``multi-hot`` targets
(:mod:`lmfloss.data.targets`).

A multi-label record carries ``Record.labels``, the indices of the labels present (``()`` is
an image with no finding). Splitting must keep every label's prevalence in every split --
with rare labels (ChestMNIST's hernia is 0.2 % positive) a random split can leave one
without a single validation or test positive. The split and the folds use the iterative
stratification of Sechidis et al. (ECML PKDD 2011) from the ``iterative-stratification``
package (``iterstrat``: maintained, on PyPI, a dependency-free companion of scikit-learn's
splitters; ``scikit-multilearn``'s implementation has been unmaintained since 2018).

Grouped (``--group-by patient``): every group (a patient's eyes, a patient's X-rays) goes to
one split whole. The algorithm runs on the groups, each carrying the union of its images'
labels (ODIR-5K's two eyes share their patient's labels, so nothing is lost there); a record
without a group is a group of its own.

Proportions: 70:15:15 of the groups (train:val:test), as the paper's split of the
multi-class datasets. The seed breaks the algorithm's ties (the same seed, the same split).
"""

from __future__ import annotations

import logging
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

SPLIT_SHARES = {"val": 0.15, "test": 0.15, "train": 0.70}
# Below this many positives a label's loss weight, AP and validation-chosen threshold rest on a
# handful of images: trained and scored, but said so.
FEW_POSITIVES = 5


def targets_matrix(records: Sequence[Record], num_labels: int) -> np.ndarray:
    """``int8 [N, L]``: 1 where a record has the label, -1 where its value is unknown
    (``Record.unknown``), 0 elsewhere."""
    out = np.zeros((len(records), num_labels), dtype=np.int8)
    for i, record in enumerate(records):
        if record.labels is None:
            raise ValueError(f"record {record.id!r} has no multi-label targets (labels is None)")
        out[i, list(record.labels)] = 1
        out[i, list(record.unknown)] = -1
    return out


def label_count_table(records: Sequence[Record], num_labels: int) -> list[list[int]]:
    """``[L, 2]``: ``(negatives, positives)`` of each label among ``records``, over the images
    whose value of the label is known (an unknown value is neither)."""
    targets = targets_matrix(records, num_labels)
    positives = (targets == 1).sum(axis=0, dtype=np.int64)
    negatives = (targets == 0).sum(axis=0, dtype=np.int64)
    return [[int(n), int(p)] for n, p in zip(negatives, positives)]


def unknown_counts(records: Sequence[Record], num_labels: int) -> list[int]:
    """The images of ``records`` whose value of each label is unknown."""
    return (targets_matrix(records, num_labels) == -1).sum(axis=0, dtype=np.int64).tolist()


def _groups(records: Sequence[Record], num_labels: int, grouped: bool) -> tuple[list[list[int]], np.ndarray]:
    """``(members of each group, [G, L] union of their positive labels)`` in first-appearance order
    (an unknown value stratifies as a negative: nothing is known to be there)."""
    members: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        key = record.group if grouped and record.group else f"\0{record.id}"
        members.setdefault(key, []).append(i)
    targets = targets_matrix(records, num_labels) == 1
    lists = list(members.values())
    union = np.stack([targets[m].max(axis=0) for m in lists]) if lists else np.zeros((0, num_labels), bool)
    return lists, union


def _stratify(labels: np.ndarray, shares: Sequence[float], seed: int) -> np.ndarray:
    """The subset (index into ``shares``) of each row, by iterative stratification."""
    # deferred: iterstrat imports scikit-learn (seconds); only a multi-label split needs it
    from iterstrat.ml_stratifiers import IterativeStratification

    if len(labels) == 0:
        return np.zeros(0, dtype=np.int64)
    return IterativeStratification(labels=labels.astype(bool), r=np.asarray(shares, dtype=np.float64),
                                   random_state=np.random.RandomState(seed))


def multilabel_split(records: Sequence[Record], num_labels: int, seed: int = 23, grouped: bool = False) -> list[str]:
    """``"train" | "val" | "test"`` of every record: 70:15:15 of the (groups of) records,
    every label's prevalence kept in each split as far as its count allows."""
    names = list(SPLIT_SHARES)
    lists, union = _groups(records, num_labels, grouped)
    subset = _stratify(union, list(SPLIT_SHARES.values()), seed)
    assignment = [""] * len(records)
    for members, s in zip(lists, subset):
        for i in members:
            assignment[i] = names[int(s)]
    return assignment


def multilabel_folds(records: Sequence[Record], num_labels: int, k: int, seed: int = 23,
                     grouped: bool = False) -> list[int]:
    """The fold (1..k) of every record, by iterative stratification of the (groups of) records
    (``iterstrat``'s ``MultilabelStratifiedKFold``, shuffled with ``seed``).

    Raises:
        ValueError: ``k < 2`` or more folds than groups.
    """
    # deferred: iterstrat imports scikit-learn (seconds); only multi-label folds need it
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"--folds must be an integer >= 2, got {k!r}")
    lists, union = _groups(records, num_labels, grouped)
    if len(lists) < k:
        raise ValueError(f"--folds {k} is more than the {len(lists)} {'groups' if grouped else 'images'} the data has")
    few = [j for j in range(num_labels) if 0 < union[:, j].sum() < k]
    if few:
        logger.warning("%d label(s) have fewer positive %s than folds (%d): some folds test without them "
                       "(listed per fold in each report)", len(few), "groups" if grouped else "images", k)
    folds = np.zeros(len(records), dtype=np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(np.zeros((len(lists), 1)), union.astype(bool)), start=1):
        for g in test:
            folds[lists[g]] = fold
    return folds.tolist()


def multilabel_fold_split(records: Sequence[Record], num_labels: int, k: int, fold: int, seed: int = 23,
                          grouped: bool = False) -> list[str]:
    """The split of fold ``fold`` of ``k``: test = that fold; validation = a stratified 15 % of
    the other (groups of) records; train = the rest.

    Raises:
        ValueError: see :func:`multilabel_folds`; ``fold`` outside ``1..k``.
    """
    if isinstance(fold, bool) or not isinstance(fold, int) or not 1 <= fold <= k:
        raise ValueError(f"fold must be an integer in 1..{k}, got {fold!r}")
    folds = multilabel_folds(records, num_labels, k, seed, grouped)
    rest = [i for i, f in enumerate(folds) if f != fold]
    held = multilabel_holdout([records[i] for i in rest], num_labels, 0.15, seed + fold, grouped)
    assignment = ["test" if f == fold else "" for f in folds]
    for i, is_held in zip(rest, held):
        assignment[i] = "val" if is_held else "train"
    return assignment


def multilabel_holdout(records: Sequence[Record], num_labels: int, share: float, seed: int,
                       grouped: bool = False) -> list[bool]:
    """Whether each record is in a held-out ``share`` of the (groups of) records, drawn by
    iterative stratification (a validation set from a published training list, a fold's
    validation from the other folds)."""
    lists, union = _groups(records, num_labels, grouped)
    subset = _stratify(union, [share, 1.0 - share], seed)
    held = [False] * len(records)
    for members, s in zip(lists, subset):
        for i in members:
            held[i] = int(s) == 0
    return held


# ---- a CSV's labels column or 0/1 columns -------------------------------------------------


def zero_one(value: str, column: str, line: str, path: Path) -> int:
    """A 0/1 cell (``0``, ``1``, ``0.0``, ``1.0``) as an int; anything else names the cell."""
    text = value.strip()
    if text in ("0", "1", "0.0", "1.0"):
        return int(float(text))
    raise DataError(f"{str(path)!r} line {line}: column {column!r} holds {text!r}; a label column holds 0 or 1")


def multilabel_rows(rows: list[dict[str, str]], columns: list[str], label_columns: Sequence[str] | None,
                    csv_path: Path) -> tuple[list[str], list[tuple[int, ...]]]:
    """``(label names, the labels present in each row)`` of a multi-label CSV: its ``labels``
    column (``;``-separated names, empty = no finding) or its 0/1 ``label_columns``."""
    if label_columns:
        names = [canonical_label(c) for c in label_columns]
        joined = [c for c in names if ";" in c]
        if joined:  # manifests and predictions.csv list an image's labels ';'-separated
            raise DataError(f"--label-columns: label {joined[0]!r} has a ';', which separates labels in manifests "
                            "and predictions.csv; rename the column")
        if len(set(names)) != len(names):
            raise DataError(f"--label-columns {list(label_columns)} names a label twice")
        both = [r["_line"] for r in rows if "labels" in columns and r["labels"].strip()]
        if both:
            raise DataError(f"{str(csv_path)!r} line {both[0]} has a value in the 'labels' column and the label "
                            f"columns {list(label_columns)}; give each image's labels one way")
        headers = _label_headers(columns, names, label_columns, csv_path)
        sets = [tuple(j for j, c in enumerate(headers) if zero_one(r[c], c, r["_line"], csv_path))
                for r in rows]
        return names, sets
    if "labels" not in columns:
        raise DataError(f"{str(csv_path)!r} has no column 'labels' (';'-separated label names, empty = no finding); "
                        f"found columns {columns}, or pass --label-columns A,B,C for one 0/1 column per label")
    # Each name as written (spaces beside a ';' are the separator's, not a second spelling):
    # order_class_names reports names written in several Unicode forms, as for single labels.
    written = [[part.strip() for part in r["labels"].split(";") if part.strip()] for r in rows]
    per_row = [[canonical_label(name) for name in names] for names in written]
    _check_separator(rows, per_row, csv_path)
    names = order_class_names([n for row in written for n in row], f"{str(csv_path)!r}")
    position = {name: i for i, name in enumerate(names)}
    return names, [tuple(sorted({position[n] for n in row})) for row in per_row]


# Label names that usually mean "none of the labels" (NIH ChestX-ray14's, CheXpert's, a normal class).
NO_FINDING_LIKE = frozenset({"no finding", "no findings", "no_finding", "nofinding", "normal", "none"})


def without_no_finding(names: list[str], label_sets: list[tuple[int, ...]], rows: list[dict[str, str]],
                       no_finding: str | None, csv_path: Path) -> tuple[list[str], list[tuple[int, ...]]]:
    """``(names, label_sets)`` with the label ``no_finding`` read as "no label": left out of the
    labels, an image carrying it has none (``--no-finding 'No Finding'``). An image with it and
    a finding is refused, naming its line. Without ``no_finding``, a label whose name looks like
    one (:data:`NO_FINDING_LIKE`) is a warning: it is trained and scored as a label of its own.

    Raises:
        DataError: an image with ``no_finding`` and another label.
    """
    source = str(csv_path)
    if no_finding is None:
        alike = [n for n in names if n.casefold() in NO_FINDING_LIKE]
        if alike:
            logger.warning("%r: label(s) %s look like 'no label' but are trained and scored as labels of their "
                           "own; pass --no-finding %r to read it as an image without labels", source,
                           ", ".join(repr(n) for n in alike), alike[0])
        return names, label_sets
    wanted = canonical_label(no_finding)
    if wanted not in names:
        logger.warning("%r: --no-finding %r is no label of the file (labels: %s)", source, no_finding, names)
        return names, label_sets
    j = names.index(wanted)
    both = next((row["_line"] for row, s in zip(rows, label_sets) if j in s and len(s) > 1), None)
    if both is not None:
        raise DataError(f"{source!r} line {both}: {wanted!r} (--no-finding: no label) beside other labels; "
                        "an image has findings or none")
    shift = [k - (k > j) for k in range(len(names))]
    return [n for k, n in enumerate(names) if k != j], [tuple(shift[k] for k in s if k != j) for s in label_sets]


def _label_headers(columns: list[str], names: list[str], label_columns: Sequence[str], csv_path: Path) -> list[str]:
    """The header of each label column, matched in NFC as every other name (a header typed
    written in NFD is the column ``--label-columns`` names in NFC)."""
    by_name = {canonical_label(c): c for c in columns}
    missing = [asked for asked, name in zip(label_columns, names) if name not in by_name]
    if missing:
        raise DataError(f"CSV file {str(csv_path)!r} lacks column(s) {missing}; found columns {columns}")
    return [by_name[name] for name in names]


def _check_separator(rows: list[dict[str, str]], per_row: list[list[str]], csv_path: Path) -> None:
    """A labels column written with another separator (NIH ChestX-ray14's ``A|B``, or ``A,B``)
    would make every combination a label of its own: refused, naming the row. A name with ``|``
    is never one label; one with ``,`` is refused when its parts are labels of other rows."""
    known = {name for row in per_row for name in row}
    for row, names in zip(rows, per_row):
        for name in names:
            for separator in ("|", ","):
                parts = [part.strip() for part in name.split(separator)]
                if len(parts) > 1 and (separator == "|" or all(part in known for part in parts)):
                    raise DataError(f"{str(csv_path)!r} line {row['_line']}: label {name!r} looks like several "
                                    f"labels joined by {separator!r}; the labels column separates names with ';' "
                                    f"(e.g. {';'.join(parts)})")


def check_training_labels(rows: list[dict[str, str]], label_sets: list[tuple[int, ...]], official: list[str],
                          names: list[str], csv_path: Path) -> None:
    """With a ``split`` column, a label that no training row has is a typo or an unlearnable
    label: refused with the first line that has it."""
    in_train = {j for labels, split in zip(label_sets, official) if split == "train" for j in labels}
    for row, labels, split in zip(rows, label_sets, official):
        unknown = [names[j] for j in labels if j not in in_train]
        if unknown:
            raise DataError(f"{str(csv_path)!r} line {row['_line']} ({split} split): label {unknown[0]!r} appears in "
                            f"no train row; known from training: {[n for j, n in enumerate(names) if j in in_train]} "
                            "-- fix the name, or add training images of it")


def _warn_few_positives(class_names: Sequence[str], tables: Mapping[str, list[list[int]]]) -> None:
    """One warning naming each label with fewer than :data:`FEW_POSITIVES` training or
    validation positives, with its counts (a validation without any is warned about apart)."""
    few = [(label, tables["train"][j][1], tables["val"][j][1]) for j, label in enumerate(class_names)
           if tables["train"][j][1] < FEW_POSITIVES or 0 < tables["val"][j][1] < FEW_POSITIVES]
    if few:
        logger.warning("%d label(s) with fewer than %d training or validation positives: %s; their loss weights, "
                       "AP and validation-chosen thresholds rest on a handful of images", len(few), FEW_POSITIVES,
                       ", ".join(f"{label!r} ({train} train, {val} val)" for label, train, val in few))


class MultiHot:
    """The ``multi-hot`` targets: a record's ``labels`` are the indices of the labels present.

    What the data layer does with such targets -- count, show, split, fold and check them, read
    them from a CSV -- asked through :func:`lmfloss.data.targets.targets_of`, never by the task's name.
    """

    kind = "multi-hot"
    column = "labels"  # the manifest's and the folds file's column: label names joined by ';'
    table_words = ("label (positives)", "images")  # the count table's first column and its last row
    has_positive_class = False  # a decision per label, at thresholds chosen on validation
    takes_label_columns = True

    # ---- records --------------------------------------------------------------------------
    def record(self, id: str, value: tuple[int, ...], *, path: str | None = None, group: str | None = None,
               row: int | None = None) -> Record:
        """A :class:`Record` with the labels ``value`` (no class index)."""
        return Record(id=id, label=None, path=path, group=group, row=row, labels=value)

    def has(self, record: Record, c: int) -> bool:
        return c in record.labels

    def counts(self, records: Sequence[Record], num_classes: int) -> list[int]:
        """The positive images of each label."""
        counts = [0] * num_classes
        for record in records:
            for label in record.labels:
                counts[label] += 1
        return counts

    def text(self, record: Record, class_names: Sequence[str]) -> str:
        """The record's label names joined by ``;`` (empty for no finding): a manifest's ``labels``."""
        return ";".join(class_names[j] for j in record.labels)

    def array(self, records: Sequence[Record], num_labels: int) -> np.ndarray:
        """``int64 [N, L]``: 1 positive, 0 negative, -1 unknown (a dataset's ``labels``; the task's
        ``loss_target`` makes the unknown entries NaN for the losses, the metrics skip them)."""
        return targets_matrix(records, num_labels).astype(np.int64)

    def table_totals(self, column_sums: list[int], images: list[int]) -> list[int]:
        """The count table's last row: the images per split (an image counts once, whatever its labels)."""
        return images

    # ---- splits ---------------------------------------------------------------------------
    def split(self, records: Sequence[Record], num_labels: int, seed: int, grouped: bool) -> list[str]:
        return multilabel_split(records, num_labels, seed, grouped=grouped)

    def folds(self, records: Sequence[Record], num_labels: int, k: int, seed: int, grouped: bool) -> list[int]:
        return multilabel_folds(records, num_labels, k, seed, grouped=grouped)

    def fold_split(self, records: Sequence[Record], num_labels: int, k: int, fold: int, seed: int,
                   grouped: bool) -> list[str]:
        return multilabel_fold_split(records, num_labels, k, fold, seed, grouped=grouped)

    def rule(self, grouped: str, seed: int) -> str:
        return f"an iteratively stratified 70:15:15 multi-label split{grouped}, seed {seed}"

    def check_splits(self, name: str, class_names: Sequence[str], records: Mapping[str, Sequence[Record]]) -> None:
        """Every label needs a positive (and a negative) training image; a label no validation or
        test image has is a warning (its scores there are listed as undefined)."""
        tables = {s: label_count_table(records[s], len(class_names)) for s in SPLIT_NAMES}
        for j, label in enumerate(class_names):
            total = sum(tables[s][j][1] for s in SPLIT_NAMES)
            negatives, positives = tables["train"][j]
            if positives == 0:
                where = "" if not total else f"; its {total} positive image(s) are all in validation/test"
                raise DataError(f"label {label!r} of dataset {name!r} has no positive training image{where}; "
                                "every label needs at least one -- fix the label name, add training images or drop it")
            if negatives == 0:
                raise DataError(f"label {label!r} is positive on every training image ({positives}); it cannot be "
                                "learned as a decision -- drop the label")
            for split in ("val", "test"):
                if tables[split][j][1] == 0:
                    logger.warning("label %r has no positive %s image (%d in all); its %s scores are undefined and "
                                   "listed as such", label, split, total, split)
        _warn_few_positives(class_names, tables)

    def warn_groups(self, index: DatasetIndex, group_by: str) -> None:
        """Nothing to warn about: a group is split with the union of its images' labels."""

    # ---- a CSV's labels -------------------------------------------------------------------
    def csv_columns(self, label_columns: Sequence[str] | None) -> list[str]:
        """The columns a CSV of these targets must have (its ``labels`` column and its label
        columns, matched in NFC, are checked when read)."""
        return ["path"]

    def csv_labels(self, rows: list[dict[str, str]], columns: list[str], label_columns: Sequence[str] | None,
                   csv_path: Path, no_finding: str | None = None) -> CsvLabels:
        """The rows' labels, from the ``labels`` column or the 0/1 ``label_columns``
        (:func:`multilabel_rows`), with the label order; ``no_finding`` read as no label
        (:func:`without_no_finding`)."""
        class_names, label_sets = multilabel_rows(rows, columns, label_columns, csv_path)
        class_names, label_sets = without_no_finding(class_names, label_sets, rows, no_finding, csv_path)
        texts = [";".join(class_names[j] for j in s) for s in label_sets]
        return CsvLabels(texts, class_names, label_sets)

    def csv_classes(self, labels: CsvLabels, rows: list[dict[str, str]], csv_path: Path) -> CsvLabels:
        """``labels``: their order was known as they were read."""
        return labels

    def check_csv_split(self, rows: list[dict[str, str]], labels: CsvLabels, official: list[str],
                        csv_path: Path) -> None:
        """With a ``split`` column, a label that no training row has is refused (:func:`check_training_labels`)."""
        check_training_labels(rows, labels.values, official, labels.class_names, csv_path)


MULTI_HOT = MultiHot()
