"""Multi-label metrics against scikit-learn (per label, macro, micro, weighted bootstrap) and
the ODIR-2019 score's definition; labels without positives are listed, never scored 0."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    cohen_kappa_score,
    f1_score,
    hamming_loss,
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
