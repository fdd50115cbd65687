"""The one line `lmfloss train` prints at the end of a multi-label run."""

from types import SimpleNamespace

import pytest

from lmfloss.commands.train import _multilabel_line


def _result(dataset: str) -> SimpleNamespace:
    test = {"n": 10, "map": 0.4, "map_ci95": [0.3, 0.5], "auc_macro": 0.7, "odir_score": {"final": 0.55}}
    report = {"test": test, "score_by": "patient", "config": {"dataset": dataset}}
    return SimpleNamespace(report=report, run_dir="runs/x", best_epoch=3, select_metric="map", best_val_score=0.41)


@pytest.mark.parametrize(("dataset", "shown"), [("odir5k", True), ("synthetic", False), ("nih-cxr14", False)])
def test_odir_score_only_for_odir5k(dataset, shown):
    line = _multilabel_line(_result(dataset))
    assert "mAP 0.4000 [0.3000, 0.5000], macro AUC 0.7000" in line
    assert ("ODIR score 0.5500" in line) is shown
    assert "\n" not in line
