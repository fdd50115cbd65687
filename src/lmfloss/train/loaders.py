"""Datasets and DataLoaders of a run, single-process or one shard per DDP rank."""

from __future__ import annotations

import logging

import torch

from lmfloss.config import TrainConfig
from lmfloss.train.distributed import DistContext, barrier

logger = logging.getLogger(__name__)


def load_data(config: TrainConfig, ctx: DistContext | None = None):
    """``(splits, {"train": ds, "val": ds, "test": ds})`` with the run's preprocessing.

    Under DDP rank 0 loads first (it may download or fill the image cache), then the others.
    """
    from lmfloss.data import load_splits, make_dataset

    ctx = ctx or DistContext()

    def load():
        splits = load_splits(
            dataset=config.dataset, root=config.root, csv=config.csv, seed=config.split_seed,
            group_by=config.group_by, download=config.download,
            skip_bad_images=config.skip_bad_images,
        )
        datasets = {
            split: make_dataset(
                splits, split, image_size=config.image_size, normalize=config.normalize,
                augment=config.augment if split == "train" else "none", cache_dir=config.cache_dir,
                defer_float=True,  # uint8 through the DataLoader; the engine scales on the device
            )
            for split in ("train", "val", "test")
        }
        return splits, datasets

    if ctx.is_main:
        result = load()
    barrier(ctx)
    if not ctx.is_main:
        result = load()
    return result


def make_loader(dataset, config: TrainConfig, ctx: DistContext, device: torch.device, train: bool):
    from torch.utils.data import DataLoader, DistributedSampler

    # DistributedSampler also for one process: its shuffle depends only on (seed, epoch),
    # which is what makes a resumed run see the same batches as an uninterrupted one.
    sampler = DistributedSampler(
        dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=train, seed=config.seed,
        drop_last=False,
    )
    per_rank = len(sampler)
    # BatchNorm cannot train on a batch of one image: drop such a last batch only.
    drop_last = train and per_rank % config.batch_size == 1 and per_rank > 1
    if drop_last:
        logger.info("dropping the last training batch of 1 image each epoch (BatchNorm needs >= 2)")
    return DataLoader(
        dataset, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers,
        pin_memory=device.type == "cuda", drop_last=drop_last,
        persistent_workers=config.workers > 0,
    )


