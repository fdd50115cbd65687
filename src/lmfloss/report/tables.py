"""The paper's Tables 2-6 built from runs (and, on request, beside the paper's numbers).

Numbers are percentages with two decimals, as in the paper; ``mean ± std`` (sample
standard deviation) where a cell has several seeds, with ``n=k`` whenever a value rests on
fewer runs than the fullest cell has (a seed unfinished, or a metric an older run did not
record), so nothing is averaged over a partial set silently (:mod:`lmfloss.report.formats`).
Only the datasets reported per class are here; per-label ones have tables of their own
(:mod:`lmfloss.report.multilabel`).
"""

from __future__ import annotations

import logging

import numpy as np

from lmfloss.report.formats import (
    DASH,
    fmt_p,
    metric_text,
    n_note,
    num,
    pct,
    seeds_note,
    signed_pct,
    status_text,
)
from lmfloss.report.grid import OK, Cell, Comparison, Grid, per_class_datasets
from lmfloss.report.names import dataset_name, loss_name, model_name
from lmfloss.report.paper import (
    paper_best_hparams,
    paper_main,
    paper_per_class,
    paper_train_samples,
)
from lmfloss.report.render import Table
from lmfloss.report.runs import aligned_preds
from lmfloss.report.stats import cell_interval
from lmfloss.report.tuning import tuned_note

logger = logging.getLogger(__name__)

METRIC_LABELS = {
    "accuracy": "Accuracy",
    "precision_macro": "Precision",
    "recall_macro": "Recall",
    "f1_macro": "Macro F1",
}
# The paper's table number of each architecture (Tables 2-4) — others get their own name.
PAPER_TABLE_OF_MODEL = {"efficientnet_v2_s": 2, "resnet50": 3, "densenet121": 4}


