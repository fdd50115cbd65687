"""lmfloss evaluate --dataset/--csv --name: a finished run scored on a labelled set it never
saw, checked against scikit-learn on that set's own predictions (issue 28)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from cli_helpers import one_error_line
from data_helpers import TINY
from lmfloss import rundir
from lmfloss.cli import main

ODIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "odir5k_128"
LABELS = ["N", "D", "G", "C", "A", "H", "M", "O"]

pytestmark = [pytest.mark.slow, pytest.mark.realdata("data/odir5k_128/full_df.csv")]


def _odir_subset(folder: Path, rows: list[dict[str, str]], header: list[str]) -> Path:
    """An ODIR-5K folder in the Kaggle layout holding ``rows`` (patients) only; the images are
    the shared ones, linked, never copied."""
    folder.mkdir(parents=True)
    with (folder / "full_df.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows(rows)
    (folder / "preprocessed_images").symlink_to(ODIR / "preprocessed_images")
    return folder


@pytest.fixture(scope="module")
def odir_run(tmp_path_factory):
    """A one-epoch multi-label ODIR run on 150 patients, and 80 other patients as an external set."""
    with (ODIR / "full_df.csv").open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header, rows = list(reader.fieldnames or []), list(reader)
    by_patient: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_patient.setdefault(row["ID"], []).append(row)
    patients = list(by_patient)
    folder = tmp_path_factory.mktemp("external")
    internal = _odir_subset(folder / "internal", [r for p in patients[:150] for r in by_patient[p]], header)
    external = _odir_subset(folder / "external", [r for p in patients[150:230] for r in by_patient[p]], header)
    out = folder / "run"
    args = [{"ce": "bce", "0": "200"}.get(a, a) for a in TINY]  # bootstrap 200: the external CIs
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "--dataset", "odir5k", "--root", str(internal), "--task", "multilabel",
                     "--out", str(out), "--cache-dir", str(folder / "cache"), *args]) == 0
    finally:
        torch.set_num_threads(previous)
    return out, external, folder


def test_external_evaluation_equals_sklearn_per_patient(odir_run, capsys):
    out, external, folder = odir_run
    assert main(["evaluate", "--run", str(out), "--dataset", "odir5k", "--root", str(external),
                 "--name", "odir-other"]) == 0
    printed = capsys.readouterr().out
    assert "internal test" in printed and "external" in printed
    payload = json.loads((out / "eval-odir-other.json").read_text())
    assert payload["external"] == "odir-other" and payload["score_by"] == "patient"
    assert payload["software"]["torch"] == torch.__version__  # what evaluated it
    assert rundir.read_external_evals(out)["odir-other"] == payload
    # The same images through predict, combined per patient as the run scores: max per label.
    images = sorted(p for p in (external / "preprocessed_images").iterdir()
                    if p.name in {r["filename"] for r in csv.DictReader((external / "full_df.csv").open())})
    pred_csv = folder / "pred.csv"
    assert main(["predict", "--run", str(out), *map(str, images), "--out", str(pred_csv)]) == 0
    rows = list(csv.DictReader(pred_csv.open()))
    truth = {r["filename"]: (r["ID"], [int(r[c]) for c in LABELS])
             for r in csv.DictReader((external / "full_df.csv").open())}
    patients: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for row in rows:
        pid, labels = truth[Path(row["image"]).name]
        probs = np.array([float(row[f"prob_{c}"]) for c in LABELS])
        old = patients.get(pid)
        patients[pid] = (np.array(labels), probs if old is None else np.maximum(old[1], probs))
    y = np.stack([v[0] for v in patients.values()])
    p = np.stack([v[1] for v in patients.values()])
    assert payload["n"] == len(patients) == 80
    with_pos = [j for j in range(len(LABELS)) if 0 < y[:, j].sum() < len(y)]
    # predict rounds to 6 decimals; the report scores exact probabilities
    assert payload["map"] == pytest.approx(np.mean([average_precision_score(y[:, j], p[:, j]) for j in with_pos]),
                                           abs=2e-3)
    assert payload["auc_macro"] == pytest.approx(np.mean([roc_auc_score(y[:, j], p[:, j]) for j in with_pos]),
                                                 abs=2e-3)
    assert payload["map_ci95"][0] <= payload["map"] <= payload["map_ci95"][1]
    # lmfloss report shows the internal and the external test side by side, with the difference
    internal = json.loads((out / "report.json").read_text())["test"]["map"]
    assert main(["report", str(out), "--out", str(folder / "report")]) == 0
    (row,) = list(csv.DictReader((folder / "report" / "external.csv").open()))
    assert row["external"] == "odir-other" and row["metric"] == "map" and int(row["n_external"]) == 80
    assert float(row["internal_test"]) == pytest.approx(internal)
    assert float(row["external_test"]) == pytest.approx(payload["map"])
    assert float(row["difference"]) == pytest.approx(payload["map"] - internal)
    assert "External validation" in (folder / "report" / "report.md").read_text()


def test_label_mismatch_is_refused_in_one_line(odir_run, tmp_path, capsys):
    out, external, _ = odir_run
    images = sorted((external / "preprocessed_images").iterdir())[:12]
    listing = tmp_path / "other.csv"
    listing.write_text("path,labels,patient_id\n"  # a run scored per patient needs patients
                       + "".join(f"{p},{'N' if i % 2 else 'D;X'},{i // 2}\n" for i, p in enumerate(images)))
    assert main(["evaluate", "--run", str(out), "--dataset", "csv", "--csv", str(listing), "--name", "x"]) == 2
    line = one_error_line(capsys, "evaluate")
    assert "the run knows ['G', 'C', 'A', 'H', 'M', 'O'] and the external set has none" in line
    assert "the external set has ['X']" in line and "--label-map" in line
    assert not (out / "eval-x.json").exists()
    assert main(["evaluate", "--run", str(out), "--dataset", "odir5k", "--root", str(external)]) == 2
    assert "--name" in one_error_line(capsys, "evaluate")


def test_images_the_run_saw_are_refused_or_left_out_with_their_patients(odir_run, tmp_path, capsys):
    # HAM10000 lies inside ISIC-2019: an "external" set can hold the run's own images. Here the
    # external set plus 5 of the run's own patients (its train, validation or test split).
    out, external, folder = odir_run
    with (external / "full_df.csv").open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header, rows = list(reader.fieldnames or []), list(reader)
    with (folder / "internal" / "full_df.csv").open(encoding="utf-8") as handle:
        own = list(csv.DictReader(handle))
    patients = list(dict.fromkeys(r["ID"] for r in own))[:5]
    mixed = _odir_subset(tmp_path / "mixed", rows + [r for r in own if r["ID"] in patients], header)
    assert main(["evaluate", "--run", str(out), "--dataset", "odir5k", "--root", str(mixed), "--name", "mixed"]) == 2
    line = one_error_line(capsys, "evaluate")
    n_own = sum(r["ID"] in patients for r in own)
    assert f"{n_own} of the external set's {len(rows) + n_own} images are the run's own" in line
    assert "--drop-overlap" in line and not (out / "eval-mixed.json").exists()
    # Left out, the rest is scored exactly as the external set alone.
    assert main(["evaluate", "--run", str(out), "--dataset", "odir5k", "--root", str(mixed), "--name", "mixed",
                 "--drop-overlap"]) == 0
    assert main(["evaluate", "--run", str(out), "--dataset", "odir5k", "--root", str(external), "--name", "clean"]) == 0
    left, clean = (json.loads((out / f"eval-{n}.json").read_text()) for n in ("mixed", "clean"))
    assert left["n"] == clean["n"] == 80 and left["map"] == pytest.approx(clean["map"], abs=1e-12)
    assert left["overlap_left_out"]["dropped_images"] == n_own and left["overlap_left_out"]["dropped_groups"] == 5
    assert sum(left["overlap_left_out"]["shared_images"].values()) == n_own
    assert clean["overlap_left_out"] is None


def test_predict_csv_with_a_patient_column_scores_patients_as_the_run(odir_run, tmp_path, capsys):
    out, external, _ = odir_run
    rows = list(csv.DictReader((external / "full_df.csv").open()))[:30]
    listing = tmp_path / "eyes.csv"
    listing.write_text("path,patient_id\n" + "".join(
        f"{external / 'preprocessed_images' / r['filename']},{r['ID']}\n" for r in rows))
    assert main(["predict", "--run", str(out), "--csv", str(listing), "--out", str(tmp_path / "p.csv")]) == 0
    assert "one row per patient" in capsys.readouterr().err
    patients = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [p["patient"] for p in patients] == list(dict.fromkeys(r["ID"] for r in rows))
    # each patient's probability is the largest of its images' (predict per image, then max)
    assert main(["predict", "--run", str(out), *(str(external / "preprocessed_images" / r["filename"]) for r in rows),
                 "--out", str(tmp_path / "i.csv")]) == 0
    images = {Path(r["image"]).name: r for r in csv.DictReader((tmp_path / "i.csv").open())}
    for patient in patients:
        eyes = [images[r["filename"]] for r in rows if r["ID"] == patient["patient"]]
        assert int(patient["images"]) == len(eyes)
        for label in LABELS:
            assert float(patient[f"prob_{label}"]) == pytest.approx(max(float(e[f"prob_{label}"]) for e in eyes))
