"""Group runs into the cells of the paper's tables: dataset x model x loss.

The grid is the one implied by the runs present (every dataset x model x loss seen
in any run); a grid point with no run is *missing*, one whose runs have not finished
is *unfinished*. Inside a cell, runs that differ only by seed are repeats; when a
cell holds several configurations (e.g. the LMF hyperparameter study), the one with
the best mean **validation** macro-F1 is reported — never chosen on test.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from lmfloss.report.names import is_baseline, order_datasets, order_losses, order_models
from lmfloss.report.runs import UNREADABLE, ReportRun, varied_settings
from lmfloss.report.stats import (
    PairedTest,
    SeedTest,
    holm,
    mean_std,
    paired_bootstrap_test,
    seed_t_test,
)

logger = logging.getLogger(__name__)

MAIN_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
CALIBRATION_METRICS = ("ece", "brier", "nll")
# The test-split scalars the tables average (besides per-class F1 and validation macro-F1).
AVERAGED_METRICS = (*MAIN_METRICS, *CALIBRATION_METRICS)
# ... and those of a multi-label study (besides per-label AP/AUC and validation mAP).
MULTILABEL_AVERAGED = ("map", "auc_macro", "auc_micro", "f1_macro", "f1_macro_at_threshold", *CALIBRATION_METRICS)
OK, MISSING, UNFINISHED = "ok", "missing", "unfinished"


@dataclass
class Cell:
    """One dataset x model x loss grid point.

    Attributes:
        status: ``ok`` (at least one finished run), ``missing`` or ``unfinished``.
        runs: Finished runs of the reported configuration, sorted by seed.
        unfinished: Unfinished runs of that configuration (not averaged).
        n_configs: Distinct configurations found (1 unless a study was run).
        varied: Config keys whose values differ between those configurations, with the
            reported configuration's value (``loss_params.beta``, ``epochs``...).
    """

    dataset: str
    model: str
    loss: str
    status: str = MISSING
    runs: list[ReportRun] = field(default_factory=list)
    unfinished: list[ReportRun] = field(default_factory=list)
    n_configs: int = 0
    varied: dict[str, object] = field(default_factory=dict)

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
        values = (_class_f1(run, class_name) for run in self.runs)
        return [v for v in values if v is not None]


def _class_f1(run: ReportRun, class_name: str) -> float | None:
    return _class_value(run, "f1_per_class", class_name)


def _class_value(run: ReportRun, key: str, class_name: str) -> float | None:
    """A per-class (per-label) test value of ``report.json`` (``f1_per_class``, ``ap_per_label``...)."""
    per_class = ((run.report or {}).get("test") or {}).get(key) or {}
    value = per_class.get(class_name)
    return None if value is None else float(value)


@dataclass
class Grid:
    """All cells plus the axes in display order."""

    datasets: list[str]
    models: list[str]
    losses: list[str]
    cells: dict[tuple[str, str, str], Cell]
    expected_n: int  # the largest seed count of any cell: fewer is flagged with n=...

    def cell(self, dataset: str, model: str, loss: str) -> Cell:
        return self.cells[(dataset, model, loss)]


def missing_values(grid: Grid) -> list[tuple[ReportRun, list[str]]]:
    """The runs the tables average that lack a value other runs record, and which values.

    A run's ``report.json`` may lack a metric (an older lmfloss did not record ``ece``, or
    the F1 of a class); its cell's mean of that metric then rests on fewer runs, which the
    tables mark with ``n=k``. A value counts as missing only where another averaged run
    records it (of the same dataset, for per-class F1), so a metric no run has is not listed.

    Returns:
        ``(run, keys)`` per run lacking something, in grid order; keys are ``report.json``
        paths: ``test.ece``, ``test.f1_per_class.<class>``, ``val.f1_macro``.
    """
    counted = [(cell.dataset, run) for cell in grid.cells.values() if cell.status == OK for run in cell.runs]
    scalars = {task: [m for m in (MULTILABEL_AVERAGED if task == "multilabel" else AVERAGED_METRICS)
                      if any(run.test(m) is not None for _, run in counted if run.task == task)]
               for task in ("multiclass", "multilabel")}
    per_class_key = {"multiclass": "f1_per_class", "multilabel": "ap_per_label"}
    classes: dict[str, list[str]] = defaultdict(list)
    for dataset, run in counted:
        for name in run.class_names:
            if name not in classes[dataset] and _class_value(run, per_class_key[run.task], name) is not None:
                classes[dataset].append(name)
    check_val = {task: any(run.val(run.primary_metric) is not None for _, run in counted if run.task == task)
                 for task in ("multiclass", "multilabel")}
    out = []
    for dataset, run in counted:
        key = per_class_key[run.task]
        keys = [f"test.{m}" for m in scalars[run.task] if run.test(m) is None]
        keys += [f"test.{key}.{c}" for c in classes[dataset] if _class_value(run, key, c) is None]
        if check_val[run.task] and run.val(run.primary_metric) is None:
            keys.append(f"val.{run.primary_metric}")
        if keys:
            out.append((run, keys))
    return out


def _config_score(runs: list[ReportRun]) -> float:
    """A configuration's mean validation score: macro-F1, or mAP for a multi-label task."""
    values = [v for v in (r.val(r.primary_metric) for r in runs) if v is not None]
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
    for run in runs:
        by_cell[(run.dataset, run.model, run.loss)].append(run)
    cells = {}
    for d in datasets:
        for m in models:
            for loss in losses:
                cells[(d, m, loss)] = _make_cell(d, m, loss, by_cell.get((d, m, loss), []))
    expected = max((c.n + len(c.unfinished) for c in cells.values()), default=0)
    return Grid(datasets, models, losses, cells, expected)


