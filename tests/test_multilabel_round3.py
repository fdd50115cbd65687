"""Multi-label data, round 3 (issue 26, point 8): nothing silently wrong in a label source."""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import one_error_line
from lmfloss.cli import main
from lmfloss.data import load_splits
from lmfloss.data.multilabel import targets_matrix

NFC = unicodedata.normalize("NFC", "névus")
NFD = unicodedata.normalize("NFD", "névus")


def _images(folder: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(folder / "img" / f"x{i}.png")
    return [f"img/x{i}.png" for i in range(n)]


def _labels(i: int, nevus: str = NFC) -> list[str]:
    return [name for name, every in (("effusion", 2), (nevus, 3), ("mass", 5)) if i % every == 0]


def test_nfc_and_nfd_spellings_in_a_labels_cell_are_one_label_with_an_info_line(tmp_path, caplog):
    names = _images(tmp_path, 60)
    lines = ["path,labels"] + [f"{n},{';'.join(_labels(i, NFD if i % 2 else NFC))}" for i, n in enumerate(names)]
    path = tmp_path / "findings.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="lmfloss"):
        splits = load_splits("csv", csv=path, task="multilabel")
    assert splits.class_names == ["effusion", "mass", NFC]
    merged = [r.getMessage() for r in caplog.records if "Unicode normalisation" in r.getMessage()]
    assert len(merged) == 1 and ascii(NFD) in merged[0] and "1 label(s)" in merged[0]


def test_a_space_after_the_separator_is_not_a_second_spelling(tmp_path, caplog):
    names = _images(tmp_path, 60)
    lines = ["path,labels"] + [f"{n},{'; '.join(_labels(i))}" for i, n in enumerate(names)]
    path = tmp_path / "findings.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="lmfloss"):
        load_splits("csv", csv=path, task="multilabel")
    assert not [r for r in caplog.records if "Unicode normalisation" in r.getMessage()]


@pytest.mark.parametrize(("header", "asked"), [(NFD, NFC), (NFC, NFD)])
def test_label_column_headers_match_in_nfc(tmp_path, header, asked):
    names = _images(tmp_path, 60)
    lines = [f"path,effusion,{header},mass"]
    for i, n in enumerate(names):
        found = _labels(i)
        lines.append(n + "," + ",".join("1" if x in found else "0" for x in ("effusion", NFC, "mass")))
    path = tmp_path / "columns.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    splits = load_splits("csv", csv=path, task="multilabel", label_columns=["effusion", asked, "mass"])
    assert splits.class_names == ["effusion", NFC, "mass"]
    records = {r.id: r for s in ("train", "val", "test") for r in splits.records(s)}
    assert records["img/x0.png"].labels == (0, 1, 2) and records["img/x3.png"].labels == (1,)


def test_a_label_column_that_is_absent_is_still_one_line(tmp_path, capsys):
    names = _images(tmp_path, 10)
    path = tmp_path / "columns.csv"
    path.write_text("path,effusion\n" + "".join(f"{n},1\n" for n in names), encoding="utf-8")
    assert main(["split", "--dataset", "csv", "--csv", str(path), "--task", "multilabel",
                 "--label-columns", f"effusion,{NFC}"]) == 2
    line = one_error_line(capsys, "split")
    assert "lacks column(s)" in line and "névus" in line and "found columns ['path', 'effusion']" in line


def _chestmnist(folder: Path, value: float, dtype=np.float32) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 40), ("val", 10), ("test", 10)):
        arrays[f"{split}_images"] = (rng.random((n, 28, 28)) * 255).astype(np.uint8)
        labels = (rng.random((n, 14)) < 0.3).astype(dtype)
        labels[0] = 1
        if split == "val":
            labels[3, 5] = value
        arrays[f"{split}_labels"] = labels
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "chestmnist.npz", **arrays)
    return folder


@pytest.mark.parametrize("value", [0.7, 0.2, 2.0, -1.0, float("nan")])
def test_a_chestmnist_label_other_than_0_or_1_is_refused_never_cast(tmp_path, capsys, value):
    root = _chestmnist(tmp_path, value)
    assert main(["split", "--dataset", "chestmnist", "--root", str(root)]) == 2
    line = one_error_line(capsys, "split")
    assert "chestmnist.npz" in line and f"holds {value:g}" in line
    assert "val_labels row 3, label 'nodule'" in line  # the place: split, row and label


def test_a_chestmnist_file_of_float_0_and_1_reads_as_integers(tmp_path):
    splits = load_splits("chestmnist", root=_chestmnist(tmp_path, 1.0))
    assert targets_matrix(splits.records("val"), 14)[3, 5] == 1


