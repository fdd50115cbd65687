"""Multi-label losses: one sigmoid per label, targets ``[N, L]`` of 0/1 (torch only).

A multi-label task gives every image any subset of ``L`` labels (a fundus photograph with
diabetic retinopathy *and* cataract; "no finding" is the empty set). Each label is a
binary decision on its own logit, so the imbalance is per label: ``label_counts[l] =
(negatives, positives)`` among the training images, a ``[L, 2]`` table (:func:`label_counts`).

Every function takes ``logits`` ``[N, L]`` (float16/bfloat16 are upcast to float32, as
under AMP) and ``target`` ``[N, L]`` of 0/1 (float, int or bool), and ``reduction`` in
``"mean" | "sum" | "none"``. ``"mean"`` is the plain mean over the kept terms -- all ``N x L``
when every entry is known, as ``nn.BCEWithLogitsLoss`` and torchvision's
``sigmoid_focal_loss`` -- so the loss does not grow with the batch size (ASL's reference
code sums over the batch; not here). ``"none"`` returns the ``[N, L]`` terms.

Unknown entries (CheXpert's U-Ignore, a finding a dataset does not annotate) are left out:
a target may be ``NaN`` (what :meth:`lmfloss.task.MultiLabel.loss_target` makes of the
label array's ``-1``) or ``-1``, and every loss takes an optional ``mask`` (bool ``[N, L]``,
``True`` = use). The two combine -- an entry is **kept only where the mask is True and the
target is known**; neither overrides the other. Then ``"mean"`` = (sum of the kept terms) /
(number of kept entries), and ``0`` when nothing is kept (a batch of unknowns adds nothing,
its gradient is 0); ``"sum"`` sums the kept terms; ``"none"`` gives ``0`` at every dropped
entry. The value and the gradient at a dropped entry are exactly 0 (the target is replaced
before any arithmetic, so no NaN reaches the graph). Counts -- margins and ``pos_weight`` --
come from the kept entries too: :func:`label_counts` counts each label over its known
entries.

What comes from which paper, and what is this library's choice:

* ``bce``: binary cross-entropy with ``pos_weight_l = negatives_l / positives_l`` from the
  training counts (PyTorch's ``pos_weight``; the usual re-weighting of multi-label
  baselines, e.g. the CheXpert/NIH benchmarks). ``pos_weight=None`` is plain BCE.
* ``focal``: the sigmoid focal loss of Lin et al. (ICCV 2017, Eq. 5),
  ``-α_t (1 - p_t)^γ log p_t`` with ``α_t = α`` for positives and ``1 - α`` for negatives;
  defaults ``γ = 2``, ``α = 0.25`` are Lin et al.'s (and torchvision's).
* ``asl``: the asymmetric loss of Ridnik et al. (ICCV 2021, Eqs. 5-6):
  ``L+ = (1-p)^γ+ log p``, ``L- = p_m^γ- log(1 - p_m)`` with ``p_m = max(p - m, 0)``; the
  paper's recommended ``γ- = 4``, ``γ+ = 0``, ``m = clip = 0.05`` (timm's class defaults to
  ``γ+ = 1``), ``log`` of probabilities clamped at ``eps = 1e-8`` as in their code.
* ``ldam`` for multi-label: Cao et al.'s margins (NeurIPS 2019), ``m_l ∝ n_l^(-1/4)`` with
  ``n_l`` the label's positive count and the largest margin ``max_margin = 0.5``,
  subtracted from the **positive** logits only, ``z' = z - y ⊙ m``, then BCE on ``s · z'``
  (``s = 30``). There is no peer-reviewed multi-label form of LDAM; this is the sound
  transfer (a positive must clear a larger margin the rarer its label, negatives are
  untouched), and this library's choice. Optionally (``negative_margins=True``) each label's
  negatives get the margin of their own count, ``z' = z - y ⊙ m+ + (1 - y) ⊙ m-`` with
  ``m-_l ∝ negatives_l^(-1/4)`` on the same scale: the rarer side of every binary decision
  gets the larger margin. Off by default.
* ``lmf`` for multi-label: Eq. 8 of Sadi et al., ``alpha · LDAM + beta · focal`` on the
  same logits, with the two terms above (the focal term with the paper's ``γ = 1.5`` and
  no ``α``: the paper's ``α`` were the multi-class margins; with sigmoids the margins already
  act through the LDAM term). This library's transfer of the paper's loss.

Numerics: ``log p`` and ``log(1 - p)`` come from ``logsigmoid`` (never ``log(sigmoid)``),
the focal factor ``(1 - p_t)^γ`` is ``exp(γ · logsigmoid(±z))``, so logits of ±1e4 stay
finite in value and gradient.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F

from lmfloss.losses.functional import check_non_negative, check_reduction, reduce_terms

__all__ = [
    "asl_loss",
    "bce_loss",
    "check_label_counts",
    "label_counts",
    "ldam_multilabel_loss",
    "lmf_multilabel_loss",
    "multilabel_margins",
    "sigmoid_focal_loss",
]

Reduction = Literal["mean", "sum", "none"]


# --------------------------------------------------------------------------- counts
def label_counts(targets: Any, num_labels: int | None = None) -> list[list[int]]:
    """``[L, 2]`` training counts ``(negatives, positives)`` per label, in label-index order,
    over each label's **known** entries (``-1`` or ``NaN`` is unknown and counted in neither).

    Args:
        targets: ``[N, L]`` of 0/1, with ``-1`` or ``NaN`` where unknown (tensor, array or
            nested sequence) -- the very targets the loss will see.
        num_labels: ``L`` (checked against the targets' width when given).

    Raises:
        ValueError: not ``[N, L]``, a value other than 0, 1, -1 and NaN, or a width other than ``num_labels``.
    """
    t = targets if isinstance(targets, torch.Tensor) else torch.as_tensor(
        targets if hasattr(targets, "__array__") else list(targets))
    if t.ndim != 2:
        raise ValueError(f"multi-label targets must have shape [N, L], got shape {tuple(t.shape)}")
    if num_labels is not None and t.shape[1] != num_labels:
        raise ValueError(f"targets have {t.shape[1]} labels, expected {num_labels}")
    t = t.to(torch.float64)
    unknown = torch.isnan(t) | (t == -1)
    bad = ~unknown & (t != 0) & (t != 1)
    if bool(bad.any()):
        raise ValueError(f"multi-label targets must be 0 or 1 (-1 or NaN where unknown), got {t[bad][0].item()!r}")
    positives = (t == 1).sum(dim=0)
    negatives = (t == 0).sum(dim=0)
    return [[int(n), int(p)] for n, p in zip(negatives.tolist(), positives.tolist())]


def check_label_counts(counts: Any, label_names: Sequence[str] | None = None) -> list[tuple[int, int]]:
    """Validate a ``[L, 2]`` table of ``(negatives, positives)`` and return it as int pairs.

    Every label needs at least one positive and one negative training image (counted over
    the known entries): a margin, a ``pos_weight`` or a decision needs both sides.

    Raises:
        ValueError: not ``[L, 2]`` whole non-negative numbers, ``L < 1``, or a label with no
            positive (or no negative) training image -- named.
    """
    if isinstance(counts, torch.Tensor):
        counts = counts.tolist()
    if isinstance(counts, (str, bytes)) or not isinstance(counts, Sequence) and not hasattr(counts, "__len__"):
        raise ValueError(f"label_counts must be a [L, 2] table of (negatives, positives), got {counts!r}")
    rows = [list(row) if isinstance(row, (Sequence, torch.Tensor)) or hasattr(row, "__len__") else row
            for row in counts]
    if not rows or any(not isinstance(r, list) or len(r) != 2 for r in rows):
        raise ValueError(
            f"label_counts must be a [L, 2] table of (negatives, positives) per label, got {counts!r}; "
            "build it with lmfloss.losses.label_counts(targets)"
        )
    out = []
    for j, (neg, pos) in enumerate(rows):
        name = repr(label_names[j]) if label_names is not None and j < len(label_names) else str(j)
        for value in (neg, pos):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
                    or float(value) != int(value) or value < 0:
                raise ValueError(f"label {name} has count {value!r}; counts must be whole numbers >= 0")
        if pos == 0 and neg == 0:
            raise ValueError(f"label {name} is unknown on every training image (no known positive or negative); "
                             "a loss cannot learn it -- drop the label or train on data that annotates it")
        if pos == 0:
            raise ValueError(f"label {name} has no positive training image ({int(neg)} negatives); every label "
                             "needs at least one -- drop the label or fix the split")
        if neg == 0:
            raise ValueError(f"label {name} is positive on every training image ({int(pos)}); it cannot be "
                             "learned as a decision -- drop the label")
        out.append((int(neg), int(pos)))
    return out


def multilabel_margins(counts: Any, max_margin: float = 0.5, *,
                       negative_margins: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(m+, m-)``, float64 ``[L]`` each: LDAM margins of every label's positives and negatives.

    ``m+_l = C · positives_l^(-1/4)`` and, with ``negative_margins``, ``m-_l = C ·
    negatives_l^(-1/4)`` (else 0); ``C`` makes the largest margin of either side
    ``max_margin`` (Cao et al.'s ``max_m = 0.5``).
    """
    max_margin = check_non_negative("max_margin", max_margin)
    table = torch.tensor(check_label_counts(counts), dtype=torch.float64)
    inv_neg, inv_pos = table[:, 0].pow(-0.25), table[:, 1].pow(-0.25)
    largest = torch.maximum(inv_pos.max(), inv_neg.max()) if negative_margins else inv_pos.max()
    scale = max_margin / largest
    return inv_pos * scale, (inv_neg * scale if negative_margins else torch.zeros_like(inv_neg))


# --------------------------------------------------------------------------- validation
def _prepare(logits: torch.Tensor, target: torch.Tensor, num_labels: int | None,
             validate_args: bool = True, mask: torch.Tensor | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(logits, target, keep)``: shapes checked (and, with ``validate_args``, that targets are
    0/1 or unknown: one host read); half-precision logits upcast to float32; targets in the
    logits' dtype with every dropped entry set to 0 (so no NaN enters the arithmetic); ``keep``
    the bool ``[N, L]`` of kept entries -- ``mask`` and a known target -- or ``None`` when every
    entry is kept by construction (integer targets, no mask)."""
    if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise ValueError(f"logits and target must be tensors, got {type(logits).__name__} and "
                         f"{type(target).__name__}")
    if logits.ndim != 2:
        raise ValueError(f"multi-label logits must have shape [N, L], got shape {tuple(logits.shape)}")
    if not logits.dtype.is_floating_point:
        raise ValueError(f"logits must be floating point, got dtype {logits.dtype}")
    if num_labels is not None and logits.shape[1] != num_labels:
        raise ValueError(f"logits have {logits.shape[1]} labels (shape {tuple(logits.shape)}) but "
                         f"label_counts has {num_labels}")
    if target.shape != logits.shape:
        raise ValueError(f"multi-label target must have the logits' shape {tuple(logits.shape)} "
                         f"([N, L] of 0/1), got shape {tuple(target.shape)}")
    if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool
                             or mask.shape != logits.shape):
        got = f"dtype {mask.dtype}, shape {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) \
            else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor of the logits' shape {tuple(logits.shape)} "
                         f"(True = use the entry), got {got}")
    known = None
    if target.dtype.is_floating_point:
        known = ~torch.isnan(target) & (target != -1)
    elif target.dtype != torch.bool:
        known = target != -1
    if validate_args and target.numel():
        bad = (target != 0) & (target != 1) if known is None else known & (target != 0) & (target != 1)
        if bool(bad.any()):
            raise ValueError("multi-label target must hold 0 or 1 (NaN or -1 where unknown), got "
                             f"{target[bad][0].item()!r}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    keep = known if mask is None else (mask if known is None else mask & known)
    y = target.to(logits.dtype)
    if keep is not None:
        y = torch.where(keep, y, torch.zeros((), dtype=y.dtype, device=y.device))
    return logits, y, keep


def _reduce_kept(terms: torch.Tensor, keep: torch.Tensor | None, reduction: str) -> torch.Tensor:
    """``reduction`` of the kept terms: dropped ones are 0 (value and gradient), and ``"mean"``
    divides by the number of kept entries (0 when none is kept)."""
    if keep is None:
        return reduce_terms(terms, reduction)
    terms = torch.where(keep, terms, torch.zeros((), dtype=terms.dtype, device=terms.device))
    if reduction == "mean":
        return terms.sum() / keep.sum().clamp(min=1).to(terms.dtype)
    return reduce_terms(terms, reduction)


def _per_label(t: Any, like: torch.Tensor, name: str) -> torch.Tensor | None:
    if t is None:
        return None
    t = torch.as_tensor(t)
    if t.shape != (like.shape[1],):
        raise ValueError(f"{name} must have shape [L] = [{like.shape[1]}], got shape {tuple(t.shape)}")
    return t.to(device=like.device, dtype=like.dtype)


def _length(t: Any) -> int | None:
    if t is None:
        return None
    return int(t.shape[0]) if isinstance(t, torch.Tensor) and t.ndim else (None if isinstance(t, torch.Tensor)
                                                                           else len(t))


def _check_probability(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    value = check_non_negative(name, value)
    if value > 1:
        raise ValueError(f"{name} must be in [0, 1] (or None), got {value!r}")
    return value


# ---------------------------------------------------------------------------- the losses
def _bce_terms(z: torch.Tensor, y: torch.Tensor, pos_weight: torch.Tensor | None) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(z, y, pos_weight=pos_weight, reduction="none")


def bce_loss(logits: torch.Tensor, target: torch.Tensor, *, pos_weight: torch.Tensor | None = None,
             reduction: Reduction = "mean", mask: torch.Tensor | None = None,
             validate_args: bool = True) -> torch.Tensor:
    """Binary cross-entropy per label, ``-[w_l y log p + (1 - y) log(1 - p)]`` with ``p = σ(z)``.

    ``pos_weight`` ``[L]`` multiplies the positive terms (PyTorch's ``pos_weight``); with every
    entry known the mean is over all ``N x L`` terms -- exactly ``nn.BCEWithLogitsLoss(pos_weight=w)``.

    ``mask``: bool ``[N, L]``, ``True`` = use; an entry counts only where the mask is True and
    the target is known (not NaN / -1). ``"mean"`` = sum of the kept terms / number of kept
    entries (0 if none); ``"none"`` is 0 at every dropped entry.
    """
    check_reduction(reduction)
    z, y, keep = _prepare(logits, target, _length(pos_weight), validate_args, mask)
    return _reduce_kept(_bce_terms(z, y, _per_label(pos_weight, z, "pos_weight")), keep, reduction)


def _focal_terms(z: torch.Tensor, y: torch.Tensor, gamma: float, alpha: float | None) -> torch.Tensor:
    # With s = z for negatives and -z for positives: -log p_t = softplus(s) and
    # 1 - p_t = sigmoid(s), so (1 - p_t)^γ = exp(γ logsigmoid(s)) -- finite everywhere.
    s = z * (1 - 2 * y)
    terms = F.softplus(s)
    if gamma != 0.0:
        terms = torch.exp(gamma * F.logsigmoid(s)) * terms
    if alpha is not None:
        terms = (alpha * y + (1 - alpha) * (1 - y)) * terms
    return terms


def sigmoid_focal_loss(logits: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0,
                       alpha: float | None = 0.25, reduction: Reduction = "mean",
                       mask: torch.Tensor | None = None, validate_args: bool = True) -> torch.Tensor:
    """Sigmoid focal loss, Lin et al. 2017 (Eq. 5): ``-α_t (1 - p_t)^γ log p_t`` per label.

    ``p_t = p`` for positives and ``1 - p`` for negatives; ``α_t = α`` for positives and
    ``1 - α`` for negatives (``alpha=None``: no α). Plain mean over the kept terms. With ``γ = 0``
    and no ``α`` this is BCE. Defaults ``γ = 2``, ``α = 0.25``: Lin et al.'s (torchvision's).

    ``mask``: bool ``[N, L]``, ``True`` = use; an entry counts only where the mask is True and
    the target is known (not NaN / -1). ``"mean"`` = sum of the kept terms / number of kept
    entries (0 if none); ``"none"`` is 0 at every dropped entry.
    """
    check_reduction(reduction)
    gamma = check_non_negative("gamma", gamma)
    alpha = _check_probability("alpha", alpha)
    z, y, keep = _prepare(logits, target, None, validate_args, mask)
    return _reduce_kept(_focal_terms(z, y, gamma, alpha), keep, reduction)


def asl_loss(logits: torch.Tensor, target: torch.Tensor, *, gamma_neg: float = 4.0, gamma_pos: float = 0.0,
             clip: float = 0.05, eps: float = 1e-8, reduction: Reduction = "mean",
             mask: torch.Tensor | None = None, validate_args: bool = True) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al., ICCV 2021, Eqs. 5-6).

    ``L+ = -(1 - p)^γ+ log(max(p, eps))`` for positives,
    ``L- = -p_m^γ- log(max(1 - p_m, eps))`` for negatives, with the shifted probability
    ``p_m = max(p - clip, 0)`` (``1 - p_m = min(1 - p + clip, 1)``, their code). Computed in
    float32 even under AMP; plain mean over the kept terms (their code sums over the batch).
    With ``γ+ = γ- = 0`` and ``clip = 0`` this is BCE (up to the ``eps`` clamp).

    ``mask``: bool ``[N, L]``, ``True`` = use; an entry counts only where the mask is True and
    the target is known (not NaN / -1). ``"mean"`` = sum of the kept terms / number of kept
    entries (0 if none); ``"none"`` is 0 at every dropped entry.
    """
    check_reduction(reduction)
    gamma_neg = check_non_negative("gamma_neg", gamma_neg)
    gamma_pos = check_non_negative("gamma_pos", gamma_pos)
    clip = check_non_negative("clip", clip)
    eps = check_non_negative("eps", eps)
    if clip >= 1:
        raise ValueError(f"clip must be in [0, 1), got {clip!r}")
    z, y, keep = _prepare(logits, target, None, validate_args, mask)
    log_eps = math.log(eps) if eps > 0 else -math.inf
    log_p = F.logsigmoid(z).clamp(min=log_eps)
    one_minus_p = torch.sigmoid(-z)  # 1 - p without cancellation
    if clip > 0:
        neg_keep = (one_minus_p + clip).clamp(max=1.0)  # 1 - p_m
    else:
        neg_keep = one_minus_p
    log_neg = (F.logsigmoid(-z) if clip == 0 else torch.log(neg_keep)).clamp(min=log_eps)
    terms = -(y * log_p + (1 - y) * log_neg)
    if gamma_pos != 0.0 or gamma_neg != 0.0:
        # (1 - p_t)^γ: positives (1 - p)^γ+, negatives p_m^γ- = (1 - neg_keep)^γ-.
        base = y * one_minus_p + (1 - y) * (1 - neg_keep)
        exponent = gamma_pos * y + gamma_neg * (1 - y)
        positive = base > 0
        # x^γ has an infinite derivative at x = 0 for γ < 1; the whole term's is 0 there.
        factor = torch.where(positive, base.where(positive, 1.0).pow(exponent), (exponent == 0).to(base.dtype))
        terms = factor * terms
    return _reduce_kept(terms, keep, reduction)


def _margin_logits(z: torch.Tensor, y: torch.Tensor, pos_margins: torch.Tensor,
                   neg_margins: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``s · (z - y ⊙ m+ + (1 - y) ⊙ m-)``: each label's own margin, on its own logit."""
    shifted = z - y * pos_margins
    if neg_margins is not None:
        shifted = shifted + (1 - y) * neg_margins
    return scale * shifted


def ldam_multilabel_loss(logits: torch.Tensor, target: torch.Tensor, *, pos_margins: torch.Tensor,
                         neg_margins: torch.Tensor | None = None, scale: float = 30.0,
                         pos_weight: torch.Tensor | None = None, reduction: Reduction = "mean",
                         mask: torch.Tensor | None = None, validate_args: bool = True) -> torch.Tensor:
    """LDAM for multi-label (see the module docstring): BCE on ``s · (z - y ⊙ m+ [+ (1 - y) ⊙ m-])``.

    Args:
        logits, target: ``[N, L]``.
        pos_margins: ``[L]`` margins of the positives (:func:`multilabel_margins`).
        neg_margins: ``[L]`` margins of the negatives, or ``None`` (the default form).
        scale: ``s`` (Cao et al.: 30).
        pos_weight: optional ``[L]`` BCE ``pos_weight``.
        reduction: plain mean over the kept entries, ``"sum"`` or ``"none"``.
        mask: bool ``[N, L]``, ``True`` = use; combined with the known targets (an entry counts
            only where both hold). ``"mean"`` = sum of kept terms / number kept (0 if none);
            ``"none"`` is 0 at every dropped entry.

    With zero margins, ``scale=1`` and no ``pos_weight`` this is BCE.
    """
    check_reduction(reduction)
    scale = check_non_negative("scale", scale)
    z, y, keep = _prepare(logits, target, _length(pos_margins), validate_args, mask)
    m_pos = _per_label(pos_margins, z, "pos_margins")
    m_neg = _per_label(neg_margins, z, "neg_margins")
    terms = _bce_terms(_margin_logits(z, y, m_pos, m_neg, scale), y, _per_label(pos_weight, z, "pos_weight"))
    return _reduce_kept(terms, keep, reduction)


def lmf_multilabel_loss(logits: torch.Tensor, target: torch.Tensor, *, pos_margins: torch.Tensor,
                        neg_margins: torch.Tensor | None = None, alpha: float = 1.0, beta: float = 1.0,
                        gamma: float = 1.5, focal_alpha: float | None = None, scale: float = 30.0,
                        pos_weight: torch.Tensor | None = None, reduction: Reduction = "mean",
                        mask: torch.Tensor | None = None, validate_args: bool = True) -> torch.Tensor:
    """LMF for multi-label: ``alpha · LDAM + beta · focal`` (Eq. 8 of Sadi et al.) on the same logits.

    The LDAM term is :func:`ldam_multilabel_loss`, the focal term :func:`sigmoid_focal_loss` on
    the raw logits (``gamma``, ``focal_alpha``); both are plain means over the same kept
    entries (for ``"none"`` the ``[N, L]`` terms are combined).

    ``mask``: bool ``[N, L]``, ``True`` = use; an entry counts only where the mask is True and
    the target is known (not NaN / -1). ``"mean"`` = sum of the kept terms / number of kept
    entries (0 if none); ``"none"`` is 0 at every dropped entry.
    """
    check_reduction(reduction)
    alpha = check_non_negative("alpha", alpha)
    beta = check_non_negative("beta", beta)
    gamma = check_non_negative("gamma", gamma)
    scale = check_non_negative("scale", scale)
    focal_alpha = _check_probability("focal_alpha", focal_alpha)
    z, y, keep = _prepare(logits, target, _length(pos_margins), validate_args, mask)
    m_pos = _per_label(pos_margins, z, "pos_margins")
    m_neg = _per_label(neg_margins, z, "neg_margins")
    ldam = _bce_terms(_margin_logits(z, y, m_pos, m_neg, scale), y, _per_label(pos_weight, z, "pos_weight"))
    focal = _focal_terms(z, y, gamma, focal_alpha)
    terms = (ldam if alpha == 1.0 else alpha * ldam) + (focal if beta == 1.0 else beta * focal)
    return _reduce_kept(terms, keep, reduction)
