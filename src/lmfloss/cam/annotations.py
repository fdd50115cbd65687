"""Where the regions a CAM is scored against come from.

Three sources, all in original-image pixels with exclusive ``x1``/``y1``:

- a CSV of boxes ``id,x0,y0,x1,y1`` (a doctor's boxes, as in the paper's Fig. 3; several
  rows per image allowed) -- :class:`BoxesCsv`;
- a folder of binary lesion masks ``<id>_segmentation.png`` (the HAM10000 / ISIC 2018
  Task 1 layout): the mask itself is the scored region and its components' bounding boxes
  are drawn -- :class:`MaskFolder`;
- the dataset's own known boxes (``Splits.boxes``; exact for ``synthetic``) --
  :class:`DatasetBoxes`.

Boxes reaching past the image are clipped with a logged warning; a box entirely outside
is dropped with a warning. An id in the CSV or the mask folder that matches no image of
the dataset is an error naming it.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from lmfloss.cam.metrics import Box, mask_to_boxes

logger = logging.getLogger(__name__)

MASK_SUFFIX = "_segmentation.png"
BOX_COLUMNS = ("id", "x0", "y0", "x1", "y1")


@dataclass(frozen=True)
class Annotation:
    """The annotated region of one image, in original pixels.

    Attributes:
        boxes: ``[(x0, y0, x1, y1)]`` clipped to the image; drawn in figures, and the
            scored region when ``mask`` is None.
        mask: ``bool [H, W]`` lesion mask (the scored region), or None.
        source: ``"boxes"``, ``"masks"`` or ``"dataset"``.
    """

    boxes: list[Box]
    mask: np.ndarray | None
    source: str


class AnnotationSource(Protocol):
    source: str

    def get(self, image_id: str, image_shape: tuple[int, int]) -> Annotation | None: ...


def clip_boxes(
    boxes: Iterable[Sequence[float]], width: int, height: int, *, image_id: str = "?"
) -> list[Box]:
    """Clip boxes to a ``width x height`` image, warning for every box that changed.

    Fractional coordinates cover every pixel they touch (floor x0/y0, ceil x1/y1).

    Returns:
        Integer boxes inside the image; boxes with nothing inside are dropped (warning).
    """
    out: list[Box] = []
    for box in boxes:
        x0, y0 = math.floor(float(box[0])), math.floor(float(box[1]))
        x1, y1 = math.ceil(float(box[2])), math.ceil(float(box[3]))
        clipped = (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            logger.warning(
                "image %s: box %s lies outside the %dx%d image; dropped",
                image_id, (x0, y0, x1, y1), width, height,
            )
            continue
        if clipped != (x0, y0, x1, y1):
            logger.warning(
                "image %s: box %s extends past the %dx%d image; clipped to %s",
                image_id, (x0, y0, x1, y1), width, height, clipped,
            )
        out.append(clipped)
    return out


def read_boxes_csv(path: str | Path) -> dict[str, list[Box]]:
    """Read ``id,x0,y0,x1,y1`` rows (original pixels, x1/y1 exclusive) grouped by id.

    Raises:
        FileNotFoundError: no such file.
        ValueError: missing columns, a non-numeric or empty box (naming file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"boxes CSV {str(path)!r} does not exist")
    boxes: dict[str, list[Box]] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip() for f in reader.fieldnames or []]
        missing = [c for c in BOX_COLUMNS if c not in fields]
        if missing:
            raise ValueError(
                f"boxes CSV {str(path)!r} lacks column(s) {missing}; expected header "
                f"{','.join(BOX_COLUMNS)}, got {fields}"
            )
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            image_id = row["id"]
            if not image_id:
                raise ValueError(f"{path}:{line}: empty id")
            try:
                x0, y0, x1, y1 = (float(row[c]) for c in BOX_COLUMNS[1:])
            except ValueError:
                raise ValueError(
                    f"{path}:{line}: box coordinates must be numbers, got "
                    f"{[row[c] for c in BOX_COLUMNS[1:]]}"
                ) from None
            if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
                raise ValueError(
                    f"{path}:{line}: box {(x0, y0, x1, y1)} of {image_id!r} is empty or not "
                    "finite; expected x0 < x1 and y0 < y1 (x1, y1 exclusive)"
                )
            boxes.setdefault(image_id, []).append(
                (math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1))
            )
    if not boxes:
        raise ValueError(f"boxes CSV {str(path)!r} has no rows")
    return boxes


