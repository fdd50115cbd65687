"""Statistics for reports: spread over seeds and bootstrap over test images.

The paper reports single runs and, for Figs. 1 and 4, the "average deviation"
(mean absolute deviation) across architectures or settings. Beyond the paper, a
reader needs to know which differences are real: the bootstrap percentile interval
of a metric over test images (Efron & Tibshirani 1993), and a paired bootstrap test
of two systems evaluated on the *same* test images (Koehn 2004; Berg-Kirkpatrick et
al. 2012), whose resamples keep the pairing so image difficulty cancels out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lmfloss.metrics import bootstrap_indices, macro_f1_from_indices

BOOTSTRAP_METRICS = ("f1_macro", "accuracy")
_CHUNK = 256  # resamples scored at once (bounds the confusion-count arrays)


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``ddof=1``; ``None`` for a single value).

    Raises:
        ValueError: ``values`` is empty.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("mean_std needs at least one value, got none")
    std = float(array.std(ddof=1)) if array.size > 1 else None
    return float(array.mean()), std


def mean_absolute_deviation(values: Sequence[float]) -> float:
    """The paper's "average deviation": ``mean(|x_i - mean(x)|)``.

    Raises:
        ValueError: ``values`` is empty.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("mean_absolute_deviation needs at least one value, got none")
    return float(np.abs(array - array.mean()).mean())


def _check_labels(labels: np.ndarray, preds: np.ndarray, num_classes: int | None) -> int:
    if labels.ndim != 1 or preds.shape[-1] != labels.shape[0]:
        raise ValueError(
            f"labels must be [N] and predictions [..., N]; got {labels.shape} and {preds.shape}"
        )
    if labels.size == 0:
        raise ValueError("cannot bootstrap an empty test set (N = 0)")
    top = int(max(labels.max(), preds.max())) + 1
    if num_classes is None:
        return top
    if top > num_classes:
        raise ValueError(f"class index {top - 1} >= num_classes {num_classes}")
    return num_classes


def resampled_metric(
    labels: np.ndarray,
    preds: np.ndarray,
    indices: np.ndarray,
    num_classes: int,
    metric: str = "f1_macro",
) -> np.ndarray:
    """A metric on each resample of the test set.

    Macro-F1 averages ``F1_k = 2 TP_k / (2 TP_k + FP_k + FN_k)`` over *all* ``K``
    classes, 0 where a class is neither present nor predicted (scikit-learn's
    ``f1_score(..., labels=range(K), average="macro", zero_division=0)``), computed by
    :func:`lmfloss.metrics.macro_f1_from_indices` like the runs' own ``report.json``.

    Args:
        labels: ``[N]`` int true classes.
        preds: ``[N]`` int predicted classes.
        indices: ``[B, N]`` int resample indices into ``labels``.
        num_classes: ``K``.
        metric: ``f1_macro`` | ``accuracy``.

    Returns:
        ``[B]`` float64 metric values.
    """
    if metric not in BOOTSTRAP_METRICS:
        raise ValueError(f"unknown bootstrap metric {metric!r}; expected one of {BOOTSTRAP_METRICS}")
    if metric == "accuracy":
        return (labels[indices] == preds[indices]).mean(axis=1)
    return np.concatenate([
        macro_f1_from_indices(labels, preds, indices[start : start + _CHUNK], num_classes)
        for start in range(0, indices.shape[0], _CHUNK)
    ])


