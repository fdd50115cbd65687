"""The page's figures of one dataset x model: training curves, confusion matrices, reliability.

Each figure maker returns a :class:`Panel` -- the matplotlib figure and the notes its caption
adds (gaps in a curve, runs without curves, what a marker's size means) -- or ``None`` when the
cell has nothing to draw. Confusion matrices are data (:func:`confusion_panels`) the page
draws as tables, so a long class name wraps instead of being cut. One colour per loss, the same in every figure of the report
(:func:`lmfloss.report.names.loss_colors`), each loss-coloured element carrying an SVG group id
(:func:`lmfloss.report.names.loss_gid`) so the page's test can check it. Each figure sets its
margins in inches from what it holds (the legend's longest label), so no tick label, title or
legend is cut at the figure's edge (the tests check every text's box). The curves are one panel per metric with the mean over seeds and a
band of ± one SD (the tables' dispersion), so the page grows with cells, not with runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmfloss.report.grid import OK, Cell, Grid, per_label
from lmfloss.report.names import dataset_name, loss_colors, loss_gid, loss_name, model_name
from lmfloss.report.runs import ReportRun
from lmfloss.rundir import read_metrics

logger = logging.getLogger(__name__)

# A reliability diagram's x and y axes and the calibration bins' observed rate: of the top
# label (a task reported per class) or of every label's probability (per label).
TOP_LABEL_RELIABILITY = ("confidence (top-label probability)", "accuracy", "accuracy")
PER_LABEL_RELIABILITY = ("probability of a label", "share of positives", "frequency")
SPARSE_BIN = 0.01  # a reliability bin holding under 1 % of the predictions is drawn lighter
SD_WORDS = "± 1 SD over seeds"  # the page's one dispersion measure, as the tables'


@dataclass
class Panel:
    """A figure of the page and what its caption must add."""

    fig: Any
    notes: list[str] = field(default_factory=list)


def new_figure(width: float, height: float) -> Any:
    """A matplotlib figure; each maker sets its margins in inches from what it holds (a layout
    engine measuring every text of every figure was half the page's time on 300 runs)."""
    # not at the top: lmfloss.cam imports this package without matplotlib
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def set_margins(fig: Any, left: float, right: float, bottom: float, top: float, **space: float) -> None:
    """Margins in inches (left/bottom: tick labels and axis labels; right: a legend; top: titles)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        **space)


# ------------------------------------------------------------------------------- curves
@dataclass
class Curves:
    """One loss's curves of one cell: epochs x runs, NaN where a run has no finite value."""

    epochs: np.ndarray
    values: dict[str, np.ndarray]  # column -> [runs, epochs]
    best: list[tuple[int, int]]  # (run index, kept epoch)
    nonfinite: int = 0  # values written as NaN/inf (not drawn)
    unreadable: list[str] = field(default_factory=list)


def read_curves(runs: Sequence[ReportRun], columns: Sequence[str]) -> Curves | None:
    """The runs' ``metrics.csv`` columns on a shared epoch axis (``None`` without any row)."""
    tables, unreadable = [], []
    for run in runs:
        try:
            rows = read_metrics(run.run_dir)
        except (OSError, ValueError) as exc:  # one damaged file costs its curve, not the page
            logger.warning("no curves for %s: %s", run.run_dir, exc)
            unreadable.append(str(run.run_dir))
            continue
        if rows:
            tables.append((run, rows))
    if not tables:
        return None if not unreadable else Curves(np.array([]), {}, [], 0, unreadable)
    epochs = np.array(sorted({int(r["epoch"]) for _, rows in tables for r in rows}))
    where = {e: i for i, e in enumerate(epochs)}
    values = {c: np.full((len(tables), epochs.size), np.nan) for c in columns}
    nonfinite, best = 0, []
    for k, (run, rows) in enumerate(tables):
        for row in rows:
            for column in columns:
                value = row.get(column)
                if value is None:
                    continue
                if not np.isfinite(value):
                    nonfinite += 1
                    continue
                values[column][k, where[int(row["epoch"])]] = value
        kept = (run.report or {}).get("best_epoch")
        if run.finished and kept in where:
            best.append((k, where[kept]))
    return Curves(epochs, values, best, nonfinite, unreadable)


def mean_sd(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per epoch: the mean over the runs that have a value, and the SD (ddof 1; NaN below 2)."""
    counts = np.isfinite(values).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.nansum(values, axis=0)
        mean = np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
        squares = np.nansum((values - mean) ** 2, axis=0)
        sd = np.where(counts > 1, np.sqrt(squares / np.maximum(counts - 1, 1)), np.nan)
    return mean, sd


def _limits(ax: Any, arrays: list[np.ndarray]) -> None:
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    if finite.size == 0:
        return
    lo, hi = float(finite.min()), float(finite.max())
    pad = 0.06 * (hi - lo) if hi > lo else max(0.01, 0.05 * abs(hi))
    ax.set_ylim(lo - pad, hi + pad)


def _draw_loss(ax: Any, curves: Curves, column: str, color: str, style: str, gid: str) -> list[np.ndarray]:
    """One column of one loss: the mean (a line per run when there is one run), the SD band."""
    values = curves.values[column]
    mean, sd = mean_sd(values)
    marker = "." if curves.epochs.size < 30 else None  # a run of one epoch is a point
    line = ax.plot(curves.epochs, mean, style, color=color, linewidth=1.4, marker=marker)[0]
    line.set_gid(gid)
    drawn = [mean]
    if np.isfinite(sd).any():
        band = ax.fill_between(curves.epochs, mean - sd, mean + sd, color=color, alpha=0.18, linewidth=0)
        band.set_gid(gid + "-sd")
        drawn += [mean - sd, mean + sd]
    return drawn


def curves_figure(grid: Grid, dataset: str, model: str) -> Panel | None:
    """Training curves of one dataset x model: one panel per metric -- the training (solid) and
    validation (dashed) loss, the validation headline metric of the task (macro-F1; mAP for
    multi-label) -- one colour per loss, the mean over seeds with a ± 1 SD band, each run's kept
    epoch marked with a large outlined diamond; y-limits from the data."""
    # not at the top: lmfloss.cam imports this package without matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    task = grid.task(dataset)
    score = f"val_{task.headline}"
    colors = loss_colors(grid.losses)
    fig = new_figure(9.0, 3.3)
    loss_ax, score_ax = fig.subplots(1, 2)
    handles, notes, drawn_loss, drawn_score = [], [], [], []
    for loss in grid.losses_of(dataset):
        cell = grid.cell(dataset, model, loss)
        runs = cell.runs or cell.unfinished
        curves = read_curves(runs, ("train_loss", "val_loss", score)) if runs else None
        if curves is None:
            continue
        name = loss_name(loss) + ("" if cell.runs else " (unfinished)")
        notes += [f"{loss_name(loss)}: no curve for {path} (metrics.csv unreadable)" for path in curves.unreadable]
        if not curves.epochs.size:
            continue
        color = colors[loss]
        drawn_loss += _draw_loss(loss_ax, curves, "train_loss", color, "-", loss_gid(loss, "train"))
        drawn_loss += _draw_loss(loss_ax, curves, "val_loss", color, "--", loss_gid(loss, "val"))
        drawn_score += _draw_loss(score_ax, curves, score, color, "-", loss_gid(loss, "score"))
        for k, e in curves.best:
            y = curves.values[score][k, e]
            if np.isfinite(y):
                kept = score_ax.plot([curves.epochs[e]], [y], "D", color=color, markersize=7, markeredgecolor="black",
                                     markeredgewidth=1.0, zorder=5)[0]
                kept.set_gid(loss_gid(loss, "kept"))
        n = len(cell.runs) or len(cell.unfinished)
        handles.append(Line2D([], [], color=color, linewidth=2, label=f"{name} (n={n})"))
        if curves.nonfinite:
            notes.append(f"{loss_name(loss)}: {curves.nonfinite} value(s) in metrics.csv are NaN or ±inf and are "
                         "not drawn: the curve has a gap there")
    if not handles:
        return None
    _limits(loss_ax, drawn_loss)
    _limits(score_ax, drawn_score)
    loss_ax.set_ylabel("loss", fontsize=8)
    loss_ax.set_title("training (solid) and validation (dashed) loss", fontsize=9)
    score_ax.set_ylabel(f"val {task.headline_display}", fontsize=8)
    score_ax.set_title(f"validation {task.headline_display} (◆ kept epoch)", fontsize=9)
    for ax in (loss_ax, score_ax):
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.grid(alpha=0.25)
    handles += [Line2D([], [], color="grey", linestyle="-", label="training"),
                Line2D([], [], color="grey", linestyle="--", label="validation"),
                Patch(color="grey", alpha=0.25, label=SD_WORDS),
                Line2D([], [], color="grey", marker="D", linestyle="", markeredgecolor="black", label="kept epoch")]
    longest = max(len(h.get_label()) for h in handles)
    legend = 0.45 + 0.062 * longest  # a 7-pt character is at most ~0.06 in: the legend's width
    fig.set_size_inches(7.6 + legend, 3.3)
    set_margins(fig, left=0.6, right=legend, bottom=0.45, top=0.3, wspace=0.28)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1 - (legend - 0.1) / fig.get_figwidth(), 0.5),
               fontsize=7, frameon=False)
    return Panel(fig, notes)


# ---------------------------------------------------------------------------- confusion
@dataclass
class ConfusionPanel:
    """One loss's test confusion matrix of a dataset x model, summed over its seeds.

    Attributes:
        loss: The loss (its registry name).
        runs: How many runs' matrices were summed.
        counts: ``[K, K]`` images (rows: true class, columns: predicted).
        shares: ``counts`` normalised per row (0 for a class without test images).
    """

    loss: str
    runs: int
    counts: np.ndarray
    shares: np.ndarray


def _summed_confusion(cell: Cell, k: int) -> tuple[np.ndarray, int]:
    total, used = np.zeros((k, k)), 0
    for run in cell.runs:
        matrix = ((run.report or {}).get("test") or {}).get("confusion_matrix")
        if matrix is not None and np.shape(matrix) == (k, k):
            total += np.asarray(matrix, dtype=np.float64)
            used += 1
    return total, used


def confusion_panels(grid: Grid, dataset: str, model: str) -> tuple[list[str], list[ConfusionPanel]] | None:
    """``(class names, one panel per finished loss)`` of a dataset x model reported per class,
    or ``None`` (a per-label dataset, or no finished run). The page draws them as tables: a
    class name wraps like any text, so it is never cut, and each cell's number is page text."""
    cells = [c for c in (grid.cell(dataset, model, loss) for loss in grid.losses_of(dataset)) if c.status == OK]
    if not cells or per_label(grid.task(dataset)):
        return None
    names = cells[0].runs[0].class_names
    if not names:
        return None
    panels = []
    for cell in cells:
        total, used = _summed_confusion(cell, len(names))
        panels.append(ConfusionPanel(cell.loss, used, total, total / np.maximum(total.sum(axis=1, keepdims=True), 1)))
    return names, panels


# --------------------------------------------------------------------------- reliability
def _pooled(cell: Cell) -> tuple[np.ndarray, np.ndarray] | None:
    ys, ps = [], []
    for run in cell.runs:
        try:
            predictions = run.predictions()
        except (OSError, ValueError):
            continue
        if predictions.probs is not None:
            ys.append(predictions.labels)
            ps.append(predictions.probs)
    return (np.concatenate(ys), np.concatenate(ps)) if ys else None


def reliability_figure(grid: Grid, dataset: str, model: str, n_bins: int = 15) -> Panel | None:
    """One reliability curve per loss of one dataset x model, the test predictions of its seeds
    pooled: accuracy against top-label confidence (multi-label: the share of positives against
    every label's probability, :meth:`lmfloss.task.Task.calibration_bins`), the diagonal for
    reference; a marker's area grows with the predictions its bin holds, and a bin with under
    1 % of them is drawn lighter."""
    task = grid.task(dataset)
    x_label, y_label, observed_key = PER_LABEL_RELIABILITY if per_label(task) else TOP_LABEL_RELIABILITY
    colors = loss_colors(grid.losses)
    fig = new_figure(5.6, 3.8)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
    drawn = 0
    for loss in grid.losses_of(dataset):
        cell = grid.cell(dataset, model, loss)
        pooled = _pooled(cell) if cell.status == OK else None
        if pooled is None:
            continue
        bins = task.calibration_bins(*pooled, n_bins)
        counts = np.asarray(bins["count"], dtype=np.float64)
        used = counts > 0
        x, y, share = bins["confidence"][used], bins[observed_key][used], counts[used] / counts.sum()
        color = colors[loss]
        line = ax.plot(x, y, "-", color=color, linewidth=1, label=f"{loss_name(loss)} ({int(counts.sum())})")[0]
        line.set_gid(loss_gid(loss, "reliability"))
        sizes = 6 + 140 * share
        dense = share >= SPARSE_BIN
        for mask, alpha in ((dense, 0.95), (~dense, 0.3)):
            if mask.any():
                dots = ax.scatter(x[mask], y[mask], s=sizes[mask], color=color, alpha=alpha, edgecolors="none",
                                  zorder=3)
                dots.set_gid(loss_gid(loss, "bins"))
        drawn += 1
    if not drawn:
        return None
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(x_label, fontsize=8)
    ax.set_ylabel(y_label, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left", title="loss (predictions)",
              title_fontsize=7)
    ax.set_title(f"{dataset_name(dataset)}, {model_name(model)}", fontsize=9)
    set_margins(fig, left=0.55, right=0.15, bottom=0.45, top=0.3)
    notes = [f"A marker's area grows with the share of predictions in its bin; a bin holding under "
             f"{100 * SPARSE_BIN:.0f} % of them is drawn lighter (its rate rests on few predictions)."]
    return Panel(fig, notes)
