"""``synthetic``: an embedded, procedurally generated long-tailed "lesion" dataset.

No download, fully deterministic, ~3,100 RGB images of 64x64 px in 7 classes whose
sizes fall geometrically from 1,500 to 30 (imbalance ratio 50, like HAM10000's 58).
Each image is a skin-coloured background (tone, illumination gradient, blotches, hairs,
sensor noise) with one lesion whose class is carried jointly by

* shape: round vs. elongated, smooth vs. irregular border, sharp vs. blurred edge;
* colour: brown, dark brown/blue-black, tan, pink, red, purple (with wide jitter);
* texture: smooth, mottled, dotted, pearly rim, light centre, red lacunae;

and whose nuisance variables (position, size, rotation, contrast, background) vary
independently of the class. Class cues overlap on purpose (e.g. nevus vs. melanoma,
carcinoma vs. actinic keratosis) so that minority classes are hard for plain cross
entropy while a small CNN still clearly beats the majority-class baseline.

The lesion bounding box (threshold 0.5 of the soft lesion mask, exclusive ``x1``/``y1``)
is known exactly and exported through :meth:`lmfloss.data.Splits.boxes`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from lmfloss.data.records import Box, DatasetIndex, Record

logger = logging.getLogger(__name__)

IMAGE_SIZE = 64  # px; small enough that the whole set is generated in about a second
LARGEST_CLASS = 1500  # images of class 0
IMBALANCE_RATIO = 50  # largest / smallest class (HAM10000: 6705 / 115 = 58)
GENERATOR_SEED = 20240611  # fixed: the dataset itself never changes; the split seed is separate


@dataclass(frozen=True)
class LesionClass:
    name: str
    colour: tuple[float, float, float]  # mean RGB in [0, 1]
    radius: tuple[float, float]  # px range of the mean radius
    aspect: tuple[float, float]  # minor/major axis ratio range
    irregularity: float  # amplitude of the border's harmonic wobble
    edge: float  # edge sharpness (larger: crisper border)
    texture: str


CLASSES: tuple[LesionClass, ...] = (
    LesionClass("nevus", (0.45, 0.28, 0.18), (7, 12), (0.8, 1.0), 0.05, 6.0, "smooth"),
    LesionClass("melanoma", (0.30, 0.18, 0.16), (9, 15), (0.6, 1.0), 0.20, 4.0, "mottled"),
    LesionClass("keratosis", (0.58, 0.42, 0.28), (8, 14), (0.6, 0.9), 0.10, 2.5, "dotted"),
    LesionClass("carcinoma", (0.78, 0.52, 0.52), (7, 12), (0.7, 1.0), 0.08, 5.0, "rim"),
    LesionClass("actinic", (0.74, 0.42, 0.38), (8, 13), (0.5, 0.9), 0.16, 2.0, "mottled"),
    LesionClass("vascular", (0.62, 0.20, 0.30), (5, 9), (0.7, 1.0), 0.05, 7.0, "lacunae"),
    LesionClass("fibroma", (0.52, 0.35, 0.26), (6, 10), (0.8, 1.0), 0.06, 3.0, "centre"),
)

CLASS_NAMES = [c.name for c in CLASSES]


def class_sizes(largest: int = LARGEST_CLASS, ratio: float = IMBALANCE_RATIO) -> list[int]:
    """Geometric class sizes ``round(largest * ratio ** (-c / (K - 1)))``, ``c = 0..K-1``."""
    k = len(CLASSES)
    return [int(round(largest * ratio ** (-c / (k - 1)))) for c in range(k)]


def _upsample_matrix(low: int, high: int) -> np.ndarray:
    """``[high, low]`` linear interpolation weights, for smooth noise ``U @ n @ U.T``."""
    positions = (np.arange(high) + 0.5) * low / high - 0.5
    left = np.clip(np.floor(positions).astype(int), 0, low - 1)
    right = np.clip(left + 1, 0, low - 1)
    frac = np.clip(positions - left, 0.0, 1.0)
    matrix = np.zeros((high, low))
    matrix[np.arange(high), left] += 1 - frac
    matrix[np.arange(high), right] += frac
    return matrix


def _smooth_noise(rng: np.random.Generator, n: int, upsample: np.ndarray) -> np.ndarray:
    """``[n, S, S]`` smooth noise: low-resolution Gaussian noise, bilinearly upsampled."""
    low = upsample.shape[1]
    return upsample @ rng.standard_normal((n, low, low)).astype(np.float32) @ upsample.T


def _uniform(rng: np.random.Generator, n: int, low: float, high: float, *shape: int) -> np.ndarray:
    return rng.uniform(low, high, (n, *shape)).astype(np.float32)


def _per_item(values: np.ndarray) -> np.ndarray:  # [n] -> [n, 1, 1] for broadcasting
    return values[:, None, None]


def _background(rng: np.random.Generator, n: int, grid: tuple[np.ndarray, np.ndarray],
                up8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skin tone, illumination gradient and blotches of ``n`` images: ``(image [n,S,S,3], light [n,S,S])``."""
    yy, xx = grid
    size = yy.shape[-1]
    tone = np.array([0.86, 0.68, 0.58], np.float32) + rng.normal(0, 0.03, (n, 3)) + rng.normal(0, 0.06, (n, 1))
    angle = _uniform(rng, n, 0, 2 * np.pi)
    gradient = (_per_item(np.cos(angle)) * (xx - size / 2) + _per_item(np.sin(angle)) * (yy - size / 2)) / size
    light = 1 + _per_item(_uniform(rng, n, 0.0, 0.35)) * gradient + 0.03 * _smooth_noise(rng, n, up8)
    return tone[:, None, None, :].astype(np.float32) * light[..., None], light


