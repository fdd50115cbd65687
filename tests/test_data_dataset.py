"""make_dataset: item format, preprocessing against references, the uint8 cache, bad images."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from lmfloss.config import TrainConfig
from lmfloss.data import cache as cache_module
from lmfloss.data import dataset_for, load_splits, make_dataset, splits_for
from lmfloss.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from lmfloss.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _folder_dataset(
    root: Path, n: int = 8, size: tuple[int, int] = (50, 40), gray_class: bool = False, ext: str = "png"
) -> Path:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size[1], size[0]) if (gray_class and name == "b") else (size[1], size[0], 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / name / f"{name}{i}.{ext}")
    return root


@pytest.fixture(scope="module")
def synthetic():
    return load_splits("synthetic")


def test_items_have_the_contract_format(synthetic):
    ds = make_dataset(synthetic, "val", image_size=32)
    image, label, index = ds[7]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label.dtype == torch.int64 and label.ndim == 0
    assert index == 7
    assert int(label) == ds.records[7].label
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert len(ds) == len(synthetic.records("val")) == 466
    assert [r.id for r in ds.records] == [r.id for r in synthetic.records("val")]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_native_size_is_the_original_pixels_over_255(synthetic):
    ds = make_dataset(synthetic, "test", image_size=64)
    record = ds.records[3]
    expected = torch.from_numpy(synthetic.load_image(record).astype(np.float32) / 255.0).permute(2, 0, 1)
    torch.testing.assert_close(ds[3][0], expected)


def test_imagenet_normalisation_matches_torchvision(synthetic):
    plain = make_dataset(synthetic, "test", image_size=48)
    normed = make_dataset(synthetic, "test", image_size=48, normalize="imagenet")
    expected = TF.normalize(plain[0][0], IMAGENET_MEAN, IMAGENET_STD)
    torch.testing.assert_close(normed[0][0], expected)


@pytest.mark.parametrize("normalize", ["none", "imagenet"])
def test_deferred_float_batches_equal_per_item_floats(synthetic, normalize):
    eager = make_dataset(synthetic, "test", image_size=32, normalize=normalize)
    deferred = make_dataset(synthetic, "test", image_size=32, normalize=normalize, defer_float=True)
    raw = torch.stack([deferred[i][0] for i in range(5)])
    assert raw.dtype == torch.uint8
    batch = deferred.finish_batch(raw.contiguous(memory_format=torch.channels_last))
    assert batch.dtype == torch.float32 and batch.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(batch, torch.stack([eager[i][0] for i in range(5)]))
    floats = torch.stack([eager[i][0] for i in range(2)])
    assert eager.finish_batch(floats) is floats  # already finished per item


def test_in_memory_resize_matches_torch_antialiased_bilinear(synthetic):
    ds = make_dataset(synthetic, "train", image_size=28)
    original = torch.from_numpy(synthetic.load_image(ds.records[0])).permute(2, 0, 1)[None].double()
    reference = torch.nn.functional.interpolate(original, size=(28, 28), mode="bilinear", antialias=True)
    reference = reference.round().clamp(0, 255)[0] / 255
    assert (ds[0][0].double() - reference).abs().max() <= 1 / 255 + 1e-6


def test_flip_augmentation_only_flips(synthetic):
    torch.manual_seed(0)
    plain = make_dataset(synthetic, "train", image_size=32)[5][0]
    flipped = make_dataset(synthetic, "train", image_size=32, augment="flip")
    outcomes = {plain.flip(-1).numpy().tobytes(): 0, plain.flip(-2).numpy().tobytes(): 0,
                plain.flip(-1).flip(-2).numpy().tobytes(): 0, plain.numpy().tobytes(): 0}
    for _ in range(40):
        key = flipped[5][0].numpy().tobytes()
        assert key in outcomes
        outcomes[key] += 1
    assert all(count > 0 for count in outcomes.values())


def test_randaugment_keeps_format(synthetic):
    torch.manual_seed(0)
    ds = make_dataset(synthetic, "train", image_size=32, augment="randaugment", normalize="imagenet")
    draws = [ds[0][0] for _ in range(10)]
    assert all(d.shape == (3, 32, 32) and d.dtype == torch.float32 and d.isfinite().all() for d in draws)
    assert len({d.numpy().tobytes() for d in draws}) > 1  # a fresh random policy per call


@pytest.mark.parametrize(("option", "value"), [("normalize", "batch"), ("augment", "mixup")])
def test_bad_options_are_named(synthetic, option, value):
    with pytest.raises(ValueError, match=f"{option} must be one of .* got '{value}'"):
        make_dataset(synthetic, "train", image_size=32, **{option: value})
    with pytest.raises(ValueError, match="split must be one of"):
        make_dataset(synthetic, "training", image_size=32)
    with pytest.raises(ValueError, match="image_size must be an integer"):
        make_dataset(synthetic, "train", image_size=0)


@pytest.mark.realdata("data/breastmnist/breastmnist.npz")
def test_medmnist_grayscale_becomes_three_channels():
    splits = load_splits("breastmnist", root=SHARED / "breastmnist")
    ds = make_dataset(splits, "val", image_size=28)
    image = ds[0][0]
    assert image.shape == (3, 28, 28)
    torch.testing.assert_close(image[0], image[2])
    with np.load(SHARED / "breastmnist" / "breastmnist.npz") as data:
        reference = torch.from_numpy(data["val_images"][0].astype(np.float32) / 255)
    torch.testing.assert_close(image[1], reference)


# --- file datasets through the cache -----------------------------------------------------


def test_cache_matches_pil_resize_and_is_reused(tmp_path, monkeypatch):
    root = _folder_dataset(tmp_path / "data", gray_class=True)
    splits = load_splits("imagefolder", root=root)
    cache_dir = tmp_path / "cache"
    ds = make_dataset(splits, "train", image_size=24, cache_dir=cache_dir)
    files = sorted(cache_dir.glob("*.npy"))
    assert len(files) == 1 and not list(cache_dir.glob("*.part"))
    cached = np.load(files[0], mmap_mode="r")
    assert cached.shape == (len(ds), 3, 24, 24) and cached.dtype == np.uint8  # channels-first
    for i, record in enumerate(ds.records):
        with Image.open(record.path) as image:
            expected = np.asarray(image.convert("RGB").resize((24, 24), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(cached[i], expected.transpose(2, 0, 1))
        torch.testing.assert_close(ds[i][0], torch.from_numpy(expected.astype(np.float32) / 255).permute(2, 0, 1))
    # a second dataset reads the cache and decodes nothing
    monkeypatch.setattr(cache_module, "read_image", lambda *a, **k: pytest.fail("decoded again"))
    again = make_dataset(splits, "train", image_size=24, cache_dir=cache_dir)
    torch.testing.assert_close(again[3][0], ds[3][0])


def test_cache_key_changes_with_image_size_and_file_content(tmp_path):
    root = _folder_dataset(tmp_path / "data")
    splits = load_splits("imagefolder", root=root)
    cache_dir = tmp_path / "cache"
    make_dataset(splits, "train", image_size=16, cache_dir=cache_dir)
    make_dataset(splits, "train", image_size=20, cache_dir=cache_dir)
    assert len(list(cache_dir.glob("*.npy"))) == 2
    record = splits.records("train")[0]
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(record.path)
    ds = make_dataset(splits, "train", image_size=16, cache_dir=cache_dir)
    assert len(list(cache_dir.glob("*.npy"))) == 3
    assert float(ds[0][0].max()) == 0.0


def test_dataset_pickles_without_the_cached_pixels(tmp_path):
    root = _folder_dataset(tmp_path / "data", n=30)
    splits = load_splits("imagefolder", root=root)
    ds = make_dataset(splits, "train", image_size=64, cache_dir=tmp_path / "cache")
    ds[0]
    payload = pickle.dumps(ds)
    assert len(payload) < 64 * 64 * 3 * 5  # far less than the 42 cached images
    clone = pickle.loads(payload)
    torch.testing.assert_close(clone[1][0], ds[1][0])
    loader = torch.utils.data.DataLoader(ds, batch_size=8)
    images, labels, index = next(iter(loader))
    assert images.shape == (8, 3, 64, 64) and labels.dtype == torch.int64
    assert index.tolist() == list(range(8))


def test_corrupt_image_fails_by_default_naming_the_file(tmp_path):
    root = _folder_dataset(tmp_path / "data")
    bad = root / "a" / "a0.png"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated: the header parses, the pixels do not
    splits = load_splits("imagefolder", root=root)
    split = next(s for s in ("train", "val", "test") if any(r.path.endswith("a0.png") for r in splits.records(s)))
    with pytest.raises(DataError, match=r"cannot decode image .*a0\.png.*--skip-bad-images"):
        make_dataset(splits, split, image_size=16, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.npy"))  # no half-built cache left behind


def test_skip_bad_images_leaves_them_out_and_records_them(tmp_path):
    root = _folder_dataset(tmp_path / "data", ext="jpg")
    bad = root / "a" / "a0.jpg"
    bad.write_bytes(bad.read_bytes()[:1200])  # truncated JPEG: passes the header check, fails decoding
    splits = load_splits("imagefolder", root=root, skip_bad_images=True)
    split = next(s for s in ("train", "val", "test") if any(r.path.endswith("a0.jpg") for r in splits.records(s)))
    ds = make_dataset(splits, split, image_size=16, cache_dir=tmp_path / "cache")
    assert len(ds) == len(splits.records(split)) - 1
    assert all(not r.path.endswith("a0.jpg") for r in ds.records)
    assert [Path(p).name for p in ds.skipped] == ["a0.jpg"]
    assert splits.skipped == []  # the splits are never changed by a dataset
    assert [int(ds[i][1]) for i in range(len(ds))] == [r.label for r in ds.records]
    # the skipped list travels with the cache: a strict run refuses it instead of reading zeros
    strict = load_splits("imagefolder", root=root)
    with pytest.raises(DataError, match="skipping 1 undecodable"):
        make_dataset(strict, split, image_size=16, cache_dir=tmp_path / "cache")


@pytest.mark.realdata("data/samples/odir5k/images")
def test_real_jpeg_samples_through_the_cache(tmp_path):
    images = SHARED / "samples" / "odir5k" / "images"
    for i, path in enumerate(sorted(images.glob("*.jpg"))[:10]):
        (tmp_path / "data" / ("x" if i % 2 else "y")).mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / ("x" if i % 2 else "y") / path.name).symlink_to(path)
    splits = load_splits("imagefolder", root=tmp_path / "data")
    ds = make_dataset(splits, "train", image_size=32, cache_dir=tmp_path / "cache")
    with Image.open(ds.records[0].path) as image:
        expected = np.asarray(image.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal((ds[0][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), expected)


def test_parallel_cache_build_equals_serial_and_reports_bad_files(tmp_path):
    root = _folder_dataset(tmp_path / "data", n=40, ext="jpg")
    splits = load_splits("imagefolder", root=root)
    serial = make_dataset(splits, "train", image_size=16, cache_dir=tmp_path / "serial")
    parallel = make_dataset(splits, "train", image_size=16, cache_dir=tmp_path / "parallel", cache_workers=2)
    np.testing.assert_array_equal(
        np.load(serial.images_path, mmap_mode="r"), np.load(parallel.images_path, mmap_mode="r")
    )
    bad = Path(splits.records("train")[-1].path)
    bad.write_bytes(bad.read_bytes()[:1200])
    with pytest.raises(DataError, match=f"cannot decode image .*{bad.name}"):
        make_dataset(splits, "train", image_size=16, cache_dir=tmp_path / "broken", cache_workers=2)
    assert not list((tmp_path / "broken").iterdir())  # the temporary file is gone too


def test_training_counts_come_from_the_loss_librarys_class_counts():
    from lmfloss.losses import class_counts

    config = TrainConfig(dataset="synthetic", image_size=16)
    splits = splits_for(config)
    train = dataset_for(config, "train", splits)
    assert class_counts(train.labels, len(splits.class_names)) == splits.class_counts("train")


def test_hflip_augmentation_flips_only_horizontally(synthetic):
    """hflip (torchvision's RandomHorizontalFlip): the image or its mirror, never upside down --
    per item and per batch (the engine's deferred path)."""
    from lmfloss.data.transforms import build_transform

    torch.manual_seed(0)
    plain = make_dataset(synthetic, "train", image_size=32)[5][0]
    flipped = make_dataset(synthetic, "train", image_size=32, augment="hflip")
    seen = {flipped[5][0].numpy().tobytes() for _ in range(40)}
    assert seen == {plain.numpy().tobytes(), plain.flip(-1).numpy().tobytes()}

    batch = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4).repeat(20, 1, 1, 1)
    out = build_transform(augment="hflip", defer_float=True).augment_batch(batch)
    mirrored = [torch.equal(o, b.flip(-1)) for o, b in zip(out, batch)]
    assert all(m or torch.equal(o, b) for m, o, b in zip(mirrored, out, batch))
    assert 0 < sum(mirrored) < len(batch)
