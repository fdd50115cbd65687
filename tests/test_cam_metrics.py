"""box_metrics / region_metrics / mask_to_boxes on crafted maps with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lmfloss.cam import box_metrics, boxes_to_mask, mask_to_boxes, region_metrics, rescale_boxes

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HAM_MASKS = SHARED / "samples" / "ham10000" / "masks"


def test_peak_inside_box_hits_and_outside_misses():
    cam = np.zeros((20, 30))
    cam[5, 7] = 1.0
    assert box_metrics(cam, [(6, 4, 9, 7)])["pointing_hit"] == 1.0
    # x1 / y1 are exclusive: a box ending at x=7 does not contain column 7.
    assert box_metrics(cam, [(2, 4, 7, 7)])["pointing_hit"] == 0.0
    assert box_metrics(cam, [(6, 6, 9, 9)])["pointing_hit"] == 0.0
    # Several boxes form one region.
    assert box_metrics(cam, [(0, 0, 2, 2), (7, 5, 8, 6)])["pointing_hit"] == 1.0


def test_uniform_map_scores_chance():
    cam = np.full((10, 20), 0.3)
    m = box_metrics(cam, [(0, 0, 5, 4)])
    assert m["box_area_fraction"] == pytest.approx(20 / 200)
    assert m["energy_in_box"] == pytest.approx(20 / 200)
    # Every pixel ties for the maximum: the expected hit of a random tie-break is chance.
    assert m["pointing_hit"] == pytest.approx(20 / 200)
    # The all-zero map has no mass; it is treated like a uniform one.
    z = box_metrics(np.zeros((10, 20)), [(0, 0, 5, 4)])
    assert z["energy_in_box"] == pytest.approx(0.1)
    assert z["pointing_hit"] == pytest.approx(0.1)


def test_energy_matches_float64_formula_on_random_map():
    rng = np.random.default_rng(0)
    cam = rng.random((32, 24)).astype(np.float32)
    boxes = [(3, 4, 10, 12), (8, 10, 20, 30)]
    region = np.zeros(cam.shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        region[y0:y1, x0:x1] = True
    c = cam.astype(np.float64)
    m = box_metrics(cam, boxes)
    assert m["energy_in_box"] == pytest.approx(c[region].sum() / c.sum(), rel=1e-12)
    assert m["box_area_fraction"] == pytest.approx(region.mean(), rel=1e-12)
    half = c >= 0.5 * c.max()
    assert m["iou_at_half_max"] == pytest.approx((half & region).sum() / (half | region).sum())
    # Brute-force best IoU over every threshold.
    brute = max(
        ((c >= t) & region).sum() / ((c >= t) | region).sum() for t in np.unique(c)
    )
    assert m["best_iou"] == pytest.approx(brute, rel=1e-12)
    iy, ix = np.unravel_index(np.argmax(c), c.shape)
    assert m["pointing_hit"] == float(region[iy, ix])


def test_nested_thresholds():
    # Three nested squares: values 1 (outer), 2 (middle), 3 (inner).
    cam = np.zeros((40, 40))
    cam[5:35, 5:35] = 1.0
    cam[10:30, 10:30] = 2.0
    cam[15:25, 15:25] = 3.0
    middle = box_metrics(cam, [(10, 10, 30, 30)])
    assert middle["best_iou"] == pytest.approx(1.0)
    # 0.5*max = 1.5 -> the middle square exactly.
    assert middle["iou_at_half_max"] == pytest.approx(1.0)
    outer = box_metrics(cam, [(5, 5, 35, 35)])
    assert outer["best_iou"] == pytest.approx(1.0)
    assert outer["iou_at_half_max"] == pytest.approx(400 / 900)
    assert outer["energy_in_box"] == pytest.approx(1.0)
    inner = box_metrics(cam, [(15, 15, 25, 25)])
    assert inner["best_iou"] == pytest.approx(1.0)
    assert inner["iou_at_half_max"] == pytest.approx(100 / 400)
    assert inner["pointing_hit"] == 1.0
    e = (100 * 3) / (100 * 3 + 300 * 2 + 500 * 1)
    assert inner["energy_in_box"] == pytest.approx(e)


def test_plateau_tie_counts_share_inside():
    cam = np.zeros((4, 4))
    cam[0, 0:4] = 1.0  # four tied maxima, one inside the box
    assert box_metrics(cam, [(0, 0, 1, 1)])["pointing_hit"] == pytest.approx(0.25)


def test_negative_values_are_clipped_and_nan_rejected():
    cam = np.full((5, 5), -1.0)
    cam[2, 2] = 2.0
    m = box_metrics(cam, [(2, 2, 3, 3)])
    assert m["energy_in_box"] == pytest.approx(1.0)
    bad = np.zeros((5, 5))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        box_metrics(bad, [(0, 0, 2, 2)])
    with pytest.raises(ValueError, match="real numbers"):
        box_metrics(np.full((3, 3), "a"), [(0, 0, 2, 2)])
    # A boolean map counts as 0/1.
    assert box_metrics(np.eye(4, dtype=bool), [(0, 0, 2, 2)])["energy_in_box"] == 0.5


def test_bad_boxes_raise_with_the_value():
    cam = np.ones((10, 10))
    with pytest.raises(ValueError, match=r"\(5, 5, 5, 8\).*empty"):
        box_metrics(cam, [(5, 5, 5, 8)])
    with pytest.raises(ValueError, match="outside the 10x10 map"):
        box_metrics(cam, [(12, 0, 15, 3)])
    with pytest.raises(ValueError, match="at least one box"):
        box_metrics(cam, [])
    with pytest.raises(ValueError, match="2-D"):
        box_metrics(np.ones(10), [(0, 0, 1, 1)])
    with pytest.raises(ValueError, match="x0, y0, x1, y1"):
        box_metrics(cam, [(0, 0, 1)])


def test_box_past_the_edge_is_clipped_with_warning(caplog):
    cam = np.ones((10, 10))
    with caplog.at_level("WARNING", logger="lmfloss.cam.metrics"):
        m = box_metrics(cam, [(5, 5, 15, 15)])
    assert m["box_area_fraction"] == pytest.approx(25 / 100)
    assert "clipped" in caplog.text


def test_region_metrics_checks_shape_and_emptiness():
    with pytest.raises(ValueError, match="differs"):
        region_metrics(np.ones((4, 4)), np.ones((4, 5), dtype=bool))
    with pytest.raises(ValueError, match="empty"):
        region_metrics(np.ones((4, 4)), np.zeros((4, 4), dtype=bool))


def test_rescale_boxes_covers_pixels():
    # 600x450 original (W x H) -> 64x64 map.
    boxes = rescale_boxes([(300, 225, 600, 450)], from_size=(450, 600), to_size=(64, 64))
    assert boxes == [(32, 32, 64, 64)]
    boxes = rescale_boxes([(1, 1, 2, 2)], from_size=(100, 100), to_size=(10, 10))
    assert boxes == [(0, 0, 1, 1)]


def _scipy_boxes(mask: np.ndarray, connectivity: int) -> list[tuple[int, int, int, int]]:
    ndimage = pytest.importorskip("scipy.ndimage")
    structure = np.ones((3, 3)) if connectivity == 8 else None
    labels, _ = ndimage.label(mask, structure=structure)
    out = [
        (s[1].start, s[0].start, s[1].stop, s[0].stop) for s in ndimage.find_objects(labels)
    ]
    return sorted(out, key=lambda b: (b[1], b[0], b[3], b[2]))


@pytest.mark.parametrize("connectivity", [4, 8])
def test_mask_to_boxes_matches_scipy_on_random_masks(connectivity):
    rng = np.random.default_rng(connectivity)
    for _ in range(5):
        mask = rng.random((40, 50)) > 0.8
        assert mask_to_boxes(mask, connectivity=connectivity) == _scipy_boxes(
            mask, connectivity
        )


def test_mask_to_boxes_crafted():
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[1:3, 1:4] = 255
    mask[6:9, 5:7] = 255
    mask[3, 4] = 255  # diagonal neighbour of the first blob
    assert mask_to_boxes(mask) == [(1, 1, 5, 4), (5, 6, 7, 9)]
    assert mask_to_boxes(mask, connectivity=4) == [(1, 1, 4, 3), (4, 3, 5, 4), (5, 6, 7, 9)]
    assert mask_to_boxes(mask, connectivity=4, min_area=2) == [(1, 1, 4, 3), (5, 6, 7, 9)]
    assert mask_to_boxes(np.zeros((5, 5))) == []
    with pytest.raises(ValueError, match="connectivity"):
        mask_to_boxes(mask, connectivity=6)


@pytest.mark.realdata("data/samples/ham10000/masks")
def test_mask_to_boxes_on_real_ham10000_masks():
    from PIL import Image

    paths = sorted(HAM_MASKS.glob("*_segmentation.png"))
    assert len(paths) >= 5
    for path in paths:
        mask = np.asarray(Image.open(path)) > 0
        boxes = mask_to_boxes(mask)
        assert boxes == _scipy_boxes(mask, 8)
        # The union of the component boxes spans exactly the mask's extent.
        ys, xs = np.nonzero(mask)
        assert min(b[0] for b in boxes) == xs.min() and max(b[2] for b in boxes) == xs.max() + 1
        assert min(b[1] for b in boxes) == ys.min() and max(b[3] for b in boxes) == ys.max() + 1
        # Scoring the mask's own boxes: every lesion pixel lies in them.
        region = boxes_to_mask(boxes, mask.shape)
        assert not np.any(mask & ~region)
        m = box_metrics(mask.astype(float), boxes)
        assert m["energy_in_box"] == pytest.approx(1.0)


def test_scoring_api_needs_neither_torch_nor_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from lmfloss.cam import box_metrics, mask_to_boxes, derangement; "
        "import lmfloss.cam.compare, lmfloss.cam.groups; "
        "box_metrics(np.ones((4, 4)), [(0, 0, 2, 2)], tolerance=1.5); mask_to_boxes(np.eye(3)); "
        "derangement(3); "
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_names_resolve():
    import lmfloss.cam as cam

    for name in cam.__all__:
        assert getattr(cam, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cam.nope  # noqa: B018
