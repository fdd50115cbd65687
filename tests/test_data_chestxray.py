"""NIH ChestX-ray14 and CheXpert read as published (lmfloss.data.chestxray): small tables written
in the published layouts, stand-in images, the uncertainty policies, per-study scoring."""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import one_error_line
from lmfloss.cli import main
from lmfloss.config import TrainConfig
from lmfloss.data import load_splits
from lmfloss.data.adapters import resolve_config
from lmfloss.data.chestxray import CHEXPERT_COMPETITION, NIH_FINDINGS, parse_uncertain
from lmfloss.data.multilabel import MULTI_HOT
from lmfloss.train.scoring import SplitResult, scored

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NIH_SAMPLE = SHARED / "metadata" / "nih-cxr14" / "sample_labels.csv"

# The Kaggle sample's header, and the full table's (the last four spelled differently).
SAMPLE_HEADER = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
                 "View Position", "OriginalImageWidth", "OriginalImageHeight", "OriginalImagePixelSpacing_x",
                 "OriginalImagePixelSpacing_y"]
FULL_HEADER = [*SAMPLE_HEADER[:7], "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"]
# (image, findings, patient, view): two images per patient, every finding positive somewhere.
NIH_ROWS = [(f"{p:08d}_{k:03d}.png", findings, p, view)
            for p, findings in enumerate(["Atelectasis|Cardiomegaly", "Effusion", "Infiltration|Mass", "Nodule",
                                          "Pneumonia|Pneumothorax", "Consolidation", "Edema|Emphysema", "Fibrosis",
                                          "Pleural_Thickening|Hernia", "No Finding"] * 3, start=1)
            for k, view in enumerate(("PA", "AP"))]


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(path)