def f1_interval(cell: Cell, n_boot: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """95% bootstrap interval of the cell's macro-F1 over test images.

    One run: its ``report.json`` ``f1_macro_ci95``. Several seeds: the interval of the
    seed-mean macro-F1, resampling the shared test images (needs ``predictions.csv``).
    """
    if cell.status != OK:
        return None
    if cell.n == 1:
        ci = ((cell.runs[0].report or {}).get("test") or {}).get("f1_macro_ci95")
        if ci and len(ci) == 2:
            return float(ci[0]), float(ci[1])
    try:
        first = cell.runs[0].predictions()
        stacked = [aligned_preds(first, r.predictions()) for r in cell.runs]
    except (OSError, ValueError) as exc:
        logger.warning("%s/%s/%s: no macro-F1 interval (%s)", cell.dataset, cell.model, cell.loss, exc)
        return None
    labels = first.labels
    k = max(len(first.class_names), int(max(labels.max(), np.max(stacked))) + 1)
    return cell_interval(labels, np.stack(stacked), num_classes=k, n_boot=n_boot, seed=seed)


def _mark_best(table: Table, row_block: list[int], columns: list[int], scores: dict) -> None:
    for j in columns:
        values = {i: scores[(i, j)] for i in row_block if (i, j) in scores}
        if not values:
            continue
        top = max(values.values())
        table.best.update((i, j) for i, v in values.items() if np.isclose(v, top, rtol=0, atol=1e-12))


def main_table(
    grid: Grid, model: str, comparisons: list[Comparison] | None = None, n_boot: int = 1000,
    seed: int = 0,
) -> Table:
    """Tables 2-4: dataset x loss with accuracy, precision, recall, macro-F1 for one model.

    Extra columns beyond the paper: the macro-F1 95% bootstrap interval and, for each
    baseline, LMF's macro-F1 advantage over it with the paired bootstrap p-value.
    The best value per column within each dataset is bold.
    """
    number = PAPER_TABLE_OF_MODEL.get(model)
    name = f"table{number}_{model}" if number else f"table_main_{model}"
    title = f"Test performance of each loss on {model_name(model)} (percent)"
    if number:
        title = f"Table {number}. {title}"
    columns = ["Dataset", "Loss", *METRIC_LABELS.values(), "Macro F1 95% CI"]
    has_tests = bool(comparisons) and "lmf" in grid.losses
    if has_tests:
        columns.append("LMF − loss ΔF1 (p)")
    table = Table(name=name, title=title, columns=columns)
    tests = {(c.dataset, c.baseline): c for c in (comparisons or []) if c.model == model and c.metric == "f1_macro"}
    scores: dict[tuple[int, int], float] = {}
    for dataset in per_class_datasets(grid):
        block = []
        for k, loss in enumerate(grid.losses_of(dataset)):
            cell = grid.cell(dataset, model, loss)
            i = len(table.rows)
            row = [dataset_name(dataset) if k == 0 else "", loss_name(loss)]
            for j, metric in enumerate(METRIC_LABELS, start=2):
                row.append(metric_text(cell, metric, grid.expected_n))
                stats = cell.mean_std(metric) if cell.status == OK else None
                if stats is not None:
                    scores[(i, j)] = stats[0]
            ci = f1_interval(cell, n_boot=n_boot, seed=seed)
            row.append(DASH if ci is None else f"[{pct(ci[0])}, {pct(ci[1])}]{n_note(cell.n, grid.expected_n)}")
            if has_tests:
                comp = tests.get((dataset, loss))
                row.append(DASH if loss == "lmf" or comp is None else _delta_text(comp, grid.expected_n))
            table.rows.append(row)
            block.append(i)
        _mark_best(table, block, [2, 3, 4, 5], scores)
    table.notes.append(
        "Bold: best per column within a dataset. ± is the standard deviation over seeds; "
        "n=k marks a value resting on fewer runs than the fullest cell has (a seed unfinished, or a "
        "metric a run did not record: report.md lists which)."
    )
    table.notes.append("95% CI: percentile bootstrap over test images (of the seed mean where n>1).")
    if has_tests:
        table.notes.append(
            "ΔF1: LMF macro-F1 minus this loss's, percentage points, mean over paired seeds; p: paired t-test "
            "over seeds, Holm-corrected over the report's comparisons (with fewer than 3 seeds: the paired "
            "bootstrap over test images, marked 'images')."
        )
    table.notes.extend(_config_notes(grid, model))
    return table


def _delta_text(comp: Comparison, expected_n: int) -> str:
    t = comp.seed_test
    # Over seeds: the pairs with a macro-F1 on both sides (t.n); over images: every seed paired.
    if t.p is not None and t.mean is not None:
        p = fmt_p(t.p_holm if t.p_holm is not None else t.p)
        return f"{signed_pct(t.mean)} (p{'' if p.startswith('<') else '='}{p}{_n_part(t.n, expected_n)})"
    if comp.test is not None:
        p = fmt_p(comp.test.p_value)
        return (f"{signed_pct(comp.test.delta)} (images p{'' if p.startswith('<') else '='}{p}"
                f"{_n_part(len(comp.seeds), expected_n)})")
    return DASH if t.mean is None else f"{signed_pct(t.mean)}{n_note(t.n, expected_n)}"


def _n_part(n: int, expected_n: int) -> str:
    return "" if n == expected_n else f"; n={n}"


def _config_notes(grid: Grid, model: str) -> list[str]:
    notes = []
    for dataset in grid.datasets:
        for loss in grid.losses_of(dataset):
            cell = grid.cell(dataset, model, loss)
            if cell.status == OK and (cell.n_configs > 1 or cell.n_unfinished_configs):
                chosen = ", ".join(f"{k}={v}" for k, v in cell.varied.items())
                ran = "ran" if not cell.n_unfinished_configs else \
                    f"finished ({cell.n_unfinished_configs} more did not: not chosen among)"
                shown = f"the best by validation {grid.task(dataset).headline_display}" if cell.n_configs > 1 \
                    else "that one"
                notes.append(
                    f"{dataset_name(dataset)} / {loss_name(loss)}: {cell.n_configs} configuration"
                    f"{'s' if cell.n_configs > 1 else ''} {ran}; shown is {shown} ({chosen})."
                )
    return notes


def compare_main_table(grid: Grid, model: str) -> Table | None:
    """Tables 2-4 beside the paper: measured, published and difference per metric.

    Only the paper's datasets get rows. Returns ``None`` when the architecture or every
    dataset is not the paper's.
    """
    number = PAPER_TABLE_OF_MODEL.get(model)
    datasets = [d for d in grid.datasets if any(paper_main(d, model, loss) for loss in grid.losses)]
    if number is None or not datasets:
        return None
    columns = ["Dataset", "Loss"]
    for label in METRIC_LABELS.values():
        columns += [label, f"{label} (paper)", "Δ"]
    table = Table(
        name=f"table{number}_{model}_vs_paper",
        title=f"Table {number} vs the paper: {model_name(model)} (percent; Δ = measured − paper)",
        columns=columns,
    )
    for dataset in datasets:
        for k, loss in enumerate(grid.losses_of(dataset)):
            cell = grid.cell(dataset, model, loss)
            published = paper_main(dataset, model, loss)
            row = [dataset_name(dataset) if k == 0 else "", loss_name(loss)]
            for metric in METRIC_LABELS:
                row.append(metric_text(cell, metric, grid.expected_n))
                paper_value = None if published is None else published[metric]
                row.append(DASH if paper_value is None else f"{paper_value:.2f}")
                stats = cell.mean_std(metric) if cell.status == OK else None
                if stats is None or paper_value is None:
                    row.append(DASH)
                else:
                    row.append(num(100 * stats[0] - paper_value, "+.2f"))
            table.rows.append(row)
    table.notes.append("Paper: Sadi et al., Tables 2-4 (single runs at 224 px, 100 epochs).")
    return table


def train_counts(grid: Grid, dataset: str) -> dict[str, int]:
    """Training-sample count per class name, from any finished run of ``dataset``."""
    for cell in grid.cells.values():
        if cell.dataset == dataset and cell.status == OK:
            for run in cell.runs:
                counts = (run.report or {}).get("train_class_counts")
                if counts is not None and len(counts) == len(run.class_names):
                    return {c: int(n) for c, n in zip(run.class_names, counts)}
    return {}


def _class_names(grid: Grid, dataset: str) -> list[str]:
    for cell in grid.cells.values():
        if cell.dataset == dataset and cell.status == OK and cell.runs[0].class_names:
            return cell.runs[0].class_names
    return []


def per_class_table(grid: Grid, model: str, compare_paper: bool = False) -> Table:
    """Table 5: per-class test F1 of each loss with training-sample counts, for one model.

    Bold: best loss per class. With ``compare_paper`` (EfficientNetV2 only, the paper's
    Table 5 model) each loss also gets the published value and the difference.
    """
    compare = compare_paper and model == "efficientnet_v2_s"
    losses = grid.for_datasets(per_class_datasets(grid)).losses  # the columns: the per-class tasks' losses
    columns = ["Dataset", "Class", "Train samples"]
    for loss in losses:
        columns.append(loss_name(loss))
        if compare:
            columns += [f"{loss_name(loss)} (paper)", "Δ"]
    suffix = "_vs_paper" if compare else ""
    table = Table(
        name=f"table5_{model}{suffix}",
        title=f"Table 5. Per-class test F1 on {model_name(model)} (percent)"
        + (" beside the paper's" if compare else ""),
        columns=columns,
    )
    for dataset in per_class_datasets(grid):
        counts = train_counts(grid, dataset)
        for c, class_name in enumerate(_class_names(grid, dataset)):
            i = len(table.rows)
            row = [dataset_name(dataset) if c == 0 else "", class_name]
            row.append(str(counts[class_name]) if class_name in counts else DASH)
            scores = {}
            for loss in losses:
                cell = grid.cell(dataset, model, loss)
                values = cell.per_class_f1(class_name) if cell.status == OK else []
                status = status_text(cell, grid.expected_n)
                if status:
                    row.append(status)
                elif not values:
                    row.append(DASH)
                else:
                    mean = float(np.mean(values))
                    std = f" ± {num(np.std(values, ddof=1), '.2f', 100)}" if len(values) > 1 else ""
                    row.append(pct(mean) + std + seeds_note(cell, grid.expected_n, len(values)))
                    scores[(i, len(row) - 1)] = mean
                if compare:
                    published = paper_per_class(dataset, class_name, loss)
                    row.append(DASH if published is None else f"{published:.2f}")
                    row.append(
                        DASH if published is None or not values
                        else num(100 * float(np.mean(values)) - published, "+.2f")
                    )
            table.rows.append(row)
            if scores:  # best loss of this class: a row-wise maximum
                top = max(scores.values())
                table.best.update(key for key, v in scores.items() if np.isclose(v, top, rtol=0, atol=1e-12))
    table.notes.append("Bold: best loss per class. Train samples: the runs' training split. n=k: the F1 "
                       "rests on fewer runs than the fullest cell has (report.md lists which runs lack it).")
    if compare:
        counts_differ = [
            f"{dataset_name(d)} {c}: {n} vs paper {paper_train_samples(d, c)}"
            for d in grid.datasets
            for c, n in train_counts(grid, d).items()
            if paper_train_samples(d, c) not in (None, n)
        ]
        if counts_differ:
            table.notes.append("Training counts differ from the paper's: " + "; ".join(counts_differ))
    return table


def _hparam(value: float) -> str:
    """``1`` -> ``1.0``, ``0.65`` -> ``0.65`` (the paper prints one decimal at least); a value a
    sampler drew, ``0.8234567``, to three significant digits: ``0.823``."""
    text = f"{value:.3g}"
    return text if "." in text or "e" in text else f"{text}.0"


def hparam_table(grid: Grid, compare_paper: bool = False) -> Table | None:
    """Table 6: the LMF ``alpha``, ``beta`` with the best validation macro-F1 per dataset x model.

    Chosen among the LMF configurations present by mean validation macro-F1 over seeds
    (never test). ``None`` when there are no LMF runs.
    """
    if "lmf" not in grid.losses:
        return None
    columns = ["Dataset", "Hyper-parameter", *(model_name(m) for m in grid.models)]
    table = Table(
        name="table6_lmf_hparams",
        title="Table 6. LMF α and β with the best validation macro-F1 (multi-label: mAP)"
        + (" (paper's value in brackets)" if compare_paper else ""),
        columns=columns,
    )
    for dataset in [d for d in grid.datasets if "lmf" in grid.losses_of(d)]:
        for k, (symbol, attr) in enumerate((("α", "alpha"), ("β", "beta"))):
            row = [dataset_name(dataset) if k == 0 else "", symbol]
            for model in grid.models:
                cell = grid.cell(dataset, model, "lmf")
                status = status_text(cell, grid.expected_n)
                if status:
                    text = status
                else:
                    value = getattr(cell.runs[0], attr)
                    text = "default" if value is None else _hparam(value)
                    if cell.n_configs == 1:
                        # one finished configuration: tuned elsewhere, the only one tried, or the only
                        # one of several to finish (the others were not chosen among)
                        alone = (f"only one of {1 + cell.n_unfinished_configs} finished"
                                 if cell.n_unfinished_configs else "only one tried")
                        text += f" ({tuned_note(cell.runs, 'lmf', f'loss_params.{attr}') or alone})"
                if compare_paper:
                    published = paper_best_hparams(dataset, model)
                    if published is not None:
                        text += f" [paper {_hparam(published[k])}]"
                row.append(text)
            table.rows.append(row)
    return table
