"""lmfloss.data.overlap: the images an external set shares with a run's data are found by id
*and* image, and leaving them out takes their patients with them."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lmfloss.config import TrainConfig
from lmfloss.data import load_splits
from lmfloss.data.load import whole_dataset
from lmfloss.data.overlap import shared_images, without_shared


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((8, 8, 3), value, np.uint8)
    pixels[0, 0] = (value * 7) % 256
    Image.fromarray(pixels).save(path)


def _table(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split", "patient"])
        writer.writerows(rows)
    return path


@pytest.fixture
def sites(tmp_path):
    """Site A (the run's data: 12 images of 6 patients, its own split) and site B (the external
    set): two of A's images copied byte for byte, one of A's names holding another image,
    one of A's images re-saved as another file (same pixels), and five images of its own --
    one of them of a patient whose other image is one of A's."""
    a, b = tmp_path / "site-a", tmp_path / "site-b"
    split = ["train"] * 8 + ["val", "val", "test", "test"]
    rows = []
    for i in range(12):
        _png(a / "img" / f"{i}.png", 10 * i)
        rows.append([f"img/{i}.png", "ab"[i % 2], split[i], f"p{i // 2}"])
    run_csv = _table(a / "labels.csv", rows)
    (b / "img").mkdir(parents=True)
    shutil.copy(a / "img" / "0.png", b / "img" / "0.png")     # train, patient p0
    shutil.copy(a / "img" / "10.png", b / "img" / "10.png")   # test, patient p5
    _png(b / "img" / "3.png", 200)                             # A's name, another image
    Image.open(a / "img" / "9.png").save(b / "img" / "9.png", optimize=True)  # val: same pixels, other bytes
    for i in range(20, 25):
        _png(b / "img" / f"{i}.png", i)
    external_rows = [["img/0.png", "a", "test", "p0"], ["img/10.png", "a", "test", "p5"],
                     ["img/3.png", "b", "test", "q3"], ["img/9.png", "b", "test", "q9"],
                     ["img/20.png", "a", "test", "p0"],  # p0 again: the patient of a shared image
                     *[[f"img/{i}.png", "ab"[i % 2], "test", f"q{i}"] for i in range(21, 25)]]
    ext_csv = _table(b / "labels.csv", external_rows)
    return load_splits("csv", csv=run_csv), whole_dataset(TrainConfig(dataset="csv", csv=str(ext_csv)))


def test_a_shared_image_is_the_same_id_and_the_same_pixels(sites):
    mine, external = sites
    found = shared_images(mine, external)
    assert found.shared == {"train": ["img/0.png"], "val": ["img/9.png"], "test": ["img/10.png"]}
    assert found.same_id_other_image == ["img/3.png"]  # a name of A's, another image: not A's
    assert found.counts() == {"train": 1, "val": 1, "test": 1}
    assert found.describe(len(external.records("test"))).startswith(
        "3 of the external set's 9 images are the run's own (train 1, validation 1, test 1; e.g. img/0.png")


def test_leaving_them_out_takes_their_patients_with_them(sites):
    mine, external = sites
    rest, dropped, groups = without_shared(external, shared_images(mine, external).ids)
    left = [r.id for r in rest.records("test")]
    assert "img/20.png" not in left  # not A's image, but of patient p0, whose other image A trained on
    assert left == ["img/3.png", "img/21.png", "img/22.png", "img/23.png", "img/24.png"]
    assert (dropped, groups) == (4, 3)
    assert rest.fingerprint() != external.fingerprint()
    with pytest.raises(ValueError, match="nothing is left to score"):
        without_shared(external, [r.id for r in external.records("test")])


def test_two_sets_that_share_nothing(sites, tmp_path):
    mine, _ = sites
    other = tmp_path / "site-c"
    for i in range(4):
        _png(other / "x" / f"{i}.png", i)
    table = _table(other / "labels.csv", [[f"x/{i}.png", "ab"[i % 2], "test", f"c{i}"] for i in range(4)])
    found = shared_images(mine, whole_dataset(TrainConfig(dataset="csv", csv=str(table))))
    assert not found and found.counts() == {"train": 0, "val": 0, "test": 0}
