"""``lmfloss split``, ``lmfloss datasets`` and ``lmfloss prepare`` through ``lmfloss.cli.main``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from lmfloss.cli import main
from lmfloss.data import load_splits


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _images(root: Path) -> Path:
    for name, n in (("benign", 14), ("malignant", 7)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((30, 40, 3), 10 * i, np.uint8)).save(root / name / f"{i}.png")
    return root


def test_split_prints_counts_and_writes_manifest(tmp_path, capsys):
    root = _images(tmp_path / "data")
    out = tmp_path / "out" / "manifest.csv"
    assert main(["split", "--dataset", "imagefolder", "--root", str(root), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| benign    |     10 |      2 |      2 |     14 |" in text
    assert "| malignant |      5 |      1 |      1 |      7 |" in text
    assert "| total     |     15 |      3 |      3 |     21 |" in text
    rows = _rows(out)
    assert list(rows[0]) == ["path", "label", "split"]
    assert len(rows) == 21
    assert all((root / r["path"]).is_file() for r in rows)  # relative to the root
    expected = load_splits("imagefolder", root=root)
    assert [r["path"] for r in rows if r["split"] == "test"] == [expected.relative_path(r) for r in expected.records("test")]


def test_split_synthetic_exports_boxes(tmp_path, capsys):
    out = tmp_path / "manifest.csv"
    assert main(["split", "--dataset", "synthetic", "--out", str(out), "--seed", "5"]) == 0
    assert "| total     |   2168 |    466 |    466 |   3100 |" in capsys.readouterr().out
    boxes = _rows(tmp_path / "manifest_boxes.csv")
    splits = load_splits("synthetic", seed=5)
    assert len(boxes) == 3100
    by_id = {r.id: r for s in ("train", "val", "test") for r in splits.records(s)}
    for row in boxes[:50]:
        assert splits.boxes(by_id[row["id"]]) == [tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1"))]


def test_split_group_by_reports_no_straddling(tmp_path, capsys):
    meta = tmp_path / "HAM10000_metadata.csv"
    ids = []
    with meta.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lesion_id", "image_id", "dx"])
        for c, dx in enumerate(["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]):
            for i in range(10):
                image_id = f"ISIC_{c}{i:02d}"
                writer.writerow([f"HAM_{c}{i // 2}", image_id, dx])  # two images per lesion
                ids.append(image_id)
    part = tmp_path / "HAM10000_images_part_1"
    part.mkdir()
    for image_id in ids:
        (part / f"{image_id}.jpg").touch()
    assert main(["split", "--dataset", "ham10000", "--root", str(tmp_path), "--group-by", "lesion"]) == 0
    assert "lesion groups straddling splits: 0" in capsys.readouterr().out
    assert main(["split", "--dataset", "ham10000", "--root", str(tmp_path)]) == 0
    straddling = load_splits("ham10000", root=tmp_path).straddling_groups
    assert straddling > 0
    assert f"lesion groups straddling splits: {straddling}" in capsys.readouterr().out


def test_datasets_lists_adapters_and_sources(capsys):
    assert main(["datasets"]) == 0
    text = capsys.readouterr().out
    for name in ("synthetic", "ham10000", "isic2019", "odir5k", "covid19", "imagefolder", "csv", "dermamnist"):
        assert name in text
    for url in (
        "kaggle.com/datasets/andrewmvd/ocular-disease-recognition-odir5k",
        "kaggle.com/datasets/surajghuwalewala/ham1000-segmentation-and-classification",
        "kaggle.com/datasets/andrewmvd/isic-2019",
        "kaggle.com/datasets/tawsifurrahman/covid19-radiography-database",
        "medmnist.com",
    ):
        assert url in text


def test_prepare_builds_the_cache(tmp_path, capsys):
    root = _images(tmp_path / "data")
    cache = tmp_path / "cache"
    args = ["prepare", "--dataset", "imagefolder", "--root", str(root), "--image-size", "32", "--cache-dir", str(cache), "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "train: 15 images of 32 px" in text
    files = sorted(cache.glob("*.npy"))
    assert len(files) == 3
    assert {np.load(f, mmap_mode="r").shape for f in files} == {(15, 3, 32, 32), (3, 3, 32, 32)}
    assert main(["prepare", "--dataset", "synthetic", "--cache-dir", str(cache)]) == 0
    assert "resized in memory, nothing to cache" in capsys.readouterr().out
    assert len(list(cache.glob("*.npy"))) == 3


def test_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    assert main(["split", "--dataset", "odir5k", "--root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist; expected layout" in err and "full_df.csv" in err
    assert main(["split", "--dataset", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert main(["split", "--dataset", "synthetic", "--boxes-out", str(tmp_path / "b.csv")]) == 0
    capsys.readouterr()
    assert main(["split", "--dataset", "breastmnist", "--root", str(tmp_path)]) == 2
    assert "breastmnist.npz" in capsys.readouterr().err
