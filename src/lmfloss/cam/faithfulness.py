"""Does the model use what its map points at? Perturbation scores of attention maps.

A map can sit on the lesion and still not be what the network decides with (Hooker et
al., "A benchmark for interpretability methods in deep neural networks", NeurIPS 2019).
The scores here remove the pixels a map ranks highest (or lowest) and measure how the
probability ``p`` of the map's target class changes (the run's task's probability: a softmax,
or a sigmoid per label). Removed pixels are filled by pytorch-grad-cam's ROAD imputer (Rong et
al., "A consistent and efficient evaluation strategy for attribution methods", ICML 2022:
noisy linear imputation from the kept neighbours), so that the removal's *shape* does not
leak the ranking to the model; the perturbations are the package's
``RemoveMostRelevantFirst`` / ``RemoveLeastRelevantFirst``.

Per image, with ``q`` the share of pixels removed:

- ``road_morf`` -- mean over ``q`` in 10, 20, ..., 90 % of ``p(removed) - p``, removing
  the most relevant pixels first (MoRF; lower: the map found what matters);
- ``road_lerf`` -- the same removing the least relevant first (LeRF; near 0 is good);
- ``road`` -- ``(road_lerf - road_morf) / 2``, pytorch-grad-cam's ``ROADCombined``
  (higher: more faithful; 0 for a map unrelated to the decision);
- ``conf_drop`` -- ``p - p(top q removed)`` at one ``q`` (20 % by default): the
  confidence drop when the map's top pixels are removed.

Probabilities, not logits: LDAM and LMF train logits scaled by 30, so a logit change is
not comparable across losses, a probability change is.

Ties are broken at random (seeded per image) before the package thresholds the map: it
removes every pixel tied at the threshold at once, so on a Grad-CAM map whose ReLU left
half the image at 0, "remove the least relevant 10 %" would remove that whole half, and a
constant map (no positive evidence anywhere) would lose every pixel at every step. Each
map is therefore replaced by its pixels' ranks, which changes no ordering between distinct
values and makes every step remove exactly its share.

The reference is a random map with the CAM's own coarseness (:func:`random_maps`: uniform
noise on the target layer's grid, upsampled like a CAM), whose scores are what a map that
knows nothing about the decision gets under the same perturbation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmfloss.cam.compute import preserved
from lmfloss.task import MULTICLASS, Task

FAITHFULNESS = ("road", "drop", "none")
ROAD_REMOVED = (10, 20, 30, 40, 50, 60, 70, 80, 90)  # % of pixels removed (ROAD's grid)
DROP_REMOVED = 20  # % of the map's top pixels removed for ``conf_drop``
FORWARD_CHUNK = 64  # perturbed images per forward pass


def check_faithfulness(kind: str) -> str:
    """``kind`` if it is one of :data:`FAITHFULNESS`, else ValueError naming it."""
    if kind not in FAITHFULNESS:
        raise ValueError(f"faithfulness must be one of {list(FAITHFULNESS)}, got {kind!r}")
    return kind


def random_maps(count: int, map_size: tuple[int, int], image_size: tuple[int, int], seed: int,
                first_index: int = 0) -> np.ndarray:
    """Random maps with a CAM's coarseness: uniform noise on a ``map_size`` grid, upsampled
    bilinearly to ``image_size`` and min-max scaled, as pytorch-grad-cam does with a CAM.

    Image ``first_index + k`` always gets the same map for the same ``seed`` (seeded per
    image), so several runs are compared against identical baselines.

    Returns:
        ``float32 [count, H, W]`` in ``[0, 1]``.
    """
    grids = np.stack([
        np.random.default_rng((seed, first_index + k)).random(map_size) for k in range(count)
    ]).astype(np.float32)
    up = F.interpolate(torch.from_numpy(grids)[:, None], size=tuple(image_size), mode="bilinear",
                       align_corners=False)[:, 0].numpy()
    low = up.min(axis=(1, 2), keepdims=True)
    return (up - low) / np.maximum(up.max(axis=(1, 2), keepdims=True) - low, 1e-7)


def tie_broken_ranks(cam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``cam``'s pixel ranks scaled to ``[0, 1]`` (``float32``, same shape), ties in random order."""
    flat = np.asarray(cam, dtype=np.float64).ravel()
    order = np.lexsort((rng.random(flat.size), flat))  # by value, then by the random key
    ranks = np.empty(flat.size, dtype=np.float64)
    ranks[order] = np.arange(flat.size)
    return (ranks / max(flat.size - 1, 1)).reshape(np.shape(cam)).astype(np.float32)


