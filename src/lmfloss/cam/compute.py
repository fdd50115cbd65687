"""Class activation maps through pytorch-grad-cam, leaving the model as it was found.

The CAM methods are the ``grad-cam`` package's (Gildenblat et al.), not re-implemented:

=============  ==================================================================
``gradcam``    Selvaraju et al., ICCV 2017: ``relu(sum_k mean_ij(dy_c/dA_k) A_k)``
``gradcam++``  Chattopadhay et al., WACV 2018
``hirescam``   Draelos & Carin 2020: element-wise gradient x activation
``scorecam``   Wang et al., CVPRW 2020 (gradient-free, one forward per channel)
``eigencam``   Muhammad & Yeasin 2020 (first principal component; class-agnostic)
``layercam``   Jiang et al., TIP 2021
=============  ==================================================================

Every map is upsampled (bilinear) to the input's ``H x W`` and min-max scaled to
``[0, 1]`` per image by the package. A batch goes through the package in one call;
ScoreCAM's own per-image progress bar is hidden (``lmfloss cam`` shows one for the job).

Guarantees of :func:`compute_cams`, whatever happens inside (errors included): every hook
it or the package registered is removed; every module's train/eval flag is restored
(pytorch-grad-cam switches the model to eval); parameter ``.grad`` fields are restored
(the package calls ``zero_grad`` and ``backward``).
"""

from __future__ import annotations

import contextlib
import logging
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lmfloss.cam.layers import DEFAULT_MIN_MAP_SIZE, TargetLayer, choose_target_layer
from lmfloss.task import MULTICLASS, Task

logger = logging.getLogger(__name__)

METHODS: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "scorecam": "ScoreCAM",
    "eigencam": "EigenCAM",
    "layercam": "LayerCAM",
}


@dataclass(frozen=True)
class CamResult:
    """Maps and the network's outputs for a batch of images.

    Attributes:
        maps: ``float32 [N, H, W]`` in ``[0, 1]``, at the input's resolution.
        probabilities: ``float32 [N, K]`` the task's probabilities of the logits (softmax, or a
            sigmoid per label).
        predicted: ``int64 [N]`` argmax of the probabilities.
        target_classes: ``int64 [N]`` the class each map explains.
        layer: dotted name of the target layer.
        method: the CAM method's name (a key of :data:`METHODS`).
        map_size: ``(h, w)`` of the layer's output before upsampling, when known.
    """

    maps: np.ndarray
    probabilities: np.ndarray
    predicted: np.ndarray
    target_classes: np.ndarray
    layer: str
    method: str
    map_size: tuple[int, int] | None = None


def _cam_class(method: str) -> type:
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}; expected one of {sorted(METHODS)}")
    import pytorch_grad_cam  # optional extra: lmfloss[cam]

    return getattr(pytorch_grad_cam, METHODS[method])


def _clone_output(_module: nn.Module, _inputs: object, output: object) -> object:
    # The network continues with a copy, so an in-place op further on (DenseNet's
    # F.relu(..., inplace=True)) cannot overwrite the activation the CAM saved.
    return output.clone() if isinstance(output, torch.Tensor) else None


def _no_bar(iterable: Any, *_args: Any, **_kwargs: Any) -> Any:
    return iterable


@contextlib.contextmanager
def _quiet_scorecam() -> Iterator[None]:
    """Hide the tqdm bar ScoreCAM draws per image (the caller shows one bar for the job)."""
    from pytorch_grad_cam import score_cam  # optional extra: lmfloss[cam]

    saved = score_cam.tqdm
    score_cam.tqdm = types.SimpleNamespace(tqdm=_no_bar)
    try:
        yield
    finally:
        score_cam.tqdm = saved


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[list[torch.utils.hooks.RemovableHandle]]:
    """Leave ``model`` as it was found: every module's train/eval flag and every parameter's
    ``.grad`` are restored, and every hook handle put into the yielded list is removed --
    whatever happens inside (errors included)."""
    training = {m: m.training for m in model.modules()}
    saved_grads = {p: p.grad for p in model.parameters()}
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in training.items():
            module.training = flag
        for param, grad in saved_grads.items():
            param.grad = grad


