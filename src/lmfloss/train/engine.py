"""The training and evaluation loops: plain functions, state in arguments.

Shaped like torchvision's ``references/classification/train.py``: :func:`train_one_epoch`
runs one pass over a loader and returns a dict, :func:`evaluate` returns every logit of a
split (gathered across ranks under DDP). :func:`lmfloss.train.fit` strings them together.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from lmfloss.errors import LmflossError
from lmfloss.task import MULTICLASS, Task, get_task
from lmfloss.train.distributed import DistContext, all_reduce_sum, gather_predictions

logger = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


class NonFiniteLossError(LmflossError):
    """The training loss became NaN or infinite; the run stops, the last good checkpoint stays."""


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA, else MPS, else CPU; an explicit device must be available.

    Raises:
        ValueError: unknown name, or CUDA/MPS asked for but not available.
    """
    name = str(name).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but CUDA is not available; use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} asked for but MPS is not available; use --device cpu or auto")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; expected auto, cpu, cuda, cuda:N or mps")
    return device


def amp_dtype_for(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16/fp16 on CUDA only (CPU and MPS train in float32)."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"unknown amp {amp!r}; expected one of {sorted(AMP_DTYPES)}")
    return AMP_DTYPES[amp] if device.type == "cuda" else None


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _logits(output: Any) -> torch.Tensor:
    # Inception-style models return (logits, aux_logits) in train mode; the aux head is
    # an auxiliary classifier the paper's models do not have, so it is not trained here.
    return output if isinstance(output, torch.Tensor) else output.logits


def _progress(loader: Any, desc: str, enabled: bool) -> Any:
    if not enabled:
        return loader
    return tqdm(loader, desc=desc, total=len(loader), leave=False, unit="batch", dynamic_ncols=True)


def _to_device(images: torch.Tensor, labels: torch.Tensor, device: torch.device, channels_last: bool,
               finish: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """Copy a batch to ``device``; ``finish`` turns uint8 images into the model's float input there."""
    non_blocking = device.type == "cuda"
    images = images.to(device, non_blocking=non_blocking)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    if finish is not None:
        images = finish(images)
    return images, labels.to(device, non_blocking=non_blocking)


def _batch_finisher(loader: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The dataset's ``finish_batch`` (uint8 -> float on the device), if it has one."""
    return getattr(getattr(loader, "dataset", None), "finish_batch", None)


def train_one_epoch(
    model: nn.Module,
    loader: Any,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    epoch: int,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    ctx: DistContext | None = None,
    progress: bool = False,
    should_stop: Callable[[], bool] | None = None,
    check_every: int = 10,
    task: Task | None = None,
) -> dict[str, Any]:
    """One pass over ``loader``: forward, loss, backward, optimizer step.

    The loss values stay on the device and are checked (finite?) and shown every
    ``check_every`` steps, so the GPU is not synchronised after every step. ``should_stop``
    (a Python flag set by a signal handler: no device sync) is polled after every step in
    one process; under DDP, where every rank must stop at the same step, at the checks.

    Args:
        model: the network (possibly DDP-wrapped), in any mode; set to train mode here.
        loader: yields ``(images [B, 3, S, S] float32, labels, index [B])``; labels as the
            task's dataset gives them (``[B]`` int64 class indices, ``[B, L]`` 0/1 per label).
        loss_fn: ``loss_fn(logits [B, K], targets) -> scalar`` (reduction ``"mean"``).
        optimizer: stepped once per batch.
        device: where the model lives.
        epoch: 1-based epoch number (for messages).
        amp_dtype: autocast dtype on CUDA, or None for float32.
        scaler: a ``GradScaler`` for fp16, else None.
        channels_last: move images to channels-last memory format.
        ctx: the distributed context (train loss is averaged over all ranks' images).
        progress: show a tqdm bar with the running loss and images/s.
        should_stop: True stops after the current step (polled every step, or at the
            checks under DDP).
        check_every: steps between finiteness checks / progress updates.
        task: the run's :class:`~lmfloss.task.Task`: turns the loader's labels into the loss's
            targets (:meth:`~lmfloss.task.Task.loss_target`); ``None`` hands them on as they are.

    Returns:
        ``{"loss": mean loss per image over all ranks, "images": images seen by this rank,
        "steps": steps run, "seconds": wall time, "stopped": bool, "step": last step}``.

    Raises:
        NonFiniteLossError: a NaN/inf loss, naming the epoch and the first bad step.
    """
    ctx = ctx or DistContext()
    model.train()
    start = time.perf_counter()
    pending: list[tuple[int, torch.Tensor, int]] = []  # (step, loss, batch size) not yet checked
    loss_sum, images_seen = 0.0, 0
    step = 0
    stopped = False
    bar = _progress(loader, f"epoch {epoch}", progress)
    finish = _batch_finisher(loader)
    for step, (images, labels, _index) in enumerate(bar, start=1):
        images, labels = _to_device(images, labels, device, channels_last, finish)
        with _autocast(device, amp_dtype):
            loss = loss_fn(_logits(model(images)).float(), labels if task is None else task.loss_target(labels))
        _backward_and_step(loss, optimizer, scaler)
        pending.append((step, loss.detach(), len(labels)))
        images_seen += len(labels)
        at_check = step % check_every == 0 or step == len(loader)
        if at_check:
            loss_sum += _check_pending(pending, epoch)
            pending.clear()
            if progress:
                _show_running_loss(bar, loss_sum, images_seen, start)
        if should_stop is not None and (at_check or not ctx.enabled) and should_stop():
            stopped = True
            break
    if pending:
        loss_sum += _check_pending(pending, epoch)
    if progress:
        bar.close()
    return _epoch_result(ctx, loss_sum, images_seen, step, start, stopped)


def _backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                       scaler: torch.amp.GradScaler | None) -> None:
    """Gradients of ``loss`` (scaled by ``scaler`` for fp16) and one optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def _show_running_loss(bar: Any, loss_sum: float, images_seen: int, start: float) -> None:
    """The progress bar's running loss per image and images/s."""
    rate = images_seen / max(time.perf_counter() - start, 1e-9)
    bar.set_postfix(loss=f"{loss_sum / images_seen:.4f}", img_s=f"{rate:.0f}")


def _epoch_result(ctx: DistContext, loss_sum: float, images_seen: int, step: int, start: float,
                  stopped: bool) -> dict[str, Any]:
    """:func:`train_one_epoch`'s summary; the loss is averaged over every rank's images."""
    total_loss, total_images = all_reduce_sum(ctx, [loss_sum, float(images_seen)])
    return {
        "loss": total_loss / max(total_images, 1.0),
        "images": images_seen,
        "steps": step,
        "seconds": time.perf_counter() - start,
        "stopped": stopped,
        "step": step,
    }


def _check_pending(pending: list[tuple[int, torch.Tensor, int]], epoch: int) -> float:
    """Sum of ``loss * batch`` over the pending steps; raise at the first non-finite one."""
    values = torch.stack([p[1] for p in pending]).float().cpu()
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0, 0])
        step, value = pending[bad][0], float(values[bad])
        raise NonFiniteLossError(
            f"the training loss became {value} at epoch {epoch}, step {step}; stopping. "
            "The last good checkpoint (last.pt, previous epoch) is kept; try a lower --lr, "
            "--amp off, or check the loss parameters"
        )
    sizes = torch.tensor([p[2] for p in pending], dtype=torch.float64)
    return float((values.double() * sizes).sum())


