"""Evaluation metrics of the paper, computed with scikit-learn, plus a bootstrap CI.

The paper ("Evaluation metrics") reports accuracy, macro precision, macro recall and
macro F1 (the arithmetic mean of the per-class F1 scores, Opitz & Burst 2019). Every
number here comes from scikit-learn with ``labels=range(K)`` (a class absent from a split
still counts, with score 0) and ``zero_division=0``.

The 95% interval of macro-F1 is a percentile bootstrap over test images (Efron &
Tibshirani 1993): resample the N (label, prediction) pairs with replacement ``n_boot``
times from a seeded generator, take the 2.5th and 97.5th percentiles (:func:`bootstrap_ci`,
also the report's intervals, over several seeds at once).
:func:`bootstrap_indices` is the resampling; :func:`macro_f1_from_indices` scores all
resamples at once from their confusion counts (the same formula as scikit-learn's
``f1_score(average="macro", labels=range(K), zero_division=0)``, checked in the tests).

Beyond the paper, for every split: macro AUC one-vs-rest and one-vs-one, and calibration
-- the top-label expected calibration error over 15 equal-width confidence bins (Guo et
al., ICML 2017), the multi-class Brier score and the negative log-likelihood. LDAM and LMF
train logits multiplied by a scale of 30, so their raw softmax is not calibrated like
cross-entropy's; these numbers say by how much. For binary tasks: sensitivity and
specificity of the positive class, and the metrics at a threshold chosen on validation
(Youden's J), never on test.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def bootstrap_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """Indices of ``n_resamples`` bootstrap resamples of ``n`` items.

    Args:
        n: number of items (e.g. test images), ``>= 1``.
        n_resamples: number of resamples, ``>= 1``.
        seed: seed of ``numpy.random.default_rng``; the same seed gives the same resamples.

    Returns:
        int64 array ``[n_resamples, n]`` of indices drawn uniformly with replacement.
    """
    if n < 1:
        raise ValueError(f"bootstrap needs at least one item, got n={n}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_resamples, n), dtype=np.int64)


def macro_f1_from_indices(
    y_true: np.ndarray, y_pred: np.ndarray, indices: np.ndarray, num_classes: int
) -> np.ndarray:
    """Macro-F1 of each resample, vectorised over resamples.

    For resample r with confusion counts TP_k, FP_k, FN_k:
    ``F1_k = 2 TP_k / (2 TP_k + FP_k + FN_k)`` (0 where the denominator is 0) and
    ``macro-F1_r = mean_k F1_k`` over all K classes.

    Args:
        y_true: ``[N]`` int labels in ``[0, K)``.
        y_pred: ``[N]`` int predictions in ``[0, K)``.
        indices: ``[R, M]`` resample indices into the N items.
        num_classes: K.

    Returns:
        float64 ``[R]``.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    indices = np.atleast_2d(indices)
    k = num_classes
    n_res = indices.shape[0]
    codes = y_true[indices] * k + y_pred[indices] + (np.arange(n_res)[:, None] * k * k)
    conf = np.bincount(codes.ravel(), minlength=n_res * k * k).reshape(n_res, k, k)
    tp = np.diagonal(conf, axis1=1, axis2=2).astype(np.float64)
    fn = conf.sum(axis=2) - tp  # row = true class
    fp = conf.sum(axis=1) - tp  # column = predicted class
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1.mean(axis=1)


BOOTSTRAP_METRICS = ("f1_macro", "accuracy")
_CHUNK = 256  # resamples scored at once (bounds the confusion-count arrays)


def check_labels(labels: np.ndarray, preds: np.ndarray, num_classes: int | None) -> int:
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
    k = check_labels(y, p, num_classes)
    idx = bootstrap_indices(y.size, n_boot, seed)
    stats = np.mean([resampled_metric(y, row, idx, k, metric) for row in p], axis=0)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def macro_rule_note() -> str:
    """The one rule of every macro metric, as written into ``report.json``."""
    return ("macro metrics average over all K classes (labels=range(K)); a class without test "
            "images scores recall 0 and F1 0, so balanced_accuracy equals recall_macro")


def positive_index(class_names: Sequence[str], train_counts: Sequence[int] | None = None,
                   positive_class: str | None = None) -> int:
    """The positive class of a binary task: ``positive_class`` by name, else the rarer training class
    (in medical sets the disease; ties: index 1)."""
    names = [str(c) for c in class_names]
    if len(names) != 2:
        raise ValueError(f"a positive class is defined for 2 classes, got {names}")
    if positive_class is not None:
        if str(positive_class) not in names:
            raise ValueError(f"positive_class {positive_class!r} is not one of the classes {names}")
        return names.index(str(positive_class))
    if train_counts is not None and len(train_counts) == 2 and train_counts[0] < train_counts[1]:
        return 0
    return 1


