"""Issue 11: the bugs that came from knowledge written twice, each fixed at its one owner."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lmfloss.config import TrainConfig, diff_configs, keys_with_role
from lmfloss.data import dataset_for, splits_for
from lmfloss.data.dataset import resize_array
from lmfloss.errors import LmflossError
from lmfloss.train.run import Run


def test_predict_preprocessing_is_the_training_resize_for_array_datasets():
    """Run.preprocess resized arrays with PIL while array datasets train on torch's
    antialiased resize (pixels off by one in ~17% of places): now one function."""
    config = TrainConfig(dataset="synthetic", image_size=40, model="resnet18", weights="none")
    run = Run(run_dir=None, config=config, model=None, class_names=[], epoch=0, device=torch.device("cpu"))
    splits = splits_for(config)
    record = splits.records("test")[3]
    raw = splits.load_image(record)  # 64 px, as stored
    served = run.preprocess(raw)
    trained = dataset_for(config, "test", splits)[3][0]
    assert served.shape == trained.shape == (3, 40, 40)
    assert torch.equal(served, trained)
    # and that is torch's antialiased bilinear, not PIL's
    expected = resize_array(raw[None], 40)[0].transpose(2, 0, 1) / 255.0
    assert np.allclose(served.numpy(), expected, atol=1e-7)


def test_key_roles_are_one_list_for_resume_sweep_and_report():
    runtime = keys_with_role("runtime")
    # The three copies disagreed on these: csv and root are where the data is (its identity is
    # the fingerprint), skip_bad_images changes what is trained, epochs may grow on resume only.
    assert {"csv", "root", "cache_dir", "device", "workers", "bootstrap"} <= runtime
    assert "skip_bad_images" not in runtime and "epochs" not in runtime
    assert keys_with_role("resumable") == {"epochs"}
    a = TrainConfig(csv="/a/x.csv", epochs=5).to_dict()
    b = TrainConfig(csv="/b/x.csv", epochs=9).to_dict()
    assert diff_configs(a, b, ignore_roles=("runtime", "resumable")) == []
    assert [k for k, *_ in diff_configs(a, b, ignore_roles=("runtime",))] == ["epochs"]
    c = TrainConfig(skip_bad_images=True).to_dict()
    assert [k for k, *_ in diff_configs(TrainConfig().to_dict(), c, ignore_roles=("runtime", "resumable"))] == [
        "skip_bad_images"]


def test_a_damaged_report_of_a_finished_run_is_refused_by_name(tmp_path):
    """fit's finished-run check read report.json without validating it (a KeyError then)."""
    from lmfloss.rundir import read_report

    (tmp_path / "report.json").write_text(json.dumps({"val": {"f1_macro": 0.5}}))
    with pytest.raises(LmflossError, match="has no 'val' and 'test' metrics"):
        read_report(tmp_path)
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(LmflossError, match="is not readable JSON"):
        read_report(tmp_path)


def test_a_damaged_or_misplaced_evaluation_is_refused_by_name(tmp_path):
    from lmfloss import rundir

    path = rundir.eval_path(tmp_path, "test", "last")
    path.write_text("{not json")
    with pytest.raises(LmflossError, match="eval-test-last.json.*not readable JSON"):
        rundir.read_eval(tmp_path, "test", "last")
    # best.pt's evaluation copied under last.pt's name is not last.pt's evaluation
    rundir.write_eval({"split": "test", "checkpoint": "best", "f1_macro": 0.5}, path)
    with pytest.raises(LmflossError, match="not lmfloss evaluate's output for the test split of last.pt"):
        rundir.read_eval(tmp_path, "test", "last")


def test_training_counts_come_from_the_loss_librarys_class_counts():
    from lmfloss.losses import class_counts

    config = TrainConfig(dataset="synthetic", image_size=16)
    splits = splits_for(config)
    train = dataset_for(config, "train", splits)
    assert class_counts(train.labels, len(splits.class_names)) == splits.class_counts("train")
