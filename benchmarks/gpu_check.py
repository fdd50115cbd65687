"""One GPU check (~8 min on one H200): the figures issue 13 asks for, in one run.

For ResNet-50, EfficientNetV2-S and DenseNet-121 at 224 px, bf16 autocast, channels-last:

1. **LMF / CE step time** at batch 32 and 128: forward + backward + Adam on tensors on the
   GPU, the two losses timed in interleaved blocks (``--blocks`` x ``--block`` steps each,
   >= 200 steps per cell after warm-up); median step time and IQR of the blocks, and the
   ratio of medians (aim <= 1.02).
2. **Data path / ceiling** at batch 32 and 128: images/s of the second epoch of
   ``lmfloss.train.train_one_epoch`` over the real data path (a generated JPEG dataset, the
   uint8 cache, ``make_loader``'s batched DataLoader with ``--workers`` workers, pinned
   memory) against the CE ceiling of 1. (aim >= 0.9).
3. **Concurrent trials per GPU**: 1, 2 and 4 processes training the same model on the data
   path at the paper's batch of 32 for ``--window`` seconds each; total images/s, and the
   paper grid's GPU-hours extrapolated from the best setting (aim <= 10 on one H200).
4. **No host sync per step**: ``tests/test_train_hostsync.py`` under
   ``torch.cuda.set_sync_debug_mode("error")``.
5. ``--compile``: whether ``torch.compile`` (default and reduce-overhead) pays at batch 32
   over the paper's 100 epochs, compile time included.

    PYTHONPATH=src python benchmarks/gpu_check.py --out benchmarks/results/gpu.md [--compile]
    PYTHONPATH=src python benchmarks/gpu_check.py --smoke --device cpu   # the script's own check, minutes on a CPU
"""

from __future__ import annotations

import argparse
import csv
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

MODELS = ("resnet50", "efficientnet_v2_s", "densenet121")
BATCHES = (32, 128)
CONCURRENCY = (1, 2, 4)
# Images per dataset of the paper (Table 1); per epoch: train 70 %, validation 15 %.
PAPER_DATASETS = {"ODIR-5K": 6392, "HAM10000": 10015, "ISIC-2019": 25331, "COVID-19": 21165}
N_LOSSES, N_EPOCHS = 5, 100
EVAL_SPEEDUP = 3.0  # a forward pass costs about a third of a training step


def make_images(folder: Path, n_train: int, n_held: int, size: int = 256) -> Path:
    """A JPEG dataset (7 classes) and its ``path,label,split`` CSV."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_train + 2 * n_held):
        split = "train" if i < n_train else ("val" if i < n_train + n_held else "test")
        pixels = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).resize((size, size)).save(folder / f"{i:05d}.jpg", quality=90)
        rows.append((f"{i:05d}.jpg", f"c{i % 7}", split))
    path = folder / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    return path


def _setup(name: str, loss: str, counts: list[int], device: torch.device, image: int):
    from lmfloss.losses import build_loss
    from lmfloss.models import build_model

    model = build_model(name, len(counts), weights="none").to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(loss, counts, validate_args=False).to(device)
    return model, loss_fn, torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def paired_step_times(name: str, batch: int, counts: list[int], device: torch.device, image: int,
                      blocks: int, block: int, warmup: int = 10) -> dict[str, tuple[float, float, float]]:
    """Median, 25th and 75th percentile of the per-step time (ms) of CE and LMF, interleaved."""
    x = torch.rand(batch, 3, image, image, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(counts), (batch,), device=device)
    runs = {loss: _setup(name, loss, counts, device, image) for loss in ("ce", "lmf")}
    times: dict[str, list[float]] = {"ce": [], "lmf": []}

    def steps(loss: str, n: int) -> float:
        model, loss_fn, optimizer = runs[loss]
        model.train()
        _sync(device)
        start = time.perf_counter()
        for _ in range(n):
            with _autocast(device):
                value = loss_fn(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
        _sync(device)
        return (time.perf_counter() - start) * 1000 / n

    for loss in runs:
        steps(loss, warmup)
    for _ in range(blocks):
        for loss in ("ce", "lmf"):
            times[loss].append(steps(loss, block))
    return {loss: tuple(float(v) for v in np.percentile(t, [50, 25, 75])) for loss, t in times.items()}


def data_path_rate(name: str, batch: int, csv_path: Path, cache: Path, workers: int, device: torch.device,
                   image: int) -> float:
    """Images/s of the second epoch of train_one_epoch over lmfloss's data path."""
    from lmfloss.config import TrainConfig
    from lmfloss.train.distributed import DistContext
    from lmfloss.train.engine import train_one_epoch
    from lmfloss.train.loaders import load_data, make_loader

    config = TrainConfig(dataset="csv", csv=str(csv_path), image_size=image, workers=workers, cache_dir=str(cache),
                         device=device.type, batch_size=batch, seed=1)
    splits, datasets = load_data(config)
    model, loss_fn, optimizer = _setup(name, "lmf", splits.class_counts("train"), device, image)
    loader = make_loader(datasets["train"], config, DistContext(), device, train=True)
    rate = 0.0
    for epoch in (1, 2):
        loader.sampler.set_epoch(epoch)
        _sync(device)
        stats = train_one_epoch(model, loader, loss_fn, optimizer, device=device, epoch=epoch,
                                amp_dtype=torch.bfloat16 if device.type == "cuda" else None,
                                channels_last=device.type == "cuda")
        _sync(device)
        rate = stats["images"] / stats["seconds"]
    return rate


