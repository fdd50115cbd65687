"""The report's cells and grid: the types every table, figure and test of a report reads.

A :class:`Grid` holds one :class:`Cell` per dataset x model x loss of the dataset's task (built by
:func:`lmfloss.report.aggregate.build_grid`; a loss only another task's runs used is
:data:`NOT_APPLICABLE` there, never a missing cell); a :class:`Comparison` is LMF against one
baseline in one dataset x model. Each dataset of the grid is a
:class:`~lmfloss.report.names.DatasetKey`, which knows its runs' task: a per-class task
(targets are class indices: macro-F1, per-class F1, a confusion matrix -- the paper's tables)
or a per-label one (multi-hot targets: mAP, per-label AP and AUC --
:mod:`lmfloss.report.multilabel`), as :func:`per_label` says.

This module sits below the report's other modules (aggregate, tables, summary, multilabel,
figures, html), which all import it; it imports none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from lmfloss.report.names import DatasetKey, dataset_key, is_baseline
from lmfloss.report.runs import ReportRun
from lmfloss.report.stats import PairedTest, SeedTest, mean_std
from lmfloss.task import Task

logger = logging.getLogger(__name__)

OK, MISSING, UNFINISHED = "ok", "missing", "unfinished"
# A loss no run of the dataset's task used (a multi-label loss beside a multi-class dataset):
# not a cell of the grid, never listed as missing.
NOT_APPLICABLE = "n/a"


def per_label(task: Task) -> bool:
    """Whether ``task``'s runs are reported label by label: multi-hot targets, whose
    ``report.json`` holds mAP and per-label AP/AUC (:mod:`lmfloss.report.multilabel`), rather
    than class by class (macro-F1, per-class F1, a confusion matrix)."""
    return task.target == "multi-hot"


@dataclass
class Cell:
    """One dataset x model x loss grid point.

    Attributes:
        status: ``ok`` (at least one finished run), ``missing`` or ``unfinished``.
        runs: Finished runs of the reported configuration, sorted by seed.
        unfinished: Unfinished runs of that configuration (not averaged).
        n_configs: Distinct configurations the reported one was chosen among: those with a
            finished run (1 unless a study was run; every one found where none finished).
        n_unfinished_configs: Configurations found with no finished run (a tuning trial
            stopped or still training): not chosen among.
        varied: Config keys whose values differ between those configurations, with the
            reported configuration's value (``loss_params.beta``, ``epochs``...).
    """

    dataset: DatasetKey
    model: str
    loss: str
    status: str = MISSING
    runs: list[ReportRun] = field(default_factory=list)
    unfinished: list[ReportRun] = field(default_factory=list)
    n_configs: int = 0
    n_unfinished_configs: int = 0
    varied: dict[str, object] = field(default_factory=dict)

    @property
    def task(self) -> Task:
        """The task of the cell's dataset."""
        return dataset_key(self.dataset).task

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]

    def values(self, metric: str) -> list[float]:
        """The finished runs' test values of ``metric`` (runs lacking it are skipped)."""
        return [v for v in (r.test(metric) for r in self.runs) if v is not None]

    def val_values(self, metric: str) -> list[float]:
        """The finished runs' validation values of ``metric``."""
        return [v for v in (r.val(metric) for r in self.runs) if v is not None]

    def mean_std(self, metric: str) -> tuple[float, float | None] | None:
        values = self.values(metric)
        return mean_std(values) if values else None

    def per_class_f1(self, class_name: str) -> list[float]:
        """The finished runs' test F1 of one class (runs that did not record it are skipped)."""
        values = (class_value(run, "f1_per_class", class_name) for run in self.runs)
        return [v for v in values if v is not None]


def class_value(run: ReportRun, key: str, class_name: str) -> float | None:
    """A per-class (per-label) test value of ``report.json`` (``f1_per_class``, ``ap_per_label``...)."""
    per_class = ((run.report or {}).get("test") or {}).get(key) or {}
    value = per_class.get(class_name)
    return None if value is None else float(value)


