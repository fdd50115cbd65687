"""Issue 12: class re-sampling (balanced, sqrt), also across DDP ranks, and deferred re-sampling."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DistributedSampler

from lmfloss.train.sampling import ClassAwareSampler, class_probabilities

LABELS = np.repeat([0, 1, 2, 3], [500, 120, 40, 10])  # imbalance ratio 50


@pytest.mark.parametrize("mode", ["balanced", "sqrt"])
@pytest.mark.parametrize("world", [1, 2])
def test_class_frequencies_over_many_epochs_are_the_target(mode, world):
    target = class_probabilities(np.bincount(LABELS), mode)
    samplers = [ClassAwareSampler(LABELS, mode, num_replicas=world, rank=r, seed=7) for r in range(world)]
    counts = np.zeros(4)
    epochs = 60
    for epoch in range(epochs):
        for sampler in samplers:
            sampler.set_epoch(epoch)
            counts += np.bincount(LABELS[list(sampler)], minlength=4)
    draws = counts.sum()
    assert draws == epochs * samplers[0].total_size
    sigma = np.sqrt(draws * target * (1 - target))
    assert np.all(np.abs(counts - draws * target) < 3 * sigma), (counts / draws, target)


def test_balanced_and_sqrt_shares():
    assert class_probabilities([100, 25], "balanced") == pytest.approx([0.5, 0.5])
    assert class_probabilities([100, 25], "sqrt") == pytest.approx([10 / 15, 5 / 15])
    assert class_probabilities([100, 25], "none") == pytest.approx([0.8, 0.2])
    with pytest.raises(ValueError, match="sampler must be one of"):
        class_probabilities([1, 2], "uniform")


def test_ranks_take_disjoint_complete_equal_shares_of_one_global_order():
    labels = LABELS[:669]  # 669 items: not a multiple of the world size
    ranks = [ClassAwareSampler(labels, "balanced", num_replicas=2, rank=r, seed=3) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(5)
    shares = [list(s) for s in ranks]
    order = ranks[0].global_order()
    assert order == ranks[1].global_order()  # every rank draws the same global order
    assert len(shares[0]) == len(shares[1]) == len(ranks[0]) == 335
    # Disjoint and complete: the positions rank, rank + 2, ... of the global order, once each.
    assert sorted(shares[0] + shares[1]) == sorted(order) and len(order) == ranks[0].total_size
    assert shares[0] == order[0::2] and shares[1] == order[1::2]
    other_epoch = ClassAwareSampler(labels, "balanced", num_replicas=2, rank=0, seed=3)
    other_epoch.set_epoch(6)
    assert list(other_epoch) != shares[0]


def test_deferred_resampling_keeps_distributed_samplers_order_before_its_epoch():
    sampler = ClassAwareSampler(LABELS, "balanced", num_replicas=2, rank=1, seed=11, start_epoch=3)
    reference = DistributedSampler(list(range(len(LABELS))), num_replicas=2, rank=1, shuffle=True, seed=11)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        reference.set_epoch(epoch)
        assert not sampler.active and list(sampler) == list(reference)
    sampler.set_epoch(3)
    reference.set_epoch(3)
    assert sampler.active and list(sampler) != list(reference)


def test_a_class_without_images_cannot_be_drawn():
    with pytest.raises(ValueError, match=r"classes \[1\] have no training image"):
        ClassAwareSampler(np.array([0, 0, 2, 2]), "balanced")


@pytest.mark.realdata("data/breastmnist/breastmnist.npz")
@pytest.mark.slow
def test_fit_with_a_balanced_sampler_and_a_reweighted_loss_warns(tmp_path, caplog, one_torch_thread):
    from pathlib import Path

    from lmfloss.config import TrainConfig
    from lmfloss.train import fit

    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    config = TrainConfig(dataset="breastmnist", root=str(shared), model="shufflenet_v2_x0_5", weights="none",
                         image_size=28, epochs=1, batch_size=64, lr=1e-3, device="cpu", loss="wce", bootstrap=0,
                         sampler="balanced")
    with caplog.at_level("WARNING"):
        result = fit(config, tmp_path / "run", quiet=True)
    assert any("corrects the imbalance twice" in r.getMessage() for r in caplog.records)
    # The loss's weights still come from the true training counts, not from the re-sampled epoch.
    assert result.report["train_class_counts"] == [147, 399]
