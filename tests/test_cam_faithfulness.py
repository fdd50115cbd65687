"""Faithfulness scores (ROAD, confidence drop) on a model whose evidence is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lmfloss.cam.faithfulness import faithfulness_scores, random_maps

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 32
REGION = (slice(4, 14), slice(6, 16))  # rows, columns: the only pixels the model reads


class RegionModel(nn.Module):
    """Two logits ``(+s, -s)`` with ``s = 1.5 * mean(x over REGION)``: only the region counts
    (p(class 0) = 0.95 on the test images, not saturated)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 1.5 * x[:, :, REGION[0], REGION[1]].mean(dim=(1, 2, 3))
        return torch.stack([s, -s], dim=1)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    # Evidence for class 0 inside the region, texture everywhere: the imputer cannot
    # restore the region from its surroundings.
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(6, 3, SIZE, SIZE, generator=g)
    x[:, :, REGION[0], REGION[1]] += 1.0
    return x


def _smooth_map(inside: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    cy, cx = (9, 11) if inside else (26, 26)
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 6.0**2)).astype(np.float32)


@pytest.mark.parametrize("kind", ["road", "drop"])
def test_map_on_the_evidence_beats_random_beats_map_off_it(images, kind):
    model = RegionModel()
    n = len(images)
    on = np.stack([_smooth_map(True)] * n)
    off = np.stack([_smooth_map(False)] * n)
    rand = random_maps(n, (4, 4), (SIZE, SIZE), seed=3)
    key = "road" if kind == "road" else "conf_drop"
    scores = {name: faithfulness_scores(model, images, maps, [0] * n, kind=kind, seed=1)[key].mean()
              for name, maps in (("on", on), ("random", rand), ("off", off))}
    assert scores["on"] > scores["random"] + 0.15
    if kind == "road":
        # Removing the region last (map off it) hurts LeRF: clearly below the random map.
        assert scores["random"] > scores["off"] + 0.05
        assert scores["on"] > 0.15 and scores["off"] < -0.05 and abs(scores["random"]) < 0.05
    else:
        # Removing the top 20 % of a map off the region changes nothing; of a random map, little.
        assert scores["on"] > 0.3 and abs(scores["off"]) < 0.01
        assert scores["random"] > scores["off"] - 0.01


def test_road_parts_and_reproducibility(images):
    model = RegionModel().train()
    maps = np.stack([_smooth_map(True)] * 2)
    a = faithfulness_scores(model, images[:2], maps, [0, 0], seed=5)
    b = faithfulness_scores(model, images[:2], maps, [0, 0], seed=5)
    assert set(a) == {"road_morf", "road_lerf", "road", "conf_drop"}
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_allclose(a["road"], (a["road_lerf"] - a["road_morf"]) / 2)
    assert np.all(a["road_morf"] < -0.2) and np.all(np.abs(a["road_lerf"]) < 0.1)
    assert model.training  # flags restored
    # The same image gets the same noise wherever it sits in the job.
    tail = faithfulness_scores(model, images[1:2], maps[1:], [0], seed=5, first_index=1)
    np.testing.assert_allclose(tail["road"], a["road"][1:])


def test_ties_are_broken_so_each_step_removes_its_share(images):
    """A constant map (Grad-CAM with no positive evidence) has no ranking: the package's
    thresholding alone would remove every pixel at every step and read as a faithful map."""
    from lmfloss.cam.faithfulness import tie_broken_ranks

    model = RegionModel()
    n = len(images)
    flat = faithfulness_scores(model, images, np.zeros((n, SIZE, SIZE)), [0] * n, seed=2)
    assert abs(flat["road"].mean()) < 0.05 and flat["conf_drop"].mean() < 0.1
    # Ranks keep every order between distinct values and spread ties evenly.
    cam = np.array([[0.0, 0.0, 0.5], [0.0, 1.0, 0.5]])
    ranks = tie_broken_ranks(cam, np.random.default_rng(0))
    assert sorted(ranks.ravel().tolist()) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert ranks[1, 1] == 1.0 and sorted(ranks[:, 2].tolist()) == pytest.approx([0.6, 0.8])
    assert max(ranks[0, 0], ranks[0, 1], ranks[1, 0]) < 0.5


