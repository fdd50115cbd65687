"""Metrics of multi-label tasks, from scikit-learn, over every label -- and their bootstrap.

A split is scored from ``y_true`` ``[N, L]`` (0/1) and the sigmoid probabilities ``probs``
``[N, L]``. Per label: ROC AUC, average precision (AP), precision/recall/F1 at 0.5 and at a
threshold chosen on **validation** (the F1-maximising one; never test). Over labels: macro
and micro AUC, mAP (the mean AP: the measure of the CXR-LT challenges), macro and micro F1,
subset accuracy (every label right) and Hamming loss; calibration over all ``N x L``
probabilities (ECE over 15 bins, Brier, NLL); and the ODIR-2019 challenge's score
(:func:`odir_score`).

One rule for every macro average (:func:`macro_rule_note`): a label with no positive image
in the split has no AUC, AP or recall -- it is **listed** in ``labels_without_positives`` and
left out of the macro averages, never silently dropped and never scored 0 (torchmetrics
scores it AUROC 0, its issue #2494, which lowers macro AUC exactly on the tail labels).
Likewise a label with no negative image has no AUC (``labels_without_negatives``).

Unknown entries: a label array may hold ``-1`` (or ``NaN``) where a label is not known for an
image (CheXpert's U-Ignore, a finding a dataset does not annotate). Every per-label metric is
computed over the images where that label is known -- scikit-learn on those rows only -- and
the report says how many that is (``known_per_label``). Across labels: micro AUC, micro F1,
Hamming loss, calibration and the ODIR score pool the known ``(image, label)`` entries; subset
accuracy is the share of images (with at least one known label) whose every *known* label is
right. The bootstrap weighs an unknown entry 0 in every resample.

Bootstrap: resampling images with replacement is weighting each image by how often it was
drawn, so AP and AUC of all resamples are computed at once from weighted cumulative counts
(:func:`resampled_ap`, :func:`resampled_auc`; equal to scikit-learn's with ``sample_weight``,
checked in the tests) -- a 95 % interval of mAP over 1,000 resamples takes milliseconds.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from lmfloss.metrics import bootstrap_indices

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5  # the fixed rule (and ODIR-2019's)
SELECTION_METRICS = ("map", "auc")
UNKNOWN = -1  # the label arrays' code of an unknown entry (the data layer's and MultiLabel's)


def macro_rule_note() -> str:
    """The rule of every multi-label macro average, as written into ``report.json``."""
    return ("macro metrics average over the labels with at least one positive image in the split "
            "(AUC: and one negative); the others are listed in labels_without_positives / "
            "labels_without_negatives, never scored 0; each label is scored over the images where it "
            "is known (known_per_label), unknown entries (-1) are left out of every metric")


def check_multilabel(y_true: Any, probs: Any, num_labels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(y [N, L] int64, probs [N, L] float64)`` with ``-1`` (:data:`UNKNOWN`) where an entry is
    unknown (a ``NaN`` label becomes ``-1``), or ValueError naming the problem."""
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if y.ndim != 2 or p.shape != y.shape:
        raise ValueError(f"multi-label targets and probabilities must both be [N, L]; got {y.shape} and {p.shape}")
    if num_labels is not None and y.shape[1] != num_labels:
        raise ValueError(f"expected {num_labels} labels, got {y.shape[1]}")
    if y.shape[0] == 0:
        raise ValueError("cannot compute metrics on an empty split (0 images)")
    if y.dtype.kind == "f":
        y = np.where(np.isnan(y), UNKNOWN, y)
    if not np.isin(y, (0, 1, UNKNOWN)).all():
        raise ValueError("multi-label targets must be 0 or 1 (-1 where unknown), got values "
                         f"{sorted(set(np.unique(y).tolist()) - {0, 1, UNKNOWN})}")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must be finite and in [0, 1]")
    return y.astype(np.int64), p


def known_entries(y: np.ndarray) -> np.ndarray:
    """Bool ``[N, L]``: where the label is known (not :data:`UNKNOWN`)."""
    return np.asarray(y) != UNKNOWN


def known_per_label(y_true: Any) -> list[int]:
    """How many images each label is known for: the entries its metrics rest on."""
    return known_entries(y_true).sum(axis=0).astype(int).tolist()


