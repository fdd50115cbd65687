"""Images per second: decoding JPEGs every epoch vs. reading the memory-mapped uint8 cache.

Both paths go through a ``DataLoader`` (batch 32, ``num_workers=0``: one worker, the main
process) and yield the same ``float32 [3, 224, 224]`` items; the JPEG path decodes and
resizes every image on every access, as a plain torchvision ``ImageFolder`` pipeline does.
Real sample images (HAM10000 600x450, ODIR-5K 512x512 JPEGs from ../shared/data/samples)
are repeated to make the set larger.

    .venv/bin/python benchmarks/bench_data.py [--size 224] [--repeat 20] [--cache-dir DIR]
    .venv/bin/python benchmarks/bench_data.py --loader [--repeat 20]

``--loader`` measures the training DataLoader alone (what the GPU waits for) at batch 32
and 128, 0 and 2 workers, uint8 batches (scaled later on the device): the per-item path
(one ``dataset[i]`` per image and the default collate, as lmfloss did before), the batched
path of ``lmfloss.train.loaders.make_loader`` (one ``gather`` per batch), and a raw read of
the same rows from the memory map (the ceiling of any loader); medians of 7 passes, each path in a process of its own.

Prints a Markdown table. Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from lmfloss.data.cache import build_cache, cache_paths
from lmfloss.data.dataset import ImageDataset
from lmfloss.data.images import read_image
from lmfloss.data.records import Record
from lmfloss.data.transforms import build_transform

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "samples"


class JpegDataset(Dataset):
    """Decode + resize on every access (the path the cache replaces)."""

    def __init__(self, records: list[Record], size: int) -> None:
        self.records, self.size, self.transform = records, size, build_transform()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        pixels = torch.from_numpy(read_image(self.records[i].path, self.size)).permute(2, 0, 1)
        return self.transform(pixels), torch.tensor(self.records[i].label), i


def _throughput(dataset: Dataset, passes: int = 1) -> float:
    loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=0)
    count, start = 0, time.perf_counter()
    for _ in range(passes):
        for images, _, _ in loader:
            count += len(images)
    return count / (time.perf_counter() - start)


def _loader_rate(loader, passes: int) -> float:
    count, start = 0, time.perf_counter()
    for epoch in range(passes):
        loader.sampler.set_epoch(epoch)
        for images, _, _ in loader:
            count += len(images)
    return count / (time.perf_counter() - start)


def _raw_rate(array, order: list[int], batch: int, passes: int) -> float:
    """Read the same rows (sorted per batch) straight from the memory map: the ceiling."""
    import numpy as np

    count, start = 0, time.perf_counter()
    for _ in range(passes):
        for begin in range(0, len(order), batch):
            rows = np.sort(np.asarray(order[begin : begin + batch]))
            count += len(torch.from_numpy(np.ascontiguousarray(array[rows])))
    return count / (time.perf_counter() - start)


def loader_child(images_path: Path, path: str, batch: int, workers: int, passes: int) -> float:
    """One path's median images/s, measured in a process of its own.

    A fresh process per path matters: a per-item loader leaves glibc's dynamic mmap threshold
    low, after which every [128, 3, 224, 224] batch is a fresh mmap and 4,700 page faults --
    measured in one process, the per-item path would slow the batched one down 4x.
    """
    import numpy as np
    from torch.utils.data import DataLoader

    from lmfloss.config import TrainConfig
    from lmfloss.train.distributed import DistContext
    from lmfloss.train.loaders import make_loader

    array = np.load(images_path, mmap_mode="r")
    records = [Record(id=str(i), label=0) for i in range(len(array))]
    dataset = ImageDataset(None, records, ["x"], build_transform(defer_float=True), images_path=images_path)
    config = TrainConfig(dataset="csv", batch_size=batch, workers=workers, seed=1, device="cpu")
    batched = make_loader(dataset, config, DistContext(), torch.device("cpu"), train=True)
    if path == "raw":
        order = list(batched.sampler)
        return float(np.median([_raw_rate(array, order, batch, 1) for _ in range(passes)]))
    loader = batched if path == "batched" else DataLoader(
        dataset, batch_size=batch, sampler=batched.sampler, num_workers=workers, persistent_workers=workers > 0)
    _loader_rate(loader, 1)  # warm the page cache and the workers
    return float(np.median([_loader_rate(loader, 1) for _ in range(passes)]))


def loader_table(records: list[Record], size: int, cache_dir: Path, passes: int = 7) -> list[str]:
    """The training loader's images/s (batch 32/128, workers 0/2): the per-item path (one
    ``dataset[i]`` per image, default collate: lmfloss before the batched path) and the
    batched path of ``make_loader`` (``ImageDataset.gather``), against a raw memmap read;
    each measured in a process of its own (:func:`loader_child`)."""
    import subprocess
    import sys

    images_path, skipped_path = cache_paths(cache_dir, "bench", "train", size, "loader")
    build_cache(records, size, images_path, skipped_path, workers=2)
    lines = ["| batch | workers | per-item img/s | batched img/s | raw memmap img/s | batched / per-item | batched / raw |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for batch in (32, 128):
        for workers in (0, 2):
            rates = {}
            for path in ("item", "batched", "raw"):
                out = subprocess.run([sys.executable, __file__, "--loader-child", str(images_path), path, str(batch),
                                      str(workers), str(passes)], capture_output=True, text=True, check=True)
                rates[path] = float(out.stdout.strip().splitlines()[-1])
            item, ours, raw = rates["item"], rates["batched"], rates["raw"]
            lines.append(f"| {batch} | {workers} | {item:,.0f} | {ours:,.0f} | {raw:,.0f} | {ours / item:.2f} | "
                         f"{ours / raw:.2f} |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=20, help="copies of the sample set")
    parser.add_argument("--cache-dir", default=None, help="where to build the cache (default: a temp folder)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the parallel cache build")
    parser.add_argument("--loader", action="store_true", help="measure the training DataLoader alone")
    parser.add_argument("--loader-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loader_child:
        torch.set_num_threads(1)
        images_path, path, batch, workers, passes = args.loader_child
        print(loader_child(Path(images_path), path, int(batch), int(workers), int(passes)))
        return
    paths = sorted((SAMPLES / "ham10000" / "images").glob("*.jpg")) + sorted((SAMPLES / "odir5k" / "images").glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no sample JPEGs under {SAMPLES}")
    records = [Record(id=f"{k}-{p.stem}", label=0, path=str(p)) for k in range(args.repeat) for p in paths]
    torch.set_num_threads(1)
    if args.loader:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"{len(records)} images at {args.size} px, uint8 batches, torch threads 1\n")
            loader_table(records, args.size, Path(args.cache_dir or tmp))
        return

    jpeg_rate = _throughput(JpegDataset(records, args.size))
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(args.cache_dir or tmp)
        images_path, skipped_path = cache_paths(cache_dir, "bench", "train", args.size, "0")
        start = time.perf_counter()
        build_cache(records, args.size, images_path, skipped_path)
        build_rate = len(records) / (time.perf_counter() - start)
        parallel_path, _ = cache_paths(cache_dir, "bench", "train", args.size, "1")
        start = time.perf_counter()
        build_cache(records, args.size, parallel_path, skipped_path, workers=args.workers)
        parallel_rate = len(records) / (time.perf_counter() - start)
        cached = ImageDataset(None, records, ["x"], build_transform(), images_path=images_path)
        _throughput(cached)  # first pass warms the page cache, as every epoch after the first
        cache_rate = _throughput(cached, passes=3)

    print(f"{len(records)} images ({len(paths)} real JPEGs x {args.repeat}) at {args.size} px, "
          "DataLoader batch 32, num_workers=0, torch threads 1")
    print()
    print("| path | images/s | speed-up |")
    print("|---|---:|---:|")
    print(f"| JPEG decode + resize every epoch | {jpeg_rate:,.0f} | 1.0x |")
    print(f"| building the cache (once, 1 process) | {build_rate:,.0f} | {build_rate / jpeg_rate:.1f}x |")
    print(f"| building the cache (once, {args.workers} processes) | {parallel_rate:,.0f} | {parallel_rate / jpeg_rate:.1f}x |")
    print(f"| memory-mapped uint8 cache | {cache_rate:,.0f} | {cache_rate / jpeg_rate:.1f}x |")


if __name__ == "__main__":
    main()
