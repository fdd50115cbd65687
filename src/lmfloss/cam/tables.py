"""The two CSV tables of ``lmfloss cam``: per-image metrics and the per-class summary."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmfloss.cam.metrics import METRIC_KEYS

METRIC_COLUMNS = (
    "run", "id", "label", "true_class", "pred", "pred_class", "correct", "prob_pred",
    "target", "target_class", "method", "layer", "annotation", "n_boxes", *METRIC_KEYS,
)
SUMMARY_COLUMNS = (
    "run", "target", "class", "n_images", "n_scored", "accuracy", "pointing_hit_rate",
    "energy_in_box", "chance", "energy_over_chance", "iou_at_half_max", "best_iou",
)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarize(rows: Sequence[dict[str, Any]], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Per run and target: one row per true class present and an ``all`` row.

    ``pointing_hit_rate``, ``energy_in_box``, ``chance`` (mean box area fraction),
    ``iou_at_half_max`` and ``best_iou`` are means over the scored images;
    ``energy_over_chance`` = mean energy / mean chance; ``accuracy`` over all images.
    """
    out: list[dict[str, Any]] = []
    keys = list(dict.fromkeys((r["run"], r["target"]) for r in rows))
    for run, target in keys:
        group = [r for r in rows if r["run"] == run and r["target"] == target]
        classes = [c for c in class_names if any(r["true_class"] == c for r in group)]
        for name in [*classes, "all"]:
            sel = group if name == "all" else [r for r in group if r["true_class"] == name]
            scored = [r for r in sel if not math.isnan(r["energy_in_box"])]
            energy = _mean([r["energy_in_box"] for r in scored])
            chance = _mean([r["box_area_fraction"] for r in scored])
            out.append({
                "run": run,
                "target": target,
                "class": name,
                "n_images": len(sel),
                "n_scored": len(scored),
                "accuracy": float(np.mean([r["correct"] for r in sel])),
                "pointing_hit_rate": _mean([r["pointing_hit"] for r in scored]),
                "energy_in_box": energy,
                "chance": chance,
                "energy_over_chance": energy / chance if chance and chance == chance else math.nan,
                "iou_at_half_max": _mean([r["iou_at_half_max"] for r in scored]),
                "best_iou": _mean([r["best_iou"] for r in scored]),
            })
    return out


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Path:
    """Write rows; floats with 6 significant digits, NaN as an empty cell."""

    def fmt(v: Any) -> Any:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.6g}"
        if isinstance(v, bool):
            return int(v)
        return v

    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: fmt(row.get(c, "")) for c in columns})
    return path
