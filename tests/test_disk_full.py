"""A full disk is one line anywhere (issue 21, item 4), and a resumed run ends identical.

The error is injected at the writer (a file whose writes fail with ENOSPC, as ``write(2)``
does on a full file system; matplotlib's PNG writer; a library error wrapping the
``OSError``), so these tests run everywhere; one more test fills a real, small tmpfs where
the machine lets a test mount one.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lmfloss.fileio as fileio
from cli_helpers import FullDisk
from cli_helpers import one_error_line as _one_error_line
from lmfloss.cli import main
from lmfloss.errors import DiskFull
from lmfloss.rundir import read_metrics
from lmfloss.train.checkpoint import load_checkpoint
from report_helpers import LABELS, make_run, noisy_preds
from tiers import fixture_marks

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPOCHS = 3
# A few seconds per run: 28 px, no downloads, no bootstrap (as tests/test_intake.py's TINY);
# flip augmentation draws from the RNG, so an identical resume also proves its state carried
# over. The best epoch by AUC moves on this data (by macro-F1 it stays at epoch 1), so that
# a full disk can hit an epoch that writes best.pt too.
TINY = ["--model", "shufflenet_v2_x0_5", "--weights", "none", "--image-size", "28", "--epochs", str(EPOCHS),
        "--device", "cpu", "--bootstrap", "0", "--batch-size", "8", "--loss", "ce", "--lr", "1e-3",
        "--augment", "flip", "--select-metric", "auc", "--quiet"]


# ---- helpers ---------------------------------------------------------------------------
def _csv_dataset(folder: Path, n: int = 12) -> Path:
    """Two classes of noise images told apart by brightness, and ``base.csv`` listing them."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True)
    lines = ["path,label"]
    for k, label in enumerate(("benign", "malignant")):
        for i in range(n):
            image = (rng.random((32, 32, 3)) * 100 + 120 * k).astype(np.uint8)
            Image.fromarray(image).save(folder / "img" / f"{label}{i}.png")
            lines.append(f"img/{label}{i}.png,{label}")
    (folder / "base.csv").write_text("\n".join(lines) + "\n")
    return folder / "base.csv"


def _train_args(data: Path, out: Path) -> list[str]:
    return ["train", "--dataset", "csv", "--csv", str(data), "--out", str(out),
            "--cache-dir", str(data.parent / "cache"), *TINY]



def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


@pytest.fixture
def full_disk_at(monkeypatch):
    """``full_disk_at(name, nth)``: the ``nth`` write of file ``name`` (through lmfloss.fileio)
    runs out of space after 100 bytes, as on a disk that fills up during the write."""

    def arm(name: str, nth: int) -> None:
        seen = [0]

        def fake_open(path, mode="r", **kwargs):
            if Path(path).name.startswith(f".{name}."):
                seen[0] += 1
                if seen[0] == nth:
                    raw = FullDisk(path, 100)
                    return io.BufferedWriter(raw) if "b" in mode else io.TextIOWrapper(io.BufferedWriter(raw), **kwargs)
            return open(path, mode, **kwargs)

        monkeypatch.setattr(fileio, "open", fake_open, raising=False)

    return arm


def _without_seconds(run: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_metrics(run)]


def _assert_same_run(run: Path, reference: Path) -> None:
    """``run`` ends where the uninterrupted ``reference`` ends: metrics (but the time),
    best.pt's and last.pt's weights, report.json."""
    assert [r["epoch"] for r in read_metrics(run)] == list(range(1, EPOCHS + 1))
    assert _without_seconds(run) == _without_seconds(reference)
    for name in ("best.pt", "last.pt"):
        a, b = load_checkpoint(run / name), load_checkpoint(reference / name)
        assert a["epoch"] == b["epoch"] and a["model"].keys() == b["model"].keys()
        for key in a["model"]:
            assert torch.equal(a["model"][key], b["model"][key]), f"{name}: weights differ at {key}"
    mine, theirs = (json.loads((r / "report.json").read_text()) for r in (run, reference))
    assert mine == theirs
    assert (run / "MODEL_CARD.md").is_file()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return _csv_dataset(tmp_path_factory.mktemp("disk-full-data") / "data")


@pytest.fixture(scope="module")
@fixture_marks(pytest.mark.slow)
def reference(data, tmp_path_factory, one_torch_thread) -> Path:
    """The same training, uninterrupted."""
    out = tmp_path_factory.mktemp("disk-full-ref") / "run"
    assert main(_train_args(data, out)) == 0
    return out


def _improving_epoch(reference: Path) -> int:
    """The first epoch after the first whose validation score beats every earlier one (it
    writes best.pt as well as last.pt); 2 when there is none."""
    best = -float("inf")
    for row in read_metrics(reference):
        score = row["val_auc"]
        if score is not None and score > best:
            if row["epoch"] > 1:
                return int(row["epoch"])
            best = score
    return 2


