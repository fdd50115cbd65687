"""Unknown labels (-1) through the layers around the losses and metrics (issue 27, U-Ignore):
the task's targets, patient scoring, temperature scaling and a tiny training run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lmfloss.cli import main
from lmfloss.data.multilabel import MultiHot
from lmfloss.losses import label_counts
from lmfloss.task import MULTICLASS, MULTILABEL
from lmfloss.train.scoring import SplitResult, fit_temperature


def test_loss_target_makes_unknown_nan_and_label_array_keeps_it_minus_one():
    labels = torch.tensor([[1, 0, -1], [-1, -1, 1]])
    target = MULTILABEL.loss_target(labels)
    assert target.dtype == torch.float32
    assert torch.equal(torch.isnan(target), labels == -1)
    assert torch.equal(target.nan_to_num(-1.0), labels.float())
    assert MULTILABEL.label_array(target.numpy()).tolist() == labels.tolist()
    assert MULTILABEL.label_array(labels.numpy()).dtype == np.int64


def test_a_groups_label_is_unknown_only_where_every_image_is_unknown():
    labels = np.array([[-1, -1, 1, 0], [0, -1, -1, -1],   # patient a: 0, -1, 1, 0
                       [-1, 1, 0, -1], [-1, 0, -1, -1],   # patient b: -1, 1, 0, -1
                       [-1, -1, -1, -1]])                 # no group: an item of its own, unknown throughout
    logits = np.arange(20, dtype=np.float32).reshape(5, 4)
    result = SplitResult("test", ["i0", "i1", "i2", "i3", "i4"], labels, logits, MULTILABEL, ["a", "a", "b", "b", None])
    grouped = result.by_group()
    assert grouped.ids == ["a", "b", "i4"]
    assert grouped.labels.tolist() == [[0, -1, 1, 0], [-1, 1, 0, -1], [-1, -1, -1, -1]]
    assert grouped.logits[0].tolist() == logits[1].tolist()  # the largest logit of the group's images


def test_temperature_is_fitted_on_the_known_entries_only():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (200, 3))
    y = (rng.random((200, 3)) < 1 / (1 + np.exp(-z / 2))).astype(np.int64)  # calibrated at T = 2
    unknown = rng.random(y.shape) < 0.3
    t_known = fit_temperature(z[:, :1][~unknown[:, :1]][:, None], y[:, :1][~unknown[:, :1]][:, None], task=MULTILABEL)
    partly = fit_temperature(z[:, :1], np.where(unknown[:, :1], -1, y[:, :1]), task=MULTILABEL)
    assert partly == pytest.approx(t_known, rel=1e-6) and 1.2 < partly < 3.5
    # Unknown entries whose logits would pull T elsewhere change nothing.
    z_bad = np.where(unknown, 50.0, z)
    assert fit_temperature(z_bad, np.where(unknown, -1, y), task=MULTILABEL) == pytest.approx(
        fit_temperature(z, np.where(unknown, -1, y), task=MULTILABEL), rel=1e-6)
    # Multi-class is unchanged: the plain mean cross-entropy.
    logits = rng.normal(0, 3, (300, 3))
    soft = np.exp(logits / 2) / np.exp(logits / 2).sum(axis=1, keepdims=True)
    classes = np.array([rng.choice(3, p=row) for row in soft])  # calibrated at T = 2
    t = fit_temperature(logits, classes, task=MULTICLASS)
    nll = lambda temp: float(torch.nn.functional.cross_entropy(torch.tensor(logits) / temp, torch.tensor(classes)))  # noqa: E731
    assert nll(t) <= min(nll(t * 1.05), nll(t / 1.05))


UNKNOWN_LABEL = 1  # the synthetic set's label whose values are hidden on every third image


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_a_tiny_run_with_unknown_labels_trains_counts_and_scores_the_known_entries(tmp_path, monkeypatch):
    """U-Ignore end to end: the embedded multi-label set with one label unknown on every third
    image (and one image unknown throughout) trains with a finite loss, counts its margins from the
    known entries and scores each label over the images where it is known."""
    original = MultiHot.array
    seen: list[np.ndarray] = []

    def with_unknowns(self, records, num_labels):
        labels = np.asarray(original(self, records, num_labels)).astype(np.int64)
        index = np.array([int(r.id.rsplit("-", 1)[1]) for r in records], dtype=np.int64)
        labels[index % 3 == 0, UNKNOWN_LABEL] = -1
        labels[index == index.max(), :] = -1
        seen.append(labels)
        return labels

    monkeypatch.setattr(MultiHot, "array", with_unknowns)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--task", "multilabel", "--loss", "lmf", "--model",
                 "shufflenet_v2_x0_5", "--weights", "none", "--image-size", "28", "--epochs", "1", "--device", "cpu",
                 "--batch-size", "32", "--bootstrap", "20", "--score-by", "image", "--quiet", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    names = report["class_names"]
    by_size = {len(a): a for a in seen}
    test = by_size[report["test"]["n"]]
    assert report["test"]["known_per_label"] == dict(zip(names, (test != -1).sum(axis=0).tolist()))
    assert report["test"]["known_per_label"][names[UNKNOWN_LABEL]] < report["test"]["n"]
    assert report["test"]["support"] == dict(zip(names, (test == 1).sum(axis=0).tolist()))
    train = max(seen, key=len)
    assert report["train_label_counts"] == label_counts(train)
    assert sum(report["train_label_counts"][UNKNOWN_LABEL]) < len(train)  # counted over known entries only
    history = (out / "metrics.csv").read_text().splitlines()
    header, row = history[0].split(","), history[1].split(",")
    assert math.isfinite(float(row[header.index("train_loss")])) and math.isfinite(float(row[header.index("val_loss")]))
