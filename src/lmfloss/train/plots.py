"""The pictures of a run directory: ``confusion.png``, ``curves.png``, ``calibration.png``.

The file names and every other file of the format belong to :mod:`lmfloss.rundir`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmfloss.fileio import save_figure

logger = logging.getLogger(__name__)

def _new_figure(width: float, height: float):
    """A figure outside pyplot's global state (no backend switch, nothing to close)."""
    from matplotlib.figure import Figure

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


def plot_curves(history: Sequence[dict[str, Any]], best_epoch: int | None, path: str | Path) -> None:
    """Training/validation loss and validation accuracy/macro-F1 per epoch."""
    epochs = [r["epoch"] for r in history]
    fig = _new_figure(10, 4)
    left, right = fig.subplots(1, 2)
    left.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train loss")
    left.plot(epochs, [r["val_loss"] for r in history], marker="o", label="val loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    right.plot(epochs, [r["val_accuracy"] for r in history], marker="o", label="val accuracy")
    right.plot(epochs, [r["val_f1_macro"] for r in history], marker="o", label="val macro-F1")
    if any(r.get("val_auc") is not None for r in history):
        right.plot(epochs, [np.nan if r.get("val_auc") is None else r["val_auc"] for r in history],
                   marker="o", label="val AUC")
    if best_epoch is not None:
        right.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
    right.set_xlabel("epoch")
    right.set_ylim(0, 1)
    right.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_reliability(y_true: np.ndarray, probs: np.ndarray, path: str | Path, title: str, n_bins: int = 15) -> None:
    """Reliability diagram: accuracy against confidence in 15 equal-width bins, with the
    share of images per bin below and the ECE, Brier score and NLL in the title."""
    from lmfloss.metrics import (
        brier_score,
        calibration_bins,
        expected_calibration_error,
        negative_log_likelihood,
    )

    bins = calibration_bins(y_true, probs, n_bins)
    edges = bins["edges"]
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    used = bins["count"] > 0
    fig = _new_figure(5, 6)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    top.bar(centers[used], bins["accuracy"][used], width=width, edgecolor="black", alpha=0.7, label="accuracy")
    top.bar(centers[used], bins["confidence"][used] - bins["accuracy"][used], bottom=bins["accuracy"][used],
            width=width, color="red", alpha=0.25, label="gap to confidence")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"{title}\nECE {expected_calibration_error(y_true, probs, n_bins):.3f}, "
                  f"Brier {brier_score(y_true, probs):.3f}, NLL {negative_log_likelihood(y_true, probs):.3f}",
                  fontsize=9)
    bottom.bar(centers, bins["count"] / max(bins["count"].sum(), 1), width=width, edgecolor="black")
    bottom.set_xlabel("confidence (top-label softmax probability)")
    bottom.set_ylabel("share of images")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
