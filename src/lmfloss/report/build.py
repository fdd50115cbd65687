"""``build_report``: read run directories and write every table, figure and summary.

Output folder layout::

    results.csv                 one row per run (finished or not)
    summary.csv                 LMF vs each baseline per dataset x model; the one best on val marked
    paired_tests.csv            LMF vs each baseline: over seeds (t-test, Holm) and over test images
    report.md                   everything below, tied together
    tables/<name>.{md,csv,tex}  Tables 2-6 (and *_vs_paper with compare_paper)
    figures/fig{1,2,4}_*.{png,pdf}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from lmfloss.fileio import atomic_write_text, dict_rows_text
from lmfloss.report import html as html_page
from lmfloss.report import multilabel
from lmfloss.report.aggregate import build_grid, paired_tests
from lmfloss.report.external import EXTERNAL_COLUMNS, external_rows, external_table
from lmfloss.report.figures import FIGURE_RC, figure1, figure2, figure4, figure_caption
from lmfloss.report.grid import Comparison, Grid
from lmfloss.report.render import Table
from lmfloss.report.runs import UNREADABLE, ReportRun, find_runs, invalidate_bad_predictions
from lmfloss.report.status import ReportResult, status_section
from lmfloss.report.summary import (
    PAIRED_COLUMNS,
    SUMMARY_COLUMNS,
    calibration_table,
    cam_table,
    comparison_table,
    paired_rows,
    summary_rows,
    summary_table,
)
from lmfloss.report.tables import (
    compare_main_table,
    hparam_table,
    main_table,
    per_class_table,
)
from lmfloss.report.tuning import TUNING_COLUMNS, tuning_rows, tuning_tables

logger = logging.getLogger(__name__)

RESULT_COLUMNS = (
    "dataset", "model", "loss", "seed", "alpha", "beta", "setting", "status",
    "accuracy", "precision_macro", "recall_macro", "f1_macro",
    "f1_macro_ci95_lo", "f1_macro_ci95_hi", "balanced_accuracy", "f1_weighted",
    "auc_macro_ovr", "auc_macro_ovo", "ece", "brier", "nll", "val_f1_macro", "best_epoch", "epochs_done",
    "data_fingerprint", "run_dir", "task", "map", "auc_macro", "auc_micro", "odir_score", "val_map",
    "lmfloss_version", "lmfloss_commit",
)


def result_rows(runs: Sequence[ReportRun]) -> list[dict[str, object]]:
    """One mapping per run with :data:`RESULT_COLUMNS`; values straight from ``report.json``."""
    rows = []
    for run in runs:
        ci = ((run.report or {}).get("test") or {}).get("f1_macro_ci95") or [None, None]
        rows.append({
            "dataset": run.dataset, "model": run.model, "loss": run.loss, "seed": run.seed,
            "alpha": run.alpha, "beta": run.beta, "setting": "+".join(run.settings) if run.loss == "lmf" else "",
            "status": run.status,
            **{m: run.test(m) for m in ("accuracy", "precision_macro", "recall_macro", "f1_macro")},
            "f1_macro_ci95_lo": ci[0], "f1_macro_ci95_hi": ci[1],
            **{m: run.test(m) for m in ("balanced_accuracy", "f1_weighted", "auc_macro_ovr", "auc_macro_ovo",
                                        "ece", "brier", "nll")},
            "val_f1_macro": run.val("f1_macro"),
            "best_epoch": (run.report or {}).get("best_epoch"),
            "epochs_done": run.epochs_done,
            "data_fingerprint": run.fingerprint,
            "run_dir": str(run.run_dir),
            "task": run.task.name,
            **{m: run.test(m) for m in ("map", "auc_macro", "auc_micro")},
            # The ODIR-2019 score: of a run reported per label, none elsewhere.
            "odir_score": (((run.report or {}).get("test") or {}).get("odir_score") or {}).get("final"),
            "val_map": run.val("map"),
            # what trained the run (runs before lmfloss recorded it: empty)
            **_software_columns((run.report or {}).get("software") or {}),
        })
    return rows


def _software_columns(record: dict[str, object]) -> dict[str, object]:
    commit = record.get("git_commit")
    if commit and record.get("git_dirty"):
        commit = f"{commit}+dirty"  # trained from uncommitted edits of src/
    return {"lmfloss_version": record.get("lmfloss"), "lmfloss_commit": commit}


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, object]]) -> Path:
    atomic_write_text(dict_rows_text(columns, rows), path)
    return path


def build_report(
    roots: Sequence[str | Path],
    out_dir: str | Path,
    *,
    compare_paper: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    figures: bool = True,
    html: bool | str | Path = False,
) -> ReportResult:
    """Read runs under ``roots`` (never re-training) and write the report into ``out_dir``.

    Args:
        roots: Folders searched recursively for run directories.
        out_dir: Output folder (created; existing files of the same names are replaced).
        compare_paper: Also write the paper's Tables 2-6 numbers beside the measured ones.
        n_boot: Bootstrap resamples for intervals and paired tests.
        seed: Bootstrap seed (the report is reproducible).
        figures: Write Figs. 1, 2, 4 (PNG + PDF + SVG).
        html: Also write ``report.html``, one self-contained page (:mod:`lmfloss.report.html`),
            into ``out_dir`` (``True``) or at this path.

    Returns:
        A :class:`ReportResult`.

    Raises:
        FileNotFoundError: A root does not exist.
        LmflossError: No run directory under the roots.
        ValueError: ``n_boot < 1``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if html:
        html_page.require_jinja2()  # before any work: a missing extra is one line, nothing written
    runs = find_runs(roots)  # first: a wrong RUNS_DIR leaves no empty output folder behind
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    invalidate_bad_predictions(runs)  # a NaN probability costs its run, not the report
    grid = build_grid([r for r in runs if r.status != UNREADABLE])
    comparisons = paired_tests(grid, n_boot=n_boot, seed=seed)
    result = ReportResult(out, runs, grid, comparisons)

    result.files.append(_write_csv(out / "results.csv", RESULT_COLUMNS, result_rows(runs)))
    result.files.append(_write_csv(out / "paired_tests.csv", PAIRED_COLUMNS, paired_rows(comparisons)))
    result.files.append(_write_csv(out / "summary.csv", SUMMARY_COLUMNS, summary_rows(grid, comparisons)))
    for name, columns, rows in multilabel.csv_files(grid, comparisons):
        result.files.append(_write_csv(out / name, columns, rows))

    tables = _tables(grid, comparisons, compare_paper=compare_paper, n_boot=n_boot, seed=seed)
    external = external_table(runs)
    if external is not None:  # internal and external test side by side (lmfloss evaluate --name)
        tables.append(external)
        result.files.append(_write_csv(out / "external.csv", EXTERNAL_COLUMNS, external_rows(runs)))
    tuning = tuning_tables(runs)  # how each compared configuration was chosen (a per_space tuning sweep)
    if tuning:  # first: a reader of the tables should know the losses were tuned alike before reading them
        tables[:0] = tuning
        result.files.append(_write_csv(out / "tuning.csv", TUNING_COLUMNS, tuning_rows(runs)))
    compare_tables = _compare_tables(grid) if compare_paper else []
    result.tables = tables + compare_tables
    for table in result.tables:
        result.files += table.write(out / "tables")

    import matplotlib  # not at the top: lmfloss.cam imports this package without matplotlib

    # Figures drawn with FIGURE_RC: a "$" in a class or run name is text, not mathtext.
    with matplotlib.rc_context(FIGURE_RC):
        figure_files = _figures(result, runs, out) if figures else {}
        result.files += [path for paths in figure_files.values() for path in paths]
        result.figure_files, result.compare_tables = figure_files, compare_tables
        report_md = out / "report.md"
        atomic_write_text(
            _report_markdown(result, tables, compare_tables, figure_files, roots, n_boot, compare_paper), report_md
        )
        result.files.append(report_md)
        if html:
            where = None if html is True else Path(html)
            result.html = html_page.write_html(result, roots, n_boot, figure_files, compare_tables, path=where)
            result.files.append(result.html)
    logger.info("report written to %s (%d files)", out, len(result.files))
    return result


