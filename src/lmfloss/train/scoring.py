"""From a model's logits on a split to ``report.json``'s numbers: one path for training
(the final report of :func:`lmfloss.train.fit`) and for ``lmfloss evaluate``.

The task (``config.task``, decided once by the config/data layer) says how logits become
probabilities -- softmax over classes (multi-class) or one sigmoid per label
(multi-label) -- and which metrics a split gets (:mod:`lmfloss.metrics` or
:mod:`lmfloss.multilabel_metrics`).

Binary tasks: the positive class (``positive_class``, else the rarer training class) gets
sensitivity and specificity, and the test metrics are also given at the probability
threshold that maximises Youden's J on **validation** (never test). Multi-label tasks: per
label, the threshold that maximises F1 on **validation** is applied to test. Temperature
scaling (Guo et al., ICML 2017) is fitted on validation logits only.

Patient-level scoring (``score_by: patient``, multi-label; ODIR-5K's official task scores
patients, both eyes together): a patient's probability of a label is the **largest** of its
images' probabilities (a finding seen in either eye is the patient's finding), its truth the
union of its images' labels. Since the sigmoid is monotone, that is the sigmoid of the
largest logit, so :meth:`SplitResult.by_group` combines logits.
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
        ids: record ids (or group ids after :meth:`by_group`), in the order of the other arrays.
        labels: ``int64 [N]`` true classes, or ``[N, L]`` 0/1 for a multi-label task.
        logits: ``float32 [N, K]`` (or ``[N, L]``) the model's outputs.
        task: ``"multiclass"`` or ``"multilabel"``.
        groups: the group (patient) of each item, when the records have one.
    """

    split: str
    ids: list[str]
    labels: np.ndarray
    logits: np.ndarray
    task: str = "multiclass"
    groups: list[str | None] | None = None

    def probs(self, temperature: float = 1.0) -> np.ndarray:
        """``softmax(logits / T)`` (multi-class) or ``sigmoid(logits / T)`` (multi-label), float64."""
        return probabilities(self.logits, self.task, temperature)

    def by_group(self) -> SplitResult:
        """The split scored per group (patient): a group's logit of each label is the largest
        of its items' (so its probability is the largest), its truth the union of their labels.
        Items without a group stay items of their own. Group order: first appearance."""
        if self.task != "multilabel":
            raise ValueError("scoring by patient combines per-label probabilities; it needs a multi-label task")
        keys = [g if g else f"{i}" for g, i in zip(self.groups or [None] * len(self.ids), self.ids)]
        order: dict[str, list[int]] = {}
        for k, key in enumerate(keys):
            order.setdefault(key, []).append(k)
        logits = np.stack([self.logits[m].max(axis=0) for m in order.values()])
        labels = np.stack([self.labels[m].max(axis=0) for m in order.values()])
        return SplitResult(self.split, list(order), labels, logits, self.task, None)


def probabilities(logits: np.ndarray, task: str = "multiclass", temperature: float = 1.0) -> np.ndarray:
    """The task's probabilities of ``logits`` (float64): softmax over the last axis, or a sigmoid per label."""
    z = torch.from_numpy(np.asarray(logits)).double() / temperature
    return (torch.sigmoid(z) if task == "multilabel" else torch.softmax(z, dim=-1)).numpy()


def split_result(split: str, evaluated: Mapping[str, torch.Tensor], dataset: Any,
                 task: str = "multiclass") -> SplitResult:
    """A :class:`SplitResult` from :func:`lmfloss.train.engine.evaluate`'s output."""
    records = [dataset.records[int(i)] for i in evaluated["indices"]]
    return SplitResult(split, [r.id for r in records], evaluated["labels"].numpy().astype(np.int64),
                       evaluated["logits"].float().numpy(), task, [r.group for r in records])


def scored(result: SplitResult, config: TrainConfig) -> SplitResult:
    """``result`` at the level the run scores: per patient with ``score_by: patient``."""
    return result.by_group() if config.task == "multilabel" and config.score_by == "patient" else result


def selection_scores(result: SplitResult, config: TrainConfig) -> dict[str, float | None]:
    """The validation scores of an epoch (one of which, ``config.select_metric``, picks the best):
    ``f1_macro``, ``accuracy``, ``balanced_accuracy``, ``auc`` and, multi-label, ``map``."""
    result = scored(result, config)
    if result.task == "multilabel":
        from lmfloss.multilabel_metrics import selection_scores as multilabel_scores

        return {**multilabel_scores(result.labels, result.probs()), "balanced_accuracy": None}
    from lmfloss.metrics import selection_scores as multiclass_scores

    return multiclass_scores(result.labels, result.probs(), result.logits.shape[1])


