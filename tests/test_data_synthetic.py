"""The embedded synthetic dataset: deterministic, long-tailed, boxes right, learnable but not trivial."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier
from sklearn.metrics import f1_score, recall_score

from lmfloss.data import load_splits, synthetic
from lmfloss.data.dataset import resize_array


@pytest.fixture(scope="module")
def splits():
    return load_splits("synthetic")


def test_long_tailed_with_imbalance_ratio_50(splits):
    totals = [sum(c) for c in zip(*(splits.class_counts(s) for s in ("train", "val", "test")))]
    assert totals == sorted(totals, reverse=True)
    assert totals[0] / totals[-1] == pytest.approx(50, rel=0.02)
    assert len(splits.class_names) == 7 and 2500 <= sum(totals) <= 5000
    assert splits.class_counts("train")[-1] >= 10  # enough to train on, few enough to be hard


def test_generation_is_deterministic(splits):
    images, labels, boxes = synthetic.generate()
    first = (images.copy(), labels.copy(), boxes)
    synthetic.generate.cache_clear()
    again = synthetic.generate()
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert first[2] == again[2]
    assert images.shape[1:] == (64, 64, 3) and images.dtype == np.uint8


def test_boxes_enclose_the_lesion(splits):
    """Pixels inside the box differ from the skin (the border colour) far more than outside."""
    records = splits.records("test")
    enclosed = 0
    for record in records:
        image = splits.load_image(record).astype(np.float64)
        (box,) = splits.boxes(record)
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64 and (x1 - x0) * (y1 - y0) >= 16
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        deviation = np.abs(image - np.median(border, axis=0)).sum(axis=-1)
        inside = np.zeros((64, 64), bool)
        inside[y0:y1, x0:x1] = True
        enclosed += deviation[inside].mean() > 2 * deviation[~inside].mean()
    assert enclosed >= 0.9 * len(records)


def test_learnable_but_minority_classes_hard(splits):
    """A linear classifier on 8x8 pixels beats the majority baseline by far, yet misses the tail."""
    def features(split):
        records = splits.records(split)
        x = resize_array(splits.index.images[[r.row for r in records]], 8).reshape(len(records), -1) / 255.0
        return x, np.array([r.label for r in records])

    x_train, y_train = features("train")
    x_test, y_test = features("test")
    predicted = RidgeClassifier(alpha=1.0).fit(x_train, y_train).predict(x_test)
    majority = f1_score(y_test, np.zeros_like(y_test), average="macro")
    macro = f1_score(y_test, predicted, average="macro")
    recall = recall_score(y_test, predicted, average=None)
    assert macro > 2.5 * majority
    assert recall[0] > 0.8
    assert recall[-3:].mean() < 0.5  # the three smallest classes stay hard
