"""The loss library: LMF (Sadi et al. 2024) and the baselines of the field, torch only.

Quick use::

    from lmfloss.losses import build_loss, class_counts

    counts = class_counts(train_targets, num_classes=7)   # class-index order, by construction
    criterion = build_loss("lmf", counts, beta=2.0).to(device)
    for epoch in range(epochs):
        criterion.set_epoch(epoch)                        # no-op unless the loss has a schedule
        for x, y in loader:
            loss = criterion(model(x), y)                 # like nn.CrossEntropyLoss

``class_counts[j]`` must be the number of training samples with target ``j`` — the order of the
integer targets, not of a directory listing; :func:`class_counts` builds it from the targets.

Registry (:data:`LOSSES`): ``ce``, ``wce``, ``bwcce``, ``ldam``, ``focal``, ``lmf``, ``cb``,
``logit-adjusted``. ``lmfloss losses`` prints each with its parameters.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from torch import nn

from lmfloss.losses import functional
from lmfloss.losses.modules import (
    BWCCELoss,
    ClassBalancedLoss,
    CrossEntropyLoss,
    FocalLoss,
    ImbalanceLoss,
    LDAMLoss,
    LMFLoss,
    LogitAdjustedLoss,
    WeightedCrossEntropyLoss,
)
from lmfloss.losses.weights import (
    bwcce_weights,
    check_class_counts,
    class_balanced_weights,
    class_counts,
    compute_margins,
    inverse_frequency_weights,
    log_prior,
    resolve_class_weight,
)

__all__ = [
    "LOSSES",
    "BWCCELoss",
    "ClassBalancedLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "ImbalanceLoss",
    "LDAMLoss",
    "LMFLoss",
    "LogitAdjustedLoss",
    "WeightedCrossEntropyLoss",
    "build_loss",
    "bwcce_weights",
    "check_class_counts",
    "class_balanced_weights",
    "class_counts",
    "compute_margins",
    "functional",
    "inverse_frequency_weights",
    "log_prior",
    "loss_parameters",
    "resolve_class_weight",
    "resolved_loss_params",
]

LOSSES: dict[str, type[ImbalanceLoss]] = {
    cls.name: cls
    for cls in (
        CrossEntropyLoss,
        WeightedCrossEntropyLoss,
        BWCCELoss,
        LDAMLoss,
        FocalLoss,
        LMFLoss,
        ClassBalancedLoss,
        LogitAdjustedLoss,
    )
}
"""Loss name -> class; every class is built as ``cls(class_counts, **params)``."""


def _get(name: str) -> type[ImbalanceLoss]:
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; valid names are {sorted(LOSSES)}") from None


def loss_parameters(name: str) -> dict[str, Any]:
    """The keyword parameters of loss ``name`` with their defaults (``class_counts`` excluded).

    Raises:
        ValueError: unknown ``name``.
    """
    signature = inspect.signature(_get(name).__init__)
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "validate_args"
    }


def resolved_loss_params(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every keyword parameter of loss ``name`` (``reduction`` aside): ``params`` where given,
    the default otherwise -- what a run was trained with, written into its ``report.json``
    so that readers need neither torch nor this library's version of the defaults.

    Raises:
        ValueError: unknown ``name`` or parameter.
    """
    params = dict(params or {})
    defaults = loss_parameters(name)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for loss {name!r}; valid parameters are {sorted(defaults)}"
        )
    merged = {k: params.get(k, v) for k, v in defaults.items() if k != "reduction"}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in merged.items()}


def build_loss(name: str, class_counts: Sequence[int], *, validate_args: bool = True, **params: Any) -> nn.Module:
    """Build the loss called ``name`` for a training set with ``class_counts``.

    Args:
        name: a key of :data:`LOSSES` (``"lmf"``, ``"ldam"``, ``"focal"``, ``"ce"``, ...).
        class_counts: ``[K]`` training samples per class, **in class-index order** —
            ``class_counts[j]`` counts the targets equal to ``j``. Build it with
            :func:`class_counts` from the training targets; a mapping is rejected because
            its order would be a guess.
        validate_args: check every batch's targets (a host read per call, which makes the
            CPU wait for the GPU on CUDA); a training loop whose labels were validated once
            passes ``False`` (torchmetrics' convention).
        **params: the loss's keyword options (see :func:`loss_parameters` or ``lmfloss losses``).

    Returns:
        An ``nn.Module`` called as ``loss(logits[N, K], target[N])`` with ``set_epoch(epoch)``.

    Raises:
        ValueError: unknown name (lists the valid ones), unknown parameter (lists the valid
            ones), bad class counts or a bad parameter value.
    """
    cls = _get(name)
    valid = loss_parameters(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for loss {name!r}; valid parameters are {sorted(valid)}"
        )
    return cls(class_counts, validate_args=validate_args, **params)
