"""Epoch wall time through lmfloss vs a minimal hand-written PyTorch loop (CPU).

Same data (RetinaMNIST train/val from ../shared/data, 28 px, 1080/120 images), model
(ResNet-18 from scratch, 5 classes), optimiser (Adam 1e-4, wd 5e-4), batch (32), loss
(cross-entropy), and the same per-epoch work: one training pass plus one validation pass.
lmfloss adds its dataset/sampler, checkpoint writes (last.pt, best.pt), metrics.csv and
scikit-learn scores each epoch; the ratio shows what that costs. Aim: <= 1.10.

    .venv/bin/python benchmarks/bench_train.py [--epochs 4] [--threads 1] [--rounds 2]

The first epoch of each run is a warm-up and is not counted; the figure is the median of
the remaining epochs over all rounds (rounds alternate hand loop / lmfloss to share any
drift in machine load).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NPZ = SHARED / "retinamnist" / "retinamnist.npz"


def hand_loop(epochs: int, seed: int = 23) -> list[float]:
    data = np.load(NPZ)
    def tensors(split):
        x = torch.from_numpy(data[f"{split}_images"]).permute(0, 3, 1, 2).float().div(255)
        y = torch.from_numpy(data[f"{split}_labels"].reshape(-1)).long()
        return torch.utils.data.TensorDataset(x, y)
    torch.manual_seed(seed)
    train = torch.utils.data.DataLoader(tensors("train"), batch_size=32, shuffle=True)
    val = torch.utils.data.DataLoader(tensors("val"), batch_size=32)
    model = torchvision.models.resnet18(num_classes=5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for x, y in train:
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.inference_mode():
            preds = torch.cat([model(x).argmax(1) for x, _ in val])
        _ = float((preds == val.dataset.tensors[1]).float().mean())
        times.append(time.perf_counter() - start)
    return times


def lmfloss_run(epochs: int, work: Path) -> list[float]:
    from lmfloss.config import TrainConfig
    from lmfloss.train import fit

    config = TrainConfig(dataset="retinamnist", root=str(SHARED), model="resnet18", weights="none",
                         image_size=28, epochs=epochs, device="cpu", loss="ce", bootstrap=0)
    result = fit(config, work, overwrite=True, quiet=True)
    return [row["seconds"] for row in result.history]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args()
    if not NPZ.is_file():
        print(f"RetinaMNIST not found at {NPZ}", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    hand, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            hand += hand_loop(args.epochs)[1:]
            ours += lmfloss_run(args.epochs, Path(tmp) / f"run{r}")[1:]
    h, o = statistics.median(hand), statistics.median(ours)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} torch thread(s), "
          f"torch {torch.__version__}, python {platform.python_version()}")
    print(f"RetinaMNIST train 1080 + val 120 images, 28 px, ResNet-18, batch 32, CPU; "
          f"{args.rounds} rounds x {args.epochs - 1} timed epochs")
    print(f"hand-written loop : median {h:.3f} s/epoch (all: {', '.join(f'{t:.2f}' for t in hand)})")
    print(f"lmfloss fit       : median {o:.3f} s/epoch (all: {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"overhead ratio    : {o / h:.3f} (aim <= 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
