"""Thin ``nn.Module`` wrappers: they validate options, derive per-class tensors from
``class_counts`` once, keep them as buffers (so ``.to(device)`` / ``.double()`` move them) and
call :mod:`lmfloss.losses.functional`.

Every loss is constructed as ``Loss(class_counts, **options)``, is called like
``nn.CrossEntropyLoss`` (``loss(logits[N, K], target[N])``) and has ``set_epoch(epoch)``
(a no-op except for deferred re-weighting in :class:`LDAMLoss` and :class:`LMFLoss`).
``forward`` never assigns to ``self``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from torch import nn

from lmfloss.losses import functional as LF
from lmfloss.losses.weights import (
    ClassWeights,
    WeightSpec,
    bwcce_weights,
    check_class_counts,
    inverse_frequency_weights,
    log_prior,
)

__all__ = [
    "BWCCELoss",
    "ClassBalancedLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "ImbalanceLoss",
    "LDAMLoss",
    "LMFLoss",
    "LogitAdjustedLoss",
    "WeightedCrossEntropyLoss",
]


def _f32(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.to(torch.float32)


class ImbalanceLoss(nn.Module):
    """Base class: holds ``class_counts`` (int64 buffer ``[K]``), ``reduction`` and ``set_epoch``.

    Args:
        class_counts: ``[K]`` training samples per class **in class-index order** (see
            :func:`lmfloss.losses.class_counts`); every count must be >= 1.
        reduction: ``"mean" | "sum" | "none"``.
        validate_args: check every batch's targets (one host read per call; on CUDA the
            CPU then waits for the GPU). A training engine that validated its labels once
            passes ``False``; users calling the loss by hand keep the check.

    Raises:
        ValueError: bad counts (a mapping, fewer than 2 classes, a count <= 0) or reduction.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    task: ClassVar[str] = "multiclass"

    def __init__(self, class_counts: Sequence[int], *, reduction: str = "mean", validate_args: bool = True) -> None:
        super().__init__()
        counts = check_class_counts(class_counts)
        self.reduction = LF.check_reduction(reduction)
        self.validate_args = bool(validate_args)
        self.num_classes = len(counts)
        self.register_buffer("class_counts", torch.tensor(counts, dtype=torch.int64))

    @property
    def counts(self) -> list[int]:
        """``class_counts`` as a list of ints."""
        return [int(c) for c in self.class_counts.tolist()]

    def set_epoch(self, epoch: int) -> None:
        """Tell the loss which epoch starts; a no-op unless the loss has a schedule.

        Raises:
            ValueError: ``epoch`` is not an int >= 0.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, reduction={self.reduction!r}"


class CrossEntropyLoss(ImbalanceLoss):
    """Categorical cross-entropy, Eq. 1 of Sadi et al.: plain mean of ``-log p_{y_i}``.

    ``class_counts`` is accepted (and checked against the logits) for a uniform interface.
    """

    name = "ce"
    description = "cross-entropy (Eq. 1), no class weighting"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim == 2 and logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits have {logits.shape[1]} classes (shape {tuple(logits.shape)}) but "
                f"class_counts has {self.num_classes}"
            )
        return LF.cross_entropy(logits, target, reduction=self.reduction, validate_args=self.validate_args)


class WeightedCrossEntropyLoss(ImbalanceLoss):
    """Weighted cross-entropy, Eq. 2, with ``w_j ∝ 1/n_j`` (normalised to sum to ``K``).

    ``"mean"`` is PyTorch's weighted mean ``Σ w_{y_i} ℓ_i / Σ w_{y_i}`` — identical to
    ``nn.CrossEntropyLoss(weight=w)``.
    """

    name = "wce"
    description = "weighted cross-entropy (Eq. 2), w_j ∝ 1/n_j, weighted mean"

    def __init__(self, class_counts: Sequence[int], *, reduction: str = "mean", validate_args: bool = True) -> None:
        super().__init__(class_counts, reduction=reduction, validate_args=validate_args)
        self.register_buffer("weight", _f32(inverse_frequency_weights(self.counts)))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return LF.cross_entropy(logits, target, weight=self.weight, reduction=self.reduction,
                                validate_args=self.validate_args)


class BWCCELoss(ImbalanceLoss):
    """Balanced weighted cross-entropy (ref. 29 of Sadi et al.): Eq. 2 with Eq. 3 weights.

    ``w_j = (1 - n_j/N) / (K - 1)``; ``"mean"`` is PyTorch's weighted mean. With two classes
    ``1 - n_j/N`` is proportional to ``1/n_j``, so on a binary task ``"mean"`` equals ``wce``.
    """

    name = "bwcce"
    description = "balanced weighted CE (Eqs. 2-3), w_j = (1 - n_j/N)/(K-1), weighted mean"

    def __init__(self, class_counts: Sequence[int], *, reduction: str = "mean", validate_args: bool = True) -> None:
        super().__init__(class_counts, reduction=reduction, validate_args=validate_args)
        self.register_buffer("weight", _f32(bwcce_weights(self.counts)))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return LF.cross_entropy(logits, target, weight=self.weight, reduction=self.reduction,
                                validate_args=self.validate_args)


class _DRWMixin:
    """Deferred re-weighting (Cao et al. 2019): class-balanced weights from ``drw_epoch`` on."""

    drw_epoch: int | None
    _drw_active: bool

    def _init_drw(self, drw_epoch: int | None, weights: ClassWeights) -> None:
        if drw_epoch is not None and (
            isinstance(drw_epoch, bool) or not isinstance(drw_epoch, numbers.Integral) or drw_epoch < 0
        ):
            raise ValueError(f"drw_epoch must be None or an int >= 0, got {drw_epoch!r}")
        self.drw_epoch = None if drw_epoch is None else int(drw_epoch)
        self.drw_beta = float(weights.cb_beta)
        drw_weight = weights.resolve("cb")  # validates drw_beta
        self.register_buffer("drw_weight", _f32(drw_weight) if drw_epoch is not None else None)
        self._drw_active = False

    def set_epoch(self, epoch: int) -> None:
        """Switch DRW weights on once ``epoch >= drw_epoch`` (no-op without ``drw_epoch``)."""
        super().set_epoch(epoch)  # type: ignore[misc]  # ImbalanceLoss validates the epoch
        self._drw_active = self.drw_epoch is not None and epoch >= self.drw_epoch

    @property
    def drw_active(self) -> bool:
        """Whether the class-balanced DRW weights are in use (set by ``set_epoch``)."""
        return self._drw_active


class LDAMLoss(_DRWMixin, ImbalanceLoss):
    """LDAM loss, Eq. 5 (Cao et al. 2019), as the authors' code computes it.

    ``ℓ_i = -w_{y_i} log softmax(s (z_i - m_{y_i} e_{y_i}))_{y_i}`` with Eq. 4 margins
    ``m_j = max_margin · n_j^{-1/4} / max_k n_k^{-1/4}``; ``"mean"`` is the weighted mean.

    Args:
        class_counts: ``[K]`` per-class training counts, class-index order.
        max_margin: margin of the rarest class (0.5).
        scale: ``s`` (30).
        class_weight: ``"margins"`` (the authors' code), ``None``, ``"inverse"``, ``"bwcce"``, ``"cb"``
            or ``K`` numbers.
        drw_epoch: deferred re-weighting (LDAM-DRW): from ``set_epoch(e)`` with
            ``e >= drw_epoch`` the class weights become class-balanced weights (β = ``drw_beta``).
            Epochs are 0-based, as ``lmfloss.train`` passes them (``set_epoch(0)`` before the
            first epoch) and as in Cao et al.'s code: ``drw_epoch=160`` re-weights from the
            161st epoch on. ``None`` (default) disables it.
        drw_beta: β of the DRW class-balanced weights (0.9999).
        reduction: ``"mean" | "sum" | "none"``.

    Sources of the defaults: the margins' form is Eq. 4; ``max_margin=0.5``, ``scale=30`` and
    weighting the LDAM term by the margins are the authors' code (``ldam_loss`` in their
    repository, following Cao et al.'s ``LDAMLoss(max_m=0.5, s=30)``); the paper states none
    of the three values. DRW is Cao et al.'s, off by default (this library's choice).

    Example (with zero margins, scale 1 and no class weights, LDAM is cross-entropy):
        >>> import torch
        >>> logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
        >>> ldam = LDAMLoss([5, 3, 2], max_margin=0.0, scale=1.0, class_weight=None)
        >>> torch.allclose(ldam(logits, target), torch.nn.functional.cross_entropy(logits, target))
        True
    """

    name = "ldam"
    description = "LDAM (Eq. 5): CE on s*(z - m_y e_y), class weights = margins, weighted mean; DRW optional"

    def __init__(
        self,
        class_counts: Sequence[int],
        *,
        max_margin: float = 0.5,
        scale: float = 30.0,
        class_weight: WeightSpec = "margins",
        drw_epoch: int | None = None,
        drw_beta: float = 0.9999,
        reduction: str = "mean",
        validate_args: bool = True,
    ) -> None:
        super().__init__(class_counts, reduction=reduction, validate_args=validate_args)
        self.max_margin = LF.check_non_negative("max_margin", max_margin)
        self.scale = LF.check_non_negative("scale", scale)
        weights = ClassWeights(self.counts, max_margin=self.max_margin, cb_beta=drw_beta)
        self.register_buffer("margins", _f32(weights.margins))
        self.register_buffer("weight", _f32(weights.resolve(class_weight)))
        self._init_drw(drw_epoch, weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = self.drw_weight if self._drw_active else self.weight
        return LF.ldam_loss(
            logits, target, margins=self.margins, scale=self.scale, weight=weight,
            reduction=self.reduction, validate_args=self.validate_args,
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, max_margin={self.max_margin}, scale={self.scale}, "
            f"drw_epoch={self.drw_epoch}"
        )


class FocalLoss(ImbalanceLoss):
    """α-balanced focal loss, Eq. 7 (Lin et al. 2017), on the raw logits.

    ``ℓ_i = -α_{y_i} (1 - p_{y_i})^γ log p_{y_i}``; ``"mean"`` is the plain mean over the batch.

    Args:
        class_counts: ``[K]`` per-class training counts, class-index order.
        gamma: ``γ`` (the paper: 1.5).
        alpha: ``"margins"`` (the paper: Eq. 4 margins), ``None`` (textbook unweighted),
            ``"inverse"``, ``"bwcce"``, ``"cb"`` or ``K`` numbers.
        max_margin: ``max_margin`` of the margins used when ``alpha="margins"`` (0.5).
        reduction: ``"mean" | "sum" | "none"``.

    Sources of the defaults: Eq. 7, γ = 1.5 and α = the Eq. 4 margins are the paper's (the text
    after Eqs. 6 and 7); the margins' scale (``max_margin`` 0.5) is the authors' code. Lin et
    al.'s textbook variant is ``alpha=None``, ``gamma=2``.

    Example (with γ = 0 and no α, focal loss is cross-entropy):
        >>> import torch
        >>> logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
        >>> focal = FocalLoss([5, 3, 2], gamma=0.0, alpha=None)
        >>> torch.allclose(focal(logits, target), torch.nn.functional.cross_entropy(logits, target))
        True
    """

    name = "focal"
    description = "focal loss (Eq. 7) on raw logits, alpha = margins, plain mean"

    def __init__(
        self,
        class_counts: Sequence[int],
        *,
        gamma: float = 1.5,
        alpha: WeightSpec = "margins",
        max_margin: float = 0.5,
        reduction: str = "mean",
        validate_args: bool = True,
    ) -> None:
        super().__init__(class_counts, reduction=reduction, validate_args=validate_args)
        self.gamma = LF.check_non_negative("gamma", gamma)
        weights = ClassWeights(self.counts, max_margin=max_margin)
        self.register_buffer("alpha", _f32(weights.resolve(alpha, "alpha")))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return LF.focal_loss(
            logits, target, gamma=self.gamma, alpha=self.alpha, reduction=self.reduction,
            validate_args=self.validate_args,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma}"


class LMFLoss(_DRWMixin, ImbalanceLoss):
    """Large margin aware focal loss, Eq. 8 of Sadi et al.: ``alpha · LDAM + beta · focal``.

    Both terms on the same logits: LDAM (margins, ``scale``, ``class_weight``, weighted mean)
    and focal (``gamma``, ``focal_alpha``, plain mean), exactly as :class:`LDAMLoss` and
    :class:`FocalLoss` with the same options.

    Args:
        class_counts: ``[K]`` per-class training counts, class-index order.
        alpha: weight of the LDAM term (1.0).
        beta: weight of the focal term (1.0).
        gamma: focal ``γ`` (1.5).
        max_margin: margin of the rarest class (0.5).
        scale: LDAM ``s`` (30).
        class_weight: LDAM class weights: ``"margins"`` (the authors' code), ``None``, ``"inverse"``,
            ``"bwcce"``, ``"cb"`` or ``K`` numbers.
        focal_alpha: focal class factors, same choices (the paper: ``"margins"``).
        drw_epoch: deferred re-weighting: from ``set_epoch(e)`` with ``e >= drw_epoch`` (0-based
            epochs, as :class:`LDAMLoss`) both the LDAM class weights and the focal α become
            class-balanced weights (β = ``drw_beta``). ``None`` (default) disables it.
        drw_beta: β of the DRW weights (0.9999).
        reduction: ``"mean" | "sum" | "none"``.

    Sources of the defaults: Eq. 8's form ``alpha · LDAM + beta · focal`` and γ = 1.5 are the
    paper's; ``alpha = beta = 1`` is the authors' configuration file (the paper tunes them per
    dataset and model, Table 6); scale 30, max margin 0.5 and the margins as LDAM class
    weights and focal α are the authors' code. DRW is off by default (this library's choice).

    Example (LMF with beta = 0 is LDAM; with alpha = 0 it is the focal loss):
        >>> import torch
        >>> logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
        >>> counts = [5, 3, 2]
        >>> bool(torch.allclose(LMFLoss(counts, beta=0.0)(logits, target), LDAMLoss(counts)(logits, target)))
        True
        >>> bool(torch.allclose(LMFLoss(counts, alpha=0.0)(logits, target), FocalLoss(counts)(logits, target)))
        True
    """

    name = "lmf"
    description = "LMF (Eq. 8): alpha*LDAM + beta*focal on the same logits; DRW optional"

    def __init__(
        self,
        class_counts: Sequence[int],
        *,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 1.5,
        max_margin: float = 0.5,
        scale: float = 30.0,
        class_weight: WeightSpec = "margins",
        focal_alpha: WeightSpec = "margins",
        drw_epoch: int | None = None,
        drw_beta: float = 0.9999,
        reduction: str = "mean",
        validate_args: bool = True,
    ) -> None:
        super().__init__(class_counts, reduction=reduction, validate_args=validate_args)
        self.alpha = LF.check_non_negative("alpha", alpha)
        self.beta = LF.check_non_negative("beta", beta)
        self.gamma = LF.check_non_negative("gamma", gamma)
        self.max_margin = LF.check_non_negative("max_margin", max_margin)
        self.scale = LF.check_non_negative("scale", scale)
        weights = ClassWeights(self.counts, max_margin=self.max_margin, cb_beta=drw_beta)
        self.register_buffer("margins", _f32(weights.margins))
        self.register_buffer("weight", _f32(weights.resolve(class_weight)))
        self.register_buffer("focal_alpha", _f32(weights.resolve(focal_alpha, "focal_alpha")))
        self._init_drw(drw_epoch, weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self._drw_active:
            weight, focal_alpha = self.drw_weight, self.drw_weight
        else:
            weight, focal_alpha = self.weight, self.focal_alpha
        return LF.lmf_loss(
            logits, target, margins=self.margins, alpha=self.alpha, beta=self.beta,
            gamma=self.gamma, scale=self.scale, weight=weight, focal_alpha=focal_alpha,
            reduction=self.reduction, validate_args=self.validate_args,
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, "
            f"max_margin={self.max_margin}, scale={self.scale}, drw_epoch={self.drw_epoch}"
        )


class ClassBalancedLoss(ImbalanceLoss):
    """Class-balanced loss by the effective number of samples (Cui et al. 2019, ref. 24).

    ``w_j = (1-β)/(1-β^{n_j})`` normalised to sum to ``K``, applied to CE or softmax focal
    loss; ``"mean"`` is the plain mean ``(1/N) Σ w_{y_i} L_i`` as in Cui et al.

    Args:
        class_counts: ``[K]`` per-class training counts, class-index order.
        beta: β in ``[0, 1)`` (0.9999).
        base: ``"ce"`` or ``"focal"``.
        gamma: focal γ, used with ``base="focal"`` (1.5, as the paper's focal loss).
        reduction: ``"mean" | "sum" | "none"``.
    """

    name = "cb"
    description = "class-balanced (Cui et al. 2019): effective-number weights on CE or focal, plain mean"

    def __init__(
        self,
        class_counts: Sequence[int],
        *,
        beta: float = 0.9999,
        base: Literal["ce", "focal"] = "ce",
        gamma: float = 1.5,
        reduction: str = "mean",
        validate_args: bool = True,
    ) -> None:
        super().__init__(class_counts, reduction=reduction, validate_args=validate_args)
        if base not in ("ce", "focal"):
            raise ValueError(f"base must be 'ce' or 'focal', got {base!r}")
        self.base = base
        self.beta = float(beta) if isinstance(beta, numbers.Real) else beta
        self.gamma = LF.check_non_negative("gamma", gamma)
        self.register_buffer("weight", _f32(ClassWeights(self.counts, cb_beta=beta).resolve("cb")))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return LF.class_balanced_loss(
            logits, target, weight=self.weight, base=self.base, gamma=self.gamma,
            reduction=self.reduction, validate_args=self.validate_args,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta}, base={self.base!r}, gamma={self.gamma}"


class LogitAdjustedLoss(ImbalanceLoss):
    """Logit-adjusted CE (Menon et al. 2021) = balanced softmax (Ren et al. 2020) at ``tau=1``.

    ``ℓ_i = -log softmax(z_i + τ log π)_{y_i}``, ``π_j = n_j/N``; plain mean.

    Args:
        class_counts: ``[K]`` per-class training counts, class-index order.
        tau: τ (1.0).
        reduction: ``"mean" | "sum" | "none"``.
    """

    name = "logit-adjusted"
    description = "logit-adjusted CE / balanced softmax: CE on z + tau*log(prior), plain mean"

    def __init__(
        self, class_counts: Sequence[int], *, tau: float = 1.0, reduction: str = "mean", validate_args: bool = True
    ) -> None:
        super().__init__(class_counts, reduction=reduction, validate_args=validate_args)
        self.tau = LF.check_non_negative("tau", tau)
        self.register_buffer("log_prior", _f32(log_prior(self.counts)))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return LF.logit_adjusted_loss(
            logits, target, log_prior=self.log_prior, tau=self.tau, reduction=self.reduction,
            validate_args=self.validate_args,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau={self.tau}"