def test_a_fractional_class_index_in_a_medmnist_file_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 30), ("val", 9), ("test", 9)):
        arrays[f"{split}_images"] = (rng.random((n, 28, 28)) * 255).astype(np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.float64)[:, None]
    arrays["test_labels"][4, 0] = 0.5
    np.savez(tmp_path / "pneumoniamnist.npz", **arrays)
    assert main(["split", "--dataset", "pneumoniamnist", "--root", str(tmp_path)]) == 2
    assert "test_labels row 4 holds 0.5" in one_error_line(capsys, "split")


def _no_finding_csv(folder: Path, word: str = "No Finding") -> Path:
    names = _images(folder, 60)
    lines = ["path,labels"] + [f"{n},{';'.join(_labels(i)) or word}" for i, n in enumerate(names)]
    path = folder / "findings.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_no_finding_reads_that_word_as_no_label(tmp_path, caplog):
    path = _no_finding_csv(tmp_path)
    with caplog.at_level(logging.WARNING, logger="lmfloss"):
        plain = load_splits("csv", csv=path, task="multilabel")
    assert "No Finding" in plain.class_names  # without the option: a label of its own, with a warning
    assert any("look like 'no label'" in r.getMessage() and "--no-finding 'No Finding'" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lmfloss"):
        read = load_splits("csv", csv=path, task="multilabel", options={"no_finding": "No Finding"})
    assert read.class_names == ["effusion", "mass", NFC]
    assert not any("no label" in r.getMessage() for r in caplog.records)
    records = {r.id: r for s in ("train", "val", "test") for r in read.records(s)}
    assert records["img/x1.png"].labels == () and records["img/x0.png"].labels == (0, 1, 2)


@pytest.mark.parametrize("word", ["Normal", "none", "NO FINDING"])
def test_a_label_that_looks_like_no_label_is_warned_about(tmp_path, caplog, word):
    with caplog.at_level(logging.WARNING, logger="lmfloss"):
        load_splits("csv", csv=_no_finding_csv(tmp_path, word), task="multilabel")
    assert any(f"{word!r}" in r.getMessage() and "look like 'no label'" in r.getMessage() for r in caplog.records)


def test_no_finding_names_a_0_1_column_too(tmp_path):
    names = _images(tmp_path, 60)
    lines = ["path,effusion,mass,No Finding"]
    for i, n in enumerate(names):
        found = _labels(i)
        lines.append(f"{n},{int('effusion' in found)},{int('mass' in found)},{int(not found)}")
    path = tmp_path / "columns.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    splits = load_splits("csv", csv=path, task="multilabel", label_columns=["effusion", "mass", "No Finding"],
                         options={"no_finding": "No Finding"})
    assert splits.class_names == ["effusion", "mass"]
    records = {r.id: r for s in ("train", "val", "test") for r in splits.records(s)}
    assert records["img/x1.png"].labels == () and records["img/x0.png"].labels == (0, 1)


def test_no_finding_beside_a_finding_or_on_a_multiclass_task_is_one_line(tmp_path, capsys):
    path = _no_finding_csv(tmp_path)
    path.write_text(path.read_text().replace("img/x2.png,effusion\n", "img/x2.png,effusion;No Finding\n"))
    assert main(["split", "--dataset", "csv", "--csv", str(path), "--task", "multilabel",
                 "--no-finding", "No Finding"]) == 2
    assert "line 4" in one_error_line(capsys, "split")
    assert main(["split", "--dataset", "synthetic", "--task", "multilabel", "--no-finding", "No Finding"]) == 2
    assert "no_finding is an option of dataset csv" in one_error_line(capsys, "split")
    single = tmp_path / "single.csv"
    single.write_text("path,label\n" + "".join(f"img/x{i}.png,{'AB'[i % 2]}\n" for i in range(60)))
    assert main(["split", "--dataset", "csv", "--csv", str(single), "--no-finding", "A"]) == 2
    assert "is for multi-label tasks" in one_error_line(capsys, "split")


def test_no_finding_is_recorded_in_the_config():
    from lmfloss.config import TrainConfig, check_config
    from lmfloss.data.adapters import resolve_config

    config = resolve_config(check_config(TrainConfig(dataset="csv", task="multilabel", no_finding="No Finding")))
    assert config.no_finding == "No Finding" and config.to_dict()["no_finding"] == "No Finding"
    with pytest.raises(ValueError, match="no_finding is an option of dataset csv"):
        resolve_config(check_config(TrainConfig(dataset="chestmnist", no_finding="No Finding")))


