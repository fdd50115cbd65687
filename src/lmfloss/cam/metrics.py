"""Scores for attention maps against annotated regions (numpy only).

A map is a 2-D array ``cam[H, W]`` (any non-negative scale; Grad-CAM maps are in
``[0, 1]``); the annotation is a list of boxes ``(x0, y0, x1, y1)`` in the map's pixels
with ``x1``/``y1`` exclusive (so a box covers ``cam[y0:y1, x0:x1]``), or a boolean region
mask of the map's shape. Several boxes form one region, their union.

Scores (all floats):

- ``pointing_hit`` -- the pointing game (Zhang et al., "Top-down neural attention by
  excitation backprop", ECCV 2016): 1.0 when the map's maximum lies within ``tolerance``
  pixels (Euclidean distance between pixel centres) of the region, 0.0 when not. Zhang et
  al. allow 15 px at 224 px (:func:`default_tolerance` scales that to other sizes);
  ``tolerance=0`` is the exact game. When several pixels share the maximum (an upsampled
  low-resolution map has a plateau), the score is the share of those pixels that hit, i.e.
  the expected hit of a random tie-break.
- ``energy_in_box`` -- the share of the map's total mass inside the region,
  ``sum(cam * region) / sum(cam)`` (the energy-based pointing game of Wang et al.,
  "Score-CAM", CVPRW 2020). A map with zero mass is treated as uniform.
- ``box_area_fraction`` -- the region's share of the image area: what ``energy_in_box``
  is for a map that ignores the lesion (chance).
- ``iou_at_half_max`` -- IoU of ``cam >= 0.5 * max(cam)`` with the region.
- ``best_iou`` -- the best IoU of ``cam >= t`` with the region over every threshold ``t``
  (every distinct map value; exact, not a grid).

Negative map values (signed saliency) are clipped at 0 before scoring; NaN or inf is an
error.

What a map that ignores the image scores depends on where its maximum falls (a bilinearly
upsampled 2x2 map peaks in a corner, where lesions rarely are), so the area fraction is
not its chance level. The like-for-like baseline scores every map against the region of
*another* image of the same set, a fixed seeded derangement (:func:`derangement`): a map
that carries no information about its image scores the same, in expectation, against its
own region and against the other one, whatever the geometry of the maps and lesions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]

METRIC_KEYS: tuple[str, ...] = (
    "pointing_hit",
    "energy_in_box",
    "box_area_fraction",
    "iou_at_half_max",
    "best_iou",
)


def _check_map(cam: np.ndarray) -> np.ndarray:
    cam = np.asarray(cam)
    if cam.ndim != 2 or cam.shape[0] == 0 or cam.shape[1] == 0:
        raise ValueError(f"cam must be a non-empty 2-D array [H, W], got shape {cam.shape}")
    if cam.dtype == bool:
        cam = cam.astype(np.float64)
    if not np.issubdtype(cam.dtype, np.number) or np.issubdtype(cam.dtype, np.complexfloating):
        raise ValueError(f"cam must hold real numbers, got dtype {cam.dtype}")
    cam = cam.astype(np.float64)
    if not np.all(np.isfinite(cam)):
        raise ValueError("cam holds NaN or inf values; expected finite numbers")
    return np.maximum(cam, 0.0)


def _as_int_box(box: Sequence[float]) -> Box:
    if len(box) != 4:
        raise ValueError(f"a box is (x0, y0, x1, y1), got {tuple(box)!r}")
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box coordinates must be numbers, got {tuple(box)!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f"box coordinates must be finite, got {tuple(box)!r}")
    if x1 <= x0 or y1 <= y0:
        raise ValueError(
            f"box {tuple(box)!r} is empty; expected x0 < x1 and y0 < y1 (x1, y1 exclusive)"
        )
    # Fractional coordinates (e.g. rescaled boxes) grow to the pixels they touch.
    return math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)


def boxes_to_mask(boxes: Iterable[Sequence[float]], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise boxes into a boolean region mask (their union).

    Args:
        boxes: ``(x0, y0, x1, y1)`` in pixels of ``shape``; ``x1``/``y1`` exclusive.
            Fractional coordinates cover every pixel they touch (floor/ceil).
        shape: ``(H, W)`` of the mask.

    Returns:
        ``bool[H, W]``, True inside at least one box. Parts of a box outside the mask
        are dropped (logged as a warning).

    Raises:
        ValueError: no boxes, a malformed box, or a box entirely outside the mask.
    """
    height, width = int(shape[0]), int(shape[1])
    mask = np.zeros((height, width), dtype=bool)
    boxes = list(boxes)
    if not boxes:
        raise ValueError("expected at least one box (x0, y0, x1, y1), got none")
    for box in boxes:
        x0, y0, x1, y1 = _as_int_box(box)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if cx1 <= cx0 or cy1 <= cy0:
            raise ValueError(
                f"box {(x0, y0, x1, y1)} lies outside the {width}x{height} map "
                f"(expected 0 <= x < {width}, 0 <= y < {height})"
            )
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
            logger.warning(
                "box %s extends past the %dx%d map; clipped to %s",
                (x0, y0, x1, y1), width, height, (cx0, cy0, cx1, cy1),
            )
        mask[cy0:cy1, cx0:cx1] = True
    return mask


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 0.0


