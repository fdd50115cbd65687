"""The data layer asks the task's targets (lmfloss.data.targets), not its name: a task registered
here, with class-index targets, is indexed, split, folded, checked, written and loaded exactly as
the multi-class task is, and refused where its targets are not given -- without a change to src/."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from data_helpers import csv_dataset
from lmfloss.config import TrainConfig
from lmfloss.data import load_splits, make_dataset
from lmfloss.data.adapters import get_adapter, resolve_config, resolve_task
from lmfloss.data.classindex import CLASS_INDEX
from lmfloss.data.load import fold_assignment
from lmfloss.data.multilabel import MULTI_HOT
from lmfloss.data.targets import TARGETS, Targets, targets_of
from lmfloss.task import MULTICLASS, MULTILABEL, TASKS, register_task


@pytest.fixture
def binary():
    """A one-logit binary task (class-index targets), registered for one test only."""
    task = register_task(dataclasses.replace(MULTICLASS, name="binary_test", display="binary"))
    yield task
    TASKS.pop(task.name)


def test_each_kind_of_targets_has_one_object_with_the_whole_interface():
    assert targets_of(MULTICLASS) is targets_of("multiclass") is targets_of(None) is CLASS_INDEX
    assert targets_of(MULTILABEL) is targets_of(TrainConfig(task="multilabel")) is MULTI_HOT
    assert set(TARGETS) == {task.target for task in TASKS.values()}
    wanted = {name for name, _ in inspect.getmembers(Targets) if not name.startswith("_")}
    wanted |= set(Targets.__annotations__)
    for targets in TARGETS.values():
        assert wanted <= {name for name in dir(targets) if not name.startswith("_")}, targets


def test_a_task_of_targets_the_data_layer_does_not_read_is_refused():
    ordinal = dataclasses.replace(MULTICLASS, name="ordinal_test", target="ordinal")
    with pytest.raises(ValueError, match="task 'ordinal_test': target 'ordinal' has no reader in the data layer; known targets"):
        targets_of(ordinal)


def test_a_registered_class_index_task_is_split_as_the_multiclass_one(tmp_path, binary):
    path = csv_dataset(tmp_path, n=12)
    ours, theirs = load_splits("csv", csv=path, task=binary.name), load_splits("csv", csv=path)
    assert ours.task == binary.name and ours.targets is CLASS_INDEX
    for split in ("train", "val", "test"):
        assert [r.id for r in ours.records(split)] == [r.id for r in theirs.records(split)]
        assert ours.class_counts(split) == theirs.class_counts(split)
    assert ours.rule() == theirs.rule() and ours.fingerprint() == theirs.fingerprint()
    assert ours.identity() == {**theirs.identity(), "task": binary.name}  # only the default task goes unnamed
    ours.write_manifest(tmp_path / "ours.csv")
    theirs.write_manifest(tmp_path / "theirs.csv")
    assert (tmp_path / "ours.csv").read_text() == (tmp_path / "theirs.csv").read_text()
    dataset = make_dataset(ours, "train", image_size=16, cache_dir=tmp_path / "cache")
    assert dataset.labels.dtype == np.int64 and dataset.task == binary.name
    assert np.array_equal(dataset.labels, make_dataset(theirs, "train", image_size=16, cache_dir=tmp_path / "cache").labels)
    folds = fold_assignment("csv", csv=path, folds=3, task=binary.name)
    assert folds[1] == fold_assignment("csv", csv=path, folds=3)[1]
    synthetic = load_splits("synthetic", task=binary.name)
    assert synthetic.class_counts("train") == load_splits("synthetic").class_counts("train")


def test_the_task_of_a_dataset_follows_its_targets(binary):
    assert "binary_test" in get_adapter("ham10000").tasks and "binary_test" in get_adapter("csv").tasks
    assert resolve_task("synthetic", binary.name) == binary.name
    assert resolve_task("chestmnist") == "multilabel"  # not asked: the data's nature
    assert resolve_task("csv") == "multiclass"  # not asked, a dataset of both: the default task
    with pytest.raises(ValueError, match="chestmnist' is multi-label only; --task multiclass needs"):
        resolve_task("chestmnist", "multiclass")  # asked (issue 26): refused, no longer swapped silently
    with pytest.raises(ValueError, match="dataset 'chestmnist' is multi-label only; --task binary_test needs one of"):
        resolve_task("chestmnist", binary.name)  # a task asked for is never swapped
    config = resolve_config(TrainConfig(dataset="csv", task=binary.name))
    assert (config.task, config.select_metric, config.score_by) == (binary.name, "f1_macro", None)
    with pytest.raises(ValueError, match="config score_by='patient' is for multi-label tasks"):
        resolve_config(TrainConfig(dataset="csv", task=binary.name, score_by="patient"))
    with pytest.raises(ValueError, match="positive_class is for binary multi-class or binary tasks"):
        resolve_config(TrainConfig(dataset="csv", task="multilabel", positive_class="a"))