def test_a_label_with_few_training_or_validation_positives_is_warned_about_by_name(tmp_path, caplog):
    names = _images(tmp_path, 60)
    lines = ["path,labels,split"]
    for i, n in enumerate(names):
        found = [x for x in _labels(i) if x != NFC] + (["hernia"] if i < 5 else [])
        lines.append(f"{n},{';'.join(found)},{('train', 'train', 'train', 'val', 'test')[i % 5]}")
    path = tmp_path / "rare.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="lmfloss"):
        load_splits("csv", csv=path, task="multilabel")
    few = [r.getMessage() for r in caplog.records if "fewer than 5 training or validation" in r.getMessage()]
    assert len(few) == 1
    assert "1 label(s)" in few[0] and "'hernia' (3 train, 1 val)" in few[0] and "effusion" not in few[0]


def test_a_task_the_dataset_cannot_give_is_refused_when_asked_and_settled_when_not(tmp_path, capsys):
    from lmfloss.config import TrainConfig, check_config
    from lmfloss.data.adapters import resolve_config

    root = _chestmnist(tmp_path, 1.0)
    assert main(["split", "--dataset", "chestmnist", "--root", str(root), "--task", "multiclass"]) == 2
    line = one_error_line(capsys, "split")
    assert "'chestmnist' is multi-label only; --task multiclass" in line and "leave --task out" in line
    assert main(["train", "--dataset", "chestmnist", "--root", str(root), "--task", "multiclass",
                 "--out", str(tmp_path / "run")]) == 2
    assert "multi-label only" in one_error_line(capsys, "train") and not (tmp_path / "run").exists()
    assert main(["split", "--dataset", "chestmnist", "--root", str(root)]) == 0  # not asked: its own task
    assert resolve_config(check_config(TrainConfig(dataset="chestmnist"))).task == "multilabel"
    assert resolve_config(check_config(TrainConfig(dataset="csv"))).task == "multiclass"  # recorded, not None


@pytest.mark.parametrize("skip", [[], ["--skip-bad-images"]])
def test_a_missing_image_says_what_skip_bad_images_covers(tmp_path, capsys, skip):
    from lmfloss.data.files import ODIR_LABELS

    (tmp_path / "preprocessed_images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "preprocessed_images" / "1_left.jpg")
    header = ["ID", "filename", *ODIR_LABELS]
    rows = [["1", "1_left.jpg", *"10000000"], ["1", "1_right.jpg", *"10000000"]]
    (tmp_path / "full_df.csv").write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    assert main(["split", "--dataset", "odir5k", "--root", str(tmp_path), "--task", "multilabel", *skip]) == 2
    line = one_error_line(capsys, "split")
    assert "1 image files listed in the metadata are missing" in line and "1_right" in line
    assert "--skip-bad-images skips unreadable files, not missing ones" in line


def test_a_report_over_mixed_tasks_expects_only_each_task_s_losses(tmp_path):
    from lmfloss.report import build_report, find_runs
    from lmfloss.report.aggregate import build_grid
    from lmfloss.report.figures import fig1_data, figure1
    from lmfloss.report.grid import per_class_datasets
    from report_helpers import LABELS, make_multilabel_run, make_run, noisy_preds

    root = tmp_path / "runs"
    for seed in (1, 2):
        for loss in ("bce", "asl"):
            make_multilabel_run(root, dataset="chestmnist", loss=loss, seed=seed)
        for loss in ("ce", "wce"):
            make_run(root, dataset="ham10000", model="resnet18", loss=loss, seed=seed,
                     preds=noisy_preds(LABELS, 0.3, seed), val_f1=0.5)
    grid = build_grid(find_runs([root]))
    assert {(str(d), loss) for d, _, loss in grid.cells} == {
        ("ham10000", "ce"), ("ham10000", "wce"), ("chestmnist:multilabel", "bce"), ("chestmnist:multilabel", "asl")}
    assert grid.losses_of("ham10000") == ["ce", "wce"]
    per_class = grid.for_datasets(per_class_datasets(grid))
    assert per_class.losses == ["ce", "wce"] and set(fig1_data(per_class)) == {("ham10000", "ce"), ("ham10000", "wce")}
    assert figure1(grid, tmp_path / "fig")
    result = build_report([root], tmp_path / "report", n_boot=20)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "missing (no run)" not in text and "Every grid cell is complete." in text
    assert "| missing |" not in text and "n/a" not in text  # no table row for another task's loss
    assert result.grid.cell("ham10000", "resnet18", "bce").status == "n/a"
