"""Decoding image files into ``uint8 [H, W, 3]`` arrays, with errors that name the file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lmfloss.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Return ``uint8 [H, W, 3]``; grayscale (``L``, ``I;16``...) is repeated into 3 channels.

    16-bit images are scaled to 8 bits (``>> 8``) rather than clipped.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.uint32)
        shift = 8 if array.max(initial=0) > 255 else 0
        image = Image.fromarray((array >> shift).clip(0, 255).astype(np.uint8))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)  # a writable copy, unlike np.asarray


def read_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode an image file to ``uint8 [H, W, 3]``, optionally resized to ``size x size``.

    Resizing is bilinear with antialiasing (PIL), as torchvision's ``Resize((224, 224))``
    on a PIL image does in the authors' code; the aspect ratio is not kept (the paper
    resizes every image to 224x224).

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: the file exists but cannot be decoded (corrupt, truncated, not an image).
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if size is not None:
                if image.mode not in ("RGB", "L"):
                    image = Image.fromarray(to_rgb_array(image))
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            return to_rgb_array(image)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file {str(path)!r} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(
            f"cannot decode image {str(path)!r} ({exc}); fix or remove the file, "
            "or pass --skip-bad-images to skip it"
        ) from None


def image_header_ok(path: str | Path) -> bool:
    """Cheap validity check without decoding pixels: the file opens and its header parses."""
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False
