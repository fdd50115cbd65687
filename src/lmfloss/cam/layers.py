"""Which layer a CAM looks at, per architecture, and dotted-name overrides.

Defaults (the last spatial features before pooling, as in Selvaraju et al. 2017):

========================  =====================  ============================================
architecture              target layer           note
========================  =====================  ============================================
ResNet (torchvision)      ``layer4.<last>``      the last bottleneck/basic block
DenseNet                  ``features``           with DenseNet's closing ReLU applied (below)
EfficientNet / V2         ``features.<last>``    the last feature block (1x1 conv + BN + SiLU)
anything else             last ``nn.Conv2d``     found by walking ``named_modules()``
========================  =====================  ============================================

DenseNet: torchvision applies the final ReLU functionally and *in place*
(``F.relu(features, inplace=True)`` in ``DenseNet.forward``), so a hook on ``features`` or
``features.norm5`` would save a tensor that is later overwritten -- on CPU the saved
activation silently becomes post-ReLU while the gradient is the pre-ReLU one, on CUDA
both are pre-ReLU. :class:`TargetLayer.transform` makes the hooked output an out-of-place
``relu`` so activation and gradient are both the post-ReLU "final features", on every
device, and :mod:`lmfloss.cam.compute` clones the output the network continues with.
(The gradient is the one of the network as written: its in-place ReLU runs again on the
already rectified features, so the gradient is zero where a feature is zero -- the same as
the gradient at ``norm5`` that a pre-ReLU hook would see.)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TargetLayer:
    """A resolved target layer.

    Attributes:
        name: dotted name for ``model.get_submodule`` (``""`` is the model itself).
        module: the module whose output is hooked.
        transform: applied (out of place) to the module's output before the CAM sees it
            and before the network continues, or ``None``.
    """

    name: str
    module: nn.Module
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None


def _relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x)


def _last_child_name(model: nn.Module, container: str) -> str:
    children = list(model.get_submodule(container).named_children())
    if not children:
        raise ValueError(f"{type(model).__name__}.{container} has no children to target")
    return f"{container}.{children[-1][0]}"


def _resnet(model: nn.Module) -> TargetLayer:
    name = _last_child_name(model, "layer4")
    return TargetLayer(name, model.get_submodule(name))


def _densenet(model: nn.Module) -> TargetLayer:
    return TargetLayer("features", model.get_submodule("features"), _relu)


def _efficientnet(model: nn.Module) -> TargetLayer:
    name = _last_child_name(model, "features")
    return TargetLayer(name, model.get_submodule(name))


def _last_conv(model: nn.Module) -> TargetLayer:
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(
            f"{type(model).__name__} has no nn.Conv2d layer to target; pass a dotted "
            f"layer name (candidates: {_candidates(model)})"
        )
    name, module = convs[-1]
    return TargetLayer(name, module)


def _registry() -> dict[type, Callable[[nn.Module], TargetLayer]]:
    from torchvision.models import DenseNet, EfficientNet, ResNet

    return {ResNet: _resnet, DenseNet: _densenet, EfficientNet: _efficientnet}


def _candidates(model: nn.Module, limit: int = 40) -> str:
    names = [n for n, _ in model.named_modules() if n and n.count(".") <= 1]
    shown = ", ".join(names[-limit:])
    return ("..., " if len(names) > limit else "") + shown


def choose_target_layer(model: nn.Module, name: str | None = None) -> TargetLayer:
    """The layer to compute the CAM on: ``name`` if given, else the architecture's default.

    Args:
        model: a classifier (torchvision ResNet, DenseNet, EfficientNet(V2), or any
            ``nn.Module`` with a ``Conv2d``).
        name: dotted module name (``"layer4.1"``, ``"features.denseblock4"``), or ``None``
            for the default in the table of :mod:`lmfloss.cam.layers`.

    Returns:
        A :class:`TargetLayer`.

    Raises:
        ValueError: an unknown name (the message lists close matches and candidates), or a
            model without convolutions.
    """
    if name is not None:
        return resolve_layer(model, name)
    for cls, choose in _registry().items():
        if isinstance(model, cls):
            return choose(model)
    return _last_conv(model)


def resolve_layer(model: nn.Module, name: str) -> TargetLayer:
    """Resolve a dotted layer name with ``model.get_submodule``.

    DenseNet's ``features`` / ``features.norm5`` get the closing ReLU (see the module
    docstring); any other name is hooked as is.

    Raises:
        ValueError: the name matches no submodule; the message names it and lists the
            closest names and the model's layers (two levels deep).
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"target layer must be a dotted module name, got {name!r}")
    name = name.strip()
    try:
        module = model.get_submodule(name)
    except AttributeError:
        all_names = [n for n, _ in model.named_modules() if n]
        close = difflib.get_close_matches(name, all_names, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(
            f"target layer {name!r} is not a module of {type(model).__name__}; {hint}"
            f"candidate layers: {_candidates(model)}"
        ) from None
    from torchvision.models import DenseNet

    transform = None
    if isinstance(model, DenseNet) and name in ("features", "features.norm5"):
        transform = _relu
    return TargetLayer(name, module, transform)