def test_random_maps_are_coarse_seeded_per_image():
    maps = random_maps(3, (2, 2), (16, 16), seed=7)
    assert maps.shape == (3, 16, 16) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6
    again = random_maps(2, (2, 2), (16, 16), seed=7, first_index=1)
    np.testing.assert_array_equal(again, maps[1:])
    # Bilinear upsampling of a 2x2 grid: the maximum sits in a corner plateau.
    peak = np.unravel_index(np.argmax(maps[0]), maps[0].shape)
    assert all(p in (0, 1, 2, 3, 12, 13, 14, 15) for p in peak)


def test_bad_input_names_the_value(images):
    model = RegionModel()
    with pytest.raises(ValueError, match="faithfulness must be one of"):
        faithfulness_scores(model, images[:1], np.zeros((1, SIZE, SIZE)), [0], kind="rise")
    with pytest.raises(ValueError, match="do not match"):
        faithfulness_scores(model, images[:1], np.zeros((1, 8, 8)), [0])


def test_one_set_of_perturbations_scores_every_model_as_its_own_would(images):
    """``cam`` perturbs a batch for the random-map baseline once and scores every run on it;
    each model must get exactly what perturbing for it alone gives (the perturbations do not
    depend on the model), and a mismatched set is refused."""
    from lmfloss.cam.faithfulness import perturbations, scores_of_perturbed

    n = len(images)
    noise = random_maps(n, (4, 4), (SIZE, SIZE), seed=5, first_index=8)
    shared = perturbations(images, noise, kind="road", seed=5, first_index=8)
    assert shared.shape == (n * 18, 3, SIZE, SIZE)  # MoRF and LeRF at 10 % ... 90 %
    torch.manual_seed(0)
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    for model in (RegionModel(), other):
        alone = faithfulness_scores(model, images, noise, [0] * n, kind="road", seed=5, first_index=8)
        reused = scores_of_perturbed(model, images, shared, [0] * n, kind="road")
        assert alone.keys() == reused.keys()
        for key in alone:
            np.testing.assert_array_equal(alone[key], reused[key])
    with pytest.raises(ValueError, match="perturbed images for 6 images and 1 perturbations each"):
        scores_of_perturbed(other, images, shared, [0] * n, kind="drop")


@pytest.mark.parametrize("task_name", ["multiclass", "multilabel", "binary1"])
def test_probabilities_and_scores_are_the_tasks(images, task_name, request):
    """The scores are of the run's task's probabilities (a softmax, a sigmoid per label, a
    registered task's own), not of a softmax chosen here."""
    if task_name == "binary1":
        request.getfixturevalue("binary_task")  # registers the one-logit binary task "binary1"
    from lmfloss.cam.faithfulness import model_probabilities
    from lmfloss.task import get_task

    task = get_task(task_name)
    model = RegionModel() if task.outputs(2) == 2 else nn.Sequential(RegionModel(), nn.Linear(2, 1))
    got = model_probabilities(model, images, task=task)
    with torch.no_grad():
        expected = task.probabilities(model(images).float()).numpy()
    np.testing.assert_array_equal(got, expected)
    assert got.shape == (len(images), 2)
    maps = np.stack([_smooth_map(True)] * len(images))
    scores = faithfulness_scores(model, images, maps, [0] * len(images), kind="drop", task=task)
    after_drop = scores["conf_drop"]
    assert after_drop.shape == (len(images),) and np.isfinite(after_drop).all()
    if task_name == "multiclass":  # the default is the multi-class softmax
        np.testing.assert_array_equal(after_drop, faithfulness_scores(model, images, maps, [0] * len(images),
                                                                      kind="drop")["conf_drop"])
