"""Training configuration: one frozen dataclass, YAML in, command-line overrides on top.

The defaults are the paper's protocol (Sadi et al., "Training parameters"): ImageNet
pre-trained weights, Adam at 1e-4 with weight decay 5e-4, StepLR x0.1 every 30 epochs,
100 epochs, batch 32, 224 px, no augmentation, no normalisation, seed 23.

Everything lmfloss knows about a key is declared once, on the field (``metadata``):

* ``role`` -- what a change of the key means:

  - ``"experiment"``: it changes what a run measures. A resumed run refuses a change, a
    sweep does not reuse a finished run of another value, and the report keeps runs that
    differ in it apart (the ``seed`` is an experiment key too; the report treats runs
    that differ *only* in it as repeats).
  - ``"resumable"``: part of the experiment, but a resumed run may change it (``epochs``:
    a finished run may be extended).
  - ``"runtime"``: where and how fast a run happens (data folder, device, workers...);
    it may differ between the machines of one study and on resume.
* ``help`` -- the command-line help of ``lmfloss train --<key>``.
* ``choices`` -- the valid values of a string key (checked by :func:`check_config`).
* ``path`` -- a file or folder path; stored absolute in a run's ``config.yaml``.
* ``option`` -- a dataset's own option (``views``, ``uncertain``...): the datasets that take it
  declare it with its default (:class:`lmfloss.data.adapters.Adapter`), which a run records in
  ``config.yaml``; any other dataset refuses it.

The resolved config is written as ``config.yaml`` into every run directory and is
enough to rebuild the run's data, model and loss (``lmfloss evaluate``/``cam``/``predict``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lmfloss.fileio import atomic_write_text, read_text, require_file
from lmfloss.task import SELECT_METRIC_CHOICES, TASK_CHOICES, LiveChoices

ROLES = ("experiment", "resumable", "runtime")


def _key(default: Any = dataclasses.MISSING, *, role: str, help: str, choices: Sequence[Any] | None = None,
         path: bool = False, option: bool = False, default_factory: Any = dataclasses.MISSING) -> Any:
    """A config field with its role, help text, choices, path and option flags (see the module docstring)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if choices is not None and not isinstance(choices, LiveChoices):  # a live view stays live
        choices = tuple(choices) or None
    metadata = {"role": role, "help": help, "choices": choices, "path": path, "option": option}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


NORMALIZE_CHOICES = ("none", "imagenet", "half")
AUGMENT_CHOICES = ("none", "flip", "hflip", "randaugment")
INTENSITY_CHOICES = ("dtype", "minmax")
STEM_CHOICES = ("imagenet", "small")
SELECT_METRICS = SELECT_METRIC_CHOICES  # every task's (lmfloss.task): a registered task adds its own
SCORE_BY_CHOICES = ("image", "patient", "study")
SCORED_UNITS = {"image": "images", "patient": "patients", "study": "studies"}  # what a score_by level scores
GROUP_CHOICES = ("lesion", "patient")
SAMPLER_CHOICES = ("none", "balanced", "sqrt")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")


