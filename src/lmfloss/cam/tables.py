"""The CSV tables of ``lmfloss cam``: per-image metrics, the per-class summary, and (from
:mod:`lmfloss.cam.compare`) the per-group spread and the paired tests between groups."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmfloss.cam.compare import GROUP_COLUMNS, TEST_COLUMNS, group_summary, paired_tests
from lmfloss.fileio import atomic_write_text, dict_rows_text

SCORE_KEYS = (
    "pointing_hit", "pointing_hit_shuffled", "energy_in_box", "energy_in_box_shuffled",
    "box_area_fraction", "iou_at_half_max", "best_iou",
)
FAITHFULNESS_KEYS = ("road_morf", "road_lerf", "road", "road_random", "conf_drop", "conf_drop_random")
METRIC_COLUMNS = (
    "run", "group", "seed", "id", "label", "true_class", "pred", "pred_class", "correct", "prob_pred",
    "target", "target_class", "method", "layer", "map_size", "tolerance", "annotation", "n_boxes",
    *SCORE_KEYS, *FAITHFULNESS_KEYS,
)
SUMMARY_COLUMNS = (
    "run", "group", "seed", "target", "class", "layer", "map_size", "tolerance", "n_images",
    "n_scored", "accuracy", "pointing_hit_rate", "pointing_shuffled", "pointing_minus_shuffled",
    "pointing_over_shuffled", "energy_in_box", "energy_shuffled", "energy_minus_shuffled",
    "energy_over_shuffled", "chance", "energy_over_chance", "iou_at_half_max", "best_iou",
    "road_morf", "road_lerf", "road", "road_random", "road_minus_random", "conf_drop",
    "conf_drop_random", "conf_drop_minus_random",
)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def _scores(sel: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Localisation over the annotated images of ``sel``, faithfulness over all of them."""
    scored = [r for r in sel if not math.isnan(r["energy_in_box"])]

    def mean(key: str, rows: Sequence[dict[str, Any]] = scored) -> float:
        return _mean([r.get(key, math.nan) for r in rows])

    hit, hit_shuffled = mean("pointing_hit"), mean("pointing_hit_shuffled")
    energy, energy_shuffled = mean("energy_in_box"), mean("energy_in_box_shuffled")
    chance = mean("box_area_fraction")
    out = {
        "n_images": len(sel), "n_scored": len(scored),
        "accuracy": float(np.mean([r["correct"] for r in sel])),
        "pointing_hit_rate": hit, "pointing_shuffled": hit_shuffled,
        "pointing_minus_shuffled": hit - hit_shuffled, "pointing_over_shuffled": _ratio(hit, hit_shuffled),
        "energy_in_box": energy, "energy_shuffled": energy_shuffled,
        "energy_minus_shuffled": energy - energy_shuffled, "energy_over_shuffled": _ratio(energy, energy_shuffled),
        "chance": chance, "energy_over_chance": _ratio(energy, chance),
        "iou_at_half_max": mean("iou_at_half_max"), "best_iou": mean("best_iou"),
    }
    for key in FAITHFULNESS_KEYS:
        out[key] = mean(key, sel)
    out["road_minus_random"] = out["road"] - out["road_random"]
    out["conf_drop_minus_random"] = out["conf_drop"] - out["conf_drop_random"]
    return out


def summarize(rows: Sequence[dict[str, Any]], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Per run and target: one row per true class present and an ``all`` row.

    Localisation scores are means over the images with an annotation: ``pointing_hit_rate``
    (with the run's tolerance), ``pointing_shuffled`` (each map against another image's
    region: the like-for-like baseline), ``energy_in_box``, ``energy_shuffled``, ``chance``
    (mean box area fraction: what a uniform map scores), ``iou_at_half_max``, ``best_iou``;
    ``*_minus_shuffled`` / ``*_over_shuffled`` are the difference and ratio of the means,
    ``energy_over_chance`` = mean energy / mean chance. Faithfulness (``road*``,
    ``conf_drop*``; ``*_random``: a random map's) and ``accuracy`` are means over all images.
    """
    out: list[dict[str, Any]] = []
    keys = list(dict.fromkeys((r["run"], r["target"]) for r in rows))
    for run, target in keys:
        group = [r for r in rows if r["run"] == run and r["target"] == target]
        first = group[0]
        classes = [c for c in class_names if any(r["true_class"] == c for r in group)]
        for name in [*classes, "all"]:
            sel = group if name == "all" else [r for r in group if r["true_class"] == name]
            out.append({
                "run": run, "group": first.get("group", run), "seed": first.get("seed"),
                "target": target, "class": name, "layer": first.get("layer", ""),
                "map_size": first.get("map_size", ""), "tolerance": first.get("tolerance", math.nan),
                **_scores(sel),
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

    atomic_write_text(dict_rows_text(columns, rows, fmt), path)
    return path


def write_tables(out: Path, rows: list[dict[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """Write ``cam_metrics.csv``, ``cam_summary.csv``, ``cam_groups.csv`` and, with two groups
    or more, ``cam_tests.csv`` into ``out`` (created).

    Returns:
        ``{"metrics_csv", "summary_csv", "groups_csv", "tests_csv"}`` (paths; ``tests_csv``
        ``None`` with one group) and the rows ``{"summary", "groups", "tests"}``.
    """
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows, class_names)
    groups = group_summary(summary)
    tests = paired_tests(rows) if len({r["group"] for r in rows}) > 1 else []
    return {
        "metrics_csv": write_csv(out / "cam_metrics.csv", rows, METRIC_COLUMNS),
        "summary_csv": write_csv(out / "cam_summary.csv", summary, SUMMARY_COLUMNS),
        "groups_csv": write_csv(out / "cam_groups.csv", groups, GROUP_COLUMNS),
        "tests_csv": write_csv(out / "cam_tests.csv", tests, TEST_COLUMNS) if tests else None,
        "summary": summary, "groups": groups, "tests": tests,
    }
