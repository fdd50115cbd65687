"""``make_dataset``: a torch ``Dataset`` over one split, images from memory or the cache."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, get_worker_info

from lmfloss.data.cache import ImageNotes, default_cache_dir, open_cache, warn_intensity_notes
from lmfloss.data.images import read_image
from lmfloss.data.records import Record
from lmfloss.data.splits import Splits
from lmfloss.data.targets import targets_of
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


def prepare_image(
    image: str | Path | np.ndarray, image_size: int, *, resize: str = "pil", intensity: str = "dtype"
) -> np.ndarray:
    """One image file or array -> ``uint8 [S, S, 3]`` exactly as a run's training data was made.

    ``resize="pil"``: PIL's antialiased bilinear resize of the decoded file (what the image
    cache does for file datasets); ``"torch"``: :func:`resize_array` (what array datasets --
    MedMNIST, synthetic -- get). An array input is taken as 8-bit pixels (``[H, W]`` or
    ``[H, W, 3]``); a file goes through the ``intensity`` rule first.

    Raises:
        ValueError: an array of another shape or type; FileNotFoundError/DataError for files.
    """
    if isinstance(image, (str, Path)):
        array = read_image(image, intensity=intensity)
    else:
        array = np.asarray(image)
        if array.dtype != np.uint8:
            raise ValueError(f"expected an image array of uint8 pixels, got dtype {array.dtype}")
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"expected an image array [H, W, 3] uint8, got shape {list(array.shape)}")
    if array.shape[:2] == (image_size, image_size):
        return np.array(array, dtype=np.uint8)
    if resize == "torch":
        return resize_array(array[None], image_size)[0]
    if resize != "pil":
        raise ValueError(f"resize must be 'pil' or 'torch', got {resize!r}")
    return np.asarray(Image.fromarray(np.ascontiguousarray(array)).resize((image_size, image_size),
                                                                        Image.Resampling.BILINEAR))


class ImageDataset(Dataset):
    """Items ``(image float32 [3, S, S], label int64 scalar tensor, index)``.

    Pixels are held channels-first, ``uint8 [N, 3, S, S]`` (in memory or memory-mapped),
    so one item is one contiguous block: no per-item transpose, and the DataLoader's
    ``torch.stack`` gets contiguous tensors (about 4x faster than channels-last views).

    Args:
        images: the pixels, or ``None`` to memory-map ``images_path`` on first use.
        records: the :class:`Record` of each item, in item order.
        class_names: the dataset's class names.
        transform: per-item transform (:class:`lmfloss.data.transforms.ImageTransform`).
        images_path: the ``.npy`` cache file (when ``images`` is None).
        rows: the row of each item in the pixel array (default: item ``i`` is row ``i``);
            a cache built with images that turned out undecodable keeps their rows, and the
            dataset simply does not use them.
        skipped: ids of records left out as undecodable (``skip_bad_images``).
        intensity_notes: ``(image path, note)`` for the images the intensity rule left
            nearly constant (see :func:`lmfloss.data.cache.warn_intensity_notes`).
        task: the task's name (the splits'; its targets, :mod:`lmfloss.data.targets`, make
            ``labels``: multi-label items carry an ``int64 [L]`` target of 1, 0 and -1 (unknown) instead of a class index).

    Attributes:
        records, class_names, skipped, intensity_notes, task: as given.
        labels: ``int64 [N]`` class index of each item; multi-label: ``int64 [N, L]``, 1 positive, 0 negative, -1 unknown.
    """

    def __init__(
        self,
        images: np.ndarray | None,
        records: Sequence[Record],
        class_names: Sequence[str],
        transform: Callable[[torch.Tensor], torch.Tensor],
        images_path: Path | None = None,
        rows: Sequence[int] | None = None,
        skipped: Sequence[str] = (),
        intensity_notes: ImageNotes | None = None,
        task: str = "multiclass",
    ) -> None:
        self.records = list(records)
        self.intensity_notes: ImageNotes = list(intensity_notes or [])
        self.class_names = list(class_names)
        self.task = task
        self.labels = targets_of(task).array(self.records, len(self.class_names))
        self.transform = transform
        self.images_path = images_path
        self.skipped = list(skipped)
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        if self._rows is not None and len(self._rows) != len(self.records):
            raise ValueError(f"{len(self._rows)} rows for {len(self.records)} records")
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
        row = index if self._rows is None else int(self._rows[index])
        pixels = torch.from_numpy(np.array(self._open()[row]))
        return self.transform(pixels), torch.tensor(self.labels[index]), index

    def gather(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A whole batch in one read: ``(images [B, 3, S, S], labels int64 [B], indices int64 [B])``
        in the order of ``indices``.

        The rows are read from the (memory-mapped) array in file order, each copied once into
        its place in the batch. Images are as ``self[i]`` gives them: uint8
        and unaugmented with ``defer_float`` (the engine augments and scales them on the
        device), else augmented and scaled per item.
        """
        index = np.asarray(indices, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self.records)):
            raise IndexError(f"indices outside [0, {len(self.records)}) for a dataset of {len(self.records)} items")
        rows = index if self._rows is None else self._rows[index]
        source = self._open()
        shape = (len(rows), *source.shape[1:])
        # In a DataLoader worker the batch goes to the main process through shared memory:
        # fill it there directly (as the default collate does) instead of copying it over.
        out = torch.empty(shape, dtype=torch.uint8)
        if get_worker_info() is not None:
            out.share_memory_()
        block = out.numpy()
        # Row by row in file order (one contiguous block each; sequential reads when the cache
        # is not in memory), each into its place in the batch -- numpy's fancy-index gather and
        # scatter of [B, 3, S, S] blocks is 3-4x slower than this loop.
        for position in np.argsort(rows, kind="stable"):
            block[position] = source[rows[position]]
        pixels = out
        if not self.transform.defer_float:
            pixels = torch.stack([self.transform(p) for p in pixels]) if len(pixels) else pixels.float()
        return pixels, torch.from_numpy(self.labels[index]), torch.from_numpy(index)

    def __repr__(self) -> str:
        return f"ImageDataset({len(self)} items, {self.image_size} px, classes={self.class_names})"