def youden_threshold(y_true: np.ndarray, probs: np.ndarray, positive: int) -> float | None:
    """The probability threshold of the positive class that maximises Youden's J = TPR - FPR.

    Chosen on validation (never test); ``None`` when validation lacks one of the two classes.
    Ties keep the highest threshold (the most specific operating point).
    """
    # slow import (sklearn ~2-3s): `lmfloss --help` loads this module
    from sklearn.metrics import roc_curve

    y = (np.asarray(y_true) == positive).astype(int)
    if y.min() == y.max():
        return None
    fpr, tpr, thresholds = roc_curve(y, np.asarray(probs, dtype=np.float64)[:, positive])
    # roc_curve's first threshold is +inf (nothing called positive); every other one is a score.
    j = (tpr - fpr)[1:]
    best = int(np.flatnonzero(j == j.max())[0]) + 1  # thresholds decrease: the first is the highest
    return float(thresholds[best])


def calibration_bins(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Top-label reliability bins: equal-width confidence bins ``[i/M, (i+1)/M)`` (the last
    closed), each with its count, mean confidence and accuracy (Guo et al., ICML 2017)."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    index = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(index, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, weights=confidence, minlength=n_bins) / count
        acc = np.bincount(index, weights=correct, minlength=n_bins) / count
    return {"count": count, "confidence": conf, "accuracy": acc, "edges": np.linspace(0.0, 1.0, n_bins + 1)}


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: ``sum_b (n_b / N) |acc_b - conf_b|`` over :func:`calibration_bins`."""
    bins = calibration_bins(y_true, probs, n_bins)
    used = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][used] - bins["confidence"][used])
    return float(np.sum(bins["count"][used] / bins["count"].sum() * gaps))


def brier_score(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Multi-class Brier score: ``mean_i sum_k (p_ik - [y_i = k])^2`` (0 best, 2 worst)."""
    probs = np.asarray(probs, dtype=np.float64)
    onehot = np.eye(probs.shape[1])[np.asarray(y_true)]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def negative_log_likelihood(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean ``-log p_{i, y_i}``, probabilities clipped at float64's epsilon (as scikit-learn's log_loss)."""
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    p = np.clip(probs[np.arange(len(probs)), np.asarray(y_true)], np.finfo(np.float64).eps, 1.0)
    return float(-np.mean(np.log(p)))


def selection_scores(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> dict[str, float | None]:
    """The validation scores one of which picks the best epoch (``TrainConfig.select_metric``):
    ``f1_macro``, ``accuracy``, ``balanced_accuracy`` (macro recall over all K) and ``auc``
    (macro one-vs-rest; ``None`` when a class is absent)."""
    # slow import (sklearn ~2-3s): `lmfloss --help` loads this module
    from sklearn.metrics import f1_score, recall_score, roc_auc_score

    y = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(probs).argmax(axis=1)
    labels = list(range(num_classes))
    return {
        "f1_macro": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": float(recall_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "auc": _auc(y, probs, num_classes, roc_auc_score),
    }


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    probs: np.ndarray | None,
    class_names: Sequence[str],
    n_bootstrap: int = 1000,
    seed: int = 23,
    *,
    positive: int | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Every metric of a split, as plain JSON-ready Python values.

    One rule for every macro metric (:func:`macro_rule_note`): the mean over all K classes,
    a class without images in this split scoring 0; such classes are listed in
    ``classes_without_support``.

    Args:
        y_true: ``[N]`` labels in ``[0, K)``.
        y_pred: ``[N]`` predicted labels (argmax of the logits).
        probs: ``[N, K]`` softmax probabilities (AUC, calibration), or None.
        class_names: K names in class-index order (keys of the per-class dicts).
        n_bootstrap: resamples of the macro-F1 interval (0 skips it: ``f1_macro_ci95`` None).
        seed: bootstrap seed.
        positive: binary tasks: index of the positive class (:func:`positive_index`); adds
            ``sensitivity`` and ``specificity``.
        threshold: binary tasks: a positive-class probability threshold chosen on validation
            (:func:`youden_threshold`); adds ``at_threshold`` with the metrics at it.

    Returns:
        ``n, accuracy, precision_macro, recall_macro, f1_macro, f1_weighted,
        balanced_accuracy, auc_macro_ovr, auc_macro_ovo`` (AUCs None where a class is
        absent), ``ece, brier, nll`` (None without probs), ``f1_per_class,
        precision_per_class, recall_per_class, support`` (name -> value),
        ``confusion_matrix`` (rows = true class), ``f1_macro_ci95`` ``[lo, hi]``,
        ``classes_without_support``; binary: ``positive_class, sensitivity, specificity``
        and, with ``threshold``, ``at_threshold``.
    """
    # slow import (sklearn ~2-3s): `lmfloss --help` loads this module
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    names = [str(c) for c in class_names]
    k = len(names)
    y_true, y_pred = _checked_predictions(y_true, y_pred, k)
    labels = list(range(k))
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    report: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(prec.mean()),
        "recall_macro": float(rec.mean()),
        "f1_macro": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        # Over all K classes, like recall_macro (scikit-learn's balanced_accuracy_score drops
        # classes absent from y_true, which would make the two disagree).
        "balanced_accuracy": float(rec.mean()),
        "auc_macro_ovr": _auc(y_true, probs, k, roc_auc_score),
        "auc_macro_ovo": _auc(y_true, probs, k, roc_auc_score, multi_class="ovo"),
        **_calibration_scores(y_true, probs),
        **_per_class_scores(names, prec, rec, f1, support),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "f1_macro_ci95": (
            list(bootstrap_ci(y_true, y_pred, num_classes=k, n_boot=n_bootstrap, seed=seed))
            if n_bootstrap > 0
            else None
        ),
    }
    if k == 2 and positive is not None:
        report.update(binary_metrics(y_true, probs, names, positive, threshold, recall=rec))
    return report


