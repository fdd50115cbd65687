"""Every adapter on the real sample files and on generated miniature layouts; bad input."""

from __future__ import annotations

import csv
import hashlib
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lmfloss.data import Splits, get_adapter, list_adapters, load_splits
from lmfloss.data import files as adapters_files
from lmfloss.errors import DataError
from lmfloss.extras import install_hint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLES = SHARED / "samples"
METADATA = SHARED / "metadata"
needs_shared = pytest.mark.realdata("data/samples", "data/metadata")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _all_train(index) -> Splits:
    """Wrap an index without splitting (sample sets are too small for the paper's split)."""
    return Splits(index, ["train"] * len(index.records), seed=23, group_by=None, official=False)


def _png(path: Path, value: int = 128, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size[1], size[0], 3) if mode == "RGB" else (size[1], size[0]), value, np.uint8)
    Image.fromarray(array).save(path)
    return path


# --- HAM10000 -------------------------------------------------------------------------


@pytest.fixture
def ham_kaggle(tmp_path) -> Path:
    """The Kaggle segmentation layout around the real sample images and masks."""
    labels = _rows(SAMPLES / "ham10000" / "labels.csv")
    classes = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]  # the file's column order
    rows = [[r["image_id"], *(1.0 if c == r["ham10000_onehot_class"] else 0.0 for c in classes)] for r in labels]
    _write_csv(tmp_path / "GroundTruth.csv", ["image", *classes], rows)
    (tmp_path / "images").symlink_to(SAMPLES / "ham10000" / "images")
    (tmp_path / "masks").symlink_to(SAMPLES / "ham10000" / "masks")
    return tmp_path


@needs_shared
def test_ham10000_kaggle_layout_on_real_samples(ham_kaggle):
    index = adapters_files.index_ham10000(ham_kaggle)
    labels = {r["image_id"]: r["ham10000_onehot_class"] for r in _rows(SAMPLES / "ham10000" / "labels.csv")}
    assert index.class_names == ["AKIEC", "BCC", "BKL", "DF", "MEL", "NV", "VASC"]
    assert {r.id: index.class_names[r.label] for r in index.records} == labels
    splits = _all_train(index)
    record = next(r for r in index.records if r.id == "ISIC_0027001")
    image = splits.load_image(record)
    with Image.open(SAMPLES / "ham10000" / "images" / "ISIC_0027001.jpg") as reference:
        np.testing.assert_array_equal(image, np.asarray(reference.convert("RGB")))
    assert image.dtype == np.uint8 and image.shape[2] == 3


@needs_shared
def test_ham10000_kaggle_layout_without_lesion_ids_cannot_group(ham_kaggle):
    with pytest.raises(DataError, match="no lesion ids.*HAM10000_metadata.csv"):
        load_splits("ham10000", root=ham_kaggle, group_by="lesion")


@needs_shared
def test_ham10000_boxes_from_masks_match_pil_getbbox(ham_kaggle):
    splits = _all_train(adapters_files.index_ham10000(ham_kaggle))
    by_id = {r.id: r for r in splits.records("train")}
    masks = sorted((SAMPLES / "ham10000" / "masks").glob("*_segmentation.png"))
    assert len(masks) == 5
    for mask in masks:
        with Image.open(mask) as m:
            expected = m.convert("L").point(lambda v: 255 if v > 127 else 0).getbbox()
        assert splits.boxes(by_id[mask.name.replace("_segmentation.png", "")]) == [expected]
    assert splits.boxes(by_id["ISIC_0024306"]) is None  # no mask for this one


@needs_shared
def test_ham10000_dataverse_layout_on_real_samples(tmp_path):
    sample_ids = {p.stem for p in (SAMPLES / "ham10000" / "images").glob("*.jpg")}
    meta = [r for r in _rows(METADATA / "ham10000" / "HAM10000_metadata.csv") if r["image_id"] in sample_ids]
    _write_csv(tmp_path / "HAM10000_metadata.csv", list(meta[0]), [list(r.values()) for r in meta])
    for k, row in enumerate(meta):
        part = tmp_path / f"HAM10000_images_part_{1 + k % 2}"
        part.mkdir(exist_ok=True)
        (part / f"{row['image_id']}.jpg").symlink_to(SAMPLES / "ham10000" / "images" / f"{row['image_id']}.jpg")
    index = adapters_files.index_ham10000(tmp_path)
    assert len(index.records) == len(sample_ids) == 19
    for record, row in zip(index.records, meta):
        assert record.id == row["image_id"]
        assert index.class_names[record.label] == row["dx"].upper()
        assert record.group == row["lesion_id"]
    assert _all_train(index).load_image(index.records[0]).shape == (450, 600, 3)


