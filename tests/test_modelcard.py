"""``MODEL_CARD.md``: every number equal to report.json, limitations from facts, older reports
tolerated, no torch imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lmfloss import rundir
from lmfloss.config import TrainConfig
from lmfloss.errors import LmflossError
from lmfloss.modelcard import MODEL_CARD, NOT_RECORDED, model_card_text, write_model_card


def _run(folder: Path, config: TrainConfig, class_names: list[str], counts: dict[str, list[int]],
         leakage: dict | None = None, seed: int = 0) -> tuple[Path, dict]:
    """A finished run directory whose report.json is made by training's own report code
    (:func:`lmfloss.train.scoring.final_report`) from random logits."""
    from lmfloss.train.scoring import SplitResult, final_report

    rng = np.random.default_rng(seed)
    results = {}
    for split in ("val", "test"):
        labels = np.repeat(np.arange(len(class_names)), counts[split])
        logits = rng.normal(size=(len(labels), len(class_names))).astype(np.float32)
        logits[np.arange(len(labels)), labels] += 1.0
        results[split] = SplitResult(split, [f"{split}{i}" for i in range(len(labels))], labels, logits)
    report = final_report(config, class_names, counts["train"], results, best_epoch=3)
    report["data"] = {"dataset": config.dataset, "name": config.dataset, "fingerprint": "abc123def456",
                      "source": "/data/x", "images": {s: sum(c) for s, c in counts.items()}, "leakage": leakage}
    report["split_leakage"] = leakage
    report["skipped_images"] = []
    folder.mkdir(parents=True)
    rundir.write_config(config, folder)
    rundir.write_report(report, folder)
    return folder, report


@pytest.fixture
def binary_run(tmp_path):
    config = TrainConfig(dataset="breastmnist", model="resnet18", weights="none", image_size=28, epochs=5,
                         batch_size=16, lr=1e-3, loss="lmf", loss_params={"beta": 2.0}, normalize="half",
                         bootstrap=50, lr_milestones=[2, 4])
    return _run(tmp_path / "binary", config, ["malignant", "benign"],
                {"train": [147, 399], "val": [21, 57], "test": [42, 114]})


def test_card_numbers_equal_report_json(binary_run):
    run_dir, report = binary_run
    path = write_model_card(run_dir)
    assert path == run_dir / MODEL_CARD
    card = path.read_text()
    test = report["test"]
    for section in ("## Data", "## Model and loss", "## Training protocol", "## Test metrics",
                    "## Intended use and limitations"):
        assert f"\n{section}\n" in card
    lo, hi = test["f1_macro_ci95"]
    assert f"| macro-F1 | {test['f1_macro']:.4f} | [{lo:.4f}, {hi:.4f}] |" in card
    assert f"| accuracy | {test['accuracy']:.4f} |" in card
    assert f"| balanced accuracy | {test['balanced_accuracy']:.4f} |" in card
    assert f"| AUC (macro, one-vs-rest) | {test['auc_macro_ovr']:.4f} |" in card
    for name in report["class_names"]:
        assert (f"| {name} | {test['f1_per_class'][name]:.4f} | {test['precision_per_class'][name]:.4f} | "
                f"{test['recall_per_class'][name]:.4f} | {test['support'][name]} |") in card
    assert "| malignant | 147 | 21 | 42 |" in card and "| benign | 399 | 57 | 114 |" in card
    assert f"ECE {test['ece']:.4f}, Brier {test['brier']:.4f}, NLL {test['nll']:.4f}" in card
    at = test["at_threshold"]
    assert f"Positive class: {test['positive_class']}. At the argmax: sensitivity {test['sensitivity']:.4f}" in card
    assert f"P({test['positive_class']}) >= {at['threshold']:.4f}, chosen on validation" in card
    assert f"sensitivity {at['sensitivity']:.4f}, specificity {at['specificity']:.4f}" in card
    for key, value in report["loss"]["params"].items():
        assert f"{key}={value}" in card  # every parameter, defaults included
    assert "beta=2.0" in card
    for row in ("| epochs | 5 |", "| batch size | 16 |", "| optimizer | Adam, lr 0.001, weight decay 0.0005 |",
                "| lr schedule | MultiStepLR: x0.1 after epochs 2, 4 |", "| model selection | best validation "
                "f1_macro: epoch 3 |", "| image size | 28 px |", "| augmentation | none |"):
        assert row in card
    assert f"| validation macro-F1 | {report['val']['f1_macro']:.4f} |" in card
    assert "the dataset's own train/val/test split" in card  # BreastMNIST's counts are not 70:15:15


def test_limitations_follow_from_the_facts(binary_run):
    card = write_model_card(binary_run[0]).read_text()
    limits = card.split("## Intended use and limitations")[1]
    assert "Research use only: not a medical device" in limits
    assert "Trained at 28 px from scratch (no pre-trained weights) on breastmnist" in limits
    assert "not validated on external data" in limits
    assert "threshold" in limits and "choose it again on local validation data" in limits
    assert "scale of 30.0" in limits  # LMF's logit scale, from the resolved loss parameters
    assert "could not be checked" in card  # no group ids


def test_leaking_multiclass_split_with_few_test_images(tmp_path):
    config = TrainConfig(dataset="ham10000", model="resnet50", weights="imagenet", loss="ce", image_size=64,
                         bootstrap=20)
    leak = {"group_kind": "lesion", "group_by": None, "straddling_groups": 7, "test_images_affected": 12,
            "test_share": 0.12}
    # Per class n = 100 and 20: the paper's 70:15:15 gives (70, 15, 15) and (14, 3, 3).
    run_dir, report = _run(tmp_path / "multi", config, ["nv", "mel", "df"],
                           {"train": [70, 70, 14], "val": [15, 15, 3], "test": [15, 15, 3]}, leakage=leak)
    card = write_model_card(run_dir).read_text()
    assert "the split leaks 7 lesions: 12 test images (12.0%) share a lesion" in card
    assert "The the" not in card and "likely optimistic" in card
    assert "fewer than 10 test images have unreliable per-class metrics: df (3)" in card
    assert "the paper's stratified 70:15:15 split, seed 23" in card
    assert "from torchvision's ImageNet weights" in card and "| lr schedule | StepLR: x0.1 every 30 epochs |" in card
    assert "Positive class" not in card and "scale of" not in card  # multi-class CE: neither applies
    assert f"{report['test']['f1_macro']:.4f}" in card


def test_recorded_split_rule_and_fold_are_used(binary_run):
    run_dir, report = binary_run
    report["data"]["split"] = "5-fold cross-validation (stratified, fold seed 23): fold 2 as test"
    text = model_card_text(report, {"dataset": "breastmnist"}, run_dir)
    assert "- Split: 5-fold cross-validation (stratified, fold seed 23): fold 2 as test." in text
    del report["data"]["split"]
    text = model_card_text(report, {"dataset": "breastmnist", "folds": 5, "fold": 2, "fold_seed": 7})
    assert "- Split: 5-fold cross-validation (fold seed 7): fold 2 as test." in text


def test_an_older_report_says_not_recorded(binary_run):
    _, report = binary_run
    for key in ("split_leakage", "data", "loss", "train_class_counts", "macro_rule"):
        report.pop(key)
    for key in ("f1_macro_ci95", "ece", "brier", "nll", "at_threshold", "auc_macro_ovr"):
        report["test"].pop(key)
    text = model_card_text(report, {"dataset": "breastmnist", "loss": "focal"})  # a config of few keys
    assert f"leakage between splits {NOT_RECORDED}" in text
    assert f"| macro-F1 | {report['test']['f1_macro']:.4f} | {NOT_RECORDED} |" in text
    assert f"ECE {NOT_RECORDED}, Brier {NOT_RECORDED}" in text
    assert f"Validation-chosen threshold: {NOT_RECORDED}." in text
    assert f"| malignant | {NOT_RECORDED} | 21 | 42 |" in text
    assert f"`focal` with defaults (resolved parameters {NOT_RECORDED})" in text
    assert "- Split: not recorded." in text


def test_undefined_metrics_are_na_not_missing(binary_run):
    _, report = binary_run
    report["test"]["auc_macro_ovr"] = None  # a class absent from test
    assert "| AUC (macro, one-vs-rest) | n/a |" in model_card_text(report, {})


def test_an_unfinished_run_gets_no_card(binary_run, tmp_path):
    run_dir, _ = binary_run
    (run_dir / "report.json").unlink()
    with pytest.raises(LmflossError, match="not finished"):
        write_model_card(run_dir)
    assert not (run_dir / MODEL_CARD).exists()
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        write_model_card(tmp_path / "nowhere")


def test_writing_a_card_imports_no_torch(binary_run):
    run_dir, _ = binary_run
    code = ("import sys\nfrom lmfloss.modelcard import write_model_card\n"
            f"path = write_model_card({str(run_dir)!r})\n"
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules), path)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split()[0] == "[]"
    assert json.loads((run_dir / "report.json").read_text())["class_names"][0] in (run_dir / MODEL_CARD).read_text()


def _multilabel_report(score_by: str) -> tuple[dict, dict]:
    """report.json and config of a multi-label run, made by training's own report code."""
    from lmfloss.train.scoring import SplitResult, final_report

    config = TrainConfig(dataset="csv", task="multilabel", score_by=score_by, loss="bce", bootstrap=0)
    rng = np.random.default_rng(0)
    results = {}
    for split in ("val", "test"):
        labels = (rng.random((12, 3)) < 0.5).astype(np.int64)
        logits = rng.normal(size=(12, 3)).astype(np.float32) + 2 * labels
        results[split] = SplitResult(split, [f"{split}{i}" for i in range(12)], labels, logits, "multilabel",
                                     [f"p{i // 2}" for i in range(12)])
    return final_report(config, ["a", "b", "c"], [[6, 6], [5, 7], [8, 4]], results, best_epoch=2), config.to_dict()


