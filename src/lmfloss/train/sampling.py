"""Re-sampling of the training set: each class drawn with equal probability (``balanced``) or
in proportion to the square root of its size (``sqrt``), also under DDP.

The other half of imbalance handling, beside re-weighting the loss: instead of changing
what a mistake costs, change how often a class is seen. An epoch keeps the training set's
length; images are drawn with replacement. Under DDP every rank draws the *same* global
order from a generator seeded by ``(seed, epoch)`` and takes its own disjoint share of it
(positions ``rank, rank + R, ...``), so the global epoch has the intended class
frequencies -- which per-rank weighted samplers do not give (PyTorch #77154, Lightning
#12866). Deferred re-sampling (``start_epoch``; "DRS" of Cao et al. 2019) keeps the plain
shuffle before that epoch, exactly the order ``DistributedSampler`` gives.

The losses' margins and weights still come from the *true* training counts: the sampler
changes what is seen, not the counts.

Multi-label tasks (labels ``[N, L]``): an image has several labels, so it is drawn as its
**rarest** label (by training positives; :func:`sampling_classes`), and the images with no
label form a class of their own ("no finding"). ``balanced`` then draws every label's images
-- those whose rarest finding it is -- and the no-finding images equally often; an image
drawn for its rare label still trains every label it has.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

SAMPLERS = ("none", "balanced", "sqrt")


def class_probabilities(counts: Sequence[int], mode: str) -> np.ndarray:
    """The share of draws each class gets: ``balanced`` 1/K each, ``sqrt`` ∝ √n_j, ``none`` ∝ n_j.

    Raises:
        ValueError: unknown ``mode`` or a class with no image (it cannot be drawn).
    """
    if mode not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {mode!r}")
    n = np.asarray(counts, dtype=np.float64)
    if mode != "none" and (n <= 0).any():
        empty = [int(j) for j in np.flatnonzero(n <= 0)]
        raise ValueError(f"classes {empty} have no training image; a {mode} sampler cannot draw them")
    weight = {"none": n, "balanced": np.ones_like(n), "sqrt": np.sqrt(n)}[mode]
    return weight / weight.sum()


def sampling_classes(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """The class each item is drawn as: its class (multi-class ``[N]``), or for multi-label
    ``[N, L]`` targets the index of its rarest present label (fewest positives; ties: the lower
    index), ``L`` for an item with no label."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels.astype(np.int64)
    present = labels > 0
    num_labels = labels.shape[1]
    rarity = np.argsort(present.sum(axis=0), kind="stable")  # label indices, rarest first
    rank = np.empty(num_labels, dtype=np.int64)
    rank[rarity] = np.arange(num_labels)
    best = np.where(present, rank[None, :], num_labels).min(axis=1) if num_labels else np.zeros(len(labels), int)
    return np.where(best < num_labels, rarity[np.minimum(best, num_labels - 1)], num_labels).astype(np.int64)


class ClassAwareSampler(Sampler[int]):
    """Indices of one rank's share of a class-re-sampled epoch (see the module docstring).

    Args:
        labels: ``[N]`` class index of each training item, or ``[N, L]`` multi-label targets
            (each item drawn as its rarest label, :func:`sampling_classes`).
        mode: ``"balanced"``, ``"sqrt"`` or ``"none"`` (the plain shuffle).
        num_replicas, rank: the DDP world (``1, 0`` for one process).
        seed: the run's seed; the epoch's order depends only on ``(seed, epoch)``.
        start_epoch: the first (0-based) epoch that is re-sampled; before it, the plain shuffle.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, mode: str, *, num_replicas: int = 1, rank: int = 0,
                 seed: int = 0, start_epoch: int = 0) -> None:
        self.labels = sampling_classes(labels)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        if isinstance(start_epoch, bool) or not isinstance(start_epoch, int) or start_epoch < 0:
            raise ValueError(f"start_epoch must be an int >= 0, got {start_epoch!r}")
        self.mode, self.num_replicas, self.rank, self.seed = mode, num_replicas, rank, seed
        self.start_epoch = start_epoch
        self.epoch = 0
        counts = np.bincount(self.labels, minlength=int(self.labels.max(initial=-1)) + 1)
        if np.ndim(labels) == 2:  # a label that is nobody's rarest has no images of its own to draw
            share = np.zeros(len(counts))
            share[counts > 0] = class_probabilities(counts[counts > 0], mode)
        else:
            share = class_probabilities(counts, mode)
        # One item's draw probability: its class's share spread over the class's items.
        self.item_weights = torch.from_numpy(share[self.labels] / counts[self.labels])
        self.num_samples = math.ceil(len(self.labels) / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def active(self) -> bool:
        """Whether this epoch is re-sampled (``mode`` set and ``epoch >= start_epoch``)."""
        return self.mode != "none" and self.epoch >= self.start_epoch

    def global_order(self) -> list[int]:
        """The whole epoch's indices, the same on every rank."""
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)  # DistributedSampler's convention
        n = len(self.labels)
        if self.active:
            return torch.multinomial(self.item_weights, self.total_size, replacement=True, generator=g).tolist()
        order = torch.randperm(n, generator=g).tolist()
        padding = self.total_size - n  # as DistributedSampler(drop_last=False): repeat the start
        order += (order * math.ceil(padding / max(n, 1)))[:padding] if padding else []
        return order

    def __iter__(self) -> Iterator[int]:
        return iter(self.global_order()[self.rank : self.total_size : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples
