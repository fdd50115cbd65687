"""DistributedDataParallel helpers for ``torchrun`` (CUDA with NCCL, CPU with gloo).

``torchrun --nproc_per_node N -m lmfloss train ...`` sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; :func:`init_distributed` reads them, joins the process group and returns a
:class:`DistContext`. Without them (a plain ``lmfloss train``) it returns a single-process
context and touches nothing. Evaluation gathers every rank's (index, logits) with
:func:`gather_predictions`, so metrics are computed over the full split, once, on rank 0.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when init_distributed created the process group

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) logs progress and writes files."""
        return self.rank == 0


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a plain single process (no process group needed)."""
    return os.environ.get("RANK", "0") == "0"


def init_distributed(device_type: str) -> DistContext:
    """Join the torchrun process group if the environment asks for one.

    Args:
        device_type: ``"cuda"`` selects NCCL; anything else gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=False)
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    logger.info("distributed: rank %d of %d (%s)", rank, world_size, backend)
    return DistContext(rank, world_size, local_rank, owns_group=True)


def close_distributed(ctx: DistContext) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-item list when not distributed)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(ctx: DistContext, values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over ranks (float64, through the CPU)."""
    if not ctx.enabled:
        return values
    parts = all_gather_objects(ctx, [float(v) for v in values])
    return [sum(p[i] for p in parts) for i in range(len(values))]


def gather_predictions(
    ctx: DistContext, indices: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate every rank's predictions, de-duplicated and sorted by dataset index.

    ``DistributedSampler`` pads the last ranks with repeated items so every rank gets the
    same count; keeping the first occurrence of each index gives every item exactly once.

    Returns:
        ``(indices [N], logits [N, K], labels [N])`` on the CPU, sorted by index.
    """
    parts = all_gather_objects(ctx, (indices.cpu(), logits.cpu(), labels.cpu()))
    idx = torch.cat([p[0] for p in parts])
    lg = torch.cat([p[1] for p in parts])
    lb = torch.cat([p[2] for p in parts])
    order = torch.argsort(idx, stable=True)
    idx, lg, lb = idx[order], lg[order], lb[order]
    keep = torch.ones_like(idx, dtype=torch.bool)
    keep[1:] = idx[1:] != idx[:-1]
    return idx[keep], lg[keep], lb[keep]
