"""Which images ``lmfloss cam`` explains, what they are scored against, and run names.

The select stage (:func:`select_scored`): the images, their annotations read in original
pixels and brought to the map (boxes rescaled with :func:`lmfloss.cam.metrics.rescale_boxes`,
``x * S / W`` with floor/ceil; masks resized with nearest neighbour), and a fixed seeded
derangement of the annotated images: every map is also scored against its partner's
region, the shuffled-annotation baseline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lmfloss import rundir
from lmfloss.cam.annotations import Annotation, annotation_source, clip_boxes
from lmfloss.cam.metrics import default_tolerance, derangement, rescale_boxes
from lmfloss.task import Task, get_task

logger = logging.getLogger(__name__)

DEFAULT_N = 8


@dataclass
class Selection:
    """The images every run explains, with what they are scored against.

    Attributes:
        records: the selected records, in order.
        images: original pixels per id (for overlays and the figure).
        annotations: per id, or ``None`` for an image without one.
        regions: ``bool [S, S]`` scored region on the map per annotated id.
        partner: annotated id -> the id whose region is its shuffled baseline.
        tolerance: the pointing game's margin in map pixels.
        image_ids: multi-label runs: every item is one label of one image, a record with the
            id ``<image id>#<label>`` and that label as ``label``; this maps the item id to the
            image's id (empty for multi-class runs).
    """

    records: list[Any]
    images: dict[str, np.ndarray]
    annotations: dict[str, Annotation | None]
    regions: dict[str, np.ndarray]
    partner: dict[str, str]
    tolerance: float
    image_ids: dict[str, str] = field(default_factory=dict)


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Short unique names for runs: the directory name, with parents added on clashes."""
    paths = [Path(p).resolve() for p in run_dirs]
    depth = 1
    while True:
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels) or depth >= max(len(p.parts) for p in paths):
            return labels
        depth += 1


def _draw_class(record: Any, rarity: dict[int, int]) -> int:
    """The class a record is drawn as: its class, or for a multi-label record its rarest label
    (no label: -1, drawn last)."""
    if record.label is not None:
        return int(record.label)
    labels = getattr(record, "labels", None)
    return min(labels, key=lambda j: (rarity.get(j, 0), j)) if labels else -1


def round_robin(records: Sequence[Any], n: int) -> list[Any]:
    """Up to ``n`` records, one per class in turn (record order within a class), so that
    minority classes appear even among a few images of an imbalanced split (a multi-label
    record counts as its rarest label)."""
    rarity: dict[int, int] = {}
    for record in records:
        for j in getattr(record, "labels", None) or ():
            rarity[j] = rarity.get(j, 0) + 1
    by_class: dict[int, list[Any]] = {}
    for record in records:
        by_class.setdefault(_draw_class(record, rarity), []).append(record)
    queues = [by_class[c] for c in sorted(by_class, key=lambda c: (c < 0, c))]
    chosen: list[Any] = []
    depth = 0
    while len(chosen) < n and any(depth < len(q) for q in queues):
        chosen.extend(q[depth] for q in queues if depth < len(q) and len(chosen) < n)
        depth += 1
    return chosen


def predictions(run: Any, split: str, dataset: Any, batch_size: int, checkpoint: str = "best") -> dict[str, int]:
    """Predicted class per id of the loaded model.

    ``predictions.csv`` holds the best checkpoint's test predictions, so it is used only for
    ``split == "test"`` and ``checkpoint == "best"``; otherwise a forward pass
    (:func:`lmfloss.train.engine.evaluate`) gives them, decided as the run's task decides.
    """
    if split == "test" and checkpoint == "best" and (Path(run.run_dir) / rundir.PREDICTIONS).is_file():
        saved = rundir.read_predictions(run.run_dir, run.class_names)
        return {str(i): int(p) for i, p in zip(saved.ids, saved.preds)}
    # torch-free: lmfloss.cam.groups imports this module, and scores without torch
    from torch.utils.data import DataLoader

    from lmfloss.train.engine import evaluate

    task = get_task(run.task)
    result = evaluate(run.model, DataLoader(dataset, batch_size=batch_size, shuffle=False), device=run.device)
    decided = task.decide(task.probabilities(result["logits"].float().cpu().numpy()))
    return {dataset.records[int(i)].id: int(p) for i, p in zip(result["indices"].tolist(), decided.tolist())}


def select_images(
    records: Sequence[Any],
    split: str,
    *,
    ids: Sequence[str] | None,
    n: int | None,
    misclassified_by: list[dict[str, int]] | None,
    annotated: set[str] | None,
) -> list[Any]:
    """The records to explain: ``ids`` (in the given order; unknown ids are an error),
    else the images misclassified by any run, else ``n`` (default 8) round-robin over
    classes, preferring annotated images. ``n`` caps ``ids``/misclassified selections."""
    by_id = {r.id: r for r in records}
    if ids:
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            example = ", ".join(repr(r.id) for r in records[:3])
            raise ValueError(
                f"image id(s) {unknown} are not in the {split} split; expected ids such as "
                f"{example}"
            )
        chosen = [by_id[i] for i in dict.fromkeys(ids)]
        return chosen[:n] if n else chosen
    pool = list(records)
    if misclassified_by is not None:
        pool = [r for r in pool if any(p.get(r.id, r.label) != r.label for p in misclassified_by)]
        if not pool:
            raise ValueError(f"no image of the {split} split is misclassified by these runs")
        return pool[:n] if n else pool
    if annotated is not None:
        with_ann = [r for r in pool if r.id in annotated]
        if with_ann:
            pool = with_ann
    if pool and pool[0].label is None:  # multi-label: images with a finding to explain
        pool = [r for r in pool if r.labels] or pool
    return round_robin(pool, n or DEFAULT_N)


