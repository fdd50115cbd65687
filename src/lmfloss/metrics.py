"""Evaluation metrics of the paper, computed with scikit-learn, plus a bootstrap CI.

The paper ("Evaluation metrics") reports accuracy, macro precision, macro recall and
macro F1 (the arithmetic mean of the per-class F1 scores, Opitz & Burst 2019). Every
number here comes from scikit-learn with ``labels=range(K)`` (a class absent from a split
still counts, with score 0) and ``zero_division=0``.

The 95% interval of macro-F1 is a percentile bootstrap over test images (Efron &
Tibshirani 1993): resample the N (label, prediction) pairs with replacement
``n_resamples`` times from a seeded generator, take the 2.5th and 97.5th percentiles.
:func:`bootstrap_indices` is the resampling; :func:`macro_f1_from_indices` scores all
resamples at once from their confusion counts (the same formula as scikit-learn's
``f1_score(average="macro", labels=range(K), zero_division=0)``, checked in the tests).
"""

from __future__ import annotations

import logging
import warnings
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


def bootstrap_f1_ci(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    num_classes: int,
    n_resamples: int = 1000,
    seed: int = 23,
    level: float = 0.95,
) -> list[float]:
    """Percentile bootstrap interval of macro-F1: ``[lo, hi]`` at ``level`` (default 95%)."""
    y_true = np.asarray(y_true)
    idx = bootstrap_indices(len(y_true), n_resamples, seed)
    scores = macro_f1_from_indices(y_true, np.asarray(y_pred), idx, num_classes)
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(scores, [tail, 100 - tail])
    return [float(lo), float(hi)]


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    probs: np.ndarray | None,
    class_names: Sequence[str],
    n_bootstrap: int = 1000,
    seed: int = 23,
) -> dict[str, Any]:
    """Every metric of a split, as plain JSON-ready Python values.

    Args:
        y_true: ``[N]`` labels in ``[0, K)``.
        y_pred: ``[N]`` predicted labels (argmax of the logits).
        probs: ``[N, K]`` softmax probabilities for ``auc_macro_ovr``, or None.
        class_names: K names in class-index order (keys of the per-class dicts).
        n_bootstrap: resamples of the macro-F1 interval (0 skips it: ``f1_macro_ci95`` None).
        seed: bootstrap seed.

    Returns:
        ``accuracy, precision_macro, recall_macro, f1_macro, f1_weighted,
        balanced_accuracy, auc_macro_ovr`` (None where undefined: a class absent from
        ``y_true``), ``f1_per_class, precision_per_class, recall_per_class, support``
        (dicts name -> value), ``confusion_matrix`` (K x K list, rows = true class),
        ``f1_macro_ci95`` ``[lo, hi]``, and ``n``.
    """
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    names = [str(c) for c in class_names]
    k = len(names)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got {y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise ValueError("cannot compute metrics on an empty split (0 images)")
    for label, arr in (("y_true", y_true), ("y_pred", y_pred)):
        if arr.min() < 0 or arr.max() >= k:
            raise ValueError(f"{label} holds labels outside [0, {k}) for {k} class names: {sorted(set(arr.tolist()))}")
    labels = list(range(k))
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    with warnings.catch_warnings():
        # balanced_accuracy warns when a class of y_pred is absent from y_true.
        warnings.simplefilter("ignore")
        balanced = balanced_accuracy_score(y_true, y_pred)
    report: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(prec.mean()),
        "recall_macro": float(rec.mean()),
        "f1_macro": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "balanced_accuracy": float(balanced),
        "auc_macro_ovr": _auc(y_true, probs, k, roc_auc_score),
        "f1_per_class": dict(zip(names, map(float, f1))),
        "precision_per_class": dict(zip(names, map(float, prec))),
        "recall_per_class": dict(zip(names, map(float, rec))),
        "support": dict(zip(names, map(int, support))),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "f1_macro_ci95": (
            bootstrap_f1_ci(y_true, y_pred, k, n_resamples=n_bootstrap, seed=seed)
            if n_bootstrap > 0
            else None
        ),
    }
    return report


def _auc(y_true: np.ndarray, probs: np.ndarray | None, k: int, roc_auc_score: Any) -> float | None:
    """Macro one-vs-rest ROC AUC, or None where scikit-learn cannot define it."""
    if probs is None:
        return None
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(y_true), k):
        raise ValueError(f"probs must have shape [N, K] = [{len(y_true)}, {k}], got {list(probs.shape)}")
    if len(np.unique(y_true)) < k:
        logger.debug("auc_macro_ovr undefined: not every class occurs in this split")
        return None
    if k == 2:
        return float(roc_auc_score(y_true, probs[:, 1]))
    # Softmax rows sum to 1 up to float error; renormalise so scikit-learn's check passes.
    probs = probs / probs.sum(axis=1, keepdims=True)
    return float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=list(range(k))))
