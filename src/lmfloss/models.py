"""Classification networks: any torchvision classifier with its head resized to K classes.

The paper (Sadi et al., "Models") fine-tunes three ImageNet-pretrained torchvision
networks: ResNet-50, EfficientNetV2-S and DenseNet-121. :func:`build_model` builds those
and every other torchvision classifier by name (``resnet18`` is the CPU-friendly choice
of the tests and the demo), then replaces the final linear layer by a fresh
``nn.Linear(in_features, num_classes)``.

Weights:
    ``"imagenet"`` — torchvision's own weights enum and download cache
    (``torch.hub.get_dir()/checkpoints``). The paper's models use the weights below
    (:data:`PAPER_WEIGHTS`); any other model uses its ``DEFAULT`` weights.
    ``"none"`` — random initialisation (offline; what the tests and the demo use).
    ``PATH`` — a state dict (or a checkpoint holding one under ``"model"``) saved from
    the same architecture, either with the ImageNet 1000-class head or with K classes.
"""

from __future__ import annotations

import logging
import urllib.error
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models import DenseNet, EfficientNet, ResNet

from lmfloss.errors import LmflossError

logger = logging.getLogger(__name__)

# The weights the paper's authors used (torchvision names). resnet50's V2 recipe is the
# one the authors' code loads; the two others have a single ImageNet enum value.
PAPER_WEIGHTS: dict[str, str] = {
    "resnet50": "IMAGENET1K_V2",
    "densenet121": "IMAGENET1K_V1",
    "efficientnet_v2_s": "IMAGENET1K_V1",
}


def list_models() -> list[str]:
    """Names of the torchvision image classifiers :func:`build_model` accepts."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def _check_name(name: str) -> None:
    valid = list_models()
    if name not in valid:
        raise ValueError(
            f"unknown model {name!r}; expected a torchvision classifier such as "
            f"'resnet50', 'efficientnet_v2_s', 'densenet121' or 'resnet18' "
            f"(all: {', '.join(valid)})"
        )


def _imagenet_weights(name: str) -> torchvision.models.WeightsEnum:
    enum = torchvision.models.get_model_weights(name)
    return enum[PAPER_WEIGHTS[name]] if name in PAPER_WEIGHTS else enum.DEFAULT


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace the last ``nn.Linear`` of ``model`` by a fresh ``Linear(in, num_classes)``.

    The last linear layer in registration order is the classifier in every torchvision
    classifier with a linear head (``fc``, ``classifier[-1]``, ``heads.head``...).
    Inception-style auxiliary heads (``AuxLogits.fc``, ``aux1/aux2``) are resized too.

    Raises:
        ValueError: if the model has no linear layer (e.g. SqueezeNet's conv head).
    """
    linear_names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linear_names:
        raise ValueError(
            f"model {type(model).__name__} has no nn.Linear classifier head to resize; "
            "choose a model with a linear head (e.g. resnet50, densenet121, efficientnet_v2_s)"
        )
    targets = {linear_names[-1]}
    for prefix in ("AuxLogits.", "aux1.", "aux2."):
        under = [n for n in linear_names if n.startswith(prefix)]
        if under:
            targets.add(under[-1])
    for name in sorted(targets):
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, attr)
        setattr(parent, attr, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))
    return model