def write_nih(root: Path, header: list[str] = SAMPLE_HEADER, name: str = "sample_labels.csv",
              rows=NIH_ROWS, age: str = "{:03d}Y") -> Path:
    """A table of ``rows`` in a published layout, images spread over images_001/images/ and images_002/images/."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / name, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for k, (image, findings, patient, view) in enumerate(rows):
            writer.writerow([image, findings, k % 2, patient, age.format(40 + patient), "M", view, 2500, 2048,
                             0.168, 0.168])
            _image(root / f"images_{1 + k % 2:03d}" / "images" / image)
    return root


def test_nih_both_header_spellings_and_age_forms_give_the_same_labels(tmp_path):
    sample = load_splits("nih-cxr14", root=write_nih(tmp_path / "sample"))
    full = load_splits("nih-cxr14", root=write_nih(tmp_path / "full", FULL_HEADER, "Data_Entry_2017.csv",
                                                   age="{}"))
    assert sample.class_names == full.class_names == NIH_FINDINGS
    for a, b in ((sample, full),):
        assert {r.id: r.labels for r in a.index.records} == {r.id: r.labels for r in b.index.records}
    first = {r.id: r for r in sample.index.records}
    assert first["00000001_000.png"].labels == (0, 1)  # Atelectasis|Cardiomegaly, published order
    assert first["00000010_000.png"].labels == ()  # No Finding = no label
    assert first["00000001_000.png"].group == first["00000001_001.png"].group
    assert Path(first["00000001_001.png"].path).parent.parent.name == "images_002"


def test_nih_without_lists_splits_by_patient_and_views_filter(tmp_path):
    root = write_nih(tmp_path / "nih")
    splits = load_splits("nih-cxr14", root=root)
    assert not splits.official and splits.group_by == "patient"
    where = {}
    for split in ("train", "val", "test"):
        for record in splits.records(split):
            assert where.setdefault(record.group, split) == split  # a patient in one split
    pa = load_splits("nih-cxr14", root=root, options={"views": "PA"})
    assert len(pa.index.records) == len(NIH_ROWS) // 2 and all(r.id.endswith("_000.png") for r in pa.index.records)


def test_nih_official_lists_give_test_and_draw_validation_from_train_val_by_patient(tmp_path):
    root = write_nih(tmp_path / "nih")
    ids = [row[0] for row in NIH_ROWS]
    test = [i for i in ids if int(i[:8]) > 20]  # patients 21-30, patient-disjoint as published
    (root / "test_list.txt").write_text("\n".join(test) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(i for i in ids if i not in test) + "\n")
    splits = load_splits("nih-cxr14", root=root)
    assert splits.official and "test_list.txt" in splits.rule()
    assert sorted(r.id for r in splits.records("test")) == sorted(test)
    val_patients = {r.group for r in splits.records("val")}
    train_patients = {r.group for r in splits.records("train")}
    assert val_patients and not val_patients & train_patients
    assert len(splits.records("val")) + len(splits.records("train")) == len(ids) - len(test)


@pytest.mark.parametrize(("change", "words"), [
    ("list", "is not in"),
    ("finding", "is not one of the 14"),
])
def test_nih_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, change, words):
    rows = list(NIH_ROWS)
    if change == "finding":
        rows[3] = (rows[3][0], "Effusion|Covid", *rows[3][2:])
    root = write_nih(tmp_path / "nih", rows=rows)
    if change == "list":
        (root / "test_list.txt").write_text("99999999_000.png\n")
        (root / "train_val_list.txt").write_text("\n".join(r[0] for r in rows) + "\n")
    out = tmp_path / "manifest.csv"
    assert main(["split", "--dataset", "nih-cxr14", "--root", str(root), "--out", str(out)]) == 2
    assert words in one_error_line(capsys, "split")
    assert not out.exists()


@pytest.mark.realdata("data/metadata/nih-cxr14/sample_labels.csv")
def test_nih_sample_split_prints_per_label_counts_that_add_up_to_the_published_ones(tmp_path, capsys):
    root = tmp_path / "nih"
    (root / "images_001" / "images").mkdir(parents=True)
    (root / "sample_labels.csv").write_bytes(NIH_SAMPLE.read_bytes())
    stand_in = tmp_path / "stand-in.png"
    _image(stand_in)
    with open(NIH_SAMPLE, newline="") as f:
        for row in csv.DictReader(f):
            os.link(stand_in, root / "images_001" / "images" / row["Image Index"])  # no NIH image is shipped
    assert main(["split", "--dataset", "nih-cxr14", "--root", str(root), "--quiet"]) == 0
    table = {line.split("|")[1].strip(): [int(c) for c in line.split("|")[2:6]]
             for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "train" not in line}
    published = {"Atelectasis": 508, "Cardiomegaly": 141, "Effusion": 644, "Infiltration": 967, "Mass": 284,
                 "Nodule": 313, "Pneumonia": 62, "Pneumothorax": 271, "Consolidation": 226, "Edema": 118,
                 "Emphysema": 127, "Fibrosis": 84, "Pleural_Thickening": 176, "Hernia": 13}
    assert {name: counts[3] for name, counts in table.items() if name != "images"} == published
    assert table["images"][3] == 5606
    assert all(min(counts[:3]) >= 1 for counts in table.values())  # even Hernia's 13 reach every split


# --- CheXpert ------------------------------------------------------------------------------

OBS = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
       "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
       "Fracture", "Support Devices"]
CHEXPERT_HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *OBS]


def _chexpert_row(prefix: str, split: str, patient: int, study: int, view: int, values: dict[str, str]) -> list:
    lateral = view == 2
    path = f"{prefix}{split}/patient{patient:05d}/study{study}/view{view}_{'lateral' if lateral else 'frontal'}.jpg"
    return [path, "Female", 60, "Lateral" if lateral else "Frontal", "" if lateral else "AP",
            *(values.get(name, "") for name in OBS)]


def write_chexpert(root: Path, prefix: str = "CheXpert-v1.0-small/", valid_extra: dict[str, str] | None = None,
                   train_extra: dict[str, str] | None = None) -> Path:
    """train.csv (20 patients, one study of a frontal and a lateral view each) and valid.csv (4
    patients), under root/<prefix>, with stand-in images at their paths. Patient 1's study has
    Atelectasis -1 (uncertain), Cardiomegaly blank, Edema 1; every competition label is positive
    on some patients and negative on others in both files."""
    base = root / prefix
    base.mkdir(parents=True, exist_ok=True)
    for name, split, patients, extra in (("train.csv", "train", range(1, 21), train_extra),
                                         ("valid.csv", "valid", range(64541, 64545), valid_extra)):
        with open(base / name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CHEXPERT_HEADER)
            for k, patient in enumerate(patients):
                values = {label: ("1.0" if (k + j) % 3 == 0 else "0.0") for j, label in enumerate(OBS)}
                values.update({label: ("1.0" if (k + j) % 3 == 0 else "0.0")
                               for j, label in enumerate(CHEXPERT_COMPETITION)})
                if patient == 1:
                    values.update({"No Finding": "0.0", "Atelectasis": "-1.0", "Cardiomegaly": "", "Edema": "1.0"})
                if patient == 2 and extra:
                    values.update(extra)
                for view in (1, 2):
                    row = _chexpert_row(prefix, split, patient, 1, view, values)
                    writer.writerow(row)
                    _image(base / row[0][len(prefix):])
    return root


def _by_id(splits):
    return {r.id: r for r in splits.index.records}


@pytest.mark.parametrize("prefix", ["CheXpert-v1.0-small/", "CheXpert-v1.0/"])
def test_chexpert_either_prefix_patients_studies_and_the_official_validation(tmp_path, prefix):
    splits = load_splits("chexpert", root=write_chexpert(tmp_path / "data", prefix),
                         options={"labels": "competition"})
    assert splits.class_names == CHEXPERT_COMPETITION
    record = _by_id(splits)[f"{prefix}train/patient00001/study1/view1_frontal.jpg"]
    assert record.group == "patient00001" and record.study == "patient00001/study1"
    assert Path(record.path).is_file()
    assert {r.group for r in splits.records("val")} == {f"patient{p:05d}" for p in range(64541, 64545)}
    assert splits.records("test") and not {r.group for r in splits.records("test")} & {
        r.group for r in splits.records("train")}
    assert "valid.csv" in splits.rule()


def _patient1(policy: dict[str, str], tmp_path: Path):
    splits = load_splits("chexpert", root=write_chexpert(tmp_path / "data"),
                         options={"labels": "competition", **policy})
    record = _by_id(splits)["CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"]
    return MULTI_HOT.array([record], len(CHEXPERT_COMPETITION))[0].tolist()


@pytest.mark.parametrize(("policy", "expected"), [
    # Atelectasis -1, Cardiomegaly blank, Consolidation 0, Edema 1, Pleural Effusion 0 (k = 0: Atelectasis's
    # value would be 1.0, replaced by -1.0)
    ({}, [-1, 0, 0, 1, 0]),  # U-Ignore, blanks negative: the defaults
    ({"uncertain": "ones"}, [1, 0, 0, 1, 0]),
    ({"uncertain": "zeros"}, [0, 0, 0, 1, 0]),
    ({"uncertain": "Atelectasis=ones,Cardiomegaly=zeros"}, [1, 0, 0, 1, 0]),
    ({"blank": "ignore"}, [-1, -1, 0, 1, 0]),
    ({"uncertain": "zeros,Edema=ones", "blank": "ignore"}, [0, -1, 0, 1, 0]),
])
def test_chexpert_uncertainty_and_blank_policies(tmp_path, policy, expected):
    assert _patient1(policy, tmp_path) == expected


def test_chexpert_no_finding_makes_blanks_negative_and_views_filter(tmp_path):
    root = write_chexpert(tmp_path / "data", train_extra={"No Finding": "1.0", **dict.fromkeys(OBS[1:], "")})
    splits = load_splits("chexpert", root=root, options={"blank": "ignore", "views": "frontal"})
    record = _by_id(splits)["CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg"]
    row = MULTI_HOT.array([record], len(OBS))[0].tolist()
    assert row[0] == 1 and row[1:-1] == [0] * 12 and row[-1] == -1  # Support Devices stays unknown
    assert all("frontal" in r.id for r in splits.index.records)


def test_uncertain_policy_parser_names_what_is_wrong():
    names = CHEXPERT_COMPETITION
    assert parse_uncertain("ones", names) == ["ones"] * 5
    assert parse_uncertain("zeros,Edema=ones", names) == ["zeros", "zeros", "zeros", "ones", "zeros"]
    with pytest.raises(ValueError, match="'maybe' is not one of"):
        parse_uncertain("maybe", names)
    with pytest.raises(ValueError, match="'Fracture' is not one of the labels"):
        parse_uncertain("Fracture=ones", names)
    with pytest.raises(ValueError, match="names 'Edema' twice"):
        parse_uncertain("Edema=ones,Edema=zeros", names)


def test_chexpert_bad_value_is_one_line_exit_2(tmp_path, capsys):
    root = write_chexpert(tmp_path / "data", train_extra={"Edema": "2.0"})
    assert main(["split", "--dataset", "chexpert", "--root", str(root), "--out", str(tmp_path / "m.csv")]) == 2
    line = one_error_line(capsys, "split")
    assert "'Edema' holds '2.0'" in line and "train.csv" in line
    assert not (tmp_path / "m.csv").exists()


def test_an_option_of_another_dataset_is_refused(tmp_path, capsys):
    assert main(["split", "--dataset", "synthetic", "--uncertain", "ones"]) == 2
    assert "uncertain is an option of dataset chexpert" in one_error_line(capsys, "split")


def test_split_prints_unknown_counts_per_label(tmp_path, capsys):
    root = write_chexpert(tmp_path / "data")
    assert main(["split", "--dataset", "chexpert", "--root", str(root), "--labels", "competition", "--quiet"]) == 0
    out = capsys.readouterr().out
    unknown = [line for line in out.splitlines() if line.startswith("| Atelectasis")][-1]
    assert [int(c) for c in unknown.split("|")[2:6]][3] == 2  # patient 1's two views, U-Ignore


# --- the run's config and per-study scoring ----------------------------------------------------------


def test_config_records_the_policy_and_scores_chexpert_studies():
    config = resolve_config(TrainConfig(dataset="chexpert", uncertain="Atelectasis=ones"))
    assert config.task == "multilabel" and config.score_by == "study" and config.group_by == "patient"
    assert (config.uncertain, config.blank, config.views, config.labels) == ("Atelectasis=ones", "zeros", "all",
                                                                           "all")
    assert resolve_config(TrainConfig(dataset="nih-cxr14")).views == "all"
    with pytest.raises(ValueError, match="score_by 'study' needs images that know their study"):
        resolve_config(TrainConfig(dataset="nih-cxr14", score_by="study"))
    with pytest.raises(ValueError, match="blank is an option of dataset chexpert"):
        resolve_config(TrainConfig(dataset="nih-cxr14", blank="ignore"))


def test_a_study_scores_the_maximum_over_its_views():
    labels = np.array([[1, -1], [1, -1], [0, 1], [0, 0]])
    logits = np.array([[0.5, -2.0], [2.0, 1.0], [-1.0, 3.0], [0.0, 0.0]], dtype=np.float32)
    result = SplitResult("val", ["a1", "a2", "b1", "c1"], labels, logits, "multilabel",
                         groups=["p1", "p1", "p1", "p2"], studies=["p1/s1", "p1/s1", "p1/s2", "p2/s1"])
    studies = scored(result, TrainConfig(task="multilabel", score_by="study"))
    assert studies.ids == ["p1/s1", "p1/s2", "p2/s1"]
    np.testing.assert_array_equal(studies.logits, [[2.0, 1.0], [-1.0, 3.0], [0.0, 0.0]])
    np.testing.assert_array_equal(studies.labels, [[1, -1], [0, 1], [0, 0]])
    assert scored(result, TrainConfig(task="multilabel", score_by="patient")).ids == ["p1", "p2"]
    assert Counter(scored(result, TrainConfig(task="multilabel", score_by="image")).ids) == Counter(result.ids)


@pytest.mark.slow
def test_u_ones_and_u_ignore_runs_differ_as_they_should(tmp_path):
    """One tiny run per policy: U-Ones trains patient 1's uncertain Atelectasis as positive (two
    more positives in the loss's counts), U-Ignore leaves both entries out (two fewer known)."""
    import json  # only this test reads a report

    root = write_chexpert(tmp_path / "data")
    reports = {}
    for policy in ("ones", "ignore"):
        out = tmp_path / policy
        assert main(["train", "--dataset", "chexpert", "--root", str(root), "--labels", "competition",
                     "--uncertain", policy, "--loss", "lmf", "--model", "shufflenet_v2_x0_5", "--weights", "none",
                     "--image-size", "28", "--epochs", "1", "--device", "cpu", "--bootstrap", "0",
                     "--out", str(out), "--quiet"]) == 0
        reports[policy] = json.loads((out / "report.json").read_text())
        assert f"uncertain: {policy}" in (out / "config.yaml").read_text()
    splits = load_splits("chexpert", root=root, options={"labels": "competition"})
    uncertain = sum(1 for r in splits.records("train") if r.group == "patient00001")
    assert uncertain == 2  # patient 1's frontal and lateral view train, with Atelectasis -1
    ones, ignore = (reports[p]["train_label_counts"] for p in ("ones", "ignore"))
    atelectasis = CHEXPERT_COMPETITION.index("Atelectasis")
    assert ones[atelectasis] == [ignore[atelectasis][0], ignore[atelectasis][1] + uncertain]
    assert [c for j, c in enumerate(ones) if j != atelectasis] == [c for j, c in enumerate(ignore) if j != atelectasis]
    assert reports["ones"]["score_by"] == reports["ignore"]["score_by"] == "study"


