"""Group runs into the cells of the paper's tables: dataset x model x loss.

The grid is the one implied by the runs present (every dataset x model x loss seen
in any run); a grid point with no run is *missing*, one whose runs have not finished
is *unfinished*. Inside a cell, runs that differ only by seed are repeats; when a
cell holds several configurations (e.g. the LMF hyperparameter study), the one with
the best mean **validation** headline metric of the task (macro-F1; mAP for a multi-label
task) is reported — never chosen on test. The cell and grid types live in
:mod:`lmfloss.report.grid` (re-exported here).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from lmfloss.report import multilabel
from lmfloss.report.grid import (
    MISSING,
    OK,
    UNFINISHED,
    Cell,
    Comparison,
    Grid,
    best_on_val,
    class_value,
    paired_cells,
    per_label,
)
from lmfloss.report.names import dataset_key, order_datasets, order_losses, order_models
from lmfloss.report.runs import UNREADABLE, ReportRun, aligned_preds, varied_settings
from lmfloss.report.stats import PairedTest, holm, paired_bootstrap_test, seed_t_test

__all__ = ["MISSING", "OK", "UNFINISHED", "Cell", "Comparison", "Grid", "best_on_val", "build_grid", "experiments",
           "missing_values", "paired_cells", "paired_tests"]

logger = logging.getLogger(__name__)


def missing_values(grid: Grid) -> list[tuple[ReportRun, list[str]]]:
    """The runs the tables average that lack a value other runs record, and which values.

    A run's ``report.json`` may lack a metric (an older lmfloss did not record ``ece``, or
    the F1 of a class); its cell's mean of that metric then rests on fewer runs, which the
    tables mark with ``n=k``. A value counts as missing only where another averaged run
    records it (of the same dataset, for per-class F1), so a metric no run has is not listed.

    Returns:
        ``(run, keys)`` per run lacking something, in grid order; keys are ``report.json``
        paths: ``test.ece``, ``test.f1_per_class.<class>``, ``val.f1_macro``. What is checked
        is the task's: its averaged metrics, its per-class (per-label) score, its headline.
    """
    counted = [(cell.dataset, run) for cell in grid.cells.values() if cell.status == OK for run in cell.runs]
    tasks = {run.task for _, run in counted}
    scalars = {task: [m for m in task.averaged_metrics
                      if any(run.test(m) is not None for _, run in counted if run.task is task)] for task in tasks}
    classes: dict[str, list[str]] = defaultdict(list)
    for dataset, run in counted:
        for name in run.class_names:
            if name not in classes[dataset] and class_value(run, run.task.per_item_metric, name) is not None:
                classes[dataset].append(name)
    check_val = {task: any(run.val(task.headline) is not None for _, run in counted if run.task is task)
                 for task in tasks}
    out = []
    for dataset, run in counted:
        task = run.task
        key = task.per_item_metric
        keys = [f"test.{m}" for m in scalars[task] if run.test(m) is None]
        keys += [f"test.{key}.{c}" for c in classes[dataset] if class_value(run, key, c) is None]
        if check_val[task] and run.val(task.headline) is None:
            keys.append(f"val.{task.headline}")
        if keys:
            out.append((run, keys))
    return out


def _config_score(runs: list[ReportRun]) -> float:
    """A configuration's mean validation score: its task's headline (macro-F1; mAP for a
    multi-label task)."""
    values = [v for v in (r.val(r.task.headline) for r in runs) if v is not None]
    return float(np.mean(values)) if values else float("-inf")


def build_grid(runs: Sequence[ReportRun]) -> Grid:
    """Group runs into cells of the dataset x model x loss grid they imply.

    Args:
        runs: Runs from :func:`lmfloss.report.runs.find_runs`.

    Returns:
        The :class:`Grid`; every grid point has a cell, possibly ``missing``.
    """
    datasets = order_datasets({r.dataset for r in runs})
    models = order_models({r.model for r in runs})
    losses = order_losses({r.loss for r in runs})
    by_cell: dict[tuple[str, str, str], list[ReportRun]] = defaultdict(list)
    task_losses: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        by_cell[(run.dataset, run.model, run.loss)].append(run)
        task_losses[run.task.name].add(run.loss)
    # A dataset expects the losses of its task only: a multi-label loss is no missing cell of a
    # multi-class dataset (and the reverse) in a report over both.
    owned = {name: frozenset(found) for name, found in task_losses.items()}
    cells = {}
    for d in datasets:
        expected_losses = owned.get(dataset_key(d).task.name, frozenset(losses))
        for m in models:
            for loss in losses:
                if loss in expected_losses:
                    cells[(d, m, loss)] = _make_cell(d, m, loss, by_cell.get((d, m, loss), []))
    expected = max((c.n + len(c.unfinished) for c in cells.values()), default=0)
    return Grid(datasets, models, losses, cells, expected, owned)


def _make_cell(dataset: str, model: str, loss: str, runs: list[ReportRun]) -> Cell:
    cell = Cell(dataset, model, loss)
    if not runs:
        return cell
    configs: dict[str, list[ReportRun]] = defaultdict(list)
    for run in runs:
        configs[run.experiment_key].append(run)
    finished = {k: [r for r in v if r.finished] for k, v in configs.items()}
    candidates = [k for k, v in finished.items() if v]
    cell.n_configs = len(candidates) or len(configs)
    cell.n_unfinished_configs = len(configs) - len(candidates) if candidates else 0
    if not candidates:
        cell.status = UNFINISHED
        cell.unfinished = sorted(runs, key=_seed_key)
        return cell
    best = max(candidates, key=lambda k: (_config_score(finished[k]), len(finished[k])))
    if len(candidates) > 1:
        logger.info(
            "%s/%s/%s: %d configurations; reporting the best by validation %s",
            dataset, model, loss, len(candidates), runs[0].task.headline_display,
        )
    cell.status = OK
    cell.runs = _one_per_seed(sorted(finished[best], key=_seed_key))
    cell.varied = varied_settings(cell.runs[0], [v[0] for v in configs.values()])
    cell.unfinished = sorted((r for r in configs[best] if not r.finished), key=_seed_key)
    return cell


def experiments(runs: Sequence[ReportRun]) -> list[Cell]:
    """Every experiment the runs hold, each as a :class:`Cell` of its own.

    An experiment is what a cell of :func:`build_grid` holds one of: the runs of one
    dataset sharing the experiment key (they differ only in seed, CV fold and runtime
    keys). Unlike the grid, no configuration is chosen: two experiments of one dataset x
    model x method (another ``stem``, LMF's ``alpha``) are two cells, ``varied`` naming
    the settings that tell them apart, ``n_configs`` how many share the method.

    Args:
        runs: runs from :func:`lmfloss.report.runs.find_runs` (unreadable ones are left out).

    Returns:
        Cells in the report's order (dataset, model, method), then by ``varied``; finished
        runs one per replicate (as in the grid), unfinished ones in ``unfinished``.
    """
    by_key: dict[tuple[str, str], list[ReportRun]] = defaultdict(list)
    for run in runs:
        if run.status != UNREADABLE:
            by_key[(run.dataset, run.experiment_key)].append(run)
    methods: dict[tuple[str, str, str], list[ReportRun]] = defaultdict(list)
    for group in by_key.values():
        methods[(group[0].dataset, group[0].model, group[0].loss)].append(group[0])
    cells = []
    for group in by_key.values():
        first = group[0]
        same_method = methods[(first.dataset, first.model, first.loss)]
        finished = _one_per_seed(sorted((r for r in group if r.finished), key=_seed_key))
        cells.append(Cell(
            first.dataset, first.model, first.loss, status=OK if finished else UNFINISHED, runs=finished,
            unfinished=sorted((r for r in group if not r.finished), key=_seed_key),
            n_configs=len(same_method), varied=varied_settings(first, same_method),
        ))
    datasets = order_datasets({c.dataset for c in cells})
    models = order_models({c.model for c in cells})
    losses = order_losses({c.loss for c in cells})
    return sorted(cells, key=lambda c: (datasets.index(c.dataset), models.index(c.model), losses.index(c.loss),
                                        json.dumps(c.varied, sort_keys=True, default=str)))


def _one_per_seed(runs: list[ReportRun]) -> list[ReportRun]:
    """Drop repeats of a replicate (the same seed and fold in two sweep folders): one vote each."""
    kept: dict[tuple[int, int], ReportRun] = {}
    for run in runs:
        if run.replicate in kept:
            logger.warning(
                "%s repeats seed %s (fold %s) of %s with the same config; counted once",
                run.run_dir, run.seed, run.fold, kept[run.replicate].run_dir,
            )
            continue
        kept[run.replicate] = run
    return list(kept.values())


def _seed_key(run: ReportRun) -> tuple[int, int, str]:
    return (*run.replicate, str(run.run_dir))


def paired_tests(
    grid: Grid, *, reference: str = "lmf", n_boot: int = 1000, seed: int = 0
) -> list[Comparison]:
    """``reference`` vs every baseline, per dataset x model: a paired t-test over seeds
    (Holm-corrected over all the comparisons returned) and a paired bootstrap over images.

    Runs are paired by seed; predictions are aligned by record id, so both systems are
    scored on the same resampled test images. Pairs without predictions or with different
    test sets get no image-level test (a warning says why). Datasets reported per label
    (multi-label) are compared on mAP and on macro AUC
    (:func:`lmfloss.report.multilabel.comparisons`), in the same Holm family.
    """
    out: list[Comparison] = []
    if reference not in grid.losses:
        return out
    for d in grid.datasets:
        compare = multilabel.comparisons if per_label(grid.task(d)) else per_class_comparisons
        out += compare(grid, d, reference=reference, n_boot=n_boot, seed=seed)
    adjusted = holm([c.seed_test.p for c in out])
    return [replace(c, seed_test=replace(c.seed_test, p_holm=p)) for c, p in zip(out, adjusted)]


def per_class_comparisons(grid: Grid, dataset: str, *, reference: str = "lmf", n_boot: int = 1000,
                          seed: int = 0) -> list[Comparison]:
    """``reference`` against every baseline of a dataset reported per class, per model, on
    test macro-F1 (unadjusted: :func:`paired_tests` applies Holm over the whole report)."""
    out = []
    for m, loss, ref, base, pairs in paired_cells(grid, dataset, reference):
        deltas = [a.test("f1_macro") - b.test("f1_macro") for a, b in pairs
                  if a.test("f1_macro") is not None and b.test("f1_macro") is not None]
        image_test = _paired(ref, base, pairs, n_boot=n_boot, seed=seed)
        out.append(Comparison(dataset, m, loss, [a.seed for a, _ in pairs], seed_t_test(deltas), image_test))
    return out


def _paired(ref: Cell, base: Cell, pairs: list, *, n_boot: int, seed: int) -> PairedTest | None:
    """Paired bootstrap over test images. Pairs of one seed over several CV folds are
    concatenated (each fold tests other images), so every image counts once per seed."""
    try:
        by_seed: dict[int, list] = defaultdict(list)
        for a, b in pairs:
            by_seed[a.replicate[0]].append((a, b))
        ids = labels = None
        preds_a, preds_b = [], []
        for group in by_seed.values():
            group.sort(key=lambda p: p[0].replicate)
            g_ids, g_labels, g_a, g_b = [], [], [], []
            for run_a, run_b in group:
                pa = run_a.predictions()
                try:
                    b_preds = aligned_preds(pa, run_b.predictions())
                except ValueError as exc:
                    raise ValueError(f"{run_b.run_dir} vs {run_a.run_dir}: {exc}") from None
                g_ids.append(pa.ids)
                g_labels.append(pa.labels)
                g_a.append(pa.preds)
                g_b.append(b_preds)
            g_ids, g_labels = np.concatenate(g_ids), np.concatenate(g_labels)
            if ids is None:
                ids, labels = g_ids, g_labels
                class_names = group[0][0].predictions().class_names
            if np.array_equal(g_ids, ids):  # the same images in the same order: nothing to permute
                perm = np.arange(len(ids))
            elif sorted(g_ids) != sorted(ids):
                raise ValueError("the seeds were tested on different images")
            else:
                order = {i: k for k, i in enumerate(g_ids)}
                perm = np.array([order[i] for i in ids], dtype=np.int64)
            if not np.array_equal(g_labels[perm], labels):
                raise ValueError("the seeds give different labels to the same test images")
            preds_a.append(np.concatenate(g_a)[perm])
            preds_b.append(np.concatenate(g_b)[perm])
    except (OSError, ValueError) as exc:
        logger.warning("%s/%s %s vs %s: no image-level test (%s)", ref.dataset, ref.model, ref.loss, base.loss, exc)
        return None
    k = max(len(class_names), int(labels.max()) + 1)
    return paired_bootstrap_test(labels, np.stack(preds_a), np.stack(preds_b), num_classes=k, n_boot=n_boot,
                                 seed=seed)