def _load_state_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a non-checkpoint file
        raise ValueError(f"weights file {str(path)!r} is not a PyTorch state dict: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"weights file {str(path)!r} holds a {type(state).__name__}, expected a state dict")
    # Checkpoints of DistributedDataParallel or torch.compile models carry a prefix.
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


STEMS = ("imagenet", "small")


def _small_resnet_stem(model: nn.Module) -> list[str]:
    model.conv1 = nn.Conv2d(3, model.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return ["conv1"]


def _small_densenet_stem(model: nn.Module) -> list[str]:
    conv = model.features.conv0
    model.features.conv0 = nn.Conv2d(3, conv.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    model.features.pool0 = nn.Identity()
    return ["features.conv0"]


def _small_efficientnet_stem(model: nn.Module) -> list[str]:
    # The first Conv2dNormActivation: 3x3 stride 2 -> stride 1 (EfficientNet has no max-pool).
    conv = model.features[0][0]
    model.features[0][0] = nn.Conv2d(3, conv.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    return ["features.0.0"]


def _small_stems() -> dict[type, Any]:
    return {ResNet: _small_resnet_stem, DenseNet: _small_densenet_stem, EfficientNet: _small_efficientnet_stem}


def apply_stem(model: nn.Module, stem: str, name: str = "") -> list[str]:
    """Give ``model`` the ``stem`` (in place); return the names of the replaced (untrained) layers.

    ``"imagenet"`` keeps torchvision's stem. ``"small"`` is the CIFAR / MedMNIST v2 form for
    28-64 px inputs: the first convolution becomes 3x3 with stride 1 (padding 1) and the
    max-pool after it (ResNet, DenseNet) is removed, so a 28 px image keeps 28x28 feature
    maps in the first block instead of 7x7. Supported: the ResNet family (ResNet, ResNeXt,
    Wide ResNet), DenseNet, EfficientNet and EfficientNetV2.

    Raises:
        ValueError: unknown stem, or ``"small"`` for an architecture without a known stem.
    """
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {list(STEMS)}, got {stem!r}")
    if stem == "imagenet":
        return []
    for cls, replace in _small_stems().items():
        if isinstance(model, cls):
            return replace(model)
    raise ValueError(
        f"stem 'small' is not available for model {name or type(model).__name__!r}; it exists for the "
        "ResNet family (resnet18...resnet152, resnext, wide_resnet), densenet* and efficientnet*; "
        "use --stem imagenet"
    )


_SMALL_STEM_FAMILIES = ("resnet", "resnext", "wide_resnet", "densenet", "efficientnet")


def check_model(name: str, stem: str = "imagenet") -> None:
    """Check a model name and stem without building the network (cheap: for validating
    sweeps before any training).

    Raises:
        ValueError: unknown model (listing the valid ones), unknown stem, or the small stem
            for an architecture without one.
    """
    _check_name(name)
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {list(STEMS)}, got {stem!r}")
    if stem == "small" and not name.startswith(_SMALL_STEM_FAMILIES):
        raise ValueError(
            f"stem 'small' is not available for model {name!r}; it exists for the ResNet family "
            "(resnet18...resnet152, resnext, wide_resnet), densenet* and efficientnet*; use --stem imagenet"
        )


def _architecture(name: str, num_classes: int, stem: str) -> nn.Module:
    """A randomly initialised ``name`` with ``stem`` and a ``num_classes``-way head."""
    model = torchvision.models.get_model(name, weights=None)
    apply_stem(model, stem, name)
    return replace_head(model, num_classes)


def build_model(
    name: str, num_classes: int, weights: str | Path | None = "imagenet", stem: str = "imagenet"
) -> nn.Module:
    """Build a torchvision classifier with a ``num_classes``-way head.

    Args:
        name: torchvision model name (``torchvision.models.list_models()``), e.g.
            ``"resnet50"``, ``"efficientnet_v2_s"``, ``"densenet121"``, ``"resnet18"``.
        num_classes: K, the size of the new head; output logits are ``[N, K]``.
        weights: ``"imagenet"`` (torchvision download/cache; the paper), ``"none"``/``None``
            (random init) or a path to a state dict of the same architecture (and stem).
        stem: ``"imagenet"`` (torchvision's) or ``"small"`` (:func:`apply_stem`). With
            pretrained weights and the small stem, every layer but the replaced first
            convolution is loaded.

    Returns:
        The model in train mode, on the CPU, float32.

    Raises:
        ValueError: unknown name, ``num_classes < 1``, unknown weights value, a stem the
            architecture lacks, or a weights file that does not fit the architecture.
        FileNotFoundError: ``weights`` looks like a path but does not exist.
        LmflossError: ImageNet weights are not cached and cannot be downloaded; the
            message names the file to place in torch.hub's checkpoint folder.
    """
    _check_name(name)
    if not isinstance(num_classes, int) or num_classes < 1:  # 1: a one-logit head (e.g. a binary task's)
        raise ValueError(f"num_classes must be an integer >= 1 (the model's outputs), got {num_classes!r}")
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {list(STEMS)}, got {stem!r}")
    choice = "none" if weights is None else str(weights)
    if choice.lower() == "none":
        return _architecture(name, num_classes, stem)
    if choice.lower() == "imagenet":
        enum_value = _imagenet_weights(name)
        try:
            model = torchvision.models.get_model(name, weights=enum_value)
        except (urllib.error.URLError, OSError) as exc:  # URLError is an OSError; kept for clarity
            file_name = enum_value.url.rsplit("/", 1)[-1]
            folder = Path(torch.hub.get_dir()) / "checkpoints"
            raise LmflossError(
                f"could not download the ImageNet weights of {name!r} ({enum_value}): {exc}. "
                f"Offline, place {file_name} (from {enum_value.url}) in {folder}, "
                "or pass --weights none to train from scratch"
            ) from None
        replaced = apply_stem(model, stem, name)
        logger.info("loaded %s ImageNet weights %s%s", name, enum_value,
                    f" (not into the new small stem: {', '.join(replaced)})" if replaced else "")
        return replace_head(model, num_classes)
    path = Path(choice)
    if not path.exists():
        raise FileNotFoundError(
            f"weights {choice!r} is neither 'imagenet', 'none' nor an existing state-dict file"
        )
    state = _load_state_file(path)
    model = _architecture(name, num_classes, stem)
    try:
        model.load_state_dict(state)
        return model
    except RuntimeError:
        pass
    # A backbone saved with another head (e.g. ImageNet's 1000 classes) or with
    # torchvision's stem: load what fits, then give it this stem and head.
    model = torchvision.models.get_model(name, weights=None)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:2]
        raise ValueError(
            f"weights file {str(path)!r} does not fit model {name!r}: {' '.join(first)}"
        ) from None
    replaced = apply_stem(model, stem, name)
    logger.info("loaded %s backbone weights from %s%s", name, path,
                f" (not into the new small stem: {', '.join(replaced)})" if replaced else "")
    return replace_head(model, num_classes)