def _tables(grid: Grid, comparisons: Sequence[Comparison], *, compare_paper: bool, n_boot: int,
            seed: int) -> list[Table]:
    """The report's tables in report.md's order (those without rows left out)."""
    tables = [t for t in (main_table(grid, m, comparisons, n_boot=n_boot, seed=seed) for m in grid.models) if t.rows]
    tables += [t for t in (per_class_table(grid, m) for m in grid.models) if t.rows]
    for m in grid.models:
        tables += [t for t in (multilabel.main_table(grid, m, comparisons, n_boot=n_boot, seed=seed),
                               multilabel.per_label_table(grid, m, "auc_per_label"),
                               multilabel.per_label_table(grid, m, "ap_per_label")) if t is not None]
    tables += [t for t in (calibration_table(grid, m) for m in grid.models) if t is not None]
    table6 = hparam_table(grid, compare_paper=compare_paper)
    return tables if table6 is None else [*tables, table6]


def _compare_tables(grid: Grid) -> list[Table]:
    """Tables 2-5 beside the paper's numbers (``--compare-paper``)."""
    tables = [t for t in (compare_main_table(grid, m) for m in grid.models) if t is not None]
    if "efficientnet_v2_s" in grid.models:
        tables.append(per_class_table(grid, "efficientnet_v2_s", compare_paper=True))
    return tables


