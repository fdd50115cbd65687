"""Multi-label metrics against scikit-learn (per label, macro, micro, weighted bootstrap) and
the ODIR-2019 score's definition; labels without positives are listed, never scored 0."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    cohen_kappa_score,
    f1_score,
    hamming_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from lmfloss import multilabel_metrics as M
from lmfloss.metrics import bootstrap_indices

NAMES = ["N", "D", "G", "C", "A"]


def _data(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(NAMES))) < [0.5, 0.3, 0.1, 0.05, 0.2]).astype(np.int64)
    y[:2, 3] = 1  # label C has a few positives
    probs = np.clip(0.35 * y + rng.random(y.shape) * 0.65, 0, 1)
    probs[5:9] = probs[0:4]  # ties across images
    return y, np.round(probs, 2)


def test_report_equals_sklearn_over_every_label():
    y, p = _data()
    r = M.multilabel_report(y, p, NAMES, n_bootstrap=0)
    aps = [average_precision_score(y[:, j], p[:, j]) for j in range(len(NAMES))]
    aucs = [roc_auc_score(y[:, j], p[:, j]) for j in range(len(NAMES))]
    assert r["map"] == pytest.approx(np.mean(aps))
    assert r["auc_macro"] == pytest.approx(roc_auc_score(y, p, average="macro"))
    assert r["auc_micro"] == pytest.approx(roc_auc_score(y, p, average="micro"))
    assert [r["ap_per_label"][n] for n in NAMES] == pytest.approx(aps)
    assert [r["auc_per_label"][n] for n in NAMES] == pytest.approx(aucs)
    pred = (p >= 0.5).astype(int)
    assert r["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert r["f1_micro"] == pytest.approx(f1_score(y, pred, average="micro", zero_division=0))
    assert r["subset_accuracy"] == pytest.approx(np.mean((pred == y).all(axis=1)))
    assert r["hamming_loss"] == pytest.approx(hamming_loss(y, pred))
    assert r["support"] == {n: int(y[:, j].sum()) for j, n in enumerate(NAMES)}
    assert r["labels_without_positives"] == []


def test_a_label_without_positives_is_listed_and_left_out_not_scored_zero():
    y, p = _data()
    y[:, 2] = 0  # G has no positive in this split
    r = M.multilabel_report(y, p, NAMES, n_bootstrap=0)
    assert r["labels_without_positives"] == ["G"]
    assert r["auc_per_label"]["G"] is None and r["ap_per_label"]["G"] is None and r["f1_per_label"]["G"] is None
    kept = [0, 1, 3, 4]
    assert r["auc_macro"] == pytest.approx(np.mean([roc_auc_score(y[:, j], p[:, j]) for j in kept]))
    assert r["map"] == pytest.approx(np.mean([average_precision_score(y[:, j], p[:, j]) for j in kept]))
    # torchmetrics' convention (AUROC 0 for such a label) would give a lower macro AUC:
    assert r["auc_macro"] > np.mean([roc_auc_score(y[:, j], p[:, j]) for j in kept] + [0.0])


def test_odir_score_is_the_challenges_evaluation_script():
    """ODIR-2019's script: flatten, ``pr > 0.5``, ``f1_score(..., average='micro')``, kappa, AUC."""
    y, p = _data()
    p[:3] = 0.5  # exactly at the threshold: the challenge counts it negative
    s = M.odir_score(y, p)
    gt, pr = y.flatten(), p.flatten()
    kappa = cohen_kappa_score(gt, pr > 0.5)
    f1 = f1_score(gt, pr > 0.5, average="micro")
    auc = roc_auc_score(gt, pr)
    assert (s["kappa"], s["f1"], s["auc"]) == pytest.approx((kappa, f1, auc))
    assert s["final"] == pytest.approx((kappa + f1 + auc) / 3.0)
    assert s["f1"] == pytest.approx(np.mean(gt == (pr > 0.5)))  # micro-F1 of a binary problem: accuracy