def _lesion(rng: np.random.Generator, spec: LesionClass, image: np.ndarray, light: np.ndarray,
            grid: tuple[np.ndarray, np.ndarray], up16: np.ndarray,
            centre: tuple[np.ndarray, np.ndarray] | None = None,
            radius_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Paint one lesion of ``spec`` into each of ``image`` (``[n, S, S, 3]``): ``(image, soft
    mask [n, S, S], (cx, cy))``. ``centre`` (pixels) fixes the positions, else they are drawn
    in the middle of the image; ``radius_scale`` shrinks the lesions (several per image)."""
    yy, xx = grid
    size = yy.shape[-1]
    n = len(image)

    def uniform(low: float, high: float, *shape: int) -> np.ndarray:
        return _uniform(rng, n, low, high, *shape)

    # --- lesion geometry ------------------------------------------------------------------
    if centre is None:
        cx, cy = uniform(0.32, 0.68) * size, uniform(0.32, 0.68) * size
    else:
        cx, cy = (np.asarray(c, np.float32) for c in centre)
    radius = uniform(*spec.radius) * radius_scale
    aspect, theta = uniform(*spec.aspect), uniform(0, np.pi)
    dx, dy = xx - _per_item(cx), yy - _per_item(cy)
    cos, sin = _per_item(np.cos(theta)), _per_item(np.sin(theta))
    u = cos * dx + sin * dy
    v = (-sin * dx + cos * dy) / _per_item(aspect)
    phi = np.arctan2(v, u)
    # How strongly each lesion shows its class's cues: weak cases look like their neighbours.
    expression = uniform(0.15, 1.0)
    wobble = np.ones_like(phi)
    for k in (2, 3, 5):
        amplitude = spec.irregularity * expression * uniform(0.3, 1.0)
        wobble += _per_item(amplitude) * np.sin(k * phi + _per_item(uniform(0, 2 * np.pi)))
    rel = np.hypot(u, v) / (_per_item(radius) * wobble)  # < 1 inside the lesion
    edge = spec.edge * uniform(0.7, 1.3)
    mask = 1 / (1 + np.exp(np.clip((rel - 1) * _per_item(edge) * 4, -30, 30)))
    # --- lesion colour and texture ------------------------------------------------------
    colour = np.clip(
        np.array(spec.colour) + rng.normal(0, 0.035, (n, 3)) + rng.normal(0, 0.07, (n, 1)), 0.05, 0.95
    ).astype(np.float32)
    strength = _per_item(expression)
    shade = np.ones_like(mask)
    tint = np.zeros_like(image)
    if spec.texture == "mottled":
        shade += 0.35 * strength * _smooth_noise(rng, n, up16)
    elif spec.texture == "dotted":
        period = _per_item(uniform(3.0, 4.5))
        phase_x, phase_y = _per_item(uniform(0, 2 * np.pi)), _per_item(uniform(0, 2 * np.pi))
        dots = (np.sin(2 * np.pi * xx / period + phase_x) * np.sin(2 * np.pi * yy / period + phase_y)) > 0.55
        shade -= 0.30 * strength * dots
    elif spec.texture == "rim":
        shade += 0.45 * strength * np.exp(-(((rel - 0.85) / 0.12) ** 2))
    elif spec.texture == "centre":
        shade += 0.55 * strength * np.exp(-((rel / 0.35) ** 2))
    elif spec.texture == "lacunae":
        blobs = rng.integers(1, 7, n)
        for slot in range(6):
            lx = _per_item(cx + rng.normal(0, 1, n) * radius / 2.5)
            ly = _per_item(cy + rng.normal(0, 1, n) * radius / 2.5)
            width = _per_item(uniform(0.8, 1.8))
            present = _per_item((slot < blobs).astype(np.float32))
            blob = present * strength * np.exp(-((xx - lx) ** 2 + (yy - ly) ** 2) / (2 * width**2))
            tint += blob[..., None] * np.array([0.10, -0.12, -0.02], np.float32)
    lesion = colour[:, None, None, :] * shade[..., None] + tint
    alpha = (_per_item(uniform(0.75, 1.0)) * mask)[..., None]
    return image * (1 - alpha) + lesion * light[..., None] * alpha, mask, (cx, cy)


def _nuisance(rng: np.random.Generator, image: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Hairs and sensor noise on ``image`` (``[n, S, S, 3]``, in place), then ``uint8`` pixels."""
    yy, xx = grid
    size = yy.shape[-1]
    n = len(image)
    hairs = np.minimum(rng.poisson(0.7, n), 3)
    for slot in range(3):
        hx, hy, ha = _uniform(rng, n, 0, size), _uniform(rng, n, 0, size), _uniform(rng, n, 0, np.pi)
        hairy = np.flatnonzero(slot < hairs)  # only the images that have this hair
        if hairy.size == 0:
            continue
        sin_a, cos_a = _per_item(np.sin(ha[hairy])), _per_item(np.cos(ha[hairy]))
        distance = np.abs(sin_a * (xx - _per_item(hx[hairy])) - cos_a * (yy - _per_item(hy[hairy])))
        hair = 0.7 * np.exp(-((distance / 0.6) ** 2))[..., None]
        image[hairy] = image[hairy] * (1 - hair) + 0.12 * hair
    image += 0.025 * rng.standard_normal(image.shape, dtype=np.float32)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _box(mask: np.ndarray, cx: float, cy: float) -> Box:
    """The box (exclusive ends) of a soft mask thresholded at 0.5."""
    inside = mask >= 0.5
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:  # cannot happen with the radius ranges used; keep the box defined
        x, y = int(cx), int(cy)
        return (x, y, x + 1, y + 1)
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _render_class(
    rng: np.random.Generator, spec: LesionClass, n: int, grid: tuple[np.ndarray, np.ndarray],
    up8: np.ndarray, up16: np.ndarray,
) -> tuple[np.ndarray, list[Box]]:
    """Render ``n`` lesions of one class at once: ``uint8 [n, S, S, 3]`` and their boxes."""
    image, light = _background(rng, n, grid, up8)
    image, mask, (cx, cy) = _lesion(rng, spec, image, light, grid, up16)
    pixels = _nuisance(rng, image, grid)
    return pixels, [_box(mask[i], cx[i], cy[i]) for i in range(n)]


@functools.lru_cache(maxsize=2)
def generate(
    largest: int = LARGEST_CLASS, ratio: float = IMBALANCE_RATIO, size: int = IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray, tuple[Box, ...]]:
    """Generate the dataset: ``(images uint8 [N, S, S, 3], labels int64 [N], boxes)``.

    Deterministic (fixed generator seed); cached per process, arrays are read-only.
    Items are in a fixed shuffled order, so classes are interleaved as in real metadata.
    """
    sizes = class_sizes(largest, ratio)
    rng = np.random.default_rng(GENERATOR_SEED)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    labels = labels[rng.permutation(len(labels))]
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5)[:, None]
    up8 = _upsample_matrix(8, size).astype(np.float32)
    up16 = _upsample_matrix(16, size).astype(np.float32)
    images = np.empty((len(labels), size, size, 3), dtype=np.uint8)
    boxes: list[Box] = [(0, 0, 0, 0)] * len(labels)
    for c, spec in enumerate(CLASSES):
        rows = np.flatnonzero(labels == c)
        for start in range(0, len(rows), 256):  # bounded memory: 256 x S x S float32 arrays
            chunk = rows[start : start + 256]
            pixels, chunk_boxes = _render_class(rng, spec, len(chunk), (yy, xx), up8, up16)
            images[chunk] = pixels
            for row, box in zip(chunk, chunk_boxes):
                boxes[row] = box
    images.setflags(write=False)
    labels.setflags(write=False)
    logger.debug("generated %d synthetic images of %d px", len(labels), size)
    return images, labels, tuple(boxes)


