"""Annotation sources (boxes CSV, masks folder, dataset boxes) and the figure."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from lmfloss.cam.annotations import (
    MaskFolder,
    annotation_source,
    clip_boxes,
    read_boxes_csv,
)
from lmfloss.cam.figure import (
    FigureCell,
    FigureRow,
    attention_figure,
    draw_boxes,
    overlay_cam,
    save_overlay,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HAM = SHARED / "samples" / "ham10000"


def _splits(ids, boxes=None):
    records = [SimpleNamespace(id=i, label=0) for i in ids]
    index = SimpleNamespace(boxes=boxes, box_loader=None)
    return SimpleNamespace(
        name="fake",
        index=index,
        records=lambda split: records if split == "test" else [],
        boxes=lambda record: (boxes or {}).get(record.id),
    )


def test_read_boxes_csv_groups_rows(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text("id,x0,y0,x1,y1\na,1,2,5,6\na,10,10,12.5,13\nb,0,0,3,3\n")
    assert read_boxes_csv(path) == {"a": [(1, 2, 5, 6), (10, 10, 13, 13)], "b": [(0, 0, 3, 3)]}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("id,x0,y0,x1\na,1,2,3\n", r"lacks column\(s\) \['y1'\]"),
        ("id,x0,y0,x1,y1\na,1,2,zz,6\n", r"boxes.csv:2: .*numbers.*'zz'"),
        ("id,x0,y0,x1,y1\na,5,2,5,6\n", r"boxes.csv:2: box \(5.0, 2.0, 5.0, 6.0\).*empty"),
        ("id,x0,y0,x1,y1\n", "no rows"),
    ],
)
def test_read_boxes_csv_errors(tmp_path, text, match):
    path = tmp_path / "boxes.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_boxes_csv(path)


def test_missing_csv_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_boxes_csv(tmp_path / "nope.csv")


def test_clip_boxes_warns_and_drops(caplog):
    with caplog.at_level("WARNING", logger="lmfloss.cam.annotations"):
        out = clip_boxes([(-5, 2, 10, 8), (1, 1, 3, 3), (50, 50, 60, 60)], 20, 10, image_id="x")
    assert out == [(0, 2, 10, 8), (1, 1, 3, 3)]
    assert "clipped to (0, 2, 10, 8)" in caplog.text
    assert "outside the 20x10 image; dropped" in caplog.text


def test_unknown_csv_id_is_an_error_naming_it(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text("id,x0,y0,x1,y1\nimg1,1,2,5,6\nghost,0,0,3,3\n")
    with pytest.raises(ValueError, match="match no image.*'ghost'"):
        annotation_source(_splits(["img1"]), boxes_csv=path)
    source = annotation_source(_splits(["img1", "ghost"]), boxes_csv=path)
    ann = source.get("img1", (4, 4))  # clipped to a 4x4 image
    assert ann.boxes == [(1, 2, 4, 4)] and ann.mask is None
    assert source.get("ghost", (100, 100)).boxes == [(0, 0, 3, 3)]


def test_dataset_boxes_and_no_source(caplog):
    src = annotation_source(_splits(["a"], boxes={"a": [(1, 1, 4, 4)]}))
    assert src.source == "dataset" and src.get("a", (8, 8)).boxes == [(1, 1, 4, 4)]
    with caplog.at_level("WARNING"):
        assert annotation_source(_splits(["a"])) is None
    assert "not scored" in caplog.text
    with pytest.raises(ValueError, match="not both"):
        annotation_source(_splits(["a"]), boxes_csv="x.csv", masks_dir="y")


@pytest.mark.realdata("data/samples/ham10000/masks")
def test_mask_folder_on_real_ham10000_masks(tmp_path):
    paths = sorted((HAM / "masks").glob("*_segmentation.png"))
    ids = [p.name.removesuffix("_segmentation.png") for p in paths]
    folder = MaskFolder(HAM / "masks", ids)
    for image_id in ids:
        mask = np.asarray(Image.open(HAM / "masks" / f"{image_id}_segmentation.png")) > 0
        ann = folder.get(image_id, mask.shape)
        np.testing.assert_array_equal(ann.mask, mask)
        ys, xs = np.nonzero(mask)
        assert min(b[0] for b in ann.boxes) == xs.min()
        assert max(b[3] for b in ann.boxes) == ys.max() + 1
    with pytest.raises(ValueError, match="expected the same size"):
        folder.get(ids[0], (10, 10))
    with pytest.raises(ValueError, match="match no image"):
        MaskFolder(HAM / "masks", ids[1:])
    # An image without a mask is simply unannotated.
    copy = tmp_path / "masks"
    copy.mkdir()
    shutil.copy(paths[0], copy / paths[0].name)
    assert MaskFolder(copy, ids).get(ids[1], (450, 600)) is None


def test_overlay_and_boxes():
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    cam = np.zeros((4, 4), dtype=np.float32)
    cam[0, 0] = 1.0
    out = overlay_cam(image, cam, alpha=1.0)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    # jet(1.0) is dark red, jet(0.0) dark blue: the top-left is red, the bottom-right blue.
    assert out[0, 0, 0] > 100 and out[0, 0, 2] < 50
    assert out[-1, -1, 2] > 100 and out[-1, -1, 0] < 50
    boxed = draw_boxes(image, [(2, 3, 10, 8)])
    assert tuple(boxed[3, 5]) == (0, 220, 0)  # top edge
    assert tuple(boxed[7, 9]) == (0, 220, 0)  # bottom-right corner at x1-1, y1-1
    assert tuple(boxed[5, 5]) == (0, 0, 0)  # inside untouched
    assert tuple(boxed[8, 10]) == (0, 0, 0)  # x1/y1 exclusive
    with pytest.raises(ValueError, match="alpha"):
        overlay_cam(image, cam, alpha=2)


def test_attention_figure_files(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        FigureRow(
            image_id=f"img{i}",
            image=rng.integers(0, 255, (48, 64, 3), dtype=np.uint8),
            true="nevus",
            boxes=[(5, 5, 30, 20)],
            cells=[FigureCell(rng.random((32, 32)), "nevus"), FigureCell(None, "melanoma")],
        )
        for i in range(2)
    ]
    png, pdf = attention_figure(rows, ["ce", "lmf"], tmp_path / "fig_attention")
    assert png.name == "fig_attention.png" and pdf.name == "fig_attention.pdf"
    with Image.open(png) as im:
        width, height = im.size
    assert width > 3 * 200 and height > 2 * 200  # 3 columns x 2 rows at 200 dpi
    assert pdf.read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match="1 cells for 2 runs"):
        attention_figure([FigureRow("x", rows[0].image, "a", cells=[rows[0].cells[0]])],
                         ["ce", "lmf"], tmp_path / "bad")
    path = save_overlay(tmp_path / "o" / "img0.png", rows[0].image, rows[0].cells[0].cam,
                        rows[0].boxes)
    with Image.open(path) as im:
        assert im.size == (64, 48)