def child(args: argparse.Namespace) -> int:
    """One concurrent trial: train on the data path until the window closes; print images/s."""
    from lmfloss.config import TrainConfig
    from lmfloss.train.distributed import DistContext
    from lmfloss.train.engine import train_one_epoch
    from lmfloss.train.loaders import load_data, make_loader

    device = torch.device(args.device)
    config = TrainConfig(dataset="csv", csv=args.csv, image_size=args.image, workers=args.workers,
                         cache_dir=args.cache, device=device.type, batch_size=32, seed=1)
    splits, datasets = load_data(config)
    model, loss_fn, optimizer = _setup(args.model, "lmf", splits.class_counts("train"), device, args.image)
    loader = make_loader(datasets["train"], config, DistContext(), device, train=True)
    loader.sampler.set_epoch(0)
    train_one_epoch(model, loader, loss_fn, optimizer, device=device, epoch=1,  # warm-up epoch
                    amp_dtype=torch.bfloat16 if device.type == "cuda" else None, channels_last=device.type == "cuda")
    print("READY", flush=True)
    sys.stdin.readline()  # all children start the timed window together
    images, start, epoch = 0, time.perf_counter(), 1
    while time.perf_counter() - start < args.window:
        epoch += 1
        loader.sampler.set_epoch(epoch)
        stats = train_one_epoch(model, loader, loss_fn, optimizer, device=device, epoch=epoch,
                                amp_dtype=torch.bfloat16 if device.type == "cuda" else None,
                                channels_last=device.type == "cuda")
        images += stats["images"]
    _sync(device)
    print(f"IMAGES {images} {time.perf_counter() - start}", flush=True)
    return 0