def test_resampled_ap_and_auc_equal_sklearn_with_sample_weight():
    y, p = _data(n=50, seed=3)
    idx = bootstrap_indices(len(y), 6, seed=1)
    for j in range(len(NAMES)):
        ap = M.resampled_ap(y[:, j], p[:, j], idx)
        auc = M.resampled_auc(y[:, j], p[:, j], idx)
        for r in range(len(idx)):
            w = np.bincount(idx[r], minlength=len(y)).astype(float)
            if (w * y[:, j]).sum() == 0:
                assert np.isnan(ap[r])
                continue
            assert ap[r] == pytest.approx(average_precision_score(y[:, j], p[:, j], sample_weight=w))
            if (w * (1 - y[:, j])).sum() > 0:
                assert auc[r] == pytest.approx(roc_auc_score(y[:, j], p[:, j], sample_weight=w))


def test_bootstrap_interval_brackets_the_observed_map():
    y, p = _data(n=120, seed=5)
    lo, hi = M.bootstrap_ci(y, p, metric="map", n_boot=300, seed=0)
    observed = M.multilabel_report(y, p, NAMES, n_bootstrap=0)["map"]
    assert lo < observed < hi
    assert M.bootstrap_ci(y, p, metric="map", n_boot=300, seed=0) == (lo, hi)  # seeded


def test_thresholds_maximise_validation_f1_and_apply_to_test():
    y, p = _data(n=80, seed=7)
    thresholds = M.choose_thresholds(y, p)
    for j in range(len(NAMES)):
        best = max(f1_score(y[:, j], (p[:, j] >= t).astype(int), zero_division=0) for t in np.unique(p[:, j]))
        assert f1_score(y[:, j], (p[:, j] >= thresholds[j]).astype(int)) == pytest.approx(best)
    r = M.multilabel_report(y, p, NAMES, thresholds=thresholds, n_bootstrap=0)
    assert r["f1_macro_at_threshold"] >= r["f1_macro"]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="0 or 1"):
        M.multilabel_report(np.full((3, 2), 2), np.zeros((3, 2)), ["a", "b"])
    with pytest.raises(ValueError, match=r"\[N, L\]"):
        M.multilabel_report(np.zeros((3, 2)), np.zeros((3, 3)), ["a", "b"])


