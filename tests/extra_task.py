"""A task lmfloss does not ship, registered from outside ``src/``: one-logit binary.

Two classes decided by one sigmoid logit (``p`` = probability of class 1), as binary
clinical models are often trained. Everything below is what such a plug-in provides; the
test that uses it (``test_task.py``) trains, evaluates, predicts, exports and reports it
with no change to lmfloss itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from lmfloss.task import MULTICLASS, TASKS, MultiClass, register_task


class OneLogitBCE(nn.Module):
    """BCE on the one logit against the class index as 0/1 (targets from ``loss_target``)."""

    description = "binary cross-entropy on one logit"

    def __init__(self, counts: Any = None, validate_args: bool = True) -> None:
        super().__init__()

    def set_epoch(self, epoch: int) -> None:  # the engine's schedule hook (DRW); nothing here
        pass

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(logits, target.reshape(logits.shape).float())


class OneLogitBinary(MultiClass):
    """Two classes, one logit: probabilities ``[1 - p, p]`` so every multi-class metric,
    file and report applies unchanged."""

    def outputs(self, num_classes: int) -> int:
        if num_classes != 2:
            raise ValueError(f"a one-logit binary task needs 2 classes, got {num_classes}")
        return 1

    def activate(self, z: Any) -> Any:
        p = z[..., :1].sigmoid()
        return torch.cat([1 - p, p], dim=-1)

    def logits_of(self, probs: Any) -> Any:
        return probs[..., 1:].double().logit(eps=1e-12).float()

    def loss_target(self, labels: Any) -> Any:
        return labels.float().reshape(-1, 1)

    def losses(self) -> dict[str, type]:
        return {"bce1": OneLogitBCE}

    def build_loss(self, name: str, counts: Any, **params: Any) -> Any:
        self.loss_parameters(name)
        params.pop("validate_args", None)
        return OneLogitBCE(counts, **params)

    def loss_parameters(self, name: str) -> dict[str, Any]:
        if name not in self.losses():
            raise ValueError(f"unknown loss {name!r}; valid names are {sorted(self.losses())}")
        return {}

    def resolved_loss_params(self, name: str, params: Any = None) -> dict[str, Any]:
        return {**self.loss_parameters(name), **dict(params or {})}


BINARY = OneLogitBinary(**{
    **{f: getattr(MULTICLASS, f) for f in MULTICLASS.__dataclass_fields__},
    "name": "binary1", "display": "one-logit binary", "activation": "sigmoid", "loss_family": "binary1",
    "demo_losses": ("bce1",), "decision": "class 1 where its sigmoid probability is the larger (p >= 0.5)",
})


@contextlib.contextmanager
def registered() -> Iterator[OneLogitBinary]:
    """:data:`BINARY` in lmfloss's task registry for the duration of the block: the registry is
    global, so a task left registered would change other tests' messages (choices listed)."""
    register_task(BINARY)
    try:
        yield BINARY
    finally:
        TASKS.pop(BINARY.name, None)
