"""torchrun with two CPU processes (gloo): metrics over the full split, files written once."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist
from sklearn.metrics import f1_score

from lmfloss.rundir import REFIT, RUN_FILES
from lmfloss.train import evaluate_run, load_run

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = [
    pytest.mark.realdata("data/breastmnist/breastmnist.npz"),
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend"),
    pytest.mark.slow,
]


def test_torchrun_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "lmfloss", "train", "--dataset", "breastmnist", "--root", str(SHARED),
        "--model", "shufflenet_v2_x0_5", "--weights", "none", "--image-size", "16", "--epochs", "1",
        "--device", "cpu", "--loss", "ce", "--bootstrap", "50", "--out", str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 alone prints the summary and the per-epoch line
    assert proc.stdout.count(f"{out}: best epoch 1") == 1, proc.stdout
    assert proc.stderr.count("epoch 1/1") == 1, proc.stderr
    assert {p.name for p in out.iterdir()} == set(RUN_FILES) - {REFIT} | {".lock"}  # no second copy, no temporary file

    report = json.loads((out / "report.json").read_text())
    # BreastMNIST val has 78 images and test 156: odd splits of 2 ranks get padded by the
    # sampler, the gathered predictions must hold every image exactly once.
    assert report["val"]["n"] == 78 and report["test"]["n"] == 156
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 156 and len({r["id"] for r in rows}) == 156
    names = report["class_names"]
    y = np.array([names.index(r["label"]) for r in rows])
    pred = np.array([names.index(r["pred"]) for r in rows])
    assert report["test"]["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro", labels=[0, 1], zero_division=0))

    # The same checkpoint evaluated in one process gives the same validation numbers.
    single = evaluate_run(load_run(out), "val")["report"]
    assert single["confusion_matrix"] == report["val"]["confusion_matrix"]
    with open(out / "metrics.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert float(row["val_f1_macro"]) == pytest.approx(single["f1_macro"])