# --------------------------------------------------------------------------- thresholds
def choose_thresholds(y_true: Any, probs: Any) -> list[float]:
    """Per label, the probability threshold that maximises F1 on these (validation) images.

    Ties keep the highest threshold (the fewest false positives). Only the images where the
    label is known count. A label without a known positive gets :data:`DEFAULT_THRESHOLD`
    (no F1 to maximise).
    """
    # slow import (sklearn ~2-3s): `lmfloss --help` loads this module
    from sklearn.metrics import precision_recall_curve

    y, p = check_multilabel(y_true, probs)
    known = known_entries(y)
    out = []
    for j in range(y.shape[1]):
        rows = known[:, j]
        if y[rows, j].sum() == 0:
            out.append(DEFAULT_THRESHOLD)
            continue
        precision, recall, thresholds = precision_recall_curve(y[rows, j], p[rows, j])
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
        best = np.flatnonzero(f1 == f1.max())
        out.append(float(thresholds[best[-1]]))  # thresholds ascend: the last is the highest
    return out


# ------------------------------------------------------------------- vectorised bootstrap
def _weights(indices: np.ndarray, n: int) -> np.ndarray:
    """``[R, N]`` multiplicity of each item in each resample (``indices`` ``[R, M]``)."""
    indices = np.atleast_2d(indices)
    rows = np.repeat(np.arange(indices.shape[0]), indices.shape[1])
    w = np.zeros((indices.shape[0], n), dtype=np.float64)
    np.add.at(w, (rows, indices.ravel()), 1.0)
    return w


