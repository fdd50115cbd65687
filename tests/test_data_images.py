"""Decoding images (lmfloss.data.images): 16-bit and float files scaled by their type or their
own range, and images too dim to learn from reported once, with the fix."""

from __future__ import annotations

import numpy as np
from PIL import Image

from data_helpers import CLASSES
from lmfloss.data import load_splits


def _twelve_bit(rng: np.random.Generator) -> np.ndarray:
    """A 12-bit X-ray-like image in a 16-bit file: values 0..4095, mean about 880."""
    array = rng.gamma(1.0, 880.0, (32, 32)).clip(0, 4095).astype(np.uint16)
    array[0, 0], array[0, 1] = 4095, 0
    return array


def test_16_bit_and_float_images_are_scaled_by_their_type(tmp_path):
    from lmfloss.data.images import read_image

    rng = np.random.default_rng(2)
    twelve = _twelve_bit(rng)
    assert 800 < twelve.mean() < 960
    Image.fromarray(twelve).save(tmp_path / "twelve.png")
    assert Image.open(tmp_path / "twelve.png").mode == "I;16"
    by_type = read_image(tmp_path / "twelve.png", intensity="dtype")
    assert by_type.shape == (32, 32, 3) and by_type.dtype == np.uint8
    expected = np.rint(twelve.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(by_type[..., 0], expected)
    np.testing.assert_array_equal(by_type[..., 2], expected)
    own_range = read_image(tmp_path / "twelve.png", intensity="minmax")
    assert own_range.min() == 0 and own_range.max() == 255
    np.testing.assert_array_equal(own_range[..., 1], np.rint(twelve.astype(np.float64) * 255 / 4095).astype(np.uint8))

    dim = rng.integers(0, 111, (16, 16)).astype(np.uint16)
    dim[0, 0] = 110
    Image.fromarray(dim).save(tmp_path / "dim.png")
    notes: list[str] = []
    pixels = read_image(tmp_path / "dim.png", intensity="dtype", notes=notes)
    # 110 * 255 / 65535 rounds to 0: not the raw 0..110 the old decoder passed through.
    np.testing.assert_array_equal(pixels, np.zeros((16, 16, 3), np.uint8))
    assert any("nearly constant" in n for n in notes)

    floats = rng.random((16, 16)).astype(np.float32)
    Image.fromarray(floats).save(tmp_path / "floats.tif")
    assert Image.open(tmp_path / "floats.tif").mode == "F"
    pixels = read_image(tmp_path / "floats.tif")
    np.testing.assert_array_equal(pixels[..., 0], np.rint(floats.astype(np.float64) * 255).astype(np.uint8))
    assert pixels.max() > 200


def test_12_bit_image_in_16_bit_file_is_reported_nearly_constant(tmp_path):
    from lmfloss.data.images import read_image

    Image.fromarray(_twelve_bit(np.random.default_rng(2))).save(tmp_path / "twelve.png")
    notes: list[str] = []
    read_image(tmp_path / "twelve.png", intensity="dtype", notes=notes)
    assert any("nearly constant" in n for n in notes), notes
    notes = []
    read_image(tmp_path / "twelve.png", intensity="minmax", notes=notes)
    assert notes == []


def test_minmax_stretches_an_image_that_does_not_start_at_zero(tmp_path):
    from lmfloss.data.images import read_image

    band = np.random.default_rng(8).integers(20000, 20601, (16, 16)).astype(np.uint16)
    Image.fromarray(band).save(tmp_path / "band.png")
    pixels = read_image(tmp_path / "band.png", intensity="minmax")[..., 0]
    lo, hi = band.min(), band.max()
    expected = np.rint((band.astype(np.float64) - lo) * 255 / (hi - lo)).astype(np.uint8)
    np.testing.assert_array_equal(pixels, expected)


def test_nearly_constant_image_away_from_black_is_reported(tmp_path):
    from lmfloss.data.images import read_image

    band = np.random.default_rng(8).integers(20000, 20601, (16, 16)).astype(np.uint16)
    Image.fromarray(band).save(tmp_path / "band.png")
    notes: list[str] = []
    pixels = read_image(tmp_path / "band.png", intensity="dtype", notes=notes)
    assert int(pixels.max()) - int(pixels.min()) < 8  # 3 gray levels: 78..80
    assert any("nearly constant" in n for n in notes), notes


def test_dim_16_bit_dataset_warns_once_with_a_hint(tmp_path, caplog):
    from lmfloss.data import make_dataset

    rng = np.random.default_rng(3)
    root = tmp_path / "xray"
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(3):  # 3 per class: all in train (the paper's split holds out 0 of 3)
            array = rng.integers(0, 1500, (24, 24)).astype(np.uint16) + 200 * k
            Image.fromarray(array).save(root / name / f"{i}.png")
    splits = load_splits("imagefolder", root=root)
    assert len(splits.records("train")) == 6
    caplog.clear()  # the split's own warnings (no val/test images of 3) are not the point here
    with caplog.at_level("WARNING", logger="lmfloss.data"):
        dataset = make_dataset(splits, "train", image_size=16, cache_dir=tmp_path / "cache")
    assert len(dataset) == 6
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "--intensity minmax" in message and "6 image(s)" in message
