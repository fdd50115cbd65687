"""lmfloss.report.stats against scikit-learn, float64 formulas and crafted known answers."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from lmfloss.report.stats import (
    bootstrap_ci,
    mean_absolute_deviation,
    mean_std,
    paired_bootstrap_test,
    resampled_metric,
)


def _normal_two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def test_mean_std_matches_statistics_module():
    values = [0.81, 0.84, 0.79, 0.90]
    mean, std = mean_std(values)
    assert mean == pytest.approx(statistics.fmean(values), abs=1e-15)
    assert std == pytest.approx(statistics.stdev(values), abs=1e-15)
    assert mean_std([0.5]) == (0.5, None)


def test_mean_absolute_deviation_formula():
    values = [60.34, 55.79, 57.53]
    mean = sum(values) / 3
    expected = sum(abs(v - mean) for v in values) / 3
    assert mean_absolute_deviation(values) == pytest.approx(expected, abs=1e-12)
    assert mean_absolute_deviation([2.0, 2.0]) == 0.0


@pytest.mark.parametrize("bad", [[], ()])
def test_empty_values_rejected(bad):
    with pytest.raises(ValueError, match="at least one value"):
        mean_std(bad)
    with pytest.raises(ValueError, match="at least one value"):
        mean_absolute_deviation(bad)


def test_resampled_metric_equals_sklearn_on_each_resample():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    preds = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 4, 300))
    idx = rng.integers(0, 300, size=(5, 300))
    f1 = resampled_metric(labels, preds, idx, 4, "f1_macro")
    acc = resampled_metric(labels, preds, idx, 4, "accuracy")
    for b in range(5):
        y, p = labels[idx[b]], preds[idx[b]]
        assert f1[b] == pytest.approx(
            f1_score(y, p, labels=[0, 1, 2, 3], average="macro", zero_division=0), abs=1e-12
        )
        assert acc[b] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    with pytest.raises(ValueError, match="unknown bootstrap metric 'auc'"):
        resampled_metric(labels, preds, idx, 4, "auc")


def test_bootstrap_ci_of_accuracy_matches_wald_interval():
    # 1000 images, 700 correct: the bootstrap interval of accuracy is close to the
    # normal-approximation interval p ± 1.96 sqrt(p(1-p)/n) = 0.7 ± 0.0284.
    labels = np.zeros(1000, dtype=int)
    preds = np.r_[np.zeros(700, dtype=int), np.ones(300, dtype=int)]
    lo, hi = bootstrap_ci(labels, preds, metric="accuracy", num_classes=2, n_boot=4000, seed=1)
    half = 1.96 * math.sqrt(0.7 * 0.3 / 1000)
    assert lo == pytest.approx(0.7 - half, abs=0.004)
    assert hi == pytest.approx(0.7 + half, abs=0.004)


def test_bootstrap_ci_is_reproducible_and_brackets_the_estimate():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 200)
    preds = np.where(rng.random(200) < 0.7, labels, (labels + 1) % 3)
    first = bootstrap_ci(labels, preds, n_boot=300, seed=5)
    assert first == bootstrap_ci(labels, preds, n_boot=300, seed=5)
    observed = f1_score(labels, preds, average="macro")
    assert first[0] < observed < first[1]


def test_paired_test_identical_systems_has_p_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 100)
    preds = rng.integers(0, 3, 100)
    result = paired_bootstrap_test(labels, preds, preds, n_boot=200)
    assert result.delta == 0.0
    assert result.p_value == 1.0
    assert result.ci95 == (0.0, 0.0)


def test_paired_test_dominant_system_has_smallest_p():
    # A is right on every image, B wrong on 40% of them: every resample favours A.
    labels = np.repeat([0, 1, 2], [100, 60, 40])
    b = np.where(np.arange(200) % 5 < 2, (labels + 1) % 3, labels)
    result = paired_bootstrap_test(labels, labels, b, n_boot=500, seed=0)
    expected_delta = 1.0 - f1_score(labels, b, average="macro")
    assert result.delta == pytest.approx(expected_delta, abs=1e-12)
    assert result.p_value == pytest.approx(1 / 501)
    assert result.ci95[0] > 0
    assert (result.n_items, result.n_pairs, result.n_boot) == (200, 1, 500)


def test_paired_test_of_accuracy_matches_normal_approximation():
    # Paired accuracy difference: d_i = [A right] - [B right]; its mean has standard
    # error sd(d)/sqrt(n) (population sd, as the bootstrap uses). With 60 images where
    # only A is right and 40 where only B is right among 1000, z = 0.02 / se.
    n = 1000
    labels = np.zeros(n, dtype=int)
    a = np.zeros(n, dtype=int)
    b = np.zeros(n, dtype=int)
    a[:40] = 1  # A wrong on 0..39 (B right there)
    b[40:100] = 1  # B wrong on 40..99 (A right there)
    d = (a == labels).astype(float) - (b == labels).astype(float)
    z = d.mean() / (d.std() / math.sqrt(n))
    expected = _normal_two_sided_p(z)
    result = paired_bootstrap_test(labels, a, b, metric="accuracy", num_classes=2, n_boot=4000, seed=2)
    assert result.delta == pytest.approx(0.02, abs=1e-12)
    assert 0.02 < expected < 0.2  # a borderline case, so the comparison is informative
    assert result.p_value == pytest.approx(expected, abs=0.025)


def test_paired_test_is_antisymmetric_and_averages_seeds():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 150)
    a = np.stack([np.where(rng.random(150) < 0.8, labels, (labels + 1) % 3) for _ in range(3)])
    b = np.stack([np.where(rng.random(150) < 0.7, labels, (labels + 2) % 3) for _ in range(3)])
    ab = paired_bootstrap_test(labels, a, b, n_boot=300, seed=9)
    ba = paired_bootstrap_test(labels, b, a, n_boot=300, seed=9)
    expected = np.mean([
        f1_score(labels, a[s], labels=[0, 1, 2], average="macro")
        - f1_score(labels, b[s], labels=[0, 1, 2], average="macro")
        for s in range(3)
    ])
    assert ab.delta == pytest.approx(expected, abs=1e-12)
    assert ba.delta == pytest.approx(-expected, abs=1e-12)
    assert ab.p_value == pytest.approx(ba.p_value)
    assert ab.n_pairs == 3


def test_paired_test_rejects_bad_input():
    labels = np.array([0, 1, 1])
    with pytest.raises(ValueError, match="one shape"):
        paired_bootstrap_test(labels, [0, 1, 1], [[0, 1, 1], [0, 1, 1]])
    with pytest.raises(ValueError, match="n_boot must be >= 1, got 0"):
        paired_bootstrap_test(labels, [0, 1, 1], [0, 1, 1], n_boot=0)
    with pytest.raises(ValueError, match="class index 2 >= num_classes 2"):
        paired_bootstrap_test(labels, [0, 2, 1], [0, 1, 1], num_classes=2)
    with pytest.raises(ValueError, match=r"labels must be \[N\]"):
        bootstrap_ci(labels, [0, 1])


def test_two_level_bootstrap_counts_the_seed_spread():
    # Seeds of two kinds, five each: A perfect and B wrong on 30% of images (A far better),
    # or A wrong on 10% and B perfect (B better). Over images alone the mean difference (0.1)
    # is clearly real; resampling the ten seeds too gives d* with sd 0.2 / sqrt(10) around
    # 0.1, so |d* - 0.1| >= 0.1 happens about 11% of the time: no longer "real".
    labels = np.repeat([0, 1], [300, 300])
    wrong30 = np.where(np.arange(600) % 10 < 3, 1 - labels, labels)
    wrong10 = np.where(np.arange(600) % 10 < 1, 1 - labels, labels)
    a = np.stack([labels] * 5 + [wrong10] * 5)
    b = np.stack([wrong30] * 5 + [labels] * 5)
    result = paired_bootstrap_test(labels, a, b, metric="accuracy", n_boot=4000, seed=0)
    assert result.seed_deltas == pytest.approx((0.3,) * 5 + (-0.1,) * 5, abs=1e-12)
    assert result.delta == pytest.approx(0.1, abs=1e-12)
    assert result.p_value < 0.01
    assert 0.05 < result.p_value_seeds < 0.2
    # Fewer than 10 pairs: resampling 3-5 seed values does not hold its level -- no number.
    few = paired_bootstrap_test(labels, a[:4], b[:4], metric="accuracy", n_boot=100)
    assert few.p_value_seeds is None
    single = paired_bootstrap_test(labels, labels, wrong30, metric="accuracy", n_boot=100)
    assert single.p_value_seeds is None and single.seed_deltas == pytest.approx((0.3,))