def _cam_batch(cam: Any, batch: torch.Tensor, classes: list[int] | None,
               task: Task = MULTICLASS) -> tuple[np.ndarray, np.ndarray]:
    """Maps and the task's probabilities of one batch (``classes``: the target per image,
    or ``None`` for the predicted class)."""
    # optional extra: lmfloss[cam]
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = None if classes is None else [ClassifierOutputTarget(c) for c in classes]
    maps = np.asarray(cam(input_tensor=batch, targets=targets), dtype=np.float32)
    logits = cam.outputs.detach().float().cpu()
    cam.outputs = None
    if classes is not None:
        bad = [c for c in classes if not 0 <= c < logits.shape[1]]
        if bad:
            raise ValueError(f"target class {bad[0]} out of range for {logits.shape[1]} classes")
    return maps, task.probabilities(logits).numpy()


def _checked_inputs(images: torch.Tensor, target_classes: Sequence[int] | None,
                    batch_size: int) -> list[int] | None:
    """The target classes as ints, after checking the images' shape and ``batch_size``."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor [N, C, H, W], got {shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if target_classes is None:
        return None
    classes = [int(c) for c in target_classes]
    negative = [c for c in classes if c < 0]
    if negative:
        raise ValueError(f"target class {negative[0]} out of range; expected 0 <= class < K")
    if len(classes) != images.shape[0]:
        raise ValueError(f"got {len(classes)} target classes for {images.shape[0]} images; expected one each")
    return classes


def compute_cams(
    model: nn.Module,
    images: torch.Tensor,
    target_classes: Sequence[int] | None = None,
    *,
    method: str = "gradcam",
    target_layer: str | TargetLayer | None = None,
    batch_size: int = 16,
    min_map_size: int = DEFAULT_MIN_MAP_SIZE,
    task: Task = MULTICLASS,
) -> CamResult:
    """Compute one CAM per image.

    Args:
        model: classifier returning logits ``[N, K]``; any train/eval state.
        images: ``float [N, C, H, W]`` preprocessed as the model was trained.
        target_classes: class index per image for the map, or ``None`` for the predicted
            class. Ignored by ``eigencam`` (class-agnostic).
        method: a key of :data:`METHODS`.
        target_layer: dotted module name, a :class:`TargetLayer`, or ``None`` for the
            architecture's default at this image size: the deepest block with a map of at
            least ``min_map_size`` per side (:func:`lmfloss.cam.layers.choose_target_layer`).
        batch_size: images per CAM call (pytorch-grad-cam takes the batch at once).
        min_map_size: see ``target_layer``.
        task: the run's task (:mod:`lmfloss.task`): ``probabilities`` are its probabilities
            of the logits (a multi-label run's: a sigmoid per label, a map explaining one
            label's logit, as ``ClassifierOutputTarget`` does).

    Returns:
        A :class:`CamResult`.

    Raises:
        ValueError: unknown method or layer, bad shapes, or a target class out of range.
    """
    cam_class = _cam_class(method)
    target_classes = _checked_inputs(images, target_classes, batch_size)
    n = images.shape[0]
    layer = (
        target_layer
        if isinstance(target_layer, TargetLayer)
        else choose_target_layer(model, target_layer, tuple(images.shape[-2:]), min_map_size=min_map_size)
    )

    cam = None
    maps: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    try:
        with preserved(model) as handles, torch.enable_grad(), _quiet_scorecam():
            cam = cam_class(model=model, target_layers=[layer.module])
            if layer.transform is not None:
                transform = layer.transform
                handles.append(
                    layer.module.register_forward_hook(lambda _m, _i, out: transform(out), prepend=True)
                )
            handles.append(layer.module.register_forward_hook(_clone_output))
            try:
                for start in range(0, n, batch_size):
                    batch_classes = None if target_classes is None else target_classes[start : start + batch_size]
                    batch_maps, batch_probs = _cam_batch(cam, images[start : start + batch_size], batch_classes,
                                                         task)
                    maps.append(batch_maps)
                    probs.append(batch_probs)
            finally:
                cam.outputs = None
                cam.activations_and_grads.release()
    except IndexError as exc:
        # pytorch-grad-cam reports an out-of-range target as a bare IndexError.
        raise ValueError(f"CAM target out of range: {exc}") from None
    probabilities = np.concatenate(probs) if probs else np.zeros((0, 0), np.float32)
    predicted = probabilities.argmax(axis=1).astype(np.int64)
    chosen = predicted if target_classes is None else np.asarray(target_classes, np.int64)
    return CamResult(
        maps=np.concatenate(maps) if maps else np.zeros((0, *images.shape[2:]), np.float32),
        probabilities=probabilities.astype(np.float32),
        predicted=predicted,
        target_classes=chosen,
        layer=layer.name,
        method=method,
        map_size=layer.map_size,
    )