# --- the multi-label set -----------------------------------------------------------------
# Lesions of several kinds in one image, each kind present independently with a long-tailed
# prevalence (the rarest ~2 %, like a tail label of ChestX-ray14), up to four per image in
# the four quadrants, at ~0.6x the single-label set's size; ~36 % of images have none ("no
# finding"). Every lesion's box and kind are known, so maps can be scored per label.
MULTILABEL_KINDS = ("nevus", "keratosis", "carcinoma", "vascular", "melanoma")
MULTILABEL_PREVALENCE = (0.45, 0.22, 0.10, 0.05, 0.02)
MULTILABEL_IMAGES = 3000
MULTILABEL_SEED = 20261202
_SLOTS = ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75))  # quadrant centres (fractions)
_LESION_SCALE = 0.55  # radii of the single-label specs times this: four fit in one image


@functools.lru_cache(maxsize=1)
def generate_multilabel(
    n: int = MULTILABEL_IMAGES, size: int = IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[tuple[int, Box], ...], ...]]:
    """The multi-label set: ``(images uint8 [N, S, S, 3], targets uint8 [N, L], lesions)``
    with ``lesions[i]`` the ``(label index, box)`` of every lesion of image ``i``.

    Deterministic (fixed generator seed), cached per process, arrays read-only.
    """
    rng = np.random.default_rng(MULTILABEL_SEED)
    specs = {c.name: c for c in CLASSES}
    k = len(MULTILABEL_KINDS)
    targets = (rng.random((n, k)) < np.asarray(MULTILABEL_PREVALENCE)).astype(np.uint8)
    for i in np.flatnonzero(targets.sum(axis=1) > len(_SLOTS)):  # keep the rarest kinds, at most 4
        present = np.flatnonzero(targets[i])
        targets[i, present[: len(present) - len(_SLOTS)]] = 0
    slots = np.argsort(rng.random((n, len(_SLOTS))), axis=1)  # each image's kinds take distinct quadrants
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5)[:, None]
    up8 = _upsample_matrix(8, size).astype(np.float32)
    up16 = _upsample_matrix(16, size).astype(np.float32)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    lesions: list[list[tuple[int, Box]]] = [[] for _ in range(n)]
    for start in range(0, n, 256):  # bounded memory
        rows = np.arange(start, min(start + 256, n))
        image, light = _background(rng, len(rows), (yy, xx), up8)
        for label, name in enumerate(MULTILABEL_KINDS):
            have = np.flatnonzero(targets[rows, label])
            if have.size == 0:
                continue
            order = np.cumsum(targets[rows[have]], axis=1)[:, label] - 1  # which of the image's lesions
            slot = slots[rows[have], order]
            jitter = rng.uniform(-0.06, 0.06, (2, have.size))
            cx = (np.asarray(_SLOTS)[slot, 0] + jitter[0]) * size
            cy = (np.asarray(_SLOTS)[slot, 1] + jitter[1]) * size
            painted, mask, _ = _lesion(rng, specs[name], image[have], light[have], (yy, xx), up16,
                                       centre=(cx, cy), radius_scale=_LESION_SCALE)
            image[have] = painted
            for j, i in enumerate(have):
                lesions[rows[i]].append((label, _box(mask[j], cx[j], cy[j])))
        images[rows] = _nuisance(rng, image, (yy, xx))
    images.setflags(write=False)
    targets.setflags(write=False)
    return images, targets, tuple(tuple(sorted(items)) for items in lesions)


