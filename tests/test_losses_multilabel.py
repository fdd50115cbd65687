"""Multi-label losses against float64 references written here from the papers' formulas
(Lin et al. 2017; Ridnik et al. 2021; Cao et al. 2019 transferred to sigmoids; Sadi et al. Eq. 8),
against PyTorch's and torchvision's own implementations, and against the ways public
multi-label LDAM code gets it wrong."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmfloss.losses import MULTILABEL_LOSSES, build_loss, label_counts, loss_parameters, multilabel
from lmfloss.losses import multilabel as ML

REDUCTIONS = ["mean", "sum", "none"]
COUNTS = [[990, 10], [700, 300], [999, 1], [400, 600]]  # L = 4: rare, common, rarest, majority-positive
L = len(COUNTS)


def _batch(n: int = 12, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(n, L, generator=g, dtype=torch.float64)).to(dtype)
    target = (torch.rand(n, L, generator=g) < 0.4).to(torch.float32)
    target[0] = 0  # an image with no finding
    target[1] = 1  # and one with every finding
    return logits, target


# ----------------------------------------------------------------- float64 references
def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _ref_margins(counts, max_margin=0.5, negative=False):
    pos = [c[1] ** -0.25 for c in counts]
    neg = [c[0] ** -0.25 for c in counts]
    top = max(pos + neg) if negative else max(pos)
    return [max_margin * v / top for v in pos], [max_margin * v / top if negative else 0.0 for v in neg]


def _ref_bce(z, y, w=1.0):
    return -(w * y * _log_sigmoid(z) + (1 - y) * _log_sigmoid(-z))


def _ref_focal(z, y, gamma, alpha):
    p = _sigmoid(z)
    p_t = p if y == 1 else 1 - p
    log_p_t = _log_sigmoid(z) if y == 1 else _log_sigmoid(-z)
    a_t = 1.0 if alpha is None else (alpha if y == 1 else 1 - alpha)
    return -a_t * (1 - p_t) ** gamma * log_p_t


def _ref_asl(z, y, gamma_neg=4.0, gamma_pos=0.0, clip=0.05, eps=1e-8):
    p = _sigmoid(z)
    if y == 1:
        return -((1 - p) ** gamma_pos) * math.log(max(p, eps))
    p_m = max(p - clip, 0.0)
    return -(p_m ** gamma_neg) * math.log(max(1 - p_m, eps))


def _ref_ldam(z, y, m_pos, m_neg, s=30.0):
    return _ref_bce(s * (z - y * m_pos + (1 - y) * m_neg), y)


def _elementwise(ref, logits, target, **kw):
    out = torch.empty(logits.shape, dtype=torch.float64)
    for i in range(logits.shape[0]):
        for j in range(logits.shape[1]):
            out[i, j] = ref(float(logits[i, j]), float(target[i, j]), j, **kw)
    return out


def _reduce(terms: torch.Tensor, reduction: str) -> torch.Tensor:
    return terms.mean() if reduction == "mean" else terms.sum() if reduction == "sum" else terms


# ----------------------------------------------------------------------- values
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_equals_pytorch_and_the_formula_with_pos_weight_from_counts(reduction):
    logits, target = _batch()
    loss = build_loss("bce", COUNTS, task="multilabel", reduction=reduction).double()
    w = torch.tensor([neg / pos for neg, pos in COUNTS], dtype=torch.float64)
    expected = nn.BCEWithLogitsLoss(pos_weight=w, reduction=reduction)(logits, target.double())
    ref = _reduce(_elementwise(lambda z, y, j: _ref_bce(z, y, float(w[j])), logits, target), reduction)
    torch.testing.assert_close(loss(logits, target), expected)
    torch.testing.assert_close(loss(logits, target), ref)


@pytest.mark.parametrize("gamma,alpha", [(2.0, 0.25), (1.5, None), (0.0, None), (0.5, 0.75)])
def test_sigmoid_focal_equals_torchvision_and_the_formula(gamma, alpha):
    from torchvision.ops import sigmoid_focal_loss

    logits, target = _batch()
    ours = ML.sigmoid_focal_loss(logits, target, gamma=gamma, alpha=alpha, reduction="none")
    ref = _elementwise(lambda z, y, j: _ref_focal(z, y, gamma, alpha), logits, target)
    torch.testing.assert_close(ours, ref)
    theirs = sigmoid_focal_loss(logits, target.double(), alpha=-1 if alpha is None else alpha, gamma=gamma,
                                reduction="none")
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_asl_equals_the_papers_formula_with_its_defaults(reduction):
    logits, target = _batch()
    loss = build_loss("asl", COUNTS, task="multilabel", reduction=reduction).double()
    assert (loss.gamma_neg, loss.gamma_pos, loss.clip) == (4.0, 0.0, 0.05)  # Ridnik et al.'s recommendation
    ref = _reduce(_elementwise(lambda z, y, j: _ref_asl(z, y), logits, target), reduction)
    torch.testing.assert_close(loss(logits, target), ref)


def test_asl_without_focusing_or_shift_is_bce():
    logits, target = _batch()
    asl = ML.asl_loss(logits, target, gamma_neg=0.0, gamma_pos=0.0, clip=0.0, eps=0.0)
    torch.testing.assert_close(asl, F.binary_cross_entropy_with_logits(logits, target.double()))


@pytest.mark.parametrize("negative", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ldam_multilabel_equals_the_formula(negative, reduction):
    logits, target = _batch()
    m_pos, m_neg = _ref_margins(COUNTS, negative=negative)
    loss = build_loss("ldam", COUNTS, task="multilabel", negative_margins=negative, reduction=reduction).double()
    ref = _reduce(_elementwise(lambda z, y, j: _ref_ldam(z, y, m_pos[j], m_neg[j]), logits, target), reduction)
    torch.testing.assert_close(loss(logits, target), ref)
    assert max(m_pos + m_neg) == pytest.approx(0.5)


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.0), (2.0, 0.0)])
def test_lmf_multilabel_is_alpha_ldam_plus_beta_focal(alpha, beta):
    logits, target = _batch()
    m_pos, m_neg = _ref_margins(COUNTS)
    loss = build_loss("lmf", COUNTS, task="multilabel", alpha=alpha, beta=beta).double()
    ref = _elementwise(lambda z, y, j: alpha * _ref_ldam(z, y, m_pos[j], m_neg[j]) + beta * _ref_focal(z, y, 1.5, None),
                       logits, target).mean()
    torch.testing.assert_close(loss(logits, target), ref)


# ------------------------------------------------- what public multi-label LDAM code gets wrong
def _margins_tensor():
    return torch.tensor(_ref_margins(COUNTS)[0], dtype=torch.float64)


def test_ldam_margin_goes_to_each_positive_logit_alone_not_a_summed_margin_on_every_logit():
    logits, target = _batch()
    m = _margins_tensor()
    ours = ML.ldam_multilabel_loss(logits, target, pos_margins=m, reduction="none")
    # Wrong: a sample's margins summed and subtracted from every logit (softmax-LDAM copied over).
    summed = (target.double() * m).sum(dim=1, keepdim=True)
    wrong = F.binary_cross_entropy_with_logits(30 * (logits - summed), target.double(), reduction="none")
    assert not torch.allclose(ours, wrong)
    # Right: only a positive logit moves, by its own label's margin.
    expected = F.binary_cross_entropy_with_logits(30 * (logits - target.double() * m), target.double(),
                                                  reduction="none")
    torch.testing.assert_close(ours, expected)


def test_negative_logits_get_no_margin_by_default_and_a_margin_in_the_right_direction_when_asked():
    logits, target = _batch()
    m = _margins_tensor()
    neg = target == 0
    plain = F.binary_cross_entropy_with_logits(30 * logits, target.double(), reduction="none")
    ours = ML.ldam_multilabel_loss(logits, target, pos_margins=m, reduction="none")
    torch.testing.assert_close(ours[neg], plain[neg])  # negatives untouched
    # With negative margins a negative must be *more* negative for the same loss: its loss goes up.
    m_pos, m_neg = ML.multilabel_margins(COUNTS, negative_margins=True)
    with_neg = ML.ldam_multilabel_loss(logits, target, pos_margins=m_pos, neg_margins=m_neg, reduction="none")
    visible = plain[neg] > 1e-6  # (far below, exp(-30 |z|) underflows to 0 either way)
    assert bool((with_neg[neg] >= plain[neg]).all()) and bool((with_neg[neg] > plain[neg])[visible].all())
    # The wrong sign (the margin subtracted from negatives too) makes negatives easier instead.
    wrong = F.binary_cross_entropy_with_logits(30 * (logits - m_neg), target.double(), reduction="none")
    assert bool((wrong[neg] <= plain[neg]).all()) and bool((wrong[neg] < plain[neg])[visible].all())


def test_margins_come_from_the_training_counts_not_the_batch():
    logits, target = _batch(n=12)
    loss = build_loss("ldam", COUNTS, task="multilabel", reduction="none").double()
    whole = loss(logits, target)
    # The same images in another batch composition get the same per-element loss: counts taken
    # per batch would change the margins with the batch.
    torch.testing.assert_close(loss(logits[:3], target[:3]), whole[:3])
    per_batch = label_counts(target[:3] + torch.eye(L)[:3].new_zeros(3, L))  # what per-batch code would use
    assert per_batch != COUNTS
    pos, _ = ML.multilabel_margins(COUNTS)
    torch.testing.assert_close(loss.pos_margins.double(), pos, rtol=1e-6, atol=1e-7)
    assert int(torch.argmax(pos)) == 2  # the rarest label (1 positive) gets the largest margin


# ------------------------------------------------------------ gradients, numerics, batch size
@pytest.mark.parametrize("name", sorted(MULTILABEL_LOSSES))
def test_gradcheck_float64(name):
    logits, target = _batch(n=5)
    loss = build_loss(name, COUNTS, task="multilabel").double()
    x = (logits / 3).clone().requires_grad_()  # away from the clamp's kinks
    assert torch.autograd.gradcheck(lambda v: loss(v, target), (x,))


@pytest.mark.parametrize("name", sorted(MULTILABEL_LOSSES))
def test_extreme_logits_stay_finite_in_value_and_gradient(name):
    logits = torch.tensor([[1e4, -1e4, 1e4, -1e4], [-1e4, 1e4, -1e4, 1e4]], requires_grad=True)
    target = torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0]])
    value = build_loss(name, COUNTS, task="multilabel")(logits, target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", sorted(MULTILABEL_LOSSES))
def test_mean_does_not_grow_with_batch_size(name):
    logits, target = _batch(n=8, dtype=torch.float32)
    loss = build_loss(name, COUNTS, task="multilabel")
    doubled = loss(torch.cat([logits, logits]), torch.cat([target, target]))
    torch.testing.assert_close(doubled, loss(logits, target))


@pytest.mark.parametrize("name", sorted(MULTILABEL_LOSSES))
def test_half_precision_logits_are_upcast(name):
    logits, target = _batch(n=6, dtype=torch.float32)
    loss = build_loss(name, COUNTS, task="multilabel")
    out = loss(logits.to(torch.bfloat16), target)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, loss(logits.to(torch.bfloat16).float(), target))


# ----------------------------------------------------------------------- bad input
def test_label_counts_from_targets_and_their_checks():
    assert label_counts(torch.tensor([[1, 0], [1, 1], [0, 0]])) == [[1, 2], [2, 1]]
    with pytest.raises(ValueError, match=r"0 or 1 \(-1 or NaN where unknown\), got 2"):
        label_counts([[0, 2]])
    with pytest.raises(ValueError, match="label 'hernia' has no positive training image"):
        multilabel.check_label_counts([[5, 2], [7, 0]], ["effusion", "hernia"])
    with pytest.raises(ValueError, match="label 1 is positive on every training image"):
        build_loss("bce", [[5, 2], [0, 7]], task="multilabel")
    with pytest.raises(ValueError, match=r"\[L, 2\] table"):
        build_loss("asl", [5, 2], task="multilabel")


def test_targets_are_checked_when_asked():
    loss = build_loss("bce", COUNTS, task="multilabel")
    logits = torch.zeros(2, L)
    with pytest.raises(ValueError, match="0 or 1"):
        loss(logits, torch.full((2, L), 2.0))
    with pytest.raises(ValueError, match=r"shape \(2, 4\)"):
        loss(logits, torch.zeros(2, L - 1))
    with pytest.raises(ValueError, match="label_counts has 4"):
        build_loss("ldam", COUNTS, task="multilabel")(torch.zeros(2, 3), torch.zeros(2, 3))


def test_a_loss_of_the_other_task_is_refused_by_name():
    with pytest.raises(ValueError, match="'ce' is for multi-class tasks only.*\\['asl', 'bce', 'focal', 'ldam', 'lmf'\\]"):
        build_loss("ce", COUNTS, task="multilabel")
    with pytest.raises(ValueError, match="'asl' is for multi-label tasks only"):
        build_loss("asl", [10, 20])
    with pytest.raises(ValueError, match="task must be one of"):
        build_loss("lmf", COUNTS, task="multi-label")
    assert "negative_margins" in loss_parameters("lmf", "multilabel")
    assert "negative_margins" not in loss_parameters("lmf")


# ------------------------------------------- unknown entries: NaN targets and the mask
NAN = float("nan")


def _unknown_batch(n: int = 10, seed: int = 1):
    """Logits, targets with NaN in random places (label 2 unknown on every image), a mask."""
    logits, target = _batch(n=n, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    target = target.double()
    target[torch.rand(n, L, generator=g) < 0.3] = NAN
    target[:, 2] = NAN  # a label with no known entry in the batch
    target[2, 0], target[3, 0] = 1.0, 0.0  # label 0 keeps both sides
    mask = torch.rand(n, L, generator=g) > 0.2
    mask[2, 0] = mask[3, 0] = True
    return logits, target, mask


def _torch_ref_terms(name: str, z: torch.Tensor, y: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """The default form of each loss written out in float64 torch, on kept entries only
    (``z``, ``y``, label index ``j`` are 1-D), so autograd gives the reference gradient."""
    m_pos = torch.tensor(_ref_margins(COUNTS)[0], dtype=torch.float64)[j]
    w = torch.tensor([neg / pos for neg, pos in COUNTS], dtype=torch.float64)[j]
    p = torch.sigmoid(z)

    def bce(x, weight=1.0):
        return -(weight * y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))

    def focal(gamma, alpha):
        p_t = torch.where(y == 1, p, 1 - p)
        a_t = 1.0 if alpha is None else torch.where(y == 1, alpha, 1 - alpha)
        return -a_t * (1 - p_t) ** gamma * torch.where(y == 1, F.logsigmoid(z), F.logsigmoid(-z))

    if name == "bce":
        return bce(z, w)
    if name == "focal":
        return focal(2.0, 0.25)
    if name == "asl":
        p_m = (p - 0.05).clamp(min=0)
        return torch.where(y == 1, -torch.log(p.clamp(min=1e-8)), -(p_m ** 4) * torch.log((1 - p_m).clamp(min=1e-8)))
    ldam = bce(30 * (z - y * m_pos))
    return ldam if name == "ldam" else ldam + focal(1.5, None)


def _masked_reference(name: str, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, reduction: str):
    keep = mask & ~torch.isnan(target)
    rows, cols = keep.nonzero(as_tuple=True)
    terms = _torch_ref_terms(name, logits[rows, cols], target[rows, cols], cols)
    if reduction == "none":
        return torch.zeros_like(logits).index_put((rows, cols), terms)
    if reduction == "sum":
        return terms.sum()
    return terms.sum() / len(terms) if len(terms) else logits.sum() * 0.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(MULTILABEL_LOSSES))
def test_masked_losses_equal_the_float64_formula_without_the_dropped_entries(name, reduction):
    logits, target, mask = _unknown_batch()
    loss = build_loss(name, COUNTS, task="multilabel", reduction=reduction).double()
    x, x_ref = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = loss(x, target, mask=mask)
    ref = _masked_reference(name, x_ref, target, mask, reduction)
    torch.testing.assert_close(ours, ref)
    ours.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    dropped = ~mask | torch.isnan(target)
    assert bool((x.grad[dropped] == 0).all()) and bool(torch.isfinite(x.grad).all())
    if reduction == "none":
        assert bool((ours[dropped] == 0).all())


@pytest.mark.parametrize("name", sorted(MULTILABEL_LOSSES))
def test_gradcheck_float64_with_unknown_entries_and_a_mask(name):
    logits, target, mask = _unknown_batch(n=5)
    loss = build_loss(name, COUNTS, task="multilabel").double()
    x = (logits / 3).clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: loss(v, target, mask=mask), (x,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(MULTILABEL_LOSSES))
def test_nothing_known_is_a_zero_loss_with_a_zero_gradient(name, reduction):
    loss = build_loss(name, COUNTS, task="multilabel", reduction=reduction)
    for target, mask in ((torch.full((3, L), NAN), None), (torch.ones(3, L), torch.zeros(3, L, dtype=torch.bool))):
        x = torch.randn(3, L, requires_grad=True)
        out = loss(x, target, mask=mask)
        out.sum().backward()
        assert bool((out == 0).all()) and bool((x.grad == 0).all())


@pytest.mark.parametrize("name", sorted(MULTILABEL_LOSSES))
def test_nan_minus_one_and_the_mask_drop_the_same_entries(name):
    logits, target, mask = _unknown_batch()
    loss = build_loss(name, COUNTS, task="multilabel")
    logits = logits.float()
    known = ~torch.isnan(target)
    filled = torch.where(known, target, torch.zeros(())).float()
    by_nan = loss(logits, target.float())
    torch.testing.assert_close(loss(logits, filled, mask=known), by_nan)
    torch.testing.assert_close(loss(logits, torch.where(known, target, -1.0).long()), by_nan)  # -1 codes unknown
    # The mask and NaN combine: both drop, neither overrides the other.
    torch.testing.assert_close(loss(logits, target.float(), mask=mask), loss(logits, filled, mask=mask & known))
    # The mean is over the kept entries, not over N x L.
    terms = build_loss(name, COUNTS, task="multilabel", reduction="none")(logits, target.float(), mask=mask)
    torch.testing.assert_close(loss(logits, target.float(), mask=mask), terms.sum() / (mask & known).sum())


@pytest.mark.parametrize("name", sorted(MULTILABEL_LOSSES))
def test_unknown_entries_with_extreme_logits_stay_finite_in_value_and_gradient(name):
    logits = torch.tensor([[1e4, -1e4, 1e4, -1e4], [-1e4, 1e4, -1e4, 1e4]], requires_grad=True)
    target = torch.tensor([[1.0, NAN, 0, NAN], [NAN, 1, NAN, 0]])
    value = build_loss(name, COUNTS, task="multilabel")(logits, target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


def test_label_counts_count_known_entries_only():
    y = torch.tensor([[1, 0, -1], [0, -1, -1], [1, 1, -1], [-1, 0, -1]])
    assert label_counts(y) == [[1, 2], [2, 1], [0, 0]]
    assert label_counts(y.double().masked_fill(y < 0, NAN)) == [[1, 2], [2, 1], [0, 0]]
    with pytest.raises(ValueError, match="label 2 is unknown on every training image"):
        build_loss("bce", label_counts(y), task="multilabel")


def test_margins_and_pos_weight_come_from_the_known_entries():
    g = torch.Generator().manual_seed(3)
    y = (torch.rand(200, L, generator=g) < 0.3).long()
    unknown = torch.rand(200, L, generator=g) < 0.4
    counts = label_counts(y.masked_fill(unknown, -1))
    expected = [[int(((y[:, j] == 0) & ~unknown[:, j]).sum()), int(((y[:, j] == 1) & ~unknown[:, j]).sum())]
                for j in range(L)]
    assert counts == expected and counts != label_counts(y)
    bce = build_loss("bce", counts, task="multilabel")
    torch.testing.assert_close(bce.pos_weight, torch.tensor([n / p for n, p in expected]))
    m_pos, _ = _ref_margins(expected)
    torch.testing.assert_close(build_loss("ldam", counts, task="multilabel").pos_margins.double(),
                               torch.tensor(m_pos, dtype=torch.float64), rtol=1e-6, atol=1e-7)


def test_a_malformed_mask_or_target_is_named():
    loss = build_loss("lmf", COUNTS, task="multilabel")
    logits = torch.zeros(2, L)
    with pytest.raises(ValueError, match=r"mask must be a bool tensor.*got dtype torch.float32"):
        loss(logits, torch.zeros(2, L), mask=torch.ones(2, L))
    with pytest.raises(ValueError, match=r"mask must be a bool tensor.*shape \(2, 3\)"):
        loss(logits, torch.zeros(2, L), mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"0 or 1 \(NaN or -1 where unknown\), got -2"):
        loss(logits, torch.full((2, L), -2.0))


def test_masked_ldam_with_negative_margins_and_pos_weight_equals_the_formula():
    logits, target, mask = _unknown_batch()
    loss = build_loss("ldam", COUNTS, task="multilabel", negative_margins=True, pos_weight="counts").double()
    keep = mask & ~torch.isnan(target)
    rows, cols = keep.nonzero(as_tuple=True)
    m_pos, m_neg = (torch.tensor(m, dtype=torch.float64)[cols] for m in _ref_margins(COUNTS, negative=True))
    w = torch.tensor([neg / pos for neg, pos in COUNTS], dtype=torch.float64)[cols]
    z, y = logits[rows, cols], target[rows, cols]
    s = 30 * (z - y * m_pos + (1 - y) * m_neg)
    expected = -(w * y * F.logsigmoid(s) + (1 - y) * F.logsigmoid(-s)).mean()
    torch.testing.assert_close(loss(logits, target, mask=mask), expected)