class BatchedDataset(Dataset):
    """An :class:`ImageDataset` read a batch at a time by a ``DataLoader``.

    The DataLoader calls ``__getitems__`` with a batch's indices (from its batch sampler)
    and this returns the batch already collated (:meth:`ImageDataset.gather`), so the
    loader needs ``collate_fn=`` :func:`collated` -- :func:`lmfloss.train.loaders.make_loader`
    builds it so. ``finish_batch``, ``records`` and ``labels`` are the wrapped dataset's.
    """

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]

    def __getitems__(self, indices: Sequence[int]):
        return self.dataset.gather(indices)

    def finish_batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.dataset.finish_batch(images)

    @property
    def records(self) -> list[Record]:
        return self.dataset.records

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels


def collated(batch):
    """The ``collate_fn`` of a :class:`BatchedDataset`: the batch is collated already."""
    return batch


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
    intensity: str = "dtype",
    should_stop: Callable[[], bool] | None = None,
    warn_notes: bool = True,
) -> ImageDataset:
    """A torch Dataset over ``split`` at ``image_size x image_size``.

    Array datasets (MedMNIST, synthetic) are resized in memory. File datasets go through
    the on-disk uint8 cache (:mod:`lmfloss.data.cache`), built on first use. Undecodable
    images fail with a :class:`~lmfloss.errors.DataError` naming the file unless the splits
    were loaded with ``skip_bad_images=True``; then they are left out of the dataset and
    listed in ``dataset.skipped`` (``splits`` is never changed).

    Args:
        splits: from :func:`lmfloss.data.load_splits`.
        split: ``"train" | "val" | "test"``.
        image_size: output side ``S`` (the paper: 224).
        normalize: ``"none"`` (the paper), ``"imagenet"`` or ``"half"``.
        augment: ``"none"`` (the paper), ``"flip"``, ``"hflip"`` or ``"randaugment"``.
        cache_dir: cache folder (default: :func:`lmfloss.data.cache.default_cache_dir`).
        progress: show a progress bar while building the cache.
        cache_workers: processes decoding images while the cache is built (0 or 1: this
            process).
        defer_float: yield ``uint8`` images and leave the float conversion (and
            normalisation) to ``dataset.finish_batch(batch)`` — done on the GPU by the
            training engine, so a batch crosses the DataLoader and PCIe at a quarter the size.
        intensity: how 16-bit and float image files become 8-bit (:mod:`lmfloss.data.images`).
        should_stop: polled while the cache is built (Ctrl-C stops between chunks).
        warn_notes: warn about the images the intensity rule left nearly constant. A caller
            building several splits of one dataset passes False and warns once for all of
            them (:func:`lmfloss.data.cache.warn_intensity_notes` of their
            ``intensity_notes``), as ``lmfloss train`` and ``lmfloss prepare`` do.

    Returns:
        :class:`ImageDataset` yielding ``(float32 [3, S, S], int64 label, index)``
        (``uint8`` images with ``defer_float=True``).
    """
    if not isinstance(image_size, int) or isinstance(image_size, bool) or not 8 <= image_size <= 4096:
        raise ValueError(f"image_size must be an integer between 8 and 4096, got {image_size!r}")
    if isinstance(cache_workers, bool) or not isinstance(cache_workers, int) or cache_workers < 0:
        raise ValueError(f"workers must be an integer >= 0 (0: decode in this process), got {cache_workers!r}")
    transform = build_transform(normalize, augment, defer_float=defer_float)
    records = splits.records(split)
    if splits.index.images is not None:
        rows = [r.row for r in records]
        images = np.ascontiguousarray(resize_array(splits.index.images[rows], image_size).transpose(0, 3, 1, 2))
        return ImageDataset(images, records, splits.class_names, transform, task=splits.task)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(splits.root)
    images_path, skipped, notes = open_cache(
        records, splits.name, split, image_size, folder,
        skip_bad_images=splits.skip_bad_images, progress=progress, workers=cache_workers,
        intensity=intensity, should_stop=should_stop,
    )
    if warn_notes:
        warn_intensity_notes(notes, intensity)
    if not skipped:
        return ImageDataset(None, records, splits.class_names, transform, images_path=images_path,
                            intensity_notes=notes, task=splits.task)
    bad = set(skipped)
    keep = [i for i, r in enumerate(records) if r.id not in bad]
    return ImageDataset(None, [records[i] for i in keep], splits.class_names, transform,
                        images_path=images_path, rows=keep,
                        skipped=[r.path or r.id for r in records if r.id in bad], intensity_notes=notes,
                        task=splits.task)
