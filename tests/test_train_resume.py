"""Resume after an interruption ends bit-for-bit where an uninterrupted run ends (CPU, fixed seed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lmfloss.config import TrainConfig
from lmfloss.rundir import read_metrics
from lmfloss.train import fit
from lmfloss.train.checkpoint import load_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = [pytest.mark.realdata("data/breastmnist/breastmnist.npz"), pytest.mark.slow]
EPOCHS = 3


def config(**changes) -> TrainConfig:
    # 16 px keeps an epoch around a second; flip augmentation draws from the RNG, so an
    # exact resume also proves the RNG state is carried over.
    base = TrainConfig(
        dataset="breastmnist", root=str(SHARED), model="shufflenet_v2_x0_5", weights="none",
        image_size=16, epochs=EPOCHS, batch_size=32, lr=1e-3, lr_step=2, device="cpu", loss="ldam",
        augment="flip", bootstrap=50,
    )
    return base.replace(**changes)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    fit(config(), out, quiet=True)
    return out


def _assert_same_run(run: Path, ref: Path) -> None:
    a, b = load_checkpoint(run / "last.pt"), load_checkpoint(ref / "last.pt")
    assert a["epoch"] == b["epoch"] == EPOCHS
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), f"weights differ at {key}"
    for key, value in a["optimizer"]["state"].items():
        assert torch.equal(value["exp_avg"], b["optimizer"]["state"][key]["exp_avg"])
    assert a["scheduler"] == b["scheduler"]
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))  # each epoch exactly once
    assert drop(rows) == drop(read_metrics(ref))
    assert (run / "report.json").read_text() == (ref / "report.json").read_text()


def test_stop_after_one_epoch_then_resume(tmp_path, reference):
    out = tmp_path / "run"
    # A run stopped after epoch 1 (same seed, config identical except the epoch count) ...
    fit(config(epochs=1), out, quiet=True)
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    # ... extended to the full length must match the uninterrupted run exactly.
    result = fit(config(), out, resume=True, quiet=True)
    assert result.history[-1]["epoch"] == EPOCHS
    _assert_same_run(out, reference)


def _start_cli(out: Path) -> subprocess.Popen:
    c = config()
    args = [
        sys.executable, "-m", "lmfloss", "train", "--dataset", c.dataset, "--root", c.root,
        "--model", c.model, "--weights", "none", "--image-size", str(c.image_size),
        "--epochs", str(c.epochs), "--batch-size", "32", "--lr", "1e-3", "--lr-step", "2",
        "--device", "cpu", "--loss", c.loss, "--augment", "flip", "--bootstrap", "50",
        "--out", str(out), "--quiet",
    ]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _wait_for_epoch(proc: subprocess.Popen, out: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = out / "metrics.csv"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
            return
        if proc.poll() is not None:
            pytest.fail(f"training exited early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no epoch finished in time")


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, reference):
    out = tmp_path / "killed"
    proc = _start_cli(out)
    _wait_for_epoch(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "report.json").exists()
    assert load_checkpoint(out / "last.pt")["epoch"] < EPOCHS
    fit(config(), out, resume=True, quiet=True)
    _assert_same_run(out, reference)


def test_sigterm_stops_cleanly_with_message(tmp_path, reference):
    out = tmp_path / "term"
    proc = _start_cli(out)
    _wait_for_epoch(proc, out)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before SIGTERM arrived")
    assert proc.returncode == 128 + signal.SIGTERM, stderr  # 143, as a shell reports SIGTERM
    assert "stopped" in stderr and f"lmfloss train --resume {out}" in stderr
    assert "Traceback" not in stderr
    done = load_checkpoint(out / "last.pt")["epoch"]
    assert [r["epoch"] for r in read_metrics(out)] == list(range(1, done + 1))
    fit(config(), out, resume=True, quiet=True)
    _assert_same_run(out, reference)
