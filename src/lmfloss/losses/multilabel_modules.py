"""Thin ``nn.Module`` wrappers of :mod:`lmfloss.losses.multilabel`.

Every multi-label loss is constructed as ``Loss(label_counts, **options)`` with
``label_counts`` the ``[L, 2]`` training table of ``(negatives, positives)`` per label
(:func:`lmfloss.losses.label_counts`, over each label's known entries), is called as
``loss(logits[N, L], target[N, L], mask=None)`` and has ``set_epoch(epoch)`` (a no-op: no
multi-label loss has a schedule). Margins and weights are derived once in the constructor and
kept as buffers; ``forward`` never assigns to ``self``.

Unknown entries: ``target`` may hold ``NaN`` (or ``-1``) where a label is unknown, and
``mask`` (bool ``[N, L]``, ``True`` = use) drops entries too; an entry is kept only where the
mask is True *and* the target is known, and ``"mean"`` averages over the kept entries only
(:mod:`lmfloss.losses.multilabel`).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from lmfloss.losses import multilabel as ML
from lmfloss.losses.functional import check_non_negative, check_reduction

__all__ = [
    "ASLLoss",
    "BCELoss",
    "LDAMMultiLabelLoss",
    "LMFMultiLabelLoss",
    "MultiLabelLoss",
    "SigmoidFocalLoss",
]

PosWeightSpec = str | Sequence[float] | torch.Tensor | None
"""``"counts"`` (``negatives / positives`` per label), ``L`` numbers, or ``None``."""


class MultiLabelLoss(nn.Module):
    """Base class: holds ``label_counts`` (int64 buffer ``[L, 2]``: negatives, positives),
    ``reduction`` and ``set_epoch``.

    Args:
        label_counts: ``[L, 2]`` training ``(negatives, positives)`` per label, label-index order.
        reduction: ``"mean"`` (over the kept terms: all ``N x L`` when every entry is known)
            | ``"sum"`` | ``"none"``.
        validate_args: check every batch's targets are 0/1 (one host read per call).

    Raises:
        ValueError: a malformed table, or a label without positive (or negative) training images.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    task: ClassVar[str] = "multilabel"

    def __init__(self, label_counts: Any, *, reduction: str = "mean", validate_args: bool = True) -> None:
        super().__init__()
        table = ML.check_label_counts(label_counts)
        self.reduction = check_reduction(reduction)
        self.validate_args = bool(validate_args)
        self.num_labels = len(table)
        self.register_buffer("label_counts", torch.tensor(table, dtype=torch.int64))

    @property
    def counts(self) -> list[list[int]]:
        """``label_counts`` as ``[[negatives, positives], ...]``."""
        return [[int(a), int(b)] for a, b in self.label_counts.tolist()]

    def set_epoch(self, epoch: int) -> None:
        """A no-op (no multi-label loss has a schedule); checks ``epoch`` like the multi-class losses."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")

    def _pos_weight(self, spec: PosWeightSpec) -> torch.Tensor | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            if spec != "counts":
                raise ValueError(f"pos_weight must be 'counts', {self.num_labels} numbers or None, got {spec!r}")
            table = self.label_counts.to(torch.float64)
            return (table[:, 0] / table[:, 1]).to(torch.float32)
        try:
            w = torch.as_tensor(spec, dtype=torch.float64).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"pos_weight must be 'counts', {self.num_labels} numbers or None, got {spec!r}") from None
        if w.numel() != self.num_labels or not torch.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"pos_weight must be {self.num_labels} finite numbers >= 0, got {w.tolist()!r}")
        return w.to(torch.float32)

    def extra_repr(self) -> str:
        return f"num_labels={self.num_labels}, reduction={self.reduction!r}"


class BCELoss(MultiLabelLoss):
    """Binary cross-entropy per label with ``pos_weight = negatives / positives`` from the counts.

    Identical to ``nn.BCEWithLogitsLoss(pos_weight=w)``; ``pos_weight=None`` is plain BCE.

    Args:
        label_counts: ``[L, 2]`` (negatives, positives) per label.
        pos_weight: ``"counts"`` (default), ``L`` numbers or ``None``.

    Example (with no pos_weight it is PyTorch's BCE):
        >>> import torch
        >>> logits, target = torch.randn(4, 3), torch.tensor([[1., 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
        >>> loss = BCELoss([[3, 1], [2, 2], [3, 1]], pos_weight=None)
        >>> torch.allclose(loss(logits, target), torch.nn.functional.binary_cross_entropy_with_logits(logits, target))
        True
    """

    name = "bce"
    description = "binary cross-entropy per label, pos_weight = negatives/positives, mean over N x L"

    def __init__(self, label_counts: Any, *, pos_weight: PosWeightSpec = "counts", reduction: str = "mean",
                 validate_args: bool = True) -> None:
        super().__init__(label_counts, reduction=reduction, validate_args=validate_args)
        self.register_buffer("pos_weight", self._pos_weight(pos_weight))

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return ML.bce_loss(logits, target, pos_weight=self.pos_weight, reduction=self.reduction, mask=mask,
                           validate_args=self.validate_args)


class SigmoidFocalLoss(MultiLabelLoss):
    """Sigmoid focal loss (Lin et al. 2017): ``-α_t (1 - p_t)^γ log p_t`` per label.

    Args:
        label_counts: ``[L, 2]`` (negatives, positives) per label (checked; the loss itself
            does not use them).
        gamma: ``γ`` (Lin et al.: 2).
        alpha: ``α`` of the positives, ``1 - α`` of the negatives (Lin et al.: 0.25); ``None``: none.
    """

    name = "focal"
    description = "sigmoid focal loss (Lin et al.), gamma=2, alpha=0.25, mean over N x L"

    def __init__(self, label_counts: Any, *, gamma: float = 2.0, alpha: float | None = 0.25,
                 reduction: str = "mean", validate_args: bool = True) -> None:
        super().__init__(label_counts, reduction=reduction, validate_args=validate_args)
        self.gamma = check_non_negative("gamma", gamma)
        self.alpha = ML._check_probability("alpha", alpha)

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return ML.sigmoid_focal_loss(logits, target, gamma=self.gamma, alpha=self.alpha,
                                     reduction=self.reduction, mask=mask,
                                     validate_args=self.validate_args)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma}, alpha={self.alpha}"


class ASLLoss(MultiLabelLoss):
    """Asymmetric loss (Ridnik et al., ICCV 2021) with the paper's ``γ- = 4, γ+ = 0, clip = 0.05``.

    Args:
        label_counts: ``[L, 2]`` (checked; not used by the loss).
        gamma_neg: focusing of the negatives (4).
        gamma_pos: focusing of the positives (0; timm's class default is 1).
        clip: probability shift ``m`` of the negatives (0.05).
        eps: clamp of the probabilities inside ``log`` (1e-8, their code).
    """

    name = "asl"
    description = "asymmetric loss (Ridnik et al. 2021), gamma_neg=4, gamma_pos=0, clip=0.05, mean over N x L"

    def __init__(self, label_counts: Any, *, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05,
                 eps: float = 1e-8, reduction: str = "mean", validate_args: bool = True) -> None:
        super().__init__(label_counts, reduction=reduction, validate_args=validate_args)
        self.gamma_neg = check_non_negative("gamma_neg", gamma_neg)
        self.gamma_pos = check_non_negative("gamma_pos", gamma_pos)
        self.clip = check_non_negative("clip", clip)
        if self.clip >= 1:
            raise ValueError(f"clip must be in [0, 1), got {clip!r}")
        self.eps = check_non_negative("eps", eps)

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return ML.asl_loss(logits, target, gamma_neg=self.gamma_neg, gamma_pos=self.gamma_pos, clip=self.clip,
                           eps=self.eps, reduction=self.reduction, mask=mask, validate_args=self.validate_args)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma_neg={self.gamma_neg}, gamma_pos={self.gamma_pos}, clip={self.clip}"


class _MarginMixin:
    def _init_margins(self, max_margin: float, negative_margins: bool) -> None:
        self.max_margin = check_non_negative("max_margin", max_margin)
        self.negative_margins = bool(negative_margins)
        pos, neg = ML.multilabel_margins(self.counts, self.max_margin, negative_margins=self.negative_margins)
        self.register_buffer("pos_margins", pos.to(torch.float32))
        self.register_buffer("neg_margins", neg.to(torch.float32) if self.negative_margins else None)


class LDAMMultiLabelLoss(_MarginMixin, MultiLabelLoss):
    """LDAM for multi-label: BCE on ``s · (z - y ⊙ m+)``, ``m+_l ∝ positives_l^(-1/4)``, largest 0.5.

    Args:
        label_counts: ``[L, 2]`` (negatives, positives) per label.
        max_margin: the largest margin (Cao et al.: 0.5).
        scale: ``s`` (Cao et al.: 30).
        negative_margins: also give each label's negatives the margin of their count (off).
        pos_weight: BCE ``pos_weight``: ``None`` (default), ``"counts"`` or ``L`` numbers.

    Sources: the margins' form and 0.5, 30 are Cao et al.'s; applying them to the positive
    logits of a sigmoid per label is this library's transfer (no paper defines multi-label LDAM).

    Example (zero margins, scale 1: BCE):
        >>> import torch
        >>> logits, target = torch.randn(4, 2), torch.tensor([[1., 0], [0, 1], [1, 1], [0, 0]])
        >>> loss = LDAMMultiLabelLoss([[2, 2], [2, 2]], max_margin=0.0, scale=1.0)
        >>> torch.allclose(loss(logits, target), torch.nn.functional.binary_cross_entropy_with_logits(logits, target))
        True
    """

    name = "ldam"
    description = "LDAM for multi-label: BCE on s*(z - y*m), m_l ~ positives_l^(-1/4) on positive logits only"

    def __init__(self, label_counts: Any, *, max_margin: float = 0.5, scale: float = 30.0,
                 negative_margins: bool = False, pos_weight: PosWeightSpec = None, reduction: str = "mean",
                 validate_args: bool = True) -> None:
        super().__init__(label_counts, reduction=reduction, validate_args=validate_args)
        self._init_margins(max_margin, negative_margins)
        self.scale = check_non_negative("scale", scale)
        self.register_buffer("pos_weight", self._pos_weight(pos_weight))

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return ML.ldam_multilabel_loss(logits, target, pos_margins=self.pos_margins, neg_margins=self.neg_margins,
                                       scale=self.scale, pos_weight=self.pos_weight,
                                       reduction=self.reduction, mask=mask,
                                       validate_args=self.validate_args)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, max_margin={self.max_margin}, scale={self.scale}, "
                f"negative_margins={self.negative_margins}")


class LMFMultiLabelLoss(_MarginMixin, MultiLabelLoss):
    """LMF for multi-label: ``alpha · LDAM + beta · focal`` on the same logits (Eq. 8).

    Args:
        label_counts: ``[L, 2]`` (negatives, positives) per label.
        alpha: weight of the LDAM term (1).
        beta: weight of the focal term (1).
        gamma: focal ``γ`` (the paper: 1.5).
        focal_alpha: focal ``α`` of the positives (``None``: none; see the module docstring).
        max_margin, scale, negative_margins, pos_weight: the LDAM term's (:class:`LDAMMultiLabelLoss`).

    Example (beta = 0 is LDAM; alpha = 0 is the focal term):
        >>> import torch
        >>> logits, target = torch.randn(4, 2), torch.tensor([[1., 0], [0, 1], [1, 1], [0, 0]])
        >>> counts = [[3, 1], [1, 3]]
        >>> bool(torch.allclose(LMFMultiLabelLoss(counts, beta=0.0)(logits, target),
        ...                     LDAMMultiLabelLoss(counts)(logits, target)))
        True
        >>> bool(torch.allclose(LMFMultiLabelLoss(counts, alpha=0.0)(logits, target),
        ...                     SigmoidFocalLoss(counts, gamma=1.5, alpha=None)(logits, target)))
        True
    """

    name = "lmf"
    description = "LMF for multi-label: alpha*LDAM + beta*sigmoid focal (gamma 1.5) on the same logits"

    def __init__(self, label_counts: Any, *, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.5,
                 focal_alpha: float | None = None, max_margin: float = 0.5, scale: float = 30.0,
                 negative_margins: bool = False, pos_weight: PosWeightSpec = None, reduction: str = "mean",
                 validate_args: bool = True) -> None:
        super().__init__(label_counts, reduction=reduction, validate_args=validate_args)
        self.alpha = check_non_negative("alpha", alpha)
        self.beta = check_non_negative("beta", beta)
        self.gamma = check_non_negative("gamma", gamma)
        self.focal_alpha = ML._check_probability("focal_alpha", focal_alpha)
        self._init_margins(max_margin, negative_margins)
        self.scale = check_non_negative("scale", scale)
        self.register_buffer("pos_weight", self._pos_weight(pos_weight))

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return ML.lmf_multilabel_loss(
            logits, target, pos_margins=self.pos_margins, neg_margins=self.neg_margins, alpha=self.alpha,
            beta=self.beta, gamma=self.gamma, focal_alpha=self.focal_alpha, scale=self.scale,
            pos_weight=self.pos_weight, reduction=self.reduction, mask=mask, validate_args=self.validate_args,
        )

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, "
                f"max_margin={self.max_margin}, scale={self.scale}, negative_margins={self.negative_margins}")
