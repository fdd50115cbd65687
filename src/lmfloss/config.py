"""Training configuration: one frozen dataclass, YAML in, command-line overrides on top.

The defaults are the paper's protocol (Sadi et al., "Training parameters"): ImageNet
pre-trained weights, Adam at 1e-4 with weight decay 5e-4, StepLR x0.1 every 30 epochs,
100 epochs, batch 32, 224 px, no augmentation, no normalisation, seed 23.

The resolved config is written as ``config.yaml`` into every run directory and is
enough to rebuild the run's data, model and loss (``lmfloss evaluate``/``cam``/``predict``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class TrainConfig:
    # --- data -------------------------------------------------------------------------
    dataset: str = "synthetic"  # adapter name (lmfloss datasets)
    root: str | None = None  # dataset root folder (None: the adapter's default, e.g. synthetic)
    csv: str | None = None  # CSV file for the `csv` adapter
    split_seed: int = 23  # the paper's split seed; the split never depends on `seed`
    group_by: str | None = None  # None (the paper) | "lesion" | "patient"
    image_size: int = 224  # the paper resizes every image to 224x224
    normalize: str = "none"  # "none" (the authors' code) | "imagenet"
    augment: str = "none"  # "none" (the paper) | "flip" | "randaugment"
    cache_dir: str | None = None  # image cache folder (None: <root>/.lmfloss-cache or ~/.cache)
    skip_bad_images: bool = False  # fail on an undecodable image unless asked to skip it
    download: bool = False  # fetch downloadable datasets (MedMNIST) when missing
    # --- model ------------------------------------------------------------------------
    model: str = "resnet50"  # any torchvision classifier; the paper: resnet50, efficientnet_v2_s, densenet121
    weights: str = "imagenet"  # "imagenet" (the paper) | "none" | path to a state dict
    # --- loss -------------------------------------------------------------------------
    loss: str = "lmf"  # name in lmfloss.losses.LOSSES
    loss_params: dict[str, Any] = field(default_factory=dict)  # e.g. {"alpha": 1.0, "beta": 2.0}
    # --- optimisation -----------------------------------------------------------------
    epochs: int = 100  # the paper trains 100 epochs
    batch_size: int = 32  # the paper's batch
    lr: float = 1e-4  # the paper's Adam learning rate
    weight_decay: float = 5e-4  # the paper's L2 regularisation
    lr_step: int = 30  # StepLR period in epochs (the paper: 30)
    lr_gamma: float = 0.1  # StepLR factor (the paper: 0.1)
    seed: int = 23  # model init, shuffling, augmentation
    # --- hardware ---------------------------------------------------------------------
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: str = "bf16"  # mixed precision on CUDA: bf16 | fp16 | off (ignored on CPU)
    compile: bool = False  # torch.compile the model
    channels_last: bool = True  # on CUDA only
    workers: int = 0  # DataLoader workers (0: load in the main process)
    # --- output -----------------------------------------------------------------------
    tensorboard: bool = False  # also write TensorBoard event files
    bootstrap: int = 1000  # resamples for the macro-F1 95% interval

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build a config from a mapping, rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown config key(s) {unknown}; valid keys are {sorted(known)}"
            )
        values = dict(data)
        if values.get("loss_params") is None:
            values["loss_params"] = {}
        if not isinstance(values["loss_params"], Mapping):
            raise ValueError(
                f"loss_params must be a mapping such as {{beta: 2.0}}, got {values['loss_params']!r}"
            )
        values["loss_params"] = dict(values["loss_params"])
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; an unreadable or non-mapping file is a ``ValueError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of keys, got {type(data).__name__}")
    return data


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def parse_loss_params(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``["beta=2", "class_weight=none"]`` into ``{"beta": 2, "class_weight": None}``.

    Values are parsed as YAML scalars (numbers, booleans, ``none``/``null``), so
    ``drw_epoch=60`` gives an int and ``base=focal`` a string.
    """
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--loss-param expects key=value, got {pair!r}")
        value = yaml.safe_load(raw) if raw else None
        if isinstance(value, str) and value.lower() == "none":
            value = None
        params[key.strip().replace("-", "_")] = value
    return params
