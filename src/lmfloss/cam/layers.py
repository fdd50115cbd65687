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


def layer_map_sizes(model: nn.Module, image_size: int | tuple[int, int]) -> dict[str, tuple[int, int]]:
    """``{dotted name: (H, W)}`` of every module whose output is a feature map ``[N, C, H, W]``
    for an input of ``image_size``, in forward order.

    Measured with one dummy forward pass (a zero image, no gradient, eval mode); the hooks
    are removed and the modules' train/eval flags restored, whatever happens.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    sizes: dict[str, tuple[int, int]] = {}
    handles = []

    def recorder(name: str):
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            if isinstance(output, torch.Tensor) and output.ndim == 4 and name not in sizes:
                sizes[name] = (int(output.shape[-2]), int(output.shape[-1]))
        return hook

    training = {m: m.training for m in model.modules()}
    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(recorder(name)))
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width, device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in training.items():
            module.training = flag
    return sizes


def _candidates(model: nn.Module, limit: int = 40, spatial: dict[str, tuple[int, int]] | None = None) -> str:
    if spatial is not None:
        names = [f"{n} ({h}x{w})" for n, (h, w) in spatial.items() if n.count(".") <= 1]
    else:
        names = [n for n, _ in model.named_modules() if n and n.count(".") <= 1]
    shown = ", ".join(names[-limit:])
    return ("..., " if len(names) > limit else "") + shown


def choose_target_layer(model: nn.Module, name: str | None = None,
                        image_size: int | tuple[int, int] | None = None) -> TargetLayer:
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
        return resolve_layer(model, name, image_size)
    for cls, choose in _registry().items():
        if isinstance(model, cls):
            return choose(model)
    return _last_conv(model)


def resolve_layer(model: nn.Module, name: str, image_size: int | tuple[int, int] | None = None) -> TargetLayer:
    """Resolve a dotted layer name with ``model.get_submodule``.

    DenseNet's ``features`` / ``features.norm5`` get the closing ReLU (see the module
    docstring); any other name is hooked as is. With ``image_size``, a layer whose output
    is not a feature map (``fc``, ``avgpool``'s flattened successors...) is refused: a CAM
    needs ``[N, C, H, W]`` activations.

    Raises:
        ValueError: the name matches no submodule, or (with ``image_size``) it has no
            spatial output; the message lists the layers that have one, with their sizes.
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
    if image_size is not None:
        spatial = layer_map_sizes(model, image_size)
        if name not in spatial:
            raise ValueError(
                f"target layer {name!r} has no spatial output (a CAM needs a [N, C, H, W] feature map); "
                f"layers with one: {_candidates(model, spatial=spatial)}"
            )
    from torchvision.models import DenseNet

    transform = None
    if isinstance(model, DenseNet) and name in ("features", "features.norm5"):
        transform = _relu
    return TargetLayer(name, module, transform)
