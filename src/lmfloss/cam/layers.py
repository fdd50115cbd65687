"""Which layer a CAM looks at, per architecture, and dotted-name overrides.

Without a layer name the CAM looks at the deepest block of the architecture whose output
is at least ``min_map_size`` pixels (default 7, the 7x7 of ``layer4`` at the paper's
224 px) on each side at the run's image size, measured with one dummy forward pass
(:func:`layer_map_sizes`, hooks released); if no block is that large, the block with the
largest map. A 2x2 map bilinearly upsampled says little more than "which corner", and a
1x1 map nothing at all, which is what the last block gives at 28-64 px.

========================  ==============================================  ======================
architecture              candidate blocks (forward order)                at 224 px
========================  ==============================================  ======================
ResNet (torchvision)      every block ``layer<i>.<j>``                    ``layer4.<last>``
DenseNet                  ``features.denseblock<i>``, then ``features``   ``features`` (ReLU)
EfficientNet / V2         every ``features.<i>``                          ``features.<last>``
anything else             every ``nn.Conv2d``                             the last one
========================  ==============================================  ======================

Without an image size the last candidate is taken (the classic choice of Selvaraju et al.
2017: the last spatial features before pooling).

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
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import DenseNet, EfficientNet, ResNet

logger = logging.getLogger(__name__)

DEFAULT_MIN_MAP_SIZE = 7  # px per side: layer4 of a ResNet at the paper's 224 px
SMALL_MAP_WARNING = 4  # px per side below which a map is close to blind: warn

@dataclass(frozen=True)
class TargetLayer:
    """A resolved target layer.

    Attributes:
        name: dotted name for ``model.get_submodule`` (``""`` is the model itself).
        module: the module whose output is hooked.
        transform: applied (out of place) to the module's output before the CAM sees it
            and before the network continues, or ``None``.
        map_size: ``(H, W)`` of the layer's output at the image size it was chosen for,
            or ``None`` when chosen without one.
    """

    name: str
    module: nn.Module
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    map_size: tuple[int, int] | None = None


def _relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x)


def _children(model: nn.Module, container: str) -> list[str]:
    return [f"{container}.{name}" for name, _ in model.get_submodule(container).named_children()]


def _resnet_blocks(model: nn.Module) -> list[str]:
    return [block for stage in ("layer1", "layer2", "layer3", "layer4") for block in _children(model, stage)]


def _densenet_blocks(model: nn.Module) -> list[str]:
    blocks = [name for name in _children(model, "features") if name.startswith("features.denseblock")]
    return [*blocks, "features"]


def _efficientnet_blocks(model: nn.Module) -> list[str]:
    return _children(model, "features")


def _conv_layers(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _registry() -> dict[type, Callable[[nn.Module], list[str]]]:
    return {ResNet: _resnet_blocks, DenseNet: _densenet_blocks, EfficientNet: _efficientnet_blocks}


def candidate_layers(model: nn.Module) -> list[str]:
    """The blocks a CAM may default to, in forward order (table in :mod:`lmfloss.cam.layers`).

    Raises:
        ValueError: a model of no known family without any ``nn.Conv2d``.
    """
    for cls, blocks in _registry().items():
        if isinstance(model, cls):
            names = blocks(model)
            if names:
                return names
    names = _conv_layers(model)
    if not names:
        raise ValueError(
            f"{type(model).__name__} has no nn.Conv2d layer to target; pass a dotted "
            f"layer name (candidates: {_candidates(model)})"
        )
    return names


def deepest_layer(candidates: list[str], sizes: dict[str, tuple[int, int]], min_map_size: int) -> str:
    """The last of ``candidates`` whose map is at least ``min_map_size`` on each side, else
    the one with the largest shorter side (the deepest of equals).

    Raises:
        ValueError: no candidate has a spatial output at all.
    """
    measured = [name for name in candidates if name in sizes]
    if not measured:
        raise ValueError(f"none of the layers {candidates} has a spatial output for this input")
    large = [name for name in measured if min(sizes[name]) >= min_map_size]
    if large:
        return large[-1]
    return max(reversed(measured), key=lambda name: min(sizes[name]))


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


def check_min_map_size(min_map_size: int) -> int:
    """``min_map_size`` as an int >= 1, or ValueError naming it."""
    if isinstance(min_map_size, bool) or not isinstance(min_map_size, int) or min_map_size < 1:
        raise ValueError(f"the minimum map size must be an integer >= 1 pixel per side, got {min_map_size!r}")
    return min_map_size


def choose_target_layer(model: nn.Module, name: str | None = None,
                        image_size: int | tuple[int, int] | None = None, *,
                        min_map_size: int = DEFAULT_MIN_MAP_SIZE) -> TargetLayer:
    """The layer to compute the CAM on: ``name`` if given, else the architecture's default.

    Args:
        model: a classifier (torchvision ResNet, DenseNet, EfficientNet(V2), or any
            ``nn.Module`` with a ``Conv2d``).
        name: dotted module name (``"layer4.1"``, ``"features.denseblock4"``), or ``None``
            for the default of :mod:`lmfloss.cam.layers`.
        image_size: the input's side (or ``(H, W)``): the default becomes the deepest
            candidate block with a map of at least ``min_map_size`` per side (one dummy
            forward pass), and a map under 4x4 is warned about. ``None``: the last block.
        min_map_size: see ``image_size``.

    Returns:
        A :class:`TargetLayer` (with ``map_size`` when ``image_size`` was given).

    Raises:
        ValueError: an unknown name (the message lists close matches and candidates), a
            layer without spatial output, a model without convolutions, or
            ``min_map_size < 1``.
    """
    check_min_map_size(min_map_size)
    if name is not None:
        layer = resolve_layer(model, name, image_size)
    else:
        candidates = candidate_layers(model)
        if image_size is None:
            return resolve_layer(model, candidates[-1])
        sizes = layer_map_sizes(model, image_size)
        chosen = deepest_layer(candidates, sizes, min_map_size)
        layer = _resolved(model, chosen, sizes[chosen])
    if layer.map_size is not None and min(layer.map_size) < SMALL_MAP_WARNING:
        height, width = layer.map_size
        logger.warning(
            "CAM layer %s has a %dx%d map at this image size: its maps can hardly locate anything "
            "(give an earlier --target-layer or larger images)", layer.name, height, width,
        )
    return layer


def _resolved(model: nn.Module, name: str, map_size: tuple[int, int] | None) -> TargetLayer:
    transform = _relu if isinstance(model, DenseNet) and name in ("features", "features.norm5") else None
    return TargetLayer(name, model.get_submodule(name), transform, map_size)


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
        model.get_submodule(name)
    except AttributeError:
        all_names = [n for n, _ in model.named_modules() if n]
        close = difflib.get_close_matches(name, all_names, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(
            f"target layer {name!r} is not a module of {type(model).__name__}; {hint}"
            f"candidate layers: {_candidates(model)}"
        ) from None
    if image_size is None:
        return _resolved(model, name, None)
    spatial = layer_map_sizes(model, image_size)
    if name not in spatial:
        raise ValueError(
            f"target layer {name!r} has no spatial output (a CAM needs a [N, C, H, W] feature map); "
            f"layers with one: {_candidates(model, spatial=spatial)}"
        )
    return _resolved(model, name, spatial[name])
