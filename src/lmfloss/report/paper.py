"""The paper's published numbers (Sadi et al., LMFLOSS, Tables 2-6), embedded as data.

The values live in ``paper_results.json`` beside this module, transcribed from the
paper's text: Tables 2-4 (accuracy, macro precision, macro recall and macro-F1 of
five losses on four datasets, one table per architecture), Table 5 (per-class F1 of
EfficientNetV2 with the training-sample counts) and Table 6 (the best LMF ``alpha``,
``beta`` per dataset x model). Names are lmfloss's adapter/model/loss names
(``ham10000``, ``efficientnet_v2_s``, ``ce``...), values are percentages as printed.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

PAPER_MAIN_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


@lru_cache(maxsize=1)
def paper_results() -> dict[str, Any]:
    """The whole embedded JSON document (cached; treat it as read-only).

    Returns:
        A mapping with ``main`` (rows of Tables 2-4), ``per_class`` (Table 5),
        ``best_hparams`` (Table 6), ``table_models`` and ``source``.
    """
    text = resources.files("lmfloss.report").joinpath("paper_results.json").read_text()
    return json.loads(text)


def paper_main(dataset: str, model: str, loss: str) -> dict[str, float] | None:
    """Tables 2-4: the paper's accuracy/precision/recall/macro-F1 (percent) or ``None``.

    Args:
        dataset: Adapter name (``odir5k``, ``ham10000``, ``isic2019``, ``covid19``).
        model: ``efficientnet_v2_s`` | ``resnet50`` | ``densenet121``.
        loss: ``ce`` | ``focal`` | ``ldam`` | ``bwcce`` | ``lmf``.
    """
    for row in paper_results()["main"]:
        if (row["dataset"], row["model"], row["loss"]) == (dataset, model, loss):
            return {key: float(row[key]) for key in PAPER_MAIN_METRICS}
    return None


def paper_per_class(dataset: str, class_name: str, loss: str) -> float | None:
    """Table 5: the paper's per-class F1 (percent, EfficientNetV2) or ``None``.

    Class names are matched case-insensitively (``AKIEC`` == ``akiec``).
    """
    for row in paper_results()["per_class"]:
        if row["dataset"] == dataset and row["class_name"].lower() == class_name.lower():
            value = row["f1"].get(loss)
            return None if value is None else float(value)
    return None


def paper_train_samples(dataset: str, class_name: str) -> int | None:
    """Table 5's training-sample count of one class, or ``None`` if the paper has none."""
    for row in paper_results()["per_class"]:
        if row["dataset"] == dataset and row["class_name"].lower() == class_name.lower():
            return int(row["train_samples"])
    return None


def paper_best_hparams(dataset: str, model: str) -> tuple[float, float] | None:
    """Table 6: the paper's best LMF ``(alpha, beta)`` for a dataset x model, or ``None``."""
    for row in paper_results()["best_hparams"]:
        if (row["dataset"], row["model"]) == (dataset, model):
            return float(row["alpha"]), float(row["beta"])
    return None
