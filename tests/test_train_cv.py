"""Issue 12: grouped, stratified k-fold cross-validation."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from lmfloss.cli import main
from lmfloss.data import Record, load_splits
from lmfloss.data.splits import assign_folds, fold_split

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_breast = pytest.mark.realdata("data/breastmnist/breastmnist.npz")


def _records(n_per_class=(40, 12, 6), patients=True) -> list[Record]:
    records, k = [], 0
    for label, n in enumerate(n_per_class):
        for _ in range(n):
            records.append(Record(id=f"r{k}", label=label, path=None, group=f"p{k // 3}" if patients else None))
            k += 1
    return records


def test_folds_are_stratified_grouped_and_seeded():
    records = _records()
    folds = assign_folds(records, 3, 3, seed=5, grouped=True)
    assert sorted(set(folds)) == [1, 2, 3] and folds == assign_folds(records, 3, 3, seed=5, grouped=True)
    assert folds != assign_folds(records, 3, 3, seed=6, grouped=True)
    where = defaultdict(set)
    for r, f in zip(records, folds):
        where[r.group].add(f)
    assert all(len(v) == 1 for v in where.values())  # no patient in two folds
    for label in range(3):  # every class in every fold
        assert {f for r, f in zip(records, folds) if r.label == label} == {1, 2, 3}


def test_a_fold_split_tests_on_its_fold_and_validates_on_15_percent_of_the_rest():
    records = _records(patients=False)
    folds = assign_folds(records, 3, 4, seed=1)
    for fold in (1, 4):
        assignment = fold_split(records, 3, 4, fold, seed=1)
        assert [a == "test" for a in assignment] == [f == fold for f in folds]
        rest = [r for r, a in zip(records, assignment) if a != "test"]
        for label in range(3):
            n = sum(r.label == label for r in rest)
            val = sum(r.label == label and a == "val" for r, a in zip(records, assignment))
            assert val == (15 * n + 50) // 100  # round_half_up(0.15 n), as the paper's split
        assert set(assignment) == {"train", "val", "test"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"folds": 1, "fold": 1}, "--folds must be an integer >= 2"),
     ({"folds": 7, "fold": 1}, "more than the smallest class has images"),
     ({"folds": 3, "fold": 4}, "fold must be an integer in 1..3")],
)
def test_bad_fold_settings_are_named(tmp_path, kwargs, message):
    from PIL import Image

    for name, n in (("a", 12), ("b", 6)):
        for i in range(n):
            (tmp_path / name).mkdir(exist_ok=True)
            Image.new("RGB", (8, 8)).save(tmp_path / name / f"{i}.png")
    with pytest.raises(ValueError, match=message):
        load_splits("imagefolder", root=tmp_path, **kwargs)


@needs_breast
def test_a_dataset_with_an_official_test_split_needs_include_test(tmp_path, capsys):
    with pytest.raises(ValueError, match="--folds-include-test"):
        load_splits("breastmnist", root=SHARED, folds=5, fold=1)
    pooled = load_splits("breastmnist", root=SHARED, folds=5, fold=2, folds_include_test=True)
    assert sum(len(pooled.records(s)) for s in ("train", "val", "test")) == 780
    assert "5-fold cross-validation" in pooled.identity()["split"]
    out = tmp_path / "folds.csv"
    assert main(["split", "--dataset", "breastmnist", "--root", str(SHARED), "--folds", "5", "--out", str(out),
                 "--folds-include-test", "--quiet"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 780 and {r["fold"] for r in rows} == {"1", "2", "3", "4", "5"}
    again = tmp_path / "again.csv"
    main(["split", "--dataset", "breastmnist", "--root", str(SHARED), "--folds", "5", "--out", str(again),
          "--folds-include-test", "--quiet"])
    assert again.read_text() == out.read_text()  # the same seed gives the same folds


@needs_breast
@pytest.mark.slow
def test_train_folds_writes_fold_runs_and_a_summary_and_resumes(tmp_path, capsys, one_torch_thread):
    out = tmp_path / "cv"
    argv = ["train", "--dataset", "breastmnist", "--root", str(SHARED), "--model", "shufflenet_v2_x0_5",
            "--weights", "none", "--image-size", "28", "--epochs", "1", "--batch-size", "64", "--lr", "1e-3",
            "--device", "cpu", "--loss", "ce", "--bootstrap", "0", "--folds", "2", "--folds-include-test",
            "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert "2-fold cross-validation" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "cv_summary.csv").open()))
    assert [r["fold"] for r in rows] == ["1", "2", "mean", "std"]
    f1 = [json.loads((out / f"fold-{k}" / "report.json").read_text())["test"]["f1_macro"] for k in (1, 2)]
    assert float(rows[0]["f1_macro"]) == pytest.approx(f1[0], abs=1e-6)
    assert float(rows[2]["f1_macro"]) == pytest.approx(np.mean(f1), abs=1e-6)
    assert float(rows[3]["f1_macro"]) == pytest.approx(np.std(f1, ddof=1), abs=1e-6)
    assert (out / "cv_summary.md").is_file()
    # --resume OUT trains only the unfinished folds.
    before = (out / "fold-1" / "report.json").stat().st_mtime_ns
    (out / "fold-2" / "report.json").unlink()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert (out / "fold-1" / "report.json").stat().st_mtime_ns == before
    assert (out / "fold-2" / "report.json").is_file()
    # The report treats the folds as repeats of one experiment.
    assert main(["report", str(out), "--out", str(tmp_path / "report"), "--bootstrap", "50", "--no-figures",
                 "--quiet"]) == 0
    results = list(csv.DictReader((tmp_path / "report" / "results.csv").open()))
    assert len(results) == 2 and {r["loss"] for r in results} == {"ce"}
    md = (tmp_path / "report" / "report.md").read_text()
    assert "n=" not in md.split("## Tables")[1].split("\n\n")[1]  # one cell of 2 replicates, none missing


def test_fold_is_a_sweep_axis():
    from lmfloss.sweep import parse_sweep

    spec = parse_sweep({"base": {"dataset": "synthetic", "folds": 3, "epochs": 1},
                        "space": {"loss": ["ce"], "fold": [1, 2, 3]}})
    configs = [spec.resolve(p)[0] for p in spec.grid_points()]
    assert [(c.folds, c.fold) for c in configs] == [(3, 1), (3, 2), (3, 3)]
    with pytest.raises(ValueError, match="fold=4"):
        parse_sweep({"base": {"dataset": "synthetic", "folds": 3}, "space": {"fold": [4]}})
