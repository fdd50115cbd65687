"""From a model's logits on a split to ``report.json``'s numbers: one path for training
(the final report of :func:`lmfloss.train.fit`) and for ``lmfloss evaluate``.

The task (``config.task``, decided once by the config/data layer; :mod:`lmfloss.task`) says
how logits become probabilities -- softmax over classes (multi-class) or one sigmoid per
label (multi-label) -- and which metrics a split gets.

Binary tasks: the positive class (``positive_class``, else the rarer training class) gets
sensitivity and specificity, and the test metrics are also given at the probability
threshold that maximises Youden's J on **validation** (never test). Multi-label tasks: per
label, the threshold that maximises F1 on **validation** is applied to test. Temperature
scaling (Guo et al., ICML 2017) is fitted on validation logits only.

Patient-level scoring (``score_by: patient``, multi-label; ODIR-5K's official task scores
patients, both eyes together): a patient's probability of a label is the **largest** of its
images' probabilities (a finding seen in either eye is the patient's finding), its truth the
union of its images' labels. Since the sigmoid is monotone, that is the sigmoid of the
largest logit, so :meth:`SplitResult.by_group` combines logits. An unknown label (``-1``) of
an image is left out: a patient's label is unknown only where it is unknown on every image,
else the largest of its known values -- which is the plain maximum of -1 < 0 < 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lmfloss.config import TrainConfig
from lmfloss.metrics import positive_index
from lmfloss.task import MULTICLASS, Task, get_task

# The levels that combine items, in the order of SplitResult's groups and studies (a level not
# here, image, scores every image alone). A study (CheXpert) is scored by the maximum over its
# views, as Irvin et al. (2019) score one.
SCORE_UNITS = ("patient", "study")


@dataclass
class SplitResult:
    """One split scored by one model.

    Attributes:
        split: ``"train" | "val" | "test"``.
        ids: record ids (or group ids after :meth:`by_group`), in the order of the other arrays.
        labels: the task's labels (``int64 [N]`` classes, or ``[N, L]`` 0/1 for a multi-label task,
            ``-1`` where unknown).
        logits: ``float32 [N, K]`` (or ``[N, L]``) the model's outputs.
        task: the :class:`~lmfloss.task.Task` (or its name).
        groups: the group (patient) of each item, when the records have one.
        studies: the study of each item (``Record.study``, CheXpert), when the records have one.
    """

    split: str
    ids: list[str]
    labels: np.ndarray
    logits: np.ndarray
    task: Task | str = MULTICLASS
    groups: list[str | None] | None = None
    studies: list[str | None] | None = None

    def __post_init__(self) -> None:
        self.task = get_task(self.task)

    def probs(self, temperature: float = 1.0) -> np.ndarray:
        """The task's probabilities of ``logits / T`` (softmax, or a sigmoid per label), float64."""
        return self.task.probabilities(self.logits, temperature)

    def by_group(self, level: str = "patient") -> SplitResult:
        """The split scored per group (patient): a group's logit of each label is the largest
        of its items' (so its probability is the largest), its truth the union of their labels:
        per label the largest known value (1 if any image has it, else 0 if any image is known
        negative, else -1: unknown on every image -- the maximum, since -1 < 0 < 1).
        Items without a group stay items of their own. Group order: first appearance.
        ``level``: ``"patient"`` (``groups``) or ``"study"`` (``studies``)."""
        if not self.task.group_scoring:
            raise ValueError(f"scoring by patient combines per-label probabilities; a {self.task.display} task "
                             "has none to combine")
        if level not in SCORE_UNITS:
            raise ValueError(f"score level {level!r} is not one of {list(SCORE_UNITS)}")
        units = dict(zip(SCORE_UNITS, (self.groups, self.studies)))[level]
        keys = [g if g else f"{i}" for g, i in zip(units or [None] * len(self.ids), self.ids)]
        order: dict[str, list[int]] = {}
        for k, key in enumerate(keys):
            order.setdefault(key, []).append(k)
        logits = np.stack([self.logits[m].max(axis=0) for m in order.values()])
        labels = np.stack([self.labels[m].max(axis=0) for m in order.values()])  # -1 < 0 < 1: see above
        return SplitResult(self.split, list(order), labels, logits, self.task)


def probabilities(logits: np.ndarray, task: Task | str = MULTICLASS, temperature: float = 1.0) -> np.ndarray:
    """The task's probabilities of ``logits`` (float64): :meth:`lmfloss.task.Task.probabilities`."""
    return get_task(task).probabilities(logits, temperature)


def split_result(split: str, evaluated: Mapping[str, torch.Tensor], dataset: Any,
                 task: Task | str = MULTICLASS) -> SplitResult:
    """A :class:`SplitResult` from :func:`lmfloss.train.engine.evaluate`'s output."""
    task = get_task(task)
    records = [dataset.records[int(i)] for i in evaluated["indices"]]
    return SplitResult(split, [r.id for r in records], task.label_array(evaluated["labels"].numpy()),
                       evaluated["logits"].float().numpy(), task, [r.group for r in records],
                       [r.study for r in records])


