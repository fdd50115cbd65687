"""What a task's targets are to the data layer, keyed by :attr:`lmfloss.task.Task.target`.

A task says what its targets are (``index``: one class per image; ``multi-hot``: any subset
of the labels); the data layer keeps one object per kind that counts, shows, splits, folds
and checks such targets and reads them from a CSV: :data:`lmfloss.data.classindex.CLASS_INDEX`
and :data:`lmfloss.data.multilabel.MULTI_HOT`. Every data module asks :func:`targets_of`
instead of comparing the task's name, so a new task with class-index targets (a one-logit
binary task) is split, cached and loaded as the multi-class one is, with no change here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lmfloss.data.classindex import CLASS_INDEX
from lmfloss.data.multilabel import MULTI_HOT
from lmfloss.data.records import CsvLabels, DatasetIndex, Record
from lmfloss.task import TASKS, Task, get_task, of_target

__all__ = ["TARGETS", "Targets", "or_words", "targets_of", "tasks_where"]


class Targets(Protocol):
    """One kind of targets, as the data layer handles them.

    Attributes:
        kind: the :attr:`lmfloss.task.Task.target` it serves (``index``, ``multi-hot``).
        column: the manifest's (and the folds file's) label column.
        table_words: ``lmfloss split``'s count table: its first column's header and last row's name.
        has_positive_class: a binary task's ``positive_class`` applies.
        takes_label_columns: a ``csv`` dataset may give the labels as 0/1 ``label_columns``.
    """

    kind: str
    column: str
    table_words: tuple[str, str]
    has_positive_class: bool
    takes_label_columns: bool

    def record(self, id: str, value: Any, *, path: str | None = None, group: str | None = None,
               row: int | None = None) -> Record:
        """A :class:`Record` whose target is ``value`` (a class index; the labels' indices)."""

    def has(self, record: Record, c: int) -> bool:
        """Whether ``record`` is of class (has label) ``c``."""

    def counts(self, records: Sequence[Record], num_classes: int) -> list[int]:
        """Images per class (multi-hot: the positive images of each label)."""

    def text(self, record: Record, class_names: Sequence[str]) -> str:
        """The record's target as a manifest writes it."""

    def array(self, records: Sequence[Record], num_classes: int) -> np.ndarray:
        """The records' targets as a dataset holds them (``int64 [N]``; ``float32 [N, L]``)."""

    def table_totals(self, column_sums: list[int], images: list[int]) -> list[int]:
        """The count table's last row, from its columns' sums and the images per split."""

    def split(self, records: Sequence[Record], num_classes: int, seed: int, grouped: bool) -> list[str]:
        """``"train" | "val" | "test"`` of every record (70:15:15, stratified; groups whole)."""

    def folds(self, records: Sequence[Record], num_classes: int, k: int, seed: int, grouped: bool) -> list[int]:
        """The fold (1..k) of every record."""

    def fold_split(self, records: Sequence[Record], num_classes: int, k: int, fold: int, seed: int,
                   grouped: bool) -> list[str]:
        """The split of fold ``fold`` of ``k``: that fold tests, 15% of the rest validates."""

    def rule(self, grouped: str, seed: int) -> str:
        """How :meth:`split` splits, in words."""

    def check_splits(self, name: str, class_names: Sequence[str], records: Mapping[str, Sequence[Record]]) -> None:
        """Refuse splits a run cannot train on (:class:`lmfloss.errors.DataError`); warn about the rest."""

    def warn_groups(self, index: DatasetIndex, group_by: str) -> None:
        """Warn about groups a grouped split cannot keep whole without a compromise."""

    def csv_columns(self, label_columns: Sequence[str] | None) -> list[str]:
        """The columns a ``csv`` dataset must have."""

    def csv_labels(self, rows: list[dict[str, str]], columns: list[str], label_columns: Sequence[str] | None,
                   csv_path: Path, no_finding: str | None = None) -> CsvLabels:
        """The rows' labels as read (a malformed one names its line); ``no_finding``: the label
        name read as "no label" (refused by targets without an empty label set)."""

    def csv_classes(self, labels: CsvLabels, rows: list[dict[str, str]], csv_path: Path) -> CsvLabels:
        """``labels`` with the class order and each row's target."""

    def check_csv_split(self, rows: list[dict[str, str]], labels: CsvLabels, official: list[str],
                        csv_path: Path) -> None:
        """Refuse labels a CSV's own ``split`` column leaves unlearnable."""


TARGETS: dict[str, Targets] = {CLASS_INDEX.kind: CLASS_INDEX, MULTI_HOT.kind: MULTI_HOT}
"""Target kind (:attr:`lmfloss.task.Task.target`) -> its :class:`Targets`."""


def targets_of(task: Task | str | Any | None) -> Targets:
    """The :class:`Targets` of ``task`` (a :class:`~lmfloss.task.Task`, its name, a config; ``None``:
    the default task's).

    Raises:
        ValueError: an unknown task, or a task whose targets the data layer does not read.
    """
    return of_target(TARGETS, get_task(task), "reader in the data layer")


def tasks_where(predicate: Callable[[Task], bool]) -> list[Task]:
    """The registered tasks for which ``predicate`` holds, in registration order (the tasks a
    config key or a metric is for, as an error names them)."""
    return [task for task in TASKS.values() if predicate(task)]


def or_words(words: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return " or ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} or {words[-1]}"
