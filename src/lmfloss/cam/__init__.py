"""Grad-CAM for trained runs, scored against annotation boxes or lesion masks.

The paper (Sadi et al., "Attention map analysis", Fig. 3) inspects Grad-CAM maps by eye;
this package scores them:

- :func:`box_metrics` / :func:`region_metrics` -- pointing game (with a tolerance), energy
  in box vs chance, IoU (numpy only, usable on any map); :func:`derangement` pairs every
  image with another for the shuffled-annotation baseline;
- :func:`mask_to_boxes` -- bounding boxes of a binary lesion mask;
- :func:`compute_cams` -- maps through pytorch-grad-cam with hooks always released;
- :func:`choose_target_layer` / :func:`resolve_layer` -- the target layer: by default the
  deepest block whose map is at least 7x7 at the image size;
- :func:`faithfulness_scores` -- ROAD and the confidence drop, beside :func:`random_maps`;
- :func:`describe_runs` / :func:`paired_tests` -- runs grouped by loss, tests over seeds;
- :func:`run_cam` -- the ``lmfloss cam`` pipeline (CSV scores, overlays, the figure).

Heavy modules (torch, matplotlib) load on first use of a name that needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from lmfloss.cam.metrics import (
    METRIC_KEYS,
    box_metrics,
    boxes_to_mask,
    default_tolerance,
    derangement,
    mask_to_boxes,
    region_metrics,
    rescale_boxes,
    within_distance,
)

_LAZY = {
    "compute_cams": "lmfloss.cam.compute",
    "CamResult": "lmfloss.cam.compute",
    "METHODS": "lmfloss.cam.compute",
    "choose_target_layer": "lmfloss.cam.layers",
    "resolve_layer": "lmfloss.cam.layers",
    "layer_map_sizes": "lmfloss.cam.layers",
    "faithfulness_scores": "lmfloss.cam.faithfulness",
    "random_maps": "lmfloss.cam.faithfulness",
    "describe_runs": "lmfloss.cam.groups",
    "finished_runs": "lmfloss.cam.groups",
    "group_summary": "lmfloss.cam.compare",
    "paired_tests": "lmfloss.cam.compare",
    "read_boxes_csv": "lmfloss.cam.annotations",
    "read_mask": "lmfloss.cam.annotations",
    "clip_boxes": "lmfloss.cam.annotations",
    "overlay_cam": "lmfloss.cam.figure",
    "attention_figure": "lmfloss.cam.figure",
    "run_cam": "lmfloss.cam.run",
}

__all__ = [
    "METRIC_KEYS",
    "box_metrics",
    "boxes_to_mask",
    "default_tolerance",
    "derangement",
    "mask_to_boxes",
    "region_metrics",
    "rescale_boxes",
    "within_distance",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lmfloss.cam' has no attribute {name!r}")
