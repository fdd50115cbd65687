"""Statistics for reports: spread and t-tests over seeds, bootstrap over test images.

The paper reports single runs and, for Figs. 1 and 4, the "average deviation"
(mean absolute deviation) across architectures or settings. Beyond the paper, a
reader needs to know which differences are real: the bootstrap percentile interval
of a metric over test images (Efron & Tibshirani 1993), and a paired bootstrap test
of two systems evaluated on the *same* test images (Koehn 2004; Berg-Kirkpatrick et
al. 2012), whose resamples keep the pairing so image difficulty cancels out. That p says
whether a difference could come from the choice of test images; whether it survives
another seed is the paired t-test over seeds (:func:`seed_t_test`), Holm-corrected over
all the comparisons a report makes (:func:`holm`).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lmfloss.metrics import (
    BOOTSTRAP_METRICS,
    bootstrap_ci,
    bootstrap_indices,
    check_labels,
    resampled_metric,
)

__all__ = [
    "BOOTSTRAP_METRICS", "MIN_PAIRS_TWO_LEVEL", "MIN_SEEDS_T", "PairedTest", "SeedTest", "bootstrap_ci",
    "cell_interval", "holm", "resampled_scores", "mean_absolute_deviation", "mean_std", "paired_bootstrap_test", "resampled_metric",
    "seed_t_test",
]


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


MIN_PAIRS_TWO_LEVEL = 10  # the two-level bootstrap is reported from this many paired seeds on
MIN_SEEDS_T = 3  # a seed-level t-test needs at least this many paired seeds


@dataclass(frozen=True)
class SeedTest:
    """A paired t-test over seeds of a per-seed difference (system A minus system B).

    Attributes:
        deltas: the per-seed differences, in seed order.
        mean: their mean (``None`` without pairs).
        ci95: the t-interval of the mean, ``mean ± t_{0.975, n-1} · sd / sqrt(n)``
            (``None`` with fewer than :data:`MIN_SEEDS_T` seeds).
        p: two-sided p of "mean difference 0" (scipy's ``ttest_1samp`` on the deltas, i.e.
            ``ttest_rel`` on the pairs); ``None`` with fewer than :data:`MIN_SEEDS_T` seeds.
        p_holm: ``p`` after Holm's correction over the report's family of comparisons.
    """

    deltas: tuple[float, ...]
    mean: float | None
    ci95: tuple[float, float] | None
    p: float | None
    p_holm: float | None = None

    @property
    def n(self) -> int:
        return len(self.deltas)


def seed_t_test(deltas: Sequence[float]) -> SeedTest:
    """Paired t-test and t-interval over seeds (see :class:`SeedTest`).

    Each seed is one independent replicate of the whole experiment (initialisation, data
    order), so the seed is the unit of replication; with fewer than 3 seeds no test is
    made rather than a number that cannot hold its level.
    """
    # deferred: scipy.stats takes about a second to import (lmfloss.cam imports this module too)
    from scipy import stats

    values = np.asarray(list(deltas), dtype=np.float64)
    if values.size == 0:
        return SeedTest((), None, None, None)
    mean = float(values.mean())
    if values.size < MIN_SEEDS_T:
        return SeedTest(tuple(values.tolist()), mean, None, None)
    sd = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.975, values.size - 1)) * sd / math.sqrt(values.size)
    if sd == 0.0:
        p = 1.0 if mean == 0.0 else 0.0
    else:
        p = float(stats.ttest_1samp(values, 0.0).pvalue)
    return SeedTest(tuple(values.tolist()), mean, (mean - half, mean + half), p)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (Holm 1979) of a family of p-values; ``None`` stays ``None``.

    With the ``m`` p-values sorted ascending, ``p_(i)`` becomes
    ``max_{j <= i} min(1, (m - j + 1) p_(j))`` -- it controls the family-wise error rate
    without assuming independence.
    """
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(present)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


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
            bootstrap); only with at least :data:`MIN_PAIRS_TWO_LEVEL` pairs (``None``
            otherwise): resampling among 3-5 seed values does not hold its level -- under a
            true null it rejected 12.5 % of the time at alpha 0.05 when the seed SD was ~6.5
            points. With few seeds use :func:`seed_t_test`.
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


