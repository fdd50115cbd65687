"""Per-item transforms applied on top of the cached ``uint8 [3, S, S]`` images.

The paper preset is ``normalize="none", augment="none"``: images resized to 224x224 and
scaled to [0, 1], nothing else, as in the authors' code. ImageNet normalisation and
augmentation are offered for users who want them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import RandAugment

from lmfloss.config import AUGMENT_CHOICES, NORMALIZE_CHOICES

# Per-channel (mean, std) of each normalisation; "none" scales to [0, 1] only.
NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]] | None] = {
    "none": None,  # the authors' code
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision's ImageNet statistics
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # MedMNIST v2's experiments: [0, 1] -> [-1, 1]
}
IMAGENET_MEAN, IMAGENET_STD = NORMALIZATIONS["imagenet"]


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


class ImageTransform:
    """``uint8 [3, S, S]`` -> ``float32 [3, S, S]`` in [0, 1] (or ImageNet-normalised).

    A class rather than a closure so that DataLoader workers can pickle it.

    With ``defer_float=True`` an item stays ``uint8`` and unaugmented, and :meth:`finish`
    augments and scales a whole batch later — on the GPU, after the copy. The training
    engine does this: a uint8 batch is a quarter of the bytes to collate, pin and copy, and
    no per-image Python work is left in the DataLoader (what kept the GPU waiting).

    Args:
        normalize: ``"none"`` (the paper), ``"imagenet"`` (``(x - mean) / std`` with
            torchvision's ImageNet statistics) or ``"half"`` (mean = std = 0.5, MedMNIST v2).
        augment: ``"none"`` (the paper), ``"flip"`` (random horizontal and vertical flips,
            each with probability 0.5), ``"hflip"`` (horizontal flips only, probability 0.5:
            torchvision's ``RandomHorizontalFlip``, for images whose up and down differ) or
            ``"randaugment"`` (torchvision's RandAugment,
            Cubuk et al. 2020, applied to the uint8 image).
        defer_float: return uint8 items and leave scaling/normalisation to :meth:`finish`.
    """

    def __init__(self, normalize: str = "none", augment: str = "none", defer_float: bool = False) -> None:
        check_choice("normalize", normalize, NORMALIZE_CHOICES)
        check_choice("augment", augment, AUGMENT_CHOICES)
        self.normalize = normalize
        self.augment = augment
        self.defer_float = defer_float
        self._randaugment: Callable[[torch.Tensor], torch.Tensor] | None = None
        if augment == "randaugment":
            self._randaugment = RandAugment()

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.defer_float:
            return image  # augmented (on the device, a whole batch at once) and scaled in finish()
        return self.finish(self._augment_one(image))

    def _augment_one(self, image: torch.Tensor) -> torch.Tensor:
        if self.augment in ("flip", "hflip"):
            if torch.rand(()) < 0.5:
                image = image.flip(-1)
            if self.augment == "flip" and torch.rand(()) < 0.5:
                image = image.flip(-2)
        elif self._randaugment is not None:
            image = self._randaugment(image)
        return image

    def augment_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Augment a uint8 batch ``[B, 3, S, S]`` where it lies (the GPU, after the copy):
        per image, independent horizontal and vertical flips (``flip``), a horizontal flip
        (``hflip``) or a RandAugment
        draw (``randaugment``). Random numbers come from the batch's device generator."""
        if self.augment == "none" or images.ndim != 4 or images.shape[0] == 0:
            return images
        channels_last = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
        if self.augment == "flip":
            draws = torch.rand(2, images.shape[0], device=images.device) < 0.5
            images = torch.where(draws[0].view(-1, 1, 1, 1), images.flip(-1), images)
            images = torch.where(draws[1].view(-1, 1, 1, 1), images.flip(-2), images)
        elif self.augment == "hflip":
            draws = torch.rand(images.shape[0], device=images.device) < 0.5
            images = torch.where(draws.view(-1, 1, 1, 1), images.flip(-1), images)
        else:
            images = torch.stack([self._randaugment(image) for image in images])
        return images.contiguous(memory_format=torch.channels_last) if channels_last else images

    def finish(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8 [..., 3, S, S]`` on any device -> float32 in [0, 1] (or normalised); with
        ``defer_float`` a batch is augmented here first (:meth:`augment_batch`).

        Float input is returned unchanged (it was finished per item already). The memory
        format (e.g. channels-last) is kept.
        """
        if images.dtype != torch.uint8:
            return images
        if self.defer_float:
            images = self.augment_batch(images)
        out = images.to(torch.float32).div_(255.0)
        stats = NORMALIZATIONS[self.normalize]
        if stats is not None:
            # Python scalars per channel: no host-to-device copy (and so no GPU sync) per batch.
            for c, (mean, std) in enumerate(zip(*stats)):
                out[..., c, :, :].sub_(mean).div_(std)
        return out

    def __repr__(self) -> str:
        return f"ImageTransform(normalize={self.normalize!r}, augment={self.augment!r})"


def build_transform(normalize: str = "none", augment: str = "none", defer_float: bool = False) -> ImageTransform:
    """The per-item transform for ``normalize`` and ``augment`` (see :class:`ImageTransform`)."""
    return ImageTransform(normalize, augment, defer_float=defer_float)