def test_a_study_scored_report_counts_studies_and_its_card_says_so():
    from lmfloss.modelcard import model_card_text  # only this test writes a model card
    from lmfloss.train.scoring import final_report

    config = TrainConfig(dataset="chexpert", task="multilabel", score_by="study", loss="bce", bootstrap=0,
                         labels="competition")
    rng = np.random.default_rng(0)
    results = {}
    for split in ("val", "test"):
        labels = np.repeat((rng.random((6, 5)) < 0.5).astype(np.int64), 2, axis=0)  # two views per study
        labels[0, 0] = labels[1, 0] = -1  # an uncertain Atelectasis under U-Ignore
        logits = rng.normal(size=(12, 5)).astype(np.float32) + 2 * labels
        results[split] = SplitResult(split, [f"{split}{i}" for i in range(12)], labels, logits, "multilabel",
                                     [f"p{i // 4}" for i in range(12)], [f"p{i // 4}/s{i // 2}" for i in range(12)])
    report = final_report(config, CHEXPERT_COMPETITION, [[6, 6]] * 5, results, best_epoch=1)
    assert report["score_by"] == "study" and report["test"]["n"] == 6
    card = model_card_text(report, config.to_dict())
    assert "(6 studies)" in card and "| val (studies) |" in card and "| scored per | study |" in card
    assert "| data option labels | competition |" in card  # what the labels meant in training