def concurrent_rate(model: str, n: int, args: argparse.Namespace, csv_path: Path, cache: Path) -> float:
    """Total images/s of ``n`` concurrent trials on one GPU (each its own process)."""
    command = [sys.executable, __file__, "--child", "--model", model, "--csv", str(csv_path), "--cache", str(cache),
               "--device", args.device, "--image", str(args.image), "--window", str(args.window),
               "--workers", str(max(1, args.workers // n))]
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    for proc in procs:
        while (line := proc.stdout.readline()) and not line.startswith("READY"):
            pass
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    total = 0.0
    for proc in procs:
        out, _ = proc.communicate(timeout=args.window * 10 + 300)
        images, seconds = next(line for line in out.splitlines() if line.startswith("IMAGES")).split()[1:]
        total += int(images) / float(seconds)
    return total


def grid_hours(rate32: dict[str, float]) -> float:
    """GPU-hours of 4 datasets x 3 models x 5 losses x 100 epochs at these images/s."""
    seconds = 0.0
    for ips in rate32.values():
        per_epoch = sum(0.70 * n / ips + 0.15 * n / (EVAL_SPEEDUP * ips) for n in PAPER_DATASETS.values())
        seconds += N_LOSSES * N_EPOCHS * per_epoch
    return seconds / 3600


def compile_payoff(name: str, counts: list[int], device: torch.device, image: int, lines: list[str]) -> None:
    """Eager vs torch.compile at batch 32: steady step time, compile time, 100-epoch break-even."""
    x = torch.rand(32, 3, image, image, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(counts), (32,), device=device)
    row = [name]
    eager_ms = None
    for mode in (None, "default", "reduce-overhead"):
        model, loss_fn, optimizer = _setup(name, "lmf", counts, device, image)
        step_model = torch.compile(model, mode=mode) if mode else model
        began = time.perf_counter()

        def step(step_model=step_model, loss_fn=loss_fn, optimizer=optimizer):
            with _autocast(device):
                value = loss_fn(step_model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()

        for _ in range(3):
            step()
        _sync(device)
        first = time.perf_counter() - began
        start = time.perf_counter()
        for _ in range(100):
            step()
        _sync(device)
        ms = (time.perf_counter() - start) * 10
        if mode is None:
            eager_ms = ms
            row += [f"{ms:.1f}"]
        else:
            steps100 = N_EPOCHS * sum(0.70 * n for n in PAPER_DATASETS.values()) / 32 / len(PAPER_DATASETS)
            saved = (eager_ms - ms) * steps100 / 1000 - first
            row += [f"{ms:.1f}", f"{first:.0f}", f"{saved / 60:+.0f} min"]
        torch.cuda.empty_cache()
    lines.append("| " + " | ".join(row) + " |")
    print(lines[-1], flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the results as Markdown here")
    parser.add_argument("--workers", type=int, default=12, help="DataLoader workers of the data path")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--image", type=int, default=224)
    parser.add_argument("--blocks", type=int, default=10, help="interleaved timing blocks per loss")
    parser.add_argument("--block", type=int, default=20, help="steps per block")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of each concurrency measurement")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile's payoff")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the script itself (CPU is fine)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; run it on a GPU machine (or --smoke --device cpu)", file=sys.stderr)
        return 1
    models, batches, concurrency = MODELS, BATCHES, CONCURRENCY
    n_train, n_held = 1280, 64
    if args.smoke:
        models, batches, concurrency = ("resnet18",), (8,), (1, 2)
        args.image, args.blocks, args.block, args.window, n_train, n_held = 32, 2, 3, 2.0, 64, 16
        args.workers = min(args.workers, 2)
    torch.backends.cudnn.benchmark = True
    began = time.perf_counter()
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "CPU"
    lines = [f"# GPU check: {name}", "",
             f"torch {torch.__version__}, CUDA {torch.version.cuda}, python {platform.python_version()}; "
             f"{args.image} px, bf16 autocast, channels-last, Adam; data path with {args.workers} workers", ""]
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = make_images(Path(tmp), n_train, n_held)
        cache = Path(tmp) / "cache"
        counts = [n_train // 7] * 7
        lines += ["## 1-2. LMF/CE step time and data path / ceiling", "",
                  f"Step times: median [IQR] of {args.blocks} interleaved blocks of {args.block} steps per loss.", "",
                  "| model | batch | CE ms/step | LMF ms/step | LMF/CE | ceiling img/s (CE) | data path img/s | data/ceiling |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        print("\n".join(lines), flush=True)
        for model in models:
            for batch in batches:
                t = paired_step_times(model, batch, counts, device, args.image, args.blocks, args.block)
                ceiling = batch * 1000 / t["ce"][0]
                ours = data_path_rate(model, batch, csv_path, cache, args.workers, device, args.image)
                lines.append(f"| {model} | {batch} | {t['ce'][0]:.2f} [{t['ce'][1]:.2f}, {t['ce'][2]:.2f}] | "
                             f"{t['lmf'][0]:.2f} [{t['lmf'][1]:.2f}, {t['lmf'][2]:.2f}] | {t['lmf'][0] / t['ce'][0]:.3f} | "
                             f"{ceiling:.0f} | {ours:.0f} | {ours / ceiling:.2f} |")
                print(lines[-1], flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        lines += ["", "## 3. Concurrent trials on one GPU (batch 32, the data path)", "",
                  "| model | " + " | ".join(f"{n} trial(s) img/s" for n in concurrency) + " | best |",
                  "|---|" + "---:|" * (len(concurrency) + 1)]
        best_rate: dict[str, float] = {}
        one_rate: dict[str, float] = {}
        for model in models:
            rates = {n: concurrent_rate(model, n, args, csv_path, cache) for n in concurrency}
            best = max(rates, key=rates.get)
            best_rate[model], one_rate[model] = rates[best], rates[1]
            lines.append(f"| {model} | " + " | ".join(f"{rates[n]:.0f}" for n in concurrency) + f" | {best} |")
            print(lines[-1], flush=True)
        lines += ["", f"Paper grid (4 datasets x {len(models)} models x {N_LOSSES} losses x {N_EPOCHS} epochs, batch 32):",
                  f"- one trial at a time: **{grid_hours(one_rate):.1f} GPU-hours**",
                  f"- the best number of concurrent trials per model: **{grid_hours(best_rate):.1f} GPU-hours**", ""]
    if device.type == "cuda":
        test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "tests/test_train_hostsync.py", "-k", "cuda"], capture_output=True, text=True)
        summary = (test.stdout.strip().splitlines() or ["(no output)"])[-1]
        lines += ["## 4. No host synchronisation outside the checks", "",
                  f"`pytest tests/test_train_hostsync.py -k cuda` (set_sync_debug_mode('error'), 20 steps of "
                  f"train_one_epoch with LMF, CE, focal): {summary}", ""]
        if args.compile:
            lines += ["## 5. torch.compile at batch 32", "",
                      "| model | eager ms | default ms | default compile s | default saves (100 epochs) | "
                      "reduce-overhead ms | reduce-overhead compile s | reduce-overhead saves |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|"]
            for model in models:
                compile_payoff(model, [n_train // 7] * 7, device, args.image, lines)
    lines += ["", f"(check ran {time.perf_counter() - began:.0f} s; command: python benchmarks/gpu_check.py"
              f"{' --compile' if args.compile else ''})"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
