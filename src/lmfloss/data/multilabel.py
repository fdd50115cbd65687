"""Multi-label data: target matrices, label counts, and splits by iterative stratification.

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
from collections.abc import Sequence

import numpy as np

from lmfloss.data.records import Record

logger = logging.getLogger(__name__)

SPLIT_SHARES = {"val": 0.15, "test": 0.15, "train": 0.70}


def targets_matrix(records: Sequence[Record], num_labels: int) -> np.ndarray:
    """``uint8 [N, L]``: 1 where a record has the label."""
    out = np.zeros((len(records), num_labels), dtype=np.uint8)
    for i, record in enumerate(records):
        if record.labels is None:
            raise ValueError(f"record {record.id!r} has no multi-label targets (labels is None)")
        out[i, list(record.labels)] = 1
    return out


def label_count_table(records: Sequence[Record], num_labels: int) -> list[list[int]]:
    """``[L, 2]``: ``(negatives, positives)`` of each label among ``records``."""
    positives = targets_matrix(records, num_labels).sum(axis=0, dtype=np.int64)
    return [[len(records) - int(p), int(p)] for p in positives]


def _groups(records: Sequence[Record], num_labels: int, grouped: bool) -> tuple[list[list[int]], np.ndarray]:
    """``(members of each group, [G, L] union of their labels)`` in first-appearance order."""
    members: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        key = record.group if grouped and record.group else f"\0{record.id}"
        members.setdefault(key, []).append(i)
    targets = targets_matrix(records, num_labels)
    lists = list(members.values())
    union = np.stack([targets[m].max(axis=0) for m in lists]) if lists else np.zeros((0, num_labels), np.uint8)
    return lists, union


def _stratify(labels: np.ndarray, shares: Sequence[float], seed: int) -> np.ndarray:
    """The subset (index into ``shares``) of each row, by iterative stratification."""
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
    inner = [records[i] for i in rest]
    lists, union = _groups(inner, num_labels, grouped)
    subset = _stratify(union, [0.15, 0.85], seed + fold)
    assignment = ["test" if f == fold else "" for f in folds]
    for members, s in zip(lists, subset):
        for i in members:
            assignment[rest[i]] = "val" if s == 0 else "train"
    return assignment