def test_unknown_labels_reach_the_manifest_and_the_fingerprint(tmp_path):
    root = write_chexpert(tmp_path / "data")
    ignore, zeros = (load_splits("chexpert", root=root, options={"labels": "competition", "uncertain": policy})
                     for policy in ("ignore", "zeros"))
    assert ignore.fingerprint() != zeros.fingerprint()  # the same positives, one entry known vs unknown
    with open(ignore.write_manifest(tmp_path / "m.csv"), newline="") as f:
        rows = {row["path"]: row for row in csv.DictReader(f)}
    assert rows["CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"]["unknown"] == "Atelectasis"
    with open(zeros.write_manifest(tmp_path / "z.csv"), newline="") as f:
        assert "unknown" not in next(csv.reader(f))


def test_chexpert_folds_pool_valid_csv_when_asked_and_keep_patients_whole(tmp_path, capsys):
    from lmfloss.data.load import fold_assignment  # only this test assigns folds

    root = write_chexpert(tmp_path / "data")
    assert main(["split", "--dataset", "chexpert", "--root", str(root), "--folds", "3"]) == 2
    assert "--folds-include-test" in one_error_line(capsys, "split")  # valid.csv is kept unless asked
    index, folds = fold_assignment("chexpert", root=root, folds=3, folds_include_test=True,
                                   options={"labels": "competition"})
    fold_of: dict[str, int] = {}
    assert len(index.records) == 48 and set(folds) == {1, 2, 3}
    assert all(fold_of.setdefault(r.group, f) == f for r, f in zip(index.records, folds))


def test_chexpert_prefers_the_release_folder_over_another_train_csv(tmp_path):
    root = write_chexpert(tmp_path / "data")
    (root / "aaa-other").mkdir()
    (root / "aaa-other" / "train.csv").write_text("Path,label\nx.png,a\n")  # another dataset under the root
    assert load_splits("chexpert", root=root, options={"labels": "competition"}).index.source.parent.name == \
        "CheXpert-v1.0-small"


def test_an_image_listed_twice_is_refused_with_both_lines(tmp_path, capsys):
    root = write_nih(tmp_path / "nih", rows=[*NIH_ROWS, NIH_ROWS[4]])
    assert main(["split", "--dataset", "nih-cxr14", "--root", str(root)]) == 2
    assert f"image {NIH_ROWS[4][0]!r} twice (lines 6 and {len(NIH_ROWS) + 2})" in one_error_line(capsys, "split")
