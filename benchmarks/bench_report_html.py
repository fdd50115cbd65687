"""How long ``lmfloss report --html`` takes on a 300-run study, and how big the page is.

Writes a study shaped like the paper's grid with seeds -- 4 datasets x 3 models x 5 losses x
5 seeds = 300 run directories, 100 epochs of ``metrics.csv`` each, ``predictions.csv`` of 1,500
test images of 7 classes (the size of HAM10000's test split) and a ``report.json`` with its
confusion matrix -- then times the whole ``lmfloss report RUNS --out DIR --html`` (tables,
bootstrap intervals, paired tests, figures, report.md and the page; in-process through
``lmfloss.cli.main``), its CPU time beside the wall clock (on a loaded machine the difference
is time spent waiting for a core), and the page's size. Issue 26's bars: under 30 s on 2 CPU
cores also under load, and under 5 MB.

Usage::

    python benchmarks/bench_report_html.py [--runs-dir /tmp/study300] [--out FILE.md] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from lmfloss.config import TrainConfig
from lmfloss.losses import resolved_loss_params
from lmfloss.metrics import classification_report

DATASETS = ("odir5k", "ham10000", "isic2019", "covid19")
MODELS = ("efficientnet_v2_s", "resnet50", "densenet121")
LOSSES = ("ce", "focal", "ldam", "bwcce", "lmf")
SEEDS = (1, 2, 3, 4, 5)
CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
TEST_IMAGES = 1500
EPOCHS = 100


def write_study(root: Path) -> int:
    """Write the 300 run directories under ``root``; return how many."""
    rng = np.random.default_rng(0)
    k = len(CLASSES)
    labels = rng.choice(k, size=TEST_IMAGES, p=np.array([3, 5, 11, 1, 11, 67, 2]) / 100)
    count = 0
    for dataset in DATASETS:
        for model in MODELS:
            for quality, loss in enumerate(LOSSES):
                for seed in SEEDS:
                    run = root / f"{dataset}-{model}-{loss}-s{seed}"
                    run.mkdir(parents=True, exist_ok=True)
                    config = TrainConfig(dataset=dataset, model=model, loss=loss, seed=seed, weights="none",
                                         epochs=EPOCHS).to_dict()
                    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
                    error = 0.45 - 0.02 * quality + 0.01 * rng.standard_normal()
                    preds = np.where(rng.random(TEST_IMAGES) < error, rng.integers(0, k, TEST_IMAGES), labels)
                    probs = np.full((TEST_IMAGES, k), 0.3 / (k - 1))
                    probs[np.arange(TEST_IMAGES), preds] = 0.7
                    epochs = np.arange(1, EPOCHS + 1)
                    curve = 1 - 0.5 * np.exp(-epochs / 20) + 0.01 * rng.standard_normal(EPOCHS)
                    with (run / "metrics.csv").open("w", newline="") as handle:
                        writer = csv.writer(handle)
                        writer.writerow(["epoch", "train_loss", "val_loss", "val_accuracy", "val_f1_macro",
                                         "val_balanced_accuracy", "val_auc", "lr", "seconds"])
                        for e, c in zip(epochs, curve):
                            writer.writerow([e, 2 * (1 - c), 2.2 * (1 - c), c, c - 0.2, c - 0.2, c, 1e-4, 60.0])
                    with (run / "predictions.csv").open("w", newline="") as handle:
                        writer = csv.writer(handle)
                        writer.writerow(["id", "label", "pred", *(f"prob_{c}" for c in CLASSES)])
                        for i, (y, p, row) in enumerate(zip(labels, preds, probs)):
                            writer.writerow([f"img{i:05d}", CLASSES[y], CLASSES[p], *(f"{q:.4f}" for q in row)])
                    test = classification_report(labels, preds, probs, CLASSES, n_bootstrap=0)
                    report = {"task": "multiclass", "best_epoch": int(epochs[np.argmax(curve)]),
                              "select_metric": "f1_macro", "class_names": CLASSES,
                              "train_class_counts": [229, 360, 769, 81, 779, 4693, 99],
                              "loss": {"name": loss, "params": resolved_loss_params(loss)},
                              "val": {**test, "f1_macro": float(test["f1_macro"] + 0.01)}, "test": test,
                              "config": config,
                              "data": {"dataset": dataset, "name": dataset, "fingerprint": f"fp-{dataset}",
                                       "images": {"test": TEST_IMAGES}}}
                    (run / "report.json").write_text(json.dumps(report))
                    count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", default=None,
                        help="where to write the study (default: a temporary folder); a folder that already holds "
                             "the study's runs is reused as it is")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", default=None, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    from lmfloss.cli import main as lmfloss

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.runs_dir) if args.runs_dir else Path(tmp) / "study"
        runs = root / "runs"
        began = time.perf_counter()
        reused = runs.is_dir() and len(list(runs.glob("*/report.json"))) == len(DATASETS) * len(MODELS) * len(
            LOSSES) * len(SEEDS)
        n = len(list(runs.glob("*/report.json"))) if reused else write_study(runs)
        written = time.perf_counter() - began
        load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        began = time.perf_counter()
        status = lmfloss(["report", str(runs), "--out", str(root / "report"), "--html", "--bootstrap",
                          str(args.bootstrap), "--quiet"])
        seconds = time.perf_counter() - began
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        if status != 0:
            raise SystemExit(f"lmfloss report --html failed with status {status}")
        page = root / "report" / "report.html"
        size = page.stat().st_size
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    before = ", ".join(f"{v:.1f}" for v in load_before) if load_before else "n/a"
    lines = [
        "# `lmfloss report --html` on a 300-run study", "",
        f"Command: `python benchmarks/bench_report_html.py --bootstrap {args.bootstrap}`", "",
        f"- {n} run directories: {len(DATASETS)} datasets x {len(MODELS)} models x {len(LOSSES)} losses x "
        f"{len(SEEDS)} seeds; {EPOCHS} epochs of metrics.csv and {TEST_IMAGES} test predictions (7 classes) each "
        f"({'reused' if reused else f'written in {written:.0f} s'})",
        f"- {os.cpu_count()} CPU cores; load average (1, 5, 15 min) before: {before}, after: {load}", "",
        "| what | measured | bar |", "|---|---:|---:|",
        f"| `lmfloss report --html` in all (wall clock) | {seconds:.1f} s | 30 s |",
        f"| its CPU time (user + system; wall minus this is time waiting for a core) | {cpu:.1f} s | |",
        f"| report.html | {size / 2**20:.2f} MB | 5 MB |", "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
