"""Tests of lmfloss.losses against references: nn.CrossEntropyLoss, identities of the
formulas, and independent float64 implementations written from the paper's equations."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmfloss.losses import (
    LOSSES,
    build_loss,
    bwcce_weights,
    class_balanced_weights,
    class_counts,
    compute_margins,
    functional,
    inverse_frequency_weights,
    loss_parameters,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
REDUCTIONS = ["mean", "sum", "none"]
COUNTS = [500, 120, 7, 40, 3]  # K = 5, rarest class is index 4
K = len(COUNTS)


def _batch(n: int = 16, k: int = K, dtype=torch.float32, device="cpu", seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(n, k, generator=g, dtype=torch.float64)).to(dtype).to(device)
    target = torch.randint(0, k, (n,), generator=g).to(device)
    target[:k] = torch.arange(k)  # every class present at least once
    return logits.requires_grad_(), target


def _value_and_grad(fn, logits, target):
    x = logits.detach().clone().requires_grad_()
    out = fn(x, target)
    out.sum().backward()
    return out.detach(), x.grad


# ----------------------------------------------------------------- float64 references
# Written directly from the paper's equations with Python floats (no torch), one sample at a time.
def _ref_margins(counts, max_margin=0.5):
    inv = [n ** -0.25 for n in counts]
    return [max_margin * v / max(inv) for v in inv]


def _ref_log_softmax(row, y):
    top = max(row)
    return row[y] - (top + math.log(sum(math.exp(r - top) for r in row)))


def _reduce(per, denom, reduction):
    if reduction == "none":
        return per
    return sum(per) / denom if reduction == "mean" else sum(per)


def _ref_ldam(z, t, counts, *, max_margin=0.5, scale=30.0, weight="margins", reduction="mean"):
    m = _ref_margins(counts, max_margin)
    w = m if weight == "margins" else (weight or [1.0] * len(counts))
    per = []
    for row, y in zip(z, t, strict=True):
        shifted = [scale * (v - (m[y] if j == y else 0.0)) for j, v in enumerate(row)]
        per.append(-w[y] * _ref_log_softmax(shifted, y))
    return _reduce(per, sum(w[y] for y in t), reduction)


def _ref_focal(z, t, counts, *, gamma=1.5, alpha="margins", max_margin=0.5, reduction="mean"):
    a = _ref_margins(counts, max_margin) if alpha == "margins" else (alpha or [1.0] * len(counts))
    per = []
    for row, y in zip(z, t, strict=True):
        log_p = _ref_log_softmax(row, y)
        per.append(-a[y] * (1.0 - math.exp(log_p)) ** gamma * log_p)
    return _reduce(per, len(t), reduction)


def _ref_lmf(z, t, counts, *, alpha=1.0, beta=1.0, gamma=1.5, reduction="mean"):
    ldam = _ref_ldam(z, t, counts, reduction=reduction)
    focal = _ref_focal(z, t, counts, gamma=gamma, reduction=reduction)
    if reduction == "none":
        return [alpha * a + beta * b for a, b in zip(ldam, focal, strict=True)]
    return alpha * ldam + beta * focal


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(
        actual.detach().double().cpu(), torch.as_tensor(expected, dtype=torch.float64),
        rtol=rtol, atol=atol,
    )


# ------------------------------------------------------------------ counts and weights
def test_class_counts_matches_bincount_order():
    targets = [2, 0, 2, 1, 2, 0]
    assert class_counts(targets, 4) == [2, 1, 3, 0]
    assert class_counts(torch.tensor(targets), 3) == [2, 1, 3]


@pytest.mark.realdata("data/retinamnist/retinamnist.npz")
def test_class_counts_on_retinamnist():
    path = SHARED / "retinamnist" / "retinamnist.npz"
    import numpy as np

    labels = np.load(path)["train_labels"]  # uint8 [1080, 1]
    counts = class_counts(labels, 5)
    assert counts == [486, 128, 206, 194, 66]  # the official MedMNIST v2 train counts
    assert class_counts(torch.from_numpy(labels.reshape(-1).astype(np.int64)), 5) == counts
    margins = compute_margins(counts)
    assert margins[4].item() == pytest.approx(0.5, abs=1e-12)  # rarest class (66) gets 0.5
    assert margins.argmin().item() == 0  # most frequent class gets the smallest margin


@pytest.mark.parametrize(
    ("targets", "num_classes", "match"),
    [([0, 3], 3, r"target 3 is outside \[0, 3\)"), ([0, -1], 3, "target -1"),
     (torch.tensor([0.0, 1.0]), 2, "integer"), ([0], 0, "num_classes must be a positive int")],
)
def test_class_counts_errors(targets, num_classes, match):
    with pytest.raises(ValueError, match=match):
        class_counts(targets, num_classes)


def test_margins_weights_match_formulas():
    torch.testing.assert_close(compute_margins(COUNTS), torch.tensor(_ref_margins(COUNTS), dtype=torch.float64))
    assert compute_margins(COUNTS, 0.3).max().item() == pytest.approx(0.3)
    n_total = sum(COUNTS)
    bw = [(1 - n / n_total) / (K - 1) for n in COUNTS]
    torch.testing.assert_close(bwcce_weights(COUNTS), torch.tensor(bw, dtype=torch.float64))
    assert bwcce_weights(COUNTS).sum().item() == pytest.approx(1.0)
    inv = [1 / n for n in COUNTS]
    inv = [K * v / sum(inv) for v in inv]
    torch.testing.assert_close(inverse_frequency_weights(COUNTS), torch.tensor(inv, dtype=torch.float64))
    beta = 0.9999
    cb = [(1 - beta) / (1 - beta ** n) for n in COUNTS]
    cb = [K * v / sum(cb) for v in cb]
    torch.testing.assert_close(class_balanced_weights(COUNTS, beta), torch.tensor(cb, dtype=torch.float64))
    torch.testing.assert_close(class_balanced_weights(COUNTS, 0.0), torch.ones(K, dtype=torch.float64))


# ----------------------------------------------------------- identities and references
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_focal_gamma0_no_alpha_equals_ce(device, dtype, reduction):
    logits, target = _batch(dtype=dtype, device=device)
    ours = build_loss("focal", COUNTS, gamma=0.0, alpha=None, reduction=reduction).to(device)
    v, g = _value_and_grad(ours, logits, target)
    rv, rg = _value_and_grad(nn.CrossEntropyLoss(reduction=reduction), logits, target)
    torch.testing.assert_close(v, rv)
    torch.testing.assert_close(g, rg)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ldam_zero_margin_scale1_equals_ce(device, reduction):
    logits, target = _batch(device=device)
    ours = build_loss("ldam", COUNTS, max_margin=0.0, scale=1.0, class_weight=None, reduction=reduction)
    v, g = _value_and_grad(ours.to(device), logits, target)
    rv, rg = _value_and_grad(nn.CrossEntropyLoss(reduction=reduction), logits, target)
    torch.testing.assert_close(v, rv)
    torch.testing.assert_close(g, rg)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    ("name", "weights"),
    [("wce", [1 / n for n in COUNTS]),
     ("bwcce", [(1 - n / sum(COUNTS)) / (K - 1) for n in COUNTS])],
)
def test_weighted_ce_equals_torch(device, reduction, name, weights):
    logits, target = _batch(device=device)
    w = torch.tensor(weights, device=device)
    if reduction != "mean":  # "sum"/"none" see the normalisation: wce sums to K, bwcce to 1
        w = w * (K if name == "wce" else 1.0) / w.sum()
    v, g = _value_and_grad(build_loss(name, COUNTS, reduction=reduction).to(device), logits, target)
    rv, rg = _value_and_grad(nn.CrossEntropyLoss(weight=w, reduction=reduction), logits, target)
    torch.testing.assert_close(v, rv)
    torch.testing.assert_close(g, rg)


def test_bwcce_is_wce_for_two_classes_and_not_for_more():
    """With K = 2, (1 - n_j/N) = n_other/N is proportional to 1/n_j, and the weighted mean is
    scale-free: BWCCE and WCE are one loss on binary tasks (seen on BreastMNIST)."""
    two = [147, 399]
    logits, target = torch.randn(64, 2, dtype=torch.float64), torch.randint(0, 2, (64,))
    torch.testing.assert_close(build_loss("bwcce", two)(logits, target), build_loss("wce", two)(logits, target))
    logits, target = _batch(dtype=torch.float64)
    assert not torch.allclose(build_loss("bwcce", COUNTS)(logits, target), build_loss("wce", COUNTS)(logits, target))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ldam_focal_lmf_match_float64_formulas(reduction):
    logits, target = _batch(n=12, dtype=torch.float64, seed=3)
    z, t = logits.tolist(), target.tolist()
    _close(build_loss("ldam", COUNTS, reduction=reduction)(logits, target),
           _ref_ldam(z, t, COUNTS, reduction=reduction))
    _close(build_loss("focal", COUNTS, reduction=reduction)(logits, target),
           _ref_focal(z, t, COUNTS, reduction=reduction))
    _close(build_loss("lmf", COUNTS, alpha=0.7, beta=2.0, reduction=reduction)(logits, target),
           _ref_lmf(z, t, COUNTS, alpha=0.7, beta=2.0, reduction=reduction))


def test_hand_computed_small_case():
    # K = 3, counts [10, 160, 40]: n^(-1/4) is largest for class 0, so m = [0.5, 0.25, 0.5*(1/4)^(1/4)].
    counts = [10, 160, 40]
    m0, m1, m2 = 0.5, 0.5 * (10 / 160) ** 0.25, 0.5 * (10 / 40) ** 0.25
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, 1.0, -1.0]], dtype=torch.float64)
    target = torch.tensor([0, 1])
    # LDAM, s = 30: row 0 -> [30*(1-0.5), 60, 15], row 1 -> [0, 30*(1-m1), -30]; weights = margins.
    l0 = math.log(math.exp(15) + math.exp(60) + math.exp(15)) - 15
    l1 = math.log(1 + math.exp(30 * (1 - m1)) + math.exp(-30)) - 30 * (1 - m1)
    ldam = (m0 * l0 + m1 * l1) / (m0 + m1)
    _close(build_loss("ldam", counts)(logits, target), ldam, rtol=1e-12)
    # focal, gamma 1.5, alpha = margins, plain mean over the 2 samples.
    p0 = math.exp(1) / (math.exp(1) + math.exp(2) + math.exp(0.5))
    p1 = math.exp(1) / (1 + math.exp(1) + math.exp(-1))
    focal = (-m0 * (1 - p0) ** 1.5 * math.log(p0) - m1 * (1 - p1) ** 1.5 * math.log(p1)) / 2
    _close(build_loss("focal", counts)(logits, target), focal, rtol=1e-12)
    _close(build_loss("lmf", counts)(logits, target), ldam + focal, rtol=1e-12)
    assert compute_margins(counts).tolist() == pytest.approx([m0, m1, m2], rel=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_lmf_is_alpha_ldam_plus_beta_focal(reduction):
    logits, target = _batch(seed=5)
    ldam = build_loss("ldam", COUNTS, reduction=reduction)
    focal = build_loss("focal", COUNTS, reduction=reduction)
    only_ldam = build_loss("lmf", COUNTS, alpha=1.7, beta=0.0, reduction=reduction)
    v, g = _value_and_grad(only_ldam, logits, target)
    rv, rg = _value_and_grad(lambda x, y: 1.7 * ldam(x, y), logits, target)
    torch.testing.assert_close(v, rv)
    torch.testing.assert_close(g, rg)
    both = build_loss("lmf", COUNTS, alpha=0.5, beta=2.0, reduction=reduction)
    v, g = _value_and_grad(both, logits, target)
    rv, rg = _value_and_grad(lambda x, y: 0.5 * ldam(x, y) + 2.0 * focal(x, y), logits, target)
    torch.testing.assert_close(v, rv)
    torch.testing.assert_close(g, rg)


def _naive_lmf(x, y, counts, gamma=1.5, scale=30.0):
    """Dense one-hot LMF as the authors' code writes it (softmax, then log) — float64 only."""
    m = torch.tensor(_ref_margins(counts), dtype=x.dtype)
    onehot = F.one_hot(y, len(counts)).to(torch.bool)
    zm = torch.where(onehot, x - m[y].unsqueeze(1), x)
    ldam = F.cross_entropy(scale * zm, y, weight=m)
    p = torch.softmax(x, dim=1)[torch.arange(len(y)), y]
    focal = (-m[y] * (1 - p) ** gamma * torch.log(p)).mean()
    return ldam + focal