def scored(result: SplitResult, config: TrainConfig) -> SplitResult:
    """``result`` at the level the run scores: per patient (study) with ``score_by: patient`` (``study``)."""
    if result.task.group_scoring and config.score_by in SCORE_UNITS:
        return result.by_group(config.score_by)
    return result


def score_level(config: TrainConfig) -> str | None:
    """``patient``, ``study`` or ``image`` for a task that may score groups; ``None`` for one that
    scores images only."""
    if not get_task(config).group_scoring:
        return None
    return config.score_by if config.score_by in SCORE_UNITS else "image"


def selection_scores(result: SplitResult, config: TrainConfig) -> dict[str, float | None]:
    """The validation scores of an epoch, keyed by the task's ``epoch_metrics`` (one of which,
    ``config.select_metric``, picks the best epoch)."""
    result = scored(result, config)
    return result.task.selection_scores(result.labels, result.probs())


def reports(results: Mapping[str, SplitResult], config: TrainConfig, class_names: Sequence[str],
            train_counts: Sequence[Any] | None, temperature: float = 1.0) -> dict[str, dict[str, Any]]:
    """The report of every split in ``results``, at the run's scoring level: thresholds the
    task chooses (a binary task's Youden threshold, a multi-label task's per-label
    thresholds) are chosen on ``"val"`` and applied to the other splits."""
    task = get_task(config)
    results = {split: scored(r, config) for split, r in results.items()}
    positive = None
    if task.target == "index" and len(class_names) == 2:
        positive = positive_index(class_names, train_counts, config.positive_class)
    level = score_level(config)
    return task.split_reports({s: r.labels for s, r in results.items()},
                              {s: r.probs(temperature) for s, r in results.items()}, class_names,
                              bootstrap=config.bootstrap, seed=config.seed, positive=positive,
                              common=None if level is None else {"score_by": level})


def final_report(config: TrainConfig, class_names: list[str], train_counts: Sequence[Any],
                 results: Mapping[str, SplitResult], best_epoch: int) -> dict[str, Any]:
    """``report.json``'s content from the best model's validation and test results.

    ``train_counts``: the training images per class, or for a multi-label task the ``[L, 2]``
    table of (negatives, positives) per label (``train_class_counts`` then holds the positives,
    ``train_label_counts`` the table).
    """
    task = get_task(config)
    report: dict[str, Any] = {"task": task.name, "best_epoch": best_epoch, "select_metric": config.select_metric,
                              "class_names": class_names}
    if task.target == "multi-hot":
        report.update(train_class_counts=[int(pos) for _, pos in train_counts],
                      train_label_counts=[[int(a), int(b)] for a, b in train_counts])
    else:
        report["train_class_counts"] = list(train_counts)
    level = score_level(config)
    if level is not None:
        report["score_by"] = level
    report["macro_rule"] = task.macro_rule()
    report["loss"] = {"name": config.loss,
                      "params": task.resolved_loss_params(config.loss, config.loss_params)}
    report.update(reports(results, config, class_names, train_counts))
    report["config"] = config.to_dict()
    return report


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, max_iter: int = 200,
                    task: Task | str = MULTICLASS) -> float:
    """The temperature ``T > 0`` minimising the NLL of ``softmax(logits / T)`` (Guo et al. 2017)
    -- for a multi-label task, of ``sigmoid(logits / T)`` (one temperature for every label).

    Fitted in float64 with L-BFGS on ``log T`` (so ``T`` stays positive), from ``T = 1``.
    Pass **validation** logits: a temperature fitted on test would make test calibration
    look better than it is. A label of ``-1`` (unknown) is left out of the NLL: the mean is
    over the known entries.

    Raises:
        ValueError: no logits, or shapes that do not match.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    task = get_task(task)
    multi_hot = task.target == "multi-hot"
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float64 if multi_hot else torch.int64)
    expected = tuple(z.shape) if multi_hot else (z.shape[0],) if z.ndim else ()
    if z.ndim != 2 or z.shape[0] == 0 or tuple(y.shape) != expected:
        raise ValueError(f"temperature scaling needs logits [N, K] and labels {'[N, K]' if multi_hot else '[N]'} "
                         f"with N > 0, got {tuple(z.shape)} and {tuple(y.shape)}")
    nll = getattr(torch.nn.functional, task.nll_name())
    known = y >= 0  # -1 = unknown (a class index is never negative)
    y = torch.where(known, y, torch.zeros((), dtype=y.dtype))
    weight = known.to(torch.float64)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (nll(z / log_t.exp(), y, reduction="none") * weight).sum() / weight.sum().clamp(min=1)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature) or temperature <= 0:
        return 1.0
    return temperature
