"""lmfloss evaluate --name on a multi-class run: the external macro-F1 is scikit-learn's on the
run's own predictions of that set; other class names need --label-map; images the run saw are
refused, or left out with --drop-overlap."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from sklearn.metrics import f1_score

from cli_helpers import one_error_line
from data_helpers import TINY, csv_dataset
from lmfloss.cli import main

pytestmark = pytest.mark.slow
NAMES = ("akiec", "bcc", "nv")


@pytest.fixture(scope="module")
def site_a_run(tmp_path_factory):
    """A one-epoch run on site A (3 classes), and site B: 18 other images whose first class is
    spelled AKIEC."""
    folder = tmp_path_factory.mktemp("multiclass-external")
    table_a = csv_dataset(folder / "site-a", n=12, labels=NAMES, seed=0)
    table_b = csv_dataset(folder / "site-b", n=6, labels=("AKIEC", "bcc", "nv"), seed=1)
    out = folder / "run"
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "--dataset", "csv", "--csv", str(table_a), "--out", str(out), *TINY]) == 0
    finally:
        torch.set_num_threads(previous)
    return out, table_a, table_b, folder


def _truth(table: Path, label_map: dict[str, str]) -> dict[str, str]:
    return {(table.parent / r["path"]).name: label_map.get(r["label"], r["label"])
            for r in csv.DictReader(table.open(encoding="utf-8"))}


def test_other_class_names_are_refused_then_mapped_and_scored_as_sklearn(site_a_run, capsys):
    out, _, table_b, folder = site_a_run
    ext = ["evaluate", "--run", str(out), "--dataset", "csv", "--csv", str(table_b), "--name", "site-b"]
    assert main(ext) == 2
    line = one_error_line(capsys, "evaluate")
    assert "the external set's classes do not match the run's: the run knows ['akiec'] and the external set " \
        "has none; the external set has ['AKIEC'] the run does not know" in line
    assert main([*ext, "--label-map", "AKIEC=akiec"]) == 0
    payload = json.loads((out / "eval-site-b.json").read_text())
    assert payload["label_map"] == {"AKIEC": "akiec"} and payload["overlap_left_out"] is None
    # The same images through predict: sklearn's macro-F1 of their argmax.
    images = sorted((table_b.parent / "img").iterdir())
    predictions = folder / "pred-b.csv"
    assert main(["predict", "--run", str(out), *map(str, images), "--out", str(predictions)]) == 0
    truth = _truth(table_b, {"AKIEC": "akiec"})
    rows = list(csv.DictReader(predictions.open()))
    y = [truth[Path(r["image"]).name] for r in rows]
    predicted = [max(NAMES, key=lambda c, r=r: float(r[f"prob_{c}"])) for r in rows]
    assert payload["n"] == len(rows) == 18
    assert payload["f1_macro"] == pytest.approx(f1_score(y, predicted, labels=list(NAMES), average="macro",
                                                         zero_division=0), abs=1e-9)


def test_images_the_run_saw_are_refused_or_dropped(site_a_run, capsys, tmp_path):
    out, table_a, table_b, _ = site_a_run
    # site B with three of site A's images copied in (the same name and bytes)
    mixed = tmp_path / "site-b-plus"
    shutil.copytree(table_b.parent, mixed)
    own = {"img/akiec0.png": "AKIEC", "img/bcc5.png": "bcc", "img/nv11.png": "nv"}  # site B spells AKIEC
    for name in own:
        shutil.copy(table_a.parent / name, mixed / name)
    lines = (mixed / "base.csv").read_text().splitlines()
    lines = [line for line in lines if line.split(",")[0] not in own]  # bcc5 was a name of site B's too
    lines += [f"{name},{label}" for name, label in own.items()]
    (mixed / "base.csv").write_text("\n".join(lines) + "\n")
    ext = ["evaluate", "--run", str(out), "--dataset", "csv", "--csv", str(mixed / "base.csv"),
           "--label-map", "AKIEC=akiec"]
    assert main([*ext, "--name", "mixed"]) == 2
    line = one_error_line(capsys, "evaluate")
    assert f"3 of the external set's {len(lines) - 1} images are the run's own" in line and "--drop-overlap" in line
    assert main([*ext, "--name", "mixed", "--drop-overlap"]) == 0
    payload = json.loads((out / "eval-mixed.json").read_text())
    assert payload["n"] == len(lines) - 1 - 3
    assert payload["overlap_left_out"]["dropped_images"] == 3
    assert sum(payload["overlap_left_out"]["shared_images"].values()) == 3
