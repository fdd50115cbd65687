"""Multi-label studies in the report: the same form, judged by mAP and macro AUC.

A dataset whose task is reported per label (multi-hot targets, :func:`lmfloss.report.grid.
per_label`) gets, like a multi-class one, cells of seeds, the configuration and the
baseline chosen on **validation** (mAP instead of macro-F1), paired t-tests over seeds with
Holm's correction over the report's whole family, and a paired bootstrap over the same test
images -- on mAP and on macro AUC, both in the family. Its tables: mAP, macro and micro AUC,
macro-F1 at 0.5 and at the validation-chosen thresholds and the ODIR-2019 score per loss
(with the mAP interval), the per-label AP and AUC by loss, and a figure of per-label AUC by
loss. Every number is read from the runs' ``report.json`` and ``predictions.csv``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmfloss import multilabel_metrics
from lmfloss.metrics import bootstrap_indices
from lmfloss.report.figures import pyplot, save_figure_files
from lmfloss.report.formats import (
    DASH,
    fmt_p,
    interval_pct,
    pct,
    seed_p,
    signed_pct,
    spread_text,
    status_text,
)
from lmfloss.report.grid import (
    OK,
    Cell,
    Comparison,
    Grid,
    best_on_val,
    paired_cells,
    per_label,
    per_label_datasets,
)
from lmfloss.report.names import dataset_name, loss_colors, loss_gid, loss_name, model_name
from lmfloss.report.render import Table
from lmfloss.report.runs import ReportRun
from lmfloss.report.stats import MIN_SEEDS_T, PairedTest, mean_std, paired_result, seed_t_test
from lmfloss.report.tuning import configurations_tried

logger = logging.getLogger(__name__)

TESTED = ("map", "auc_macro")  # compared over seeds (Holm family) and over images
METRIC_NAMES = {"map": "mAP", "auc_macro": "macro AUC", "auc_micro": "micro AUC", "f1_macro": "F1 (0.5)",
                "f1_macro_at_threshold": "F1 (val thr.)", "odir": "ODIR score"}
TABLE_METRICS = ("map", "auc_macro", "auc_micro", "f1_macro", "f1_macro_at_threshold", "odir")
SUMMARY_COLUMNS = ("dataset", "model", "metric", "baseline", "best_on_val", "selected_on", "n_seeds", "lmf",
                   "baseline_value", "delta", "delta_ci_low", "delta_ci_high", "p_seeds", "p_seeds_holm", "p_images")
PAIRED_COLUMNS = ("dataset", "model", "metric", "reference", "baseline", "n_pairs", "seeds", "seed_deltas",
                  "delta_seeds", "ci95_t_lo", "ci95_t_hi", "p_seeds_t", "p_seeds_holm", "n_images", "delta_images",
                  "ci95_images_lo", "ci95_images_hi", "p_images", "n_boot")


def value(run: ReportRun, key: str, split: str = "test") -> float | None:
    """A multi-label scalar of ``report.json`` (``odir``: the ODIR-2019 score's final value)."""
    report = ((run.report or {}).get(split) or {})
    raw = (report.get("odir_score") or {}).get("final") if key == "odir" else report.get(key)
    return None if raw is None or isinstance(raw, (dict, list)) else float(raw)


def values(cell: Cell, key: str) -> list[float]:
    """The cell's finished runs' test values of ``key`` (runs lacking it are skipped)."""
    return [v for v in (value(r, key) for r in cell.runs) if v is not None]


def label_values(cell: Cell, key: str, label: str) -> list[float]:
    """The cell's runs' per-label test values (``ap_per_label``/``auc_per_label``) of ``label``."""
    out = []
    for run in cell.runs:
        per_label = ((run.report or {}).get("test") or {}).get(key) or {}
        if per_label.get(label) is not None:
            out.append(float(per_label[label]))
    return out


def _mean_text(vals: list[float], expected_n: int) -> str:
    if not vals:
        return DASH
    mean, std = mean_std(vals)
    text = spread_text(mean, std)
    return text + ("" if len(vals) == expected_n else f" (n={len(vals)})")


def datasets(grid: Grid) -> list[str]:
    """The grid's datasets reported per label (multi-label)."""
    return per_label_datasets(grid)


# ------------------------------------------------------------------------------ comparisons
def comparisons(grid: Grid, dataset: str, *, reference: str = "lmf", n_boot: int = 1000,
                seed: int = 0) -> list[Comparison]:
    """``reference`` against every baseline of a multi-label dataset, per model, on each of
    :data:`TESTED` (unadjusted: :func:`lmfloss.report.aggregate.paired_tests` applies Holm over
    the whole report)."""
    out = []
    for m, loss, ref, base, pairs in paired_cells(grid, dataset, reference):
        for metric in TESTED:
            deltas = [value(a, metric) - value(b, metric) for a, b in pairs
                      if value(a, metric) is not None and value(b, metric) is not None]
            out.append(Comparison(dataset, m, loss, [a.seed for a, _ in pairs], seed_t_test(deltas),
                                  image_test(ref, base, pairs, metric, n_boot=n_boot, seed=seed), metric))
    return out


def image_test(ref: Cell, base: Cell, pairs: list, metric: str, *, n_boot: int, seed: int) -> PairedTest | None:
    """Paired bootstrap over the same test images (patients) of the seed-mean difference in
    ``metric`` (mAP or macro AUC), from the runs' ``predictions.csv`` probabilities."""
    resampled_macro = multilabel_metrics.resampled_macro
    metric = {"auc_macro": "auc"}.get(metric, metric)  # report.json's name -> the resampler's
    try:
        first = pairs[0][0].predictions()
        aligned = [(first.aligned(a.predictions()), first.aligned(b.predictions())) for a, b in pairs]
    except (OSError, ValueError) as exc:
        logger.warning("%s/%s %s vs %s: no image-level test (%s)", ref.dataset, ref.model, ref.loss, base.loss, exc)
        return None
    if first.labels.ndim != 2 or any(pa.probs is None or pb.probs is None for pa, pb in aligned):
        return None
    y = first.labels
    identity = np.arange(len(y))[None, :]
    idx = bootstrap_indices(len(y), n_boot, seed)
    seed_deltas = np.array([resampled_macro(y, pa.probs, identity, metric)[0] - resampled_macro(y, pb.probs, identity,
                                                                                                metric)[0]
                            for pa, pb in aligned])
    matrix = np.stack([resampled_macro(y, pa.probs, idx, metric) - resampled_macro(y, pb.probs, idx, metric)
                       for pa, pb in aligned])
    return paired_result(seed_deltas, matrix, len(y), n_boot, seed)


# ----------------------------------------------------------------------------------- tables
def map_interval(cell: Cell, n_boot: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """95% bootstrap interval of the cell's mAP over test images: one run's ``map_ci95``, or
    for several seeds the interval of the seed-mean mAP on the shared test images."""
    if cell.status != OK:
        return None
    if cell.n == 1:
        ci = ((cell.runs[0].report or {}).get("test") or {}).get("map_ci95")
        return (float(ci[0]), float(ci[1])) if ci and len(ci) == 2 else None
    try:
        first = cell.runs[0].predictions()
        stacked = [first.aligned(r.predictions()).probs for r in cell.runs]
    except (OSError, ValueError) as exc:
        logger.warning("%s/%s/%s: no mAP interval (%s)", cell.dataset, cell.model, cell.loss, exc)
        return None
    if any(p is None for p in stacked):
        return None
    return multilabel_metrics.bootstrap_ci(first.labels, np.stack(stacked), metric="map", n_boot=n_boot, seed=seed)


def _delta_text(comp: Comparison | None) -> str:
    if comp is None:
        return DASH
    t = comp.seed_test
    if t.p is not None and t.mean is not None:
        p = fmt_p(t.p_holm if t.p_holm is not None else t.p)
        return f"{signed_pct(t.mean)} (p{'' if p.startswith('<') else '='}{p})"
    if comp.test is not None:
        p = fmt_p(comp.test.p_value)
        return f"{signed_pct(comp.test.delta)} (images p{'' if p.startswith('<') else '='}{p})"
    return DASH if t.mean is None else signed_pct(t.mean)


def main_table(grid: Grid, model: str, comparisons: Sequence[Comparison] = (), n_boot: int = 1000,
               seed: int = 0) -> Table | None:
    """Per multi-label dataset x loss: mAP, macro/micro AUC, macro-F1 at 0.5 and at the
    validation thresholds, the ODIR score (percent, mean ± SD over seeds), the mAP interval and
    LMF's difference from each baseline in mAP and macro AUC; best per column bold."""
    found = [d for d in datasets(grid) if any(grid.cell(d, model, loss).status == OK for loss in grid.losses_of(d))]
    if not found:
        return None
    tests = {(c.dataset, c.baseline, c.metric): c for c in comparisons if c.model == model}
    columns = ["Dataset", "Loss", *(METRIC_NAMES[m] for m in TABLE_METRICS), "mAP 95% CI", "LMF − loss ΔmAP (p)",
               "ΔAUC (p)"]
    table = Table(name=f"table_multilabel_{model}", columns=columns,
                  title=f"Multi-label test performance of each loss on {model_name(model)} (percent)")
    for dataset in found:
        block: list[int] = []
        scores: dict[tuple[int, int], float] = {}
        for k, loss in enumerate(grid.losses_of(dataset)):
            cell = grid.cell(dataset, model, loss)
            i = len(table.rows)
            row = [dataset_name(dataset) if k == 0 else "", loss_name(loss)]
            for j, metric in enumerate(TABLE_METRICS, start=2):
                if cell.status != OK:
                    row.append(status_text(cell, grid.expected_n) or "missing")
                    continue
                vals = values(cell, metric)
                row.append(_mean_text(vals, grid.expected_n))
                if vals:
                    scores[(i, j)] = float(np.mean(vals))
            ci = map_interval(cell, n_boot=n_boot, seed=seed)
            row.append(DASH if ci is None else f"[{pct(ci[0])}, {pct(ci[1])}]")
            for metric in TESTED:
                row.append(DASH if loss == "lmf" else _delta_text(tests.get((dataset, loss, metric))))
            table.rows.append(row)
            block.append(i)
        for j in range(2, 2 + len(TABLE_METRICS)):
            col = {i: scores[(i, j)] for i in block if (i, j) in scores}
            if col:
                top = max(col.values())
                table.best.update((i, j) for i, v in col.items() if np.isclose(v, top, rtol=0, atol=1e-12))
    table.notes += [
        "Bold: best per column within a dataset. ± is the standard deviation over seeds; n=k marks a value "
        "resting on fewer runs than the fullest cell. Macro averages leave out (and each run's report.json "
        "lists) labels without a positive test image. A patient-scored dataset scores patients: a label's "
        "probability is the largest of the patient's images'.",
        "mAP 95% CI: percentile bootstrap over test images/patients (of the seed mean where n>1). ODIR score: "
        "(kappa + micro-F1 + AUC) / 3 of every label flattened, at p > 0.5 (the ODIR-2019 challenge's script). "
        "F1 (val thr.): "
        "at each label's F1-maximising threshold on validation.",
        "ΔmAP, ΔAUC: LMF minus this loss, percentage points, mean over paired seeds; p: paired t-test over seeds, "
        "Holm-corrected over the report's family (with fewer than 3 seeds: the paired bootstrap over test images, "
        "marked 'images').",
    ]
    return table


def per_label_table(grid: Grid, model: str, key: str = "auc_per_label") -> Table | None:
    """Per multi-label dataset and label: the training positives and each loss's test AUC (or
    AP, ``key="ap_per_label"``), mean ± SD over seeds; best per label bold."""
    found = [d for d in datasets(grid) if any(grid.cell(d, model, loss).status == OK for loss in grid.losses_of(d))]
    if not found:
        return None
    losses = grid.for_datasets(found).losses  # the columns: the losses of these datasets' task
    what = "AUC" if key == "auc_per_label" else "AP"
    table = Table(name=f"table_per_label_{'auc' if what == 'AUC' else 'ap'}_{model}",
                  title=f"Per-label test {what} on {model_name(model)} (percent)",
                  columns=["Dataset", "Label", "Train positives", *(loss_name(loss) for loss in losses)])
    for dataset in found:
        labels, train = _labels(grid, dataset)
        for c, label in enumerate(labels):
            i = len(table.rows)
            row = [dataset_name(dataset) if c == 0 else "", label, str(train.get(label, DASH))]
            scores = {}
            for loss in losses:
                cell = grid.cell(dataset, model, loss)
                vals = label_values(cell, key, label) if cell.status == OK else []
                row.append(_mean_text(vals, grid.expected_n) if cell.status == OK
                           else status_text(cell, grid.expected_n) or "missing")  # as the other tables say it
                if vals:
                    scores[(i, len(row) - 1)] = float(np.mean(vals))
            table.rows.append(row)
            if scores:
                top = max(scores.values())
                table.best.update(k for k, v in scores.items() if np.isclose(v, top, rtol=0, atol=1e-12))
    table.notes.append(f"Bold: best loss per label. Train positives: the label's positive training images. A label "
                       f"without a positive test image has no {what} ({DASH}).")
    return table


def _labels(grid: Grid, dataset: str) -> tuple[list[str], dict[str, int]]:
    for cell in grid.cells.values():
        if cell.dataset == dataset and cell.status == OK and cell.runs[0].class_names:
            run = cell.runs[0]
            counts = (run.report or {}).get("train_class_counts") or []
            return run.class_names, ({n: int(c) for n, c in zip(run.class_names, counts)}
                                     if len(counts) == len(run.class_names) else {})
    return [], {}


# ---------------------------------------------------------------------------------- summary
def summary_rows(grid: Grid, comparisons: Sequence[Comparison]) -> list[dict[str, object]]:
    """``summary_multilabel.csv``: one row per (dataset, model, metric, baseline) of the
    multi-label comparisons (values in percent; the baseline best on validation mAP marked)."""
    rows = []
    for c in comparisons:
        if not per_label(c.task):
            continue
        lmf, base = grid.cell(c.dataset, c.model, "lmf"), grid.cell(c.dataset, c.model, c.baseline)
        chosen = best_on_val(grid, c.dataset, c.model)
        is_best = chosen is not None and chosen.loss == c.baseline
        t = c.seed_test
        rows.append({
            "dataset": c.dataset, "model": c.model, "metric": c.metric, "baseline": c.baseline,
            "best_on_val": is_best, "selected_on": "val" if is_best else None, "n_seeds": t.n,
            "lmf": _pct_or_none(values(lmf, c.metric)), "baseline_value": _pct_or_none(values(base, c.metric)),
            "delta": None if t.mean is None else round(100 * t.mean, 4),
            "delta_ci_low": None if t.ci95 is None else round(100 * t.ci95[0], 4),
            "delta_ci_high": None if t.ci95 is None else round(100 * t.ci95[1], 4),
            "p_seeds": t.p, "p_seeds_holm": t.p_holm, "p_images": None if c.test is None else c.test.p_value,
        })
    return rows


def _pct_or_none(vals: list[float]) -> float | None:
    return round(100 * float(np.mean(vals)), 4) if vals else None


def paired_rows(comparisons: Sequence[Comparison]) -> list[dict[str, object]]:
    """``paired_tests_multilabel.csv``: every multi-label comparison at both levels (fractions)."""
    rows = []
    for c in comparisons:
        if not per_label(c.task):
            continue
        t, b = c.seed_test, c.test
        rows.append({
            "dataset": c.dataset, "model": c.model, "metric": c.metric, "reference": "lmf", "baseline": c.baseline,
            "n_pairs": t.n, "seeds": " ".join(str(s) for s in c.seeds),
            "seed_deltas": " ".join(repr(d) for d in t.deltas), "delta_seeds": t.mean,
            "ci95_t_lo": None if t.ci95 is None else t.ci95[0], "ci95_t_hi": None if t.ci95 is None else t.ci95[1],
            "p_seeds_t": t.p, "p_seeds_holm": t.p_holm, "n_images": None if b is None else b.n_items,
            "delta_images": None if b is None else b.delta, "ci95_images_lo": None if b is None else b.ci95[0],
            "ci95_images_hi": None if b is None else b.ci95[1], "p_images": None if b is None else b.p_value,
            "n_boot": None if b is None else b.n_boot,
        })
    return rows


def summary_table(grid: Grid, comparisons: Sequence[Comparison]) -> Table | None:
    """Per multi-label dataset x model: LMF against the baseline with the best **validation**
    mAP, in mAP and macro AUC."""
    if "lmf" not in grid.losses:
        return None
    by_key = {(c.dataset, c.model, c.baseline, c.metric): c for c in comparisons}
    table = Table(
        name="summary_multilabel", title="Multi-label: LMF against the best baseline (chosen on validation mAP)",
        columns=["Dataset", "Model", "LMF mAP", "best baseline (val)", "ΔmAP (seeds)", "95% CI (t)", "p (seeds)",
                 "p (images)", "ΔAUC (seeds)", "p AUC (seeds)", "seeds", "configurations (LMF/baseline)"],
    )
    for d in datasets(grid):
        for m in grid.models:
            lmf, best = grid.cell(d, m, "lmf"), best_on_val(grid, d, m)
            if lmf.status != OK or best is None:
                continue
            c_map, c_auc = by_key.get((d, m, best.loss, "map")), by_key.get((d, m, best.loss, "auc_macro"))
            if c_map is None:
                continue
            t = c_map.seed_test
            table.rows.append([
                dataset_name(d), model_name(m), _mean_text(values(lmf, "map"), grid.expected_n),
                f"{loss_name(best.loss)} {_mean_text(values(best, 'map'), grid.expected_n)}",
                DASH if t.mean is None else signed_pct(t.mean),
                DASH if t.ci95 is None else interval_pct(t.ci95),
                seed_p(c_map), DASH if c_map.test is None else fmt_p(c_map.test.p_value),
                DASH if c_auc is None or c_auc.seed_test.mean is None else signed_pct(c_auc.seed_test.mean),
                DASH if c_auc is None else seed_p(c_auc), f"{lmf.n}/{best.n}",
                "/".join(str(configurations_tried(x.runs, x.loss, x.n_configs)) for x in (lmf, best)),
            ])
    if not table.rows:
        return None
    n_family = sum(c.seed_test.p is not None for c in comparisons)
    table.notes += [
        "Test mAP in percent, mean ± SD over seeds. The baseline is the one with the best mean validation mAP "
        "(never chosen on test); every threshold and epoch was chosen on validation too.",
        "Δ: mean over paired seeds of LMF minus baseline; 95% CI: t-interval; p (seeds): paired t-test over seeds, "
        f"Holm-corrected over every LMF-vs-baseline comparison of this report ({n_family} with a seed-level p: "
        "mAP and macro AUC of each multi-label baseline count separately); p (images): paired bootstrap over the "
        f"same test images/patients. No seed-level test with fewer than {MIN_SEEDS_T} seeds.",
    ]
    return table


def csv_files(grid: Grid, comparisons: Sequence[Comparison]) -> list[tuple[str, Sequence[str], list[dict]]]:
    """The report's per-label CSV files, ``(file name, columns, rows)``; none without a
    dataset reported per label."""
    if not datasets(grid):
        return []
    return [("summary_multilabel.csv", SUMMARY_COLUMNS, summary_rows(grid, comparisons)),
            ("paired_tests_multilabel.csv", PAIRED_COLUMNS, paired_rows(comparisons))]


def files_note(grid: Grid) -> list[str]:
    """report.md's line on the per-label CSV files (none without a dataset reported per label)."""
    if not datasets(grid):
        return []
    return ["- `summary_multilabel.csv`, `paired_tests_multilabel.csv`: the same for the multi-label "
            "datasets, on mAP and macro AUC"]


# ----------------------------------------------------------------------------------- figure
def figures(grid: Grid, out_dir: str | Path) -> dict[str, list[Path]]:
    """The report's per-label figures, name -> files (none without a dataset reported per label)."""
    return {"Per-label AUC": figure_label_auc(grid, out_dir)} if datasets(grid) else {}


def figure_label_auc(grid: Grid, out_dir: str | Path) -> list[Path]:
    """Per multi-label dataset x model: each label's test AUC by loss (mean over seeds, error
    bar the SD), labels ordered by training positives (rarest last); PNG and PDF."""
    plt = pyplot()
    panels = [(d, m) for d in datasets(grid) for m in grid.models
              if any(grid.cell(d, m, loss).status == OK for loss in grid.losses_of(d))]
    if not panels:
        return []
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.4 * len(panels)), squeeze=False)
    for ax, (dataset, model) in zip(axes[:, 0], panels):
        labels, train = _labels(grid, dataset)
        order = sorted(labels, key=lambda name: -train.get(name, 0))
        losses = grid.losses_of(dataset)  # no empty slot for another task's loss
        width = 0.8 / max(len(losses), 1)
        x = np.arange(len(order))
        colors = loss_colors(grid.losses)
        for k, loss in enumerate(losses):
            cell = grid.cell(dataset, model, loss)
            stats = [label_values(cell, "auc_per_label", name) if cell.status == OK else [] for name in order]
            means = [100 * float(np.mean(v)) if v else np.nan for v in stats]
            errors = [100 * float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in stats]
            bars = ax.bar(x + (k - (len(losses) - 1) / 2) * width, means, width, yerr=errors, capsize=2,
                          label=loss_name(loss), color=colors[loss])
            for patch in bars.patches:
                patch.set_gid(loss_gid(loss, "bar"))
        ax.set_xticks(x, [f"{name}\n({train.get(name, '?')})" for name in order], fontsize=8)
        ax.set_ylabel("test AUC (%)")
        ax.set_ylim(40, 100)
        ax.axhline(50, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(f"{dataset_name(dataset)}, {model_name(model)}: per-label AUC (training positives)", fontsize=10)
        ax.legend(fontsize="x-small", ncol=min(len(grid.losses), 6), loc="lower left")
    fig.tight_layout()
    return save_figure_files(fig, Path(out_dir), "fig_label_auc")