def index_synthetic() -> DatasetIndex:
    """The :class:`DatasetIndex` of the embedded dataset (ids ``syn-00000`` ...)."""
    images, labels, boxes = generate()
    records = [Record(id=f"syn-{i:05d}", label=int(y), row=i) for i, y in enumerate(labels)]
    return DatasetIndex(
        name="synthetic",
        class_names=list(CLASS_NAMES),
        records=records,
        images=images,
        boxes={r.id: [box] for r, box in zip(records, boxes)},
    )


def index_synthetic_multilabel() -> DatasetIndex:
    """The :class:`DatasetIndex` of the embedded multi-label set (ids ``synml-00000`` ...): the
    labels are the lesion kinds present; every lesion's box is known, with its kind."""
    images, targets, lesions = generate_multilabel()
    records = [Record(id=f"synml-{i:05d}", label=None, row=i, labels=tuple(np.flatnonzero(t).tolist()))
               for i, t in enumerate(targets)]
    return DatasetIndex(
        name="synthetic",
        class_names=list(MULTILABEL_KINDS),
        records=records,
        images=images,
        boxes={r.id: [box for _, box in items] for r, items in zip(records, lesions)},
        box_labels={r.id: [label for label, _ in items] for r, items in zip(records, lesions)},
        task="multilabel",
    )