@pytest.mark.parametrize("score_by", ["image", "patient"])
def test_a_multilabel_card_says_the_tasks_words(score_by):
    report, config = _multilabel_report(score_by)
    card = model_card_text(report, config)
    unit = "patients" if score_by == "patient" else "images"
    assert report["test"]["n"] == (6 if score_by == "patient" else 12)
    assert f"Evaluated only on the held-out test split of csv ({report['test']['n']} {unit})" in card
    assert "- Task: multi-label (3 labels per image, any subset; the table counts each label's positive images)." in card
    assert "| label (positives) |" in card and "3 labels (one sigmoid each): a, b, c." in card
    assert f"| validation mAP | {report['val']['map']:.4f} |" in card and f"| scored per | {score_by} |" in card
    assert f"| mAP (mean average precision over labels) | {report['test']['map']:.4f} |" in card
    assert "macro-F1 |" not in card.split("## Test metrics")[0]  # the headline is mAP


def test_a_registered_task_gets_the_card_of_its_target(binary_run, binary_task):
    import dataclasses

    import extra_task
    from lmfloss.modelcard import card_kind

    _, report = binary_run
    report["task"] = extra_task.BINARY.name  # one sigmoid logit, one class per image
    report["loss"]["params"]["scale"] = 30.0
    card = model_card_text(report, {})
    assert "| class | train | val | test |" in card and "- Task:" not in card
    assert f"| validation macro-F1 | {report['val']['f1_macro']:.4f} |" in card
    assert "its sigmoid outputs are scores rather than calibrated risks" in card
    ordinal = dataclasses.replace(extra_task.BINARY, name="ordinal", target="cumulative")
    with pytest.raises(ValueError, match=r"target 'cumulative' has no model card layout"):
        card_kind(ordinal)
