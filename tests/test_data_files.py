"""Own-data intake (issue 9): nothing lost, nothing silently wrong.

One test per promise, each on small files made here: image folders with per-patient
sub-folders, CSV files with odd spellings, encodings and labels, 16-bit and float images,
run directories whose data changed, two processes on one run directory, Ctrl-C
granularity, sweeps with typos. User mistakes go through ``lmfloss.cli.main`` and must
end in exit code 2 and one line on stderr that names the culprit.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from cli_helpers import one_error_line as _one_error_line
from lmfloss.cli import main
from lmfloss.data import load_splits
from lmfloss.errors import DataError, LmflossError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A run of a few seconds at most: 28 px, no downloads, no bootstrap, one epoch.
TINY = ["--model", "shufflenet_v2_x0_5", "--weights", "none", "--image-size", "28", "--epochs", "1",
        "--device", "cpu", "--bootstrap", "0", "--batch-size", "8", "--loss", "ce", "--quiet"]
CLASSES = ("benign", "malignant")


# ---- helpers ---------------------------------------------------------------------------
def _rgb(rng: np.random.Generator, label: int, size: int = 32) -> np.ndarray:
    """A noise image whose brightness tells the class (so a model has something to learn)."""
    return (rng.random((size, size, 3)) * 100 + 120 * label).astype(np.uint8)


def _csv_dataset(folder: Path, n: int = 10, labels: tuple[str, ...] = CLASSES, seed: int = 0) -> Path:
    """``folder/img/<label><i>.png`` and ``folder/base.csv`` (path,label) listing them."""
    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    lines = ["path,label"]
    for k, label in enumerate(labels):
        for i in range(n):
            Image.fromarray(_rgb(rng, k % 2)).save(folder / "img" / f"{label}{i}.png")
            lines.append(f"img/{label}{i}.png,{label}")
    path = folder / "base.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _imagefolder(root: Path, n: int = 8, seed: int = 0) -> Path:
    """``root/<class>/<class><i>.png`` for the two classes."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(_rgb(rng, k)).save(root / name / f"{name}{i}.png")
    return root


def _split_of(splits, kind: str = "group") -> dict[str, set[str]]:
    """Which splits each group's images fall into."""
    seen: dict[str, set[str]] = defaultdict(set)
    for split in ("train", "val", "test"):
        for record in splits.records(split):
            seen[getattr(record, kind)].add(split)
    return seen


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, one_torch_thread):
    """A finished 1-epoch run on a tiny image folder (for predict and cam)."""
    folder = tmp_path_factory.mktemp("intake-run")
    root = _imagefolder(folder / "data")
    out = folder / "run"
    code = main(["train", "--dataset", "imagefolder", "--root", str(root), "--out", str(out),
                 "--cache-dir", str(folder / "cache"), *TINY])
    assert code == 0
    return out


# ---- 1. image folders with per-patient sub-folders ------------------------------------
def test_imagefolder_indexes_every_file_and_groups_by_patient_folder(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "folders"
    on_disk = []
    for k, name in enumerate(CLASSES):
        for p in range(1, 11):
            patient = root / name / f"patient{p + 10 * k:02d}"
            patient.mkdir(parents=True)
            # Every patient's file has the same name: the old index kept one per name.
            for file in ["image.png"] + (["second.png"] if p % 2 else []):
                Image.fromarray(_rgb(rng, k)).save(patient / file)
                on_disk.append(f"{name}/{patient.name}/{file}")
    # Same stem, two formats, one folder: two images.
    Image.fromarray(_rgb(rng, 0)).save(root / "benign" / "patient01" / "x.png")
    Image.fromarray(_rgb(rng, 0)).save(root / "benign" / "patient01" / "x.jpg")
    on_disk += ["benign/patient01/x.png", "benign/patient01/x.jpg"]

    splits = load_splits("imagefolder", root=root, group_by="patient")
    records = [r for s in ("train", "val", "test") for r in splits.records(s)]
    assert len(records) == len(on_disk) == 32
    assert sorted(r.id for r in records) == sorted(on_disk)  # root-relative posix paths
    for record in records:
        assert Path(record.path) == (root / record.id).resolve()
        assert splits.class_names[record.label] == record.id.split("/")[0]
        assert record.group == record.id.split("/")[1]  # the patient folder
    where = _split_of(splits)
    assert len(where) == 20
    assert all(len(s) == 1 for s in where.values()), {g: s for g, s in where.items() if len(s) > 1}
    assert splits.straddling_groups == 0
    assert all(splits.records(s) for s in ("val", "test"))  # the check above is not vacuous


# ---- 2. data identity --------------------------------------------------------------------
def test_data_identity_follows_content_not_location(tmp_path):
    from lmfloss.report.runs import ReportRun, assign_dataset_keys

    first = _csv_dataset(tmp_path / "site-a")
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


# ---- 3. class order ----------------------------------------------------------------------
def test_class_order_is_independent_of_hash_seed(tmp_path):
    code = ("import json; from lmfloss.data.records import order_class_names as o; "
            "print(json.dumps([o(['10', '2', '1', '03'], 't'), "
            "o(['nevus', 'Melanoma', 'bcc', 'akiec', 'vasc', 'df'], 't')]))")
    outputs = []
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                              capture_output=True, text=True, timeout=120, check=True)
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0] == [["1", "2", "03", "10"], ["Melanoma", "akiec", "bcc", "df", "nevus", "vasc"]]

    from lmfloss.data.records import order_class_names

    with pytest.raises(DataError, match=r"'01' and '1'"):
        order_class_names(["1", "01", "2"], "t")
    table = _csv_dataset(tmp_path, n=2, labels=("1", "01", "2"))
    with pytest.raises(DataError, match=r"'01' and '1'.*same number") as info:
        load_splits("csv", csv=table)
    assert str(table) in str(info.value)


