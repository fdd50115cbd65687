"""Build run directories in the training issue's format for the report tests.

``report.json`` metrics are computed with scikit-learn from crafted predictions, so
the report is compared against an independent reference, not against itself.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from lmfloss.config import TrainConfig

CLASSES = ["akiec", "bcc", "nv"]
# Imbalanced test set: 20 / 30 / 150 images.
LABELS = np.repeat([0, 1, 2], [20, 30, 150])


def sk_split(labels: np.ndarray, preds: np.ndarray, class_names: list[str]) -> dict:
    """A report.json split computed with scikit-learn (labels = all classes)."""
    k = list(range(len(class_names)))
    prec, rec, f1, support = precision_recall_fscore_support(labels, preds, labels=k, zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "precision_macro": float(prec.mean()),
        "recall_macro": float(rec.mean()),
        "f1_macro": float(f1_score(labels, preds, labels=k, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(labels, preds, labels=k, average="weighted", zero_division=0)),
        "balanced_accuracy": float(rec.mean()),
        "auc_macro_ovr": None,
        "f1_per_class": dict(zip(class_names, map(float, f1))),
        "precision_per_class": dict(zip(class_names, map(float, prec))),
        "recall_per_class": dict(zip(class_names, map(float, rec))),
        "support": dict(zip(class_names, map(int, support))),
        "confusion_matrix": [],
        "f1_macro_ci95": [0.1, 0.9],
    }


def noisy_preds(labels: np.ndarray, error_rate: float, seed: int, k: int = 3) -> np.ndarray:
    """Labels with a fraction ``error_rate`` replaced by another class (seeded)."""
    rng = np.random.default_rng(seed)
    preds = labels.copy()
    flip = rng.random(labels.size) < error_rate
    preds[flip] = (labels[flip] + rng.integers(1, k, flip.sum())) % k
    return preds


def make_run(
    root: Path,
    *,
    dataset: str = "ham10000",
    model: str = "efficientnet_v2_s",
    loss: str = "ce",
    seed: int = 23,
    preds: np.ndarray | None = None,
    labels: np.ndarray = LABELS,
    class_names: list[str] = CLASSES,
    loss_params: dict | None = None,
    val_f1: float | None = None,
    finished: bool = True,
    index_labels: bool = False,
    train_counts: list[int] | None = None,
    name: str | None = None,
    legacy: bool = False,
    fingerprint: str | None = None,
) -> Path:
    """Write one run directory; returns it. ``finished=False`` leaves no report.json.

    ``report.json`` is in the current format (resolved loss parameters, the data's identity
    with ``fingerprint``, default one per dataset); ``legacy=True`` writes lmfloss 0.1's.
    """
    if preds is None:
        preds = noisy_preds(labels, 0.3, seed)
    params = dict(loss_params or {})
    if loss == "lmf":
        params.setdefault("alpha", 1.0)
        params.setdefault("beta", 1.0)
    run_dir = root / (name or f"{dataset}-{model}-{loss}-{'-'.join(f'{k}{v}' for k, v in params.items())}-s{seed}")
    run_dir.mkdir(parents=True)
    config = TrainConfig(dataset=dataset, model=model, loss=loss, loss_params=params, seed=seed,
                         weights="none", epochs=1).to_dict()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (run_dir / "metrics.csv").write_text(
        "epoch,train_loss,val_loss,val_accuracy,val_f1_macro,lr,seconds\n1,1.0,1.0,0.5,0.5,0.0001,1.0\n"
    )
    if not finished:
        return run_dir
    with (run_dir / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "pred", *(f"prob_{c}" for c in class_names)])
        for i, (y, p) in enumerate(zip(labels, preds)):
            probs = np.full(len(class_names), 0.1 / max(len(class_names) - 1, 1))
            probs[p] = 0.9
            label, pred = (int(y), int(p)) if index_labels else (class_names[y], class_names[p])
            writer.writerow([f"img{i:04d}", label, pred, *(f"{q:.4f}" for q in probs)])
    test = sk_split(labels, preds, class_names)
    val = dict(test)
    if val_f1 is not None:
        val["f1_macro"] = val_f1
    report = {
        "test": test,
        "val": val,
        "best_epoch": 1,
        "class_names": class_names,
        "train_class_counts": train_counts or [229, 360, 4693][: len(class_names)],
        "config": config,
    }
    if not legacy:
        from lmfloss.losses import resolved_loss_params

        report["loss"] = {"name": loss, "params": resolved_loss_params(loss, params)}
        report["data"] = {"dataset": dataset, "name": dataset, "fingerprint": fingerprint or f"fp-{dataset}",
                          "source": None, "images": {"train": 0, "val": 0, "test": len(labels)}}
    (run_dir / "report.json").write_text(json.dumps(report))
    return run_dir


ML_LABELS = ["effusion", "hernia", "mass", "nodule"]
_ML_PREVALENCE = np.array([0.4, 0.08, 0.25, 0.15])


def _ml_split(n: int, skill: float, label_seed: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``[n, L]`` 0/1 labels (the same for every run: ``label_seed``) and probabilities whose
    separation grows with ``skill`` (the run's own noise: ``seed``)."""
    y = (np.random.default_rng(label_seed).random((n, len(ML_LABELS))) < _ML_PREVALENCE).astype(np.int64)
    noise = np.random.default_rng(seed).normal(size=y.shape)
    return y, 1.0 / (1.0 + np.exp(-(skill * (2 * y - 1) + noise - 0.5)))


