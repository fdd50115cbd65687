"""Benchmark the multi-label losses (not a test; about a minute on 2 CPU cores).

Prints Markdown tables:

1. forward+backward time of every multi-label loss relative to ``bce`` (BCE with
   ``pos_weight``) at ``[32, 8]`` (ODIR-5K's labels, the paper's batch) and ``[128, 14]``
   (ChestMNIST), on the CPU and on CUDA when present;
2. a whole ResNet-18 training step (forward, loss, backward, Adam step) with multi-label LMF
   relative to BCE -- 64 px on the CPU (224 px on CUDA). The issue's bar: LMF's step costs at
   most 1.05x a BCE step.

Usage::

    python benchmarks/bench_multilabel.py --threads 1 [--out FILE.md] [--device cpu]

Timings reuse ``bench_losses``'s interleaved blocks (each loss alternates with BCE, so drift
from other processes hits both sides of a ratio alike).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_losses import machine_info, sample_interleaved, time_interleaved  # noqa: E402

from lmfloss.losses import MULTILABEL_LOSSES, build_loss  # noqa: E402


def long_tail_counts(num_labels: int, n: int = 10_000) -> list[list[int]]:
    """``(negatives, positives)`` per label, prevalence falling from 50 % to 0.2 % (ChestMNIST's hernia)."""
    prevalence = [0.5 * (0.004 ** (j / max(num_labels - 1, 1))) for j in range(num_labels)]
    return [[n - max(1, round(n * p)), max(1, round(n * p))] for p in prevalence]


def _batch(n: int, num_labels: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = (2 * torch.randn(n, num_labels, generator=g)).to(device).requires_grad_()
    target = (torch.rand(n, num_labels, generator=g) < 0.2).float().to(device)
    return logits, target


def bench_losses(device: str, shapes: list[tuple[int, int]], rounds: int) -> list[str]:
    names = list(MULTILABEL_LOSSES)
    lines = [f"### Forward+backward vs `bce` ({device})", "",
             "| shape [N, L] | " + " | ".join(names) + " | BCE time |",
             "|---|" + "---:|" * (len(names) + 1)]
    for n, num_labels in shapes:
        logits, target = _batch(n, num_labels, device)
        counts = long_tail_counts(num_labels)
        fns: dict[str, Callable[[], None]] = {}
        for name in names:
            loss = build_loss(name, counts, task="multilabel", validate_args=False).to(device)

            def step(loss: torch.nn.Module = loss, logits: torch.Tensor = logits,
                     target: torch.Tensor = target) -> None:
                logits.grad = None
                loss(logits, target).backward()

            fns[name] = step
        t = time_interleaved(fns, device, rounds)
        cells = " | ".join(f"{t[name] / t['bce']:.2f}" for name in names)
        lines.append(f"| [{n}, {num_labels}] | {cells} | {t['bce'] * 1e3:.3f} ms |")
    return lines + [""]


def bench_resnet_step(device: str, image_size: int, batch: int, num_labels: int, rounds: int) -> list[str]:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=num_labels).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.rand(batch, 3, image_size, image_size, device=device)
    target = (torch.rand(batch, num_labels, device=device) < 0.2).float()
    counts = long_tail_counts(num_labels)
    losses = {name: build_loss(name, counts, task="multilabel", validate_args=False).to(device)
              for name in ("bce", "lmf")}

    def step_for(loss_fn: Callable) -> Callable[[], None]:
        def step() -> None:
            opt.zero_grad(set_to_none=True)
            loss_fn(model(images), target).backward()
            opt.step()
        return step

    samples = sample_interleaved({n: step_for(f) for n, f in losses.items()}, device, rounds, 0.0)
    best = {n: min(s) for n, s in samples.items()}
    paired = statistics.median(a / b for a, b in zip(samples["lmf"], samples["bce"]))
    logits = torch.randn(batch, num_labels, device=device, requires_grad=True)

    def alone(loss_fn: Callable) -> Callable[[], None]:
        def step() -> None:
            logits.grad = None
            loss_fn(logits, target).backward()
        return step

    loss_only = time_interleaved({n: alone(f) for n, f in losses.items()}, device, rounds)
    extra = (loss_only["lmf"] - loss_only["bce"]) / best["bce"]
    return [
        f"### ResNet-18 training step (forward, loss, backward, Adam), batch {batch}, {image_size} px, "
        f"L={num_labels} ({device})", "",
        "| loss | best ms / step | vs BCE (best) | vs BCE (median of paired rounds) | loss fwd+bwd alone (ms) |",
        "|---|---:|---:|---:|---:|",
        f"| bce | {best['bce'] * 1e3:.1f} | 1.00 | 1.00 | {loss_only['bce'] * 1e3:.3f} |",
        f"| lmf | {best['lmf'] * 1e3:.1f} | {best['lmf'] / best['bce']:.3f} | {paired:.3f} | "
        f"{loss_only['lmf'] * 1e3:.3f} |", "",
        f"LMF's extra loss time is {extra:.3%} of a BCE step (expected step ratio {1 + extra:.4f}; the bar: "
        f"<= 1.05); the measured ratios also carry the step-to-step noise of the machine ({rounds} rounds).", "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", default=None, help="also write the Markdown here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.perf_counter()
    out = ["# Multi-label losses benchmark", "",
           f"Command: `python benchmarks/bench_multilabel.py{' --threads ' + str(args.threads) if args.threads else ''}`",
           "", *machine_info(args.device), ""]
    out += bench_losses(args.device, [(32, 8), (128, 14)], args.rounds)
    size = 224 if args.device.startswith("cuda") else 64
    out += bench_resnet_step(args.device, size, 32, 8, args.rounds)
    out.append(f"Total benchmark time: {time.perf_counter() - began:.0f} s")
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