# ------------------------------------------------------------------ shared resamples
# Every cell interval and paired test of a report draws the same resamples (one seed, one test
# set), so each system's score on them is computed once and reused, and the resamples are
# counted as a matrix W [B, N] (how often each image is drawn) that turns a system's scores
# into three matrix products instead of B bincounts. Exact: the counts are integers (float32
# holds them exactly below 2**24 images), and F1 is then computed in float64 as before.
_MAX_SHARED = 64_000_000  # W's entries (B x N) kept in memory at once: 256 MB of float32
_SCORE_CACHE: OrderedDict[bytes, np.ndarray] = OrderedDict()
_SCORE_CACHE_SIZE = 4096  # systems' score vectors remembered (4096 x 1000 floats: 32 MB)


@lru_cache(maxsize=4)
def resample_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``W[b, i]``: how often resample ``b`` of :func:`lmfloss.metrics.bootstrap_indices`
    ``(n, n_boot, seed)`` draws item ``i`` (float32, read-only)."""
    idx = bootstrap_indices(n, n_boot, seed)
    counts = np.bincount((idx + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n)
    counts = counts.reshape(n_boot, n).astype(np.float32)
    counts.setflags(write=False)
    return counts


def _one_hot(values: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((values.size, k), dtype=np.float32)
    out[np.arange(values.size), values] = 1
    return out


def _score_key(labels: np.ndarray, preds: np.ndarray, k: int, n_boot: int, seed: int, metric: str) -> bytes:
    return hashlib.blake2b(b"%d %d %d %s|" % (k, n_boot, seed, metric.encode()) + labels.tobytes() + b"|"
                           + preds.tobytes(), digest_size=20).digest()


def _macro_f1_shared(labels: np.ndarray, preds: np.ndarray, k: int, counts: np.ndarray) -> np.ndarray:
    """Macro-F1 ``[S, B]`` of the systems ``preds`` ``[S, N]`` on the resamples ``counts`` ``[B, N]``:
    one matrix product gives every system's per-class predicted and true-positive counts."""
    n_sys = preds.shape[0]
    columns = np.zeros((labels.size, 2 * n_sys * k + k), dtype=np.float32)
    items = np.arange(labels.size)
    columns[items, labels] = 1  # support
    for s, row in enumerate(preds):
        columns[items, k + 2 * s * k + row] = 1  # predicted
        hits = items[row == labels]
        columns[hits, k + (2 * s + 1) * k + labels[hits]] = 1  # true positives
    counted = (counts @ columns).astype(np.float64)
    support = counted[:, :k]
    out = np.empty((n_sys, counts.shape[0]))
    for s in range(n_sys):
        predicted = counted[:, k + 2 * s * k: k + (2 * s + 1) * k]
        tp = counted[:, k + (2 * s + 1) * k: k + (2 * s + 2) * k]
        fn = support - tp  # the same float64 operations as macro_f1_from_indices: the same values
        fp = predicted - tp
        denom = 2 * tp + fp + fn
        out[s] = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0).mean(axis=1)
    return out


