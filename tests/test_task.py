"""lmfloss.task: the one owner of what a task is -- against torch's and scikit-learn's own
functions, and a task registered from outside src/ (tests/extra_task.py) run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import f1_score

from lmfloss.config import TrainConfig, check_config
from lmfloss.task import MULTICLASS, MULTILABEL, TASK_CHOICES, TASKS, Task, get_task, register_task

ROOT = Path(__file__).resolve().parents[1]


def test_task_module_imports_no_torch():
    code = "import sys, lmfloss.task, lmfloss.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("task, reference", [
    (MULTICLASS, lambda z: torch.softmax(z, dim=1)),
    (MULTILABEL, torch.sigmoid),
])
def test_probabilities_of_arrays_and_tensors_equal_torch(task, reference):
    z = torch.randn(7, 4, dtype=torch.float64) * 5
    expected = reference(z / 2.0).numpy()
    np.testing.assert_allclose(task.probabilities(z.numpy(), temperature=2.0), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(task.probabilities(z / 2.0).numpy(), expected, rtol=0, atol=1e-15)
    assert task.probabilities(z.float()).dtype == torch.float32  # a tensor keeps its dtype


@pytest.mark.parametrize("task", [MULTICLASS, MULTILABEL])
def test_logits_of_inverts_the_activation(task):
    probs = task.probabilities(torch.randn(5, 3))
    np.testing.assert_allclose(task.probabilities(task.logits_of(probs)).numpy(), probs.numpy(), atol=1e-5)


def test_decisions_argmax_and_thresholds():
    probs = np.array([[0.2, 0.7, 0.1], [0.5, 0.4, 0.9]])
    assert MULTICLASS.decide(probs).tolist() == [1, 2]
    assert MULTILABEL.decide(probs).tolist() == [[0, 1, 0], [1, 0, 1]]  # 0.5 by default, p >= t
    assert MULTILABEL.decide(probs, [0.1, 0.8, 0.95]).tolist() == [[1, 0, 0], [1, 0, 0]]


def test_selection_scores_equal_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    probs = rng.dirichlet(np.ones(3), 60)
    scores = MULTICLASS.selection_scores(y, probs)
    assert set(scores) == set(MULTICLASS.epoch_metrics)
    assert scores["f1_macro"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro"))
    y_ml = (rng.random((60, 4)) < 0.4).astype(np.int64)
    p_ml = rng.random((60, 4))
    scores = MULTILABEL.selection_scores(y_ml, p_ml)
    assert set(scores) == set(MULTILABEL.epoch_metrics)  # subset accuracy named as what it is
    assert scores["subset_accuracy"] == pytest.approx(np.mean(((p_ml >= 0.5) == y_ml).all(axis=1)))


def test_get_task_reads_names_configs_reports_and_old_runs():
    assert get_task("multilabel") is MULTILABEL
    assert get_task(TrainConfig(task="multilabel")) is MULTILABEL
    assert get_task({"task": "multilabel"}) is MULTILABEL
    assert get_task({}) is MULTICLASS and get_task(None) is MULTICLASS  # lmfloss 0.1 had no task
    with pytest.raises(ValueError, match="task must be one of .*'multiclass'.*got 'ordinal'"):
        get_task("ordinal")


def test_register_task_refuses_a_taken_name_and_feeds_the_config_choices():
    with pytest.raises(ValueError, match="already registered"):
        register_task(Task(**{**{f: getattr(MULTICLASS, f) for f in MULTICLASS.__dataclass_fields__}}))
    with pytest.raises(ValueError, match="config task='ordinal' is invalid"):
        check_config(TrainConfig(task="ordinal"))
    extra = register_task(Task(**{**{f: getattr(MULTICLASS, f) for f in MULTICLASS.__dataclass_fields__},
                                  "name": "test-only-task"}))
    try:
        assert "test-only-task" in TASK_CHOICES
        check_config(TrainConfig(task="test-only-task"))  # accepted once registered
    finally:
        del TASKS[extra.name]
    assert "test-only-task" not in TASK_CHOICES


def test_select_metric_of_another_task_is_refused():
    from lmfloss.data.adapters import resolve_config

    with pytest.raises(ValueError, match="map"):
        resolve_config(TrainConfig(select_metric="map"))


# ---- a task from outside src/: trained, evaluated, predicted, exported and reported --------
@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    import extra_task
    from data_helpers import TINY, imagefolder
    from lmfloss.cli import main

    folder = tmp_path_factory.mktemp("binary1")
    root = imagefolder(folder / "data", n=10)
    out = folder / "runs" / "binary1"
    args = [a for a in TINY if a not in ("ce",)]
    args[args.index("--loss") + 1:args.index("--loss") + 1] = ["bce1"]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with extra_task.registered():  # for this module's tests only: the registry is global
        try:
            assert main(["train", "--dataset", "imagefolder", "--root", str(root), "--task", "binary1",
                         "--out", str(out), "--cache-dir", str(folder / "cache"), *args]) == 0
        finally:
            torch.set_num_threads(previous)
        yield root, out


@pytest.mark.slow
def test_registered_task_trains_evaluates_predicts_exports_and_reports(binary_run, tmp_path, capsys):
    from lmfloss.cli import main
    from lmfloss.train import load_run
    from lmfloss.train.run import predict

    root, out = binary_run
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "binary1"
    run = load_run(out)
    assert run.model(torch.zeros(1, 3, 28, 28)).shape == (1, 1)  # one logit, as the task says
    # evaluate recomputes report.json's test numbers
    assert main(["evaluate", "--run", str(out)]) == 0
    again = json.loads(next(out.glob("eval-test-*.json")).read_text())
    assert again["f1_macro"] == pytest.approx(report["test"]["f1_macro"])
    # predict: [1 - p, p] from the one logit
    image = next((root / "malignant").iterdir())
    probs = predict(run, [image])
    assert probs.shape == (1, 2) and probs.sum() == pytest.approx(1.0)
    z = run.model(run.preprocess(image)[None]).item()
    assert probs[0, 1] == pytest.approx(torch.sigmoid(torch.tensor(z)).item(), abs=1e-6)
    # export: the graph ends in the task's probabilities
    assert main(["export", "--run", str(out), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    pixels = np.asarray(Image.open(image).convert("RGB").resize((28, 28)))  # the graph takes the run's size
    np.testing.assert_allclose(scripted(torch.from_numpy(pixels)[None]).detach().numpy(), predict(run, [pixels]),
                               atol=1e-5)
    # report: the study report reads the run as a finished run of its task
    assert main(["report", str(out.parent), "--out", str(tmp_path / "report")]) == 0
    rows = (tmp_path / "report" / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and ",binary1," in rows[1] or "binary1" in rows[1]
