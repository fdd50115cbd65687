"""The paper's split on the real metadata (Table 1, Table 5), determinism and group splits."""

from __future__ import annotations

import csv
import os
import shutil
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from data_helpers import csv_dataset
from lmfloss.data import load_splits, paper_split, paper_split_sizes
from lmfloss.data.splits import group_split
from lmfloss.errors import DataError
from tiers import fixture_marks

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
METADATA = SHARED / "metadata"
needs_metadata = pytest.mark.realdata("data/metadata")

SPLITS = ("train", "val", "test")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _empty_file(path: Path) -> None:
    # os.open, not Path.touch (which tries os.utime first): ~60,000 files, half the time.
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


@pytest.fixture(scope="module")
@fixture_marks(pytest.mark.slow)  # ~63,000 empty files: half a minute of disk, not a fast test
def layouts(tmp_path_factory) -> dict[str, Path]:
    """The four datasets in their published layouts, with empty image files."""
    tmp = tmp_path_factory.mktemp("layouts")
    ham = tmp / "ham"
    for part in (1, 2):
        (ham / f"HAM10000_images_part_{part}").mkdir(parents=True)
    shutil.copy(METADATA / "ham10000" / "HAM10000_metadata.csv", ham)
    for k, row in enumerate(_rows(ham / "HAM10000_metadata.csv")):
        _empty_file(ham / f"HAM10000_images_part_{1 + k % 2}" / f"{row['image_id']}.jpg")

    isic = tmp / "isic"
    nested = isic / "ISIC_2019_Training_Input" / "ISIC_2019_Training_Input"  # Kaggle nests it
    nested.mkdir(parents=True)
    for name in ("ISIC_2019_Training_GroundTruth.csv", "ISIC_2019_Training_Metadata.csv"):
        shutil.copy(METADATA / "isic2019" / name, isic)
    for row in _rows(isic / "ISIC_2019_Training_GroundTruth.csv"):
        _empty_file(nested / f"{row['image']}.jpg")

    odir = tmp / "odir"
    (odir / "preprocessed_images").mkdir(parents=True)
    shutil.copy(METADATA / "odir5k" / "full_df.csv", odir)
    for row in _rows(odir / "full_df.csv"):
        _empty_file(odir / "preprocessed_images" / row["filename"])

    covid = tmp / "covid" / "COVID-19_Radiography_Dataset"  # root is the parent folder
    for name in ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia"):
        (covid / name / "images").mkdir(parents=True)
        for row in _rows(METADATA / "covid19_radiography" / f"{name}.metadata.csv"):
            _empty_file(covid / name / "images" / f"{row['FILE NAME']}.png")
    return {"ham10000": ham, "isic2019": isic, "odir5k": odir, "covid19": tmp / "covid"}