# ------------------------------------------- U-Ignore: -1 = unknown, left out of every metric
def _with_unknowns(n: int = 90, seed: int = 11, share: float = 0.25):
    """``_data`` with -1 written into random places; label C's positives are all unknown (so it
    has no known positive) and label A is unknown on every image but two."""
    y, p = _data(n=n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    y = np.where(rng.random(y.shape) < share, -1, y)
    y[y[:, 3] == 1, 3] = -1
    y[2:, 4] = -1
    y[:2, 4] = [0, 1]
    return y, p


def test_u_ignore_report_equals_sklearn_on_each_labels_kept_rows():
    y, p = _with_unknowns()
    r = M.multilabel_report(y, p, NAMES, n_bootstrap=0)
    pred = (p >= 0.5).astype(int)
    aps, aucs = [], []
    for j, name in enumerate(NAMES):
        rows = y[:, j] != -1
        yj, pj, dj = y[rows, j], p[rows, j], pred[rows, j]
        assert r["known_per_label"][name] == rows.sum()
        assert (r["support"][name], r["negatives"][name]) == (yj.sum(), (yj == 0).sum())
        tn, fp, fn, tp = np.bincount(2 * yj + dj, minlength=4)
        assert r["confusion_per_label"][name] == [[tn, fp], [fn, tp]]
        assert r["precision_per_label"][name] == pytest.approx(precision_score(yj, dj, zero_division=0))
        if yj.sum() == 0:
            assert r["ap_per_label"][name] is None and r["f1_per_label"][name] is None
            continue
        assert r["f1_per_label"][name] == pytest.approx(f1_score(yj, dj, zero_division=0))
        assert r["recall_per_label"][name] == pytest.approx(recall_score(yj, dj, zero_division=0))
        aps.append(average_precision_score(yj, pj))
        assert r["ap_per_label"][name] == pytest.approx(aps[-1])
        if 0 < yj.sum() < yj.size:
            aucs.append(roc_auc_score(yj, pj))
            assert r["auc_per_label"][name] == pytest.approx(aucs[-1])
    assert r["labels_without_positives"] == ["C"] and r["known_per_label"]["A"] == 2
    assert r["map"] == pytest.approx(np.mean(aps)) and r["auc_macro"] == pytest.approx(np.mean(aucs))
    known = y != -1
    assert r["auc_micro"] == pytest.approx(roc_auc_score(y[known], p[known]))
    assert r["f1_micro"] == pytest.approx(f1_score(y[known], pred[known]))
    assert r["hamming_loss"] == pytest.approx(np.mean(y[known] != pred[known]))
    assert r["brier"] == pytest.approx(brier_score_loss(y[known], p[known]))
    # subset accuracy: an image is right when its every known label is; images with none are left out
    rows = [i for i in range(len(y)) if known[i].any()]
    assert r["subset_accuracy"] == pytest.approx(np.mean([(y[i][known[i]] == pred[i][known[i]]).all() for i in rows]))
    # the pooled metrics equal those of the known entries as one fully known label
    flat_y, flat_p = y[known][:, None], p[known][:, None]
    assert {k: r[k] for k in ("ece", "brier", "nll")} == pytest.approx(M.calibration_scores(flat_y, flat_p))
    assert r["odir_score"] == M.odir_score(flat_y, flat_p)
    # selection scores (the epoch's) agree with the report
    s = M.selection_scores(y, p)
    assert (s["map"], s["auc"], s["f1_macro"], s["accuracy"]) == pytest.approx(
        (r["map"], r["auc_macro"], r["f1_macro"], r["subset_accuracy"]))


def test_u_ignore_thresholds_and_bootstrap_use_the_known_entries_only():
    y, p = _with_unknowns(n=70, seed=4)
    thresholds = M.choose_thresholds(y, p)
    for j in range(len(NAMES)):
        rows = y[:, j] != -1
        assert thresholds[j] == M.choose_thresholds(y[rows, j][:, None], p[rows, j][:, None])[0]
    assert thresholds[3] == M.DEFAULT_THRESHOLD  # C: no known positive
    idx = bootstrap_indices(len(y), 5, seed=2)
    for j in range(len(NAMES)):
        ap, auc = M.resampled_ap(y[:, j], p[:, j], idx), M.resampled_auc(y[:, j], p[:, j], idx)
        rows = y[:, j] != -1
        for r in range(len(idx)):
            w = np.bincount(idx[r], minlength=len(y)).astype(float)[rows]
            yj, pj = y[rows, j], p[rows, j]
            if (w * yj).sum() == 0:
                assert np.isnan(ap[r])
                continue
            assert ap[r] == pytest.approx(average_precision_score(yj, pj, sample_weight=w))
            if (w * (1 - yj)).sum() > 0:
                assert auc[r] == pytest.approx(roc_auc_score(yj, pj, sample_weight=w))
    # the identity resample is the observed mAP
    observed = M.multilabel_report(y, p, NAMES, n_bootstrap=0)["map"]
    assert M.resampled_macro(y, p, np.arange(len(y))[None, :], "map")[0] == pytest.approx(observed)


def test_nan_labels_are_unknown_and_a_split_with_nothing_known_has_no_scores():
    y, p = _with_unknowns(n=40, seed=2)
    as_nan = np.where(y == -1, np.nan, y.astype(float))
    assert M.multilabel_report(as_nan, p, NAMES, n_bootstrap=0) == M.multilabel_report(y, p, NAMES, n_bootstrap=0)
    r = M.multilabel_report(np.full((4, 2), -1), np.full((4, 2), 0.3), ["a", "b"], n_bootstrap=10)
    assert r["known_per_label"] == {"a": 0, "b": 0} and r["map"] is None and r["subset_accuracy"] is None
    assert r["hamming_loss"] is None and r["brier"] is None and r["map_ci95"] is None
    with pytest.raises(ValueError, match=r"0 or 1 \(-1 where unknown\), got values \[-2\]"):
        M.multilabel_report(np.full((3, 2), -2), np.zeros((3, 2)), ["a", "b"])