def _checked_predictions(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` and ``y_pred`` as int64 arrays, after checking they are 1-D, of equal, non-zero
    length and hold labels in ``[0, k)``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got {y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise ValueError("cannot compute metrics on an empty split (0 images)")
    for label, arr in (("y_true", y_true), ("y_pred", y_pred)):
        if arr.min() < 0 or arr.max() >= k:
            raise ValueError(f"{label} holds labels outside [0, {k}) for {k} class names: {sorted(set(arr.tolist()))}")
    return y_true, y_pred


def _calibration_scores(y_true: np.ndarray, probs: np.ndarray | None) -> dict[str, float | None]:
    """``ece``, ``brier`` and ``nll`` of the probabilities (each None without them)."""
    return {
        "ece": None if probs is None else expected_calibration_error(y_true, probs),
        "brier": None if probs is None else brier_score(y_true, probs),
        "nll": None if probs is None else negative_log_likelihood(y_true, probs),
    }


def _per_class_scores(names: list[str], prec: np.ndarray, rec: np.ndarray, f1: np.ndarray,
                      support: np.ndarray) -> dict[str, Any]:
    """The per-class dicts of :func:`classification_report` (name -> value) and the classes
    without support."""
    return {
        "f1_per_class": dict(zip(names, map(float, f1))),
        "precision_per_class": dict(zip(names, map(float, prec))),
        "recall_per_class": dict(zip(names, map(float, rec))),
        "support": dict(zip(names, map(int, support))),
        "classes_without_support": [n for n, s in zip(names, support) if s == 0],
    }


def binary_metrics(y_true: np.ndarray, probs: np.ndarray | None, class_names: Sequence[str], positive: int,
                   threshold: float | None = None, recall: np.ndarray | None = None) -> dict[str, Any]:
    """``positive_class``, ``sensitivity``, ``specificity`` (of the argmax predictions) and,
    with a ``threshold`` on the positive class's probability, ``at_threshold``: accuracy,
    sensitivity, specificity, macro-F1 and balanced accuracy of ``p_positive >= threshold``."""
    # slow import (sklearn ~2-3s): `lmfloss --help` loads this module
    from sklearn.metrics import precision_recall_fscore_support

    labels = [0, 1]
    if recall is None:
        recall = precision_recall_fscore_support(y_true, np.asarray(probs).argmax(axis=1), labels=labels,
                                                 zero_division=0)[1]
    out: dict[str, Any] = {
        "positive_class": str(class_names[positive]),
        "sensitivity": float(recall[positive]),
        "specificity": float(recall[1 - positive]),
    }
    if threshold is not None and probs is not None:
        pred_t = np.where(np.asarray(probs)[:, positive] >= threshold, positive, 1 - positive)
        _, rec_t, f1_t, _ = precision_recall_fscore_support(y_true, pred_t, labels=labels, zero_division=0)
        out["at_threshold"] = {
            "threshold": float(threshold),
            "accuracy": float(np.mean(pred_t == y_true)),
            "sensitivity": float(rec_t[positive]),
            "specificity": float(rec_t[1 - positive]),
            "f1_macro": float(f1_t.mean()),
            "balanced_accuracy": float(rec_t.mean()),
        }
    return out


def _auc(y_true: np.ndarray, probs: np.ndarray | None, k: int, roc_auc_score: Any,
         multi_class: str = "ovr") -> float | None:
    """Macro one-vs-rest (or one-vs-one) ROC AUC, or None where scikit-learn cannot define it."""
    if probs is None:
        return None
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(y_true), k):
        raise ValueError(f"probs must have shape [N, K] = [{len(y_true)}, {k}], got {list(probs.shape)}")
    if len(np.unique(y_true)) < k:
        logger.debug("auc undefined: not every class occurs in this split")
        return None
    if k == 2:
        return float(roc_auc_score(y_true, probs[:, 1]))
    # Softmax rows sum to 1 up to float error; renormalise so scikit-learn's check passes.
    probs = probs / probs.sum(axis=1, keepdims=True)
    return float(roc_auc_score(y_true, probs, multi_class=multi_class, average="macro", labels=list(range(k))))