def reports(results: Mapping[str, SplitResult], config: TrainConfig, class_names: Sequence[str],
            train_counts: Sequence[int] | None, temperature: float = 1.0) -> dict[str, dict[str, Any]]:
    """``classification_report`` of every split in ``results`` (``"val"`` among them for a
    binary task's threshold, which is chosen there and applied to the other splits); for a
    multi-label task ``multilabel_report``, with per-label thresholds chosen on ``"val"``."""
    from lmfloss.metrics import classification_report, positive_index, youden_threshold

    if config.task == "multilabel":
        return _multilabel_reports({s: scored(r, config) for s, r in results.items()}, config, class_names,
                                   temperature)
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


def _multilabel_reports(results: Mapping[str, SplitResult], config: TrainConfig, label_names: Sequence[str],
                        temperature: float) -> dict[str, dict[str, Any]]:
    from lmfloss.multilabel_metrics import choose_thresholds, multilabel_report

    probs = {split: r.probs(temperature) for split, r in results.items()}
    thresholds = choose_thresholds(results["val"].labels, probs["val"]) if "val" in results else None
    out = {}
    for split, result in results.items():
        out[split] = multilabel_report(result.labels, probs[split], label_names, n_bootstrap=config.bootstrap,
                                       seed=config.seed, thresholds=thresholds if split != "val" else None)
        out[split]["score_by"] = "patient" if config.score_by == "patient" else "image"
        if split == "val" and thresholds is not None:
            out[split]["thresholds_chosen"] = dict(zip(label_names, thresholds))
    return out


def final_report(config: TrainConfig, class_names: list[str], train_counts: Sequence[Any],
                 results: Mapping[str, SplitResult], best_epoch: int) -> dict[str, Any]:
    """``report.json``'s content from the best model's validation and test results.

    ``train_counts``: the training images per class, or for a multi-label task the ``[L, 2]``
    table of (negatives, positives) per label (``train_class_counts`` then holds the positives,
    ``train_label_counts`` the table).
    """
    from lmfloss.losses import resolved_loss_params

    report: dict[str, Any] = {"task": config.task, "best_epoch": best_epoch, "select_metric": config.select_metric,
                              "class_names": class_names}
    if config.task == "multilabel":
        from lmfloss.multilabel_metrics import macro_rule_note

        report.update(train_class_counts=[int(pos) for _, pos in train_counts],
                      train_label_counts=[[int(a), int(b)] for a, b in train_counts],
                      score_by="patient" if config.score_by == "patient" else "image")
    else:
        from lmfloss.metrics import macro_rule_note

        report["train_class_counts"] = list(train_counts)
    report["macro_rule"] = macro_rule_note()
    report["loss"] = {"name": config.loss,
                      "params": resolved_loss_params(config.loss, config.loss_params, config.task)}
    report.update(reports(results, config, class_names, train_counts))
    report["config"] = config.to_dict()
    return report


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, max_iter: int = 200,
                    task: str = "multiclass") -> float:
    """The temperature ``T > 0`` minimising the NLL of ``softmax(logits / T)`` (Guo et al. 2017)
    -- for a multi-label task, of ``sigmoid(logits / T)`` (one temperature for every label).

    Fitted in float64 with L-BFGS on ``log T`` (so ``T`` stays positive), from ``T = 1``.
    Pass **validation** logits: a temperature fitted on test would make test calibration
    look better than it is.

    Raises:
        ValueError: no logits, or shapes that do not match.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    multilabel = task == "multilabel"
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float64 if multilabel else torch.int64)
    expected = tuple(z.shape) if multilabel else (z.shape[0],) if z.ndim else ()
    if z.ndim != 2 or z.shape[0] == 0 or tuple(y.shape) != expected:
        raise ValueError(f"temperature scaling needs logits [N, K] and labels {'[N, K]' if multilabel else '[N]'} "
                         f"with N > 0, got {tuple(z.shape)} and {tuple(y.shape)}")
    nll = torch.nn.functional.binary_cross_entropy_with_logits if multilabel else torch.nn.functional.cross_entropy
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nll(z / log_t.exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature) or temperature <= 0:
        return 1.0
    return temperature
