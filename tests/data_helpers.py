"""Small image data sets the data, run-directory and command-line tests write, and the flags
of a training run of a few seconds on them."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

# A run of a few seconds at most: 28 px, no downloads, no bootstrap, one epoch.
TINY = ["--model", "shufflenet_v2_x0_5", "--weights", "none", "--image-size", "28", "--epochs", "1",
        "--device", "cpu", "--bootstrap", "0", "--batch-size", "8", "--loss", "ce", "--quiet"]
CLASSES = ("benign", "malignant")


def rgb(rng: np.random.Generator, label: int, size: int = 32) -> np.ndarray:
    """A noise image whose brightness tells the class (so a model has something to learn)."""
    return (rng.random((size, size, 3)) * 100 + 120 * label).astype(np.uint8)


def csv_dataset(folder: Path, n: int = 10, labels: tuple[str, ...] = CLASSES, seed: int = 0) -> Path:
    """``folder/img/<label><i>.png`` and ``folder/base.csv`` (path,label) listing them."""
    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    lines = ["path,label"]
    for k, label in enumerate(labels):
        for i in range(n):
            Image.fromarray(rgb(rng, k % 2)).save(folder / "img" / f"{label}{i}.png")
            lines.append(f"img/{label}{i}.png,{label}")
    path = folder / "base.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def imagefolder(root: Path, n: int = 8, seed: int = 0) -> Path:
    """``root/<class>/<class><i>.png`` for the two classes."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rgb(rng, k)).save(root / name / f"{name}{i}.png")
    return root


def split_of(splits, kind: str = "group") -> dict[str, set[str]]:
    """Which splits each group's images fall into."""
    seen: dict[str, set[str]] = defaultdict(set)
    for split in ("train", "val", "test"):
        for record in splits.records(split):
            seen[getattr(record, kind)].add(split)
    return seen
