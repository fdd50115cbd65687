"""Reading a user's own images (issue 9: nothing lost, nothing silently wrong).

Image folders with per-patient sub-folders and CSV files with odd spellings, encodings,
missing fields and group columns, read by ``lmfloss.data.files`` through ``load_splits`` and
``lmfloss split``. A user's mistake ends in exit code 2 and one stderr line naming the culprit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import one_error_line
from data_helpers import CLASSES, csv_dataset, rgb, split_of
from lmfloss.cli import main
from lmfloss.data import load_splits
from lmfloss.errors import DataError


def test_imagefolder_indexes_every_file_and_groups_by_patient_folder(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "folders"
    on_disk = []
    for k, name in enumerate(CLASSES):
        for p in range(1, 11):
            patient = root / name / f"patient{p + 10 * k:02d}"
            patient.mkdir(parents=True)
            # Every patient's file has the same name: the old index kept one per name.
            for file in ["image.png"] + (["second.png"] if p % 2 else []):
                Image.fromarray(rgb(rng, k)).save(patient / file)
                on_disk.append(f"{name}/{patient.name}/{file}")
    # Same stem, two formats, one folder: two images.
    Image.fromarray(rgb(rng, 0)).save(root / "benign" / "patient01" / "x.png")
    Image.fromarray(rgb(rng, 0)).save(root / "benign" / "patient01" / "x.jpg")
    on_disk += ["benign/patient01/x.png", "benign/patient01/x.jpg"]

    splits = load_splits("imagefolder", root=root, group_by="patient")
    records = [r for s in ("train", "val", "test") for r in splits.records(s)]
    assert len(records) == len(on_disk) == 32
    assert sorted(r.id for r in records) == sorted(on_disk)  # root-relative posix paths
    for record in records:
        assert Path(record.path) == (root / record.id).resolve()
        assert splits.class_names[record.label] == record.id.split("/")[0]
        assert record.group == record.id.split("/")[1]  # the patient folder
    where = split_of(splits)
    assert len(where) == 20
    assert all(len(s) == 1 for s in where.values()), {g: s for g, s in where.items() if len(s) > 1}
    assert splits.straddling_groups == 0
    assert all(splits.records(s) for s in ("val", "test"))  # the check above is not vacuous


def test_csv_rows_naming_one_file_twice_are_refused(tmp_path):
    (tmp_path / "base").mkdir()
    Image.fromarray(rgb(np.random.default_rng(4), 0)).save(tmp_path / "base" / "a.png")
    Image.fromarray(rgb(np.random.default_rng(5), 1)).save(tmp_path / "base" / "b.png")
    spelled = tmp_path / "spelled.csv"
    spelled.write_text("path,label\nbase/b.png,y\n./base/a.png,x\nbase//a.png,y\n")
    with pytest.raises(DataError, match=r"lines 3 and 4 name the same image") as info:
        load_splits("csv", csv=spelled)
    assert "'./base/a.png'" in str(info.value) and "'base//a.png'" in str(info.value)
    assert str(spelled) in str(info.value)

    os.symlink(tmp_path / "base" / "a.png", tmp_path / "link.png")
    linked = tmp_path / "linked.csv"
    linked.write_text("path,label\nbase/a.png,x\nbase/b.png,y\nlink.png,x\n")
    with pytest.raises(DataError, match=r"lines 2 and 4 name the same image"):
        load_splits("csv", csv=linked)


def test_csv_row_without_label_is_one_line_naming_the_line(tmp_path, capsys):
    table = csv_dataset(tmp_path, n=3)
    lines = table.read_text().splitlines()
    lines.insert(3, "img/benign9.png")
    table.write_text("\n".join(lines) + "\n")
    assert main(["split", "--dataset", "csv", "--csv", str(table)]) == 2
    line = one_error_line(capsys, "split")
    assert str(table) in line and "line 4" in line and "label" in line


def test_cp1252_csv_is_one_line_naming_utf8(tmp_path, capsys):
    table = csv_dataset(tmp_path, n=3)
    table.write_bytes(table.read_text().replace("malignant", "Übel").encode("cp1252"))
    assert b"\xdc" in table.read_bytes()
    assert main(["split", "--dataset", "csv", "--csv", str(table)]) == 2
    line = one_error_line(capsys, "split")
    assert str(table) in line and "UTF-8" in line


def test_csv_group_column_keeps_patients_in_one_split(tmp_path, capsys):
    rng = np.random.default_rng(7)
    (tmp_path / "img").mkdir()
    lines = ["path,label,patient_id"]
    for k, name in enumerate(CLASSES):
        for p in range(8):
            for i in range(2):
                file = f"img/{name}-{p}-{i}.png"
                Image.fromarray(rgb(rng, k)).save(tmp_path / file)
                lines.append(f"{file},{name},P{k}{p}")
    table = tmp_path / "grouped.csv"
    table.write_text("\n".join(lines) + "\n")
    splits = load_splits("csv", csv=table, group_by="patient")
    where = split_of(splits)
    assert len(where) == 16 and all(len(s) == 1 for s in where.values())
    assert splits.straddling_groups == 0
    assert all(splits.records(s) for s in ("val", "test"))
    assert main(["split", "--dataset", "csv", "--csv", str(table), "--group-by", "patient", "--quiet"]) == 0

    plain = csv_dataset(tmp_path / "plain", n=4)
    capsys.readouterr()
    assert main(["split", "--dataset", "csv", "--csv", str(plain), "--group-by", "patient"]) == 2
    line = one_error_line(capsys, "split")
    assert str(plain) in line and "add a column group" in line and "patient_id" in line
