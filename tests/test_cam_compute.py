"""compute_cams and target-layer choice on torchvision models built with weights=None."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from lmfloss.cam import choose_target_layer, compute_cams, resolve_layer
from lmfloss.cam.compute import METHODS
from lmfloss.cam.layers import TargetLayer

SIZE = 64
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=3)


@pytest.fixture(scope="module")
def densenet121():
    torch.manual_seed(0)
    return torchvision.models.densenet121(weights=None, num_classes=3)


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def _reference_gradcam(features_fn, head_fn, x, classes):
    """Grad-CAM by hand (Selvaraju et al. 2017), scaled like pytorch-grad-cam."""
    acts = features_fn(x)
    acts.retain_grad()
    logits = head_fn(acts)
    logits[torch.arange(len(x)), torch.as_tensor(classes)].sum().backward()
    weights = acts.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * acts).sum(1, keepdim=True)).detach()

    def minmax(t):
        t = t - t.amin(dim=(2, 3), keepdim=True)
        return t / (1e-7 + t.amax(dim=(2, 3), keepdim=True))

    up = F.interpolate(minmax(cam), size=x.shape[-2:], mode="bilinear", align_corners=False)
    return minmax(up)[:, 0].numpy()


def test_default_layers_per_architecture(resnet18, densenet121):
    assert choose_target_layer(resnet18).name == "layer4.1"
    assert choose_target_layer(torchvision.models.resnet50(weights=None)).name == "layer4.2"
    dense = choose_target_layer(densenet121)
    assert dense.name == "features" and dense.transform is not None
    eff = torchvision.models.efficientnet_v2_s(weights=None, num_classes=3)
    assert choose_target_layer(eff).name == f"features.{len(eff.features) - 1}"
    # Any other model: the last Conv2d.
    small = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.Flatten())
    assert choose_target_layer(small).name == "2"


def test_unknown_layer_lists_candidates(resnet18):
    with pytest.raises(ValueError, match=r"'layer5\.1'.*did you mean.*candidate layers:.*layer4"):
        resolve_layer(resnet18, "layer5.1")
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        choose_target_layer(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)))


def test_gradcam_matches_hand_computed_resnet(resnet18, images):
    model = resnet18.eval()
    body = nn.Sequential(*list(model.children())[:-2])
    with torch.no_grad():
        pred = model(images).argmax(1).tolist()
    # At 64 px layer4 is 2x2: the default is the deepest block with a 7x7 map or more ...
    auto = compute_cams(model, images, method="gradcam")
    assert (auto.layer, auto.map_size) == ("layer2.1", (8, 8))
    # ... and the reference below is the classic last block, named explicitly.
    result = compute_cams(model, images, method="gradcam", target_layer="layer4.1")
    assert (result.layer, result.map_size) == ("layer4.1", (2, 2))
    assert result.predicted.tolist() == pred
    assert result.target_classes.tolist() == pred
    ref = _reference_gradcam(body, lambda a: model.fc(torch.flatten(model.avgpool(a), 1)), images, pred)
    model.zero_grad(set_to_none=True)
    np.testing.assert_allclose(result.maps, ref, atol=1e-4)
    with torch.no_grad():
        probs = torch.softmax(model(images), 1).numpy()
    np.testing.assert_allclose(result.probabilities, probs, atol=1e-5)


def test_densenet_uses_post_relu_features_and_restores_train_mode(densenet121, images):
    model = densenet121.train()
    model.eval()  # reference in eval mode, as the CAM runs
    classes = [0, 1, 2]

    def features(x):
        return torch.relu(model.features(x))

    def head(a):
        # DenseNet.forward applies its ReLU again (in place) after ``features``.
        return model.classifier(torch.flatten(F.adaptive_avg_pool2d(torch.relu(a), 1), 1))

    ref = _reference_gradcam(features, head, images, classes)
    model.zero_grad(set_to_none=True)
    model.train()
    result = compute_cams(model, images, classes, target_layer="features")
    assert model.training and all(m.training for m in model.modules())
    np.testing.assert_allclose(result.maps, ref, atol=1e-4)
    assert result.target_classes.tolist() == classes


def test_true_target_differs_from_predicted(resnet18, images):
    model = resnet18.eval()
    pred = compute_cams(model, images)
    other = [(int(p) + 1) % 3 for p in pred.predicted]
    alt = compute_cams(model, images, other)
    assert alt.target_classes.tolist() == other
    assert not np.allclose(alt.maps, pred.maps)


@pytest.mark.parametrize("method", sorted(set(METHODS) - {"scorecam"}))
def test_every_method_gives_unit_maps(resnet18, images, method):
    result = compute_cams(resnet18, images[:2], method=method)
    assert result.maps.shape == (2, SIZE, SIZE)
    assert result.maps.dtype == np.float32
    assert result.maps.min() >= 0.0 and result.maps.max() <= 1.0 + 1e-6
    assert np.isfinite(result.maps).all()


def test_scorecam_runs_on_a_small_net(images, capsys):
    import pytorch_grad_cam.score_cam as score_cam

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)
    )
    capsys.readouterr()
    result = compute_cams(model, images[:2], method="scorecam", batch_size=2)
    assert result.maps.shape == (2, SIZE, SIZE) and result.maps.max() > 0.5
    # The package's per-image bar is hidden, and its tqdm is given back afterwards.
    assert "it/s" not in capsys.readouterr().err
    assert score_cam.tqdm.__name__ == "tqdm"


def test_efficientnet_and_dotted_override(images):
    torch.manual_seed(0)
    model = torchvision.models.efficientnet_v2_s(weights=None, num_classes=3)
    result = compute_cams(model, images[:1])
    # features.7 (the last block) is 2x2 at 64 px; features.3 is the deepest at 8x8.
    assert (result.layer, result.map_size) == ("features.3", (8, 8))
    assert result.maps.shape == (1, SIZE, SIZE)
    assert compute_cams(model, images[:1], min_map_size=2).layer == "features.7"
    custom = compute_cams(model, images[:1], target_layer="features.6")
    assert custom.layer == "features.6"


def test_errors_name_the_value(resnet18, images):
    with pytest.raises(ValueError, match="unknown CAM method 'gradkam'"):
        compute_cams(resnet18, images, method="gradkam")
    with pytest.raises(ValueError, match="2 target classes for 3 images"):
        compute_cams(resnet18, images, [0, 1])
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        compute_cams(resnet18, images[0])
    with pytest.raises(ValueError, match="out of range"):
        compute_cams(resnet18, images[:1], [7])
    with pytest.raises(ValueError, match="target class -1 out of range"):
        compute_cams(resnet18, images[:1], [-1])
    _assert_clean(resnet18)


def _hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def _assert_clean(model: nn.Module) -> None:
    assert _hook_count(model) == 0
    assert all(p.grad is None for p in model.parameters())


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance() on deprecated torch module objects
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def test_no_hooks_or_memory_left_after_50_calls():
    # A small BatchNorm CNN keeps 50 calls cheap; the hook code path is the one every
    # architecture takes. Half the calls use a transformed target (DenseNet's path).
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3),
    ).train()
    relu_target = TargetLayer("4", model[4], torch.relu)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    compute_cams(model, x)  # warm-up: lazy imports, caches
    compute_cams(model, x, target_layer=relu_target)
    before = _live_tensors()
    for i in range(50):
        target = relu_target if i % 2 else None
        result = compute_cams(model, x, [i % 3, (i + 1) % 3], target_layer=target)
        assert result.maps.shape == (2, 32, 32)
    _assert_clean(model)
    assert _live_tensors() == before
    assert all(m.training for m in model.modules())
    # An error in the middle of a call also releases everything.
    with pytest.raises(ValueError):
        compute_cams(model, x, [5, 0], target_layer=relu_target)
    _assert_clean(model)
    assert all(m.training for m in model.modules())


def test_densenet_hooks_released_after_error(densenet121, images):
    with pytest.raises(ValueError, match="out of range"):
        compute_cams(densenet121.train(), images[:1, :, :32, :32], [9])
    _assert_clean(densenet121)
    assert all(m.training for m in densenet121.modules())


def test_existing_grads_survive(resnet18, images):
    for p in resnet18.parameters():
        p.grad = torch.full_like(p, 0.5)
    try:
        compute_cams(resnet18, images[:1])
        assert all(torch.all(p.grad == 0.5) for p in resnet18.parameters())
    finally:
        resnet18.zero_grad(set_to_none=True)


@pytest.mark.parametrize("task_name", ["multiclass", "multilabel"])
def test_probabilities_are_the_tasks(resnet18, images, task_name):
    """``probabilities`` are the run's task's (a softmax, or a sigmoid per label); the maps do
    not depend on the task."""
    from lmfloss.task import get_task

    task = get_task(task_name)
    model = resnet18.eval()
    result = compute_cams(model, images, [0, 1, 2], task=task)
    with torch.no_grad():
        expected = task.probabilities(model(images).float()).numpy()
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(result.maps, compute_cams(model, images, [0, 1, 2]).maps)
