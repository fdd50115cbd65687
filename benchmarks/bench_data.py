"""Images per second: decoding JPEGs every epoch vs. reading the memory-mapped uint8 cache.

Both paths go through a ``DataLoader`` (batch 32, ``num_workers=0``: one worker, the main
process) and yield the same ``float32 [3, 224, 224]`` items; the JPEG path decodes and
resizes every image on every access, as a plain torchvision ``ImageFolder`` pipeline does.
Real sample images (HAM10000 600x450, ODIR-5K 512x512 JPEGs from ../shared/data/samples)
are repeated to make the set larger.

    .venv/bin/python benchmarks/bench_data.py [--size 224] [--repeat 20] [--cache-dir DIR]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=20, help="copies of the sample set")
    parser.add_argument("--cache-dir", default=None, help="where to build the cache (default: a temp folder)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the parallel cache build")
    args = parser.parse_args()
    paths = sorted((SAMPLES / "ham10000" / "images").glob("*.jpg")) + sorted((SAMPLES / "odir5k" / "images").glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no sample JPEGs under {SAMPLES}")
    records = [Record(id=f"{k}-{p.stem}", label=0, path=str(p)) for k in range(args.repeat) for p in paths]
    torch.set_num_threads(1)

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
