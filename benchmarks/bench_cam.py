"""How long ``lmfloss cam`` takes with faithfulness scores, for several runs at once.

Trains (once; later invocations reuse them) ``--runs`` small runs on ``synthetic`` that differ
only in the seed, then times :func:`lmfloss.cam.run.run_cam` on all of them with ROAD
faithfulness and prints a table: seconds, seconds per map, and a SHA-256 of
``cam_metrics.csv`` so that two versions of the code can be checked to give the same numbers.

    OMP_NUM_THREADS=1 python benchmarks/bench_cam.py --work /tmp/lmfloss-bench-cam
    # another version on the same runs, e.g. a worktree of an older commit:
    OMP_NUM_THREADS=1 PYTHONPATH=OLD/src python benchmarks/bench_cam.py --work /tmp/lmfloss-bench-cam
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import subprocess
from pathlib import Path
from time import perf_counter

import torch

import lmfloss
from lmfloss.cam.run import run_cam
from lmfloss.config import TrainConfig
from lmfloss.train import fit


def train_runs(work: Path, args: argparse.Namespace) -> list[Path]:
    base = TrainConfig(dataset="synthetic", model=args.model, weights="none", image_size=args.image_size,
                       epochs=1, batch_size=128, lr=1e-3, device="cpu", bootstrap=10, workers=0)
    runs = []
    for seed in range(1, args.runs + 1):
        run_dir = work / "runs" / f"{args.model}-{args.image_size}-s{seed}"
        fit(base.replace(seed=seed), run_dir, resume=True, quiet=True)
        runs.append(run_dir)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the runs and the cam output")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--n", type=int, default=32, help="test images per run")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--target", default="both", choices=["pred", "true", "both"])
    parser.add_argument("--faithfulness", default="road", choices=["road", "drop", "none"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = train_runs(args.work, args)
    out = args.work / f"cam-{args.faithfulness}"
    start = perf_counter()
    outputs = run_cam(runs, out, n=args.n, target=args.target, faithfulness=args.faithfulness,
                      overlays=False, figure_rows=0)
    seconds = perf_counter() - start
    maps = len(outputs.metrics)
    digest = hashlib.sha256(outputs.metrics_csv.read_bytes()).hexdigest()[:16]
    try:
        commit = subprocess.run(["git", "-C", str(Path(lmfloss.__file__).parent), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    print(f"lmfloss {commit} ({Path(lmfloss.__file__).parent}), torch {torch.__version__}, "
          f"{platform.machine()}, 1 thread")
    print("| runs | target | images | maps | faithfulness | seconds | s / map | cam_metrics.csv sha256 |")
    print("|---:|---|---:|---:|---|---:|---:|---|")
    print(f"| {len(runs)} | {args.target} | {args.n} | {maps} | {args.faithfulness} | {seconds:.1f} | "
          f"{seconds / maps:.3f} | {digest} |")


if __name__ == "__main__":
    main()
