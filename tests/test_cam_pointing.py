"""The pointing game with a tolerance, and the shuffled-annotation baseline.

A map that carries no information about its image must score like its baseline (the same
map against another image's region) whatever the maps' geometry: constant maps, bilinearly
upsampled coarse noise (whose maximum sits in a corner plateau), maps of another image.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmfloss.cam.metrics import (
    box_metrics,
    boxes_to_mask,
    default_tolerance,
    derangement,
    region_metrics,
    within_distance,
)

SIZE = 64
N_IMAGES = 400


def _brute_within(region: np.ndarray, radius: float) -> np.ndarray:
    ys, xs = np.nonzero(region)
    yy, xx = np.mgrid[0 : region.shape[0], 0 : region.shape[1]]
    d2 = (yy[..., None] - ys) ** 2 + (xx[..., None] - xs) ** 2
    return (d2 <= radius * radius + 1e-9).any(axis=-1)


@pytest.mark.parametrize("radius", [0, 0.5, 1, 1.5, 2.2, 3, 4.2857, 7])
def test_within_distance_is_a_disk_dilation(radius):
    rng = np.random.default_rng(int(radius * 10))
    region = rng.random((23, 31)) > 0.97
    region[0, 5] = region[22, 30] = True  # edges
    np.testing.assert_array_equal(within_distance(region, radius), _brute_within(region, radius))


def test_peak_within_tolerance_of_the_box_hits():
    box = [(20, 20, 30, 30)]  # covers columns/rows 20..29
    cam = np.zeros((SIZE, SIZE))
    cam[25, 33] = 1.0  # 4 px right of the box's last column (29)
    assert box_metrics(cam, box)["pointing_hit"] == 0.0
    assert box_metrics(cam, box, tolerance=4)["pointing_hit"] == 1.0
    assert box_metrics(cam, box, tolerance=3.9)["pointing_hit"] == 0.0
    cam = np.zeros((SIZE, SIZE))
    cam[33, 32] = 1.0  # (dx, dy) = (3, 4) from the corner pixel (29, 29): distance 5
    assert box_metrics(cam, box, tolerance=5)["pointing_hit"] == 1.0
    assert box_metrics(cam, box, tolerance=4.9)["pointing_hit"] == 0.0
    # Only the pointing game has a tolerance.
    tol = box_metrics(cam, box, tolerance=5)
    exact = box_metrics(cam, box)
    assert {k: v for k, v in tol.items() if k != "pointing_hit"} == {
        k: v for k, v in exact.items() if k != "pointing_hit"}
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        box_metrics(cam, box, tolerance=-1)
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        box_metrics(cam, box, tolerance=math.inf)


def test_default_tolerance_is_zhang_scaled():
    assert default_tolerance(224) == 15.0
    assert default_tolerance(64) == pytest.approx(15 * 64 / 224)
    assert default_tolerance((28, 40)) == pytest.approx(15 * 28 / 224)


def _old_pointing(cam: np.ndarray, region: np.ndarray) -> float:
    # The exact game as lmfloss scored it before tolerances (share of tied maxima inside).
    cam = np.maximum(cam.astype(np.float64), 0.0)
    at_peak = cam == cam.max()
    return np.count_nonzero(at_peak & region) / np.count_nonzero(at_peak)


def test_tolerance_zero_reproduces_the_exact_game():
    rng = np.random.default_rng(0)
    for trial in range(30):
        grid = 2 + trial % 4
        block = -(-SIZE // grid)  # nearest-neighbour upsampling: plateaus of tied maxima
        coarse = np.kron(rng.random((grid, grid)), np.ones((block, block)))[:SIZE, :SIZE]
        cam = coarse if trial % 2 else rng.random((SIZE, SIZE))
        region = boxes_to_mask([_random_box(rng)], (SIZE, SIZE))
        assert region_metrics(cam, region, tolerance=0)["pointing_hit"] == _old_pointing(cam, region)
        assert region_metrics(cam, region)["pointing_hit"] == _old_pointing(cam, region)


def test_derangement_has_no_fixed_point_and_is_seeded():
    for n in (2, 3, 10, 257):
        perm = derangement(n, seed=n)
        assert sorted(perm.tolist()) == list(range(n))
        assert not np.any(perm == np.arange(n))
    np.testing.assert_array_equal(derangement(50, seed=4), derangement(50, seed=4))
    assert not np.array_equal(derangement(50, seed=4), derangement(50, seed=5))
    with pytest.raises(ValueError, match="at least 2"):
        derangement(1)


# ---- the shuffled baseline ----------------------------------------------------------------
def _random_box(rng: np.random.Generator) -> tuple[int, int, int, int]:
    # Lesions as in the synthetic set: near the centre, 10-24 px across.
    cx, cy = rng.integers(18, 46, size=2)
    hw, hh = rng.integers(5, 12, size=2)
    return int(cx - hw), int(cy - hh), int(cx + hw), int(cy + hh)


@pytest.fixture(scope="module")
def regions() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [boxes_to_mask([_random_box(rng)], (SIZE, SIZE)) for _ in range(N_IMAGES)]


def _upsampled_noise(rng: np.random.Generator, grid: int) -> np.ndarray:
    """Bilinear (half-pixel centres, as cv2/torch upsample a CAM) upsampling of noise."""
    coarse = rng.random((grid, grid))
    centres = (np.arange(SIZE) + 0.5) * grid / SIZE - 0.5
    pos = np.clip(centres, 0, grid - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, grid - 1)
    w = pos - lo
    rows = coarse[lo] * (1 - w)[:, None] + coarse[hi] * w[:, None]
    return rows[:, lo] * (1 - w)[None, :] + rows[:, hi] * w[None, :]


def _gaussian_at(region: np.ndarray, width: float = 4.0) -> np.ndarray:
    ys, xs = np.nonzero(region)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return np.exp(-((yy - ys.mean()) ** 2 + (xx - xs.mean()) ** 2) / (2 * width**2))


def _own_and_shuffled(maps, regions, key: str, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    partner = derangement(len(regions), seed=0)
    own = np.array([region_metrics(m, r, tolerance=tolerance)[key] for m, r in zip(maps, regions)])
    other = np.array([region_metrics(m, regions[j], tolerance=tolerance)[key] for m, j in zip(maps, partner)])
    return own, other


def _assert_within_3_sigma(own: np.ndarray, other: np.ndarray) -> None:
    diff = own - other
    sigma = diff.std(ddof=1) / math.sqrt(diff.size)
    assert abs(diff.mean()) <= 3 * sigma + 1e-12, (own.mean(), other.mean(), sigma)


def _maps(kind: str, regions: list[np.ndarray]) -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    if kind == "constant":
        return [np.full((SIZE, SIZE), 0.7)] * len(regions)
    if kind in ("noise2", "noise4"):
        return [_upsampled_noise(rng, int(kind[-1])) for _ in regions]
    # Maps of another image: peaked on the lesion of an unrelated image.
    other = rng.permutation(len(regions))
    return [_gaussian_at(regions[j]) for j in other]


@pytest.mark.parametrize("tolerance", [0.0, default_tolerance(SIZE)])
@pytest.mark.parametrize("key", ["pointing_hit", "energy_in_box"])
@pytest.mark.parametrize("kind", ["constant", "noise2", "noise4", "other_image"])
def test_uninformed_maps_score_like_their_shuffled_baseline(regions, kind, key, tolerance):
    own, other = _own_and_shuffled(_maps(kind, regions), regions, key, tolerance)
    _assert_within_3_sigma(own, other)
    if kind == "constant":
        # A derangement permutes the regions: for a map that ignores the image the two
        # means are the same number, not only close.
        assert own.mean() == pytest.approx(other.mean(), abs=1e-12)


def test_coarse_maps_read_below_area_chance_but_not_below_their_baseline(regions):
    """The issue's symptom: an upsampled 2x2 map peaks in a corner, so the exact pointing
    game scores ~0 against an area-fraction "chance" of ~0.1; the shuffled baseline is ~0
    too, so score - baseline says "no information" instead of "points away"."""
    maps = _maps("noise2", regions)
    own, other = _own_and_shuffled(maps, regions, "pointing_hit", 0.0)
    area = np.mean([r.mean() for r in regions])
    assert own.mean() < 0.02 and area > 0.05
    assert other.mean() < 0.02


def test_informed_maps_beat_their_baseline(regions):
    # So that the test above can fail: maps on their own lesion score far above.
    maps = [_gaussian_at(r) for r in regions]
    for key in ("pointing_hit", "energy_in_box"):
        own, other = _own_and_shuffled(maps, regions, key, default_tolerance(SIZE))
        diff = own - other
        assert diff.mean() > 10 * diff.std(ddof=1) / math.sqrt(diff.size)


def test_pointing_metrics_equal_region_metrics():
    """The shuffled baseline's two scores are region_metrics' numbers, exactly: random maps,
    plateaus (an upsampled map), zero mass, every tolerance."""
    from lmfloss.cam.metrics import pointing_metrics

    rng = np.random.default_rng(5)
    for k in range(60):
        size = int(rng.integers(8, 40))
        cam = rng.random((size, size))
        if k % 4 == 1:  # a plateau: an upsampled 2x2 map
            cam = np.kron(rng.random((2, 2)), np.ones((size // 2, size // 2)))
        elif k % 4 == 2:
            cam = np.zeros_like(cam)  # zero mass: energy is the area fraction
        size = cam.shape[0]
        region = np.zeros_like(cam, dtype=bool)
        y, x = rng.integers(0, size - 2, 2)
        region[y:y + int(rng.integers(1, 6)), x:x + int(rng.integers(1, 6))] = True
        tolerance = float(rng.choice([0.0, 0.5, 1.0, 2.5, 7.0]))
        full = region_metrics(cam, region, tolerance=tolerance)
        assert pointing_metrics(cam, region, tolerance=tolerance) == {
            "pointing_hit": full["pointing_hit"], "energy_in_box": full["energy_in_box"]}
    with pytest.raises(ValueError, match="region is empty"):
        pointing_metrics(cam, np.zeros_like(cam, dtype=bool))
    with pytest.raises(ValueError, match="differs from cam shape"):
        pointing_metrics(cam, region[:-1])


def test_the_shuffled_baseline_does_not_compute_the_full_metrics(monkeypatch):
    """``lmfloss cam`` scores each map fully against its own region only; against the
    partner's region (the shuffled baseline) it computes just pointing and energy."""
    import lmfloss.cam.run as cam_run
    from lmfloss.cam.selection import Selection

    rng = np.random.default_rng(0)
    regions = {}
    for name, (y, x) in (("a", (2, 3)), ("b", (10, 11))):
        regions[name] = np.zeros((16, 16), dtype=bool)
        regions[name][y:y + 4, x:x + 4] = True
    selection = Selection(records=[], images={}, annotations={}, regions=regions,
                          partner={"a": "b", "b": "a"}, tolerance=1.5)
    cam = rng.random((16, 16))
    expected_own = region_metrics(cam, regions["a"], tolerance=1.5)
    expected_other = region_metrics(cam, regions["b"], tolerance=1.5)
    full_calls = []

    def counting(cam_, region, *, tolerance=0.0):
        full_calls.append(region)
        return region_metrics(cam_, region, tolerance=tolerance)

    monkeypatch.setattr(cam_run, "region_metrics", counting)
    scores = cam_run._localisation(cam, "a", selection)
    assert len(full_calls) == 1 and full_calls[0] is regions["a"]
    assert {k: scores[k] for k in expected_own} == expected_own
    assert scores["pointing_hit_shuffled"] == expected_other["pointing_hit"]
    assert scores["energy_in_box_shuffled"] == expected_other["energy_in_box"]