# ---- 4. absolute paths, and data that changed after training -----------------------------
def test_run_records_absolute_paths_and_refuses_changed_data(tmp_path, monkeypatch, capsys):
    table = _csv_dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--dataset", "csv", "--csv", "data/base.csv", "--out", "run",
                 "--cache-dir", "cache", *TINY]) == 0
    text = (run / "config.yaml").read_text()
    saved = yaml.safe_load(text)
    assert Path(saved["csv"]).is_absolute() and Path(saved["csv"]) == table.resolve()
    assert "# csv as typed: data/base.csv" in text
    test_images = json.loads((run / "report.json").read_text())["test"]["n"]

    # Elsewhere, a different data/base.csv (three classes): the run still reads its own.
    elsewhere = tmp_path / "elsewhere"
    _csv_dataset(elsewhere / "data", labels=("a", "b", "c"), seed=5)
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--out", str(tmp_path / "eval.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["n"] == test_images == 4

    # One label changes in the run's own CSV: scoring or resuming would be silently wrong.
    table.write_text(table.read_text().replace("img/benign3.png,benign", "img/benign3.png,malignant"))
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 2
    line = _one_error_line(capsys, "evaluate")
    assert "the data changed since" in line and str(run) in line
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 2
    # The image cache's progress bars still show under --quiet (a bug of its own, see
    # test_quiet_train_error_is_the_only_stderr_line); the error is the one other line.
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if x.strip() and not x.startswith("caching ")]
    assert len(lines) == 1 and lines[0].startswith("lmfloss train: error: "), lines
    assert "the data changed since" in lines[0]


def test_refused_resume_keeps_the_finished_run(tmp_path, capsys):
    from lmfloss.rundir import is_finished

    table = _csv_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", "--dataset", "csv", "--csv", str(table), "--out", str(run),
                 "--cache-dir", str(tmp_path / "cache"), *TINY]) == 0
    assert is_finished(run)
    table.write_text(table.read_text().replace("img/benign3.png,benign", "img/benign3.png,malignant"))
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 2
    assert "the data changed since" in capsys.readouterr().err
    assert is_finished(run)  # nothing of the finished run is lost by a refused command


def test_quiet_train_error_is_the_only_stderr_line(tmp_path, capsys):
    table = _csv_dataset(tmp_path, n=4)
    rows = table.read_text().splitlines()
    # No validation images: training is refused after the data (and its cache) is loaded.
    rows = ["path,label,split"] + [f"{r},{'test' if i % 4 == 0 else 'train'}" for i, r in enumerate(rows[1:])]
    table.write_text("\n".join(rows) + "\n")
    code = main(["train", "--dataset", "csv", "--csv", str(table), "--out", str(tmp_path / "run"),
                 "--cache-dir", str(tmp_path / "cache"), *TINY])
    assert code == 2
    line = _one_error_line(capsys, "train")
    assert "no images in its val split" in line


# ---- 5. bit depth ------------------------------------------------------------------------
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