def explains_labels(task: Task) -> bool:
    """Whether ``lmfloss cam`` explains each label of an image, one item per (image, label),
    rather than the image: for a task whose images have any subset of labels (a multi-hot
    target, :attr:`lmfloss.task.Task.target`)."""
    return task.target == "multi-hot"


def label_items(records: Sequence[Any], class_names: Sequence[str]) -> tuple[list[Any], dict[str, str]]:
    """Multi-label records as (image, label) items: one record per label an image has, with the
    id ``<image id>#<label>`` and that label as ``label``; and item id -> image id."""
    items, image_ids = [], {}
    for record in records:
        for j in record.labels or ():
            item = replace(record, id=f"{record.id}#{class_names[j]}", label=j, labels=None)
            items.append(item)
            image_ids[item.id] = record.id
    return items, image_ids


def region_on_map(annotation: Annotation, image_shape: tuple[int, int], map_shape: tuple[int, int]) -> np.ndarray:
    """The annotation on the map's grid: the mask (nearest neighbour) or the boxes' union."""
    if annotation.mask is not None:
        region = np.asarray(
            Image.fromarray(annotation.mask.astype(np.uint8) * 255).resize(
                (map_shape[1], map_shape[0]), Image.Resampling.NEAREST
            )
        ) > 0
        if region.any():
            return region
        # A lesion smaller than one map pixel: fall back to its covering boxes.
    region = np.zeros(map_shape, dtype=bool)
    for x0, y0, x1, y1 in rescale_boxes(annotation.boxes, image_shape, map_shape):
        region[y0:y1, x0:x1] = True
    return region


def _partners(scored: list[str], seed: int) -> dict[str, str]:
    if len(scored) < 2:
        if scored:
            logger.warning("one annotated image: no other image to form the shuffled baseline with")
        return {}
    return {i: scored[j] for i, j in zip(scored, derangement(len(scored), seed))}


def select_scored(loaded: Sequence[Any], map_size: int, options: Any) -> Selection:
    """The select stage of ``lmfloss cam`` for loaded runs of one dataset and split.

    Args:
        loaded: :class:`lmfloss.train.Run` objects (the first one's data is read).
        map_size: the maps' side (the runs' image size).
        options: a :class:`lmfloss.cam.run.CamOptions`.
    """
    splits = loaded[0].splits
    source = annotation_source(splits, boxes_csv=options.boxes_csv, masks_dir=options.masks_dir)
    misclassified_by = None
    if options.misclassified:
        misclassified_by = [predictions(run, options.split, run.dataset(options.split), options.batch_size,
                                        options.checkpoint) for run in loaded]
    annotated = None
    if source is not None and isinstance(getattr(source, "boxes", None), dict):
        annotated = set(source.boxes)
    elif source is not None and hasattr(source, "paths"):
        annotated = set(source.paths)
    chosen = select_images(splits.records(options.split), options.split, ids=options.ids, n=options.n,
                           misclassified_by=misclassified_by, annotated=annotated)
    if not chosen:
        raise ValueError(f"the {options.split} split of {splits.name!r} has no images to explain")
    image_ids: dict[str, str] = {}
    originals = {record.id: record for record in chosen}
    if explains_labels(get_task(splits)):
        chosen, image_ids = label_items(chosen, splits.class_names)
        if not chosen:
            raise ValueError(f"none of the selected {options.split} images of {splits.name!r} has a label to explain")
    images, annotations, regions = {}, {}, {}
    loaded_images: dict[str, np.ndarray] = {}
    for record in chosen:
        image_id = image_ids.get(record.id, record.id)
        if image_id not in loaded_images:
            loaded_images[image_id] = np.asarray(splits.load_image(record))
        images[record.id] = loaded_images[image_id]
        shape = images[record.id].shape[:2]
        annotations[record.id] = _annotation(source, splits, record, originals[image_id], shape, bool(image_ids))
        if annotations[record.id] is not None:
            regions[record.id] = region_on_map(annotations[record.id], shape, (map_size, map_size))
    if source is not None and not regions:
        logger.warning("none of the %d selected images has an annotation", len(chosen))
    tolerance = default_tolerance(map_size) if options.tolerance is None else float(options.tolerance)
    return Selection(list(chosen), images, annotations, regions, _partners(list(regions), options.seed),
                     tolerance, image_ids)


def _annotation(source: Any, splits: Any, record: Any, image: Any, shape: tuple[int, int],
                per_label: bool) -> Annotation | None:
    """The region a map is scored against: the image's annotation, or for a multi-label item
    the boxes of its label where the dataset knows each box's label (otherwise every box of
    the image: a boxes CSV or a mask has no label)."""
    if source is None:
        return None
    if per_label and getattr(source, "source", None) == "dataset" and splits.index.box_labels is not None:
        boxes = splits.boxes(image, label=int(record.label))
        boxes = clip_boxes(boxes, shape[1], shape[0], image_id=image.id) if boxes else []
        return Annotation(boxes, None, "dataset") if boxes else None
    return source.get(image.id, shape)