def make_multilabel_run(
    root: Path,
    *,
    dataset: str = "chestmnist",
    model: str = "resnet18",
    loss: str = "bce",
    seed: int = 1,
    skill: float = 1.0,
    loss_params: dict | None = None,
    finished: bool = True,
    metrics_header: str = "new",
    name: str | None = None,
) -> Path:
    """Write one multi-label run directory as training writes it (report.json from
    :func:`lmfloss.multilabel_metrics.multilabel_report` on the run's own predictions.csv;
    thresholds chosen on validation); returns it.

    ``metrics_header``: ``"new"`` (``val_subset_accuracy``) or ``"old"`` (lmfloss <= 0.3's
    ``val_accuracy`` and an empty ``val_balanced_accuracy``).
    """
    from lmfloss import multilabel_metrics, rundir

    params = dict(loss_params or {})
    run_dir = root / (name or f"{dataset}-{model}-{loss}-{'-'.join(f'{k}{v}' for k, v in params.items())}-s{seed}")
    run_dir.mkdir(parents=True)
    config = TrainConfig(dataset=dataset, task="multilabel", model=model, loss=loss, loss_params=params, seed=seed,
                         weights="none", epochs=2, select_metric="map").to_dict()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if metrics_header == "old":
        metrics = ("epoch,train_loss,val_loss,val_accuracy,val_f1_macro,val_balanced_accuracy,val_auc,val_map,lr,"
                   "seconds\n1,0.9,0.8,0.2,0.3,,0.6,0.4,0.0001,1.0\n2,0.7,0.7,0.25,0.35,,0.65,0.45,0.0001,1.0\n")
    else:
        metrics = ("epoch,train_loss,val_loss,val_subset_accuracy,val_f1_macro,val_auc,val_map,lr,seconds\n"
                   "1,0.9,0.8,0.2,0.3,0.6,0.4,0.0001,1.0\n2,0.7,0.7,0.25,0.35,0.65,0.45,0.0001,1.0\n")
    (run_dir / "metrics.csv").write_text(metrics)
    if not finished:
        return run_dir
    y_val, p_val = _ml_split(80, skill, 7, 1000 + seed)
    y_test, p_test = _ml_split(120, skill, 8, 2000 + seed)
    rundir.write_predictions([f"img{i:04d}" for i in range(len(y_test))], y_test, p_test, ML_LABELS, run_dir)
    thresholds = multilabel_metrics.choose_thresholds(y_val, p_val)
    val = multilabel_metrics.multilabel_report(y_val, p_val, ML_LABELS, n_bootstrap=0, seed=seed)
    val["thresholds_chosen"] = dict(zip(ML_LABELS, thresholds))
    positives = [int(c) for c in (np.random.default_rng(9).random((400, len(ML_LABELS))) < _ML_PREVALENCE).sum(0)]
    report = {
        "task": "multilabel", "best_epoch": 2, "select_metric": "map", "class_names": ML_LABELS,
        "train_class_counts": positives, "train_label_counts": [[400 - p, p] for p in positives],
        "loss": {"name": loss, "params": params},
        "data": {"dataset": dataset, "name": dataset, "fingerprint": f"fp-{dataset}", "source": None,
                 "images": {"train": 400, "val": len(y_val), "test": len(y_test)}},
        "val": val,
        "test": multilabel_metrics.multilabel_report(y_test, p_test, ML_LABELS, thresholds=thresholds, n_bootstrap=50,
                                                     seed=seed),
        "config": config,
    }
    (run_dir / "report.json").write_text(json.dumps(report))
    return run_dir