# ---- 6. one file under two spellings -----------------------------------------------------
def test_csv_rows_naming_one_file_twice_are_refused(tmp_path):
    (tmp_path / "base").mkdir()
    Image.fromarray(_rgb(np.random.default_rng(4), 0)).save(tmp_path / "base" / "a.png")
    Image.fromarray(_rgb(np.random.default_rng(5), 1)).save(tmp_path / "base" / "b.png")
    spelled = tmp_path / "spelled.csv"
    spelled.write_text("path,label\nbase/b.png,y\n./base/a.png,x\nbase//a.png,y\n")
    with pytest.raises(DataError, match=r"lines 3 and 4 name the same image") as info:
        load_splits("csv", csv=spelled)
    assert "'./base/a.png'" in str(info.value) and "'base//a.png'" in str(info.value)
    assert str(spelled) in str(info.value)

    os.symlink(tmp_path / "base" / "a.png", tmp_path / "link.png")
    linked = tmp_path / "linked.csv"
    linked.write_text("path,label\nbase/a.png,x\nbase/b.png,y\nlink.png,x\n")
    with pytest.raises(DataError, match=r"lines 2 and 4 name the same image"):
        load_splits("csv", csv=linked)


# ---- 7. one writer per run directory ----------------------------------------------------
def test_second_train_on_one_run_directory_fails_at_once(tmp_path):
    table = _csv_dataset(tmp_path / "data")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "lmfloss", "train", "--dataset", "csv", "--csv", str(table),
               "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *TINY]
    command[command.index("--epochs") + 1] = "2"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while "pid" not in ((out / ".lock").read_text() if (out / ".lock").is_file() else ""):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.02)
        # Hold the first run still while the second starts: it keeps its lock and is certain
        # to be running, however slow the machine (its pid is in the lock file).
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run([*command, "--overwrite"], env=env, capture_output=True, text=True,
                                timeout=120)
        assert first.poll() is None
        first.send_signal(signal.SIGCONT)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr, lines  # no data loaded, nothing trained
        assert lines[0].startswith("lmfloss train: error: ")
        assert f"is in use by lmfloss pid {first.pid}" in lines[0]
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGCONT)
            first.kill()
            first.wait()
    assert (out / "report.json").is_file()
    assert [row["epoch"] for row in csv.DictReader((out / "metrics.csv").open())] == ["1", "2"]


def test_losing_the_race_for_a_new_run_directory_leaves_the_winners_lock(tmp_path, monkeypatch):
    import importlib

    from lmfloss.config import TrainConfig
    from lmfloss.rundir import RunLock

    fit_module = importlib.import_module("lmfloss.train.fit")
    out = tmp_path / "run"
    held: list[RunLock] = []

    class OtherProcessFirst(RunLock):
        """The other process creates the folder and locks it between our check and our lock."""

        def acquire(self) -> RunLock:
            held.append(RunLock(self.path.parent).acquire())
            return super().acquire()

    monkeypatch.setattr(fit_module, "RunLock", OtherProcessFirst)
    config = TrainConfig(dataset="synthetic", model="shufflenet_v2_x0_5", weights="none", image_size=28,
                         epochs=1, device="cpu", bootstrap=0, loss="ce")
    try:
        with pytest.raises(LmflossError, match="is in use by lmfloss pid"):
            fit_module.fit(config, out, quiet=True)
        assert (out / ".lock").is_file()  # the winner's lock file, still naming it
        assert f"pid {os.getpid()}" in (out / ".lock").read_text()
    finally:
        for lock in held:
            lock.release()


# ---- 8. a class without test images ------------------------------------------------------
def test_class_without_support_counts_as_zero_recall_like_sklearn():
    from sklearn.metrics import recall_score

    from lmfloss.metrics import classification_report

    y_true = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    y_pred = np.array([0, 1, 0, 1, 1, 2, 1, 2])  # class 2 predicted, never true
    probs = np.eye(3)[y_pred] * 0.7 + 0.1
    report = classification_report(y_true, y_pred, probs, ["a", "b", "c"], n_bootstrap=0)
    reference = recall_score(y_true, y_pred, labels=range(3), average="macro", zero_division=0)
    assert report["recall_macro"] == pytest.approx(reference)
    assert report["balanced_accuracy"] == pytest.approx(report["recall_macro"])
    assert report["balanced_accuracy"] == pytest.approx((2 / 4 + 3 / 4 + 0) / 3)
    assert report["classes_without_support"] == ["c"]


# ---- 9. a CSV row short of a field --------------------------------------------------------
def test_csv_row_without_label_is_one_line_naming_the_line(tmp_path, capsys):
    table = _csv_dataset(tmp_path, n=3)
    lines = table.read_text().splitlines()
    lines.insert(3, "img/benign9.png")
    table.write_text("\n".join(lines) + "\n")
    assert main(["split", "--dataset", "csv", "--csv", str(table)]) == 2
    line = _one_error_line(capsys, "split")
    assert str(table) in line and "line 4" in line and "label" in line


