"""A run's preprocessing as a recipe anyone can follow: the data layer's one statement of what
``lmfloss predict`` (and training) does to an image file, step by step with exact parameters.

``lmfloss export`` writes it into the sidecar (and the ONNX metadata, the TorchScript extra
file), so a deployed model carries its whole input recipe: decode, the intensity rule case by
image mode (:mod:`lmfloss.data.images`), the training resize, then what the exported graph
does itself (scale, normalise, network, softmax or a sigmoid per label). A test follows it
with NumPy and PIL alone and gets ``predict``'s probabilities to 1e-5.
"""

from __future__ import annotations

from typing import Any

from lmfloss.data.images import SIXTEEN_BIT_MODES
from lmfloss.task import get_task

RECIPE_VERSION = 1  # bump when the recipe's step vocabulary changes
SIXTEEN_BIT_SCALE = 255.0 / 65535.0  # lmfloss.data.images: 16-bit pixels under "dtype"


INTENSITY_EFFECT_ON_8_BIT = {
    "dtype": "unchanged: 8-bit files (RGB, grayscale, palette, RGBA...) keep their pixel values",
    "minmax": "stretched like any other image: its own min..max over all channels becomes 0..255 (pixels "
              "spanning 100..180 become 0..255; a constant image becomes 0), unlike dtype, which leaves "
              "8-bit images unchanged",
}
INTENSITY_TEXT = {
    "dtype": "by the pixel type's range: 8-bit unchanged, 16-bit x * 255 / 65535, 32-bit integers in "
             "0..65535 as 16-bit (others by their own min..max), float taken as [0, 1] (clipped, x * 255); "
             "rounded half to even (np.rint)",
    "minmax": "by each image's own range: (x - min) * 255 / (max - min) over all channels of the image at its "
              "original size (before resizing), rounded half to even (np.rint); a constant image becomes 0",
}


# The graph's last step, by the task's activation (:attr:`lmfloss.task.Task.activation`).
ACTIVATION_STEPS: dict[str, dict[str, Any]] = {
    "softmax": {"op": "softmax", "in_graph": True, "axis": 1, "how": "float32 probabilities [N, K] in class_names order"},
    "sigmoid": {"op": "sigmoid", "in_graph": True,
                "how": "float32 probabilities [N, L], one per label in class_names order, independent (multi-label)"},
}


def intensity_recipe(rule: str) -> dict[str, Any]:
    """The ``to_uint8_rgb`` step of the recipe: how :func:`lmfloss.data.images.to_rgb_array`
    makes ``uint8 [H, W, 3]`` of a decoded file under the intensity ``rule``.

    ``cases`` are tried in order; the first whose ``modes`` holds the PIL image's mode (or
    is ``"*"``) applies. ``read`` says how to take the pixels (``gray``: the one channel,
    repeated into 3 at the end; ``rgb``: PIL's ``convert("RGB")``), ``map`` which formula of
    ``maps`` makes them 8-bit, with the case's parameters.
    """
    wide = [*SIXTEEN_BIT_MODES, "I", "F"]
    if rule == "minmax":
        cases: list[dict[str, Any]] = [{"modes": wide, "read": "gray", "map": "minmax"},
                                       {"modes": "*", "read": "rgb", "map": "minmax"}]
    elif rule == "dtype":
        cases = [{"modes": list(SIXTEEN_BIT_MODES), "read": "gray", "map": "scale", "factor": SIXTEEN_BIT_SCALE},
                 {"modes": ["I"], "read": "gray", "map": "scale", "factor": SIXTEEN_BIT_SCALE,
                  "valid_range": [0, 65535], "outside_range": "minmax"},
                 {"modes": ["F"], "read": "gray", "map": "scale", "clip": [0.0, 1.0], "factor": 255.0},
                 {"modes": "*", "read": "rgb", "map": "keep"}]
    else:
        raise ValueError(f"intensity must be one of ['dtype', 'minmax'], got {rule!r}")
    return {
        "op": "to_uint8_rgb", "in_graph": False, "intensity": rule, "rule": INTENSITY_TEXT[rule],
        "eight_bit_images": INTENSITY_EFFECT_ON_8_BIT[rule], "cases": cases,
        "read": {"gray": "x = np.nan_to_num(np.asarray(image) as float64); the 8-bit result is repeated into 3 "
                         "channels (np.repeat(y[..., None], 3, axis=2))",
                 "rgb": "x = np.asarray(image.convert('RGB')) as float64 (PIL's conversion: grayscale repeated "
                        "into 3 channels, palette looked up, alpha dropped without blending)"},
        "maps": {"keep": {"formula": "x"},
                 "scale": {"formula": "np.rint(np.clip(x, *clip) * factor) (no clip where the case has none); "
                                      "with valid_range, a value outside it makes the whole image outside_range"},
                 "minmax": {"formula": "np.rint((x - lo) * (target_max / (hi - lo)))", "target_max": 255.0,
                            "lo": "x.min() over all pixels and channels of the image at its original size",
                            "hi": "x.max() over all pixels and channels of the image at its original size",
                            "constant_image": "hi <= lo: every pixel 0"}},
        "result": "uint8 [H, W, 3] RGB (the rounded values lie in 0..255)",
    }