# --- ISIC 2019, ODIR-5K, COVID-19 -----------------------------------------------------


@needs_shared
def test_isic2019_on_real_samples_nested_kaggle_folders(tmp_path):
    labels = {r["image_id"]: r["isic2019_class"] for r in _rows(SAMPLES / "ham10000" / "labels.csv")}
    truth = _rows(METADATA / "isic2019" / "ISIC_2019_Training_GroundTruth.csv")
    rows = [r for r in truth if r["image"] in labels]
    _write_csv(tmp_path / "ISIC_2019_Training_GroundTruth.csv", list(rows[0]), [list(r.values()) for r in rows])
    nested = tmp_path / "ISIC_2019_Training_Input" / "ISIC_2019_Training_Input"
    nested.mkdir(parents=True)
    for image_id in labels:
        (nested / f"{image_id}.jpg").symlink_to(SAMPLES / "ham10000" / "images" / f"{image_id}.jpg")
    index = get_adapter("isic2019").index(tmp_path, None, False)
    assert index.class_names == ["AK", "BCC", "BKL", "DF", "MEL", "NV", "SCC", "VASC"]
    assert {r.id: index.class_names[r.label] for r in index.records} == labels


@needs_shared
def test_odir5k_on_real_samples(tmp_path):
    labels = {r["filename"]: r for r in _rows(SAMPLES / "odir5k" / "labels.csv")}
    full = [r for r in _rows(METADATA / "odir5k" / "full_df.csv") if r["filename"] in labels]
    _write_csv(tmp_path / "full_df.csv", list(full[0]), [list(r.values()) for r in full])
    (tmp_path / "preprocessed_images").symlink_to(SAMPLES / "odir5k" / "images")
    splits = load_splits("odir5k", root=tmp_path)  # 3 images per class: all of them train
    records = splits.records("train")
    assert len(records) == len(labels) == 24
    for record in records:
        row = labels[f"{record.id}.jpg"]
        assert splits.class_names[record.label] == row["kaggle_label"]
        assert record.group == f"patient-{row['patient_ID']}"
    assert splits.load_image(records[0]).shape == (512, 512, 3)


@needs_shared
def test_covid19_on_real_samples_root_is_the_parent_folder():
    root = SAMPLES / "covid19_radiography"  # class folders live one level down, in images/
    index = adapters_files.index_covid19(root)
    labels = {r["file_name"]: r["class"] for r in _rows(root / "labels.csv")}
    assert {r.id: index.class_names[r.label] for r in index.records} == labels
    image = _all_train(index).load_image(index.records[0])
    assert image.shape == (224, 224, 3)
    # the samples have no Lung_Opacity images: splitting must say so, not drop the class
    with pytest.raises(DataError, match="'Lung_Opacity'.*no images"):
        load_splits("covid19", root=root)


def test_covid19_older_layout_images_directly_in_class_folders(tmp_path):
    for name in ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia"):
        for i in range(1, 8):
            _png(tmp_path / name / f"{name}-{i}.png", mode="L")
    splits = load_splits("covid19", root=tmp_path)
    assert splits.class_counts("train") == [5, 5, 5, 5]
    # natural order: COVID-2 comes before COVID-10 would; ids are file stems
    assert [r.id for r in splits.index.records[:3]] == ["COVID-1", "COVID-2", "COVID-3"]
    image = splits.load_image(splits.records("val")[0])
    assert image.shape == (30, 40, 3) and (image[..., 0] == image[..., 2]).all()


# --- imagefolder and csv --------------------------------------------------------------


def test_imagefolder_miniature(tmp_path):
    for name, n in (("benign", 10), ("malignant", 4)):
        for i in range(n):
            _png(tmp_path / name / "sub" / f"{i}.png", value=20 * i)
    splits = load_splits("imagefolder", root=tmp_path)
    assert splits.class_names == ["benign", "malignant"]
    assert [splits.class_counts(s) for s in ("train", "val", "test")] == [[6, 2], [2, 1], [2, 1]]  # 15% of 10 = 1.5 -> 2
    assert splits.records("train")[0].id.startswith("benign/sub/")