# ---- 10. sweep typos ---------------------------------------------------------------------
@pytest.mark.parametrize(("space", "extra", "culprit"), [
    ({"loss": ["ce", "lfm"]}, {}, "lfm"),
    ({"loss": ["lmf"], "loss_params.betta": [1.0, 2.0]}, {}, "betta"),
    ({"loss": ["ce", "lmf"]}, {"trials": 3}, "trials"),
], ids=["loss-typo", "loss-param-typo", "grid-with-trials"])
def test_sweep_dry_run_refuses_typos(tmp_path, capsys, space, extra, culprit):
    base = yaml.safe_load((Path(__file__).parents[1] / "configs" / "demo-sweep.yaml").read_text())["base"]
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "typo", "sampler": "grid", "base": base, "space": space, **extra}))
    assert main(["sweep", "--config", str(sweep), "--dry-run", "--out", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys, "sweep")
    assert repr(culprit) in line or f"{culprit}:" in line, line
    assert not (tmp_path / "out").exists()


# ---- 11. PostgreSQL storage URLs ---------------------------------------------------------
def test_bare_postgresql_url_gets_the_installed_driver_and_a_refused_connection_is_named():
    pytest.importorskip("psycopg2")
    from lmfloss.sweep.storage import make_storage, with_driver

    assert with_driver("postgresql://u:p@h/db") == "postgresql+psycopg2://u:p@h/db"
    assert with_driver("postgresql+psycopg://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert with_driver("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(LmflossError, match="connection refused") as info:
        make_storage("postgresql://u:p@127.0.0.1:1/db")
    assert ":p@" not in str(info.value)  # the password is not printed


# ---- 12. Ctrl-C / SIGTERM ----------------------------------------------------------------
def test_stop_request_ends_the_epoch_after_one_step():
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from lmfloss.train.engine import train_one_epoch

    torch.manual_seed(0)
    n = 24
    data = TensorDataset(torch.rand(n, 3, 4, 4), torch.randint(0, 2, (n,), dtype=torch.int64), torch.arange(n))
    loader = DataLoader(data, batch_size=2)  # 12 steps: more than one check interval (10)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    before = [p.detach().clone() for p in model.parameters()]
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return True

    stats = train_one_epoch(model, loader, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                            device=torch.device("cpu"), epoch=1, should_stop=should_stop)
    assert stats["stopped"] is True
    assert stats["steps"] == 1 and stats["images"] == 2
    assert len(calls) == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the step was taken


def test_sigterm_inside_a_command_exits_143(tmp_path, monkeypatch, capsys):
    from lmfloss.commands import report as report_command
    from lmfloss.errors import TrainingInterrupted

    def stopped(args):
        raise TrainingInterrupted("stopped during epoch 2 (step 5); last.pt holds epoch 1", signal.SIGTERM)

    monkeypatch.setattr(report_command, "_run_report", stopped)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "out")]) == 128 + signal.SIGTERM == 143
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == ["lmfloss report: stopped during epoch 2 (step 5); last.pt holds epoch 1"]


# ---- 13. files that are not UTF-8 --------------------------------------------------------
def test_cp1252_csv_is_one_line_naming_utf8(tmp_path, capsys):
    table = _csv_dataset(tmp_path, n=3)
    table.write_bytes(table.read_text().replace("malignant", "Übel").encode("cp1252"))
    assert b"\xdc" in table.read_bytes()
    assert main(["split", "--dataset", "csv", "--csv", str(table)]) == 2
    line = _one_error_line(capsys, "split")
    assert str(table) in line and "UTF-8" in line


def test_report_lists_a_run_with_a_cp1252_config_as_unreadable(tmp_path, capsys):
    runs = tmp_path / "runs"
    (runs / "bad").mkdir(parents=True)
    (runs / "bad" / "config.yaml").write_bytes("dataset: csv\nnote: Übel\n".encode("cp1252"))
    (runs / "started").mkdir()
    (runs / "started" / "config.yaml").write_text("dataset: synthetic\nmodel: resnet18\nloss: ce\n")
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out), "--no-figures", "--quiet"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    text = (out / "report.md").read_text()
    assert "2 run directories: 0 finished" in text
    after = text[text.index("whose config.yaml cannot be read"):].splitlines()[1:]
    listed = [line for line in after[: after.index("## Tables")] if line.startswith("- ")]
    assert len(listed) == 1, listed  # the unfinished run is not unreadable
    assert f"`{runs / 'bad'}`" in listed[0] and "not UTF-8" in listed[0]
    assert "synthetic / resnet18 / CCE: unfinished (1 run(s)" in text