TTA_CHOICES = ("flip", "flip4")


def tta_views(images: torch.Tensor, tta: str | None) -> list[torch.Tensor]:
    """The test-time augmentation views of a batch ``[B, C, H, W]``: ``None`` the batch itself,
    ``"flip"`` it and its horizontal flip, ``"flip4"`` also the vertical and both flips."""
    if tta is None:
        return [images]
    if tta not in TTA_CHOICES:
        raise ValueError(f"tta must be one of {list(TTA_CHOICES)}, got {tta!r}")
    views = [images, images.flip(-1)]
    if tta == "flip4":
        views += [images.flip(-2), images.flip(-2).flip(-1)]
    return views


def predict_logits(model: nn.Module, images: torch.Tensor, tta: str | None = None,
                   task: Task | str = MULTICLASS) -> torch.Tensor:
    """The model's logits of a batch; with ``tta``, logits whose activation is the task's
    probabilities averaged over the views (:meth:`~lmfloss.task.Task.logits_of`: the log of
    the averaged softmax, or the logit of each label's averaged sigmoid)."""
    if tta is None:
        return _logits(model(images)).float()
    task = get_task(task)
    views = [_logits(model(v)).float() for v in tta_views(images, tta)]
    return task.logits_of(torch.stack([task.probabilities(z) for z in views]).mean(dim=0))


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: Any,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    ctx: DistContext | None = None,
    progress: bool = False,
    desc: str = "eval",
    tta: str | None = None,
    task: str = "multiclass",
) -> dict[str, torch.Tensor]:
    """Logits of every item of ``loader``'s dataset, gathered over ranks.

    Args:
        model: the network (eval mode is set here).
        loader: yields ``(images, labels, index)``; under DDP a ``DistributedSampler``
            (shuffle off) splits the items, and the padding it adds is removed again.
        tta: test-time augmentation (:func:`predict_logits`): ``"flip"``, ``"flip4"`` or None.
        task: the :class:`~lmfloss.task.Task` or its name (how TTA views are averaged).

    Returns:
        ``{"indices": [N] int64, "logits": [N, K] float32, "labels": [N] or [N, L]}``
        (the labels as the dataset gives them) on the CPU, sorted by dataset index, each item exactly once (on every rank).
    """
    ctx = ctx or DistContext()
    model.eval()
    indices, logits, labels = [], [], []
    finish = _batch_finisher(loader)
    for images, target, index in _progress(loader, desc, progress):
        images, _ = _to_device(images, target, device, channels_last, finish)
        with _autocast(device, amp_dtype):
            out = predict_logits(model, images, tta, task)
        logits.append(out.float().cpu())
        labels.append(torch.as_tensor(target).cpu())
        indices.append(torch.as_tensor(index).cpu())
    if not logits:  # DistributedSampler pads, so every rank of a non-empty split gets items
        raise ValueError("evaluate: the loader yielded no batches (an empty split?)")
    # One path for one process and many: gathering is the identity without DDP, and the
    # sort (plus de-duplication of the sampler's padding) is what both need.
    idx, lg, lb = gather_predictions(ctx, torch.cat(indices), torch.cat(logits), torch.cat(labels))
    return {"indices": idx.long(), "logits": lg, "labels": lb.long()}


class StopFlag:
    """Set by SIGINT/SIGTERM while :func:`stop_on_signals` is active.

    Attributes:
        signal_name: ``"SIGINT"``/``"SIGTERM"`` once a signal arrived, else ``None``.
        signal_number: its number (2, 15), else ``None``.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.signal_number: int | None = None

    def __call__(self) -> bool:
        return self.signal_name is not None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Turn SIGINT/SIGTERM into a flag the loop polls; restore the old handlers on exit.

    Outside the main thread (where handlers cannot be installed) the flag never fires.
    A second Ctrl-C while stopping raises ``KeyboardInterrupt`` at once.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, _frame: Any) -> None:
        if flag.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.signal_name = signal.Signals(signum).name
        flag.signal_number = int(signum)
        logger.warning("%s received: stopping after the current step", flag.signal_name)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
