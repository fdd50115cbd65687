"""The training loop (lmfloss.train.engine): a stop request ends the epoch at the next step."""

from __future__ import annotations


def test_stop_request_ends_the_epoch_after_one_step():
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from lmfloss.train.engine import train_one_epoch

    torch.manual_seed(0)
    n = 24
    data = TensorDataset(torch.rand(n, 3, 4, 4), torch.randint(0, 2, (n,), dtype=torch.int64), torch.arange(n))
    loader = DataLoader(data, batch_size=2)  # 12 steps: more than one check interval (10)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    before = [p.detach().clone() for p in model.parameters()]
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return True

    stats = train_one_epoch(model, loader, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                            device=torch.device("cpu"), epoch=1, should_stop=should_stop)
    assert stats["stopped"] is True
    assert stats["steps"] == 1 and stats["images"] == 2
    assert len(calls) == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the step was taken