def _grouped(y: np.ndarray, score: np.ndarray, w: np.ndarray, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """Weighted positive and negative counts per group of tied scores, ``[R, G]`` each, the
    groups in ``descending`` (or ascending) order of the score. An unknown entry (``y = -1``)
    weighs 0 in every resample."""
    known = y != UNKNOWN
    w = w * known
    y = np.where(known, y, 0)
    order = np.argsort(-score if descending else score, kind="stable")
    s, ys, ws = score[order], y[order].astype(np.float64), w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(ws * ys, starts, axis=1)
    neg = np.add.reduceat(ws * (1 - ys), starts, axis=1)
    return pos, neg


def resampled_ap(y: np.ndarray, score: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Average precision of one label on each resample, ``[R]`` (NaN where a resample has no
    known positive; unknown entries, ``y = -1``, weigh 0): scikit-learn's ``average_precision_score`` with the resample's multiplicities as
    ``sample_weight``, ``AP = Σ_k (R_k - R_{k-1}) P_k`` over thresholds in descending order."""
    pos, neg = _grouped(np.asarray(y), np.asarray(score, dtype=np.float64), _weights(indices, len(y)), True)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    total = tp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall_step = pos / total
        ap = np.sum(recall_step * precision, axis=1)
    return np.where(total[:, 0] > 0, ap, np.nan)


def resampled_auc(y: np.ndarray, score: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """ROC AUC of one label on each resample, ``[R]`` (NaN without both known classes; unknown
    entries weigh 0): the weighted
    Mann-Whitney statistic, ties counting one half -- scikit-learn's ``roc_auc_score`` with
    ``sample_weight``."""
    pos, neg = _grouped(np.asarray(y), np.asarray(score, dtype=np.float64), _weights(indices, len(y)), False)
    below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each group
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.sum(pos * (below + 0.5 * neg), axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))
    return np.where((pos.sum(axis=1) > 0) & (neg.sum(axis=1) > 0), auc, np.nan)


def resampled_macro(y_true: Any, probs: Any, indices: np.ndarray, metric: str = "map") -> np.ndarray:
    """mAP (``"map"``) or macro AUC (``"auc"``) of each resample, ``[R]``: the mean over the
    labels defined in that resample (NaN when none is)."""
    if metric not in SELECTION_METRICS:
        raise ValueError(f"metric must be one of {list(SELECTION_METRICS)}, got {metric!r}")
    y, p = check_multilabel(y_true, probs)
    fn = resampled_ap if metric == "map" else resampled_auc
    per_label = np.stack([fn(y[:, j], p[:, j], indices) for j in range(y.shape[1])], axis=1)
    with warnings.catch_warnings():  # a resample without any defined label: NaN, said by the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(per_label, axis=1)


def bootstrap_ci(y_true: Any, probs: Any, *, metric: str = "map", n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of mAP or macro AUC over images (``None`` if undefined).

    ``probs`` may be ``[S, N, L]`` (several runs on the same images, e.g. seeds): each
    resample scores every run and averages, giving the interval of the seed-mean metric.
    """
    y = np.asarray(y_true)
    stack = np.asarray(probs, dtype=np.float64)
    stack = stack[None] if stack.ndim == 2 else stack
    idx = bootstrap_indices(y.shape[0], n_boot, seed)
    values = np.mean([resampled_macro(y, p, idx, metric) for p in stack], axis=0)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# ------------------------------------------------------------------------------ scores
def odir_score(y_true: Any, probs: Any, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float | None]:
    """The ODIR-2019 challenge's score as its evaluation script computes it: every patient's 8
    labels flattened into one binary problem, ``(Cohen's kappa + F1 + ROC AUC) / 3`` with kappa
    and F1 of the predictions ``p > 0.5`` (strictly) and F1 *micro*-averaged over both classes
    (on a flattened binary problem that is the share of correct 0/1 decisions, not the positive
    class's F1), the AUC of the probabilities. Computed for any multi-label split (it is ODIR's
    definition; the name says so), over the known entries."""
    # slow import (sklearn ~2-3s): `lmfloss --help` loads this module
    from sklearn.metrics import cohen_kappa_score, f1_score, roc_auc_score

    y, p = check_multilabel(y_true, probs)
    known = known_entries(y)
    flat_y, flat_p = y[known], p[known]
    pred = (flat_p > threshold).astype(np.int64)
    kappa = float(cohen_kappa_score(flat_y, pred)) if len(np.unique(np.r_[flat_y, pred])) > 1 else None
    f1 = float(f1_score(flat_y, pred, average="micro")) if flat_y.size else None
    auc = float(roc_auc_score(flat_y, flat_p)) if len(np.unique(flat_y)) == 2 else None
    parts = [kappa, f1, auc]
    final = None if any(v is None for v in parts) else float(np.mean(parts))
    return {"kappa": kappa, "f1": f1, "auc": auc, "final": final, "threshold": float(threshold)}


def _per_label_ranking(y: np.ndarray, p: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """Per label, ROC AUC and AP over the images where it is known (``None``: undefined)."""
    # slow import (sklearn ~2-3s): `lmfloss --help` loads this module
    from sklearn.metrics import average_precision_score, roc_auc_score

    known = known_entries(y)
    aucs, aps = [], []
    for j in range(y.shape[1]):
        yj, pj = y[known[:, j], j], p[known[:, j], j]
        positives = int(yj.sum())
        both = 0 < positives < yj.size
        aucs.append(float(roc_auc_score(yj, pj)) if both else None)
        aps.append(float(average_precision_score(yj, pj)) if positives else None)
    return aucs, aps


def decision_counts(y: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per label, over its known entries: ``tp, fp, fn, tn`` (``[L]`` int64 each) and the
    ``precision, recall, f1`` they give (0 where undefined: scikit-learn's ``zero_division=0``)."""
    known = known_entries(y)
    tp = ((pred == 1) & (y == 1)).sum(axis=0)
    fp = ((pred == 1) & (y == 0)).sum(axis=0)
    fn = ((pred == 0) & (y == 1)).sum(axis=0)
    tn = ((pred == 0) & (y == 0) & known).sum(axis=0)

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros(a.shape, dtype=np.float64), where=b > 0)

    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn)}


def subset_accuracy(y: np.ndarray, pred: np.ndarray) -> float | None:
    """The share of images whose every **known** label is decided right, over the images with at
    least one known label (``None`` if none has)."""
    known = known_entries(y)
    rows = known.any(axis=1)
    if not rows.any():
        return None
    return float(np.mean(((pred == y) | ~known).all(axis=1)[rows]))


def _mean_defined(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def selection_scores(y_true: Any, probs: Any) -> dict[str, float | None]:
    """The validation scores one of which picks the best epoch of a multi-label run:
    ``map``, ``auc`` (macro), ``f1_macro`` (at 0.5, over labels with a known positive) and
    ``accuracy`` (subset accuracy at 0.5 over the known labels, :func:`subset_accuracy`)."""
    y, p = check_multilabel(y_true, probs)
    aucs, aps = _per_label_ranking(y, p)
    pred = (p >= DEFAULT_THRESHOLD).astype(np.int64)
    with_pos = (y == 1).any(axis=0)
    f1 = decision_counts(y, pred)["f1"]
    return {
        "map": _mean_defined(aps),
        "auc": _mean_defined(aucs),
        "f1_macro": float(np.mean(f1[with_pos])) if with_pos.any() else None,
        "accuracy": subset_accuracy(y, pred),
    }


def calibration_bins(y_true: Any, probs: Any, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Reliability bins of all ``N x L`` probabilities as binary forecasts: equal-width bins of
    ``p`` (``[i/M, (i+1)/M)``, the last closed), each with its count, mean ``p`` and share of
    positives -- over the known entries."""
    y, p = check_multilabel(y_true, probs)
    known = known_entries(y)
    flat_y, flat_p = y[known].astype(np.float64), p[known]
    index = np.minimum((flat_p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(index, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, weights=flat_p, minlength=n_bins) / count
        freq = np.bincount(index, weights=flat_y, minlength=n_bins) / count
    return {"count": count, "confidence": conf, "frequency": freq, "edges": np.linspace(0.0, 1.0, n_bins + 1)}


def calibration_scores(y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> dict[str, float | None]:
    """ECE of the known entries' probabilities as binary forecasts (:func:`calibration_bins`),
    Brier (mean squared error) and NLL (mean binary cross-entropy, ``p`` clipped at eps), over
    the known entries (``None`` each when no entry is known)."""
    y, p = check_multilabel(y, p)
    known = known_entries(y)
    if not known.any():
        return {"ece": None, "brier": None, "nll": None}
    bins = calibration_bins(y, p, n_bins)
    used = bins["count"] > 0
    flat_y, flat_p = y[known].astype(np.float64), p[known]
    eps = np.finfo(np.float64).eps
    clipped = np.clip(flat_p, eps, 1 - eps)
    return {
        "ece": float(np.sum(bins["count"][used] / bins["count"].sum()
                            * np.abs(bins["frequency"][used] - bins["confidence"][used]))),
        "brier": float(np.mean((flat_p - flat_y) ** 2)),
        "nll": float(-np.mean(flat_y * np.log(clipped) + (1 - flat_y) * np.log1p(-clipped))),
    }


def multilabel_report(
    y_true: Any,
    probs: Any,
    label_names: Sequence[str],
    *,
    thresholds: Sequence[float] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 23,
) -> dict[str, Any]:
    """Every metric of a multi-label split, as JSON-ready Python values.

    Args:
        y_true: ``[N, L]`` 0/1, ``-1`` where unknown (left out of every metric).
        probs: ``[N, L]`` sigmoid probabilities.
        label_names: ``L`` names in label-index order (keys of the per-label dicts).
        thresholds: per-label thresholds chosen on **validation** (:func:`choose_thresholds`);
            adds the ``*_at_threshold`` metrics. ``None`` on validation itself.
        n_bootstrap: resamples of the ``map_ci95`` / ``auc_macro_ci95`` intervals (0: none).
        seed: bootstrap seed.

    Returns:
        ``task, n, map, auc_macro, auc_micro, f1_macro, f1_micro, precision_macro,
        recall_macro, subset_accuracy, hamming_loss, ece, brier, nll`` (macro averages by
        :func:`macro_rule_note`), ``ap_per_label, auc_per_label, f1_per_label,
        precision_per_label, recall_per_label, support`` (known positives), ``negatives`` (known
        negatives), ``known_per_label`` (the images each label is scored over),
        ``labels_without_positives, labels_without_negatives, confusion_per_label``
        (``[[tn, fp], [fn, tp]]`` at 0.5), ``odir_score``, ``map_ci95, auc_macro_ci95``;
        with ``thresholds``: ``thresholds, f1_per_label_at_threshold, f1_macro_at_threshold``.
    """
    names = [str(n) for n in label_names]
    y, p = check_multilabel(y_true, probs, len(names))
    positives, negatives = (y == 1).sum(axis=0), (y == 0).sum(axis=0)
    with_pos = positives > 0
    report: dict[str, Any] = {"task": "multilabel", "n": int(y.shape[0]), **_ranking_scores(y, p, names),
                              **_decision_scores(y, (p >= DEFAULT_THRESHOLD).astype(np.int64), names)}
    report.update({
        **calibration_scores(y, p),
        "support": {n: int(positives[j]) for j, n in enumerate(names)},
        "negatives": {n: int(negatives[j]) for j, n in enumerate(names)},
        "known_per_label": dict(zip(names, known_per_label(y))),
        "labels_without_positives": [n for j, n in enumerate(names) if positives[j] == 0],
        "labels_without_negatives": [n for j, n in enumerate(names) if negatives[j] == 0],
        "odir_score": odir_score(y, p),
        "macro_rule": macro_rule_note(),
    })
    if report["labels_without_positives"]:
        logger.info("labels without a positive image in this split (left out of the macro averages, listed in "
                    "the report): %s", ", ".join(report["labels_without_positives"]))
    for key, metric in (("map_ci95", "map"), ("auc_macro_ci95", "auc")):
        ci = bootstrap_ci(y, p, metric=metric, n_boot=n_bootstrap, seed=seed) if n_bootstrap > 0 else None
        report[key] = list(ci) if ci else None
    if thresholds is not None:
        t = np.asarray(thresholds, dtype=np.float64)
        if t.shape != (len(names),):
            raise ValueError(f"thresholds must have one value per label ({len(names)}), got {t.shape}")
        f1_t = decision_counts(y, (p >= t).astype(np.int64))["f1"]
        report["thresholds"] = dict(zip(names, map(float, t)))
        report["f1_per_label_at_threshold"] = {n: (float(f1_t[j]) if with_pos[j] else None)
                                               for j, n in enumerate(names)}
        report["f1_macro_at_threshold"] = float(np.mean(f1_t[with_pos])) if with_pos.any() else None
    return report


def _ranking_scores(y: np.ndarray, p: np.ndarray, names: list[str]) -> dict[str, Any]:
    """mAP, macro and micro AUC and the per-label AP and AUC, over the known entries."""
    # slow import (sklearn ~2-3s): `lmfloss --help` loads this module
    from sklearn.metrics import roc_auc_score

    aucs, aps = _per_label_ranking(y, p)
    known = known_entries(y)
    flat_y, flat_p = y[known], p[known]
    return {
        "map": _mean_defined(aps),
        "auc_macro": _mean_defined(aucs),
        "auc_micro": float(roc_auc_score(flat_y, flat_p)) if 0 < flat_y.sum() < flat_y.size else None,
        "ap_per_label": dict(zip(names, aps)),
        "auc_per_label": dict(zip(names, aucs)),
    }


def _decision_scores(y: np.ndarray, pred: np.ndarray, names: list[str]) -> dict[str, Any]:
    """The 0/1 decisions' scores at 0.5, per label over its known entries (macro over labels
    with a known positive), micro F1 and Hamming loss over every known entry."""
    c = decision_counts(y, pred)
    with_pos = (y == 1).any(axis=0)
    tp, fp, fn = int(c["tp"].sum()), int(c["fp"].sum()), int(c["fn"].sum())
    known = int(known_entries(y).sum())

    def macro(values: np.ndarray) -> float | None:
        return float(np.mean(values[with_pos])) if with_pos.any() else None

    return {
        "f1_macro": macro(c["f1"]),
        "f1_micro": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "precision_macro": macro(c["precision"]),
        "recall_macro": macro(c["recall"]),
        "subset_accuracy": subset_accuracy(y, pred),
        "hamming_loss": (fp + fn) / known if known else None,
        "f1_per_label": {n: (float(c["f1"][j]) if with_pos[j] else None) for j, n in enumerate(names)},
        "precision_per_label": {n: float(c["precision"][j]) for j, n in enumerate(names)},
        "recall_per_label": {n: (float(c["recall"][j]) if with_pos[j] else None) for j, n in enumerate(names)},
        "confusion_per_label": {n: [[int(c["tn"][j]), int(c["fp"][j])], [int(c["fn"][j]), int(c["tp"][j])]]
                                for j, n in enumerate(names)},
    }