def test_lmf_gradient_matches_naive_implementation():
    logits, target = _batch(dtype=torch.float64, seed=9)
    v, g = _value_and_grad(build_loss("lmf", COUNTS).double(), logits, target)
    rv, rg = _value_and_grad(lambda x, y: _naive_lmf(x, y, COUNTS), logits, target)
    torch.testing.assert_close(v, rv)
    torch.testing.assert_close(g, rg)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("base", ["ce", "focal"])
def test_class_balanced_matches_formula(reduction, base):
    logits, target = _batch(seed=11)
    w = class_balanced_weights(COUNTS, 0.999).float()
    ours = build_loss("cb", COUNTS, beta=0.999, base=base, gamma=2.0, reduction=reduction)
    if base == "ce":
        ref = lambda x, y: F.cross_entropy(x, y, reduction="none") * w[y]  # noqa: E731
    else:
        ref = lambda x, y: functional.focal_loss(x, y, gamma=2.0, alpha=w, reduction="none")  # noqa: E731
    reduce = {"mean": torch.mean, "sum": torch.sum, "none": lambda v: v}[reduction]
    v, g = _value_and_grad(ours, logits, target)
    rv, rg = _value_and_grad(lambda x, y: reduce(ref(x, y)), logits, target)
    torch.testing.assert_close(v, rv)
    torch.testing.assert_close(g, rg)