@dataclass(frozen=True)
class TrainConfig:
    # --- data -------------------------------------------------------------------------
    dataset: str = _key("synthetic", role="experiment",
                        help="dataset adapter (lmfloss datasets), e.g. synthetic, ham10000, retinamnist, csv")
    # None: not asked -- the dataset's own task (multiclass where it gives both), settled and
    # recorded by resolve_config; a task asked that the dataset cannot give is refused.
    task: str | None = _key(None, role="experiment", choices=TASK_CHOICES,
                            help="multiclass (one class per image; the paper) | multilabel (any subset of the labels "
                                 "per image: chestmnist, odir5k's official task, csv with a labels column, synthetic). "
                                 "Default: the dataset's own (multiclass where it gives both; chestmnist is "
                                 "multi-label by nature)")
    label_columns: list[str] | None = _key(None, role="experiment",
                                           help="csv, multilabel: one 0/1 column per label, e.g. A,B,C (instead of "
                                                "a labels column of ';'-separated label names)")
    score_by: str | None = _key(None, role="experiment", choices=SCORE_BY_CHOICES,
                                help="multilabel: score each image, each patient (its images' probabilities "
                                     "combined by the per-label max: ODIR-5K's official task) or each study (its "
                                     "views combined so: CheXpert's). Default: patient for odir5k, study for "
                                     "chexpert, image otherwise")
    views: str | None = _key(None, role="experiment", option=True,
                             help="the X-ray views kept: nih-cxr14 PA | AP | all; chexpert frontal | lateral | all "
                                  "(default all)")
    labels: str | None = _key(None, role="experiment", option=True,
                              help="chexpert: all (its 14 observations, the default) | competition (Atelectasis, "
                                   "Cardiomegaly, Consolidation, Edema, Pleural Effusion)")
    uncertain: str | None = _key(None, role="experiment", option=True,
                                 help="chexpert: what an uncertain (-1) label means (Irvin et al. 2019): ignore "
                                      "(U-Ignore, the default: left out of the loss and the metrics) | ones "
                                      "(U-Ones: positive) | zeros (U-Zeros: negative), or per label, e.g. "
                                      "Atelectasis=ones,Cardiomegaly=zeros (others: ignore, or a bare policy)")
    blank: str | None = _key(None, role="experiment", option=True,
                             help="chexpert: what a blank (not mentioned) label means: zeros (negative, the "
                                  "default) | ignore (unknown: left out)")
    no_finding: str | None = _key(None, role="experiment", option=True,
                                  help="csv, multilabel: the label name that means 'no label' (e.g. 'No Finding'), "
                                       "read as an image with none of the labels rather than a label of its own "
                                       "(default: none; NIH ChestX-ray14's adapter knows its own)")
    root: str | None = _key(None, role="runtime", path=True,
                            help="dataset root folder (not needed for synthetic and MedMNIST's default folder)")
    csv: str | None = _key(None, role="runtime", path=True, help="CSV file path,label[,split] of the csv adapter")
    split_seed: int = _key(23, role="experiment",
                           help="seed of the paper's 70:15:15 split (the paper: 23); never depends on --seed")
    group_by: str | None = _key(None, role="experiment", choices=GROUP_CHOICES,
                                help="keep every lesion or patient in one split: lesion | patient (default: the paper's "
                                     "split; patient for a multi-label run scored per patient)")
    folds: int | None = _key(None, role="experiment",
                             help="k-fold cross-validation: train every fold into OUT/fold-1..K and write "
                                  "OUT/cv_summary.csv (stratified, grouped by --group-by)")
    fold: int | None = _key(None, role="experiment",
                            help="train only this fold (1..K) of --folds (a sweep axis; lmfloss train --folds "
                                 "trains them all)")
    fold_seed: int = _key(23, role="experiment", help="seed of the fold assignment (the same seed, the same folds)")
    folds_include_test: bool = _key(False, role="experiment",
                                    help="pool a dataset's official test split into the folds (MedMNIST, csv with "
                                         "a split column); refused otherwise")
    image_size: int = _key(224, role="experiment", help="image side in pixels (the paper: 224)")
    normalize: str = _key("none", role="experiment", choices=NORMALIZE_CHOICES,
                          help="none (the authors' code) | imagenet (torchvision's mean/std) | half "
                               "(mean 0.5, std 0.5: MedMNIST v2)")
    augment: str = _key("none", role="experiment", choices=AUGMENT_CHOICES,
                        help="none (the paper) | flip (horizontal and vertical) | hflip (horizontal only: "
                             "for images whose up and down differ, such as chest X-rays) | randaugment")
    intensity: str = _key("dtype", role="experiment", choices=INTENSITY_CHOICES,
                          help="how image files become 8-bit: dtype (by the pixel type's range: 8-bit images "
                               "unchanged, 16-bit x*255/65535, floats as [0, 1]) | minmax (each image's own "
                               "min..max over all channels becomes 0..255; this stretches 8-bit images too, "
                               "e.g. pixels 100..180 become 0..255, and a constant image becomes 0)")
    cache_dir: str | None = _key(None, role="runtime", path=True,
                                 help="image cache folder (default: <root>/.lmfloss-cache or ~/.cache/lmfloss)")
    skip_bad_images: bool = _key(False, role="experiment",
                                 help="skip undecodable images (listed in report.json) instead of failing")
    download: bool = _key(False, role="runtime", help="download MedMNIST files when missing")
    sampler: str = _key("none", role="experiment", choices=SAMPLER_CHOICES,
                        help="none (the paper: plain shuffle) | balanced (every class drawn equally often) | "
                             "sqrt (classes drawn in proportion to the square root of their size); with "
                             "replacement, epochs of the training set's length, also under DDP")
    sampler_start_epoch: int = _key(0, role="experiment",
                                    help="first (0-based) epoch that is re-sampled; before it the plain "
                                         "shuffle (deferred re-sampling, DRS of Cao et al. 2019)")
    # --- model ------------------------------------------------------------------------
    model: str = _key("resnet50", role="experiment",
                      help="torchvision classifier: resnet50 (default), efficientnet_v2_s, densenet121, resnet18...")
    weights: str = _key("imagenet", role="experiment",
                        help="imagenet (the paper; torchvision's cache) | none | PATH to a state dict")
    stem: str = _key("imagenet", role="experiment", choices=STEM_CHOICES,
                     help="imagenet (torchvision's stem) | small (3x3 stride-1 first conv, no max-pool: "
                          "the MedMNIST v2 / CIFAR form for 28-64 px; ResNet, DenseNet, EfficientNet)")
    # --- loss -------------------------------------------------------------------------
    loss: str = _key("lmf", role="experiment", help="loss name (lmfloss losses), default lmf")
    loss_params: dict[str, Any] = _key(role="experiment", default_factory=dict,
                                       help="loss parameters, e.g. {alpha: 1.0, beta: 2.0} (--loss-param KEY=VALUE)")
    # --- optimisation -----------------------------------------------------------------
    epochs: int = _key(100, role="resumable", help="epochs (the paper: 100)")
    batch_size: int = _key(32, role="experiment", help="batch size (the paper: 32)")
    lr: float = _key(1e-4, role="experiment", help="Adam learning rate (the paper: 1e-4)")
    weight_decay: float = _key(5e-4, role="experiment", help="Adam weight decay (the paper: 5e-4)")
    lr_step: int = _key(30, role="experiment", help="StepLR period in epochs (the paper: 30)")
    lr_milestones: list[int] | None = _key(None, role="experiment",
                                           help="multi-step schedule instead of StepLR: epochs after which the "
                                                "lr is multiplied by lr_gamma, e.g. 50,75 (MedMNIST v2)")
    lr_gamma: float = _key(0.1, role="experiment", help="lr factor of each step (the paper: 0.1)")
    seed: int = _key(23, role="experiment", help="seed of model init, shuffling and augmentation (default 23)")
    select_metric: str = _key("f1_macro", role="experiment", choices=SELECT_METRICS,
                              help="validation metric that picks the best epoch: f1_macro (the paper) | auc "
                                   "(MedMNIST v2) | accuracy | balanced_accuracy; multilabel: map (mean average "
                                   "precision; taken when f1_macro is left as the default) | auc (macro)")
    refit: bool = _key(False, role="experiment",
                       help="after selection, train a fresh model on train + validation for the chosen number "
                            "of epochs (same schedule and seed) and report its test metrics beside the selection "
                            "run's (report.json 'refit', refit.pt); thresholds stay those chosen on validation")
    positive_class: str | None = _key(None, role="experiment",
                                      help="binary tasks: the class called positive for sensitivity, specificity "
                                           "and the Youden threshold (default: the rarer training class)")
    # --- hardware ---------------------------------------------------------------------
    device: str = _key("auto", role="runtime", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    amp: str = _key("bf16", role="runtime", choices=("bf16", "fp16", "off"),
                    help="mixed precision on CUDA: bf16 (default) | fp16 | off (ignored on CPU)")
    compile: bool = _key(False, role="runtime", help="torch.compile the model")
    compile_mode: str = _key("default", role="runtime", choices=COMPILE_MODES,
                             help="torch.compile mode: default | reduce-overhead (CUDA graphs: small batches "
                                  "are CPU-launch-bound) | max-autotune-no-cudagraphs | max-autotune")
    channels_last: bool = _key(True, role="runtime", help="channels-last memory format on CUDA (default on)")
    workers: int = _key(0, role="runtime", help="DataLoader worker processes (default 0: the main process)")
    # --- output -----------------------------------------------------------------------
    tensorboard: bool = _key(False, role="runtime",
                             help="also write TensorBoard event files (needs lmfloss[tensorboard])")
    bootstrap: int = _key(1000, role="runtime", help="bootstrap resamples of the macro-F1 95%% interval (default 1000)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build a config from a mapping, rejecting unknown keys by name."""
        known = set(field_names())
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys are {sorted(known)}")
        values = dict(data)
        if values.get("loss_params") is None:
            values["loss_params"] = {}
        if not isinstance(values["loss_params"], Mapping):
            raise ValueError(
                f"loss_params must be a mapping such as {{beta: 2.0}}, got {values['loss_params']!r}"
            )
        values["loss_params"] = dict(values["loss_params"])
        # a list, or its text ("10,15") as --lr-milestones, --set and a sweep grid's values give it
        for key, parse in (("lr_milestones", parse_int_list), ("label_columns", parse_name_list)):
            if isinstance(values.get(key), str):
                try:
                    values[key] = parse(values[key])
                except ValueError as err:
                    raise ValueError(f"config {key}: {err}") from None
        milestones = values.get("lr_milestones")
        if isinstance(milestones, tuple) or (isinstance(milestones, int) and not isinstance(milestones, bool)):
            values["lr_milestones"] = list(milestones) if isinstance(milestones, tuple) else [milestones]
        if isinstance(values.get("label_columns"), (list, tuple)):
            values["label_columns"] = [str(c) for c in values["label_columns"]]
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def with_absolute_paths(self, base: str | Path | None = None) -> TrainConfig:
        """The same config with every path key made absolute (relative to ``base``, default
        the current folder), so the run directory can be used from anywhere."""
        changes = {}
        for name in path_keys():
            value = getattr(self, name)
            if isinstance(value, str) and value:
                path = Path(value).expanduser()
                if not path.is_absolute():
                    path = Path(base or os.getcwd()) / path
                changes[name] = os.path.normpath(path)
        return self.replace(**changes)


# ---- what is declared on the fields ------------------------------------------------
def field_names() -> list[str]:
    """Every config key, in declaration order."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


def field_info(name: str) -> Mapping[str, Any]:
    """The metadata of key ``name`` (``role``, ``help``, ``choices``, ``path``)."""
    for f in dataclasses.fields(TrainConfig):
        if f.name == name:
            return f.metadata
    raise ValueError(f"unknown config key {name!r}; valid keys are {field_names()}")


def keys_with_role(*roles: str) -> frozenset[str]:
    """The keys whose role is one of ``roles``."""
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise ValueError(f"unknown role(s) {bad}; expected {list(ROLES)}")
    return frozenset(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["role"] in roles)


def option_keys() -> tuple[str, ...]:
    """Keys that are a dataset's own options (``views``, ``uncertain``...; see ``option`` above)."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["option"])


def path_keys() -> tuple[str, ...]:
    """Keys that hold file or folder paths."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["path"])


# ---- comparing, overriding, parsing ------------------------------------------------
def diff_configs(
    a: Mapping[str, Any] | TrainConfig, b: Mapping[str, Any] | TrainConfig, *, ignore_roles: Iterable[str] = ()
) -> list[tuple[str, Any, Any]]:
    """``(key, value in a, value in b)`` for every key that differs, keys sorted.

    Keys of the roles in ``ignore_roles`` are left out (e.g. ``("runtime",)`` to ask
    "is this the same experiment?"; ``("runtime", "resumable")`` for "may it be resumed?").
    Unknown keys (a newer or older lmfloss) are compared too.
    """
    a = a.to_dict() if isinstance(a, TrainConfig) else dict(a)
    b = b.to_dict() if isinstance(b, TrainConfig) else dict(b)
    ignored = keys_with_role(*ignore_roles) if ignore_roles else frozenset()
    defaults = TrainConfig().to_dict()
    out = []
    for key in sorted(set(a) | set(b)):
        if key in ignored:
            continue
        # A key missing from an older config.yaml had its default then.
        va, vb = a.get(key, defaults.get(key)), b.get(key, defaults.get(key))
        if va != vb:
            out.append((key, va, vb))
    return out


def format_diff(diffs: Sequence[tuple[str, Any, Any]], a_name: str, b_name: str) -> str:
    """``"lr: run has 0.001, asked 0.01"`` for each difference, comma-separated."""
    return ", ".join(f"{k}: {a_name} {va!r}, {b_name} {vb!r}" for k, va, vb in diffs)


def apply_overrides(values: dict[str, Any], changes: Mapping[str, Any], *, extra: dict[str, Any] | None = None,
                    extra_prefix: str = "tags.") -> dict[str, Any]:
    """Apply ``changes`` to a config mapping in place: dotted ``loss_params.<name>`` keys set
    one loss parameter, ``loss_params`` itself merges a mapping; ``<extra_prefix><name>``
    keys go to ``extra`` (the sweep's tags). Returns ``values``."""
    for key, value in changes.items():
        if key.startswith("loss_params."):
            params = values.get("loss_params")
            values["loss_params"] = params = dict(params or {})
            params[key.split(".", 1)[1]] = value
        elif key == "loss_params":
            values["loss_params"] = {**(values.get("loss_params") or {}), **dict(value or {})}
        elif extra is not None and key.startswith(extra_prefix):
            extra[key[len(extra_prefix):]] = value
        else:
            values[key] = value
    return values


def flatten(values: Mapping[str, Any]) -> dict[str, Any]:
    """A config mapping with ``loss_params`` spread into ``loss_params.<name>`` keys."""
    flat = {k: v for k, v in values.items() if k != "loss_params"}
    flat.update({f"loss_params.{k}": v for k, v in (values.get("loss_params") or {}).items()})
    return flat


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads ``5e-4`` and ``1e3`` as numbers: YAML 1.1 (what
    PyYAML implements) needs a dot in a float, so ``weight_decay: 5e-4`` was the string
    ``"5e-4"``; YAML 1.2, and every user, reads a number."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with numbers such as ``5e-4`` read as numbers (:class:`_Loader`)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 -- a SafeLoader subclass


def parse_key_values(pairs: Iterable[str] | None, option: str = "--set") -> dict[str, Any]:
    """``["beta=2", "class_weight=none", "root=/data"]`` -> ``{"beta": 2, "class_weight": None, ...}``.

    Values are YAML scalars (numbers, booleans, lists such as ``[50, 75]``); ``none`` and
    ``null`` (any case) and an empty value are ``None``. Dashes in keys become underscores.

    Raises:
        ValueError: a pair without ``=`` or with an empty key, naming ``option``.
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, raw = split_key_value(pair, option)
        try:
            value = load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and value.strip().lower() == "none":
            value = None
        out[key] = value
    return out


def split_key_value(pair: str, option: str, expected: str = "KEY=VALUE") -> tuple[str, str]:
    """``"loss-param=2"`` -> ``("loss_param", "2")``: the key stripped, dashes made underscores,
    and the raw value text.

    Raises:
        ValueError: a pair without ``=`` or with an empty key, naming ``option``.
    """
    key, sep, raw = pair.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"{option} expects {expected}, got {pair!r}")
    return key.replace("-", "_"), raw


def _parse_list(text: Any, convert: Any, example: str, spaces_separate: bool = False) -> list | None:
    """``"a,b"`` / ``"[a, b]"`` / ``[a, b]`` -> a list of ``convert``-ed parts; ``""``/``"none"`` -> ``None``."""
    if text is None or isinstance(text, list):
        return text
    if isinstance(text, tuple):
        return list(text)
    raw = str(text).strip().strip("[]")
    if not raw or raw.lower() == "none":
        return None
    try:
        parts = (raw.replace(" ", ",") if spaces_separate else raw).split(",")
        return [convert(part.strip()) for part in parts if part.strip()]
    except ValueError:
        raise ValueError(f"expected {example}, got {text!r}") from None


def parse_int_list(text: str | Sequence[int] | None) -> list[int] | None:
    """``"50,75"`` / ``"[50, 75]"`` / ``[50, 75]`` -> ``[50, 75]``; ``""``/``"none"`` -> ``None``."""
    return _parse_list(text, int, "whole numbers separated by commas (e.g. 50,75)", spaces_separate=True)


def parse_name_list(text: str | Sequence[str] | None) -> list[str] | None:
    """``"A,B, C"`` / ``["A", "B"]`` -> ``["A", "B", "C"]``; ``""``/``"none"`` -> ``None``
    (a name may hold spaces: ``"Pleural Effusion,Edema"``)."""
    return _parse_list(text, str, "names separated by commas (e.g. A,B,C)")


# ---- files -------------------------------------------------------------------------
def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; an unreadable or non-mapping file is a ``ValueError`` naming it."""
    path = require_file(path, "config file", "a YAML file", stream_ok=True)  # read once
    try:
        data = load_yaml(read_text(path, "config file"))
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of keys, got {type(data).__name__}")
    return data


def config_yaml(config: TrainConfig, typed: Mapping[str, Any] | None = None) -> str:
    """``config.yaml`` text: the config's keys, with the paths as typed in a comment."""
    lines = []
    for key, value in (typed or {}).items():
        if value is not None and value != getattr(config, key):
            lines.append(f"# {key} as typed: {value} (relative to {os.getcwd()})")
    return "".join(f"{line}\n" for line in lines) + yaml.safe_dump(config.to_dict(), sort_keys=False)


def save_config(config: TrainConfig, path: str | Path, typed: Mapping[str, Any] | None = None) -> None:
    """Write ``config.yaml`` atomically (see :func:`config_yaml`)."""
    atomic_write_text(config_yaml(config, typed), path)


# ---- validation --------------------------------------------------------------------
def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_RULES: dict[str, tuple[Any, str]] = {
    "epochs": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "lr": (lambda v: _number(v) and v > 0, "a number > 0"),
    "weight_decay": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "lr_step": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "lr_gamma": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "image_size": (lambda v: _int(v) and 8 <= v <= 4096, "an integer between 8 and 4096 (pixels)"),
    "seed": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "split_seed": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "sampler_start_epoch": (lambda v: _int(v) and v >= 0, "an integer >= 0 (a 0-based epoch)"),
    "fold_seed": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "folds": (lambda v: v is None or (_int(v) and v >= 2), "an integer >= 2 (or none)"),
    "fold": (lambda v: v is None or (_int(v) and v >= 1), "an integer >= 1 (or none)"),
    "workers": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "bootstrap": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
}


def check_config(config: TrainConfig) -> TrainConfig:
    """Reject values no run can use, naming the key, the value and what is expected.

    Returns:
        ``config`` unchanged, for chaining.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"expected a lmfloss.config.TrainConfig, got {type(config).__name__}")
    for name, (ok, expected) in _RULES.items():
        value = getattr(config, name)
        if not ok(value):
            raise ValueError(f"config {name}={value!r} is invalid; expected {expected}")
    for f in dataclasses.fields(TrainConfig):
        choices = f.metadata["choices"]
        value = getattr(config, f.name)
        if choices and value is not None and value not in choices:
            raise ValueError(f"config {f.name}={value!r} is invalid; expected one of {list(choices)}")
    milestones = config.lr_milestones
    if milestones is not None:
        if not isinstance(milestones, list) or not milestones or not all(_int(m) for m in milestones):
            raise ValueError(f"config lr_milestones={milestones!r} is invalid; expected a list of epochs such as [50, 75]")
        if any(b <= a for a, b in zip(milestones, milestones[1:])) or milestones[0] < 1:
            raise ValueError(f"config lr_milestones={milestones!r} must be increasing epochs >= 1")
        if milestones[-1] >= config.epochs:
            raise ValueError(
                f"config lr_milestones={milestones!r} reaches past the last epoch ({config.epochs}); "
                "a milestone must be < epochs"
            )
    columns = config.label_columns
    if columns is not None:
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c.strip() for c in columns):
            raise ValueError(f"config label_columns={columns!r} is invalid; expected column names such as [A, B, C]")
        if len(set(columns)) != len(columns):
            raise ValueError(f"config label_columns={columns!r} names a column twice")
    # label_columns and score_by need a multi-label task: checked once the task is settled
    # (lmfloss.data.adapters.resolve_config; ChestMNIST is multi-label without --task).
    if config.fold is not None and (config.folds is None or config.fold > config.folds):
        raise ValueError(f"config fold={config.fold!r} needs folds >= fold (got folds={config.folds!r})")
    for name in ("dataset", "model", "loss", "weights", "device"):
        value = getattr(config, name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"config {name}={value!r} is invalid; expected a non-empty string")
    return config


# ---- the command line's config ------------------------------------------------------
def build_config(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    loss_param_pairs: Iterable[str] | None = None,
    base: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """The config of ``lmfloss train``: defaults (or ``base``) < ``config_file`` < overrides.

    Args:
        config_file: a YAML file of config keys.
        overrides: key -> value given on the command line (``None`` values are "not given").
        loss_param_pairs: ``KEY=VALUE`` strings of ``--loss-param``, merged into ``loss_params``.
        base: starting values (a resumed run's config), instead of the defaults.
    """
    values: dict[str, Any] = dict(base or {})
    if config_file:
        values.update(load_config_file(config_file))
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    if loss_param_pairs:
        apply_overrides(values, {"loss_params": parse_key_values(loss_param_pairs, "--loss-param")})
    return TrainConfig.from_dict(values)
