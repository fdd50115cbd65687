"""The default CAM layer: the deepest block with a map of >= 7 px per side at the image size.

One dummy forward per (model, size); models built with weights="none".
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmfloss.cam.layers import (
    candidate_layers,
    choose_target_layer,
    deepest_layer,
    layer_map_sizes,
)
from lmfloss.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CASES = [
    # (model, stem, image size, expected layer, its map)
    ("resnet18", "imagenet", 28, "layer1.1", (7, 7)),
    ("resnet18", "imagenet", 32, "layer1.1", (8, 8)),
    ("resnet18", "imagenet", 64, "layer2.1", (8, 8)),
    ("resnet18", "imagenet", 224, "layer4.1", (7, 7)),  # the paper's classic choice
    ("resnet18", "small", 28, "layer3.1", (7, 7)),
    ("resnet18", "small", 32, "layer3.1", (8, 8)),
    ("resnet18", "small", 64, "layer4.1", (8, 8)),
    ("resnet18", "small", 224, "layer4.1", (28, 28)),
    ("densenet121", "imagenet", 64, "features.denseblock2", (8, 8)),
    ("densenet121", "imagenet", 224, "features", (7, 7)),
    ("densenet121", "small", 64, "features", (8, 8)),
    ("efficientnet_b0", "imagenet", 64, "features.3", (8, 8)),
    ("efficientnet_b0", "imagenet", 224, "features.8", (7, 7)),
    ("efficientnet_b0", "small", 64, "features.5", (8, 8)),
]


@pytest.fixture(scope="module")
def models():
    cache: dict[tuple[str, str], nn.Module] = {}

    def get(name: str, stem: str) -> nn.Module:
        if (name, stem) not in cache:
            torch.manual_seed(0)
            cache[(name, stem)] = build_model(name, 3, "none", stem=stem).train()
        return cache[(name, stem)]

    return get


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


@pytest.mark.parametrize(("name", "stem", "size", "expected", "map_size"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_deepest_block_with_a_7px_map(models, name, stem, size, expected, map_size):
    model = models(name, stem)
    layer = choose_target_layer(model, None, size)
    assert (layer.name, layer.map_size) == (expected, map_size)
    assert layer.module is model.get_submodule(expected)
    assert _hooks(model) == 0 and all(m.training for m in model.modules())
    # The rule itself: at least 7 per side, and every deeper candidate is smaller.
    sizes = layer_map_sizes(model, size)
    candidates = candidate_layers(model)
    assert min(layer.map_size) >= 7
    assert all(min(sizes[c]) < 7 for c in candidates[candidates.index(expected) + 1 :])


def test_densenet_final_features_keep_their_relu(models):
    layer = choose_target_layer(models("densenet121", "imagenet"), None, 224)
    assert layer.name == "features" and layer.transform is not None
    block = choose_target_layer(models("densenet121", "imagenet"), None, 64)
    assert block.transform is None


def test_largest_map_when_none_reaches_the_minimum(models, caplog):
    model = models("resnet18", "imagenet")
    with caplog.at_level("WARNING", logger="lmfloss.cam.layers"):
        layer = choose_target_layer(model, None, 16)  # layer1 is 4x4, deeper blocks smaller
    assert (layer.name, layer.map_size) == ("layer1.1", (4, 4))
    assert caplog.text == ""  # 4x4 is small, not blind
    with caplog.at_level("WARNING", logger="lmfloss.cam.layers"):
        tiny = choose_target_layer(model, None, 8)
    assert (tiny.name, tiny.map_size) == ("layer1.1", (2, 2))
    assert caplog.text.count("\n") == 1 and "layer1.1 has a 2x2 map" in caplog.text


def test_given_layer_warns_when_its_map_is_under_4x4(models, caplog):
    model = models("resnet18", "imagenet")
    with caplog.at_level("WARNING", logger="lmfloss.cam.layers"):
        layer = choose_target_layer(model, "layer4", 64)
    assert layer.map_size == (2, 2)
    assert "layer4 has a 2x2 map" in caplog.text and caplog.text.count("\n") == 1
    caplog.clear()
    with caplog.at_level("WARNING", logger="lmfloss.cam.layers"):
        choose_target_layer(model, "layer3", 64)  # 4x4: no warning
    assert caplog.text == ""


def test_min_map_size_moves_the_choice_and_is_checked(models):
    model = models("resnet18", "imagenet")
    assert choose_target_layer(model, None, 224, min_map_size=14).name == "layer3.1"
    assert choose_target_layer(model, None, 224, min_map_size=1).name == "layer4.1"
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="minimum map size must be an integer >= 1"):
            choose_target_layer(model, None, 64, min_map_size=bad)


def test_without_image_size_the_last_block():
    torch.manual_seed(0)
    small = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=4), nn.Flatten())
    assert choose_target_layer(small).name == "2"
    # Any other model: every Conv2d is a candidate; at 32 px the stride-4 conv is 7x7.
    assert choose_target_layer(small, None, 32).name == "2"
    assert choose_target_layer(small, None, 24).name == "0"


def test_deepest_layer_rule():
    sizes = {"a": (16, 16), "b": (8, 8), "c": (4, 4), "d": (2, 2)}
    assert deepest_layer(["a", "b", "c", "d"], sizes, 7) == "b"
    assert deepest_layer(["a", "b", "c", "d"], sizes, 32) == "a"  # none large enough: largest
    assert deepest_layer(["c", "d", "x"], sizes, 7) == "c"  # "x": no spatial output, skipped
    with pytest.raises(ValueError, match="spatial output"):
        deepest_layer(["x"], sizes, 7)