@pytest.mark.parametrize("n", [0, 1, 3, 4, 7, 10, 13, 30, 81, 115, 327, 1099, 6705, 25331])
def test_paper_split_sizes_match_decimal_round_half_up(n):
    held_out = int((Decimal(n) * Decimal("0.15")).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert paper_split_sizes(n) == (n - 2 * held_out, held_out, held_out)


# Table 1 (totals) and Table 5 (per-class training counts) of Sadi et al.
TABLE_1 = {
    "odir5k": (4474, 959, 959),
    "ham10000": (7011, 1502, 1502),
    "isic2019": (17733, 3799, 3799),
    "covid19": (14815, 3175, 3175),
}
TABLE_5 = {
    "odir5k": {"A": 186, "C": 205, "D": 1126, "G": 198, "H": 90, "M": 162, "N": 2011, "O": 496},
    "ham10000": {"AKIEC": 229, "BCC": 360, "BKL": 769, "DF": 81, "MEL": 779, "NV": 4693, "VASC": 100},
    "isic2019": {"AK": 607, "BCC": 2327, "BKL": 1836, "DF": 167, "MEL": 3166, "NV": 9013, "SCC": 440, "VASC": 177},
    "covid19": {"COVID": 2532, "Lung_Opacity": 4208, "Normal": 7134, "Viral Pneumonia": 941},
}


@needs_metadata
@pytest.mark.parametrize("dataset", sorted(TABLE_1))
def test_paper_split_reproduces_table_1_and_table_5(layouts, dataset):
    splits = load_splits(dataset, root=layouts[dataset])
    assert tuple(len(splits.records(s)) for s in SPLITS) == TABLE_1[dataset]
    assert dict(zip(splits.class_names, splits.class_counts("train"))) == TABLE_5[dataset]
    assert splits.class_counts("val") == splits.class_counts("test")
    # the paper's split leaks lesions/patients across sets; COVID-19 has no groups
    assert (splits.straddling_groups > 0) == (dataset != "covid19")


@needs_metadata
def test_split_is_deterministic_and_seed_changes_members_not_counts(layouts):
    a = load_splits("ham10000", root=layouts["ham10000"])
    b = load_splits("ham10000", root=layouts["ham10000"], seed=23)
    c = load_splits("ham10000", root=layouts["ham10000"], seed=7)
    assert a.manifest_rows() == b.manifest_rows()
    for split in SPLITS:
        assert a.class_counts(split) == c.class_counts(split)
    ids_a = {r.id for r in a.records("test")}
    ids_c = {r.id for r in c.records("test")}
    assert ids_a != ids_c
    # a stratified random draw of 15% shares about 15% of its members with another draw
    assert len(ids_a & ids_c) < 0.4 * len(ids_a)


@needs_metadata
def test_splits_partition_the_dataset(layouts):
    splits = load_splits("odir5k", root=layouts["odir5k"])
    ids = [r.id for s in SPLITS for r in splits.records(s)]
    assert len(ids) == len(set(ids)) == 6392


@needs_metadata
def test_split_leakage_is_a_warning_with_counts_and_recorded(layouts, caplog, capsys):
    """Issue 10: the paper's HAM10000 split leaks lesions; say so out loud, with numbers."""
    with caplog.at_level("WARNING", logger="lmfloss.data.load"):
        splits = load_splits("ham10000", root=layouts["ham10000"])
    leak = splits.leakage()
    lesion = {row["image_id"]: row["lesion_id"] for row in _rows(METADATA / "ham10000" / "HAM10000_metadata.csv")}
    seen = {lesion[r.id] for s in ("train", "val") for r in splits.records(s)}
    test = splits.records("test")
    affected = sum(lesion[r.id] in seen for r in test)
    assert leak["test_images_affected"] == affected and leak["test_share"] == pytest.approx(affected / len(test))
    assert leak["straddling_groups"] == splits.straddling_groups > 500
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and f"{affected} test images" in warnings[0] and "--group-by lesion" in warnings[0]
    assert splits.identity()["leakage"] == leak  # recorded in report.json's data (and split_leakage)
    from lmfloss.cli import main

    assert main(["split", "--dataset", "ham10000", "--root", str(layouts["ham10000"]), "--quiet"]) == 0
    assert f"test images sharing a lesion with train/val: {affected}" in capsys.readouterr().out
    grouped = load_splits("ham10000", root=layouts["ham10000"], group_by="lesion")
    assert grouped.leakage()["test_images_affected"] == 0


@needs_metadata
def test_straddling_lesions_counted_independently(layouts):
    """The paper's split leaks: count lesions split across sets straight from the metadata."""
    splits = load_splits("ham10000", root=layouts["ham10000"])
    where = {r.id: s for s in SPLITS for r in splits.records(s)}
    lesion_splits = defaultdict(set)
    for row in _rows(METADATA / "ham10000" / "HAM10000_metadata.csv"):
        lesion_splits[row["lesion_id"]].add(where[row["image_id"]])
    expected = sum(1 for v in lesion_splits.values() if len(v) > 1)
    assert expected > 500  # 10,015 images of only 7,470 lesions
    assert splits.straddling_groups == expected


@needs_metadata
@pytest.mark.parametrize(("dataset", "kind", "column"), [("ham10000", "lesion", "lesion_id"), ("odir5k", "patient", "ID")])
def test_group_split_never_straddles(layouts, dataset, kind, column):
    splits = load_splits(dataset, root=layouts[dataset], group_by=kind)
    assert splits.straddling_groups == 0
    table = {"ham10000": METADATA / "ham10000" / "HAM10000_metadata.csv", "odir5k": METADATA / "odir5k" / "full_df.csv"}[dataset]
    id_column = {"ham10000": "image_id", "odir5k": "filename"}[dataset]
    group_of = {Path(r[id_column]).stem: r[column] for r in _rows(table)}
    seen = defaultdict(set)
    for split in SPLITS:
        for record in splits.records(split):
            seen[group_of[record.id]].add(split)
    assert all(len(v) == 1 for v in seen.values())
    # still close to 70:15:15 per class
    total = [sum(col) for col in zip(*(splits.class_counts(s) for s in SPLITS))]
    for c, n in enumerate(total):
        assert abs(splits.class_counts("val")[c] - 0.15 * n) <= max(3, 0.05 * n)


@needs_metadata
def test_isic_group_split_uses_the_metadata_lesion_ids(layouts):
    grouped = load_splits("isic2019", root=layouts["isic2019"], group_by="lesion")
    assert grouped.straddling_groups == 0
    with_lesion = [r for s in SPLITS for r in grouped.records(s) if r.group]
    lesions = {r["image"]: r["lesion_id"] for r in _rows(METADATA / "isic2019" / "ISIC_2019_Training_Metadata.csv")}
    assert len(with_lesion) == sum(1 for v in lesions.values() if v)
    assert all(r.group == lesions[r.id] for r in with_lesion)


def test_group_split_on_handmade_groups():
    from lmfloss.data import Record

    records = [Record(id=f"i{i}", label=i % 2, group=f"g{i // 3}") for i in range(60)]
    assignment = group_split(records, 2, seed=1)
    by_group = defaultdict(set)
    for record, split in zip(records, assignment):
        by_group[record.group].add(split)
    assert all(len(s) == 1 for s in by_group.values())
    assert set(assignment) == set(SPLITS)


def test_paper_split_counts_per_class():
    labels = [0] * 100 + [1] * 7 + [2] * 13
    assignment = paper_split(labels, 3, seed=23)
    counts = Counter(zip(labels, assignment))
    assert [counts[(0, s)] for s in SPLITS] == [70, 15, 15]
    assert [counts[(1, s)] for s in SPLITS] == [5, 1, 1]  # 1.05 -> 1
    assert [counts[(2, s)] for s in SPLITS] == [9, 2, 2]  # 1.95 -> 2


@needs_metadata
def test_group_by_of_the_wrong_kind_is_rejected(layouts):
    with pytest.raises(ValueError, match="only by 'lesion'.*'patient'"):
        load_splits("ham10000", root=layouts["ham10000"], group_by="patient")
    with pytest.raises(ValueError, match="not at all"):
        load_splits("covid19", root=layouts["covid19"], group_by="patient")
    with pytest.raises(ValueError, match="group_by must be"):
        load_splits("ham10000", root=layouts["ham10000"], group_by="eye")


def test_empty_training_class_is_an_error(tmp_path):
    for name, n in (("a", 5), ("b", 1)):
        (tmp_path / name).mkdir()
        for i in range(n):
            (tmp_path / name / f"{i}.png").touch()
    (tmp_path / "c").mkdir()
    with pytest.raises(DataError, match="class 'c'.*no images"):
        load_splits("imagefolder", root=tmp_path)
    (tmp_path / "c" / "0.png").touch()
    splits = load_splits("imagefolder", root=tmp_path)  # n=1: train 1, val/test 0 (a warning)
    assert splits.class_counts("train") == [3, 1, 1]


# ---- the data's identity: its content, not where it was read ----------------------------------
def test_data_identity_follows_content_not_location(tmp_path):
    from lmfloss.report.runs import ReportRun, assign_dataset_keys

    first = csv_dataset(tmp_path / "site-a")
    other = tmp_path / "site-b"
    shutil.copytree(first.parent, other)
    relabelled = other / "base.csv"  # same stem, same images, one label changed
    relabelled.write_text(first.read_text().replace("img/benign0.png,benign", "img/benign0.png,malignant"))
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(first.parent, moved)

    a = load_splits("csv", csv=first)
    b = load_splits("csv", csv=relabelled)
    c = load_splits("csv", csv=moved / "base.csv")
    assert a.display_name == b.display_name == c.display_name == "base"
    assert a.fingerprint() != b.fingerprint()
    assert a.identity()["fingerprint"] != b.identity()["fingerprint"]
    assert a.fingerprint() == c.fingerprint()
    same = {k: v for k, v in a.identity().items() if k != "source"}
    assert same == {k: v for k, v in c.identity().items() if k != "source"}
    assert a.identity()["source"] != c.identity()["source"]  # where it was read is recorded, not compared

    def run(name: str, splits) -> ReportRun:
        return ReportRun(run_dir=tmp_path / name, status="finished",
                         config={"dataset": "csv", "csv": str(splits.index.source), "model": "resnet18",
                                 "loss": "ce"},
                         report={"data": splits.identity()})

    runs = [run("r1", a), run("r2", b)]
    assign_dataset_keys(runs)
    assert runs[0].dataset_key != runs[1].dataset_key
    assert all("@" in r.dataset_key and r.dataset_key.startswith("base@") for r in runs)
    runs = [run("r1", a), run("r3", c)]
    assign_dataset_keys(runs)
    assert runs[0].dataset_key == runs[1].dataset_key == "base"