def _figures(result: ReportResult, runs: Sequence[ReportRun], out: Path) -> dict[str, list[Path]]:
    """Figs. 1, 2, 4 and the per-label AUC figure: name -> files (PNG, PDF, SVG)."""
    grid = result.grid
    figure_files = {"Fig. 1": figure1(grid, out / "figures"), "Fig. 2": figure2(grid, runs, out / "figures"),
                    "Fig. 4": figure4(runs, out / "figures")}
    figure_files.update(multilabel.figures(grid, out / "figures"))
    return figure_files


def _report_markdown(
    result: ReportResult,
    tables: list[Table],
    compare_tables: list[Table],
    figure_files: dict[str, list[Path]],
    roots: Sequence[str | Path],
    n_boot: int,
    compare_paper_requested: bool = False,
) -> str:
    lines = ["# lmfloss report", "", f"Runs read from: {', '.join(str(r) for r in roots)}. "
             f"Bootstrap: {n_boot} resamples. Numbers are test-split percentages unless stated.", ""]
    summary = summary_table(result.grid, result.comparisons)
    if summary is not None:
        lines += ["## Summary: LMF against the best baseline", "", summary.to_markdown(), ""]
    summary_ml = multilabel.summary_table(result.grid, result.comparisons)
    if summary_ml is not None:
        lines += ["## Summary (multi-label): LMF against the best baseline", "", summary_ml.to_markdown(), ""]
    lines += ["## Runs", ""] + status_section(result)
    lines += ["## Tables", ""]
    for table in tables:
        lines += [table.to_markdown(), ""]
    lines += ["## Is LMF's difference real? Paired tests over seeds and over test images", ""]
    if any(c.metric == "f1_macro" for c in result.comparisons):
        lines += [comparison_table(result.comparisons).to_markdown(), ""]
    if any(c.metric != "f1_macro" for c in result.comparisons):
        lines += ["Multi-label comparisons (mAP and macro AUC, over seeds and over test images): "
                  "`paired_tests_multilabel.csv`, summarised above.", ""]
    if not result.comparisons:
        lines += ["No paired test: no LMF run shares a dataset, model and seed with a baseline.", ""]
    if compare_paper_requested and not compare_tables:
        lines += ["## Beside the paper", "", "No run uses a dataset and architecture of the paper "
                  "(ODIR-5K, HAM-10K, ISIC-2019, Covid-19 × EfficientNetV2, ResNet-50, DenseNet-121); "
                  "nothing to compare.", ""]
    if compare_tables:
        lines += ["## Beside the paper", "",
                  "The paper's published numbers (Sadi et al., Tables 2-5) beside the measured ones; "
                  "Δ = measured − paper, percentage points.", ""]
        for table in compare_tables:
            lines += [table.to_markdown(), ""]
    cams = cam_table(result.runs, roots)
    if cams is not None:
        lines += ["## Grad-CAM against the annotations", "", cams.to_markdown(), ""]
    if any(figure_files.values()):
        lines += ["## Figures", ""]
        for label, paths in figure_files.items():
            png = [p for p in paths if p.suffix == ".png"]
            if png:
                rel = os.path.relpath(png[0], result.out_dir)
                caption = figure_caption(label, result.grid)
                lines += [f"![{label}: {caption}]({rel})", "", f"{label}: {caption}.", ""]
    lines += ["## Files", "", "- `results.csv`: one row per run (values as in each run's report.json)",
              "- `summary.csv`: LMF against every baseline per dataset x model (which one was best on validation)",
              "- `paired_tests.csv`: every paired test, over seeds and over test images",
              *multilabel.files_note(result.grid),
              "- `tables/`: every table as Markdown, CSV and LaTeX", "- `figures/`: PNG, PDF and SVG", ""]
    return "\n".join(lines)
