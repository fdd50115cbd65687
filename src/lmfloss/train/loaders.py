"""Datasets and DataLoaders of a run, single-process or one shard per DDP rank."""

from __future__ import annotations

import logging

import torch
from torch.utils.data import DataLoader, DistributedSampler

from lmfloss.config import TrainConfig
from lmfloss.data import dataset_for, splits_for
from lmfloss.data.cache import warn_intensity_notes
from lmfloss.data.dataset import BatchedDataset, collated
from lmfloss.train.distributed import DistContext, barrier
from lmfloss.train.sampling import ClassAwareSampler

logger = logging.getLogger(__name__)


def load_data(config: TrainConfig, ctx: DistContext | None = None, should_stop=None, progress: bool = False):
    """``(splits, {"train": ds, "val": ds, "test": ds})`` with the run's preprocessing
    (:func:`lmfloss.data.dataset_for`; uint8 items, scaled on the device by the engine).

    Under DDP rank 0 loads first (it may download or fill the image cache), then the others.
    A warning about the dataset's images (nearly constant after the intensity rule) is
    given once for the three splits, by rank 0.
    """
    ctx = ctx or DistContext()

    def load():
        splits = splits_for(config)
        datasets = {
            split: dataset_for(config, split, splits, defer_float=True, should_stop=should_stop,
                               progress=progress and ctx.is_main, warn_notes=False)
            for split in ("train", "val", "test")
        }
        if ctx.is_main:
            warn_intensity_notes([n for ds in datasets.values() for n in ds.intensity_notes], config.intensity)
        return splits, datasets

    if ctx.is_main:
        result = load()
    barrier(ctx)
    if not ctx.is_main:
        result = load()
    return result


def make_loader(dataset, config: TrainConfig, ctx: DistContext, device: torch.device, train: bool):
    """The DataLoader of one split on this rank.

    Training: the plain shuffle of ``DistributedSampler`` (also for one process: its order
    depends only on ``(seed, epoch)``, which is what makes a resumed run see the same
    batches), or with ``config.sampler`` a class re-sampled epoch
    (:class:`lmfloss.train.sampling.ClassAwareSampler`). Evaluation: every item once, in order.
    """
    if train and config.sampler != "none":
        sampler = ClassAwareSampler(dataset.labels, config.sampler, num_replicas=ctx.world_size, rank=ctx.rank,
                                    seed=config.seed, start_epoch=config.sampler_start_epoch)
    else:
        sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=train,
                                     seed=config.seed, drop_last=False)
    per_rank = len(sampler)
    # BatchNorm cannot train on a batch of one image: drop such a last batch only.
    drop_last = train and per_rank % config.batch_size == 1 and per_rank > 1
    if drop_last:
        logger.info("dropping the last training batch of 1 image each epoch (BatchNorm needs >= 2)")
    # Whole batches: one read of the memory map per batch, no per-image Python work, pinned
    # once; the engine augments and scales a batch on the device (ImageDataset.gather).
    return DataLoader(
        BatchedDataset(dataset), batch_size=config.batch_size, sampler=sampler, num_workers=config.workers,
        pin_memory=device.type == "cuda", drop_last=drop_last, collate_fn=collated,
        persistent_workers=config.workers > 0,
    )
