"""Class counts, margins and per-class weights — everything a loss derives from ``class_counts``.

Every helper here takes ``class_counts`` **in class-index order**: ``class_counts[j]`` is the
number of *training* samples whose target is ``j``. That is the order of the integer targets
the loss receives, not the order of a directory listing. (The paper's published code read the
counts with ``os.listdir`` while ``torchvision.datasets.ImageFolder`` sorts class names, so on
Linux the margins silently went to the wrong classes.) Build the counts from the targets
themselves with :func:`class_counts` and the order cannot be wrong.

Only torch and the standard library are imported.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from lmfloss.losses.functional import check_non_negative

__all__ = [
    "ClassWeights",
    "WeightSpec",
    "bwcce_weights",
    "check_class_counts",
    "class_balanced_weights",
    "class_counts",
    "compute_margins",
    "inverse_frequency_weights",
    "log_prior",
    "resolve_class_weight",
]

WeightSpec = str | Sequence[float] | torch.Tensor | None
"""A per-class weight: a name (``"margins"``, ``"inverse"``, ``"bwcce"``, ``"cb"``), explicit
values (one per class, in class-index order) or ``None`` for no weighting."""

WEIGHT_NAMES = ("margins", "inverse", "bwcce", "cb")


def class_counts(targets: Iterable[int] | torch.Tensor, num_classes: int) -> list[int]:
    """Count training samples per class, in class-index order.

    Use this on the very targets the loss will see (e.g. ``dataset.targets`` of an
    ``ImageFolder``, or ``[r.label for r in records]``) — then ``counts[j]`` belongs to target
    ``j`` by construction.

    Args:
        targets: integer class indices, shape ``[N]`` (list, tuple, tensor or array; an
            ``[N, 1]`` array such as MedMNIST's labels is flattened).
        num_classes: ``K``; every target must lie in ``[0, K)``.

    Returns:
        ``K`` non-negative ints; ``counts[j]`` is the number of targets equal to ``j``.
        A class absent from ``targets`` gets 0 (which the margin-based losses then reject).

    Raises:
        ValueError: ``num_classes`` is not a positive int, a target is not an integer, or a
            target lies outside ``[0, num_classes)``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if isinstance(targets, torch.Tensor):
        t = targets
    elif hasattr(targets, "__array__"):  # a NumPy array, without importing NumPy here
        t = torch.as_tensor(targets)
    else:
        t = torch.as_tensor(list(targets))
    if t.numel() == 0:
        return [0] * int(num_classes)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices, got dtype {t.dtype}")
    t = t.reshape(-1).long()
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(f"target {bad} is outside [0, {num_classes}) (num_classes={num_classes})")
    return [int(c) for c in torch.bincount(t, minlength=int(num_classes)).tolist()]


def check_class_counts(counts: Any, *, min_classes: int = 2) -> list[int]:
    """Validate ``class_counts`` and return it as a list of ints.

    Raises:
        ValueError: ``counts`` is a mapping or string (order would be ambiguous), has fewer than
            ``min_classes`` entries, holds a non-integer, or holds a count of 0 or less.
    """
    if isinstance(counts, Mapping):
        raise ValueError(
            "class_counts must be a sequence in class-index order, got a mapping "
            f"{dict(counts)!r}; pass [counts[name] for name in class_names] with class_names in "
            "the order of the integer targets, or use lmfloss.losses.class_counts(targets, K)"
        )
    if isinstance(counts, str | bytes):
        raise ValueError(f"class_counts must be a sequence of ints, got the string {counts!r}")
    if isinstance(counts, torch.Tensor):
        if counts.dtype.is_floating_point and not torch.equal(counts, counts.round()):
            raise ValueError(f"class_counts must be whole numbers, got {counts.tolist()!r}")
        counts = counts.reshape(-1).tolist()
    try:
        values = list(counts)
    except TypeError:
        raise ValueError(
            f"class_counts must be a sequence of ints in class-index order, got {counts!r}"
        ) from None
    if len(values) < min_classes:
        raise ValueError(
            f"class_counts must have at least {min_classes} classes, got {len(values)}: {values!r}"
        )
    out: list[int] = []
    for j, n in enumerate(values):
        if (
            isinstance(n, bool)
            or not isinstance(n, numbers.Real)
            or not math.isfinite(float(n))
            or float(n) != int(n)
        ):
            raise ValueError(f"class {j} has count {n!r}; class counts must be whole numbers")
        if n <= 0:
            raise ValueError(
                f"class {j} has {int(n)} training samples; every class needs at least one "
                f"(class_counts={[v for v in values]!r}); drop the class or fix the split"
            )
        out.append(int(n))
    return out


def _counts_tensor(counts: Sequence[int]) -> torch.Tensor:
    return torch.tensor(check_class_counts(counts), dtype=torch.float64)


def _margins(n: torch.Tensor, max_margin: float) -> torch.Tensor:
    inv = n.pow(-0.25)
    return inv * (float(max_margin) / inv.max())


def _inverse(n: torch.Tensor) -> torch.Tensor:
    w = 1.0 / n
    return w * (len(n) / w.sum())


def _bwcce(n: torch.Tensor) -> torch.Tensor:
    return (1.0 - n / n.sum()) / (len(n) - 1)


def _check_beta(beta: float) -> float:
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be a number in [0, 1), got {beta!r}")
    return float(beta)


def _class_balanced(n: torch.Tensor, beta: float) -> torch.Tensor:
    # 1 - β^n computed as -expm1(n log β): exact for β close to 1, where 1 - β^n cancels.
    effective = -torch.expm1(n * math.log(beta)) if beta > 0 else torch.ones_like(n)
    w = (1.0 - beta) / effective
    return w * (len(n) / w.sum())


def compute_margins(counts: Sequence[int], max_margin: float = 0.5) -> torch.Tensor:
    """LDAM margins, Eq. 4 of Sadi et al. (2024) / Cao et al. (2019).

    ``m_j = max_margin * n_j^(-1/4) / max_k n_k^(-1/4)``: proportional to ``n_j^(-1/4)`` and
    scaled so that the rarest class gets exactly ``max_margin``. The exponent -1/4 is Eq. 4
    (and Cao et al.'s); the default 0.5 for the rarest class is the authors' code
    (``max_m=0.5`` in their LDAM loss), which the paper does not state.

    Args:
        counts: ``[K]`` training samples per class, class-index order.
        max_margin: the margin of the rarest class (the authors' code: 0.5); ``>= 0``.

    Returns:
        float64 tensor ``[K]``.
    """
    check_non_negative("max_margin", max_margin)
    return _margins(_counts_tensor(counts), max_margin)


def inverse_frequency_weights(counts: Sequence[int]) -> torch.Tensor:
    """Weights ``w_j ∝ 1 / n_j``, normalised to sum to ``K`` (Eq. 2's usual choice).

    The normalisation does not change a weighted-mean loss; it keeps ``"sum"`` and ``"none"``
    on the scale of plain cross-entropy. Returns float64 ``[K]``.
    """
    return _inverse(_counts_tensor(counts))


def bwcce_weights(counts: Sequence[int]) -> torch.Tensor:
    """Balanced weights of BWCCE, Eq. 3 of Sadi et al. (ref. 29): ``w_j = (1 - n_j/N) / (K - 1)``.

    They sum to 1 and stay bounded under extreme imbalance. Returns float64 ``[K]``.
    """
    return _bwcce(_counts_tensor(counts))


def class_balanced_weights(counts: Sequence[int], beta: float = 0.9999) -> torch.Tensor:
    """Class-balanced weights by the effective number of samples (Cui et al., CVPR 2019).

    ``w_j = (1 - β) / (1 - β^{n_j})``, normalised to sum to ``K``. ``β = 0`` gives uniform
    weights; ``β → 1`` approaches inverse frequency.

    Args:
        counts: ``[K]`` training samples per class, class-index order.
        beta: ``0 <= β < 1`` (Cui et al.: 0.9999).

    Returns:
        float64 tensor ``[K]``.
    """
    return _class_balanced(_counts_tensor(counts), _check_beta(beta))


def log_prior(counts: Sequence[int]) -> torch.Tensor:
    """``log π_j = log(n_j / N)``, the log class prior used by logit adjustment. float64 ``[K]``."""
    n = _counts_tensor(counts)
    return torch.log(n / n.sum())


class ClassWeights:
    """Per-class tensors of one set of class counts, validated once and derived on demand.

    What a loss module builds in its constructor: the counts are checked once, the margins
    computed once, and every named weight (``"margins"``, ``"inverse"``, ``"bwcce"``,
    ``"cb"``) comes from a registry of builders on the checked counts.

    Args:
        counts: ``[K]`` training samples per class, class-index order.
        max_margin: the rarest class's margin (for ``"margins"``).
        cb_beta: β of the class-balanced weights (for ``"cb"``).
    """

    BUILDERS: dict[str, Any] = {
        "margins": lambda self: self.margins,
        "inverse": lambda self: _inverse(self.counts),
        "bwcce": lambda self: _bwcce(self.counts),
        "cb": lambda self: _class_balanced(self.counts, _check_beta(self.cb_beta)),
    }

    def __init__(self, counts: Sequence[int], *, max_margin: float = 0.5, cb_beta: float = 0.9999) -> None:
        self.counts = _counts_tensor(counts)
        self.max_margin = check_non_negative("max_margin", max_margin)
        self.cb_beta = cb_beta
        self.margins = _margins(self.counts, self.max_margin)

    def resolve(self, spec: WeightSpec, what: str = "class_weight") -> torch.Tensor | None:
        """A weight specification as a float64 ``[K]`` tensor (or ``None``); see
        :func:`resolve_class_weight`."""
        k = len(self.counts)
        if spec is None:
            return None
        if isinstance(spec, str):
            if spec not in self.BUILDERS:
                raise ValueError(f"{what} must be one of {[*WEIGHT_NAMES, None]} or {k} numbers, got {spec!r}")
            if spec == "margins" and self.max_margin == 0:
                # All-zero weights make a weighted mean 0/0 = NaN and a focal term vanish.
                raise ValueError(
                    f"{what}='margins' with max_margin=0 gives all-zero weights; "
                    f"pass {what}=None for an unweighted loss"
                )
            return self.BUILDERS[spec](self).clone()
        try:
            w = torch.as_tensor(spec, dtype=torch.float64).detach().clone().reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{what} must be one of {[*WEIGHT_NAMES, None]} or {k} numbers, got {spec!r}") from None
        if w.numel() != k:
            raise ValueError(f"{what} has {w.numel()} values but class_counts has {k} classes")
        if not torch.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"{what} must be finite and >= 0, got {w.tolist()!r}")
        if not (w > 0).any():
            raise ValueError(f"{what} is all zeros ({w.tolist()!r}); pass {what}=None for no weighting")
        return w


def resolve_class_weight(
    spec: WeightSpec,
    counts: Sequence[int],
    *,
    max_margin: float = 0.5,
    cb_beta: float = 0.9999,
    what: str = "class_weight",
) -> torch.Tensor | None:
    """Turn a weight specification into a float64 ``[K]`` tensor (or ``None``).

    Args:
        spec: ``None``; ``"margins"`` (:func:`compute_margins` with ``max_margin``);
            ``"inverse"`` (:func:`inverse_frequency_weights`); ``"bwcce"`` (:func:`bwcce_weights`);
            ``"cb"`` (:func:`class_balanced_weights` with ``cb_beta``); or ``K`` explicit
            non-negative finite values in class-index order.
        counts: ``[K]`` training samples per class.
        what: the parameter name used in error messages.

    Raises:
        ValueError: unknown name, wrong length, negative or non-finite values.
    """
    return ClassWeights(counts, max_margin=max_margin, cb_beta=cb_beta).resolve(spec, what)