def test_csv_with_split_column_relative_to_csv_folder(tmp_path):
    rows = []
    for i in range(9):
        _png(tmp_path / "img" / f"{i}.png")
        rows.append([f"img/{i}.png", ["b", "a", "c"][i % 3], ["train", "train", "val", "test", "train", "train", "val", "test", "train"][i]])
    table = _write_csv(tmp_path / "labels.csv", ["path", "label", "split"], rows)
    splits = load_splits("csv", csv=table)
    assert splits.official
    assert splits.class_names == ["a", "b", "c"]
    assert [r.id for r in splits.records("val")] == ["img/2.png", "img/6.png"]
    assert splits.class_counts("train") == [2, 1, 2]


def test_csv_without_split_uses_the_paper_split_and_root(tmp_path):
    data = tmp_path / "data"
    rows = []
    for i in range(40):
        _png(data / f"{i}.png")
        rows.append([f"{i}.png", str(i % 2 * 10)])
    table = _write_csv(tmp_path / "labels.csv", ["path", "label"], rows)
    splits = load_splits("csv", root=data, csv=table)
    assert splits.class_names == ["0", "10"]  # numeric labels sort numerically
    assert [splits.class_counts(s) for s in ("train", "val", "test")] == [[14, 14], [3, 3], [3, 3]]


# --- MedMNIST -------------------------------------------------------------------------


@pytest.mark.realdata("data/retinamnist/retinamnist.npz")
@pytest.mark.parametrize(
    ("flag", "counts"),
    [
        ("retinamnist", {"train": [486, 128, 206, 194, 66], "val": [54, 12, 28, 20, 6], "test": [174, 46, 92, 68, 20]}),
        ("breastmnist", {"train": [147, 399], "val": [21, 57], "test": [42, 114]}),
    ],
)
def test_medmnist_official_splits_on_real_files(flag, counts):
    splits = load_splits(flag, root=SHARED / flag)
    assert splits.official
    assert {s: splits.class_counts(s) for s in counts} == counts
    with np.load(SHARED / flag / f"{flag}.npz") as data:
        reference = data["test_images"][5]
        labels = data["val_labels"].ravel()
    record = splits.records("test")[5]
    image = splits.load_image(record)
    assert image.shape == (28, 28, 3)
    if reference.ndim == 2:  # breastmnist is grayscale: repeated into 3 channels
        reference = np.repeat(reference[..., None], 3, axis=-1)
    np.testing.assert_array_equal(image, reference)
    assert [r.label for r in splits.records("val")] == labels.tolist()


def test_medmnist_missing_file_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="dermamnist_224.npz.*--download"):
        load_splits("dermamnist_224", root=tmp_path)


def test_medmnist_download_without_the_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "medmnist", None)  # import medmnist -> ImportError
    with pytest.raises(DataError, match=re.escape(install_hint("medmnist")) + ".*pneumoniamnist.npz"):
        load_splits("pneumoniamnist", root=tmp_path, download=True)