def resampled_scores(labels: np.ndarray, preds: np.ndarray, num_classes: int, n_boot: int, seed: int,
                     metric: str = "f1_macro") -> np.ndarray:
    """``metric`` of each system (``preds`` ``[N]`` or ``[S, N]``) on each of the ``n_boot``
    resamples of seed ``seed``, ``[B]`` or ``[S, B]``: equal to
    :func:`lmfloss.metrics.resampled_metric` on ``bootstrap_indices(N, n_boot, seed)``,
    computed once per system for the whole report (remembered by content)."""
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.atleast_2d(np.asarray(preds, dtype=np.int64))
    n, k = labels.size, num_classes
    keys = [_score_key(labels, row, k, n_boot, seed, metric) for row in rows]
    todo = [s for s, key in enumerate(keys) if key not in _SCORE_CACHE]
    if todo:
        if metric != "f1_macro" or n_boot * n > _MAX_SHARED or n >= 2**24:
            idx = bootstrap_indices(n, n_boot, seed)
            fresh = np.stack([resampled_metric(labels, rows[s], idx, k, metric) for s in todo])
        else:
            fresh = _macro_f1_shared(labels, rows[todo], k, resample_counts(n, n_boot, seed))
        for s, scores in zip(todo, fresh):
            scores.setflags(write=False)
            _SCORE_CACHE[keys[s]] = scores
    out = []
    for key in keys:
        _SCORE_CACHE.move_to_end(key)
        out.append(_SCORE_CACHE[key])
    while len(_SCORE_CACHE) > _SCORE_CACHE_SIZE:
        _SCORE_CACHE.popitem(last=False)
    return np.stack(out) if np.ndim(preds) == 2 else out[0]


def cell_interval(labels: Sequence[int] | np.ndarray, preds: Sequence[int] | np.ndarray, *, num_classes: int,
                  n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """:func:`lmfloss.metrics.bootstrap_ci` of macro-F1 (the same resamples, the same numbers),
    each system's resampled scores shared with the report's paired tests."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    y = np.asarray(labels, dtype=np.int64)
    p = np.atleast_2d(np.asarray(preds, dtype=np.int64))
    k = check_labels(y, p, num_classes)
    values = np.mean(list(resampled_scores(y, p, k, n_boot, seed)), axis=0)
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


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
    k = check_labels(y, np.concatenate([a, b]), num_classes)

    full = np.arange(y.size)[None, :]
    seed_deltas = np.array([resampled_metric(y, a[s], full, k, metric)[0] - resampled_metric(y, b[s], full, k, metric)[0]
                            for s in range(a.shape[0])])
    # [S, B] differences on shared resamples (each system scored once per report)
    scores = resampled_scores(y, np.concatenate([a, b]), k, n_boot, seed, metric)
    matrix = np.stack([scores[s] - scores[a.shape[0] + s] for s in range(a.shape[0])])
    return paired_result(seed_deltas, matrix, int(y.size), n_boot, seed)


def paired_result(seed_deltas: np.ndarray, matrix: np.ndarray, n_items: int, n_boot: int, seed: int) -> PairedTest:
    """The :class:`PairedTest` of per-pair observed differences ``seed_deltas`` ``[S]`` and their
    differences on ``n_boot`` shared image resamples ``matrix`` ``[S, B]`` (NaN where a resample
    left a metric undefined: those resamples are dropped). The shifted two-sided p, the
    percentile interval, and with :data:`MIN_PAIRS_TWO_LEVEL` pairs or more the two-level p."""
    seed_deltas = np.asarray(seed_deltas, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    matrix = matrix[:, np.isfinite(matrix).all(axis=0)]
    observed = float(seed_deltas.mean())
    deltas = matrix.mean(axis=0)
    p_seeds = None
    n_pairs = matrix.shape[0]
    n_used = matrix.shape[1]
    if n_pairs >= MIN_PAIRS_TWO_LEVEL and n_used:
        draws = np.random.default_rng(seed + 1).integers(0, n_pairs, size=(n_used, n_pairs))
        two_level = matrix[draws, np.arange(n_used)[:, None]].mean(axis=1)
        p_seeds = _shifted_p(two_level, observed)
    lo, hi = np.quantile(deltas, [0.025, 0.975]) if n_used else (np.nan, np.nan)
    return PairedTest(
        delta=observed,
        ci95=(float(lo), float(hi)),
        p_value=float(_shifted_p(deltas, observed)) if n_used else 1.0,
        n_boot=n_boot,
        n_items=int(n_items),
        n_pairs=int(n_pairs),
        seed_deltas=tuple(float(d) for d in seed_deltas),
        p_value_seeds=None if p_seeds is None else float(p_seeds),
    )
