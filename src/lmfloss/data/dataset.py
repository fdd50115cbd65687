"""``make_dataset``: a torch ``Dataset`` over one split, images from memory or the cache."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lmfloss.data.cache import default_cache_dir, open_cache
from lmfloss.data.records import Record
from lmfloss.data.splits import Splits
from lmfloss.data.transforms import build_transform

logger = logging.getLogger(__name__)


def resize_array(images: np.ndarray, size: int, chunk: int = 512) -> np.ndarray:
    """Resize ``uint8 [N, H, W, 3]`` to ``[N, size, size, 3]`` (bilinear, antialiased).

    Used for array datasets (MedMNIST, synthetic), which are resized in memory once.
    """
    if images.shape[1] == size and images.shape[2] == size:
        return np.ascontiguousarray(images)
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for start in range(0, len(images), chunk):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + chunk]))
        batch = batch.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
        resized = torch.nn.functional.interpolate(
            batch, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        out[start : start + chunk] = resized.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


class ImageDataset(Dataset):
    """Items ``(image float32 [3, S, S], label int64 scalar tensor, index)``.

    Pixels are held channels-first, ``uint8 [N, 3, S, S]`` (in memory or memory-mapped),
    so one item is one contiguous block: no per-item transpose, and the DataLoader's
    ``torch.stack`` gets contiguous tensors (about 4x faster than channels-last views).

    Attributes:
        records: the :class:`Record` of each item, in item order.
        class_names: the dataset's class names.
        labels: ``int64 [N]`` class index of each item.
    """

    def __init__(
        self,
        images: np.ndarray | None,
        records: Sequence[Record],
        class_names: Sequence[str],
        transform: Callable[[torch.Tensor], torch.Tensor],
        images_path: Path | None = None,
    ) -> None:
        self.records = list(records)
        self.class_names = list(class_names)
        self.labels = np.array([r.label for r in self.records], dtype=np.int64)
        self.transform = transform
        self.images_path = images_path
        self._images = images
        self.image_size = (images.shape[-1] if images is not None else self._open().shape[-1]) if self.records else 0

    def _open(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self.images_path, mmap_mode="r")
        return self._images

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers re-open the memory map instead of pickling its pages.
        state = self.__dict__.copy()
        if self.images_path is not None:
            state["_images"] = None
        return state

    def __len__(self) -> int:
        return len(self.records)

    def finish_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Scale/normalise a batch of items made with ``defer_float=True`` (identity otherwise)."""
        return self.transform.finish(images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        if not 0 <= index < len(self.records):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.records)} items")
        pixels = torch.from_numpy(np.array(self._open()[index]))
        return self.transform(pixels), torch.tensor(self.labels[index]), index

    def __repr__(self) -> str:
        return f"ImageDataset({len(self)} items, {self.image_size} px, classes={self.class_names})"


def make_dataset(
    splits: Splits,
    split: str,
    image_size: int,
    normalize: str = "none",
    augment: str = "none",
    cache_dir: str | Path | None = None,
    progress: bool = False,
    cache_workers: int = 1,
    defer_float: bool = False,
) -> ImageDataset:
    """A torch Dataset over ``split`` at ``image_size x image_size``.

    Array datasets (MedMNIST, synthetic) are resized in memory. File datasets go through
    the on-disk uint8 cache (:mod:`lmfloss.data.cache`), built on first use. Undecodable
    images fail with a :class:`~lmfloss.errors.DataError` naming the file unless the splits
    were loaded with ``skip_bad_images=True``; then they are left out of the dataset and
    added to ``splits.skipped``.

    Args:
        splits: from :func:`lmfloss.data.load_splits`.
        split: ``"train" | "val" | "test"``.
        image_size: output side ``S`` (the paper: 224).
        normalize: ``"none"`` (the paper) or ``"imagenet"``.
        augment: ``"none"`` (the paper), ``"flip"`` or ``"randaugment"``.
        cache_dir: cache folder (default: :func:`lmfloss.data.cache.default_cache_dir`).
        progress: show a progress bar while building the cache.
        cache_workers: processes decoding images while the cache is built.
        defer_float: yield ``uint8`` images and leave the float conversion (and
            normalisation) to ``dataset.finish_batch(batch)`` — done on the GPU by the
            training engine, so a batch crosses the DataLoader and PCIe at a quarter the size.

    Returns:
        :class:`ImageDataset` yielding ``(float32 [3, S, S], int64 label, index)``
        (``uint8`` images with ``defer_float=True``).
    """
    if not isinstance(image_size, int) or isinstance(image_size, bool) or not 8 <= image_size <= 4096:
        raise ValueError(f"image_size must be an integer between 8 and 4096, got {image_size!r}")
    transform = build_transform(normalize, augment, defer_float=defer_float)
    records = splits.records(split)
    if splits.index.images is not None:
        rows = [r.row for r in records]
        images = np.ascontiguousarray(resize_array(splits.index.images[rows], image_size).transpose(0, 3, 1, 2))
        return ImageDataset(images, records, splits.class_names, transform)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(splits.root)
    images_path, skipped = open_cache(
        records, splits.name, split, image_size, folder,
        skip_bad_images=splits.skip_bad_images, progress=progress, workers=cache_workers,
    )
    dataset = ImageDataset(None, records, splits.class_names, transform, images_path=images_path)
    if skipped:
        bad = set(skipped)
        keep = [i for i, r in enumerate(records) if r.id not in bad]
        dataset = _Subset(dataset, keep)
        splits.skipped.extend(r.path or r.id for r in records if r.id in bad and (r.path or r.id) not in splits.skipped)
    return dataset


class _Subset(ImageDataset):
    """An :class:`ImageDataset` without the rows of skipped images (indices renumbered)."""

    def __init__(self, base: ImageDataset, keep: list[int]) -> None:
        self.__dict__.update(base.__dict__)
        self.records = [base.records[i] for i in keep]
        self.labels = base.labels[keep]
        self._rows = np.asarray(keep, dtype=np.int64)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        if not 0 <= index < len(self.records):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.records)} items")
        pixels = torch.from_numpy(np.array(self._open()[self._rows[index]]))
        return self.transform(pixels), torch.tensor(self.labels[index]), index