@pytest.fixture
def fake_medmnist(tmp_path, monkeypatch):
    """A stand-in ``medmnist`` package whose INFO points at a local file (no network)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 20), ("val", 6), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1)
    source = tmp_path / "source.npz"
    np.savez(source, **arrays)
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    module = types.ModuleType("medmnist")
    module.INFO = {"pneumoniamnist": {"url": source.as_uri(), "MD5": md5}}
    monkeypatch.setitem(sys.modules, "medmnist", module)
    return module, arrays


def test_medmnist_download_uses_the_package_info_and_checks_md5(tmp_path, fake_medmnist):
    module, arrays = fake_medmnist
    root = tmp_path / "medmnist"
    splits = load_splits("pneumoniamnist", root=root, download=True)
    assert (root / "pneumoniamnist.npz").is_file()
    assert splits.class_names == ["normal", "pneumonia"]
    assert splits.class_counts("train") == [10, 10]
    np.testing.assert_array_equal(splits.load_image(splits.records("val")[2])[..., 1], arrays["val_images"][2])
    module.INFO["pneumoniamnist"]["MD5"] = "0" * 32
    with pytest.raises(DataError, match="MD5"):
        load_splits("pneumoniamnist", root=tmp_path / "other", download=True)
    assert not list((tmp_path / "other").glob("*.npz"))  # nothing half-written is left


# --- registry and bad input -----------------------------------------------------------


def test_registry_lists_every_adapter_of_the_issue():
    names = {a.name for a in list_adapters()}
    assert {"ham10000", "isic2019", "odir5k", "covid19", "imagefolder", "csv", "synthetic",
            "dermamnist", "retinamnist", "breastmnist", "pneumoniamnist", "bloodmnist"} <= names
    with pytest.raises(ValueError, match="unknown dataset 'ham10k'.*'ham10000'"):
        get_adapter("ham10k")


def test_missing_root_names_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; expected layout.*HAM10000_metadata.csv"):
        load_splits("ham10000", root=tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no HAM10000 label file.*GroundTruth.csv"):
        load_splits("ham10000", root=tmp_path)
    with pytest.raises(ValueError, match="needs --root"):
        load_splits("odir5k")


def test_csv_without_needed_columns_names_them(tmp_path):
    _write_csv(tmp_path / "HAM10000_metadata.csv", ["lesion_id", "image", "diagnosis"], [["L1", "x", "nv"]])
    with pytest.raises(DataError, match=r"lacks column\(s\) \['image_id', 'dx'\]"):
        load_splits("ham10000", root=tmp_path)
    table = _write_csv(tmp_path / "mine.csv", ["file", "label"], [["a.png", "x"]])
    with pytest.raises(DataError, match=r"lacks column\(s\) \['path'\]"):
        load_splits("csv", csv=table)


def test_label_outside_the_classes_is_named(tmp_path):
    _write_csv(tmp_path / "HAM10000_metadata.csv", ["lesion_id", "image_id", "dx"], [["L1", "ISIC_1", "nv"], ["L2", "ISIC_2", "scc"]])
    with pytest.raises(DataError, match="label 'SCC' of 'ISIC_2' is not one of the classes"):
        load_splits("ham10000", root=tmp_path)


def test_one_hot_row_with_two_classes_is_rejected(tmp_path):
    classes = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    _write_csv(tmp_path / "GroundTruth.csv", ["image", *classes], [["ISIC_9", 1, 1, 0, 0, 0, 0, 0]])
    with pytest.raises(DataError, match="'ISIC_9' has 2 classes set"):
        load_splits("ham10000", root=tmp_path)


def test_missing_image_files_are_counted_and_named(tmp_path):
    rows = [[f"L{i}", f"ISIC_{i:03d}", "nv"] for i in range(12)]
    _write_csv(tmp_path / "HAM10000_metadata.csv", ["lesion_id", "image_id", "dx"], rows)
    (tmp_path / "HAM10000_images_part_1").mkdir()
    for i in range(5):
        (tmp_path / "HAM10000_images_part_1" / f"ISIC_{i:03d}.jpg").touch()
    with pytest.raises(FileNotFoundError, match=r"7 image files .* missing .*first: ISIC_005, ISIC_006, ISIC_007, ISIC_008, ISIC_009, \.\.\."):
        load_splits("ham10000", root=tmp_path)


def test_csv_adapter_bad_input(tmp_path):
    with pytest.raises(ValueError, match="needs --csv"):
        load_splits("csv", root=tmp_path)
    _png(tmp_path / "a.png")
    table = _write_csv(tmp_path / "t.csv", ["path", "label", "split"], [["a.png", "x", "training"]])
    with pytest.raises(DataError, match=r"split values \['training'\]"):
        load_splits("csv", csv=table)
    table = _write_csv(tmp_path / "t.csv", ["path", "label"], [["a.png", "x"], ["b.png", "y"]])
    with pytest.raises(FileNotFoundError, match="1 image files.*b.png"):
        load_splits("csv", csv=table)


def test_skip_bad_images_drops_unparseable_files_and_records_them(tmp_path):
    for name in ("a", "b"):
        for i in range(8):
            _png(tmp_path / name / f"{i}.png")
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png at all")
    splits = load_splits("imagefolder", root=tmp_path, skip_bad_images=True)
    assert [Path(p).name for p in splits.skipped] == ["broken.png"]
    assert sum(sum(splits.class_counts(s)) for s in ("train", "val", "test")) == 16
