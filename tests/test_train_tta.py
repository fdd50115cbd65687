"""Issue 12: test-time augmentation by flips."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmfloss.train.engine import predict_logits, tta_views


class FlipInvariant(nn.Module):
    """A classifier that sees ``x + hflip(x) + vflip(x) + hvflip(x)``: flip-invariant by construction."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x + x.flip(-1) + x.flip(-2) + x.flip(-1).flip(-2))


@pytest.mark.parametrize("tta", ["flip", "flip4"])
def test_tta_of_a_flip_invariant_model_changes_nothing(tta):
    model = FlipInvariant().eval()
    images = torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        plain = torch.softmax(predict_logits(model, images), dim=1)
        averaged = torch.softmax(predict_logits(model, images, tta), dim=1)
    torch.testing.assert_close(averaged, plain, rtol=1e-5, atol=1e-6)


def test_tta_probabilities_are_the_mean_over_views_in_0_1_summing_to_1():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(4)).eval()
    images = torch.rand(3, 3, 8, 8)
    with torch.no_grad():
        model(images)
        probs = torch.softmax(predict_logits(model, images, "flip4"), dim=1)
        views = tta_views(images, "flip4")
        expected = torch.stack([torch.softmax(model(v), dim=1) for v in views]).mean(0)
    assert len(views) == 4
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-7)
    assert bool((probs >= 0).all() and (probs <= 1).all())
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="tta must be one of"):
        tta_views(images, "rotate")
