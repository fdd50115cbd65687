"""One-shot GPU check (<= 5 min on one H100): training throughput of the paper's models.

For ResNet-50, EfficientNetV2-S and DenseNet-121 at 224 px, bf16 autocast, channels-last,
batch 32 and 128:

(a) ceiling: random tensors already on the GPU, forward + backward + Adam step;
(b) the lmfloss data path: a generated on-disk JPEG dataset (``csv`` adapter, uint8 cache,
    DataLoader workers with pinned memory) through ``lmfloss.train.train_one_epoch``;

prints images/s of both and their ratio (aim >= 0.9), the LMF-vs-CE step time (aim <= 1.02)
and extrapolates the wall time of the paper's full grid (4 datasets x 3 models x 5 losses x
100 epochs) from (b) at batch 32.

    python benchmarks/gpu_check.py [--out benchmarks/results/gpu.md] [--workers 8]
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

MODELS = ("resnet50", "efficientnet_v2_s", "densenet121")
BATCHES = (32, 128)
# Images per dataset of the paper (Table 1); train 70 %, validation 15 % each epoch.
PAPER_DATASETS = {"ODIR-5K": 6392, "HAM10000": 10015, "ISIC-2019": 25331, "COVID-19": 21165}
N_TRAIN, N_HELD = 1280, 64  # generated images: train, and each of val / test


def make_images(folder: Path) -> Path:
    """Write a small JPEG dataset (7 classes, 256 px) and its ``path,label,split`` CSV."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i in range(N_TRAIN + 2 * N_HELD):
        split = "train" if i < N_TRAIN else ("val" if i < N_TRAIN + N_HELD else "test")
        label = f"c{i % 7}"
        pixels = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).resize((256, 256)).save(folder / f"{i:05d}.jpg", quality=90)
        rows.append((f"{i:05d}.jpg", label, split))
    path = folder / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    return path


def setup(model_name: str, loss_name: str, counts: list[int], device: torch.device):
    from lmfloss.losses import build_loss
    from lmfloss.models import build_model

    model = build_model(model_name, len(counts), weights="none").to(device, memory_format=torch.channels_last)
    loss_fn = build_loss(loss_name, counts).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
    return model, loss_fn, optimizer


def ceiling(model_name: str, loss_name: str, batch: int, counts: list[int], device, steps: int = 20) -> float:
    """Images/s on tensors already on the GPU (after 5 warm-up steps)."""
    model, loss_fn, optimizer = setup(model_name, loss_name, counts, device)
    x = torch.rand(batch, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(counts), (batch,), device=device)
    model.train()
    for i in range(steps + 5):
        if i == 5:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def data_path(model_name: str, batch: int, config, splits_and_data, device) -> float:
    """Images/s of the second epoch of ``train_one_epoch`` over the lmfloss DataLoader."""
    from lmfloss.train.distributed import DistContext
    from lmfloss.train.engine import train_one_epoch
    from lmfloss.train.loaders import make_loader

    splits, datasets = splits_and_data
    counts = splits.class_counts("train")
    model, loss_fn, optimizer = setup(model_name, "lmf", counts, device)
    loader = make_loader(datasets["train"], config.replace(batch_size=batch), DistContext(), device, train=True)
    rates = []
    for epoch in (1, 2):
        loader.sampler.set_epoch(epoch)
        torch.cuda.synchronize()
        stats = train_one_epoch(model, loader, loss_fn, optimizer, device=device, epoch=epoch,
                                amp_dtype=torch.bfloat16, channels_last=True)
        torch.cuda.synchronize()
        rates.append(stats["images"] / stats["seconds"])
    return rates[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the results as Markdown here")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device; run it on a GPU machine", file=sys.stderr)
        return 1
    from lmfloss.config import TrainConfig
    from lmfloss.train.loaders import load_data

    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda")
    began = time.perf_counter()
    lines = [f"# GPU check: {torch.cuda.get_device_name(0)}", "",
             f"torch {torch.__version__}, CUDA {torch.version.cuda}, python {platform.python_version()}, "
             f"bf16 autocast, channels-last, 224 px, Adam; data path with {args.workers} workers", ""]
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = make_images(Path(tmp))
        config = TrainConfig(dataset="csv", csv=str(csv_path), image_size=224, workers=args.workers,
                             cache_dir=str(Path(tmp) / "cache"), device="cuda")
        loaded = load_data(config)
        counts = loaded[0].class_counts("train")
        lines += ["| model | batch | (a) GPU tensors img/s | (b) lmfloss data path img/s | (b)/(a) | LMF/CE step time |",
                  "|---|---|---|---|---|---|"]
        rate32 = {}
        for name in MODELS:
            for batch in BATCHES:
                top = ceiling(name, "ce", batch, counts, device)
                lmf = ceiling(name, "lmf", batch, counts, device)
                ours = data_path(name, batch, config, loaded, device)
                if batch == 32:
                    rate32[name] = ours
                lines.append(f"| {name} | {batch} | {top:.0f} | {ours:.0f} | {ours / top:.3f} | {top / lmf:.3f} |")
                print(lines[-1], flush=True)
                torch.cuda.empty_cache()
    # Eval runs ~3x faster than training; the test split is evaluated once (ignored here).
    lines += ["", "Extrapolated wall time of the paper's grid (5 losses x 100 epochs, batch 32, path (b)):", ""]
    total = 0.0
    for name, ips in rate32.items():
        per_model = sum(5 * 100 * (0.70 * n / ips + 0.15 * n / (3 * ips)) for n in PAPER_DATASETS.values())
        total += per_model
        lines.append(f"- {name}: {per_model / 3600:.1f} GPU-hours")
    lines.append(f"- all 4 datasets x 3 models x 5 losses x 100 epochs: **{total / 3600:.1f} GPU-hours** on one GPU")
    lines += ["", f"(check ran {time.perf_counter() - began:.0f} s; command: python benchmarks/gpu_check.py)"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
