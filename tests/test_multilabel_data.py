"""Multi-label data (issue 19): the csv adapter's labels column and 0/1 columns, ODIR-5K's official
task, ChestMNIST from its npz, the synthetic multi-label set, iterative-stratification splits
grouped by patient -- and every bad input as one line, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import one_error_line as _one_error_line
from lmfloss.cli import main
from lmfloss.data import load_splits
from lmfloss.data.multilabel import targets_matrix

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ODIR = SHARED / "odir5k_128"
LABELS = ("effusion", "hernia", "mass")


def _images(folder: Path, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(folder / "img" / f"x{i}.png")
        names.append(f"img/x{i}.png")
    return names


def _findings(i: int) -> list[str]:
    """A deterministic multi-label pattern: every label common enough for a 70:15:15 split."""
    out = []
    if i % 2 == 0:
        out.append("effusion")
    if i % 5 == 0:
        out.append("hernia")
    if i % 3 == 0:
        out.append("mass")
    return out


def _labels_csv(folder: Path, n: int = 60, split: bool = False, rows: list[str] | None = None) -> Path:
    names = _images(folder, n)
    lines = ["path,labels" + (",split" if split else "")]
    for i, name in enumerate(names):
        tail = f",{('train', 'train', 'train', 'val', 'test')[i % 5]}" if split else ""
        lines.append(f"{name},{';'.join(_findings(i))}{tail}")
    lines += rows or []
    path = folder / "findings.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _columns_csv(folder: Path, n: int = 60, cell=None) -> Path:
    names = _images(folder, n)
    lines = ["path," + ",".join(LABELS)]
    for i, name in enumerate(names):
        found = _findings(i)
        values = ["1" if label in found else "0" for label in LABELS]
        if cell is not None and i == 7:
            values[1] = cell
        lines.append(f"{name},{','.join(values)}")
    path = folder / "columns.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ adapters
def test_csv_labels_column_gives_label_sets_in_a_deterministic_order(tmp_path):
    splits = load_splits("csv", csv=_labels_csv(tmp_path), task="multilabel")
    assert splits.task == "multilabel"
    assert splits.class_names == sorted(LABELS)
    records = {r.id: r for s in ("train", "val", "test") for r in splits.records(s)}
    assert records["img/x0.png"].labels == (0, 1, 2)  # effusion;hernia;mass
    assert records["img/x1.png"].labels == ()  # an empty cell: no finding, a valid image
    assert records["img/x1.png"].label is None
    assert len(records) == 60


def test_label_columns_give_the_same_targets_as_the_labels_column(tmp_path):
    a = load_splits("csv", csv=_labels_csv(tmp_path / "a"), task="multilabel")
    b = load_splits("csv", csv=_columns_csv(tmp_path / "b"), task="multilabel", label_columns=list(LABELS))
    assert a.class_names == b.class_names == list(LABELS)
    for split in ("train", "val", "test"):
        ta = targets_matrix(a.records(split), 3)
        tb = targets_matrix(b.records(split), 3)
        assert [r.id for r in a.records(split)] == [r.id for r in b.records(split)]
        assert np.array_equal(ta, tb)


def test_split_keeps_every_label_in_every_split_and_patients_together(tmp_path):
    names = _images(tmp_path, 80)
    lines = ["path,labels,patient_id"]
    for i, name in enumerate(names):
        lines.append(f"{name},{';'.join(_findings(i // 2))},p{i // 2}")  # two images per patient
    path = tmp_path / "grouped.csv"
    path.write_text("\n".join(lines) + "\n")
    splits = load_splits("csv", csv=path, task="multilabel", group_by="patient")
    where = {}
    for split in ("train", "val", "test"):
        for r in splits.records(split):
            where.setdefault(r.group, set()).add(split)
        positives = targets_matrix(splits.records(split), 3).sum(axis=0)
        assert (positives > 0).all(), (split, positives)
    assert all(len(s) == 1 for s in where.values())
    sizes = [len(splits.records(s)) for s in ("train", "val", "test")]
    assert sizes[0] > sizes[1] > 0 and sizes[2] > 0
    # The same seed, the same split; another seed, another.
    again = load_splits("csv", csv=path, task="multilabel", group_by="patient")
    assert [r.id for r in again.records("test")] == [r.id for r in splits.records("test")]


def test_synthetic_multilabel_set_knows_every_lesion_box_and_kind():
    splits = load_splits("synthetic", task="multilabel")
    assert splits.task == "multilabel" and len(splits.class_names) == 5
    record = next(r for r in splits.records("train") if len(r.labels) >= 2)
    boxes = splits.boxes(record)
    assert len(boxes) == len(record.labels)
    for label in record.labels:
        assert len(splits.boxes(record, label=label)) == 1
    counts = splits.label_counts("train")
    assert all(neg > pos > 0 for neg, pos in counts)


def test_chestmnist_npz_of_the_official_format_is_multilabel_by_nature(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 40), ("val", 10), ("test", 10)):
        arrays[f"{split}_images"] = (rng.random((n, 28, 28)) * 255).astype(np.uint8)
        labels = (rng.random((n, 14)) < 0.3).astype(np.uint8)
        labels[0] = 1  # every label present in every split
        arrays[f"{split}_labels"] = labels
    np.savez(tmp_path / "chestmnist.npz", **arrays)
    splits = load_splits("chestmnist", root=tmp_path)
    assert splits.task == "multilabel" and splits.official
    assert splits.class_names[0] == "atelectasis" and splits.class_names[-1] == "hernia"
    assert np.array_equal(targets_matrix(splits.records("val"), 14), arrays["val_labels"])


@pytest.mark.realdata("data/odir5k_128/full_df.csv")
def test_odir5k_official_task_has_the_patient_labels_on_both_eyes():
    import csv

    splits = load_splits("odir5k", root=ODIR, task="multilabel")  # patients kept whole without --group-by
    assert splits.group_by == "patient"
    assert splits.class_names == ["N", "D", "G", "C", "A", "H", "M", "O"]
    rows = list(csv.DictReader((ODIR / "full_df.csv").open(encoding="utf-8")))
    records = [r for s in ("train", "val", "test") for r in splits.records(s)]
    assert len(records) == len(rows) == 4474
    by_id = {r.id: r for r in records}
    for row in rows[:200]:
        record = by_id[row["filename"].rsplit(".", 1)[0]]
        assert record.labels == tuple(j for j, c in enumerate(splits.class_names) if row[c].strip() == "1")
        assert record.group == f"patient-{row['ID']}"
    where = {}
    for split in ("train", "val", "test"):
        for r in splits.records(split):
            where.setdefault(r.group, set()).add(split)
    assert len(where) == 2351 and all(len(s) == 1 for s in where.values())
    test_pos = targets_matrix(splits.records("test"), 8).sum(axis=0)
    assert (test_pos > 0).all()  # even H (203 positive patients of 3,500) reaches test


# ------------------------------------------------------------------------------ bad input
def test_unknown_label_in_val_or_test_only_is_one_line(tmp_path, capsys):
    names = _images(tmp_path, 30)
    lines = ["path,labels,split"]
    for i, name in enumerate(names):
        split = ("train", "val", "test")[i % 3]
        label = "effusion" if i % 2 else "mass"
        if i == 5:
            label = "effusoin"  # a typo, in the test split only
        lines.append(f"{name},{label},{split}")
    path = tmp_path / "typo.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "manifest.csv"
    assert main(["split", "--dataset", "csv", "--csv", str(path), "--task", "multilabel", "--out", str(out)]) == 2
    line = _one_error_line(capsys, "split")
    assert "'effusoin'" in line and "line 7" in line and "train" in line
    assert not out.exists()


def test_a_row_with_both_a_labels_value_and_label_columns_is_one_line(tmp_path, capsys):
    path = _columns_csv(tmp_path)
    text = path.read_text().splitlines()
    text[0] += ",labels"
    text = [text[0]] + [row + ("," + ("mass" if i == 3 else "")) for i, row in enumerate(text[1:])]
    path.write_text("\n".join(text) + "\n")
    code = main(["split", "--dataset", "csv", "--csv", str(path), "--task", "multilabel",
                 "--label-columns", ",".join(LABELS)])
    assert code == 2
    line = _one_error_line(capsys, "split")
    assert "line 5" in line and "labels" in line


@pytest.mark.parametrize("cell", ["2", "yes"])
def test_a_label_column_holding_something_other_than_0_or_1_is_one_line(tmp_path, capsys, cell):
    path = _columns_csv(tmp_path, cell=cell)
    assert main(["split", "--dataset", "csv", "--csv", str(path), "--task", "multilabel",
                 "--label-columns", ",".join(LABELS)]) == 2
    line = _one_error_line(capsys, "split")
    assert f"{cell!r}" in line and "hernia" in line and "line 9" in line


def test_a_label_without_a_training_positive_is_one_line_and_writes_nothing(tmp_path, capsys):
    names = _images(tmp_path, 30)
    lines = ["path,labels,split"] + [f"{n},{'effusion' if i % 2 else ''},{'train' if i < 20 else 'test'}"
                                     for i, n in enumerate(names)]
    lines.append(lines[-1].replace(",test", ",val").replace("img/x29.png", "img/x28.png"))
    lines[-2] = f"{names[29]},mass,test"  # mass only in test
    path = tmp_path / "rare.csv"
    path.write_text("\n".join(lines[:-1]) + "\n")
    out = tmp_path / "run"
    code = main(["train", "--dataset", "csv", "--csv", str(path), "--task", "multilabel", "--loss", "lmf",
                 "--model", "shufflenet_v2_x0_5", "--weights", "none", "--image-size", "28", "--epochs", "1",
                 "--device", "cpu", "--bootstrap", "0", "--out", str(out), "--quiet"])
    assert code == 2
    line = _one_error_line(capsys, "train")
    assert "'mass'" in line and "train" in line
    assert not out.exists()


def test_multilabel_on_a_multiclass_only_dataset_or_loss_is_one_line(tmp_path, capsys):
    assert main(["split", "--dataset", "covid19", "--root", str(tmp_path), "--task", "multilabel"]) == 2
    assert "multi-class only" in _one_error_line(capsys, "split")
    assert main(["train", "--dataset", "synthetic", "--task", "multilabel", "--loss", "wce", "--out",
                 str(tmp_path / "r")]) == 2
    assert "'wce' is for multi-class tasks only" in _one_error_line(capsys, "train")


def test_split_says_how_a_multilabel_set_was_split(tmp_path, capsys):
    path = _labels_csv(tmp_path)
    assert main(["split", "--dataset", "csv", "--csv", str(path), "--task", "multilabel"]) == 0
    out = capsys.readouterr().out
    assert "an iteratively stratified 70:15:15 multi-label split, seed 23" in out and "the paper's" not in out


def test_scoring_patients_keeps_each_patients_images_in_one_split():
    """score_by patient combines a patient's eyes, so they must share a split: the config layer
    sets group_by patient (recorded in config.yaml) and refuses another grouping."""
    from lmfloss.config import TrainConfig, check_config
    from lmfloss.data.adapters import resolve_config

    odir = resolve_config(check_config(TrainConfig(dataset="odir5k", task="multilabel")))
    assert (odir.score_by, odir.group_by) == ("patient", "patient")
    csv = resolve_config(check_config(TrainConfig(dataset="csv", task="multilabel", score_by="patient")))
    assert csv.group_by == "patient"
    assert resolve_config(TrainConfig(dataset="csv", task="multilabel")).group_by is None  # images scored alone
    with pytest.raises(ValueError, match="use group_by patient, not 'lesion'"):
        resolve_config(TrainConfig(dataset="csv", task="multilabel", score_by="patient", group_by="lesion"))


def test_chestmnist_takes_multilabel_options_without_task():
    """ChestMNIST is multi-label by nature: --score-by and friends are checked after its task is settled."""
    from lmfloss.config import TrainConfig, check_config
    from lmfloss.data.adapters import resolve_config

    config = resolve_config(check_config(TrainConfig(dataset="chestmnist", score_by="image")))
    assert (config.task, config.score_by, config.select_metric) == ("multilabel", "image", "map")
    with pytest.raises(ValueError, match="score_by='image' is for multi-label tasks"):
        resolve_config(check_config(TrainConfig(dataset="synthetic", score_by="image")))
    with pytest.raises(ValueError, match="label_columns is for multi-label tasks"):
        resolve_config(check_config(TrainConfig(dataset="csv", label_columns=["A", "B"])))


@pytest.mark.parametrize("joined", ["effusion|mass", '"effusion,mass"'])
def test_labels_joined_by_another_separator_are_one_line(tmp_path, capsys, joined):
    """NIH ChestX-ray14 writes 'A|B': read with ';' that would be a label 'A|B' of its own."""
    path = _labels_csv(tmp_path)
    Image.new("RGB", (16, 16)).save(tmp_path / "img" / "extra.png")
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"img/extra.png,{joined}\n")
    assert main(["split", "--dataset", "csv", "--csv", str(path), "--task", "multilabel"]) == 2
    line = _one_error_line(capsys, "split")
    assert f"line 62: label {joined.strip(chr(34))!r} looks like several labels" in line
    assert "separates names with ';' (e.g. effusion;mass)" in line


def test_a_label_column_with_a_semicolon_is_one_line(tmp_path, capsys):
    path = _columns_csv(tmp_path)
    path.write_text(path.read_text().replace("path,effusion,", "path,effusion;left,", 1))
    assert main(["split", "--dataset", "csv", "--csv", str(path), "--task", "multilabel",
                 "--label-columns", "effusion;left,hernia,mass"]) == 2
    assert "label 'effusion;left' has a ';'" in _one_error_line(capsys, "split")
