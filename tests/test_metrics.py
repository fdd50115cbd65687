"""lmfloss.metrics against scikit-learn (the reference) and float64 formulas."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from lmfloss.metrics import (
    bootstrap_ci,
    bootstrap_indices,
    classification_report,
    macro_f1_from_indices,
)

NAMES = ["a", "b", "c", "d"]


def _data(n=200, k=4, seed=0, drop_class=None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    if drop_class is not None:
        y[y == drop_class] = 0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs.argmax(1), probs


def test_report_matches_sklearn():
    y, pred, probs = _data()
    rep = classification_report(y, pred, probs, NAMES, n_bootstrap=100, seed=1)
    labels = list(range(4))
    assert rep["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert rep["precision_macro"] == pytest.approx(precision_score(y, pred, average="macro", zero_division=0))
    assert rep["recall_macro"] == pytest.approx(recall_score(y, pred, average="macro", zero_division=0))
    assert rep["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert rep["f1_weighted"] == pytest.approx(f1_score(y, pred, average="weighted", zero_division=0))
    assert rep["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert rep["auc_macro_ovr"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    per_class = f1_score(y, pred, average=None, labels=labels, zero_division=0)
    assert [rep["f1_per_class"][n] for n in NAMES] == pytest.approx(per_class)
    assert rep["confusion_matrix"] == confusion_matrix(y, pred, labels=labels).tolist()
    assert rep["support"] == {n: int((y == i).sum()) for i, n in enumerate(NAMES)}
    lo, hi = rep["f1_macro_ci95"]
    assert lo < rep["f1_macro"] < hi


def test_absent_class_counts_as_zero_and_auc_undefined():
    y, pred, probs = _data(drop_class=3)
    pred[pred == 3] = 0  # class "d" never occurs nor is predicted
    rep = classification_report(y, pred, probs, NAMES, n_bootstrap=0)
    # labels=range(K): the absent class contributes an F1 of 0 to the macro mean.
    assert rep["f1_macro"] == pytest.approx(f1_score(y, pred, labels=[0, 1, 2, 3], average="macro", zero_division=0))
    assert rep["f1_per_class"]["d"] == 0.0
    assert rep["auc_macro_ovr"] is None
    assert rep["f1_macro_ci95"] is None


def test_binary_auc_uses_positive_column():
    y, pred, probs = _data(k=2)
    rep = classification_report(y, pred, probs, ["neg", "pos"], n_bootstrap=0)
    assert rep["auc_macro_ovr"] == pytest.approx(roc_auc_score(y, probs[:, 1]))


def test_bootstrap_indices_seeded_and_in_range():
    a = bootstrap_indices(50, 30, seed=7)
    assert a.shape == (30, 50) and a.dtype == np.int64
    assert a.min() >= 0 and a.max() < 50
    np.testing.assert_array_equal(a, bootstrap_indices(50, 30, seed=7))
    assert not np.array_equal(a, bootstrap_indices(50, 30, seed=8))


def test_vectorised_macro_f1_equals_sklearn_per_resample():
    y, pred, _ = _data(n=60, seed=3)
    idx = bootstrap_indices(60, 25, seed=0)
    fast = macro_f1_from_indices(y, pred, idx, 4)
    ref = [f1_score(y[i], pred[i], labels=[0, 1, 2, 3], average="macro", zero_division=0) for i in idx]
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)


def test_ci_is_percentile_of_resampled_scores():
    y, pred, _ = _data(n=80, seed=5)
    idx = bootstrap_indices(80, 300, seed=2)
    scores = [f1_score(y[i], pred[i], labels=[0, 1, 2, 3], average="macro", zero_division=0) for i in idx]
    lo, hi = bootstrap_ci(y, pred, num_classes=4, n_boot=300, seed=2)
    assert lo == pytest.approx(np.percentile(scores, 2.5))
    assert hi == pytest.approx(np.percentile(scores, 97.5))


@pytest.mark.parametrize(
    ("y", "pred", "match"),
    [
        ([0, 1], [0], "equal length"),
        ([], [], "empty split"),
        ([0, 5], [0, 1], r"outside \[0, 4\)"),
    ],
)
def test_bad_input_raises(y, pred, match):
    with pytest.raises(ValueError, match=match):
        classification_report(np.array(y), np.array(pred), None, NAMES)


def test_bootstrap_rejects_empty():
    with pytest.raises(ValueError, match="n=0"):
        bootstrap_indices(0, 10, seed=0)


def test_class_without_support_counts_as_zero_recall_like_sklearn():
    from sklearn.metrics import recall_score

    from lmfloss.metrics import classification_report

    y_true = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    y_pred = np.array([0, 1, 0, 1, 1, 2, 1, 2])  # class 2 predicted, never true
    probs = np.eye(3)[y_pred] * 0.7 + 0.1
    report = classification_report(y_true, y_pred, probs, ["a", "b", "c"], n_bootstrap=0)
    reference = recall_score(y_true, y_pred, labels=range(3), average="macro", zero_division=0)
    assert report["recall_macro"] == pytest.approx(reference)
    assert report["balanced_accuracy"] == pytest.approx(report["recall_macro"])
    assert report["balanced_accuracy"] == pytest.approx((2 / 4 + 3 / 4 + 0) / 3)
    assert report["classes_without_support"] == ["c"]