def test_logit_adjusted_is_ce_on_shifted_logits():
    logits, target = _batch(seed=13)
    prior = torch.tensor(COUNTS, dtype=torch.float32) / sum(COUNTS)
    for tau in (1.0, 0.5):
        v, g = _value_and_grad(build_loss("logit-adjusted", COUNTS, tau=tau), logits, target)
        rv, rg = _value_and_grad(lambda x, y, tau=tau: F.cross_entropy(x + tau * prior.log(), y), logits, target)
        torch.testing.assert_close(v, rv)
        torch.testing.assert_close(g, rg)
    v0 = build_loss("logit-adjusted", COUNTS, tau=0.0)(logits, target)
    torch.testing.assert_close(v0, F.cross_entropy(logits, target))


def test_ce_equals_torch():
    logits, target = _batch()
    torch.testing.assert_close(build_loss("ce", COUNTS)(logits, target), F.cross_entropy(logits, target))


# ----------------------------------------------------------------- DRW and set_epoch
def test_every_loss_has_set_epoch_and_drw_switches_weights():
    logits, target = _batch(seed=17)
    for name in LOSSES:
        loss = build_loss(name, COUNTS)
        before = loss(logits, target)
        loss.set_epoch(5)
        torch.testing.assert_close(loss(logits, target), before)  # no schedule: no change
    cb = class_balanced_weights(COUNTS, 0.9999).float()
    ldam = build_loss("ldam", COUNTS, drw_epoch=3)
    plain = build_loss("ldam", COUNTS)
    ldam.set_epoch(2)
    torch.testing.assert_close(ldam(logits, target), plain(logits, target))
    ldam.set_epoch(3)
    assert ldam.drw_active
    expected = functional.ldam_loss(logits, target, margins=plain.margins, weight=cb)
    torch.testing.assert_close(ldam(logits, target), expected)
    lmf = build_loss("lmf", COUNTS, drw_epoch=0, beta=2.0)
    lmf.set_epoch(0)
    expected = functional.lmf_loss(logits, target, margins=plain.margins, beta=2.0, weight=cb, focal_alpha=cb)
    torch.testing.assert_close(lmf(logits, target), expected)
    with pytest.raises(ValueError, match="epoch must be an int >= 0, got -1"):
        lmf.set_epoch(-1)


