"""Files of a run directory that people open: CSV for numbers, PNG for pictures.

Format (docs/ARCHITECTURE.md, "Run directory"): ``metrics.csv`` one row per finished
epoch, ``report.json``, ``predictions.csv`` (``id,label,pred,prob_<class>...``),
``per_class.csv``, ``confusion.png``, ``curves.png``. Everything is written atomically
so a reader (the sweep, the report) never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmfloss.train.checkpoint import atomic_write_text

logger = logging.getLogger(__name__)

METRICS_COLUMNS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_f1_macro", "lr", "seconds")


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_metrics_csv(history: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Rewrite ``metrics.csv`` from the full history (one row per finished epoch)."""
    rows = [[_fmt(row[c]) for c in METRICS_COLUMNS] for row in history]
    atomic_write_text(_csv_text(METRICS_COLUMNS, rows), path)


def read_metrics_csv(path: str | Path) -> list[dict[str, float]]:
    """Rows of ``metrics.csv`` as dicts of numbers (``epoch`` as int)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in rows]


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return value


def write_report(report: dict[str, Any], path: str | Path) -> None:
    atomic_write_text(json.dumps(report, indent=2) + "\n", path)


def write_predictions(
    ids: Sequence[str],
    labels: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
) -> None:
    """``predictions.csv``: ``id,label,pred,prob_<class>...`` with class names as labels.

    ``pred`` is the argmax of ``probs`` (ties: the lowest class index, as ``argmax``).
    """
    preds = probs.argmax(axis=1)
    header = ["id", "label", "pred"] + [f"prob_{c}" for c in class_names]
    rows = [
        [i, class_names[int(t)], class_names[int(p)], *(f"{float(x):.8g}" for x in row)]
        for i, t, p, row in zip(ids, labels, preds, probs)
    ]
    atomic_write_text(_csv_text(header, rows), path)


def write_per_class(
    report: dict[str, Any], class_names: Sequence[str], train_counts: Sequence[int], path: str | Path
) -> None:
    """``per_class.csv``: ``class,train_count,support,precision,recall,f1`` of one split."""
    rows = [
        [
            name,
            int(train_counts[k]),
            report["support"][name],
            f"{report['precision_per_class'][name]:.6f}",
            f"{report['recall_per_class'][name]:.6f}",
            f"{report['f1_per_class'][name]:.6f}",
        ]
        for k, name in enumerate(class_names)
    ]
    header = ("class", "train_count", "support", "precision", "recall", "f1")
    atomic_write_text(_csv_text(header, rows), path)


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
    fig.savefig(path, dpi=120)


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
    if best_epoch is not None:
        right.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
    right.set_xlabel("epoch")
    right.set_ylim(0, 1)
    right.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
