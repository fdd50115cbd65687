"""Display names: the paper's spelling of datasets, architectures and losses.

Anything not listed is shown under its own name, so runs of other datasets, models
or losses (``retinamnist``, ``resnet18``, ``cb``...) still get rows and columns.
"""

from __future__ import annotations

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
LOSS_NAMES = {
    "ce": "CCE", "bwcce": "BWCCE", "focal": "Focal", "ldam": "LDAM", "lmf": "LMF",
    "wce": "WCE", "cb": "CB", "logit-adjusted": "Logit-adjusted", "ldam-drw": "LDAM-DRW", "lmf-drw": "LMF-DRW",
    "bce": "BCE", "asl": "ASL",
}

# The paper's order: datasets as in Tables 2-4, models as Tables 2, 3, 4, losses as rows.
_DATASET_ORDER = list(DATASET_NAMES)
_MODEL_ORDER = list(MODEL_NAMES)
_LOSS_ORDER = ["ce", "bce", "focal", "asl", "ldam", "bwcce", "lmf"]
# The proposed loss and its variants: compared with the baselines, never one of them.
LMF_FAMILY = ("lmf", "lmf-drw")


def is_baseline(loss: str) -> bool:
    """Every method but LMF and LMF-DRW (LDAM-DRW is a published baseline)."""
    return loss not in LMF_FAMILY


def dataset_name(name: str) -> str:
    """``ham10000`` -> ``HAM-10K``; unknown names unchanged; ``name@fingerprint`` (runs of one
    name on different data) -> ``name (data fingerprint)``; ``name:multilabel`` -> ``name
    (multi-label)``."""
    name, multilabel, _ = name.partition(":multilabel")
    base, _, fingerprint = name.partition("@")
    shown = DATASET_NAMES.get(base, base)
    shown = f"{shown} (data {fingerprint})" if fingerprint else shown
    return f"{shown} (multi-label)" if multilabel else shown


def is_multilabel_dataset(key: str) -> bool:
    """Whether a report's dataset key is a multi-label task (:func:`lmfloss.report.runs.assign_dataset_keys`)."""
    return key.endswith(":multilabel")


def model_name(name: str) -> str:
    """``efficientnet_v2_s`` -> ``EfficientNetV2``; unknown names unchanged."""
    return MODEL_NAMES.get(name, name)


def loss_name(name: str) -> str:
    """``ce`` -> ``CCE``; unknown names unchanged."""
    return LOSS_NAMES.get(name, name)


def _ordered(names: set[str] | list[str], known: list[str]) -> list[str]:
    names = set(names)
    return [n for n in known if n in names] + sorted(names - set(known))


def _ordered_datasets(names: set[str] | list[str], known: list[str]) -> list[str]:
    # A multi-label task sits right after the same dataset's single-label one.
    names = set(names)
    return sorted(names, key=lambda n: (known.index(n.partition(":")[0]) if n.partition(":")[0] in known
                                        else len(known), n.partition(":")[0], n))


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