# ---- training: a checkpoint that does not fit ------------------------------------------
def test_training_stops_in_one_line_and_resumes_identical(data, reference, tmp_path, full_disk_at, capsys,
                                                          monkeypatch):
    out = tmp_path / "run"
    epoch = _improving_epoch(reference)
    full_disk_at("last.pt", epoch)  # the end of that epoch: best.pt fits, last.pt does not
    assert main(_train_args(data, out)) == 2
    line = _one_error_line(capsys, "train")
    assert line.startswith(f"lmfloss train: error: no space left on the device writing {str(out / 'last.pt')!r} (")
    assert line.endswith(f"; last.pt holds epoch {epoch - 1}. Free some space, then continue with: "
                         f"lmfloss train --resume {out}")
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == epoch - 1
    # best.pt and last.pt change together: best.pt is never of an epoch last.pt does not hold.
    assert load_checkpoint(out / "best.pt")["epoch"] == last["best_epoch"] < epoch
    assert not (out / "report.json").exists() and _leftovers(out) == []

    monkeypatch.undo()  # space freed
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    _assert_same_run(out, reference)


def test_metrics_csv_of_the_last_epoch_is_rebuilt_on_resume(data, reference, tmp_path, full_disk_at, capsys,
                                                            monkeypatch):
    out = tmp_path / "run"
    full_disk_at("metrics.csv", EPOCHS)  # last.pt of the last epoch fitted, metrics.csv did not
    assert main(_train_args(data, out)) == 2
    line = _one_error_line(capsys, "train")
    assert f"writing {str(out / 'metrics.csv')!r}" in line and f"; last.pt holds epoch {EPOCHS}." in line
    assert [r["epoch"] for r in read_metrics(out)] == list(range(1, EPOCHS))

    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    _assert_same_run(out, reference)


def test_a_full_disk_at_the_model_card_is_finished_on_resume(data, reference, tmp_path, full_disk_at, capsys,
                                                             monkeypatch):
    out = tmp_path / "run"
    full_disk_at("MODEL_CARD.md", 1)  # written last, after report.json (which marks the run finished)
    assert main(_train_args(data, out)) == 2
    assert f"writing {str(out / 'MODEL_CARD.md')!r}" in _one_error_line(capsys, "train")
    assert not (out / "MODEL_CARD.md").exists()

    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    _assert_same_run(out, reference)


@pytest.mark.slow
def test_tensorboard_out_of_space_is_one_line_naming_its_file(data, tmp_path, capsys, monkeypatch):
    """A writer that is not lmfloss's (tensorboard) meets the full disk: still one line."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    out = tmp_path / "run"
    events = out / "tensorboard" / "events.out.tfevents.1"
    calls = [0]

    def flush(self):
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(events))

    monkeypatch.setattr(SummaryWriter, "flush", flush)
    assert main([*_train_args(data, out), "--tensorboard"]) == 2
    line = _one_error_line(capsys, "train")
    assert f"writing {str(events)!r}" in line and "; last.pt holds epoch 2." in line
    assert line.endswith(f"lmfloss train --resume {out}")


# ---- figures ---------------------------------------------------------------------------
def test_a_report_figure_on_a_full_disk(tmp_path, capsys, monkeypatch):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    root = tmp_path / "runs"
    for loss in ("ce", "lmf"):
        make_run(root, loss=loss, preds=noisy_preds(LABELS, 0.2, len(loss)))
    out = tmp_path / "out"
    assert main(["report", str(root), "--out", str(out), "--bootstrap", "20", "--quiet"]) == 0
    figures = {p: p.read_bytes() for p in (out / "figures").glob("*.png")}
    assert figures

    real_print_png = FigureCanvasAgg.print_png
    failed: list[str] = []

    def half_then_full(self, target, **kwargs):
        # matplotlib's PNG writer meets a full disk half-way through the file. (print_figure
        # passes a writer outside matplotlib also the keywords meant for other formats.)
        buffer = io.BytesIO()
        real_print_png(self, buffer, **{k: v for k, v in kwargs.items() if k in ("metadata", "pil_kwargs")})
        if isinstance(target, (str, os.PathLike)):
            with open(target, "wb") as handle:
                handle.write(buffer.getvalue()[: buffer.tell() // 2])
        else:
            target.write(buffer.getvalue()[: buffer.tell() // 2])
        failed.append(getattr(target, "name", str(target)))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FigureCanvasAgg, "print_png", half_then_full)
    assert main(["report", str(root), "--out", str(out), "--bootstrap", "20", "--quiet"]) == 2
    line = _one_error_line(capsys, "report")
    name = next(p for p in figures if f"writing {str(p)!r} (" in line)
    assert "; the previous file, if any, is intact. Free some space, then run the same command again" in line
    # The previous figure is whole (no half PNG), and no temporary file is left behind.
    assert {p: p.read_bytes() for p in figures} == figures, name
    assert _leftovers(out) == [] and len(failed) == 1

    monkeypatch.undo()
    assert main(["report", str(root), "--out", str(out), "--bootstrap", "20", "--quiet"]) == 0
    assert {p: p.read_bytes() for p in (out / "figures").glob("*.png")} == figures


def test_save_figure_writes_what_savefig_writes(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "direct.png", dpi=90)
    fileio.save_figure(fig, tmp_path / "atomic.png", dpi=90)
    assert (tmp_path / "atomic.png").read_bytes() == (tmp_path / "direct.png").read_bytes()
    with pytest.raises(ValueError, match="has no suffix"):
        fileio.save_figure(fig, tmp_path / "figure")


# ---- any command, any writer: the command line's one owner -------------------------------
def _raise_wrapped(filename: str | None):
    """A library's error (RuntimeError) raised while handling the OSError of a full disk."""

    def deep(*args, **kwargs):
        try:
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        except OSError as exc:
            raise RuntimeError("could not write the array") from exc

    return deep