# -------------------------------------------------------------------------- numerics
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradcheck_float64(device, name):
    logits, target = _batch(n=6, dtype=torch.float64, device=device, seed=19)
    params = {"scale": 2.0} if name in ("ldam", "lmf") else {}  # keep the Jacobian well scaled
    for reduction in ("mean", "none"):
        loss = build_loss(name, COUNTS, reduction=reduction, **params).double().to(device)
        assert torch.autograd.gradcheck(lambda x, loss=loss: loss(x, target), (logits.detach().requires_grad_(),))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_extreme_logits_stay_finite(device, name, reduction):
    logits = torch.tensor(
        [[1e4, -1e4, 0.0, 5.0, -1e4], [-1e4, 1e4, 1e4, 0.0, 0.0], [0.0] * 5, [-1e4] * 4 + [1e4]],
        device=device,
    ).requires_grad_()
    target = torch.tensor([0, 0, 2, 4], device=device)  # confident right, confident wrong, tie, sure
    loss = build_loss(name, COUNTS, reduction=reduction).to(device)
    out = loss(logits, target)
    out.sum().backward()
    assert torch.isfinite(out).all(), out
    assert torch.isfinite(logits.grad).all(), logits.grad


@pytest.mark.parametrize("gamma", [0.25, 0.5, 1.0, 2.0])
def test_focal_fractional_gamma_at_certainty(gamma):
    # p_y == 1 exactly: (1 - p)^γ has an infinite derivative for γ < 1; the term's gradient is 0.
    logits = torch.tensor([[50.0, -50.0, -50.0], [0.2, 0.1, -0.3]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 1])
    out = functional.focal_loss(logits, target, gamma=gamma, reduction="none")
    out.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0].abs().max().item() < 1e-20
    expected = _ref_focal([[0.2, 0.1, -0.3]], [1], [1, 1, 1], gamma=gamma, alpha=None, reduction="sum")
    assert out[1].item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_half_precision_logits_give_float32_loss(name, half):
    logits, target = _batch(seed=23)
    low = logits.detach().to(half).requires_grad_()
    loss = build_loss(name, COUNTS)
    out = loss(low, target)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, loss(low.detach().float(), target))
    out.backward()
    assert low.grad.dtype == half and torch.isfinite(low.grad.float()).all()


