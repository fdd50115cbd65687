"""Reports from run directories: the paper's Tables 2-6 and Figs. 1, 2, 4, and more.

``lmfloss report RUNS_DIR... --out DIR [--compare-paper]`` calls :func:`build_report`.
It never re-trains: every number comes from the runs' ``report.json`` and
``predictions.csv``, and never imports torch. Modules, from the bottom up: ``names``
(display names, the dataset key and its task), ``stats`` (spread and bootstrap), ``render``
(a table as Markdown, CSV, LaTeX), ``settings`` (the LMF study's settings), ``paper`` (the
published numbers), ``runs`` (find and read runs), ``cam`` (Grad-CAM summaries), ``grid``
(the cell, grid and comparison types), ``formats`` (how a number is written), ``figures``
(PNG, PDF, SVG), ``panels`` (the page's figures of one dataset x model), ``multilabel``
(datasets reported per label), ``aggregate`` (building the grid, paired tests), ``tables`` and
``summary`` (the paper's tables, the summary and its sentences), ``status`` (what was written,
the runs section and table), ``html`` (report.html) and ``build``
(the whole report). Each imports only modules listed before it.
"""

from lmfloss.report.build import RESULT_COLUMNS, build_report, result_rows
from lmfloss.report.runs import ReportRun, find_runs, read_run
from lmfloss.report.settings import infer_settings
from lmfloss.report.stats import (
    PairedTest,
    bootstrap_ci,
    mean_absolute_deviation,
    mean_std,
    paired_bootstrap_test,
)
from lmfloss.report.status import ReportResult
from lmfloss.rundir import Predictions, read_predictions

__all__ = [
    "RESULT_COLUMNS",
    "PairedTest",
    "Predictions",
    "ReportResult",
    "ReportRun",
    "bootstrap_ci",
    "build_report",
    "find_runs",
    "infer_settings",
    "mean_absolute_deviation",
    "mean_std",
    "paired_bootstrap_test",
    "read_predictions",
    "read_run",
    "result_rows",
]