def test_the_command_line_turns_any_full_disk_into_one_line(tmp_path, capsys, monkeypatch):
    import lmfloss.commands.data as data_commands  # where `lmfloss split` looks the loader up

    target = tmp_path / "cache" / "images.npy"
    monkeypatch.setattr(data_commands, "load_splits", _raise_wrapped(str(target)))
    argv = ["split", "--dataset", "synthetic", "--out", str(tmp_path / "m.csv"), "--quiet"]
    assert main(argv) == 2
    line = _one_error_line(capsys, "split")
    assert line.startswith(f"lmfloss split: error: no space left on the device writing {str(target)!r} (")
    assert " MiB free there); the file being written may be incomplete" in line

    # --debug shows the traceback instead; an error that is not about space stays a traceback.
    with pytest.raises(RuntimeError, match="could not write the array"):
        main(["--debug", *argv])

    def other(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(data_commands, "load_splits", other)
    with pytest.raises(RuntimeError, match="a bug"):
        main(argv)


def test_the_sweep_database_full_names_the_database(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    import sqlite3

    import lmfloss.sweep.storage as storage
    from lmfloss.sweep.storage import default_storage, make_storage

    class OperationalError(Exception):  # sqlalchemy.exc.OperationalError keeps sqlite's as its cause
        pass

    def full(*args, **kwargs):
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as exc:
            raise OperationalError("(sqlite3.OperationalError) database or disk is full") from exc

    monkeypatch.setattr(storage, "RDBStorage", full)
    with pytest.raises(DiskFull, match=r"no space left on the device writing '.*study\.db' \("):
        make_storage(default_storage(tmp_path))


# ---- a real full disk ------------------------------------------------------------------
_REAL_DISK = textwrap.dedent("""
    import subprocess, sys
    from pathlib import Path

    import torch

    torch.set_num_threads(1)
    from lmfloss.cli import main

    disk, data, keep, *flags = sys.argv[1:]
    disk, keep = Path(disk), Path(keep)
    out = disk / "run"
    cache = str(Path(data).parent / "cache")  # the reference's: nothing to write on the small disk
    code = main(["train", "--dataset", "csv", "--csv", data, "--out", str(out), "--cache-dir", cache, *flags])
    (keep / "first.code").write_text(str(code))
    subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)  # space freed
    (keep / "second.code").write_text(str(main(["train", "--resume", str(out), "--quiet"])))
    import shutil
    shutil.copytree(out, keep / "run")
""")


def test_a_real_full_tmpfs(data, reference, tmp_path):
    """Training on a tmpfs that holds one epoch's checkpoints but not two: one line, then a
    resume after growing the tmpfs ends as the uninterrupted run."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to mount a private tmpfs")
    last, best = (reference / n for n in ("last.pt", "best.pt"))
    # Room for epoch 1's files but not for epoch 2's next to them (both written, then replaced).
    size_kib = int(1.3 * (last.stat().st_size + best.stat().st_size)) // 1024 + 512
    disk, keep = tmp_path / "disk", tmp_path / "keep"
    disk.mkdir()
    keep.mkdir()
    script = tmp_path / "real_disk.py"
    script.write_text(_REAL_DISK)
    probe = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs user namespaces or root): {probe.stderr.strip()}")
    shell = (f"mount -t tmpfs -o size={size_kib}k tmpfs {disk} && "
             f"exec {sys.executable} {script} {disk} {data} {keep} {' '.join(TINY)}")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", shell], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    assert (keep / "first.code").read_text() == "2", proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("lmfloss train: error: ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no space left on the device writing " in lines[0] and "; last.pt holds epoch " in lines[0]
    assert (keep / "second.code").read_text() == "0", proc.stderr
    _assert_same_run(keep / "run", reference)