def test_buffers_follow_double_and_state_dict():
    loss = build_loss("lmf", COUNTS, drw_epoch=2).double()
    assert loss.margins.dtype == torch.float64 and loss.weight.dtype == torch.float64
    assert loss.class_counts.dtype == torch.int64  # integer buffers are not cast
    assert {"margins", "weight", "focal_alpha", "drw_weight", "class_counts"} <= set(loss.state_dict())
    logits, target = _batch(dtype=torch.float64)
    assert loss(logits, target).dtype == torch.float64


def test_no_cuda_calls_in_source():
    src = Path(functional.__file__).parent
    for path in src.glob("*.py"):
        assert ".cuda(" not in path.read_text(), path


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("name", "counts", "params", "match"),
    [
        ("nope", COUNTS, {}, r"unknown loss 'nope'; valid names are \['bwcce', 'cb', 'ce'"),
        ("lmf", COUNTS, {"gama": 2}, r"unknown parameter\(s\) \['gama'\] for loss 'lmf'"),
        ("lmf", [10, 5, 0, 3], {}, "class 2 has 0 training samples"),
        ("ldam", [10, -1], {}, "class 1 has -1 training samples"),
        ("ce", [10], {}, "at least 2 classes"),
        ("ce", [10, 2.5], {}, "class 1 has count 2.5"),
        ("ce", [float("nan"), 2], {}, "class 0 has count nan"),
        ("ce", "12", {}, "got the string '12'"),
        ("lmf", {"a": 3, "b": 4}, {}, "got a mapping"),
        ("focal", COUNTS, {"gamma": -1.0}, "gamma must be >= 0, got -1.0"),
        ("lmf", COUNTS, {"alpha": -0.5}, "alpha must be >= 0, got -0.5"),
        ("lmf", COUNTS, {"beta": -2}, "beta must be >= 0, got -2"),
        ("ldam", COUNTS, {"scale": -30.0}, "scale must be >= 0, got -30.0"),
        ("ldam", COUNTS, {"scale": float("nan")}, "scale must be a finite number"),
        ("cb", COUNTS, {"beta": 1.0}, r"beta must be a number in \[0, 1\), got 1.0"),
        ("cb", COUNTS, {"base": "bce"}, "base must be 'ce' or 'focal', got 'bce'"),
        ("ldam", COUNTS, {"class_weight": "balanced"}, "class_weight must be one of"),
        ("ldam", COUNTS, {"class_weight": [1.0, 2.0]}, "class_weight has 2 values but class_counts has 5"),
        ("focal", COUNTS, {"alpha": [1, 1, 1, -1, 1]}, "alpha must be finite and >= 0"),
        ("focal", COUNTS, {"alpha": [0, 0, 0, 0, 0]}, "alpha is all zeros"),
        ("ldam", COUNTS, {"max_margin": 0.0}, "class_weight='margins' with max_margin=0"),
        ("lmf", COUNTS, {"max_margin": 0.0, "class_weight": None}, "focal_alpha='margins' with max_margin=0"),
        ("ldam", COUNTS, {"drw_epoch": -3}, "drw_epoch must be None or an int >= 0, got -3"),
        ("ce", COUNTS, {"reduction": "avg"}, "reduction must be one of"),
    ],
)
def test_build_errors(name, counts, params, match):
    with pytest.raises(ValueError, match=match):
        build_loss(name, counts, **params)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_forward_errors(name):
    loss = build_loss(name, COUNTS)
    logits, target = _batch()
    with pytest.raises(ValueError, match="logits have 3 classes .* class_counts has 5"):
        loss(logits[:, :3], target.clamp(max=2))
    with pytest.raises(ValueError, match=r"target 5 is outside \[0, 5\)"):
        loss(logits, torch.where(target == 0, 5, target))
    with pytest.raises(ValueError, match=r"target -1 is outside"):
        loss(logits, torch.where(target == 0, -1, target))
    with pytest.raises(ValueError, match="integer class indices.*torch.float32"):
        loss(logits, target.float())
    with pytest.raises(ValueError, match=r"logits must have shape \[N, K\], got shape \(16,\)"):
        loss(logits[:, 0], target)
    with pytest.raises(ValueError, match=r"target must have shape \[N\] = \[16\]"):
        loss(logits, target[:4])