@dataclass
class Grid:
    """All cells plus the axes in display order."""

    datasets: list[DatasetKey]
    models: list[str]
    losses: list[str]
    cells: dict[tuple[str, str, str], Cell]
    expected_n: int  # the largest seed count of any cell: fewer is flagged with n=...
    # task name -> the losses its runs used: a dataset expects only its task's (none: every loss)
    task_losses: dict[str, frozenset[str]] = field(default_factory=dict)

    def cell(self, dataset: str, model: str, loss: str) -> Cell:
        """The cell of a grid point; a loss of another task than the dataset's is a
        :data:`NOT_APPLICABLE` cell, outside :attr:`cells` (never counted as missing)."""
        found = self.cells.get((dataset, model, loss))
        if found is None and loss in self.losses and loss not in self.losses_of(dataset):
            key = next(d for d in self.datasets if d == dataset)
            return Cell(key, model, loss, status=NOT_APPLICABLE)
        return self.cells[(dataset, model, loss)] if found is None else found

    def losses_of(self, dataset: str) -> list[str]:
        """The losses a dataset's cells are expected for: those its task's runs used, in order."""
        own = self.task_losses.get(self.task(dataset).name)
        return list(self.losses) if own is None else [loss for loss in self.losses if loss in own]

    def for_datasets(self, datasets: Sequence[str]) -> Grid:
        """The grid of ``datasets`` only, with only the losses their tasks have (Fig. 1 of the
        per-class datasets holds no empty slot for a multi-label loss)."""
        kept = [d for d in self.datasets if d in set(datasets)]
        losses = [loss for loss in self.losses if any(loss in self.losses_of(d) for d in kept)]
        return replace(self, datasets=kept, losses=losses)

    def task(self, dataset: str) -> Task:
        """The task of one of the grid's datasets (given as its key or its key's text)."""
        for key in self.datasets:
            if key == dataset:
                return dataset_key(key).task
        raise KeyError(f"dataset {dataset!r} is not in the report's grid: {list(self.datasets)}")


def per_class_datasets(grid: Grid) -> list[DatasetKey]:
    """The grid's datasets reported class by class (the paper's tables; :func:`per_label` is false)."""
    return [d for d in grid.datasets if not per_label(grid.task(d))]


def per_label_datasets(grid: Grid) -> list[DatasetKey]:
    """The grid's datasets reported label by label (:mod:`lmfloss.report.multilabel`)."""
    return [d for d in grid.datasets if per_label(grid.task(d))]


@dataclass(frozen=True)
class Comparison:
    """LMF against one baseline in one dataset x model.

    Attributes:
        seeds: the seeds both have, paired.
        seed_test: paired t-test over those seeds of the test difference of ``metric`` (from
            each run's ``report.json``), its t-interval, and the Holm-corrected p over the
            report's family (every LMF-vs-baseline comparison of the report).
        test: paired bootstrap over the same test images (needs ``predictions.csv``), or
            ``None`` when the predictions are missing or the test sets differ.
        metric: what is compared: ``f1_macro`` (a per-class dataset), ``map`` or
            ``auc_macro`` (a per-label one; both in the family).
    """

    dataset: DatasetKey
    model: str
    baseline: str
    seeds: list[int | None]
    seed_test: SeedTest
    test: PairedTest | None = None
    metric: str = "f1_macro"

    @property
    def task(self) -> Task:
        """The task of the compared dataset."""
        return dataset_key(self.dataset).task


def best_on_val(grid: Grid, dataset: str, model: str) -> Cell | None:
    """The baseline with the best mean **validation** headline metric of the dataset's task
    (macro-F1; mAP for a multi-label task) in a dataset x model (never chosen on test; LMF and
    LMF-DRW are not baselines); ``None`` without a finished baseline."""
    cells = [grid.cell(dataset, model, loss) for loss in grid.losses_of(dataset) if is_baseline(loss)]
    cells = [c for c in cells if c.status == OK]
    if not cells:
        return None
    metric = grid.task(dataset).headline
    cells = [c for c in cells if c.val_values(metric)]
    if not cells:
        return None
    return max(cells, key=lambda c: float(np.mean(c.val_values(metric))))


def paired_cells(grid: Grid, dataset: str, reference: str = "lmf") -> Iterator[
        tuple[str, str, Cell, Cell, list[tuple[ReportRun, ReportRun]]]]:
    """``(model, baseline, reference cell, baseline cell, seed pairs)`` of ``reference`` against
    every finished baseline of one dataset, runs paired by seed (and CV fold); a baseline
    sharing no seed is skipped with a warning."""
    for m in grid.models:
        ref = grid.cell(dataset, m, reference)
        if ref.status != OK:
            continue
        for loss in grid.losses_of(dataset):
            base = grid.cell(dataset, m, loss)
            if loss == reference or not is_baseline(loss) or base.status != OK:
                continue
            by_seed = {r.replicate: r for r in base.runs}
            pairs = [(r, by_seed[r.replicate]) for r in ref.runs if r.replicate in by_seed]
            if not pairs:
                logger.warning("%s/%s: no common seed between %s and %s; no paired test", dataset, m, reference, loss)
                continue
            yield m, loss, ref, base, pairs
