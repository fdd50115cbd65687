"""End to end: two tiny real training runs through the report.

BreastMNIST (546 training images of 28 px, from ../shared/data) rather than the
synthetic set (3,100 images): the same code path at a fifth of the CPU time.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lmfloss.cli import main

pytestmark = pytest.mark.slow
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BREAST = SHARED / "breastmnist"


@pytest.mark.realdata("data/breastmnist/breastmnist.npz")
def test_report_on_two_real_runs(tmp_path: Path, capsys):
    fit = pytest.importorskip("lmfloss.train").fit
    from lmfloss.config import TrainConfig

    base = TrainConfig(dataset="breastmnist", root=str(BREAST), model="resnet18", weights="none",
                       image_size=28, epochs=1, batch_size=128, lr=1e-3, device="cpu", bootstrap=100,
                       seed=1)
    runs = tmp_path / "runs"
    fit(base.replace(loss="ce"), runs / "ce-s1", quiet=True)
    fit(base.replace(loss="lmf", loss_params={"alpha": 1.0, "beta": 1.0}), runs / "lmf-s1", quiet=True)
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out), "--bootstrap", "100", "--quiet"]) == 0
    assert "2 runs (2 finished)" in capsys.readouterr().out
    rows = {r["loss"]: r for r in csv.DictReader((out / "results.csv").open())}
    for loss in ("ce", "lmf"):
        test = json.loads((runs / f"{loss}-s1" / "report.json").read_text())["test"]
        assert float(rows[loss]["f1_macro"]) == test["f1_macro"]
        assert float(rows[loss]["accuracy"]) == test["accuracy"]
    paired = list(csv.DictReader((out / "paired_tests.csv").open()))
    assert len(paired) == 1 and paired[0]["baseline"] == "ce"
    delta = float(rows["lmf"]["f1_macro"]) - float(rows["ce"]["f1_macro"])
    # The engine's macro-F1 and the report's bootstrap use one formula (labels = all classes).
    assert float(paired[0]["delta_f1_images"]) == pytest.approx(delta, abs=1e-9)
    assert float(paired[0]["delta_f1_seeds"]) == pytest.approx(delta, abs=1e-9)
    assert 0.0 < float(paired[0]["p_images"]) <= 1.0 and paired[0]["p_seeds_t"] == ""  # one seed
    md = (out / "report.md").read_text()
    assert "| BreastMNIST | CCE |" in md and (out / "figures" / "fig1_macro_f1.png").is_file()