def _removals(kind: str) -> list[tuple[str, int]]:
    """The perturbations a score needs: ``("morf" | "lerf", % removed)``."""
    if kind == "drop":
        return [("morf", DROP_REMOVED)]
    morf = [("morf", q) for q in ROAD_REMOVED]
    lerf = [("lerf", q) for q in ROAD_REMOVED]
    extra = [] if DROP_REMOVED in ROAD_REMOVED else [("morf", DROP_REMOVED)]
    return morf + lerf + extra


def _perturbed(image: torch.Tensor, cam: np.ndarray, order: str, removed: int) -> torch.Tensor:
    # optional extra: lmfloss[cam]
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        RemoveLeastRelevantFirst,
        RemoveMostRelevantFirst,
    )
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    # The package's percentile is the share *kept*: RemoveMostRelevantFirst(80) removes the
    # top 20 %, RemoveLeastRelevantFirst(80) the bottom 20 %.
    remove = RemoveMostRelevantFirst if order == "morf" else RemoveLeastRelevantFirst
    return remove(100 - removed, NoisyLinearImputer())(image.detach().cpu(), torch.from_numpy(cam))


def model_probabilities(model: nn.Module, images: torch.Tensor, device: torch.device | str | None = None,
                        task: Task = MULTICLASS) -> np.ndarray:
    """The model's probabilities ``float32 [N, K]`` as ``task`` defines them (a softmax, or
    a sigmoid per label) in eval mode, without gradients, in chunks of :data:`FORWARD_CHUNK`
    moved to ``device`` (default: the images' own); the model's flags are left as found."""
    device = images.device if device is None else device
    out = []
    with preserved(model), torch.no_grad():
        model.eval()
        for start in range(0, len(images), FORWARD_CHUNK):
            logits = model(images[start : start + FORWARD_CHUNK].to(device)).float()
            out.append(task.probabilities(logits).cpu())
    return torch.cat(out).numpy()


def perturbations(images: torch.Tensor, maps: np.ndarray, *, kind: str = "road", seed: int = 0,
                  first_index: int = 0) -> torch.Tensor:
    """The perturbed images the scores of ``kind`` need (the costly part: ROAD's imputation).

    Depends on the images, the maps and the seeds only, not on a model, so the random-map
    baseline's perturbations can be made once and scored by several models
    (:func:`scores_of_perturbed`).

    Args:
        images, maps, kind, seed, first_index: as in :func:`faithfulness_scores`.

    Returns:
        ``float [N * R, C, H, W]`` on the CPU: image ``k``'s ``R`` perturbations at rows
        ``k * R`` to ``k * R + R - 1`` (R = 1 for ``"drop"``; 18 for ``"road"``: MoRF and
        LeRF at 10, 20, ..., 90 %).

    Raises:
        ValueError: an unknown ``kind`` (or ``"none"``), or shapes that do not match.
    """
    if check_faithfulness(kind) == "none":
        raise ValueError("faithfulness 'none' computes no scores; expected 'road' or 'drop'")
    maps = np.asarray(maps, dtype=np.float32)
    if images.ndim != 4 or maps.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"maps {maps.shape} do not match images {tuple(images.shape)}; expected [N, H, W]")
    removals = _removals(kind)
    perturbed = []
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # The package thresholds a tensor with numpy (NumPy 2's __array_wrap__ deprecation).
        warnings.simplefilter("ignore", DeprecationWarning)
        for k in range(len(images)):
            torch.manual_seed(seed + first_index + k)
            ranks = tie_broken_ranks(maps[k], np.random.default_rng((seed, first_index + k)))
            perturbed.extend(_perturbed(images[k], ranks, order, q) for order, q in removals)
    return torch.stack(perturbed)


