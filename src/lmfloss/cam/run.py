"""The ``lmfloss cam`` pipeline: maps for trained runs, scored, drawn and tabulated.

For every run directory and every selected image of a split:

1. the CAM is computed at the network's input size ``S x S`` (the run's preprocessing)
   for the predicted class (``target="pred"``), the true class (``"true"``) or both;
2. the annotation (boxes CSV, masks folder or the dataset's boxes) is read in original
   pixels and brought to the map: boxes are rescaled with
   :func:`lmfloss.cam.metrics.rescale_boxes` (``x * S / W``, floor/ceil so a box keeps
   every pixel it touched), masks are resized with nearest neighbour;
3. the map is scored with :func:`lmfloss.cam.metrics.region_metrics`.

Outputs in ``out_dir``: ``cam_metrics.csv`` (one row per image x run x target),
``cam_summary.csv`` (per run and target: one row per true class and an ``all`` row),
``overlays/<run>/<id>_<target>.png`` and ``fig_attention.png``/``.pdf``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmfloss.cam.annotations import Annotation, annotation_source
from lmfloss.cam.metrics import METRIC_KEYS, region_metrics, rescale_boxes
from lmfloss.cam.selection import predictions, run_labels, select_images
from lmfloss.cam.tables import METRIC_COLUMNS, SUMMARY_COLUMNS, summarize, write_csv

logger = logging.getLogger(__name__)

TARGETS = ("pred", "true", "both")


@dataclass
class CamOutputs:
    """What :func:`run_cam` wrote, and the rows of its two CSV files."""

    out_dir: Path
    metrics_csv: Path
    summary_csv: Path
    figure: list[Path]
    overlays: list[Path] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)


def _safe_name(image_id: str) -> str:
    # Ids of folder datasets may hold path separators; overlays stay one file per image.
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in image_id)


def _score(annotation: Annotation, image_shape: tuple[int, int], cam: np.ndarray) -> dict:
    map_shape = cam.shape
    if annotation.mask is not None:
        from PIL import Image

        region = np.asarray(
            Image.fromarray(annotation.mask.astype(np.uint8) * 255).resize(
                (map_shape[1], map_shape[0]), Image.Resampling.NEAREST
            )
        ) > 0
        if region.any():
            return region_metrics(cam, region)
        # A lesion smaller than one map pixel: fall back to its covering boxes.
    boxes = rescale_boxes(annotation.boxes, image_shape, map_shape)
    region = np.zeros(map_shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        region[y0:y1, x0:x1] = True
    return region_metrics(cam, region)


def run_cam(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    split: str = "test",
    ids: Sequence[str] | None = None,
    n: int | None = None,
    misclassified: bool = False,
    method: str = "gradcam",
    target_layer: str | None = None,
    target: str = "pred",
    boxes_csv: str | Path | None = None,
    masks_dir: str | Path | None = None,
    checkpoint: str = "best",
    device: str = "cpu",
    batch_size: int = 16,
    figure_rows: int = 8,
    overlays: bool = True,
) -> CamOutputs:
    """Compute, score and draw CAMs for one or more trained runs.

    Args:
        run_dirs: run directories written by :func:`lmfloss.train.fit`; all must use the
            same dataset and split (same ids).
        out_dir: where the CSVs, overlays and the figure go (created).
        split: ``"train"``, ``"val"`` or ``"test"``.
        ids: image ids to explain (error naming any id not in the split).
        n: how many images (default 8, spread round-robin over the classes, annotated
            images first); with ``ids``/``misclassified`` a cap.
        misclassified: images misclassified by at least one run (from ``predictions.csv``
            for the test split, else a forward pass).
        method: a CAM method (:data:`lmfloss.cam.compute.METHODS`).
        target_layer: dotted layer name, or None for the architecture's default.
        target: ``"pred"`` (map of the predicted class), ``"true"`` or ``"both"``.
        boxes_csv / masks_dir: annotations; neither: the dataset's known boxes, if any.
        checkpoint: ``"best"`` or ``"last"``.
        device: where the models run.
        batch_size: images per CAM call.
        figure_rows: images in ``fig_attention`` (the first ones selected).
        overlays: write one overlay PNG per image, run and target.

    Returns:
        :class:`CamOutputs`.

    Raises:
        ValueError: bad options, runs on different data, unknown ids.
        FileNotFoundError: a missing run directory, checkpoint or annotation file.
    """
    from lmfloss.cam.compute import METHODS, compute_cams
    from lmfloss.cam.figure import FigureCell, FigureRow, attention_figure, save_overlay
    from lmfloss.train import load_run

    if not run_dirs:
        raise ValueError("give at least one run directory (--run)")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {list(TARGETS)}, got {target!r}")
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}; expected one of {sorted(METHODS)}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if n is not None and n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    if ids and misclassified:
        raise ValueError("give either --ids or --misclassified, not both")
    out = Path(out_dir)

    runs = [load_run(d, checkpoint=checkpoint, device=device) for d in run_dirs]
    labels = run_labels([Path(d) for d in run_dirs])
    reference = runs[0]
    splits = reference.splits
    records = splits.records(split)
    class_names = list(reference.class_names)
    for label, run in zip(labels[1:], runs[1:]):
        if list(run.class_names) != class_names or [
            r.id for r in run.splits.records(split)
        ] != [r.id for r in records]:
            raise ValueError(
                f"run {label!r} uses different data than {labels[0]!r} "
                f"(classes {list(run.class_names)} vs {class_names}, or other {split} ids); "
                "compare runs trained on the same dataset and split"
            )
    source = annotation_source(splits, boxes_csv=boxes_csv, masks_dir=masks_dir)
    datasets = [run.dataset(split) for run in runs]
    misclassified_by = (
        [predictions(run, split, ds, batch_size, checkpoint) for run, ds in zip(runs, datasets)]
        if misclassified
        else None
    )
    annotated = None
    if source is not None and hasattr(source, "boxes") and isinstance(source.boxes, dict):
        annotated = set(source.boxes)
    elif source is not None and hasattr(source, "paths"):
        annotated = set(source.paths)
    chosen = select_images(records, split, ids=ids, n=n, misclassified_by=misclassified_by,
                     annotated=annotated)
    if not chosen:
        raise ValueError(f"the {split} split of {splits.name!r} has no images to explain")
    logger.info("cam: %d image(s) x %d run(s), method %s", len(chosen), len(runs), method)

    images: dict[str, np.ndarray] = {}
    annotations: dict[str, Annotation | None] = {}
    for record in chosen:
        image = np.asarray(splits.load_image(record))
        images[record.id] = image
        annotations[record.id] = source.get(record.id, image.shape[:2]) if source else None
    n_annotated = sum(a is not None for a in annotations.values())
    if source is not None and n_annotated == 0:
        logger.warning("none of the %d selected images has an annotation", len(chosen))

    import torch

    targets = ["pred", "true"] if target == "both" else [target]
    rows: list[dict[str, Any]] = []
    overlay_paths: list[Path] = []
    figure_maps: dict[tuple[int, str], tuple[np.ndarray, int]] = {}
    for r_index, (label, run, ds) in enumerate(zip(labels, runs, datasets)):
        position = {rec.id: i for i, rec in enumerate(ds.records)}
        batch = torch.stack([ds[position[rec.id]][0] for rec in chosen])
        for tgt in targets:
            classes = [int(rec.label) for rec in chosen] if tgt == "true" else None
            result = compute_cams(run.model, batch, classes, method=method,
                                  target_layer=target_layer, batch_size=batch_size)
            flat = int(np.sum(np.ptp(result.maps.reshape(len(chosen), -1), axis=1) == 0))
            if flat:
                logger.warning(
                    "run %s: %d of %d maps are constant (layer %s has a 1x1 output at %d px?); "
                    "they score chance -- use larger images or an earlier --target-layer",
                    label, flat, len(chosen), result.layer, batch.shape[-1],
                )
            for k, rec in enumerate(chosen):
                cam = result.maps[k]
                pred = int(result.predicted[k])
                ann = annotations[rec.id]
                scores = (
                    _score(ann, images[rec.id].shape[:2], cam)
                    if ann is not None
                    else dict.fromkeys(METRIC_KEYS, math.nan)
                )
                rows.append({
                    "run": label, "id": rec.id, "label": int(rec.label),
                    "true_class": class_names[int(rec.label)], "pred": pred,
                    "pred_class": class_names[pred], "correct": pred == int(rec.label),
                    "prob_pred": float(result.probabilities[k, pred]), "target": tgt,
                    "target_class": class_names[int(result.target_classes[k])],
                    "method": method, "layer": result.layer,
                    "annotation": ann.source if ann else "", "n_boxes": len(ann.boxes) if ann else 0,
                    **scores,
                })
                if tgt == targets[0]:
                    figure_maps[(r_index, rec.id)] = (cam, pred)
                if overlays:
                    overlay_paths.append(save_overlay(
                        out / "overlays" / label / f"{_safe_name(rec.id)}_{tgt}.png",
                        images[rec.id], cam, ann.boxes if ann else [],
                    ))

    out.mkdir(parents=True, exist_ok=True)
    metrics_csv = write_csv(out / "cam_metrics.csv", rows, METRIC_COLUMNS)
    summary = summarize(rows, class_names)
    summary_csv = write_csv(out / "cam_summary.csv", summary, SUMMARY_COLUMNS)
    fig_rows = []
    for rec in chosen[: max(figure_rows, 0)]:
        ann = annotations[rec.id]
        cells = []
        for r_index in range(len(runs)):
            cam, pred = figure_maps[(r_index, rec.id)]
            cells.append(FigureCell(cam, class_names[pred]))
        fig_rows.append(FigureRow(rec.id, images[rec.id], class_names[int(rec.label)],
                                  list(ann.boxes) if ann else [], cells))
    figure = attention_figure(fig_rows, labels, out / "fig_attention") if fig_rows else []
    return CamOutputs(out, metrics_csv, summary_csv, figure, overlay_paths, rows, summary)
