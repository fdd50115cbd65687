"""Display names: the paper's spelling of datasets, architectures and losses, and the
report's key of a dataset (:class:`DatasetKey`: the data's name and its runs' task).

Anything not listed is shown under its own name, so runs of other datasets, models
or losses (``mydata``, ``convnext_tiny``...) still get rows and columns. MedMNIST's sets and
the small ResNets take their published spelling (``RetinaMNIST``, ``ResNet-18``) and sort
after the paper's, alphabetically.
"""

from __future__ import annotations

from typing import Any

from lmfloss.task import Task, get_task

DATASET_NAMES = {
    "odir5k": "ODIR-5K",
    "ham10000": "HAM-10K",
    "isic2019": "ISIC-2019",
    "covid19": "Covid-19",
}
MODEL_NAMES = {
    "efficientnet_v2_s": "EfficientNetV2",
    "resnet50": "ResNet-50",
    "densenet121": "DenseNet-121",
}
# Spelling only (the paper's order above is unchanged): MedMNIST v2's names of its 2D sets,
# ``retinamnist_64`` (MedMNIST+ sizes) -> ``RetinaMNIST (64 px)``; torchvision's small ResNets.
MEDMNIST_NAMES = {
    flag.lower(): flag
    for flag in ("PathMNIST", "ChestMNIST", "DermaMNIST", "OCTMNIST", "PneumoniaMNIST", "RetinaMNIST",
                 "BreastMNIST", "BloodMNIST", "TissueMNIST", "OrganAMNIST", "OrganCMNIST", "OrganSMNIST")
}
OTHER_MODEL_NAMES = {"resnet18": "ResNet-18", "resnet34": "ResNet-34"}
LOSS_NAMES = {
    "ce": "CCE", "bwcce": "BWCCE", "focal": "Focal", "ldam": "LDAM", "lmf": "LMF",
    "wce": "WCE", "cb": "CB", "logit-adjusted": "Logit-adjusted", "ldam-drw": "LDAM-DRW", "lmf-drw": "LMF-DRW",
    "bce": "BCE", "asl": "ASL",
}
# validation and test scores as tables and ``sweep --status`` name them
METRIC_NAMES = {"f1_macro": "macro-F1", "map": "mAP", "auc": "AUC", "auc_macro": "macro AUC", "accuracy": "accuracy"}

# The paper's order: datasets as in Tables 2-4, models as Tables 2, 3, 4, losses as rows.
_DATASET_ORDER = list(DATASET_NAMES)
_MODEL_ORDER = list(MODEL_NAMES)
_LOSS_ORDER = ["ce", "bce", "focal", "asl", "ldam", "bwcce", "lmf"]
# The proposed loss and its variants: compared with the baselines, never one of them.
LMF_FAMILY = ("lmf", "lmf-drw")


class DatasetKey(str):
    """A dataset of a report: the data's name and the task its runs learnt.

    One dataset's two tasks (ODIR-5K's single-label form and its official multi-label task)
    are two datasets of a report. As a string it is the key ``results.csv``, ``summary.csv``
    and the grid show: the name, with ``:<task>`` for a task other than the default (a
    config without ``task``); code asks :attr:`task`, never the string.

    Attributes:
        name: the adapter's name, or the CSV/folder's, with ``@<fingerprint>`` where runs of
            one name saw different data (:func:`lmfloss.report.runs.assign_dataset_keys`).
        task: the :class:`~lmfloss.task.Task` of the dataset's runs.
    """

    name: str
    task: Task

    def __new__(cls, name: str, task: Task | str | None = None) -> DatasetKey:
        task = get_task(task)
        key = super().__new__(cls, name if task is get_task(None) else f"{name}:{task.name}")
        key.name, key.task = name, task
        return key

    def __reduce__(self) -> tuple[Any, ...]:  # a pickle names the task; unpickling finds the registered one
        return (DatasetKey, (self.name, self.task.name))

    def __copy__(self) -> DatasetKey:  # immutable: a copy is the key itself
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> DatasetKey:
        return self


def dataset_key(key: str) -> DatasetKey:
    """``key`` as a :class:`DatasetKey` (a plain string: a dataset of the default task)."""
    return key if isinstance(key, DatasetKey) else DatasetKey(key)