def scores_from_probabilities(before: np.ndarray, after: np.ndarray, target_classes: Sequence[int], *,
                              kind: str = "road") -> dict[str, np.ndarray]:
    """The scores of ``kind`` from :func:`model_probabilities` of the images (``before``,
    ``[N, K]``) and of their :func:`perturbations` for the same ``kind`` (``after``, ``[N * R, K]``).

    Raises:
        ValueError: ``after`` is not ``N`` times the perturbations of ``kind``, or the number
            of target classes is not ``N``.
    """
    if check_faithfulness(kind) == "none":
        raise ValueError("faithfulness 'none' computes no scores; expected 'road' or 'drop'")
    removals = _removals(kind)
    n = len(before)
    if len(after) != n * len(removals):
        raise ValueError(f"got {len(after)} perturbed images for {n} images and "
                         f"{len(removals)} perturbations each ({kind!r})")
    if len(target_classes) != n:
        raise ValueError(f"got {len(target_classes)} target classes for {n} images")
    classes = np.asarray([int(c) for c in target_classes], dtype=np.int64)
    p_before = before[np.arange(n), classes].astype(np.float64)
    p_after = after[np.arange(len(after)), np.repeat(classes, len(removals))].astype(np.float64)
    change = p_after.reshape(n, len(removals)) - p_before[:, None]
    column = {removal: j for j, removal in enumerate(removals)}
    scores = {"conf_drop": -change[:, column[("morf", DROP_REMOVED)]]}
    if kind == "road":
        morf = change[:, [column[("morf", q)] for q in ROAD_REMOVED]].mean(axis=1)
        lerf = change[:, [column[("lerf", q)] for q in ROAD_REMOVED]].mean(axis=1)
        scores.update(road_morf=morf, road_lerf=lerf, road=(lerf - morf) / 2)
    return scores


def scores_of_perturbed(model: nn.Module, images: torch.Tensor, perturbed: torch.Tensor,
                        target_classes: Sequence[int], *, kind: str = "road",
                        task: Task = MULTICLASS) -> dict[str, np.ndarray]:
    """The scores of ``kind`` from :func:`perturbations` of ``images`` made for the same ``kind``,
    on ``task``'s probabilities.

    Raises:
        ValueError: ``perturbed`` is not ``len(images)`` times the perturbations of ``kind``,
            or the number of target classes differs from the images'.
    """
    if check_faithfulness(kind) == "none":
        raise ValueError("faithfulness 'none' computes no scores; expected 'road' or 'drop'")
    removals = _removals(kind)
    if len(perturbed) != len(images) * len(removals) or perturbed.shape[1:] != images.shape[1:]:
        raise ValueError(f"got {tuple(perturbed.shape)} perturbed images for {len(images)} images and "
                         f"{len(removals)} perturbations each ({kind!r})")
    if len(target_classes) != len(images):
        raise ValueError(f"got {len(target_classes)} target classes for {len(images)} images")
    before = model_probabilities(model, images, task=task)
    after = model_probabilities(model, perturbed, images.device, task)
    return scores_from_probabilities(before, after, target_classes, kind=kind)


def faithfulness_scores(
    model: nn.Module,
    images: torch.Tensor,
    maps: np.ndarray,
    target_classes: Sequence[int],
    *,
    kind: str = "road",
    seed: int = 0,
    first_index: int = 0,
    task: Task = MULTICLASS,
) -> dict[str, np.ndarray]:
    """Perturbation scores of ``maps`` for ``model`` (definitions in this module's docstring).

    Args:
        model: classifier returning logits ``[N, K]``; its train/eval flags and gradients
            are left as found (the scores use eval mode).
        images: ``float [N, C, H, W]`` as the model takes them.
        maps: ``[N, H, W]`` maps at the images' resolution (any non-negative scale).
        target_classes: the class whose probability each map explains, ``[N]``.
        kind: ``"road"`` (``road_morf``, ``road_lerf``, ``road`` and ``conf_drop``) or
            ``"drop"`` (``conf_drop`` only, one perturbation per image).
        seed: seed of the imputer's noise and of the tie-breaking; image
            ``first_index + k`` is seeded by ``seed`` and ``first_index + k``, so results do
            not depend on the batching.
        first_index: index of ``images[0]`` in the whole job.
        task: the run's task: the scores are of its probabilities (a softmax, or a sigmoid
            per label).

    Returns:
        ``{name: float64 [N]}`` for the scores of ``kind``.

    Raises:
        ValueError: an unknown ``kind`` (or ``"none"``), or shapes that do not match.
    """
    if len(target_classes) != len(images):
        raise ValueError(f"got {len(target_classes)} target classes for {len(images)} images")
    perturbed = perturbations(images, maps, kind=kind, seed=seed, first_index=first_index)
    return scores_of_perturbed(model, images, perturbed, target_classes, kind=kind, task=task)
