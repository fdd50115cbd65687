"""Issue 13 (what the CPU can check): no host read per training step, the batched data path
gives the per-item path's batches, and (on CUDA only) no synchronisation outside the checks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from lmfloss.config import TrainConfig
from lmfloss.data.dataset import ImageDataset
from lmfloss.data.records import Record
from lmfloss.data.transforms import build_transform
from lmfloss.losses import build_loss
from lmfloss.train.distributed import DistContext
from lmfloss.train.engine import train_one_epoch
from lmfloss.train.loaders import make_loader

READS = ("item", "tolist", "cpu", "__int__", "__float__", "__bool__")
LMFLOSS = str(Path(__import__("lmfloss").__file__).parent)


def _dataset(n=160, size=8, augment="none") -> ImageDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    records = [Record(id=f"i{i}", label=int(i % 3)) for i in range(n)]
    return ImageDataset(images, records, ["a", "b", "c"], build_transform(augment=augment, defer_float=True))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def _lmfloss_caller() -> str | None:
    """The lmfloss function that made the current host read (the first frame outside torch).

    Reads inside ``torch.optim`` are the optimizer's step counters, which live on the CPU
    (also when training on CUDA, unless ``capturable``): reading them never waits for the
    GPU, so they are not counted."""
    # Frame by frame, not inspect.stack(): that reads every frame's source lines, on every
    # counted read -- most of this test's run time.
    frame = sys._getframe(2)  # 0: this function, 1: the counting wrapper
    while frame is not None:
        filename = frame.f_code.co_filename
        if "/torch/optim/" in filename:
            return None
        if "/torch/" not in filename:
            return frame.f_code.co_name if filename.startswith(LMFLOSS) else None
        frame = frame.f_back
    return None


@pytest.mark.parametrize("loss", ["lmf", "ce", "focal"])
def test_no_host_read_per_step_only_at_the_checks(monkeypatch, loss, one_torch_thread):
    dataset = _dataset()
    config = TrainConfig(dataset="csv", batch_size=4, seed=1, device="cpu")
    loader = make_loader(dataset, config, DistContext(), torch.device("cpu"), train=True)
    model = _model()
    loss_fn = build_loss(loss, [54, 53, 53], validate_args=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    step = [0]  # the training step in progress (0: the epoch's set-up, before the first loss)

    def counted_loss(logits, target):
        step[0] += 1
        return loss_fn(logits, target)

    reads: dict[int, list[str]] = {}
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            caller = _lmfloss_caller()
            if caller is not None:
                reads.setdefault(step[0], []).append(caller)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    stats = train_one_epoch(model, loader, counted_loss, optimizer, device=torch.device("cpu"), epoch=1,
                            check_every=10)
    monkeypatch.undo()
    assert stats["steps"] == 40
    # Step 0 is the DataLoader's own once-per-epoch set-up (its seed, the sampler's order).
    # After that, host reads happen only at the checks (steps 10, 20, 30, 40), in _check_pending.
    per_step = {s: r for s, r in reads.items() if s > 0}
    assert set(per_step) == {10, 20, 30, 40}, sorted(per_step)
    assert all(set(r) == {"_check_pending"} and len(r) <= 4 for r in per_step.values()), per_step


def test_a_loss_that_validates_reads_the_targets_every_call():
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    reads = []
    original = torch.Tensor.__int__

    def counting(self):
        reads.append(1)
        return original(self)

    torch.Tensor.__int__ = counting
    try:
        build_loss("lmf", [5, 3, 2])(logits, target)
        checked = len(reads)
        build_loss("lmf", [5, 3, 2], validate_args=False)(logits, target)
    finally:
        torch.Tensor.__int__ = original
    assert checked > 0 and len(reads) == checked  # validate_args=False: no read at all
    with pytest.raises(ValueError, match="target 5 is outside"):
        build_loss("ce", [5, 3, 2])(logits, torch.tensor([0, 1, 5, 0]))


def test_batched_data_path_gives_the_per_item_paths_first_epoch_bit_for_bit(one_torch_thread):
    """augment=none: the batched loader (one gather per batch) trains exactly like the
    per-item loader (dataset[i] + the default collate) with the same seed."""
    dataset = _dataset()
    config = TrainConfig(dataset="csv", batch_size=16, seed=3, device="cpu")
    batched = make_loader(dataset, config, DistContext(), torch.device("cpu"), train=True)
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=3)
    per_item = DataLoader(dataset, batch_size=16, sampler=sampler)
    losses = {}
    for name, loader in (("batched", batched), ("per_item", per_item)):
        loader.sampler.set_epoch(0)
        model = _model()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = build_loss("lmf", [54, 53, 53], validate_args=False)
        seen = []
        recording = lambda logits, target, _fn=loss_fn, _seen=seen: _seen.append(_fn(logits, target)) or _seen[-1]  # noqa: E731
        train_one_epoch(model, loader, recording, optimizer, device=torch.device("cpu"), epoch=1)
        losses[name] = torch.stack([s.detach() for s in seen])
        first = next(iter(loader))
        losses[name + "_batch"] = first
    assert torch.equal(losses["batched"], losses["per_item"])
    for a, b in zip(losses["batched_batch"], losses["per_item_batch"]):
        assert torch.equal(a, b) and a.dtype == b.dtype


def test_flips_happen_per_image_on_the_batch():
    transform = build_transform(augment="flip", defer_float=True)
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4).repeat(32, 1, 1, 1)
    torch.manual_seed(0)
    out = transform.finish(images) * 255
    variants = {(torch.equal(o, i.float()), torch.equal(o, i.flip(-1).float()), torch.equal(o, i.flip(-2).float()),
                 torch.equal(o, i.flip(-1).flip(-2).float())) for o, i in zip(out, images)}
    assert len(variants) == 4  # all four flip combinations occur within one batch
    assert all(sum(v) == 1 for v in variants)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (set_sync_debug_mode counts device syncs)")
@pytest.mark.parametrize("loss", ["lmf", "ce", "focal"])
def test_no_synchronisation_outside_the_checks_on_cuda(loss):
    device = torch.device("cuda")
    dataset = _dataset(n=80)
    config = TrainConfig(dataset="csv", batch_size=4, seed=1, device="cuda")
    loader = make_loader(dataset, config, DistContext(), device, train=True)
    model = _model().to(device)
    loss_fn = build_loss(loss, [27, 27, 26], validate_args=False).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=True)
    checks = []
    import lmfloss.train.engine as engine

    real = engine._check_pending

    def check(pending, epoch):
        torch.cuda.set_sync_debug_mode(0)
        checks.append(len(pending))
        try:
            return real(pending, epoch)
        finally:
            torch.cuda.set_sync_debug_mode("error")

    engine._check_pending = check
    torch.cuda.set_sync_debug_mode("error")
    try:
        stats = train_one_epoch(model, loader, loss_fn, optimizer, device=device, epoch=1, check_every=10)
    finally:
        torch.cuda.set_sync_debug_mode(0)
        engine._check_pending = real
    assert stats["steps"] == 20 and checks == [10, 10]
