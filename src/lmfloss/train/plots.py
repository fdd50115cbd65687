"""The pictures of a run directory: ``confusion.png``, ``curves.png``, ``calibration.png``.

The file names and every other file of the format belong to :mod:`lmfloss.rundir`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lmfloss import multilabel_metrics
from lmfloss.fileio import save_figure
from lmfloss.metrics import (
    brier_score,
    calibration_bins,
    expected_calibration_error,
    negative_log_likelihood,
)
from lmfloss.task import Task, get_task

logger = logging.getLogger(__name__)

def _new_figure(width: float, height: float):
    """A figure outside pyplot's global state (no backend switch, nothing to close)."""
    return Figure(figsize=(width, height))


def plot_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path, title: str) -> None:
    """Row-normalised confusion matrix with the counts written in each cell."""
    cm = np.asarray(matrix, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(class_names)
    size = max(4.0, 0.6 * k + 2)
    fig = _new_figure(size, size)
    ax = fig.subplots()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_label_confusion(matrices: dict[str, Sequence[Sequence[int]]], path: str | Path, title: str) -> None:
    """Multi-label: one 2x2 confusion matrix per label (``[[tn, fp], [fn, tp]]`` at 0.5),
    each row-normalised with the counts written in the cells."""
    names = list(matrices)
    cols = min(len(names), 4)
    rows = -(-len(names) // cols)
    fig = _new_figure(2.4 * cols, 2.4 * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        cm = np.asarray(matrices[name], dtype=np.float64)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks([0, 1], ["no", "yes"], fontsize=7)
        ax.set_yticks([0, 1], ["no", "yes"], fontsize=7)
        ax.set_title(name, fontsize=9)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    for ax in axes[len(names):]:
        ax.axis("off")
    fig.suptitle(f"{title}: true (rows) vs predicted at p >= 0.5 (columns)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_confusion_of(report: dict[str, Any], path: str | Path, title: str) -> None:
    """The test confusion of ``report.json``: the K x K matrix, or a multi-label run's 2 x 2
    matrix per label (``confusion_per_label``)."""
    if "confusion_per_label" in report["test"]:
        plot_label_confusion(report["test"]["confusion_per_label"], path, title)
    else:
        plot_confusion(report["test"]["confusion_matrix"], report["class_names"], path, title)


def plot_curves(history: Sequence[dict[str, Any]], best_epoch: int | None, path: str | Path,
                task: Task | str | None = None) -> None:
    """Training/validation loss and the task's validation scores (``metrics.csv``'s
    ``val_<key>`` columns: accuracy, macro-F1, AUC, mAP, ...) per epoch."""
    epochs = [r["epoch"] for r in history]
    fig = _new_figure(10, 4)
    left, right = fig.subplots(1, 2)
    left.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train loss")
    left.plot(epochs, [r["val_loss"] for r in history], marker="o", label="val loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    task = get_task(task)

    def values(key: str) -> list[float]:
        return [np.nan if r.get(key) is None else r[key] for r in history]

    for key in task.epoch_metrics:
        if any(r.get(f"val_{key}") is not None for r in history):
            right.plot(epochs, values(f"val_{key}"), marker="o", label=task.epoch_labels.get(key, f"val {key}"))
    if best_epoch is not None:
        right.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
    right.set_xlabel("epoch")
    right.set_ylim(0, 1)
    right.legend()
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_reliability(y_true: np.ndarray, probs: np.ndarray, path: str | Path, title: str, n_bins: int = 15) -> None:
    """Reliability diagram: accuracy against confidence in 15 equal-width bins, with the
    share of images per bin below and the ECE, Brier score and NLL in the title. Multi-label
    targets ``[N, L]``: every label's probability is a binary forecast, the share of positives
    against ``p`` (:func:`lmfloss.multilabel_metrics.calibration_bins`)."""
    if np.ndim(y_true) == 2:
        bins = multilabel_metrics.calibration_bins(y_true, probs, n_bins)
        scores = multilabel_metrics.calibration_scores(np.asarray(y_true), np.asarray(probs, dtype=np.float64), n_bins)
        _draw_reliability(bins, bins["frequency"], path, f"{title}\nevery label's p: ECE {scores['ece']:.3f}, "
                          f"Brier {scores['brier']:.3f}, NLL {scores['nll']:.3f}",
                          ("share of positives", "gap to p", "sigmoid probability of a label",
                           "share of image x label"))
        return
    bins = calibration_bins(y_true, probs, n_bins)
    _draw_reliability(bins, bins["accuracy"], path,
                      f"{title}\nECE {expected_calibration_error(y_true, probs, n_bins):.3f}, "
                      f"Brier {brier_score(y_true, probs):.3f}, NLL {negative_log_likelihood(y_true, probs):.3f}",
                      ("accuracy", "gap to confidence", "confidence (top-label softmax probability)",
                       "share of images"))


def _draw_reliability(bins: dict[str, np.ndarray], observed: np.ndarray, path: str | Path, title: str,
                      words: tuple[str, str, str, str]) -> None:
    """The two panels of a reliability diagram; ``words``: the observed quantity, the gap, the
    x axis and the share below."""
    what, gap, x_label, share = words
    edges = bins["edges"]
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    used = bins["count"] > 0
    fig = _new_figure(5, 6)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    top.bar(centers[used], observed[used], width=width, edgecolor="black", alpha=0.7, label=what)
    top.bar(centers[used], bins["confidence"][used] - observed[used], bottom=observed[used],
            width=width, color="red", alpha=0.25, label=gap)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel(what)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title, fontsize=9)
    bottom.bar(centers, bins["count"] / max(bins["count"].sum(), 1), width=width, edgecolor="black")
    bottom.set_xlabel(x_label)
    bottom.set_ylabel(share)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