ZHANG_TOLERANCE_PX = 15.0  # the pointing game's margin at 224 px (Zhang et al., ECCV 2016)
ZHANG_IMAGE_PX = 224


def default_tolerance(image_size: int | tuple[int, int]) -> float:
    """Zhang et al.'s 15 px at 224 px, scaled to the map: ``15 * min(H, W) / 224`` pixels."""
    side = min(image_size) if isinstance(image_size, tuple) else image_size
    return ZHANG_TOLERANCE_PX * side / ZHANG_IMAGE_PX


def check_tolerance(tolerance: float) -> float:
    """``tolerance`` as a float, or ValueError naming it (negative, NaN, inf, not a number)."""
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        raise ValueError(f"the pointing tolerance must be a number of pixels, got {tolerance!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"the pointing tolerance must be >= 0 pixels, got {tolerance!r}")
    return value


def within_distance(region: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within Euclidean distance ``radius`` (pixel centres) of a boolean region.

    A binary dilation by a disk, done row offset by row offset: for a vertical offset
    ``dy`` the disk is ``floor(sqrt(r^2 - dy^2))`` pixels wide on each side, a sliding
    window sum along the rows. ``O((2r + 1) H W)``; ``radius < 1`` returns the region.
    """
    region = np.asarray(region, dtype=bool)
    radius = check_tolerance(radius)
    if radius < 1:
        return region.copy()
    height, width = region.shape
    reach = int(math.floor(radius))
    # Row-wise prefix sums: sum of region[y, a:b] = prefix[y, b] - prefix[y, a].
    prefix = np.concatenate([np.zeros((height, 1), np.int64), np.cumsum(region, axis=1)], axis=1)
    columns = np.arange(width)
    spread: dict[int, np.ndarray] = {}
    out = np.zeros_like(region)
    for dy in range(-reach, reach + 1):
        half = int(math.floor(math.sqrt(max(radius * radius - dy * dy, 0.0)) + 1e-9))
        if half not in spread:
            lo, hi = np.clip(columns - half, 0, width), np.clip(columns + half + 1, 0, width)
            spread[half] = (prefix[:, hi] - prefix[:, lo]) > 0
        rows = spread[half]
        # A pixel at row y is near a region pixel at row y + dy.
        if dy >= 0:
            out[: height - dy] |= rows[dy:]
        else:
            out[-dy:] |= rows[: height + dy]
    return out


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A fixed random permutation of ``range(n)`` without fixed points (Sattolo's algorithm:
    a uniformly random ``n``-cycle), so that item ``i`` is paired with another item ``p[i]``.

    Raises:
        ValueError: ``n < 2`` (one item has no other to be paired with).
    """
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    rng = np.random.default_rng(seed)
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def _checked(cam: np.ndarray, region: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The map (negatives clipped), the region as bool and the tolerance, validated."""
    cam = _check_map(cam)
    tolerance = check_tolerance(tolerance)
    region = np.asarray(region)
    if region.shape != cam.shape:
        raise ValueError(f"region shape {region.shape} differs from cam shape {cam.shape}")
    region = region.astype(bool)
    if not region.any():
        raise ValueError("the annotation region is empty; expected at least one pixel")
    return cam, region, tolerance


def _pointing_energy(cam: np.ndarray, region: np.ndarray, tolerance: float) -> tuple[float, float]:
    """``pointing_hit`` and ``energy_in_box`` of a checked map and region."""
    at_peak = cam == cam.max()
    near = within_distance(region, tolerance) if tolerance >= 1 else region
    pointing = np.count_nonzero(at_peak & near) / np.count_nonzero(at_peak)
    total = cam.sum()
    energy = float(cam[region].sum() / total) if total > 0 else np.count_nonzero(region) / region.size
    return float(pointing), float(energy)


def pointing_metrics(cam: np.ndarray, region: np.ndarray, *, tolerance: float = 0.0) -> dict[str, float]:
    """Only ``pointing_hit`` and ``energy_in_box`` of a map against a region: the same
    numbers as :func:`region_metrics` gives, without its IoU scores (what the shuffled
    baseline needs: every map scored against another image's region).

    Args and Raises: as :func:`region_metrics`.

    Returns:
        ``{"pointing_hit", "energy_in_box"}`` as floats in ``[0, 1]``.
    """
    pointing, energy = _pointing_energy(*_checked(cam, region, tolerance))
    return {"pointing_hit": pointing, "energy_in_box": energy}


def region_metrics(cam: np.ndarray, region: np.ndarray, *, tolerance: float = 0.0) -> dict[str, float]:
    """Score a map against a boolean region of the same shape (see the module docstring).

    Args:
        cam: ``[H, W]`` map, finite; negatives clipped at 0.
        region: ``bool[H, W]`` (or 0/1) annotation region, not empty.
        tolerance: the pointing game counts a maximum within this many pixels of the
            region as a hit (0: the exact game).

    Returns:
        ``{"pointing_hit", "energy_in_box", "box_area_fraction", "iou_at_half_max",
        "best_iou"}`` as floats in ``[0, 1]``.

    Raises:
        ValueError: shapes differ, the region is empty, the map is not finite, or a
            negative tolerance.
    """
    cam, region, tolerance = _checked(cam, region, tolerance)
    pointing, energy = _pointing_energy(cam, region, tolerance)
    area = np.count_nonzero(region)
    area_fraction = area / region.size
    peak = cam.max()

    iou_half = _iou(cam >= 0.5 * peak, region)

    # Best IoU over all level sets {cam >= t}: sort pixels by value (descending) and
    # evaluate at the last pixel of every run of equal values.
    flat = cam.ravel()
    order = np.argsort(-flat, kind="stable")
    values = flat[order]
    inside = np.cumsum(region.ravel()[order])
    count = np.arange(1, flat.size + 1)
    last_of_value = np.append(values[1:] != values[:-1], True)
    inter = inside[last_of_value]
    ious = inter / (count[last_of_value] + area - inter)
    best = float(ious.max())

    return {
        "pointing_hit": pointing,
        "energy_in_box": energy,
        "box_area_fraction": float(area_fraction),
        "iou_at_half_max": float(iou_half),
        "best_iou": best,
    }


def box_metrics(cam: np.ndarray, boxes: Iterable[Sequence[float]], *, tolerance: float = 0.0) -> dict[str, float]:
    """Score an attention map against annotation boxes.

    Boxes are in the map's pixels. When the map was computed at the network's input size
    (e.g. 224x224) and the boxes are in original-image pixels, rescale them first with
    :func:`lmfloss.cam.rescale_boxes` (``x * S / W``, floor for x0/y0, ceil for x1/y1).

    Args:
        cam: ``[H, W]`` map (Grad-CAM output in ``[0, 1]`` or any non-negative scale).
        boxes: ``(x0, y0, x1, y1)`` boxes, ``x1``/``y1`` exclusive; their union is the
            region.
        tolerance: pointing-game margin in pixels (0: exact; see :func:`default_tolerance`).

    Returns:
        ``pointing_hit`` (Zhang et al. 2016), ``energy_in_box`` (Wang et al. 2020),
        ``box_area_fraction`` (chance for ``energy_in_box``), ``iou_at_half_max`` and
        ``best_iou``; definitions in :mod:`lmfloss.cam.metrics`.

    Raises:
        ValueError: malformed map or boxes, or no box inside the map.

    Example:
        >>> cam = np.zeros((8, 8)); cam[2, 3] = 1.0
        >>> box_metrics(cam, [(2, 1, 5, 4)])["pointing_hit"]
        1.0
    """
    cam = _check_map(cam)
    return region_metrics(cam, boxes_to_mask(boxes, cam.shape), tolerance=tolerance)


def _row_runs(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    padded = np.concatenate(([False], row, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges[0::2], edges[1::2]  # starts, exclusive ends


def mask_to_boxes(
    mask: np.ndarray, *, connectivity: int = 8, min_area: int = 1
) -> list[Box]:
    """Bounding boxes of the connected components of a binary mask.

    Components are found on runs of foreground pixels per row, joined across rows with a
    union-find, so a 600x450 HAM10000 lesion mask takes milliseconds.

    Args:
        mask: ``[H, W]`` array; nonzero is foreground (a ``{0, 255}`` PNG works as is).
            A ``[H, W, C]`` mask is reduced with "any channel nonzero".
        connectivity: 8 (diagonal neighbours join, the default) or 4.
        min_area: drop components with fewer foreground pixels (specks).

    Returns:
        ``[(x0, y0, x1, y1), ...]`` with ``x1``/``y1`` exclusive, one per component,
        sorted by ``(y0, x0)``; empty for an empty mask.

    Raises:
        ValueError: not 2-D (or 3-D), or a bad ``connectivity``/``min_area``.
    """
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask.any(axis=2)
    if mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D array [H, W], got shape {mask.shape}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    if min_area < 1:
        raise ValueError(f"min_area must be >= 1, got {min_area!r}")
    mask = mask.astype(bool)
    reach = 1 if connectivity == 8 else 0

    run_y: list[int] = []
    run_x0: list[int] = []
    run_x1: list[int] = []
    parent: list[int] = []

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    previous: list[int] = []  # run indices of the row above
    for y in np.flatnonzero(mask.any(axis=1)):
        starts, ends = _row_runs(mask[y])
        current: list[int] = []
        above = previous if run_y and run_y[-1] == y - 1 else []
        for s, e in zip(starts.tolist(), ends.tolist()):
            idx = len(parent)
            parent.append(idx)
            run_y.append(int(y))
            run_x0.append(s)
            run_x1.append(e)
            for j in above:
                # Runs [s, e) and [x0, x1) touch when they overlap (4-) or are diagonal (8-).
                if run_x0[j] < e + reach and s < run_x1[j] + reach:
                    ri, rj = find(idx), find(j)
                    if ri != rj:
                        parent[max(ri, rj)] = min(ri, rj)
            current.append(idx)
        previous = current

    boxes: dict[int, list[int]] = {}
    for i in range(len(parent)):
        root = find(i)
        y, x0, x1 = run_y[i], run_x0[i], run_x1[i]
        if root not in boxes:
            boxes[root] = [x0, y, x1, y + 1, 0]
        b = boxes[root]
        b[0], b[1], b[2], b[3] = min(b[0], x0), min(b[1], y), max(b[2], x1), max(b[3], y + 1)
        b[4] += x1 - x0
    result = [
        (int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in boxes.values() if b[4] >= min_area
    ]
    return sorted(result, key=lambda b: (b[1], b[0], b[3], b[2]))


def rescale_boxes(
    boxes: Iterable[Sequence[float]],
    from_size: tuple[int, int],
    to_size: tuple[int, int],
) -> list[Box]:
    """Map boxes from one image size to another (e.g. original pixels -> the CAM's grid).

    ``x' = x * W_to / W_from`` and ``y' = y * H_to / H_from``; x0/y0 are floored and
    x1/y1 ceiled so the rescaled box still covers every pixel the original touched
    (networks resize without keeping the aspect ratio, and so does this).

    Args:
        boxes: ``(x0, y0, x1, y1)`` in ``from_size`` pixels, x1/y1 exclusive.
        from_size: ``(H, W)`` the boxes refer to.
        to_size: ``(H, W)`` of the target grid.

    Returns:
        Integer boxes in ``to_size`` pixels, clipped to the grid.
    """
    fh, fw = from_size
    th, tw = to_size
    if min(fh, fw, th, tw) <= 0:
        raise ValueError(f"sizes must be positive (H, W), got {from_size} -> {to_size}")
    sx, sy = tw / fw, th / fh
    out: list[Box] = []
    for box in boxes:
        x0, y0, x1, y1 = (float(v) for v in box)
        # Round away float noise (e.g. 0.9999999) before floor/ceil.
        nx0 = math.floor(round(x0 * sx, 6))
        ny0 = math.floor(round(y0 * sy, 6))
        nx1 = math.ceil(round(x1 * sx, 6))
        ny1 = math.ceil(round(y1 * sy, 6))
        out.append((max(nx0, 0), max(ny0, 0), min(nx1, tw), min(ny1, th)))
    return out
