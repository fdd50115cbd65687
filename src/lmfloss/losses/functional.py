"""The loss maths as pure functions (torch only).

Every function takes ``logits`` ``[N, K]`` (any float dtype; float16/bfloat16 are upcast to
float32, so the loss is float32) and ``target`` ``[N]`` integer class indices, and a
``reduction`` in ``"mean" | "sum" | "none"`` — the contract of ``nn.CrossEntropyLoss``.
Per-class tensors (``weight``, ``margins``, ``alpha``, ``log_prior``) are ``[K]`` in
class-index order; they are moved to the logits' device and dtype here.

Which mean? It differs between the published losses, so every docstring says it:

* weighted cross-entropy and LDAM use PyTorch's *weighted* mean ``Σ w_{y_i} ℓ_i / Σ w_{y_i}``;
* focal loss and the class-balanced loss use the *plain* mean ``(1/N) Σ α_{y_i} ℓ_i``.

``reduction="none"`` returns the weighted per-sample terms ``w_{y_i} ℓ_i``, exactly like
``F.cross_entropy(weight=...)``; their plain mean is therefore not the weighted mean.

Numerics: everything works from ``log_softmax`` (no ``softmax`` followed by ``log``), the focal
factor uses ``1 - p = -expm1(log p)`` clamped at 0 before the fractional power, and no dense
one-hot tensor is built (margins go in with one ``scatter_add_``).

References:
    Sadi et al., "LMF loss: large margin aware focal loss for imbalanced medical image
    classification", PLOS ONE (2024) — Eqs. 1–8.
    Cao et al., "Learning imbalanced datasets with label-distribution-aware margin loss",
    NeurIPS 2019 (LDAM, DRW).
    Lin et al., "Focal loss for dense object detection", ICCV 2017.
    Cui et al., "Class-balanced loss based on effective number of samples", CVPR 2019.
    Menon et al., "Long-tail learning via logit adjustment", ICLR 2021;
    Ren et al., "Balanced meta-softmax for long-tailed visual recognition", NeurIPS 2020.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "REDUCTIONS",
    "class_balanced_loss",
    "cross_entropy",
    "focal_loss",
    "ldam_loss",
    "lmf_loss",
    "logit_adjusted_loss",
]

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS = ("mean", "sum", "none")
_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


# --------------------------------------------------------------------------- validation
def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
    return reduction


def check_non_negative(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is a finite number >= 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def _prepare(
    logits: torch.Tensor, target: torch.Tensor, num_classes: int | None, validate_args: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate the inputs; upcast half-precision logits; targets to int64.

    With ``validate_args=False`` the check that every target lies in ``[0, K)`` is skipped:
    it reads the targets back to the host, which on CUDA makes the CPU wait for the GPU at
    every step (torchmetrics' convention: a training engine that validated its labels once
    turns it off). Shapes and dtypes are still checked (that costs no synchronisation).
    """
    if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise ValueError(
            f"logits and target must be tensors, got {type(logits).__name__} and "
            f"{type(target).__name__}"
        )
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape [N, K], got shape {tuple(logits.shape)}")
    if not logits.dtype.is_floating_point:
        raise ValueError(f"logits must be floating point, got dtype {logits.dtype}")
    n, k = logits.shape
    if num_classes is not None and k != num_classes:
        raise ValueError(
            f"logits have {k} classes (shape {tuple(logits.shape)}) but class_counts has "
            f"{num_classes}"
        )
    if target.dtype not in _INT_DTYPES:
        raise ValueError(f"target must hold integer class indices (int64), got dtype {target.dtype}")
    if target.shape != (n,):
        raise ValueError(
            f"target must have shape [N] = [{n}] to match logits {tuple(logits.shape)}, "
            f"got shape {tuple(target.shape)}"
        )
    if n and validate_args:
        # One host sync (on CUDA): without it a bad target is a device-side assert that
        # kills the CUDA context instead of a ValueError naming the value.
        lo, hi = torch.aminmax(target)
        lo_i, hi_i = int(lo), int(hi)
        if lo_i < 0 or hi_i >= k:
            bad = lo_i if lo_i < 0 else hi_i
            raise ValueError(f"target {bad} is outside [0, {k}) for logits of shape {tuple(logits.shape)}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return logits, target.long()


def _length(t: torch.Tensor | None) -> int | None:
    """``K`` of a per-class tensor (or sequence), ``None`` for ``None``."""
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        return t.shape[0] if t.ndim else None  # a 0-d tensor fails the [K] check later
    return len(t)


def _per_class(t: torch.Tensor | None, like: torch.Tensor, name: str) -> torch.Tensor | None:
    if t is None:
        return None
    t = torch.as_tensor(t)
    if t.shape != (like.shape[1],):
        raise ValueError(
            f"{name} must have shape [K] = [{like.shape[1]}], got shape {tuple(t.shape)}"
        )
    return t.to(device=like.device, dtype=like.dtype)


def reduce_terms(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


# ---------------------------------------------------------------------------- the losses
def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> torch.Tensor:
    """(Weighted) categorical cross-entropy, Eqs. 1–2 of Sadi et al.

    ``ℓ_i = -w_{y_i} log softmax(z_i)_{y_i}``; ``"mean"`` is PyTorch's weighted mean
    ``Σ_i ℓ_i / Σ_i w_{y_i}`` (the plain mean when ``weight`` is ``None``).

    Args:
        logits: ``[N, K]``.
        target: ``[N]`` int64 in ``[0, K)``.
        weight: optional ``[K]`` class weights.
        reduction: ``"mean" | "sum" | "none"``.
        validate_args: check that every target is a class index (one host read of the
            targets; turn off in a training loop whose labels were validated once).

    Returns:
        A scalar, or ``[N]`` for ``"none"``.
    """
    check_reduction(reduction)
    z, t = _prepare(logits, target, _length(weight), validate_args)
    return F.cross_entropy(z, t, weight=_per_class(weight, z, "weight"), reduction=reduction)


def ldam_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    margins: torch.Tensor,
    scale: float = 30.0,
    weight: torch.Tensor | None = None,
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> torch.Tensor:
    """Label-distribution-aware margin loss, Eq. 5 (Cao et al. 2019), as the authors compute it.

    ``ℓ_i = -w_{y_i} log softmax(s · (z_i - m_{y_i} e_{y_i}))_{y_i}``: the target logit is
    lowered by its class margin, then all logits are multiplied by ``s = scale``; ``"mean"`` is
    PyTorch's weighted mean ``Σ_i ℓ_i / Σ_i w_{y_i}``. With zero margins and ``scale=1`` this
    is cross-entropy.

    Args:
        logits: ``[N, K]``.
        target: ``[N]`` int64 in ``[0, K)``.
        margins: ``[K]`` per-class margins (Eq. 4, :func:`lmfloss.losses.compute_margins`).
        scale: ``s >= 0`` (Cao et al.'s and the authors' code: 30; the paper gives no value).
        weight: optional ``[K]`` class weights (the authors' code: the margins).
        reduction: ``"mean" | "sum" | "none"``.
        validate_args: check that every target is a class index (one host read of the
            targets; turn off in a training loop whose labels were validated once).
    """
    check_reduction(reduction)
    scale = check_non_negative("scale", scale)
    z, t = _prepare(logits, target, _length(margins), validate_args)
    m = _per_class(margins, z, "margins")
    return F.cross_entropy(
        _margin_logits(z, t, m, scale), t, weight=_per_class(weight, z, "weight"), reduction=reduction
    )


def _margin_logits(z: torch.Tensor, t: torch.Tensor, m: torch.Tensor, scale: float) -> torch.Tensor:
    """``s · (z - m_y e_y)`` without a one-hot: one scaled copy, one in-place scatter."""
    zm = z * scale
    return zm.scatter_add_(1, t.unsqueeze(1), (m.index_select(0, t) * -scale).unsqueeze(1))


def _focal_terms(
    z: torch.Tensor, t: torch.Tensor, gamma: float, alpha: torch.Tensor | None
) -> torch.Tensor:
    """Per-sample ``α_{y} (1 - p_y)^γ (-log p_y)``, ``[N]``."""
    log_p = F.log_softmax(z, dim=1).gather(1, t.unsqueeze(1)).squeeze(1)
    terms = -log_p
    if gamma != 0.0:
        # 1 - p = -expm1(log p) keeps precision as p -> 1; rounding can make it slightly
        # negative, so clamp at 0 before the (possibly fractional) power.
        base = (-torch.expm1(log_p)).clamp(min=0.0)
        if gamma < 1.0:
            # d/dx x^γ is infinite at x = 0 for γ < 1 and 0 · inf = NaN in autograd; the true
            # gradient of the whole term there is 0, which the guarded branch yields.
            positive = base > 0
            factor = torch.where(positive, base.where(positive, 1.0).pow(gamma), 0.0)
        else:
            factor = base.pow(gamma)
        terms = factor * terms
    if alpha is not None:
        terms = alpha.index_select(0, t) * terms
    return terms


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 1.5,
    alpha: torch.Tensor | None = None,
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> torch.Tensor:
    """α-balanced multi-class focal loss, Eq. 7 (Lin et al. 2017), on the raw logits.

    ``ℓ_i = -α_{y_i} (1 - p_{i,y_i})^γ log p_{i,y_i}`` with ``p_i = softmax(z_i)``; ``"mean"``
    is the plain mean ``(1/N) Σ_i ℓ_i`` (not divided by ``Σ α``). With ``γ = 0`` and no
    ``alpha`` this is cross-entropy.

    Args:
        logits: ``[N, K]``.
        target: ``[N]`` int64 in ``[0, K)``.
        gamma: focusing parameter ``γ >= 0`` (the paper: 1.5).
        alpha: optional ``[K]`` class factors (the paper: the Eq. 4 margins, text after Eq. 7).
        reduction: ``"mean" | "sum" | "none"``.
        validate_args: check that every target is a class index (one host read of the
            targets; turn off in a training loop whose labels were validated once).
    """
    check_reduction(reduction)
    gamma = check_non_negative("gamma", gamma)
    z, t = _prepare(logits, target, _length(alpha), validate_args)
    return reduce_terms(_focal_terms(z, t, gamma, _per_class(alpha, z, "alpha")), reduction)


def lmf_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    margins: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 1.5,
    scale: float = 30.0,
    weight: torch.Tensor | None = None,
    focal_alpha: torch.Tensor | None = None,
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> torch.Tensor:
    """Large margin aware focal loss, Eq. 8 of Sadi et al.: ``alpha · LDAM + beta · focal``.

    Both terms see the same logits: the LDAM term is :func:`ldam_loss` (margins, ``scale``,
    class ``weight``, weighted mean), the focal term is :func:`focal_loss` on the raw logits
    (``gamma``, ``focal_alpha``, plain mean). Each term is reduced its own way and then
    combined, as in the authors' code; for ``"none"`` the per-sample terms are combined.

    Args:
        logits: ``[N, K]``.
        target: ``[N]`` int64 in ``[0, K)``.
        margins: ``[K]`` LDAM margins (Eq. 4).
        alpha: weight of the LDAM term, ``>= 0`` (the authors' configuration file: 1; the paper
            tunes it in 0.5..2.0, Table 6).
        beta: weight of the focal term, ``>= 0`` (likewise 1; Table 6).
        gamma: focal ``γ >= 0`` (the paper: 1.5).
        scale: LDAM ``s >= 0`` (the authors' code: 30; not in the paper).
        weight: optional ``[K]`` LDAM class weights (the authors' code: the margins).
        focal_alpha: optional ``[K]`` focal class factors (the paper: the margins).
        reduction: ``"mean" | "sum" | "none"``.
        validate_args: check that every target is a class index (one host read of the
            targets; turn off in a training loop whose labels were validated once).
    """
    check_reduction(reduction)
    alpha = check_non_negative("alpha", alpha)
    beta = check_non_negative("beta", beta)
    gamma = check_non_negative("gamma", gamma)
    scale = check_non_negative("scale", scale)
    z, t = _prepare(logits, target, _length(margins), validate_args)
    m = _per_class(margins, z, "margins")
    ldam = F.cross_entropy(
        _margin_logits(z, t, m, scale), t, weight=_per_class(weight, z, "weight"), reduction=reduction
    )
    focal = reduce_terms(_focal_terms(z, t, gamma, _per_class(focal_alpha, z, "focal_alpha")), reduction)
    # Skip the multiplications by 1 (the default setting): two fewer kernels per direction.
    ldam = ldam if alpha == 1.0 else alpha * ldam
    focal = focal if beta == 1.0 else beta * focal
    return ldam + focal


def logit_adjusted_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    log_prior: torch.Tensor,
    tau: float = 1.0,
    weight: torch.Tensor | None = None,
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> torch.Tensor:
    """Logit-adjusted cross-entropy (Menon et al. 2021); balanced softmax (Ren et al. 2020) at τ=1.

    ``ℓ_i = -w_{y_i} log softmax(z_i + τ log π)_{y_i}`` with ``π_j = n_j / N`` the training
    prior; ``"mean"`` is PyTorch's weighted mean. Predict with the raw logits (argmax ``z``):
    the adjustment only acts during training.

    Args:
        logits: ``[N, K]``.
        target: ``[N]`` int64 in ``[0, K)``.
        log_prior: ``[K]`` ``log π_j`` (:func:`lmfloss.losses.log_prior`).
        tau: ``τ >= 0`` (Menon et al.: 1).
        weight: optional ``[K]`` class weights.
        reduction: ``"mean" | "sum" | "none"``.
        validate_args: check that every target is a class index (one host read of the
            targets; turn off in a training loop whose labels were validated once).
    """
    check_reduction(reduction)
    tau = check_non_negative("tau", tau)
    z, t = _prepare(logits, target, _length(log_prior), validate_args)
    adjusted = z + tau * _per_class(log_prior, z, "log_prior")
    return F.cross_entropy(adjusted, t, weight=_per_class(weight, z, "weight"), reduction=reduction)


def class_balanced_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor,
    base: Literal["ce", "focal"] = "ce",
    gamma: float = 1.5,
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> torch.Tensor:
    """Class-balanced loss (Cui et al. 2019): ``w_{y_i} · L(z_i, y_i)`` with ``L`` CE or focal.

    ``weight`` is normally :func:`lmfloss.losses.class_balanced_weights` (effective number,
    normalised to sum to ``K``). ``"mean"`` is the plain mean ``(1/N) Σ_i w_{y_i} L_i`` as in
    Cui et al.'s code (the weights already carry the scale).

    Args:
        logits: ``[N, K]``.
        target: ``[N]`` int64 in ``[0, K)``.
        weight: ``[K]`` class weights.
        base: ``"ce"`` or ``"focal"`` (softmax focal loss with ``gamma``).
        gamma: focal ``γ >= 0``, used when ``base="focal"``.
        reduction: ``"mean" | "sum" | "none"``.
        validate_args: check that every target is a class index (one host read of the
            targets; turn off in a training loop whose labels were validated once).
    """
    check_reduction(reduction)
    if base not in ("ce", "focal"):
        raise ValueError(f"base must be 'ce' or 'focal', got {base!r}")
    gamma = check_non_negative("gamma", gamma) if base == "focal" else 0.0
    z, t = _prepare(logits, target, _length(weight), validate_args)
    return reduce_terms(_focal_terms(z, t, gamma, _per_class(weight, z, "weight")), reduction)