# ---- 14. predict -------------------------------------------------------------------------
def test_predict_expands_folders_and_skips_bad_images_on_request(trained_run, tmp_path, capsys):
    rng = np.random.default_rng(6)
    folder = tmp_path / "new"
    (folder / "ward" / "bed3").mkdir(parents=True)
    good = [folder / "a.png", folder / "ward" / "b.jpg", folder / "ward" / "bed3" / "c.png"]
    for k, path in enumerate(good):
        Image.fromarray(_rgb(rng, k % 2, size=40)).save(path)
    broken = folder / "ward" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG")
    (folder / "notes.txt").write_text("not an image\n")

    out = tmp_path / "preds.csv"
    assert main(["predict", "--run", str(trained_run), str(folder), "--skip-bad-images", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["image"] for r in rows) == sorted(map(str, [*good, broken]))
    for row in rows:
        if row["image"] == str(broken):
            assert row["pred"] == "" and row["error"] == "undecodable image"
        else:
            assert row["pred"] in CLASSES and row["error"] == ""
            assert sum(float(row[f"prob_{c}"]) for c in CLASSES) == pytest.approx(1.0, abs=1e-5)
    assert str(broken) in capsys.readouterr().err

    assert main(["predict", "--run", str(trained_run), str(folder), "--out", str(tmp_path / "no.csv")]) == 2
    line = _one_error_line(capsys, "predict")
    assert str(broken) in line and "--skip-bad-images" in line
    assert not (tmp_path / "no.csv").exists()


# ---- 15. cam on a layer without a feature map --------------------------------------------
def test_cam_target_layer_without_spatial_output_is_refused(trained_run, tmp_path, capsys):
    out = tmp_path / "cam"
    assert main(["cam", "--run", str(trained_run), "--target-layer", "fc", "--out", str(out),
                 "--n", "2", "--no-overlays", "--quiet"]) == 2
    line = _one_error_line(capsys, "cam")
    assert "'fc' has no spatial output" in line
    assert "layers with one:" in line and "conv5" in line  # shufflenet's last feature map


# ---- 16. --group-by with a CSV -------------------------------------------------------------
def test_csv_group_column_keeps_patients_in_one_split(tmp_path, capsys):
    rng = np.random.default_rng(7)
    (tmp_path / "img").mkdir()
    lines = ["path,label,patient_id"]
    for k, name in enumerate(CLASSES):
        for p in range(8):
            for i in range(2):
                file = f"img/{name}-{p}-{i}.png"
                Image.fromarray(_rgb(rng, k)).save(tmp_path / file)
                lines.append(f"{file},{name},P{k}{p}")
    table = tmp_path / "grouped.csv"
    table.write_text("\n".join(lines) + "\n")
    splits = load_splits("csv", csv=table, group_by="patient")
    where = _split_of(splits)
    assert len(where) == 16 and all(len(s) == 1 for s in where.values())
    assert splits.straddling_groups == 0
    assert all(splits.records(s) for s in ("val", "test"))
    assert main(["split", "--dataset", "csv", "--csv", str(table), "--group-by", "patient", "--quiet"]) == 0

    plain = _csv_dataset(tmp_path / "plain", n=4)
    capsys.readouterr()
    assert main(["split", "--dataset", "csv", "--csv", str(plain), "--group-by", "patient"]) == 2
    line = _one_error_line(capsys, "split")
    assert str(plain) in line and "add a column group" in line and "patient_id" in line


# ---- 17. suspicious labels -----------------------------------------------------------------
def test_labels_differing_by_case_or_looking_missing_warn(tmp_path, caplog):
    table = _csv_dataset(tmp_path, n=2, labels=("Benign", "benign", "nan", "malignant"))
    with caplog.at_level("WARNING"):
        splits = load_splits("csv", csv=table)
    assert splits.class_names == ["Benign", "benign", "malignant", "nan"]  # kept, in code-point order
    messages = [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and r.name == "lmfloss.data.records"]
    case = [m for m in messages if "differ only by case" in m]
    missing = [m for m in messages if "look like missing values" in m]
    assert len(case) == 1 and "'Benign' and 'benign'" in case[0]
    assert len(missing) == 1 and "'nan'" in missing[0]
    assert not any("'malignant'" in m for m in messages)
