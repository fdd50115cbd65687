"""Where a sweep's trials run: one worker per (GPU, slot), each seeing one GPU.

``lmfloss sweep --devices 0,1,2,3 --trials-per-device 2`` starts 8 workers; worker ``i``
gets ``CUDA_VISIBLE_DEVICES=devices[i // 2]``, so inside it ``cuda`` (or ``auto``) is that
GPU and a trial never lands on another worker's card. ``--devices auto`` is every visible
GPU. Several trials per GPU fill a card that one trial at the paper's batch of 32 leaves
mostly idle; how many fit is checked up front against the card's free memory, with the
memory one trial of the sweep's first configuration needs (one measured training step),
instead of an out-of-memory error halfway through the night.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from lmfloss.errors import LmflossError
from lmfloss.losses import build_loss
from lmfloss.models import build_model
from lmfloss.train.engine import amp_dtype_for

HEADROOM = 1.15  # cuDNN workspaces, fragmentation and the CUDA context beside the measured peak


def visible_gpu_count() -> int:
    """GPUs this process can see (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_devices(text: str | None, count: Callable[[], int] = visible_gpu_count) -> list[str] | None:
    """``"0,2"`` -> ``["0", "2"]``; ``"auto"`` -> every visible GPU; ``None`` -> ``None`` (no placement).

    Raises:
        ValueError: an empty list, a repeated or non-numeric id, a GPU that does not exist,
            or ``auto`` on a machine without GPUs -- naming the value.
    """
    if text is None:
        return None
    available = count()
    if text.strip().lower() == "auto":
        if available == 0:
            raise ValueError("--devices auto: this machine has no CUDA GPU (drop --devices to run on the CPU)")
        return [str(i) for i in range(available)]
    devices = [part.strip() for part in text.split(",") if part.strip()]
    if not devices:
        raise ValueError(f"--devices expects GPU numbers such as 0,1 or auto, got {text!r}")
    bad = [d for d in devices if not d.isdigit()]
    if bad:
        raise ValueError(f"--devices expects GPU numbers such as 0,1 or auto, got {bad[0]!r}")
    if len(set(devices)) != len(devices):
        raise ValueError(f"--devices names a GPU twice ({text!r}); use --trials-per-device for several trials per GPU")
    missing = [d for d in devices if int(d) >= available]
    if missing:
        raise ValueError(f"--devices {missing[0]}: this machine has {available} GPU(s) (0..{available - 1})"
                         if available else f"--devices {missing[0]}: this machine has no CUDA GPU")
    return devices


def worker_devices(devices: Sequence[str], trials_per_device: int) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` of each worker: ``trials_per_device`` workers per GPU.

    Raises:
        ValueError: ``trials_per_device < 1``.
    """
    if isinstance(trials_per_device, bool) or not isinstance(trials_per_device, int) or trials_per_device < 1:
        raise ValueError(f"--trials-per-device must be an integer >= 1, got {trials_per_device!r}")
    return [device for device in devices for _ in range(trials_per_device)]


def check_memory(devices: Sequence[str], trials_per_device: int, need_bytes: int,
                 free_bytes: Callable[[str], int]) -> None:
    """Refuse more trials per GPU than its free memory holds.

    Args:
        need_bytes: the peak memory of one trial (:func:`measure_trial_memory`).
        free_bytes: free memory of a GPU by its number.

    Raises:
        LmflossError: naming the GPU, what fits and what was asked.
    """
    for device in devices:
        free = free_bytes(device)
        fits = int(free // (need_bytes * HEADROOM)) if need_bytes > 0 else trials_per_device
        if fits < trials_per_device:
            raise LmflossError(
                f"--trials-per-device {trials_per_device}: GPU {device} has {free / 2**30:.1f} GiB free and one trial "
                f"needs about {need_bytes * HEADROOM / 2**30:.1f} GiB, so {fits} fit; lower --trials-per-device"
            )


def gpu_free_bytes(device: str) -> int:
    free, _total = torch.cuda.mem_get_info(int(device))
    return int(free)


def measure_trial_memory(config, device: str = "0") -> int:
    """Peak GPU memory (bytes) of one training step of ``config`` (its model, batch size,
    image size, loss and precision) on GPU ``device``: the model, Adam's state, the
    activations of a batch and the gradients."""
    gpu = torch.device("cuda", int(device))
    torch.cuda.reset_peak_memory_stats(gpu)
    before = torch.cuda.memory_allocated(gpu)
    k = 8  # the head's size hardly matters; the dataset is not loaded to know K
    model = build_model(config.model, k, "none", stem=config.stem).to(gpu)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(config.loss, [10] * k, validate_args=False).to(gpu)
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.rand(config.batch_size, 3, config.image_size, config.image_size, device=gpu)
    y = torch.randint(0, k, (config.batch_size,), device=gpu)
    amp = amp_dtype_for(config.amp, gpu)
    with torch.autocast("cuda", dtype=amp, enabled=amp is not None):
        loss = loss_fn(model(x).float(), y)
    loss.backward()
    optimizer.step()
    torch.cuda.synchronize(gpu)
    peak = torch.cuda.max_memory_allocated(gpu) - before
    del model, loss_fn, optimizer, x, y, loss
    torch.cuda.empty_cache()
    return int(peak)
