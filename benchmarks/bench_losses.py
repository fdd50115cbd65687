"""Benchmark the losses of lmfloss.losses (not a test; about a minute on 2 CPU cores).

Prints Markdown tables:

1. forward+backward time of every loss relative to ``F.cross_entropy`` at ``[32, 8]`` (the
   paper's batch and ODIR's classes) and ``[4096, 1000]``, on the CPU and on CUDA when present;
2. a whole ResNet-18 training step (forward, LMF or CE, backward, Adam step) with LMF relative
   to CE — 64 px on the CPU so it runs in seconds (224 px on CUDA);
3. the subnormal effect of ``scale=30`` on the CPU: ``s * (z - m)`` pushes many ``exp``
   arguments into float32's subnormal range ([-103.97, -87.34]), which x86 handles slowly;
   measured with ``torch.set_flush_denormal`` off (the default) and on.

Usage::

    python benchmarks/bench_losses.py [--out benchmarks/results/losses-cpu.md] [--device cpu]

Timings are the best of interleaved blocks (each loss alternates with its CE baseline), so
drift from other processes on the machine hits both sides of a ratio alike. On a busy machine
pass ``--threads 1``: OpenMP threads that cannot all be scheduled spin at barriers and make
every timing (CE included) many times slower and noisier.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lmfloss.losses import LOSSES, build_loss

SUBNORMAL_LO, SUBNORMAL_HI = -103.97, -87.34  # exp(x) is a float32 subnormal for x in here


def imbalanced_counts(k: int, ratio: float = 100.0) -> list[int]:
    """Geometric long tail: the largest class has ``ratio`` times the smallest."""
    return [max(1, round(1000 * ratio ** (-j / max(k - 1, 1)))) for j in range(k)]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _block_time(fn: Callable[[], None], iters: int, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / iters


def time_interleaved(
    fns: dict[str, Callable[[], None]], device: str, rounds: int = 7, block_s: float = 0.02
) -> dict[str, float]:
    """Best seconds per call of each function over interleaved rounds of timed blocks."""
    return {name: min(s) for name, s in sample_interleaved(fns, device, rounds, block_s).items()}


def sample_interleaved(
    fns: dict[str, Callable[[], None]], device: str, rounds: int = 7, block_s: float = 0.02
) -> dict[str, list[float]]:
    """Seconds per call of each function, one sample per round; rounds interleave the functions."""
    iters = {}
    for name, fn in fns.items():
        fn()  # warm up (allocator, kernels)
        one = _block_time(fn, 1, device)
        iters[name] = max(1, min(200, int(block_s / max(one, 1e-7))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(_block_time(fn, iters[name], device))
    return samples


def _fwd_bwd(loss_fn: Callable, logits: torch.Tensor, target: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        logits.grad = None
        loss_fn(logits, target).backward()

    return step


def bench_losses(device: str, shapes: list[tuple[int, int]], rounds: int) -> list[str]:
    rows = [
        f"### Forward+backward vs `F.cross_entropy` ({device})",
        "",
        "| shape [N, K] | " + " | ".join(LOSSES) + " | CE time |",
        "|---|" + "---:|" * (len(LOSSES) + 1),
    ]
    for n, k in shapes:
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(n, k, generator=g).to(device).requires_grad_()
        target = torch.randint(0, k, (n,), generator=g).to(device)
        counts = imbalanced_counts(k)
        fns = {"F.cross_entropy": _fwd_bwd(F.cross_entropy, logits, target)}
        for name in LOSSES:
            fns[name] = _fwd_bwd(build_loss(name, counts).to(device), logits, target)
        t = time_interleaved(fns, device, rounds=rounds)
        ce = t["F.cross_entropy"]
        ratios = " | ".join(f"{t[name] / ce:.2f}" for name in LOSSES)
        rows.append(f"| [{n}, {k}] | {ratios} | {ce * 1e3:.3f} ms |")
    return rows + [""]


def bench_resnet_step(
    device: str, image_size: int, batch: int, steps_per_block: int, rounds: int
) -> list[str]:
    from torchvision.models import resnet18

    k = 8
    counts = imbalanced_counts(k)
    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=k).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, image_size, image_size, device=device)
    y = torch.randint(0, k, (batch,), device=device)
    losses = {"ce": build_loss("ce", counts).to(device), "lmf": build_loss("lmf", counts).to(device)}

    def step_for(loss_fn: Callable) -> Callable[[], None]:
        def step() -> None:
            for _ in range(steps_per_block):
                opt.zero_grad(set_to_none=True)
                loss_fn(model(x), y).backward()
                opt.step()

        return step

    samples = sample_interleaved({n: step_for(f) for n, f in losses.items()}, device, rounds, 0.0)
    t = {name: min(s) for name, s in samples.items()}
    # Median of the per-round ratios: each pair of blocks ran back to back, so slow drift of
    # the machine's load cancels.
    paired = statistics.median(a / b for a, b in zip(samples["lmf"], samples["ce"], strict=True))
    # The loss alone on the step's logits shape: what LMF can add to a step at most.
    logits = torch.randn(batch, k, device=device, requires_grad=True)
    alone = time_interleaved({n: _fwd_bwd(f, logits, y) for n, f in losses.items()}, device, rounds=rounds)
    ratio = t["lmf"] / t["ce"]
    extra = (alone["lmf"] - alone["ce"]) * steps_per_block / t["ce"]
    per_step = 1e3 / steps_per_block
    return [
        f"### ResNet-18 training step (forward, loss, backward, Adam), batch {batch}, "
        f"{image_size} px, K={k} ({device})",
        "",
        "| loss | best ms / step | vs CE (best) | vs CE (median of paired rounds) | loss fwd+bwd alone (ms) |",
        "|---|---:|---:|---:|---:|",
        f"| ce | {t['ce'] * per_step:.1f} | 1.00 | 1.00 | {alone['ce'] * 1e3:.3f} |",
        f"| lmf | {t['lmf'] * per_step:.1f} | {ratio:.3f} | {paired:.3f} | {alone['lmf'] * 1e3:.3f} |",
        "",
        f"LMF's extra loss time is {extra:.2%} of a CE step (expected step ratio {1 + extra:.4f}); "
        f"the measured ratios also carry the step-to-step noise of the machine ({rounds} rounds).",
        "",
    ]


def bench_subnormals(shape: tuple[int, int], rounds: int) -> list[str]:
    n, k = shape
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(n, k, generator=g).requires_grad_()
    target = torch.randint(0, k, (n,), generator=g)
    counts = imbalanced_counts(k)
    with torch.no_grad():
        scaled = 30.0 * logits
        shifted = scaled - scaled.max(dim=1, keepdim=True).values
        frac_s30 = ((shifted > SUBNORMAL_LO) & (shifted < SUBNORMAL_HI)).float().mean().item()
        shifted1 = logits - logits.max(dim=1, keepdim=True).values
        frac_s1 = ((shifted1 > SUBNORMAL_LO) & (shifted1 < SUBNORMAL_HI)).float().mean().item()
    names = ["ce", "ldam", "lmf"]
    variants = {
        "F.cross_entropy": F.cross_entropy,
        "F.cross_entropy(30 z)": lambda z, t: F.cross_entropy(30.0 * z, t),
        **{name: build_loss(name, counts) for name in names},
        "ldam scale=1": build_loss("ldam", counts, scale=1.0),
    }
    rows = [
        f"### Subnormals: `scale=30` on the CPU, [{n}, {k}], randn logits",
        "",
        f"Share of `exp` arguments in the float32 subnormal range: {frac_s30:.1%} at scale 30, "
        f"{frac_s1:.1%} at scale 1.",
        "",
        "| loss | flush_denormal off (ms) | on (ms) | off / on |",
        "|---|---:|---:|---:|",
    ]
    timings = {}
    for flush in (False, True):
        if not torch.set_flush_denormal(flush) and flush:
            rows.append("(torch.set_flush_denormal is not supported on this CPU)")
            return rows + [""]
        fns = {name: _fwd_bwd(fn, logits, target) for name, fn in variants.items()}
        timings[flush] = time_interleaved(fns, "cpu", rounds=rounds)
    torch.set_flush_denormal(False)
    for name in variants:
        off, on = timings[False][name], timings[True][name]
        rows.append(f"| {name} | {off * 1e3:.2f} | {on * 1e3:.2f} | {off / on:.2f} |")
    return rows + [""]


def machine_info(device: str) -> list[str]:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    lines = [
        f"- CPU: {model}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
        f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.system()}",
    ]
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        lines.append(f"- load average at start (1, 5, 15 min): {load}")
    if device.startswith("cuda"):
        lines.append(f"- GPU: {torch.cuda.get_device_name(device)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", action="append", help="cpu and/or cuda (default: cpu, +cuda if present)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--out", help="also write the Markdown to this file")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    started = time.perf_counter()
    command = "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    out = ["# lmfloss.losses benchmark", "", f"Command: `{command}`", ""]
    out += machine_info(devices[-1]) + [""]
    for device in devices:
        out += bench_losses(device, [(32, 8), (4096, 1000)], args.rounds)
        if device == "cpu":
            out += bench_resnet_step("cpu", image_size=64, batch=32, steps_per_block=1, rounds=15)
            out += bench_subnormals((4096, 1000), args.rounds)
        else:
            out += bench_resnet_step(device, image_size=224, batch=32, steps_per_block=5, rounds=15)
    out.append(f"Total benchmark time: {time.perf_counter() - started:.0f} s")
    text = "\n".join(out) + "\n"
    print(text, end="")
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
