"""End-to-end fit() on real data (BreastMNIST, 28 px) and the files of the run directory."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from lmfloss.config import TrainConfig
from lmfloss.errors import LmflossError
from lmfloss.extras import install_hint
from lmfloss.rundir import METRICS_COLUMNS, REFIT, RUN_FILES, read_metrics
from lmfloss.train import NonFiniteLossError, evaluate_run, fit, load_run, predict
from lmfloss.train.checkpoint import load_checkpoint
from tiers import fixture_marks

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_breast = pytest.mark.realdata("data/breastmnist/breastmnist.npz")

REPORT_KEYS = {
    "accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted", "balanced_accuracy",
    "auc_macro_ovr", "f1_per_class", "precision_per_class", "recall_per_class", "support",
    "confusion_matrix", "f1_macro_ci95",
}


def tiny_config(**changes) -> TrainConfig:
    """BreastMNIST (546/78/156 images, 2 classes) at 28 px with a 0.35M-parameter network."""
    base = TrainConfig(
        dataset="breastmnist", task="multiclass", root=str(SHARED), model="shufflenet_v2_x0_5", weights="none",
        image_size=28, epochs=2, batch_size=32, lr=1e-3, device="cpu", loss="lmf", bootstrap=200,
    )
    return base.replace(**changes)


@pytest.fixture(scope="module")
@fixture_marks(pytest.mark.slow, needs_breast)
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "breast"
    result = fit(tiny_config(epochs=3), out, quiet=True)
    return result


def test_run_directory_is_complete(finished_run):
    out = finished_run.run_dir
    for name in RUN_FILES:
        assert (out / name).is_file() == (name != REFIT), name  # refit.pt only with --refit
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
    report = json.loads((out / "report.json").read_text())
    assert set(report) >= {"test", "val", "best_epoch", "class_names", "train_class_counts", "config"}
    assert report["class_names"] == ["malignant", "normal_benign"]
    assert report["train_class_counts"] == [147, 399]  # BreastMNIST's official training split
    for split, n in (("val", 78), ("test", 156)):
        assert REPORT_KEYS <= set(report[split])
        assert sum(report[split]["support"].values()) == n
    assert report["config"] == finished_run.report["config"] == tiny_config(epochs=3).to_dict()
    with open(out / "metrics.csv", newline="") as handle:
        assert tuple(csv.DictReader(handle).fieldnames) == METRICS_COLUMNS
    assert [r["epoch"] for r in read_metrics(out)] == [1, 2, 3]


def test_report_equals_sklearn_on_predictions_csv(finished_run):
    out = finished_run.run_dir
    report = json.loads((out / "report.json").read_text())
    names = report["class_names"]
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 156 and len({r["id"] for r in rows}) == 156
    assert list(rows[0]) == ["id", "label", "pred"] + [f"prob_{n}" for n in names]
    y = np.array([names.index(r["label"]) for r in rows])
    pred = np.array([names.index(r["pred"]) for r in rows])
    probs = np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])
    np.testing.assert_array_equal(pred, probs.argmax(1))
    test = report["test"]
    assert test["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert test["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro", labels=[0, 1], zero_division=0))
    assert test["precision_macro"] == pytest.approx(precision_score(y, pred, average="macro", zero_division=0))
    assert test["recall_macro"] == pytest.approx(recall_score(y, pred, average="macro", zero_division=0))
    assert test["auc_macro_ovr"] == pytest.approx(roc_auc_score(y, probs[:, 1]), abs=1e-6)
    with open(out / "per_class.csv", newline="") as handle:
        per_class = list(csv.DictReader(handle))
    assert [float(r["f1"]) for r in per_class] == pytest.approx(
        f1_score(y, pred, average=None, labels=[0, 1], zero_division=0), abs=1e-6)
    assert [int(r["train_count"]) for r in per_class] == [147, 399]


def test_best_checkpoint_is_chosen_on_validation(finished_run):
    out = finished_run.run_dir
    history = read_metrics(out)
    f1s = [r["val_f1_macro"] for r in history]
    expected = history[int(np.argmax(f1s))]["epoch"]  # first epoch with the highest val F1
    report = json.loads((out / "report.json").read_text())
    assert report["best_epoch"] == finished_run.best_epoch == expected
    assert load_checkpoint(out / "best.pt")["epoch"] == expected
    assert finished_run.best_val_headline == finished_run.best_val_score == pytest.approx(max(f1s))
    # The report's validation F1 is that of the best model, recomputed from scratch.
    assert report["val"]["f1_macro"] == pytest.approx(max(f1s))
    assert load_checkpoint(out / "last.pt")["epoch"] == 3


def test_load_run_and_evaluate_reproduce_report(finished_run):
    out = finished_run.run_dir
    run = load_run(out, checkpoint="best", device="cpu")
    assert run.config == tiny_config(epochs=3)
    assert run.class_names == ["malignant", "normal_benign"]
    assert not run.model.training
    assert len(run.dataset("val")) == 78
    again = evaluate_run(run, "test")
    report = json.loads((out / "report.json").read_text())
    assert again["report"]["f1_macro"] == pytest.approx(report["test"]["f1_macro"])
    assert again["report"]["confusion_matrix"] == report["test"]["confusion_matrix"]
    # predict() on raw uint8 images applies the run's preprocessing: same probabilities.
    ds = run.dataset("test")
    raw = [np.asarray(run.splits.load_image(r)) for r in ds.records[:5]]
    probs = predict(run, raw)
    np.testing.assert_allclose(probs, again["probs"][:5], atol=1e-5)


def test_finished_run_is_not_overwritten_silently(finished_run):
    with pytest.raises(LmflossError, match="already holds a finished run"):
        fit(tiny_config(epochs=3), finished_run.run_dir, quiet=True)
    # resume of a finished run returns it without training
    again = fit(tiny_config(epochs=3), finished_run.run_dir, resume=True, quiet=True)
    assert again.report == json.loads((finished_run.run_dir / "report.json").read_text())


def test_resume_with_other_config_is_refused(finished_run):
    with pytest.raises(ValueError, match=r"cannot resume with a different configuration \(loss: run has 'lmf', asked 'ce'\)"):
        fit(tiny_config(epochs=3, loss="ce"), finished_run.run_dir, resume=True, quiet=True)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"epochs": 0}, r"epochs=0 is invalid; expected an integer >= 1"),
        ({"lr": -1.0}, r"lr=-1.0 is invalid"),
        ({"amp": "fp8"}, r"amp='fp8' is invalid"),
        ({"device": "tpu"}, r"unknown device 'tpu'"),
    ],
)
def test_invalid_config_values(tmp_path, changes, match):
    with pytest.raises(ValueError, match=match):
        fit(tiny_config(**changes), tmp_path / "x", quiet=True)
    assert not (tmp_path / "x").exists()


class _NaNAfter(torch.nn.Module):
    """Cross-entropy that returns NaN from its ``bad_call``-th call on (1-based)."""

    def __init__(self, bad_call: int) -> None:
        super().__init__()
        self.calls = 0
        self.bad_call = bad_call

    def set_epoch(self, epoch: int) -> None:
        pass

    def forward(self, logits, target):
        self.calls += 1
        loss = torch.nn.functional.cross_entropy(logits, target)
        return loss * float("nan") if self.calls >= self.bad_call else loss


@needs_breast
@pytest.mark.slow
def test_nan_loss_stops_with_epoch_and_step(tmp_path, monkeypatch):
    import lmfloss.losses

    # 546 training images / 32 = 18 steps per epoch, then one call for the validation loss;
    # the 5th step of epoch 2 is call 18 + 1 + 5.
    monkeypatch.setattr(lmfloss.losses, "build_loss", lambda *a, **k: _NaNAfter(18 + 1 + 5))
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match="became nan at epoch 2, step 5"):
        fit(tiny_config(loss="ce", image_size=16), out, quiet=True)
    assert not (out / "report.json").exists()
    assert load_checkpoint(out / "last.pt")["epoch"] == 1  # the last good checkpoint stays
    assert [r["epoch"] for r in read_metrics(out)] == [1]


def test_fit_leaves_no_global_state(finished_run):
    import logging
    import signal

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    fit(tiny_config(epochs=3), finished_run.run_dir, resume=True, quiet=True)
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert (list(root.handlers), root.level) == before
    import torch.distributed as dist

    assert not (dist.is_available() and dist.is_initialized())


def test_tensorboard_without_package_is_a_clear_error(tmp_path, monkeypatch):
    # make test installs tensorboard (every extra): hide it, as a machine without it would
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import -> ImportError
    with pytest.raises(ValueError, match=re.escape(install_hint("tensorboard"))):
        fit(tiny_config(tensorboard=True), tmp_path / "tb", quiet=True)
    assert not (tmp_path / "tb").exists()


RETINA = SHARED / "retinamnist" / "retinamnist.npz"
COVID = SHARED / "samples" / "covid19_radiography"


@pytest.mark.realdata("data/retinamnist/retinamnist.npz")
@pytest.mark.slow
def test_retinamnist_five_classes_auc_equals_sklearn(tmp_path):
    result = fit(tiny_config(dataset="retinamnist", image_size=16, epochs=1, loss="ce"), tmp_path / "r", quiet=True)
    test = result.report["test"]
    names = result.report["class_names"]
    assert len(names) == 5 and sum(test["support"].values()) == 400
    with open(tmp_path / "r" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    y = np.array([names.index(r["label"]) for r in rows])
    probs = np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])
    probs /= probs.sum(1, keepdims=True)
    ref = roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert test["auc_macro_ovr"] == pytest.approx(ref, abs=1e-5)
    assert test["f1_macro"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro", labels=list(range(5)), zero_division=0))


@pytest.mark.realdata("data/samples/covid19_radiography/labels.csv")
@pytest.mark.slow
def test_image_files_through_cache_and_predict_cli(tmp_path, capsys):
    """Real PNG files via the csv adapter (on-disk cache); predict reproduces predictions.csv."""
    from lmfloss.cli import main

    with open(COVID / "labels.csv", newline="") as handle:
        samples = list(csv.DictReader(handle))
    seen: dict[str, int] = {}
    lines = ["path,label,split"]
    for row in samples:
        k = seen[row["class"]] = seen.get(row["class"], 0) + 1
        split = "train" if k <= 3 else ("val" if k == 4 else "test")
        lines.append(f"{COVID / row['file']},{row['class']},{split}")
    listing = tmp_path / "covid.csv"
    listing.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    config = tiny_config(dataset="csv", root=None, csv=str(listing), image_size=32, batch_size=4,
                         cache_dir=str(tmp_path / "cache"), loss="ce")
    result = fit(config, out, quiet=True)
    assert result.report["class_names"] == ["COVID", "Normal", "Viral Pneumonia"]
    with open(out / "predictions.csv", newline="") as handle:
        expected = list(csv.DictReader(handle))
    assert len(expected) == 3
    images = [r["id"] for r in expected]
    target = tmp_path / "new.csv"
    assert main(["predict", "--run", str(out), *images, "--out", str(target)]) == 0
    with open(target, newline="") as handle:
        got = list(csv.DictReader(handle))
    for mine, ref in zip(got, expected):
        assert mine["pred"] == ref["pred"]
        for name in result.report["class_names"]:
            assert float(mine[f"prob_{name}"]) == pytest.approx(float(ref[f"prob_{name}"]), abs=1e-4)


def test_best_state_copy_keeps_module_versions_for_load_state_dict():
    # MNASNet reads its version from the state dict's metadata; a plain dict copy loses it.
    from torchvision.models import mnasnet0_5

    from lmfloss.train.fit import _cpu_state_dict

    model = mnasnet0_5(weights=None, num_classes=3)
    plain = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="version"):
        model.load_state_dict(plain)
    copy = _cpu_state_dict(model)
    model.load_state_dict(copy)
    assert all(torch.equal(copy[k], v) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_skipped_bad_image_is_recorded_and_not_counted(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for name in ("a", "b"):
        for i in range(6):
            path = tmp_path / f"{name}{i}.png"
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(path)
            rows.append((path.name, name, ("train", "train", "train", "train", "val", "test")[i]))
    (tmp_path / "a0.png").write_bytes(b"not an image")  # a training image of class 'a'
    with (tmp_path / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([("path", "label", "split"), *rows])
    config = tiny_config(dataset="csv", csv=str(tmp_path / "labels.csv"), root=None, epochs=1,
                         image_size=16, batch_size=4, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="a0.png"):
        fit(config, tmp_path / "strict", quiet=True)
    report = fit(config.replace(skip_bad_images=True), tmp_path / "run", quiet=True).report
    assert [Path(p).name for p in report["skipped_images"]] == ["a0.png"]
    assert report["train_class_counts"] == [3, 4]
