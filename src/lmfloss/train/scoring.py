"""From a model's logits on a split to ``report.json``'s numbers: one path for training
(the final report of :func:`lmfloss.train.fit`) and for ``lmfloss evaluate``.

Binary tasks: the positive class (``positive_class``, else the rarer training class) gets
sensitivity and specificity, and the test metrics are also given at the probability
threshold that maximises Youden's J on **validation** (never test). Temperature scaling
(Guo et al., ICML 2017) is fitted on validation logits only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lmfloss.config import TrainConfig


@dataclass
class SplitResult:
    """One split scored by one model.

    Attributes:
        split: ``"train" | "val" | "test"``.
        ids: record ids, in the order of the other arrays (dataset order).
        labels: ``int64 [N]`` true classes.
        logits: ``float32 [N, K]`` the model's outputs.
    """

    split: str
    ids: list[str]
    labels: np.ndarray
    logits: np.ndarray

    def probs(self, temperature: float = 1.0) -> np.ndarray:
        """``softmax(logits / temperature)`` as float64 ``[N, K]``."""
        return torch.softmax(torch.from_numpy(self.logits).double() / temperature, dim=1).numpy()


def split_result(split: str, evaluated: Mapping[str, torch.Tensor], dataset: Any) -> SplitResult:
    """A :class:`SplitResult` from :func:`lmfloss.train.engine.evaluate`'s output."""
    ids = [dataset.records[int(i)].id for i in evaluated["indices"]]
    return SplitResult(split, ids, evaluated["labels"].numpy().astype(np.int64),
                       evaluated["logits"].float().numpy())


def reports(results: Mapping[str, SplitResult], config: TrainConfig, class_names: Sequence[str],
            train_counts: Sequence[int] | None, temperature: float = 1.0) -> dict[str, dict[str, Any]]:
    """``classification_report`` of every split in ``results`` (``"val"`` among them for a
    binary task's threshold, which is chosen there and applied to the other splits)."""
    from lmfloss.metrics import classification_report, positive_index, youden_threshold

    positive = threshold = None
    probs = {split: r.probs(temperature) for split, r in results.items()}
    if len(class_names) == 2:
        positive = positive_index(class_names, train_counts, config.positive_class)
        if "val" in results:
            threshold = youden_threshold(results["val"].labels, probs["val"], positive)
    out = {}
    for split, result in results.items():
        out[split] = classification_report(
            result.labels, probs[split].argmax(axis=1), probs[split], class_names,
            n_bootstrap=config.bootstrap, seed=config.seed, positive=positive,
            threshold=threshold if split != "val" else None,
        )
        if split == "val" and threshold is not None:
            out[split]["threshold_youden"] = threshold
    return out


def final_report(config: TrainConfig, class_names: list[str], train_counts: list[int],
                 results: Mapping[str, SplitResult], best_epoch: int) -> dict[str, Any]:
    """``report.json``'s content from the best model's validation and test results."""
    from lmfloss.losses import resolved_loss_params
    from lmfloss.metrics import macro_rule_note

    report: dict[str, Any] = {
        "best_epoch": best_epoch, "select_metric": config.select_metric,
        "class_names": class_names, "train_class_counts": train_counts,
        "macro_rule": macro_rule_note(),
        "loss": {"name": config.loss, "params": resolved_loss_params(config.loss, config.loss_params)},
    }
    report.update(reports(results, config, class_names, train_counts))
    report["config"] = config.to_dict()
    return report


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, max_iter: int = 200) -> float:
    """The temperature ``T > 0`` minimising the NLL of ``softmax(logits / T)`` (Guo et al. 2017).

    Fitted in float64 with L-BFGS on ``log T`` (so ``T`` stays positive), from ``T = 1``.
    Pass **validation** logits: a temperature fitted on test would make test calibration
    look better than it is.

    Raises:
        ValueError: no logits, or shapes that do not match.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if z.ndim != 2 or z.shape[0] == 0 or y.shape != (z.shape[0],):
        raise ValueError(f"temperature scaling needs logits [N, K] and labels [N] with N > 0, "
                         f"got {tuple(z.shape)} and {tuple(y.shape)}")
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature) or temperature <= 0:
        return 1.0
    return temperature