def preprocessing_recipe(config: Any, training_resize: str, resize_in_graph: bool) -> dict[str, Any]:
    """Every step ``lmfloss predict`` (:meth:`lmfloss.train.Run.preprocess`) and the exported
    graph take from an image file to the probabilities, in order, with exact parameters.

    Args:
        config: the run's :class:`lmfloss.config.TrainConfig` (``image_size``, ``intensity``,
            ``normalize``, ``model``).
        training_resize: ``"pil"`` (file datasets) or ``"torch"`` (array datasets).
        resize_in_graph: whether the exported graph resizes (TorchScript of an array dataset).
    """
    # torch-free module (the recipe is plain data): transforms imports torch
    from lmfloss.data.transforms import NORMALIZATIONS

    size = config.image_size
    if training_resize == "pil":
        resize = {"method": "pil_bilinear",
                  "how": f"PIL.Image.fromarray(x).resize(({size}, {size}), PIL.Image.Resampling.BILINEAR) "
                         "(PIL's bilinear filter, antialiased when shrinking)"}
    else:
        resize = {"method": "torch_bilinear_antialias",
                  "how": f"torch.nn.functional.interpolate(x as float32 [N, 3, H, W], size=({size}, {size}), "
                         "mode='bilinear', align_corners=False, antialias=True).round().clamp(0, 255) to uint8"}
    stats = NORMALIZATIONS[config.normalize]
    steps = [
        {"op": "decode", "in_graph": False,
         "how": "PIL.Image.open(file); image.load(); the file's own mode is kept (e.g. 'I;16' for a 16-bit "
                "grayscale PNG), no EXIF rotation"},
        intensity_recipe(config.intensity),
        {"op": "resize", "in_graph": resize_in_graph, "size": [size, size], **resize,
         "when": f"only when the image is not already {size}x{size} (height x width)",
         "aspect_ratio": "not kept"},
        {"op": "scale", "in_graph": True, "divisor": 255.0,
         "how": "uint8 [N, H, W, 3] (NHWC) -> float32 [N, 3, H, W] (NCHW), x / 255"},
        {"op": "normalize", "in_graph": True, "name": config.normalize,
         "mean": None if stats is None else list(stats[0]), "std": None if stats is None else list(stats[1]),
         "how": "identity (no mean/std)" if stats is None else "(x - mean[c]) / std[c] per RGB channel c"},
        {"op": "network", "in_graph": True, "architecture": config.model,
         "how": f"float32 [N, 3, {size}, {size}] -> logits [N, K]"},
        dict(ACTIVATION_STEPS[get_task(config).activation]),
    ]
    return {
        "version": RECIPE_VERSION,
        "input": "an image file",
        "graph_input": f"the output of the last step with in_graph false: uint8 RGB, NHWC, stacked into "
                       f"[N, {'H, W' if resize_in_graph else f'{size}, {size}'}, 3]",
        "arrays": "an image already held as uint8 pixels ([H, W, 3], or [H, W] repeated into 3 channels) skips "
                  "decode and to_uint8_rgb, as lmfloss predict does",
        "steps": steps,
    }