def is_baseline(loss: str) -> bool:
    """Every method but LMF and LMF-DRW (LDAM-DRW is a published baseline)."""
    return loss not in LMF_FAMILY


def dataset_name(key: str) -> str:
    """``ham10000`` -> ``HAM-10K``; unknown names unchanged; ``name@fingerprint`` (runs of one
    name on different data) -> ``name (data fingerprint)``; a task other than the default
    says so: ``ChestMNIST (multi-label)``."""
    key = dataset_key(key)
    base, _, fingerprint = key.name.partition("@")
    shown = DATASET_NAMES.get(base) or _medmnist_name(base)
    shown = f"{shown} (data {fingerprint})" if fingerprint else shown
    return shown if key.task is get_task(None) else f"{shown} ({key.task.display})"


def _medmnist_name(base: str) -> str:
    flag, _, size = base.partition("_")
    if flag not in MEDMNIST_NAMES or size not in ("", "28", "64", "128", "224"):
        return base
    return MEDMNIST_NAMES[flag] + (f" ({size} px)" if size else "")


def model_name(name: str) -> str:
    """``efficientnet_v2_s`` -> ``EfficientNetV2``, ``resnet18`` -> ``ResNet-18``; unknown names unchanged."""
    return MODEL_NAMES.get(name) or OTHER_MODEL_NAMES.get(name, name)


def metric_name(key: str) -> str:
    """``map`` -> ``mAP``; a metric not listed keeps its key."""
    return METRIC_NAMES.get(key, key)


def loss_name(name: str) -> str:
    """``ce`` -> ``CCE``; unknown names unchanged."""
    return LOSS_NAMES.get(name, name)


def _ordered(names: set[str] | list[str], known: list[str]) -> list[str]:
    names = set(names)
    return [n for n in known if n in names] + sorted(names - set(known))


def _ordered_datasets(keys: set[str] | list[str], known: list[str]) -> list[str]:
    # One dataset's other task sits right after its default one.
    def order(key: str) -> tuple[int, str, str]:
        name = dataset_key(key).name
        return (known.index(name) if name in known else len(known), name, key)

    return sorted(set(keys), key=order)


def order_datasets(names: set[str] | list[str]) -> list[str]:
    """The paper's datasets first in its order, then the others alphabetically."""
    return _ordered_datasets(names, _DATASET_ORDER)


def order_models(names: set[str] | list[str]) -> list[str]:
    """The paper's architectures first (Tables 2, 3, 4 order), then the others."""
    return _ordered(names, _MODEL_ORDER)


def order_losses(names: set[str] | list[str]) -> list[str]:
    """CCE, Focal, LDAM, BWCCE, then other losses alphabetically, LMF-DRW, LMF last (as in the paper)."""
    names = set(names)
    baselines = [n for n in _LOSS_ORDER[:-1] if n in names]
    others = sorted(names - set(_LOSS_ORDER) - set(LMF_FAMILY))
    return baselines + others + [n for n in reversed(LMF_FAMILY) if n in names]


# Each loss's colour in every figure of a report (Okabe & Ito's colour-blind-safe set, then
# matplotlib's tab10 for many baselines): LMF and LMF-DRW keep theirs whatever else is drawn.
_LMF_COLORS = {"lmf": "#D55E00", "lmf-drw": "#000000"}
_BASELINE_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#8C564B", "#7F7F7F", "#BCBD22",
                    "#17BECF", "#9467BD")


def loss_colors(losses: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``loss -> colour`` for a report's losses (its grid's, in :func:`order_losses` order): the
    same loss is the same colour in every figure of the report, whatever a figure leaves out."""
    colors, k = {}, 0
    for loss in losses:
        if loss in _LMF_COLORS:
            colors[loss] = _LMF_COLORS[loss]
        else:
            colors[loss] = _BASELINE_COLORS[k % len(_BASELINE_COLORS)]
            k += 1
    return colors


def loss_gid(loss: str, what: str) -> str:
    """The SVG group id of a figure element drawn in a loss's colour (``lossc--lmf--val``): the
    page's test reads every figure's colour of each loss from it."""
    return f"lossc--{loss}--{what}"
