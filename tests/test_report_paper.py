"""The paper's Tables 2-6 embedded in lmfloss.report: cells checked by hand and in bulk."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmfloss.report.names import dataset_name, loss_name
from lmfloss.report.paper import (
    paper_best_hparams,
    paper_main,
    paper_per_class,
    paper_results,
    paper_train_samples,
)

PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "lmfloss-paper.txt"


def test_table_sizes():
    data = paper_results()
    assert len(data["main"]) == 3 * 4 * 5  # Tables 2-4: 3 models x 4 datasets x 5 losses
    assert len(data["per_class"]) == 8 + 7 + 8 + 4  # Table 5: ODIR, HAM, ISIC, Covid classes
    assert len(data["best_hparams"]) == 4 * 3  # Table 6


@pytest.mark.parametrize(
    ("dataset", "model", "loss", "metric", "value"),
    [
        ("ham10000", "efficientnet_v2_s", "lmf", "f1_macro", 84.61),  # Table 2
        ("odir5k", "efficientnet_v2_s", "bwcce", "f1_macro", 63.41),  # Table 2
        ("isic2019", "resnet50", "ldam", "recall_macro", 76.90),  # Table 3
        ("covid19", "densenet121", "bwcce", "accuracy", 95.50),  # Table 4
        ("ham10000", "densenet121", "focal", "precision_macro", 84.00),  # Table 4
    ],
)
def test_main_table_cells(dataset, model, loss, metric, value):
    assert paper_main(dataset, model, loss)[metric] == value


def test_per_class_and_hparam_cells():
    assert paper_per_class("odir5k", "H", "lmf") == 28.57
    assert paper_per_class("ham10000", "akiec", "bwcce") == 75.56  # case-insensitive class
    assert paper_per_class("isic2019", "DF", "ldam") == 73.85
    assert paper_train_samples("covid19", "Normal") == 7134
    assert paper_train_samples("ham10000", "DF") == 81
    assert paper_best_hparams("ham10000", "resnet50") == (0.5, 1.0)
    assert paper_best_hparams("isic2019", "densenet121") == (1.0, 2.0)
    assert paper_best_hparams("odir5k", "efficientnet_v2_s") == (1.0, 0.6)
    assert paper_main("retinamnist", "resnet18", "ce") is None
    assert paper_best_hparams("retinamnist", "resnet18") is None


@pytest.mark.realdata("paper/lmfloss-paper.txt")
def test_every_embedded_row_appears_in_the_paper_text():
    text = PAPER.read_text()
    paper_loss = {"ce": "CCE loss", "focal": "Focal loss", "ldam": "LDAM loss",
                  "bwcce": "BWCCE loss", "lmf": "LMF loss (ours)"}
    for row in paper_results()["main"]:
        line = "\t".join([paper_loss[row["loss"]]] + [
            f"{row[m]:.2f}" for m in ("accuracy", "precision_macro", "recall_macro", "f1_macro")
        ])
        assert line in text, row
    for row in paper_results()["per_class"]:
        values = "\t".join(f"{row['f1'][k]:.2f}" for k in ("ce", "focal", "ldam", "bwcce", "lmf"))
        assert f"{row['class_name']}\t" in text and values in text, row
    table6 = text[text.index("Table 6."):]
    for dataset, label in (("odir5k", "ODIR-5K"), ("ham10000", "HAM-10K"),
                           ("isic2019", "ISIC-2019"), ("covid19", "Covid-19")):
        pairs = [paper_best_hparams(dataset, m) for m in ("efficientnet_v2_s", "resnet50", "densenet121")]
        alphas = "\t".join(f"{a:.1f}" for a, _ in pairs)
        betas = "\t".join(f"{b:.1f}" for _, b in pairs)
        assert f"{label}\tα\t{alphas}\n\tβ\t{betas}" in table6, dataset
    assert dataset_name("ham10000") == "HAM-10K" and loss_name("ce") == "CCE"
