"""Multi-label runs end to end (issue 19): train from a user's CSV, report, predict, evaluate,
export -- every number checked against scikit-learn on the run's own predictions.csv."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

import lmfloss
from lmfloss.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]  # every test trains

TINY = ["--model", "shufflenet_v2_x0_5", "--weights", "none", "--image-size", "28", "--epochs", "1",
        "--device", "cpu", "--batch-size", "16", "--quiet"]
LABELS = ("effusion", "hernia", "mass")


def _findings_csv(folder: Path, n: int = 90) -> Path:
    """Images whose colour channels carry their labels, so one epoch learns something."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    lines = ["path,labels,patient_id"]
    for i in range(n):
        present = [label for j, label in enumerate(LABELS) if (i // (j + 2)) % 2 == 0]
        pixels = rng.random((24, 24, 3)) * 60
        for j, label in enumerate(LABELS):
            if label in present:
                pixels[..., j] += 150
        Image.fromarray(pixels.astype(np.uint8)).save(folder / "img" / f"x{i}.png")
        lines.append(f"img/x{i}.png,{';'.join(present)},p{i // 2}")
    path = folder / "findings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def ml_run(tmp_path_factory):
    """A multi-label run trained from a CSV, as the README shows it."""
    folder = tmp_path_factory.mktemp("ml")
    path = _findings_csv(folder)
    out = folder / "runs" / "ml"
    assert main(["train", "--dataset", "csv", "--csv", str(path), "--task", "multilabel", "--loss", "lmf",
                 "--bootstrap", "100", "--out", str(out), *TINY]) == 0
    return folder, path, out


def test_report_json_equals_sklearn_on_predictions_csv(ml_run):
    _, _, out = ml_run
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "multilabel" and report["class_names"] == list(LABELS)
    rows = _rows(out / "predictions.csv")
    y = np.array([[int(r[f"true_{n}"]) for n in LABELS] for r in rows])
    p = np.array([[float(r[f"prob_{n}"]) for n in LABELS] for r in rows])
    for j, name in enumerate(LABELS):
        assert report["test"]["ap_per_label"][name] == pytest.approx(average_precision_score(y[:, j], p[:, j]), abs=1e-6)
        assert report["test"]["auc_per_label"][name] == pytest.approx(roc_auc_score(y[:, j], p[:, j]), abs=1e-6)
        assert all(r["labels"].split(";") == [n for n in LABELS if int(r[f"true_{n}"])] or r["labels"] == ""
                   for r in rows)
    assert report["test"]["map"] == pytest.approx(np.mean([average_precision_score(y[:, j], p[:, j])
                                                           for j in range(3)]), abs=1e-6)
    assert report["test"]["auc_macro"] == pytest.approx(roc_auc_score(y, p, average="macro"), abs=1e-6)
    assert report["select_metric"] == "map"  # f1_macro, the multi-class default, became mAP
    per_label = _rows(out / "per_class.csv")
    assert [r["label"] for r in per_label] == list(LABELS)
    assert float(per_label[0]["ap"]) == pytest.approx(report["test"]["ap_per_label"]["effusion"], abs=1e-6)


def test_predictions_csv_pred_is_decided_at_the_validation_thresholds(ml_run):
    """pred follows the rule of predict and the export (issue 26): scikit-learn's F1 of the
    file's pred column is report.json's F1 at the thresholds chosen on validation."""
    from sklearn.metrics import f1_score

    _, _, out = ml_run
    report = json.loads((out / "report.json").read_text())
    chosen = report["val"]["thresholds_chosen"]
    rows = _rows(out / "predictions.csv")
    for row in rows:
        assert (row["pred"].split(";") if row["pred"] else []) == [
            n for n in LABELS if float(row[f"prob_{n}"]) >= chosen[n]]
    y = np.array([[int(r[f"true_{n}"]) for n in LABELS] for r in rows])
    pred = np.array([[int(n in r["pred"].split(";")) for n in LABELS] for r in rows])
    for j, name in enumerate(LABELS):
        if y[:, j].any():
            assert report["test"]["f1_per_label_at_threshold"][name] == pytest.approx(
                f1_score(y[:, j], pred[:, j], zero_division=0), abs=1e-9)


def test_report_of_multilabel_runs_tabulates_map_and_auc(ml_run, tmp_path):
    _, _, out = ml_run
    assert main(["report", str(out.parent), "--out", str(tmp_path / "report"), "--bootstrap", "100",
                 "--quiet"]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Multi-label test performance" in text and "Per-label test AUC" in text
    results = _rows(tmp_path / "report" / "results.csv")
    report = json.loads((out / "report.json").read_text())
    assert float(results[0]["map"]) == pytest.approx(report["test"]["map"])
    table = _rows(tmp_path / "report" / "tables" / "table_multilabel_shufflenet_v2_x0_5.csv")
    assert table[0]["mAP"] == f"{100 * report['test']['map']:.2f}"
    assert (tmp_path / "report" / "figures" / "fig_label_auc.png").is_file()
    # No accuracy (a multi-label run has none) and no softmax wording in an all-multi-label report.
    calibration = (tmp_path / "report" / "tables" / "calibration_shufflenet_v2_x0_5.md").read_text()
    assert "accuracy |" not in calibration and "top-label" not in calibration


def test_predict_gives_a_probability_per_label_and_labels_at_the_val_thresholds(ml_run, tmp_path, capsys):
    folder, _, out = ml_run
    images = [str(folder / "img" / f"x{i}.png") for i in range(4)]
    assert main(["predict", "--run", str(out), *images, "--out", str(tmp_path / "p.csv"), "--quiet"]) == 0
    rows = _rows(tmp_path / "p.csv")
    assert list(rows[0]) == ["image", "pred", *(f"prob_{n}" for n in LABELS)]
    thresholds = json.loads((out / "report.json").read_text())["val"]["thresholds_chosen"]
    for row in rows:
        expected = [n for n in LABELS if float(row[f"prob_{n}"]) >= thresholds[n]]
        got = row["pred"].split(";") if row["pred"] else []
        # probabilities are printed to 6 decimals: a label within rounding of its threshold may flip
        near = [n for n in LABELS if abs(float(row[f"prob_{n}"]) - thresholds[n]) < 1e-6]
        assert set(got) ^ set(expected) <= set(near), (got, expected, near)


def test_evaluate_recomputes_the_test_report(ml_run, capsys):
    _, _, out = ml_run
    assert main(["evaluate", "--run", str(out), "--quiet"]) == 0
    saved = json.loads((out / "report.json").read_text())["test"]
    again = json.loads((out / "eval-test-best.json").read_text())
    assert again["map"] == pytest.approx(saved["map"], abs=1e-6)
    assert again["thresholds"] == pytest.approx(saved["thresholds"])
    assert "mAP" not in capsys.readouterr().err
    # what evaluated it, beside report.json's record of what trained it
    assert again["software"]["device"] == "cpu" and again["software"]["lmfloss"] == lmfloss.__version__


def test_exported_model_ends_in_a_sigmoid_and_equals_predict(ml_run, tmp_path):
    from lmfloss.export import export_run, load_exported
    from lmfloss.train import load_run, predict

    folder, _, out = ml_run
    result = export_run(out, tmp_path / "ml.pt", "torchscript")
    assert result.info["task"] == "multilabel"
    assert result.info["preprocessing"]["steps"][-1]["op"] == "sigmoid"
    assert set(result.info["decision"]["thresholds"]) == set(LABELS)
    run = load_run(out)
    files = [folder / "img" / f"x{i}.png" for i in range(5)]
    expected = predict(run, [str(f) for f in files])
    from lmfloss.data.dataset import prepare_image

    pixels = np.stack([prepare_image(f, 28, resize="pil") for f in files])
    got = load_exported(result.model.read_bytes(), "torchscript")(pixels)
    assert np.abs(got - expected).max() < 1e-5
    assert not np.allclose(got.sum(axis=1), 1.0)  # independent labels, not a softmax


def test_patient_scoring_combines_a_patients_images_by_the_per_label_max(ml_run, tmp_path, capsys):
    folder, path, _ = ml_run
    out = tmp_path / "patients"
    assert main(["train", "--dataset", "csv", "--csv", str(path), "--task", "multilabel", "--loss", "bce",
                 "--group-by", "patient", "--score-by", "patient", "--bootstrap", "0", "--out", str(out), *TINY]) == 0
    rows = _rows(out / "predictions.csv")
    assert all(r["id"].startswith("p") for r in rows)  # one row per patient
    from lmfloss.train import evaluate_run, load_run
    from lmfloss.train.scoring import probabilities

    run = load_run(out)
    result = evaluate_run(run, "test")
    images = {r.id: r for r in run.splits.records("test")}
    # recompute one patient's probabilities from its images' own predictions
    from lmfloss.train import predict

    patient = rows[0]["id"]
    members = [rid for rid, r in images.items() if r.group == patient]
    per_image = predict(run, [images[m].path for m in members])
    assert [float(rows[0][f"prob_{n}"]) for n in LABELS] == pytest.approx(per_image.max(axis=0), abs=1e-6)
    assert len(result["ids"]) == len(rows)
    assert probabilities(np.zeros((1, 3)), "multilabel")[0] == pytest.approx([0.5, 0.5, 0.5])
    # predict decides per image with thresholds chosen on patients, and says so
    capsys.readouterr()
    assert main(["predict", "--run", str(out), str(images[members[0]].path)]) == 0
    assert "thresholds chosen on validation patients to each image alone" in capsys.readouterr().err


def test_cam_explains_each_label_of_an_image_against_that_labels_boxes(tmp_path):
    import lmfloss.data.synthetic as synthetic

    out = tmp_path / "syn"
    assert main(["train", "--task", "multilabel", "--loss", "asl", "--bootstrap", "0", "--out", str(out),
                 *TINY]) == 0
    assert main(["cam", "--run", str(out), "--n", "4", "--min-map-size", "2", "--faithfulness", "drop",
                 "--out", str(tmp_path / "cam"), "--quiet"]) == 0
    rows = _rows(tmp_path / "cam" / "cam_metrics.csv")
    _, targets, lesions = synthetic.generate_multilabel()
    kinds = list(synthetic.MULTILABEL_KINDS)
    for row in rows:
        image_id, label = row["id"].split("#")
        index = int(image_id.split("-")[1])
        assert targets[index, kinds.index(label)] == 1  # one map per label the image has
        assert row["target_class"] == row["true_class"] == label
        own = [box for kind, box in lesions[index] if kinds[kind] == label]
        assert int(row["n_boxes"]) == len(own) == 1  # scored against that label's lesion only
    assert len({row["id"].split("#")[0] for row in rows}) == 4


def test_k_fold_of_a_multilabel_csv_keeps_patients_together_and_summarises_map(ml_run, tmp_path, capsys):
    _, path, _ = ml_run
    folds_csv = tmp_path / "folds.csv"
    assert main(["split", "--dataset", "csv", "--csv", str(path), "--task", "multilabel", "--group-by", "patient",
                 "--folds", "3", "--out", str(folds_csv), "--quiet"]) == 0
    rows = _rows(folds_csv)
    assert list(rows[0]) == ["path", "labels", "fold"]
    patients = {}
    for row in rows:
        patients.setdefault(int(row["path"].split("x")[1].split(".")[0]) // 2, set()).add(row["fold"])
    assert all(len(f) == 1 for f in patients.values())
    out = tmp_path / "cv"
    assert main(["train", "--dataset", "csv", "--csv", str(path), "--task", "multilabel", "--loss", "bce",
                 "--group-by", "patient", "--folds", "2", "--bootstrap", "0", "--out", str(out), *TINY]) == 0
    summary = _rows(out / "cv_summary.csv")
    assert [r["fold"] for r in summary] == ["1", "2", "mean", "std"]
    assert "map" in summary[0] and "accuracy" not in summary[0]
    maps = [json.loads((out / f"fold-{k}" / "report.json").read_text())["test"]["map"] for k in (1, 2)]
    assert float(summary[2]["map"]) == pytest.approx(np.mean(maps), abs=1e-6)
    assert "test mAP" in capsys.readouterr().out


def test_a_multilabel_sweep_optimises_map_and_writes_its_html_report(tmp_path, capsys, caplog):
    import yaml

    sweep = tmp_path / "ml-sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "ml-sweep", "sampler": "grid", "html": True,
        "base": {"task": "multilabel", "model": "shufflenet_v2_x0_5", "weights": "none", "image_size": 28,
                 "epochs": 1, "device": "cpu", "bootstrap": 0, "batch_size": 32},
        "space": {"loss": ["bce", "lmf"]},
    }))
    out = tmp_path / "sweep"
    with caplog.at_level(logging.INFO, logger="lmfloss"):
        assert main(["sweep", "--config", str(sweep), "--out", str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"html: {out / 'report' / 'report.html'}" in printed
    trials = _rows(out / "trials.csv")
    assert {t["val_metric"] for t in trials} == {"map"}
    for trial in trials:
        report = json.loads((Path(trial["run_dir"]) / "report.json").read_text())
        assert float(trial["val_objective"]) == pytest.approx(report["val"]["map"])  # the objective is val mAP
        assert float(trial["val_f1_macro"]) == pytest.approx(report["val"]["f1_macro"])  # each column what it says
        assert float(trial["test_map"]) == pytest.approx(report["test"]["map"])
        assert f"trial {trial['trial']}: {trial['run_name']} val mAP {float(trial['val_objective']):.4f}" in caplog.text
    best = max(trials, key=lambda t: float(t["val_objective"]))
    assert (f"best: {best['run_name']} (trial {best['trial']}): val mAP {float(best['val_objective']):.4f}, "
            f"test mAP {float(best['test_map']):.4f}") in printed
    page = (out / "report" / "report.html").read_text(encoding="utf-8")
    assert "Per-label test AUC" in page and "Multi-label: LMF against the best baseline" in page
