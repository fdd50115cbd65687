"""lmfloss.models.build_model: heads, weight files, and the offline ImageNet path (no network)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from lmfloss.errors import LmflossError
from lmfloss.models import build_model, list_models, replace_head


@pytest.mark.parametrize(
    ("name", "size"),
    [("resnet18", 32), ("densenet121", 32), ("efficientnet_v2_s", 32), ("mobilenet_v3_small", 32)],
)
def test_head_has_k_outputs(name, size):
    torch.manual_seed(0)
    model = build_model(name, 5, weights="none").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, size, size))
    assert out.shape == (2, 5)


def test_paper_models_are_listed():
    names = list_models()
    for name in ("resnet50", "efficientnet_v2_s", "densenet121", "resnet18"):
        assert name in names


def test_unknown_model_names_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model 'resnet5'.*resnet50"):
        build_model("resnet5", 3, weights="none")


def test_num_classes_checked():
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1 .*got 0"):
        build_model("resnet18", 0, weights="none")
    assert build_model("resnet18", 1, weights="none").fc.out_features == 1  # a one-logit head


def test_replace_head_rejects_conv_head():
    with pytest.raises(ValueError, match="no nn.Linear"):
        replace_head(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1)), 3)


def test_weights_file_with_imagenet_head_loads_backbone(tmp_path: Path):
    torch.manual_seed(1)
    source = torchvision.models.resnet18()  # 1000-class head, like an ImageNet state dict
    path = tmp_path / "r18.pt"
    torch.save(source.state_dict(), path)
    model = build_model("resnet18", 4, weights=str(path))
    assert model.fc.out_features == 4
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight, rtol=0, atol=0)


def test_weights_file_with_k_head_and_checkpoint_dict(tmp_path: Path):
    torch.manual_seed(2)
    source = build_model("resnet18", 3, weights="none")
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = build_model("resnet18", 3, weights=path)
    torch.testing.assert_close(model.fc.weight, source.fc.weight, rtol=0, atol=0)


def test_weights_file_of_other_architecture(tmp_path: Path):
    path = tmp_path / "other.pt"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)
    with pytest.raises(ValueError, match="does not fit model 'resnet18'"):
        build_model("resnet18", 3, weights=path)


def test_missing_weights_path():
    with pytest.raises(FileNotFoundError, match=r"'/nonexistent/w.pt' is neither 'imagenet', 'none'"):
        build_model("resnet18", 3, weights="/nonexistent/w.pt")


def test_offline_imagenet_names_file_and_folder(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    # torchvision's WeightsEnum.get_state_dict goes through torch.hub.load_state_dict_from_url.
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", no_network, raising=False)
    with pytest.raises(LmflossError) as info:
        build_model("resnet50", 7, weights="imagenet")
    message = str(info.value)
    assert "resnet50-11ad3fa6.pth" in message  # the IMAGENET1K_V2 file the paper's authors used
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "--weights none" in message
