"""What a report wrote (:class:`ReportResult`) and its "Runs" section: which runs were found,
finished, incomplete, invalid or unreadable, and which values they lack.

Both ``report.md`` (:mod:`lmfloss.report.build`) and ``report.html``
(:mod:`lmfloss.report.html`) show the section; they import it from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lmfloss import rundir
from lmfloss.report.aggregate import missing_values
from lmfloss.report.formats import DASH, nonfinite, num
from lmfloss.report.grid import MISSING, OK, UNFINISHED, Comparison, Grid
from lmfloss.report.names import dataset_name, loss_name, model_name
from lmfloss.report.render import Table
from lmfloss.report.runs import INVALID, UNREADABLE, ReportRun, nonfinite_values


@dataclass
class ReportResult:
    """What :func:`lmfloss.report.build.build_report` wrote.

    Attributes:
        out_dir: The output folder.
        runs: Every run found.
        grid: The dataset x model x loss cells.
        comparisons: Paired bootstrap tests of LMF vs each baseline.
        tables: The tables written.
        files: Every file written.
    """

    out_dir: Path
    runs: list[ReportRun]
    grid: Grid
    comparisons: list[Comparison]
    tables: list[Table] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    html: Path | None = None
    figure_files: dict[str, list[Path]] = field(default_factory=dict)
    compare_tables: list[Table] = field(default_factory=list)


def status_section(result: ReportResult) -> list[str]:
    """The "Runs" section as Markdown lines: counts, incomplete cells, values missing from
    runs, invalid and unreadable run directories."""
    grid = result.grid
    finished = sum(r.finished for r in result.runs)
    lines = [
        f"{len(result.runs)} run directories: {finished} finished, "
        f"{len(result.runs) - finished} unfinished or unreadable. "
        f"Grid implied by the runs: {len(grid.datasets)} dataset(s) × {len(grid.models)} "
        f"model(s) × {len(grid.losses)} loss(es); up to {grid.expected_n} seed(s) per cell.",
        "",
    ]
    gaps = [c for c in grid.cells.values() if c.status in (MISSING, UNFINISHED)]
    short = [c for c in grid.cells.values() if c.status == OK and (c.n != grid.expected_n or c.unfinished)]
    if gaps or short:
        lines.append("Incomplete cells (never averaged silently):")
        lines.append("")
        for c in gaps:
            what = "missing (no run)" if c.status == MISSING else f"unfinished ({len(c.unfinished)} run(s) without report.json)"
            lines.append(f"- {dataset_name(c.dataset)} / {model_name(c.model)} / {loss_name(c.loss)}: {what}")
        for c in short:
            lines.append(
                f"- {dataset_name(c.dataset)} / {model_name(c.model)} / {loss_name(c.loss)}: "
                f"n={c.n} finished of {grid.expected_n}" + (f", {len(c.unfinished)} unfinished" if c.unfinished else "")
            )
    else:
        lines.append("Every grid cell is complete.")
    lacking = missing_values(grid)
    if lacking:
        lines += ["", "Values missing from runs: these runs are averaged in the tables but their report.json "
                  "lacks a value other runs record (an older lmfloss, or a hand-edited file), so each mean "
                  "of that value rests on fewer runs and shows its n=k:", ""]
        lines += [f"- `{run.run_dir}` ({dataset_name(run.dataset)} / {model_name(run.model)} / "
                  f"{loss_name(run.loss)}, seed {run.seed}): {', '.join(keys)}" for run, keys in lacking]
    odd = [(r, nonfinite_values(r)) for r in result.runs if r.finished]
    odd = [(r, values) for r, values in odd if values]
    if odd:
        lines += ["", "Runs with values that are not finite numbers (shown as NaN, +inf or −inf in the tables, and "
                  "every mean over them with it):", ""]
        lines += [f"- `{r.run_dir}` ({dataset_name(r.dataset)} / {model_name(r.model)} / {loss_name(r.loss)}, "
                  f"seed {r.seed}): " + ", ".join(f"{key} = {nonfinite(v)}" for key, v in values) for r, values in odd]
    for name in (rundir.REPORT, rundir.PREDICTIONS):
        invalid = [r for r in result.runs if r.status == INVALID and r.invalid_file == name]
        if invalid:
            lines += ["", f"Runs whose {name} cannot be read (counted as unfinished):", ""]
            lines += [f"- `{r.run_dir}`: {r.problem}" for r in invalid]
    unreadable = [r for r in result.runs if r.status == UNREADABLE]
    if unreadable:
        lines += ["", "Run directories whose config.yaml cannot be read (left out of every table):", ""]
        lines += [f"- `{r.run_dir}`: {r.problem}" for r in unreadable]
    return lines + [""]


RUNS_COLUMNS = ["Dataset", "Model", "Loss", "seed", "loss parameters", "lr", "epochs", "best epoch", "metric",
                "val", "test", "status", "folder"]


def _params_text(run: ReportRun) -> str:
    params = {k: v for k, v in sorted(run.loss_params.items()) if k != "reduction" and v is not None}
    return ", ".join(f"{k}={num(v, 'g') if isinstance(v, float) else v}" for k, v in params.items()) or DASH


def _score_text(value: float | None) -> str:
    return DASH if value is None else num(value, ".2f", 100)


def runs_table(runs: list[ReportRun]) -> Table:
    """One row per run directory: what it trained (dataset, model, loss, seed, the loss's
    parameters, learning rate, epochs), the epoch it kept, its validation and test headline
    metric (its task's: macro-F1, mAP), and its status -- flagged where ``report.json`` holds
    a value that is not a finite number."""
    table = Table(name="runs", title="Every run (one row per run directory)", columns=list(RUNS_COLUMNS))
    for run in runs:
        if run.status == UNREADABLE:
            table.rows.append([DASH, DASH, DASH, DASH, DASH, DASH, DASH, DASH, DASH, DASH, DASH,
                               f"unreadable: {run.problem}", str(run.run_dir)])
            continue
        task = run.task
        status = run.status if run.problem is None else f"{run.status}: {run.problem}"
        odd = nonfinite_values(run)
        if odd:
            status += "; not finite: " + ", ".join(f"{key} = {nonfinite(v)}" for key, v in odd)
        best = (run.report or {}).get("best_epoch")
        table.rows.append([
            dataset_name(run.dataset), model_name(run.model), loss_name(run.loss),
            DASH if run.seed is None else str(run.seed), _params_text(run), str(run.config.get("lr", DASH)),
            f"{run.epochs_done}/{run.config.get('epochs', '?')}", DASH if best is None else str(best),
            task.headline_display, _score_text(run.val(task.headline)), _score_text(run.test(task.headline)),
            status, str(run.run_dir),
        ])
    table.notes.append("Scores in percent; val: the kept epoch's validation score, by which the epoch was chosen; "
                       "epochs: rows of metrics.csv / epochs configured.")
    return table