def bootstrap_ci(
    labels: Sequence[int] | np.ndarray,
    preds: Sequence[int] | np.ndarray,
    *,
    metric: str = "f1_macro",
    num_classes: int | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a metric over test images.

    With several runs on the same images (``preds`` of shape ``[S, N]``, e.g. seeds),
    each resample evaluates every run and averages, giving the interval of the
    seed-mean metric due to the choice of test images.

    Args:
        labels: ``[N]`` true classes.
        preds: ``[N]`` or ``[S, N]`` predicted classes.
        metric: ``f1_macro`` | ``accuracy``.
        num_classes: ``K`` (default: largest index seen + 1).
        n_boot: Resamples ``B``.
        level: Coverage, e.g. 0.95.
        seed: Resampling seed (results are reproducible).

    Returns:
        ``(lo, hi)``, the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the ``B`` values.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    y = np.asarray(labels, dtype=np.int64)
    p = np.atleast_2d(np.asarray(preds, dtype=np.int64))
    k = _check_labels(y, p, num_classes)
    idx = bootstrap_indices(y.size, n_boot, seed)
    stats = np.mean([resampled_metric(y, row, idx, k, metric) for row in p], axis=0)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class PairedTest:
    """Result of :func:`paired_bootstrap_test` (system A minus system B).

    Attributes:
        delta: Observed ``metric(A) - metric(B)``, averaged over paired runs (seeds).
        ci95: Percentile 95% interval of the resampled difference (images resampled).
        p_value: Two-sided p-value of "no difference", test images resampled.
        n_boot: Resamples.
        n_items: Test images.
        n_pairs: Paired runs (seeds) averaged.
        seed_deltas: The observed difference of each pair (seed), in order.
        p_value_seeds: Two-sided p-value with seeds *and* images resampled (two-level
            bootstrap), so the seed-to-seed spread counts too; ``None`` for one pair.
    """

    delta: float
    ci95: tuple[float, float]
    p_value: float
    n_boot: int
    n_items: int
    n_pairs: int
    seed_deltas: tuple[float, ...] = ()
    p_value_seeds: float | None = None


def _shifted_p(deltas: np.ndarray, observed: float) -> float:
    """``(1 + #{|d*_b - d| >= |d|}) / (B + 1)``; 1 when the observed difference is 0."""
    if math.isclose(observed, 0.0, abs_tol=1e-12):
        return 1.0
    extreme = int(np.sum(np.abs(deltas - observed) >= abs(observed) - 1e-12))
    return (1 + extreme) / (deltas.size + 1)


def paired_bootstrap_test(
    labels: Sequence[int] | np.ndarray,
    preds_a: Sequence[int] | np.ndarray,
    preds_b: Sequence[int] | np.ndarray,
    *,
    metric: str = "f1_macro",
    num_classes: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> PairedTest:
    """Paired bootstrap test of two systems on the same test images.

    Each resample draws ``N`` image indices with replacement and evaluates *both*
    systems on them, giving ``d*_b = m(A*) - m(B*)``; with several paired runs (rows of
    ``preds_a``/``preds_b``, e.g. seeds) ``d`` is their mean. The two-sided p-value
    shifts the bootstrap distribution to the null (Berg-Kirkpatrick et al. 2012):
    ``p = (1 + #{|d*_b - d| >= |d|}) / (B + 1)``; ``p = 1`` when ``d = 0``.

    With ``S > 1`` pairs, a second p-value also resamples the pairs: resample ``b``
    draws ``S`` pair indices with replacement and averages their differences on the
    same image resample (a two-level bootstrap), so a difference that flips sign from
    seed to seed is not called real just because the test set is large.

    Args:
        labels: ``[N]`` true classes (the same images, same order, for both systems).
        preds_a: ``[N]`` or ``[S, N]`` predictions of system A (S paired runs).
        preds_b: Same shape as ``preds_a``, system B.
        metric: ``f1_macro`` | ``accuracy``.
        num_classes: ``K`` (default: largest index seen + 1).
        n_boot: Resamples ``B``.
        seed: Resampling seed.

    Returns:
        A :class:`PairedTest`.

    Raises:
        ValueError: Shapes differ or ``n_boot < 1``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    y = np.asarray(labels, dtype=np.int64)
    a = np.atleast_2d(np.asarray(preds_a, dtype=np.int64))
    b = np.atleast_2d(np.asarray(preds_b, dtype=np.int64))
    if a.shape != b.shape:
        raise ValueError(f"paired predictions must have one shape; got {a.shape} and {b.shape}")
    k = _check_labels(y, np.concatenate([a, b]), num_classes)

    def per_pair(idx: np.ndarray) -> np.ndarray:  # [S, R] differences
        return np.stack([
            resampled_metric(y, a[s], idx, k, metric) - resampled_metric(y, b[s], idx, k, metric)
            for s in range(a.shape[0])
        ])

    seed_deltas = per_pair(np.arange(y.size)[None, :])[:, 0]
    observed = float(seed_deltas.mean())
    matrix = per_pair(bootstrap_indices(y.size, n_boot, seed))
    deltas = matrix.mean(axis=0)
    p_seeds = None
    n_pairs = a.shape[0]
    if n_pairs > 1:
        draws = np.random.default_rng(seed + 1).integers(0, n_pairs, size=(n_boot, n_pairs))
        two_level = matrix[draws, np.arange(n_boot)[:, None]].mean(axis=1)
        p_seeds = _shifted_p(two_level, observed)
    lo, hi = np.quantile(deltas, [0.025, 0.975])
    return PairedTest(
        delta=observed,
        ci95=(float(lo), float(hi)),
        p_value=float(_shifted_p(deltas, observed)),
        n_boot=n_boot,
        n_items=int(y.size),
        n_pairs=int(n_pairs),
        seed_deltas=tuple(float(d) for d in seed_deltas),
        p_value_seeds=None if p_seeds is None else float(p_seeds),
    )