def _make_cell(dataset: str, model: str, loss: str, runs: list[ReportRun]) -> Cell:
    cell = Cell(dataset, model, loss)
    if not runs:
        return cell
    configs: dict[str, list[ReportRun]] = defaultdict(list)
    for run in runs:
        configs[run.experiment_key].append(run)
    cell.n_configs = len(configs)
    finished = {k: [r for r in v if r.finished] for k, v in configs.items()}
    candidates = [k for k, v in finished.items() if v]
    if not candidates:
        cell.status = UNFINISHED
        cell.unfinished = sorted(runs, key=_seed_key)
        return cell
    best = max(candidates, key=lambda k: (_config_score(finished[k]), len(finished[k])))
    if len(candidates) > 1:
        logger.info(
            "%s/%s/%s: %d configurations; reporting the best by validation %s",
            dataset, model, loss, len(candidates), "mAP" if runs[0].task == "multilabel" else "macro-F1",
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
        metric: what is compared: ``f1_macro`` (multi-class), ``map`` or ``auc_macro``
            (multi-label; both in the family).
    """

    dataset: str
    model: str
    baseline: str
    seeds: list[int | None]
    seed_test: SeedTest
    test: PairedTest | None = None
    metric: str = "f1_macro"


def best_on_val(grid: Grid, dataset: str, model: str) -> Cell | None:
    """The baseline with the best mean **validation** macro-F1 (multi-label: mAP) in a dataset
    x model (never chosen on test; LMF and LMF-DRW are not baselines); ``None`` without a
    finished baseline."""
    cells = [grid.cell(dataset, model, loss) for loss in grid.losses if is_baseline(loss)]
    cells = [c for c in cells if c.status == OK]
    if not cells:
        return None
    metric = cells[0].runs[0].primary_metric
    cells = [c for c in cells if c.val_values(metric)]
    if not cells:
        return None
    return max(cells, key=lambda c: float(np.mean(c.val_values(metric))))


def paired_cells(grid: Grid, dataset: str, reference: str = "lmf"):
    """``(model, baseline, reference cell, baseline cell, seed pairs)`` of ``reference`` against
    every finished baseline of one dataset, runs paired by seed (and CV fold); a baseline
    sharing no seed is skipped with a warning."""
    for m in grid.models:
        ref = grid.cell(dataset, m, reference)
        if ref.status != OK:
            continue
        for loss in grid.losses:
            base = grid.cell(dataset, m, loss)
            if loss == reference or not is_baseline(loss) or base.status != OK:
                continue
            by_seed = {r.replicate: r for r in base.runs}
            pairs = [(r, by_seed[r.replicate]) for r in ref.runs if r.replicate in by_seed]
            if not pairs:
                logger.warning("%s/%s: no common seed between %s and %s; no paired test", dataset, m, reference, loss)
                continue
            yield m, loss, ref, base, pairs


def paired_tests(
    grid: Grid, *, reference: str = "lmf", n_boot: int = 1000, seed: int = 0
) -> list[Comparison]:
    """``reference`` vs every baseline, per dataset x model: a paired t-test over seeds
    (Holm-corrected over all the comparisons returned) and a paired bootstrap over images.

    Runs are paired by seed; predictions are aligned by record id, so both systems are
    scored on the same resampled test images. Pairs without predictions or with different
    test sets get no image-level test (a warning says why). Multi-label datasets are compared
    on mAP and on macro AUC (:func:`lmfloss.report.multilabel.comparisons`), in the same
    Holm family.
    """
    from lmfloss.report.multilabel import comparisons as multilabel_comparisons
    from lmfloss.report.names import is_multilabel_dataset

    out: list[Comparison] = []
    if reference not in grid.losses:
        return out
    for d in grid.datasets:
        if is_multilabel_dataset(d):
            out += multilabel_comparisons(grid, d, reference=reference, n_boot=n_boot, seed=seed)
            continue
        for m, loss, ref, base, pairs in paired_cells(grid, d, reference):
            deltas = [a.test("f1_macro") - b.test("f1_macro") for a, b in pairs
                      if a.test("f1_macro") is not None and b.test("f1_macro") is not None]
            image_test = _paired(ref, base, pairs, n_boot=n_boot, seed=seed)
            out.append(Comparison(d, m, loss, [a.seed for a, _ in pairs], seed_t_test(deltas), image_test))
    adjusted = holm([c.seed_test.p for c in out])
    return [replace(c, seed_test=replace(c.seed_test, p_holm=p)) for c, p in zip(out, adjusted)]


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
                    pb = pa.aligned(run_b.predictions())
                except ValueError as exc:
                    raise ValueError(f"{run_b.run_dir} vs {run_a.run_dir}: {exc}") from None
                g_ids += list(pa.ids)
                g_labels += list(pa.labels)
                g_a += list(pa.preds)
                g_b += list(pb.preds)
            if ids is None:
                ids, labels = g_ids, np.asarray(g_labels)
                class_names = group[0][0].predictions().class_names
            elif sorted(g_ids) != sorted(ids):
                raise ValueError("the seeds were tested on different images")
            order = {i: k for k, i in enumerate(g_ids)}
            perm = [order[i] for i in ids]
            if not np.array_equal(np.asarray(g_labels)[perm], labels):
                raise ValueError("the seeds give different labels to the same test images")
            preds_a.append(np.asarray(g_a)[perm])
            preds_b.append(np.asarray(g_b)[perm])
    except (OSError, ValueError) as exc:
        logger.warning("%s/%s %s vs %s: no image-level test (%s)", ref.dataset, ref.model, ref.loss, base.loss, exc)
        return None
    k = max(len(class_names), int(labels.max()) + 1)
    return paired_bootstrap_test(labels, np.stack(preds_a), np.stack(preds_b), num_classes=k, n_boot=n_boot,
                                 seed=seed)
