"""--refit: after selection, a fresh model trained on train + validation for the chosen epochs
(issue 28), recorded in report.json and refit.pt, recomputable from its checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from data_helpers import TINY
from lmfloss.cli import main
from lmfloss.train import load_run

pytestmark = pytest.mark.slow


def test_refit_trains_on_train_and_val_and_reports_beside_the_selection(tmp_path, capsys):
    out = tmp_path / "run"
    args = [{"1": "2"}.get(a, a) for a in TINY]  # 2 epochs
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "--dataset", "synthetic", "--out", str(out), "--refit", "--cache-dir",
                     str(tmp_path / "cache"), *args]) == 0
    finally:
        torch.set_num_threads(previous)
    report = json.loads((out / "report.json").read_text())
    refit = report["refit"]
    assert report["config"]["refit"] is True
    assert refit["epochs"] == report["best_epoch"]
    train, val = sum(report["train_class_counts"]), report["val"]["n"]
    assert refit["train_images"] == train + val == sum(refit["train_counts"])
    assert refit["test"]["n"] == report["test"]["n"]
    assert (out / "refit.pt").is_file()
    run = load_run(out, checkpoint="refit")
    assert run.epoch == refit["epochs"]
    assert main(["evaluate", "--run", str(out), "--checkpoint", "refit"]) == 0  # recomputed from refit.pt
    again = json.loads((out / "eval-test-refit.json").read_text())
    assert again["f1_macro"] == pytest.approx(refit["test"]["f1_macro"])
    assert again["accuracy"] == pytest.approx(refit["test"]["accuracy"])
    card = (out / "MODEL_CARD.md").read_text()
    assert "### Refit on train + validation" in card
    assert f"| refit (train + validation) | {refit['test']['f1_macro']:.4f}" in card
