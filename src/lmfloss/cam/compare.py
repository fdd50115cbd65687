"""Several seeds per loss: the spread of the CAM scores and paired tests between losses.

Per group (the runs of one experiment, e.g. the seeds of LMF) and target: the mean and
standard deviation over its runs of each run's ``all`` score (``cam_groups.csv``).

Between two groups A and B, for pointing, energy/chance and faithfulness
(``cam_tests.csv``), pairs are the same seed (runs of a group sharing a seed are averaged)
and the same images:

- over seeds: per paired seed, the difference of the two runs' means over the images
  both scored; :func:`lmfloss.report.stats.seed_t_test` gives the mean difference, its
  t-interval and the paired t-test's p (none with fewer than 3 seeds) -- whether the
  difference survives another seed;
- over images: per image, the difference averaged over the paired seeds; the same t-test
  over images says whether it could come from the choice of test images.

Both p columns are Holm-corrected (:func:`lmfloss.report.stats.holm`) over every test in
the file. Energy/chance is tested per image as ``energy_in_box / chance`` with the chance
(mean box area fraction) of the scored images, so its seed means are the summary's ratio.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from lmfloss.report.stats import holm, mean_std, seed_t_test

GROUP_METRICS = (
    "accuracy", "pointing_hit_rate", "pointing_minus_shuffled", "energy_over_chance",
    "energy_minus_shuffled", "road", "road_minus_random", "conf_drop", "conf_drop_minus_random",
)
GROUP_COLUMNS = (
    "group", "target", "n_runs", "seeds", "layer", "map_size",
    *(f"{m}_{s}" for m in GROUP_METRICS for s in ("mean", "std")),
)
TEST_COLUMNS = (
    "target", "metric", "group_a", "group_b", "seeds", "n_seeds", "mean_a", "mean_b", "delta",
    "ci95_low", "ci95_high", "p_seeds", "p_seeds_holm", "n_images", "delta_images", "p_images",
    "p_images_holm",
)
# Tested metric -> the per-image column it is the mean of.
TESTED = {"pointing_hit_rate": "pointing_hit", "energy_over_chance": "energy_in_box",
          "road": "road", "conf_drop": "conf_drop"}


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def _joined(values: Sequence[Any]) -> str:
    return " ".join(str(v) for v in dict.fromkeys(values))


def group_summary(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample SD over each group's runs of their ``all`` rows (``cam_groups.csv``).

    Args:
        summary: rows of ``cam_summary.csv`` (with ``group`` and ``seed``).
    """
    rows = [r for r in summary if r["class"] == "all"]
    out = []
    for group, target in dict.fromkeys((r["group"], r["target"]) for r in rows):
        sel = [r for r in rows if r["group"] == group and r["target"] == target]
        row: dict[str, Any] = {
            "group": group, "target": target, "n_runs": len(sel),
            "seeds": _joined(sorted(r["seed"] for r in sel if r["seed"] is not None)),
            "layer": _joined(r["layer"] for r in sel), "map_size": _joined(r["map_size"] for r in sel),
        }
        for metric in GROUP_METRICS:
            values = _finite([r[metric] for r in sel])
            mean, std = mean_std(values) if values else (math.nan, None)
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean, math.nan if std is None else std
        out.append(row)
    return out


def _per_image(rows: Sequence[dict[str, Any]], target: str,
               metric: str) -> dict[tuple[str, Any], dict[str, float]]:
    """``{(group, seed): {image id: value}}``, runs of one group and seed averaged."""
    column = TESTED[metric]
    sel = [r for r in rows if r["target"] == target]
    scale = 1.0
    if metric == "energy_over_chance":
        chance = _finite([r["box_area_fraction"] for r in sel])
        scale = 1.0 / float(np.mean(chance)) if chance and np.mean(chance) > 0 else math.nan
    collected: dict[tuple[str, Any], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in sel:
        value = r.get(column, math.nan)
        if isinstance(value, (int, float)) and math.isfinite(value):
            collected[(r["group"], r["seed"])][r["id"]].append(float(value) * scale)
    return {key: {i: float(np.mean(v)) for i, v in images.items()} for key, images in collected.items()}


def _compare(values: dict[tuple[str, Any], dict[str, float]], a: str, b: str) -> dict[str, Any] | None:
    seeds = sorted({s for g, s in values if g == a} & {s for g, s in values if g == b}, key=str)
    seed_a, seed_b, image_deltas = [], [], defaultdict(list)
    for seed in seeds:
        va, vb = values[(a, seed)], values[(b, seed)]
        common = [i for i in va if i in vb]
        if not common:
            continue
        seed_a.append(float(np.mean([va[i] for i in common])))
        seed_b.append(float(np.mean([vb[i] for i in common])))
        for i in common:
            image_deltas[i].append(va[i] - vb[i])
    if not seed_a:
        return None
    by_seed = seed_t_test([x - y for x, y in zip(seed_a, seed_b)])
    full = [float(np.mean(d)) for d in image_deltas.values() if len(d) == len(seed_a)]
    by_image = seed_t_test(full)
    return {
        "seeds": " ".join(str(s) for s in seeds), "n_seeds": len(seed_a),
        "mean_a": float(np.mean(seed_a)), "mean_b": float(np.mean(seed_b)), "delta": by_seed.mean,
        "ci95_low": by_seed.ci95[0] if by_seed.ci95 else math.nan,
        "ci95_high": by_seed.ci95[1] if by_seed.ci95 else math.nan,
        "p_seeds": by_seed.p, "n_images": len(full), "delta_images": by_image.mean, "p_images": by_image.p,
    }


def paired_tests(rows: Sequence[dict[str, Any]], metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Paired comparisons of every pair of groups (``cam_tests.csv``; see the module docstring).

    Args:
        rows: rows of ``cam_metrics.csv`` (per image, run and target, with ``group``/``seed``).
        metrics: keys of :data:`TESTED`; default pointing, energy/chance and ``road`` (or
            ``conf_drop`` when no ROAD score was computed). Metrics without values are skipped.

    Returns:
        One row per target, metric and pair ``(A, B)`` in group order, ``delta = A - B``.
    """
    if metrics is None:
        has_road = any(math.isfinite(r.get("road", math.nan)) for r in rows)
        metrics = ("pointing_hit_rate", "energy_over_chance", "road" if has_road else "conf_drop")
    groups = list(dict.fromkeys(r["group"] for r in rows))
    out = []
    for target in dict.fromkeys(r["target"] for r in rows):
        for metric in metrics:
            values = _per_image(rows, target, metric)
            for a, b in combinations(groups, 2):
                result = _compare(values, a, b)
                if result is not None:
                    out.append({"target": target, "metric": metric, "group_a": a, "group_b": b, **result})
    for column in ("p_seeds", "p_images"):
        for row, adjusted in zip(out, holm([r[column] for r in out])):
            row[f"{column}_holm"] = adjusted
    return out
