"""k-fold cross-validation: one normal run directory per fold, then a summary over folds.

``lmfloss train --folds K --out OUT`` trains ``OUT/fold-1 ... OUT/fold-K`` (each a complete
run directory whose config has ``fold: k``; the split is
:func:`lmfloss.data.splits.fold_split`: test = fold k, validation = a stratified, grouped
15 % of the others), then writes ``OUT/cv_summary.csv`` (one row per fold, then the mean
and the sample standard deviation) and ``OUT/cv_summary.md``. ``--resume OUT`` continues
the unfinished folds; finished ones are kept as they are. ``lmfloss report OUT`` treats the
folds as repeats of one experiment, like seeds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmfloss import rundir
from lmfloss.config import TrainConfig
from lmfloss.errors import LmflossError
from lmfloss.fileio import atomic_write_text, dict_rows_text
from lmfloss.report.render import Table
from lmfloss.task import MULTICLASS, Task, get_task
from lmfloss.train.distributed import is_main_process
from lmfloss.train.fit import fit

logger = logging.getLogger(__name__)

CV_METRICS = MULTICLASS.cv_metrics
CV_COLUMNS = ("fold", "n_test", *CV_METRICS, "best_epoch", "run_dir")


def cv_metrics(task: Task | str | None = None) -> tuple[str, ...]:
    """The test metrics ``cv_summary.csv`` tabulates for ``task`` (:attr:`lmfloss.task.Task.cv_metrics`)."""
    return get_task(task).cv_metrics


CV_SUMMARY = "cv_summary.csv"


@dataclass
class CVResult:
    """What :func:`cross_validate` left in ``out_dir``: the folds' reports and the summary rows."""

    out_dir: Path
    reports: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def fold_dir(out: Path, fold: int) -> Path:
    return out / f"fold-{fold}"


def is_cv_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a cross-validation (fold-1/ with a run, no run of its own)."""
    path = Path(path)
    return (path / "fold-1" / rundir.CONFIG).is_file() and not (path / rundir.CONFIG).is_file()


def config_of_cv(out: str | Path) -> TrainConfig:
    """The cross-validation's config (fold-1's, with ``fold`` cleared) -- for ``--resume OUT``."""
    return rundir.read_config(fold_dir(Path(out), 1)).replace(fold=None)


def cross_validate(config: TrainConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
                   quiet: bool = False) -> CVResult:
    """Train every fold of ``config.folds`` into ``out_dir/fold-k`` and summarise them.

    Raises:
        ValueError: ``config.folds`` unset or a fold given (that is a single run: use ``fit``).
        LmflossError: ``out_dir`` holds a run directory of its own, or (without ``resume``/
            ``overwrite``) folds of a previous cross-validation.
    """
    if config.folds is None or config.fold is not None:
        raise ValueError("cross_validate needs config.folds set and config.fold unset")
    out = Path(out_dir)
    if (out / rundir.CONFIG).is_file():
        raise LmflossError(f"{str(out)!r} holds a single run, not a cross-validation; choose another --out")
    result = CVResult(out)
    for k in range(1, config.folds + 1):
        target = fold_dir(out, k)
        report = rundir.read_report(target) if resume else None
        if report is not None and report.get("config", {}).get("epochs", config.epochs) >= config.epochs:
            logger.info("fold %d/%d: finished already (%s)", k, config.folds, target)
        else:
            logger.info("fold %d/%d -> %s", k, config.folds, target)
            report = fit(config.replace(fold=k), target, resume=resume, overwrite=overwrite, quiet=quiet).report
        result.reports.append(report)
    result.rows = summary_rows(result.reports, [fold_dir(out, k) for k in range(1, config.folds + 1)])
    if is_main_process():  # under torchrun every rank trains the folds; one writes
        columns = ("fold", "n_test", *cv_metrics(config.task), "best_epoch", "run_dir")
        atomic_write_text(dict_rows_text(columns, result.rows, _fmt), out / CV_SUMMARY)
        atomic_write_text(summary_markdown(config, result.rows), out / "cv_summary.md")
    return result


def _fmt(value: Any) -> Any:
    return f"{value:.6f}" if isinstance(value, float) else value


def summary_rows(reports: list[dict[str, Any]], run_dirs: list[Path]) -> list[dict[str, Any]]:
    """One row per fold (test metrics), then ``mean`` and ``std`` (sample, ddof=1) rows."""
    metrics = cv_metrics(reports[0] if reports else None)
    rows = []
    for k, (report, run_dir) in enumerate(zip(reports, run_dirs), start=1):
        test = report["test"]
        rows.append({"fold": k, "n_test": test.get("n"), "best_epoch": report.get("best_epoch"),
                     "run_dir": str(run_dir), **{m: test.get(m) for m in metrics}})
    for name, reduce in (("mean", np.mean), ("std", lambda v: np.std(v, ddof=1) if len(v) > 1 else None)):
        row: dict[str, Any] = {"fold": name}
        for m in metrics:
            values = [r[m] for r in rows[: len(reports)] if r[m] is not None]
            row[m] = None if not values or reduce(values) is None else float(reduce(values))
        rows.append(row)
    return rows


def summary_markdown(config: TrainConfig, rows: list[dict[str, Any]]) -> str:
    metrics = cv_metrics(config.task)
    table = Table(name="cv_summary", title=f"{config.folds}-fold cross-validation: {config.dataset}, "
                  f"{config.model}, loss {config.loss} (test split of each fold)",
                  columns=["fold", "test images", *metrics])
    for row in rows:
        table.rows.append([str(row["fold"]), "" if row.get("n_test") is None else str(row["n_test"]),
                           *("—" if row.get(m) is None else f"{row[m]:.4f}" for m in metrics)])
    table.notes.append("mean and std (sample, ddof=1) over the folds; each fold's model is the epoch with the "
                       f"best validation {config.select_metric}, evaluated once on its fold.")
    return table.to_markdown()
