"""Decoding image files into ``uint8 [H, W, 3]`` arrays, with errors that name the file.

Medical images are often 12- or 16-bit (X-ray, CT and MRI exports) or floating point;
networks here see 8-bit RGB. How the pixel values become 8 bits is one documented rule,
chosen with ``intensity`` (config key; ``lmfloss train --intensity``):

``"dtype"`` (default)
    By the range of the pixel *type*: 8-bit images are unchanged, 16-bit images are scaled
    by ``255 / 65535`` (so two 16-bit images keep their relative brightness), 32-bit integer
    images holding values in ``0..65535`` are read as 16-bit, and floating-point images are
    taken to lie in ``[0, 1]`` (scaled by 255, clipped).
``"minmax"``
    By each image's own range: ``(x - min) / (max - min) * 255`` over all its channels. A
    12-bit image stored in a 16-bit file (values ``0..4095``) uses the full 8-bit range, as
    does a float image in Hounsfield units; a constant image becomes 0. Relative brightness
    between images is lost.

A rule that leaves an image nearly constant (its pixels spanning fewer than 32 of the 256
gray levels, e.g. a 12-bit image in a 16-bit file under ``"dtype"``) is reported: :func:`read_image` appends a note to
``notes``, and the cache builder warns once per dataset with the count and a hint.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lmfloss.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
INTENSITY_RULES = ("dtype", "minmax")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")  # PIL modes of 16-bit pixels
# An image whose 8-bit pixels span fewer gray levels is reported: a 12-bit image in a 16-bit
# file spans 17 under "dtype" (0..4095 -> 0..16), a blank image 1.
NEARLY_CONSTANT_LEVELS = 32


def _minmax(array: np.ndarray) -> np.ndarray:
    array = np.nan_to_num(array.astype(np.float64))
    if array.size == 0:
        return np.zeros(array.shape, np.uint8)
    lo, hi = float(array.min()), float(array.max())
    if hi <= lo:
        return np.zeros(array.shape, np.uint8)
    return np.rint((array - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _by_dtype(image: Image.Image) -> tuple[np.ndarray, str | None]:
    """8-bit pixels of a non-8-bit ``image`` by its type's range, and a note if values fell outside it."""
    if image.mode in SIXTEEN_BIT_MODES:
        return np.rint(np.asarray(image, dtype=np.float64) * (255.0 / 65535.0)).astype(np.uint8), None
    if image.mode == "I":
        array = np.asarray(image, dtype=np.int64)
        if array.min(initial=0) >= 0 and array.max(initial=0) <= 65535:
            return np.rint(array * (255.0 / 65535.0)).astype(np.uint8), None
        return _minmax(array), "32-bit values outside 0..65535 (scaled by the image's own min..max)"
    # "F": 32-bit float, taken as [0, 1].
    array = np.asarray(image, dtype=np.float64)
    note = None
    if array.size and (np.nanmin(array) < 0.0 or np.nanmax(array) > 1.0):
        note = f"float values {np.nanmin(array):.4g}..{np.nanmax(array):.4g} outside [0, 1] (clipped)"
    return np.rint(np.clip(np.nan_to_num(array), 0.0, 1.0) * 255.0).astype(np.uint8), note


def to_rgb_array(image: Image.Image, intensity: str = "dtype", notes: list[str] | None = None) -> np.ndarray:
    """Return ``uint8 [H, W, 3]``; grayscale is repeated into 3 channels.

    Args:
        image: a decoded PIL image of any mode.
        intensity: ``"dtype"`` or ``"minmax"`` (see the module docstring).
        notes: if given, a note is appended when the result is nearly constant or values
            fell outside the type's assumed range.
    """
    if intensity not in INTENSITY_RULES:
        raise ValueError(f"intensity must be one of {list(INTENSITY_RULES)}, got {intensity!r}")
    note = None
    if intensity == "minmax":
        if image.mode in (*SIXTEEN_BIT_MODES, "I", "F"):
            gray = _minmax(np.asarray(image))
            array = np.repeat(gray[..., None], 3, axis=2)
        else:
            array = _minmax(np.asarray(image.convert("RGB")))
    else:
        if image.mode in (*SIXTEEN_BIT_MODES, "I", "F"):
            gray, note = _by_dtype(image)
            array = np.repeat(gray[..., None], 3, axis=2)
        else:
            array = np.array(image.convert("RGB") if image.mode != "RGB" else image, dtype=np.uint8)
    if notes is not None:
        if note is not None:
            notes.append(note)
        span = int(array.max()) - int(array.min()) if array.size else 0
        if array.size and span < NEARLY_CONSTANT_LEVELS:
            wide = image.mode in (*SIXTEEN_BIT_MODES, "I", "F")
            notes.append(f"nearly constant after the '{intensity}' rule: {span + 1} of 256 gray levels used "
                         f"({'16/32-bit or float' if wide else '8-bit'} {image.mode} pixels)")
    return np.array(array, dtype=np.uint8)  # a writable copy


def read_image(path: str | Path, size: int | None = None, intensity: str = "dtype",
               notes: list[str] | None = None) -> np.ndarray:
    """Decode an image file to ``uint8 [H, W, 3]``, optionally resized to ``size x size``.

    Pixels become 8 bits by the ``intensity`` rule first (see the module docstring); then
    the image is resized bilinearly with antialiasing (PIL), as torchvision's
    ``Resize((224, 224))`` on a PIL image does in the authors' code; the aspect ratio is not
    kept (the paper resizes every image to 224x224).

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: the file exists but cannot be decoded (corrupt, truncated, not an image).
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            array = to_rgb_array(image, intensity, notes)
        if size is not None and array.shape[:2] != (size, size):
            array = np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.BILINEAR))
        return np.array(array, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{str(path)!r} is a folder, not an image file") from None
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
