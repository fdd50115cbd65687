"""Nothing silently wrong in the data layer (issue 21): one label is one class and one file is
one file whatever its Unicode spelling; ``split`` and ``train`` agree on unreadable files and
``--skip-bad-images`` moves no good image; killed work leaves nothing behind; a dataset's
warning is printed once; mixed-class patients and symbolic-link loops are named.

User mistakes go through ``lmfloss.cli.main`` and end in exit code 2 and one line on stderr
naming the culprit.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import one_error_line as _one_error_line
from lmfloss.cli import main
from lmfloss.data import load_splits

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NFC = unicodedata.normalize("NFC", "Névus")
NFD = unicodedata.normalize("NFD", "Névus")
assert NFC != NFD


# ---- helpers ---------------------------------------------------------------------------
def _png(path: Path, value: int = 0, size: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray((rng.random((size, size, 3)) * 200 + value % 50).astype(np.uint8)).save(path)
    return path



def _normalisation_sensitive(folder: Path) -> bool:
    """Whether this file system keeps an NFC and an NFD name apart (Linux: yes; macOS: no)."""
    probe = folder / "probe"
    probe.mkdir(parents=True, exist_ok=True)
    (probe / NFC).write_text("")
    sensitive = not (probe / NFD).exists()
    (probe / NFC).unlink()
    probe.rmdir()
    return sensitive


# ---- 1. one label, one class; one file, one file -----------------------------------------
def test_csv_labels_differing_only_by_unicode_form_or_spaces_are_one_class(tmp_path, caplog):
    lines = ["path,label"]
    for i, label in enumerate([NFC, NFD, f"{NFC} ", f" {NFD}", "benign", "benign", "benign", "benign"]):
        _png(tmp_path / f"{i}.png", i)
        lines.append(f'{i}.png,"{label}"')
    table = tmp_path / "labels.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level("INFO", logger="lmfloss.data"):
        splits = load_splits("csv", csv=table)
    assert splits.class_names == [NFC, "benign"]  # the NFC spelling is the one recorded
    assert [sum(splits.class_counts(s)[c] for s in ("train", "val", "test")) for c in (0, 1)] == [4, 4]
    merged = [r for r in caplog.records if r.name == "lmfloss.data.records" and "one class" in r.getMessage()]
    assert len(merged) == 1 and merged[0].levelname == "INFO", [r.getMessage() for r in caplog.records]
    assert str(table) in merged[0].getMessage()
    assert not [r for r in caplog.records if r.levelname == "WARNING" and r.name == "lmfloss.data.records"]


def test_imagefolder_class_folders_differing_only_by_unicode_form_are_one_class(tmp_path, caplog):
    if not _normalisation_sensitive(tmp_path):
        pytest.skip("this file system does not keep NFC and NFD names apart")
    root = tmp_path / "data"
    for i in range(3):
        _png(root / NFC / f"c{i}.png", i)
        _png(root / NFD / f"d{i}.png", 10 + i)
        _png(root / "benign" / f"b{i}.png", 20 + i)
    _png(root / NFD / f"{NFD}.png", 30)
    with caplog.at_level("INFO", logger="lmfloss.data"):
        splits = load_splits("imagefolder", root=root)
    assert splits.class_names == [NFC, "benign"]
    records = [r for s in ("train", "val", "test") for r in splits.records(s)]
    assert sorted(r.id for r in records if r.label == 0) == sorted(
        [f"{NFC}/c{i}.png" for i in range(3)] + [f"{NFC}/d{i}.png" for i in range(3)] + [f"{NFC}/{NFC}.png"])
    assert all(Path(r.path).is_file() for r in records)
    assert len([r for r in caplog.records if "one class" in r.getMessage()]) == 1

    # One name in two spellings inside the merged class: two files no one can tell apart.
    _png(root / NFC / "d0.png", 40)
    assert main(["split", "--dataset", "imagefolder", "--root", str(root)]) == 2


def test_csv_path_in_another_unicode_form_is_found_and_two_spellings_are_one_file(tmp_path, capsys):
    if not _normalisation_sensitive(tmp_path):
        pytest.skip("this file system does not keep NFC and NFD names apart")
    on_disk = {"nfc": _png(tmp_path / "img" / NFC / f"{NFC}-1.png", 1),
               "nfd": _png(tmp_path / "img" / "x" / f"{NFD}-2.png", 2)}
    for i in range(6):
        _png(tmp_path / "img" / f"b{i}.png", 10 + i)
    benign = [f"img/b{i}.png,benign" for i in range(6)]
    table = tmp_path / "swapped.csv"  # each path written in the other form than the file's name
    table.write_text("\n".join(["path,label", f"img/{NFD}/{NFD}-1.png,m", f"img/x/{NFC}-2.png,m", *benign]) + "\n",
                     encoding="utf-8")
    splits = load_splits("csv", csv=table)
    records = {r.id: r for s in ("train", "val", "test") for r in splits.records(s)}
    assert records[f"img/{NFC}/{NFC}-1.png"].path == str(on_disk["nfc"])
    assert records[f"img/x/{NFC}-2.png"].path == str(on_disk["nfd"])

    twice = tmp_path / "twice.csv"
    twice.write_text("\n".join(["path,label", *benign, f"img/{NFC}/{NFC}-1.png,m", f"img/{NFD}/{NFD}-1.png,m"])
                     + "\n", encoding="utf-8")
    assert main(["split", "--dataset", "csv", "--csv", str(twice)]) == 2
    line = _one_error_line(capsys, "split")
    assert "lines 8 and 9 name the same image" in line and str(twice) in line
    assert ascii(f"img/{NFD}/{NFD}-1.png") in line  # two spellings that print alike, told apart



def test_locate_file_finds_a_name_in_the_other_unicode_form_folder_by_folder(tmp_path, monkeypatch):
    from lmfloss.data.files import locate_file

    if not _normalisation_sensitive(tmp_path):
        pytest.skip("this file system does not keep NFC and NFD names apart")
    (tmp_path / NFC).mkdir()
    (tmp_path / NFC / f"{NFD}.png").write_bytes(b"")
    (tmp_path / f"{NFC}.png").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert locate_file(f"{NFD}.png") == f"{NFC}.png"  # relative, one part
    for folder, name in [(NFD, NFD), (NFD, NFC), (NFC, NFC)]:  # mixed forms: found folder by folder
        assert locate_file(str(tmp_path / folder / f"{name}.png")) == str(tmp_path / NFC / f"{NFD}.png")
    assert locate_file(f"{NFC}/missing.png") == f"{NFC}/missing.png"

# ---- 2. split and train agree; skipping moves no good image ------------------------------------
TINY = ["--model", "shufflenet_v2_x0_5", "--weights", "none", "--image-size", "28", "--epochs", "1",
        "--device", "cpu", "--bootstrap", "0", "--batch-size", "8", "--loss", "ce", "--quiet"]


def _two_classes(root: Path, n: int = 8) -> Path:
    for k, name in enumerate(("benign", "malignant")):
        for i in range(n):
            _png(root / name / f"{name}{i}.png", 100 * k + i)
    return root


@pytest.mark.slow
def test_dangling_link_is_an_unreadable_image_for_split_and_train_alike(tmp_path, capsys):
    import json

    root = _two_classes(tmp_path / "data")
    (root / "benign" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    table = tmp_path / "labels.csv"
    rows = [f"{p.relative_to(root.parent).as_posix()},{p.parent.name}" for p in sorted(root.rglob("*.png"))]
    table.write_text("\n".join(["path,label", *rows]) + "\n")
    assert any("gone.png" in r for r in rows)
    data = [["--dataset", "imagefolder", "--root", str(root)], ["--dataset", "csv", "--csv", str(table)]]
    for args in data:
        capsys.readouterr()
        assert main(["split", *args]) == 2
        line = _one_error_line(capsys, "split")
        assert "gone.png" in line and "--skip-bad-images" in line and "does not exist" in line
        assert "Errno" not in line
        assert main(["split", *args, "--skip-bad-images"]) == 0
        assert "skipped 1 unreadable image(s): " in capsys.readouterr().out

    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["train", *data[0], "--out", str(tmp_path / "strict"), *cache, *TINY]) == 2
    line = _one_error_line(capsys, "train")
    assert "gone.png" in line and "--skip-bad-images" in line and "Errno" not in line
    assert main(["train", *data[0], "--out", str(tmp_path / "run"), "--skip-bad-images", *cache, *TINY]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [Path(p).name for p in report["skipped_images"]] == ["gone.png"]


def test_skipping_bad_images_moves_no_good_image_between_splits(tmp_path, capsys):
    import csv
    import shutil

    intact = _two_classes(tmp_path / "intact", n=20)
    for i in range(20):  # patients for --group-by: two images each
        for name in ("benign", "malignant"):
            patient = intact / name / f"p{i // 2}"
            patient.mkdir(exist_ok=True)
            (intact / name / f"{name}{i}.png").rename(patient / f"{name}{i}.png")
    broken = tmp_path / "broken"
    shutil.copytree(intact, broken)
    for path in (broken / "benign" / "p3" / "benign7.png", broken / "malignant" / "p6" / "malignant12.png"):
        path.write_bytes(b"not an image")

    def split_of(root: Path, *extra: str) -> dict[str, str]:
        out = tmp_path / f"{root.name}{''.join(extra)}.csv"
        assert main(["split", "--dataset", "imagefolder", "--root", str(root), "--out", str(out), *extra]) == 0
        with out.open(newline="") as handle:
            return {r["path"]: r["split"] for r in csv.DictReader(handle)}

    for grouping in ([], ["--group-by", "patient"]):
        reference = split_of(intact, *grouping)
        skipped = split_of(broken, "--skip-bad-images", *grouping)
        assert len(reference) == 40 and len(skipped) == 38
        assert skipped == {path: reference[path] for path in skipped}

    def folds_of(root: Path, *extra: str) -> dict[str, str]:
        out = tmp_path / f"{root.name}-folds.csv"
        assert main(["split", "--dataset", "imagefolder", "--root", str(root), "--folds", "3",
                     "--out", str(out), *extra]) == 0
        with out.open(newline="") as handle:
            return {r["path"]: r["fold"] for r in csv.DictReader(handle)}

    reference = folds_of(intact)
    skipped = folds_of(broken, "--skip-bad-images")
    assert len(skipped) == 38 and skipped == {path: reference[path] for path in skipped}


# ---- 3. killed work leaves nothing behind ------------------------------------------------------
def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_killed_prepare_leaves_no_decoder_and_its_partial_file_goes_with_the_next_run(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    # 160 hard links to one 1024 px noise PNG (~25 ms to decode each): a build of a few seconds.
    root = tmp_path / "data"
    big = _png(tmp_path / "big.png", 0, size=1024)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(80):
            try:
                os.link(big, root / name / f"{i}.png")
            except OSError:
                (root / name / f"{i}.png").write_bytes(big.read_bytes())
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "lmfloss", "prepare", "--dataset", "imagefolder", "--root", str(root),
               "--cache-dir", str(cache), "--image-size", "16", "--workers", "2", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(children := _children(process.pid)) < 2:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the decoders never started"
        time.sleep(0.02)
    time.sleep(0.3)  # mid-build
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    deadline = time.monotonic() + 5
    while any(_running(child) for child in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphans = [child for child in children if _running(child)]
    for child in orphans:  # leave no process behind when the test fails
        os.kill(child, signal.SIGKILL)
    assert not orphans, "decoder processes outlived the command"
    assert list(cache.glob("*.npy")) == []  # killed before the train split was finished
    assert len(list(cache.glob(".*.npy.part"))) == 1

    assert main(["prepare", "--dataset", "imagefolder", "--root", str(root), "--cache-dir", str(cache),
                 "--image-size", "16", "--workers", "0", "--splits", "val", "--quiet"]) == 0
    assert list(cache.glob(".*.part")) == [] and len(list(cache.glob("*-val-*.npy"))) == 1


def test_stale_partial_cache_files_of_dead_builders_go_and_live_ones_stay(tmp_path):
    import subprocess
    import sys

    from lmfloss.data import cache as cache_module
    from lmfloss.data import make_dataset

    root = _two_classes(tmp_path / "data", n=3)
    cache = tmp_path / "cache"
    cache.mkdir()
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    host = cache_module._host()
    dead = cache / f".imagefolder-train-16px-0123456789abcdef.{host}.{finished.pid}.0a1b2c3d.npy.part"
    live = cache / f".imagefolder-train-16px-0123456789abcdef.{host}.{os.getpid()}.0a1b2c3d.npy.part"
    elsewhere = cache / f".imagefolder-train-16px-0123456789abcdef.other-host.{finished.pid}.0a1b2c3d.npy.part"
    for path in (dead, live, elsewhere):
        path.write_bytes(b"\0" * 100)
    make_dataset(load_splits("imagefolder", root=root), "train", image_size=16, cache_dir=cache)
    assert not dead.exists() and live.exists() and elsewhere.exists()


def test_train_workers_decode_the_cache_in_that_many_processes(tmp_path, monkeypatch):
    from lmfloss.config import TrainConfig
    from lmfloss.data import cache as cache_module
    from lmfloss.data import dataset_for

    root = _two_classes(tmp_path / "data", n=50)  # 70 training images: two chunks of 64
    used: list[int] = []
    fill = cache_module._fill_in_processes

    def spy(*args, **kwargs):
        used.append(args[4])
        return fill(*args, **kwargs)

    monkeypatch.setattr(cache_module, "_fill_in_processes", spy)
    config = TrainConfig(dataset="imagefolder", root=str(root), image_size=16, workers=2,
                         cache_dir=str(tmp_path / "cache"))
    serial = dataset_for(config.replace(workers=0, cache_dir=str(tmp_path / "serial")), "train")
    assert used == []
    parallel = dataset_for(config, "train")
    assert used == [2]
    np.testing.assert_array_equal(np.load(parallel.images_path), np.load(serial.images_path))


def test_prepare_workers_0_decodes_in_this_process(tmp_path, capsys):
    root = _two_classes(tmp_path / "data")
    assert main(["prepare", "--dataset", "imagefolder", "--root", str(root), "--cache-dir", str(tmp_path / "c"),
                 "--image-size", "16", "--workers", "0", "--quiet"]) == 0
    assert len(list((tmp_path / "c").glob("*.npy"))) == 3
    assert main(["prepare", "--dataset", "imagefolder", "--root", str(root), "--cache-dir", str(tmp_path / "c"),
                 "--image-size", "16", "--workers", "-1", "--quiet"]) == 2
    assert "-1" in _one_error_line(capsys, "prepare")


def test_full_disk_while_building_the_cache_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    import errno
    import os

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space, raising=False)
    root = _two_classes(tmp_path / "data")
    cache = tmp_path / "cache"
    assert main(["prepare", "--dataset", "imagefolder", "--root", str(root), "--cache-dir", str(cache),
                 "--image-size", "16", "--workers", "0", "--quiet"]) == 2
    line = _one_error_line(capsys, "prepare")
    assert "no space left" in line and "nothing else was written" in line
    assert str(cache / "imagefolder-train-16px-") in line and ".npy'" in line
    assert list(cache.iterdir()) == []


# ---- 4. a dataset's warning once, not once per split ---------------------------------------------
def _dim_16_bit(root: Path, n: int = 7) -> Path:
    """12-bit values in 16-bit files: nearly black under the 'dtype' rule."""
    rng = np.random.default_rng(3)
    for k, name in enumerate(("benign", "malignant")):
        (root / name).mkdir(parents=True)
        for i in range(n):  # 7 per class: 5 train, 1 val, 1 test
            Image.fromarray(rng.integers(0, 1500, (24, 24)).astype(np.uint16) + 200 * k).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("command", ["prepare", pytest.param("train", marks=pytest.mark.slow)])
def test_dim_dataset_warns_once_for_all_its_splits(tmp_path, caplog, command):
    root = _dim_16_bit(tmp_path / "xray")
    data = ["--dataset", "imagefolder", "--root", str(root), "--cache-dir", str(tmp_path / "cache")]
    argv = {"prepare": ["prepare", *data, "--image-size", "16", "--workers", "1", "--quiet"],
            "train": ["train", *data, "--out", str(tmp_path / "run"), *TINY]}[command]
    for attempt in ("builds the cache", "reuses it"):
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(argv if attempt == "builds the cache" or command == "prepare"
                        else [*argv, "--overwrite"]) == 0
        warned = [r.getMessage() for r in caplog.records if "nearly constant" in r.getMessage()]
        assert len(warned) == 1, (attempt, warned)
        assert "14 image(s)" in warned[0] and "--intensity minmax" in warned[0], warned[0]


def test_reused_cache_leaves_out_a_skipped_image_whose_name_has_a_space(tmp_path):
    from lmfloss.data import make_dataset

    root = _two_classes(tmp_path / "data")
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "x.jpg")
    good = (tmp_path / "x.jpg").read_bytes()
    (root / "benign" / "my scan.jpg").write_bytes(good[: len(good) // 2])  # the header parses, the pixels do not
    splits = load_splits("imagefolder", root=root, skip_bad_images=True)
    split = next(s for s in ("train", "val", "test") if any(r.id == "benign/my scan.jpg" for r in splits.records(s)))
    built = make_dataset(splits, split, image_size=16, cache_dir=tmp_path / "cache")
    reused = make_dataset(splits, split, image_size=16, cache_dir=tmp_path / "cache")
    for dataset in (built, reused):
        assert [Path(p).name for p in dataset.skipped] == ["my scan.jpg"]
        assert "benign/my scan.jpg" not in [r.id for r in dataset.records]


# ---- 5. a patient with images of two classes ------------------------------------------------------
def test_patient_with_images_of_two_classes_is_named_once(tmp_path, caplog, capsys):
    lines = ["path,label,patient_id"]
    for i in range(24):
        label = "benign" if i % 2 else "malignant"
        patient = f"p{i // 2}"  # p0..p11: one benign and one malignant image each ...
        if i >= 16:
            patient = f"q{i}"  # ... but q16..q23 have one image each
        _png(tmp_path / f"{i}.png", i)
        lines.append(f"{i}.png,{label},{patient}")
    table = tmp_path / "labels.csv"
    table.write_text("\n".join(lines) + "\n")
    for extra in ([], ["--folds", "3"]):
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(["split", "--dataset", "csv", "--csv", str(table), "--group-by", "patient", *extra]) == 0
        mixed = [r.getMessage() for r in caplog.records if "more than one class" in r.getMessage()]
        assert len(mixed) == 1, (extra, mixed)
        assert mixed[0].startswith("8 patient group(s)") and "'p0' (benign 1, malignant 1)" in mixed[0]
        assert "most common class" in mixed[0] and "'p7'" not in mixed[0]  # the first few only
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["split", "--dataset", "csv", "--csv", str(table)]) == 0  # not grouped: not the point
    assert not [r for r in caplog.records if "more than one class" in r.getMessage()]


# ---- 6. a symbolic-link loop under an image folder ----------------------------------------------
@pytest.mark.parametrize(("link", "target"), [
    ("benign/notes/again", "."),          # to itself, in a folder without images: was walked 40 links deep
    ("malignant/p1/up", "../.."),         # to the dataset root
    ("benign/x/to-y", "../y"),            # two links that lead to each other
])
def test_symbolic_link_loop_is_one_short_line(tmp_path, capsys, link, target):
    root = _two_classes(tmp_path / "data")
    (root / "benign" / "notes").mkdir()
    (root / "malignant" / "p1").mkdir()
    (root / "benign" / "x").mkdir()
    (root / "benign" / "y").mkdir()
    (root / "benign" / "y" / "to-x").symlink_to("../x")
    if link != "benign/x/to-y":
        (root / "benign" / "y" / "to-x").unlink()
    (root / link).symlink_to(target)
    assert main(["split", "--dataset", "imagefolder", "--root", str(root)]) == 2
    line = _one_error_line(capsys, "split")
    assert "symbolic-link loop" in line and len(line) < 400, line
    assert f"link '{root / link}" in line  # the link, or a path through it


def test_a_folder_that_cannot_be_listed_is_one_line_not_left_out(tmp_path, capsys, monkeypatch):
    """os.walk skips a folder it cannot list without a word (and its images with it); the walk
    names it. Unreadable is injected at os.scandir: a test running as root can read any folder."""
    root = _two_classes(tmp_path / "data")
    hidden = root / "malignant" / "batch2"
    hidden.mkdir()
    _png(hidden / "m9.png", 199)
    scandir = os.scandir

    def refusing(path="."):
        if os.fspath(path) == os.fspath(hidden):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    assert main(["split", "--dataset", "imagefolder", "--root", str(root)]) == 2
    line = _one_error_line(capsys, "split")
    assert f"cannot list the folder '{hidden}' (Permission denied)" in line, line