def read_mask(path: str | Path) -> np.ndarray:
    """A lesion mask as ``bool [H, W]`` (nonzero = lesion; colour masks: any channel)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask {str(path)!r} does not exist")
    with Image.open(path) as image:
        array = np.asarray(image)
    if array.ndim == 3:
        array = array[..., :3].any(axis=2)
    return array.astype(bool)


def _check_known(ids: Iterable[str], known: set[str], what: str) -> None:
    unknown = sorted(set(ids) - known)
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        example = ", ".join(repr(i) for i in sorted(known)[:3])
        raise ValueError(
            f"{what}: {len(unknown)} id(s) match no image of the dataset: {shown}; "
            f"expected ids such as {example}"
        )


class BoxesCsv:
    """Boxes from a CSV (see :func:`read_boxes_csv`), checked against the dataset's ids."""

    source = "boxes"

    def __init__(self, path: str | Path, known_ids: Iterable[str]) -> None:
        self.path = Path(path)
        self.boxes = read_boxes_csv(self.path)
        _check_known(self.boxes, set(known_ids), f"boxes CSV {str(self.path)!r}")

    def get(self, image_id: str, image_shape: tuple[int, int]) -> Annotation | None:
        if image_id not in self.boxes:
            return None
        height, width = image_shape
        boxes = clip_boxes(self.boxes[image_id], width, height, image_id=image_id)
        return Annotation(boxes, None, self.source) if boxes else None


class MaskFolder:
    """Lesion masks ``<id>_segmentation.png``; the mask is the region, boxes derived."""

    source = "masks"

    def __init__(self, folder: str | Path, known_ids: Iterable[str]) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise NotADirectoryError(f"masks folder {str(self.folder)!r} does not exist")
        self.paths = {
            p.name[: -len(MASK_SUFFIX)]: p for p in self.folder.glob(f"*{MASK_SUFFIX}")
        }
        if not self.paths:
            raise ValueError(
                f"masks folder {str(self.folder)!r} holds no '<id>{MASK_SUFFIX}' files"
            )
        _check_known(self.paths, set(known_ids), f"masks folder {str(self.folder)!r}")

    def get(self, image_id: str, image_shape: tuple[int, int]) -> Annotation | None:
        path = self.paths.get(image_id)
        if path is None:
            return None
        mask = read_mask(path)
        if mask.shape != tuple(image_shape):
            raise ValueError(
                f"mask {str(path)!r} is {mask.shape[1]}x{mask.shape[0]} but image "
                f"{image_id!r} is {image_shape[1]}x{image_shape[0]}; expected the same size"
            )
        if not mask.any():
            logger.warning("mask %s is empty; image %s is not scored", path, image_id)
            return None
        return Annotation(mask_to_boxes(mask), mask, self.source)


class DatasetBoxes:
    """The dataset's known lesion boxes (``Splits.boxes``)."""

    source = "dataset"

    def __init__(self, splits: Any, records: dict[str, Any]) -> None:
        self.splits = splits
        self.records = records

    def get(self, image_id: str, image_shape: tuple[int, int]) -> Annotation | None:
        boxes = self.splits.boxes(self.records[image_id])
        if not boxes:
            return None
        height, width = image_shape
        boxes = clip_boxes(boxes, width, height, image_id=image_id)
        return Annotation(boxes, None, self.source) if boxes else None


def annotation_source(
    splits: Any,
    boxes_csv: str | Path | None = None,
    masks_dir: str | Path | None = None,
) -> AnnotationSource | None:
    """Pick the annotation source: ``boxes_csv``, else ``masks_dir``, else the dataset's.

    Args:
        splits: the run's :class:`lmfloss.data.Splits` (ids are checked against all splits).
        boxes_csv: CSV of boxes, or None.
        masks_dir: folder of ``<id>_segmentation.png`` masks, or None.

    Returns:
        A source, or None when nothing is annotated (maps are drawn but not scored).

    Raises:
        ValueError: both options given, an unknown id, or a malformed file.
    """
    if boxes_csv is not None and masks_dir is not None:
        raise ValueError("give either a boxes CSV or a masks folder, not both")
    records = {r.id: r for split in ("train", "val", "test") for r in splits.records(split)}
    if boxes_csv is not None:
        return BoxesCsv(boxes_csv, records)
    if masks_dir is not None:
        return MaskFolder(masks_dir, records)
    if getattr(splits, "index", None) is not None and (
        getattr(splits.index, "boxes", None) is not None
        or getattr(splits.index, "box_loader", None) is not None
    ):
        return DatasetBoxes(splits, records)
    logger.warning(
        "dataset %r has no known lesion boxes and neither --boxes nor --masks was given; "
        "maps are drawn but not scored", getattr(splits, "name", "?"),
    )
    return None