def test_registry_and_parameters():
    assert set(LOSSES) == {"ce", "wce", "bwcce", "ldam", "focal", "lmf", "cb", "logit-adjusted"}
    assert loss_parameters("lmf") == {
        "alpha": 1.0, "beta": 1.0, "gamma": 1.5, "max_margin": 0.5, "scale": 30.0,
        "class_weight": "margins", "focal_alpha": "margins", "drw_epoch": None,
        "drw_beta": 0.9999, "reduction": "mean",
    }
    for name, cls in LOSSES.items():
        assert cls.description and isinstance(build_loss(name, COUNTS), nn.Module)


def test_losses_import_only_torch():
    code = (
        "import sys, torch\n"
        "before = set(sys.modules)\n"
        "import lmfloss.losses\n"
        "new = sorted({m.split('.')[0] for m in set(sys.modules) - before})\n"
        "print(' '.join(m for m in new if m not in sys.stdlib_module_names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["lmfloss"], out.stdout


def test_losses_source_imports_only_torch_and_stdlib():
    # The subprocess check above cannot see numpy (torch itself loads it), so read the imports.
    import ast

    allowed = {"torch", "__future__", "lmfloss"} | set(sys.stdlib_module_names)
    for path in Path(functional.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [node.module.split(".")[0]]
            else:
                continue
            assert set(roots) <= allowed, f"{path.name} imports {roots}"


def test_functional_accepts_sequences_and_checks_per_class_length():
    logits, target = _batch(seed=29)
    m = compute_margins(COUNTS)
    torch.testing.assert_close(
        functional.ldam_loss(logits, target, margins=m.tolist(), weight=m.tolist()),
        build_loss("ldam", COUNTS)(logits, target),
    )
    with pytest.raises(ValueError, match="logits have 5 classes .* class_counts has 3"):
        functional.focal_loss(logits, target, alpha=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"weight must have shape \[K\] = \[5\], got shape \(\)"):
        functional.cross_entropy(logits, target, weight=torch.tensor(1.0))
