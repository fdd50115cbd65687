"""What a task *is*: one owner for multi-class and multi-label, asked by every layer.

A :class:`Task` holds what the layers ask of "the task" -- its name and the words that
describe it, the activation that turns logits into probabilities, how probabilities become
decisions, the targets' shape and dtype, the headline metric and the selectable ones, the
columns of ``metrics.csv`` / ``predictions.csv`` / the summaries, its loss family and its
metric functions -- so a layer calls ``task.probabilities(logits)`` or reads
``task.headline`` instead of comparing the task's name (torchmetrics' ``ClassificationTask``,
dispatched once). What truly differs per task keeps its own module and is reached through the
task: the metrics (:mod:`lmfloss.metrics`, :mod:`lmfloss.multilabel_metrics`), the losses
(:mod:`lmfloss.losses`), a multi-label ``labels`` column (:mod:`lmfloss.data.multilabel`).

The config records a task by name (``task: multilabel``); :func:`get_task` turns the name
into the object. A new task (ordinal grading, one-logit binary) is a subclass registered with
:func:`register_task`: the config, the loss listing, training, evaluation, prediction, export
and the report then accept it (``tests/extra_task.py`` registers a one-logit binary task that
way, without a change here).

This module imports no torch (``lmfloss split`` and ``lmfloss report`` run without it):
:meth:`Task.probabilities` of a tensor uses the tensor's own methods, of an array borrows
torch only when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from lmfloss import metrics, multilabel_metrics

T = TypeVar("T")

__all__ = ["MULTICLASS", "MULTILABEL", "SELECT_METRIC_CHOICES", "LiveChoices", "of_target", "TASKS", "TASK_CHOICES", "MultiClass", "MultiLabel", "Task", "get_task", "register_task",
           "task_names"]


@dataclass(frozen=True, eq=False)  # compared by identity: one object per task
class Task:
    """A kind of classification problem, as every layer of lmfloss needs to know it.

    Attributes:
        name: the config's spelling (``multiclass``).
        display: the words for a reader (``multi-class``).
        activation: ``softmax`` or ``sigmoid``: what the exported graph and ``predict`` end in.
        target: ``index`` (one class index per image, ``int64 [N]``) or ``multi-hot``
            (``[N, L]`` of 0/1, float for the loss).
        item: what one output column is called (``class`` / ``label``).
        items: the same in the plural, as a model card says it.
        decision: how a prediction is decided, in words (README, model card, predictions.csv).
        headline: the metric key the run is judged and its epoch chosen by default.
        headline_display: its name for a reader (``macro-F1`` / ``mAP``).
        select_metrics: the validation metrics a run may select its epoch by.
        epoch_metrics: the validation scores of every epoch, as ``metrics.csv`` columns
            (``val_<key>``) in order.
        epoch_labels: a reader's name of each epoch metric (curves, logs).
        test_metrics: the ``report.json`` test keys an export's sidecar summarises, in order
            (``test_metrics``; the binary decision and per-class/label keys included).
        summary_metrics: the columns of ``lmfloss demo``'s summary (after ``loss``).
        averaged_metrics: what the study report averages over seeds.
        cv_metrics: what ``lmfloss train --folds`` tabulates per fold.
        loss_family: the :mod:`lmfloss.losses` registry of this task's losses.
        demo_losses: the losses ``lmfloss demo`` compares.
        group_scoring: whether a run may score patients by combining their images' outputs.
        per_item_metric: ``report.json``'s per-class (per-label) test score, keyed by name,
            that the study report tabulates and checks (``f1_per_class`` / ``ap_per_label``).
    """

    name: str
    display: str
    activation: str
    target: str
    item: str
    items: str
    decision: str
    headline: str
    headline_display: str
    select_metrics: tuple[str, ...]
    epoch_metrics: tuple[str, ...]
    epoch_labels: Mapping[str, str]
    test_metrics: tuple[str, ...]
    summary_metrics: tuple[str, ...]
    averaged_metrics: tuple[str, ...]
    cv_metrics: tuple[str, ...]
    loss_family: str
    demo_losses: tuple[str, ...]
    group_scoring: bool = False
    targets: str = "[N] class indices"  # the loss's targets, in words (lmfloss losses)
    per_item_metric: str = "f1_per_class"

    # ---- outputs -----------------------------------------------------------------------
    def outputs(self, num_classes: int) -> int:
        """How many logits the model ends in for ``num_classes`` classes or labels."""
        return num_classes

    def probabilities(self, logits: Any, temperature: float = 1.0) -> Any:
        """The task's probabilities of ``logits / temperature``: a tensor gives a tensor (same
        device and dtype), anything else a float64 array (computed in float64)."""
        if hasattr(logits, "detach"):
            return self.activate(logits / temperature if temperature != 1.0 else logits)
        import torch  # torch-free module: torch only when an array is scored

        z = torch.from_numpy(np.asarray(logits)).double() / temperature
        return self.activate(z).numpy()

    def activate(self, z: Any) -> Any:
        """The activation of a tensor of logits (a subclass changes this, not :meth:`probabilities`)."""
        return z.softmax(dim=-1) if self.activation == "softmax" else z.sigmoid()

    def logits_of(self, probs: Any) -> Any:
        """Logits whose activation gives ``probs`` (a tensor): how test-time augmentation
        averages probabilities and hands them on as logits."""
        if self.activation == "softmax":
            return probs.clamp_min(1.1754943508222875e-38).log()
        return probs.double().logit(eps=1e-12).float()

    def decide(self, probs: np.ndarray, thresholds: Sequence[float] | None = None) -> np.ndarray:
        """Decisions from probabilities: the class index of each row (argmax), or the 0/1
        decision per label at ``thresholds`` (0.5 where none were chosen)."""
        return np.asarray(probs).argmax(axis=1)

    # ---- targets -------------------------------------------------------------------------
    def loss_target(self, labels: Any) -> Any:
        """``labels`` (a tensor) as the loss takes them: int64 class indices, or float 0/1."""
        return labels

    def label_array(self, labels: Any) -> np.ndarray:
        """Labels as the metrics take them (``int64``: ``[N]`` indices or ``[N, L]`` 0/1)."""
        return np.asarray(labels).astype(np.int64)

    def nll_name(self) -> str:
        """The ``torch.nn.functional`` negative log-likelihood of this task's activation
        (temperature scaling fits it)."""
        return "cross_entropy" if self.activation == "softmax" else "binary_cross_entropy_with_logits"

    # ---- losses --------------------------------------------------------------------------
    def losses(self) -> dict[str, type]:
        """Loss name -> class of this task's loss family."""
        from lmfloss.losses import losses_for  # torch-free module: the losses need torch

        return losses_for(self.loss_family)

    def build_loss(self, name: str, counts: Sequence[Any], **params: Any) -> Any:
        """Loss ``name`` of this task built from the training ``counts`` (:meth:`train_counts`)."""
        from lmfloss.losses import build_loss  # torch-free module: the losses need torch

        return build_loss(name, counts, task=self.loss_family, **params)

    def loss_parameters(self, name: str) -> dict[str, Any]:
        """The keyword parameters of loss ``name`` with their defaults (``ValueError`` naming
        this task's losses for an unknown name)."""
        from lmfloss.losses import loss_parameters  # torch-free module: the losses need torch

        return loss_parameters(name, self.loss_family)

    def resolved_loss_params(self, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every parameter of loss ``name`` with ``params`` applied over its defaults."""
        from lmfloss.losses import resolved_loss_params  # torch-free module: the losses need torch

        return resolved_loss_params(name, dict(params or {}), self.loss_family)

    def train_counts(self, labels: Any, num_classes: int) -> list[Any]:
        """The training counts the losses are built from: images per class, or the ``[L, 2]``
        (negatives, positives) table per label."""
        from lmfloss.losses import class_counts  # torch-free module: the losses need torch

        return class_counts(labels, num_classes)

    def example_counts(self, num_classes: int) -> list[Any]:
        """Made-up training counts of ``num_classes`` outputs, to check a loss's parameters
        before any data is read."""
        return [10 * (j + 1) for j in range(num_classes)]

    def counts_key(self) -> str:
        """The ``report.json`` key of the training counts the losses were built from."""
        return "train_class_counts"

    def chooses_on_val(self, num_classes: int) -> bool:
        """Whether the validation split chooses something the test metrics apply (a binary
        task's Youden threshold, a multi-label task's per-label thresholds)."""
        return num_classes == 2

    def check_train_counts(self, counts: Sequence[Any], names: Sequence[str]) -> None:
        """Refuse training counts this task's losses cannot use (``ValueError`` naming the class)."""

    # ---- metrics -------------------------------------------------------------------------
    def selection_scores(self, labels: np.ndarray, probs: np.ndarray) -> dict[str, float | None]:
        """Every epoch's validation scores, keyed by :attr:`epoch_metrics`."""
        return metrics.selection_scores(labels, probs, probs.shape[1])

    def split_reports(self, labels: Mapping[str, np.ndarray], probs: Mapping[str, np.ndarray],
                      class_names: Sequence[str], *, bootstrap: int, seed: int,
                      positive: int | None = None, common: Mapping[str, Any] | None = None,
                      ) -> dict[str, dict[str, Any]]:
        """The report of each split, thresholds chosen on ``"val"`` (when given) and applied to
        the others: a binary task's Youden threshold of ``positive``. ``common``: keys every
        split's report carries (e.g. the scoring level), before the chosen thresholds."""
        chosen = self.choose_on_val(labels["val"], probs["val"], positive) if "val" in labels else None
        out = {}
        for split in labels:
            out[split] = self.split_report(labels[split], probs[split], class_names, bootstrap=bootstrap, seed=seed,
                                           positive=positive, chosen=chosen if split != "val" else None)
            out[split].update(common or {})
            if split == "val" and chosen is not None:
                out[split].update(self.chosen_entry(chosen, class_names))
        return out

    def choose_on_val(self, labels: np.ndarray, probs: np.ndarray, positive: int | None) -> Any:
        """What validation chooses for the other splits: a binary task's Youden threshold of
        ``positive`` (``None``: nothing)."""
        return None if positive is None else metrics.youden_threshold(labels, probs, positive)

    def chosen_entry(self, chosen: Any, class_names: Sequence[str]) -> dict[str, Any]:
        """How the validation report records what it chose."""
        return {"threshold_youden": chosen}

    def split_report(self, labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str], *, bootstrap: int,
                     seed: int, positive: int | None, chosen: Any) -> dict[str, Any]:
        """One split's report, with what validation chose applied (``None`` on validation)."""
        return metrics.classification_report(labels, self.decide(probs), probs, class_names, n_bootstrap=bootstrap,
                                             seed=seed, positive=positive, threshold=chosen)

    def macro_rule(self) -> str:
        """How this task's macro averages treat a class or label absent from a split."""
        return metrics.macro_rule_note()

    def calibration_bins(self, labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
        """Reliability bins: top-label confidence (multi-class) or every label's probability."""
        return metrics.calibration_bins(labels, probs, n_bins)

    def thresholds_of(self, report: Mapping[str, Any]) -> list[float] | None:
        """The per-output thresholds a run chose on validation (``report.json``), if any."""
        return None


class MultiClass(Task):
    """One class per image (the paper): softmax over K classes, argmax decisions."""


class MultiLabel(Task):
    """Any subset of L labels per image: a sigmoid per label, per-label thresholds chosen on
    validation, the ``[L, 2]`` training table for the losses."""

    def decide(self, probs: np.ndarray, thresholds: Sequence[float] | None = None) -> np.ndarray:
        cut = np.full(np.asarray(probs).shape[1], multilabel_metrics.DEFAULT_THRESHOLD) if thresholds is None \
            else np.asarray(thresholds, dtype=np.float64)
        return (np.asarray(probs) >= cut).astype(np.int64)

    def loss_target(self, labels: Any) -> Any:
        """Float 0/1 targets with ``NaN`` where a label is unknown (``-1`` in the label array):
        the losses leave those entries out (:mod:`lmfloss.losses.multilabel`)."""
        target = labels.float()
        return target.masked_fill(labels < 0, float("nan"))

    def label_array(self, labels: Any) -> np.ndarray:
        """``int64 [N, L]`` of 0/1 with ``-1`` where unknown (a ``NaN`` label is unknown too)."""
        array = np.asarray(labels)
        if array.dtype.kind == "f":
            array = np.where(np.isnan(array), multilabel_metrics.UNKNOWN, array)
        return array.astype(np.int64)

    def train_counts(self, labels: Any, num_classes: int) -> list[Any]:
        from lmfloss.losses import label_counts  # torch-free module: the losses need torch

        return label_counts(labels, num_classes)

    def example_counts(self, num_classes: int) -> list[Any]:
        return [[10 * (j + 1), 5] for j in range(num_classes)]

    def counts_key(self) -> str:
        return "train_label_counts"

    def chooses_on_val(self, num_classes: int) -> bool:
        return True

    def check_train_counts(self, counts: Sequence[Any], names: Sequence[str]) -> None:
        from lmfloss.losses import check_label_counts  # torch-free module: the losses need torch

        check_label_counts(counts, names)

    def selection_scores(self, labels: np.ndarray, probs: np.ndarray) -> dict[str, float | None]:
        scores = dict(multilabel_metrics.selection_scores(labels, probs))
        scores["subset_accuracy"] = scores.pop("accuracy")  # of the 0/1 decisions at 0.5: one name, one meaning
        return scores

    def choose_on_val(self, labels: np.ndarray, probs: np.ndarray, positive: int | None) -> Any:
        return multilabel_metrics.choose_thresholds(labels, probs)

    def chosen_entry(self, chosen: Any, class_names: Sequence[str]) -> dict[str, Any]:
        return {"thresholds_chosen": dict(zip(class_names, chosen))}

    def split_report(self, labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str], *, bootstrap: int,
                     seed: int, positive: int | None, chosen: Any) -> dict[str, Any]:
        return multilabel_metrics.multilabel_report(labels, probs, class_names, n_bootstrap=bootstrap, seed=seed,
                                                    thresholds=chosen)

    def macro_rule(self) -> str:
        return multilabel_metrics.macro_rule_note()

    def calibration_bins(self, labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
        return multilabel_metrics.calibration_bins(labels, probs, n_bins)

    def thresholds_of(self, report: Mapping[str, Any]) -> list[float] | None:
        chosen = (report.get("val") or {}).get("thresholds_chosen")
        names = report.get("class_names") or []
        if not chosen:
            return None
        return [float(chosen[n]) if chosen.get(n) is not None else multilabel_metrics.DEFAULT_THRESHOLD
                for n in names]


_EPOCH_LABELS = {"accuracy": "val accuracy", "subset_accuracy": "val subset accuracy", "f1_macro": "val macro-F1", "balanced_accuracy": "val balanced accuracy",
                 "auc": "val AUC", "map": "val mAP"}

MULTICLASS = MultiClass(
    name="multiclass", display="multi-class", activation="softmax", target="index",
    item="class", items="classes", decision="the class of the largest probability (argmax)",
    headline="f1_macro", headline_display="macro-F1",
    select_metrics=("f1_macro", "auc", "accuracy", "balanced_accuracy"),
    epoch_metrics=("accuracy", "f1_macro", "balanced_accuracy", "auc"),
    epoch_labels=_EPOCH_LABELS,
    test_metrics=("n", "accuracy", "balanced_accuracy", "f1_macro", "f1_macro_ci95", "auc_macro_ovr", "ece",
                  "brier", "nll", "f1_per_class", "positive_class", "sensitivity", "specificity", "at_threshold"),
    summary_metrics=("accuracy", "precision_macro", "recall_macro", "f1_macro", "balanced_accuracy"),
    averaged_metrics=("accuracy", "precision_macro", "recall_macro", "f1_macro", "ece", "brier", "nll"),
    cv_metrics=("accuracy", "precision_macro", "recall_macro", "f1_macro", "balanced_accuracy", "auc_macro_ovr"),
    loss_family="multiclass", demo_losses=("ce", "lmf"),
)

MULTILABEL = MultiLabel(
    name="multilabel", display="multi-label", activation="sigmoid", target="multi-hot",
    item="label", items="labels (one sigmoid each)",
    decision="each label whose probability reaches its threshold chosen on validation",
    headline="map", headline_display="mAP",
    select_metrics=("map", "auc"),
    # Decisions at 0.5 (macro-F1, subset accuracy) and the ranking metrics (AUC macro, mAP).
    epoch_metrics=("subset_accuracy", "f1_macro", "auc", "map"),
    epoch_labels={**_EPOCH_LABELS, "f1_macro": "val macro-F1 (p >= 0.5)", "auc": "val AUC (macro)"},
    test_metrics=("n", "map", "map_ci95", "auc_macro", "auc_macro_ci95", "auc_micro", "f1_macro",
                  "f1_macro_at_threshold", "subset_accuracy", "hamming_loss", "ece", "brier", "nll",
                  "ap_per_label", "auc_per_label", "odir_score", "labels_without_positives", "score_by"),
    summary_metrics=("map", "auc_macro", "auc_micro", "f1_macro", "f1_macro_at_threshold", "subset_accuracy"),
    averaged_metrics=("map", "auc_macro", "auc_micro", "f1_macro", "f1_macro_at_threshold", "ece", "brier", "nll"),
    cv_metrics=("map", "auc_macro", "auc_micro", "f1_macro", "f1_macro_at_threshold", "subset_accuracy",
                "hamming_loss"),
    loss_family="multilabel", demo_losses=("bce", "lmf"), targets="[N, L] of 0/1",
    group_scoring=True, per_item_metric="ap_per_label",
)

TASKS: dict[str, Task] = {MULTICLASS.name: MULTICLASS, MULTILABEL.name: MULTILABEL}
"""Task name -> :class:`Task`; :func:`register_task` adds one."""


def register_task(task: Task) -> Task:
    """Add ``task`` to :data:`TASKS` (a plug-in's task; the name must be new).

    Raises:
        ValueError: the name is taken by another task.
    """
    if task.name in TASKS and TASKS[task.name] is not task:
        raise ValueError(f"task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def of_target(table: Mapping[str, T], task: Task, what: str) -> T:
    """``table[task.target]``: a layer's object for this kind of target (the data layer's
    reader, the export's words, the model card's layout...), one lookup for every layer.

    Raises:
        ValueError: a target kind ``table`` does not describe, naming ``what`` and the known kinds.
    """
    try:
        return table[task.target]
    except KeyError:
        raise ValueError(f"task {task.name!r}: target {task.target!r} has no {what}; "
                         f"known targets: {sorted(table)}") from None


def task_names() -> tuple[str, ...]:
    """The registered tasks' names, the config's choices."""
    return tuple(TASKS)


def get_task(task: Task | str | Mapping[str, Any] | Any | None) -> Task:
    """The :class:`Task` of a name, a config (``.task``), a ``report.json`` mapping
    (``"task"``), or a task; ``None`` and a record without one are multi-class (runs of
    lmfloss 0.1 had no task).

    Raises:
        ValueError: an unknown task name (the registered ones are listed).
    """
    if isinstance(task, Task):
        return task
    if isinstance(task, Mapping):
        task = task.get("task")
    elif task is not None and not isinstance(task, str):
        task = getattr(task, "task", None)
    if task is None:
        return MULTICLASS
    if isinstance(task, Task):
        return task
    try:
        return TASKS[task]
    except KeyError:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}") from None


class LiveChoices(Sequence):
    """A read-only sequence recomputed from the registry at each use, so the config's and the
    command line's choices include a task registered after import."""

    def __init__(self, values: Callable[[], tuple[str, ...]]) -> None:
        self._values = values

    def __getitem__(self, index: Any) -> Any:
        return self._values()[index]

    def __len__(self) -> int:
        return len(self._values())

    def __repr__(self) -> str:
        return repr(self._values())


TASK_CHOICES: Sequence[str] = LiveChoices(task_names)
"""The registered tasks' names (``--task``'s choices)."""

SELECT_METRIC_CHOICES: Sequence[str] = LiveChoices(
    lambda: tuple(dict.fromkeys(m for t in TASKS.values() for m in t.select_metrics)))
"""Every metric some task may select its epoch by (``--select-metric``'s choices)."""
