"""Reports from run directories: the paper's Tables 2-6 and Figs. 1, 2, 4, and more.

``lmfloss report RUNS_DIR... --out DIR [--compare-paper]`` calls :func:`build_report`.
It never re-trains: every number comes from the runs' ``report.json`` and
``predictions.csv``, and never imports torch. Modules: ``runs`` (find and read runs),
``settings`` (the LMF study's settings), ``cam`` (Grad-CAM summaries), ``aggregate`` (the
dataset x model x loss grid, paired tests), ``stats`` (spread and bootstrap),
``tables``/``render`` (Markdown, CSV, LaTeX), ``figures`` (PNG, PDF), ``paper`` (the
published numbers) and ``build`` (the whole report).
"""

from lmfloss.report.build import RESULT_COLUMNS, ReportResult, build_report, result_rows
from lmfloss.report.runs import ReportRun, find_runs, read_run
from lmfloss.report.settings import infer_settings
from lmfloss.report.stats import (
    PairedTest,
    bootstrap_ci,
    mean_absolute_deviation,
    mean_std,
    paired_bootstrap_test,
)
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
