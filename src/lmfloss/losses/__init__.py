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

Multi-label tasks (targets ``[N, L]`` of 0/1, one sigmoid per label) have their own registry
(:data:`MULTILABEL_LOSSES`: ``bce``, ``focal``, ``asl``, ``ldam``, ``lmf``), built from the
``[L, 2]`` table of training ``(negatives, positives)`` per label::

    counts = label_counts(train_targets)                  # [[neg, pos], ...] per label, known entries
    criterion = build_loss("lmf", counts, task="multilabel")
    loss = criterion(model(x), y)                         # logits [N, L], y [N, L] of 0/1
    loss = criterion(model(x), y, mask=keep)              # NaN in y or False in keep: left out

An unknown entry (``NaN`` or ``-1`` in the targets, or ``False`` in the optional bool ``mask``;
both combine) is left out: ``"mean"`` averages the kept entries only, the gradient there is 0,
and :func:`label_counts` counts each label over its known entries.

A multi-class-only loss asked for a multi-label task (or the reverse) is refused by name.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from lmfloss.losses import functional, multilabel
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
from lmfloss.losses.multilabel import check_label_counts, label_counts, multilabel_margins
from lmfloss.losses.multilabel_modules import (
    ASLLoss,
    BCELoss,
    LDAMMultiLabelLoss,
    LMFMultiLabelLoss,
    MultiLabelLoss,
    SigmoidFocalLoss,
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
    "MULTILABEL_LOSSES",
    "TASKS",
    "ASLLoss",
    "BCELoss",
    "LDAMMultiLabelLoss",
    "LMFMultiLabelLoss",
    "MultiLabelLoss",
    "SigmoidFocalLoss",
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
    "check_label_counts",
    "label_counts",
    "losses_for",
    "multilabel",
    "multilabel_margins",
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


MULTILABEL_LOSSES: dict[str, type[MultiLabelLoss]] = {
    cls.name: cls for cls in (BCELoss, SigmoidFocalLoss, ASLLoss, LDAMMultiLabelLoss, LMFMultiLabelLoss)
}
"""Loss name -> class for multi-label tasks; every class is built as ``cls(label_counts, **params)``."""

_REGISTRIES: dict[str, dict[str, type]] = {"multiclass": LOSSES, "multilabel": MULTILABEL_LOSSES}
TASKS = tuple(_REGISTRIES)
"""The loss families (``lmfloss.task`` names each task's; this library needs nothing but torch)."""


def losses_for(task: str = "multiclass") -> dict[str, type]:
    """The registry of ``task`` (``"multiclass"``: :data:`LOSSES`; ``"multilabel"``:
    :data:`MULTILABEL_LOSSES`).

    Raises:
        ValueError: an unknown task.
    """
    if task not in _REGISTRIES:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return _REGISTRIES[task]


def _get(name: str, task: str = "multiclass") -> type:
    registry = losses_for(task)
    try:
        return registry[name]
    except (KeyError, TypeError):
        pass
    other = "multilabel" if task == "multiclass" else "multiclass"
    if isinstance(name, str) and name in _REGISTRIES[other]:
        raise ValueError(
            f"loss {name!r} is for {other.replace('multi', 'multi-')} tasks only; for a "
            f"{task.replace('multi', 'multi-')} task use one of {sorted(registry)}"
        ) from None
    raise ValueError(f"unknown loss {name!r}; valid names are {sorted(registry)}"
                     + ("" if task == "multiclass" else f" (task {task!r})")) from None


def loss_parameters(name: str, task: str = "multiclass") -> dict[str, Any]:
    """The keyword parameters of loss ``name`` of ``task`` with their defaults (the counts excluded).

    Raises:
        ValueError: unknown ``name`` (or a loss of the other task).
    """
    signature = inspect.signature(_get(name, task).__init__)
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "validate_args"
    }


def resolved_loss_params(name: str, params: dict[str, Any] | None = None, task: str = "multiclass") -> dict[str, Any]:
    """Every keyword parameter of loss ``name`` (``reduction`` aside): ``params`` where given,
    the default otherwise -- what a run was trained with, written into its ``report.json``
    so that readers need neither torch nor this library's version of the defaults.

    Raises:
        ValueError: unknown ``name`` or parameter.
    """
    params = dict(params or {})
    defaults = loss_parameters(name, task)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for loss {name!r}; valid parameters are {sorted(defaults)}"
        )
    merged = {k: params.get(k, v) for k, v in defaults.items() if k != "reduction"}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in merged.items()}


def build_loss(name: str, class_counts: Any, *, task: str = "multiclass", validate_args: bool = True,
               **params: Any) -> nn.Module:
    """Build the loss called ``name`` for a training set with ``class_counts``.

    Args:
        name: a key of :data:`LOSSES` (``"lmf"``, ``"ldam"``, ``"focal"``, ``"ce"``, ...), or of
            :data:`MULTILABEL_LOSSES` with ``task="multilabel"``.
        class_counts: multi-class: ``[K]`` training samples per class, **in class-index order**
            -- ``class_counts[j]`` counts the targets equal to ``j``. Build it with
            :func:`class_counts` from the training targets; a mapping is rejected because
            its order would be a guess. Multi-label: the ``[L, 2]`` table of training
            ``(negatives, positives)`` per label (:func:`label_counts`).
        task: ``"multiclass"`` (default) or ``"multilabel"``.
        validate_args: check every batch's targets (a host read per call, which makes the
            CPU wait for the GPU on CUDA); a training loop whose labels were validated once
            passes ``False`` (torchmetrics' convention).
        **params: the loss's keyword options (see :func:`loss_parameters` or ``lmfloss losses``).

    Returns:
        An ``nn.Module`` called as ``loss(logits[N, K], target[N])`` (multi-label:
        ``loss(logits[N, L], target[N, L])``) with ``set_epoch(epoch)``.

    Raises:
        ValueError: unknown name (lists the valid ones), a loss of the other task, unknown
            parameter (lists the valid ones), bad counts or a bad parameter value.
    """
    cls = _get(name, task)
    valid = loss_parameters(name, task)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for loss {name!r}; valid parameters are {sorted(valid)}"
        )
    return cls(class_counts, validate_args=validate_args, **params)
