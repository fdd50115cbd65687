"""Issue 10: the small stem, the MedMNIST v2 protocol's options, calibration and binary metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, recall_score
from torch import nn

from lmfloss.cli import main
from lmfloss.config import TrainConfig, check_config, load_config_file
from lmfloss.metrics import (
    brier_score,
    calibration_bins,
    classification_report,
    expected_calibration_error,
    negative_log_likelihood,
    positive_index,
    youden_threshold,
)
from lmfloss.models import apply_stem, build_model
from lmfloss.train.scoring import fit_temperature


# ---- the small stem ------------------------------------------------------------------
@pytest.mark.parametrize("size", [28, 32, 64])
def test_small_resnet_stem_keeps_the_resolution(size):
    model = build_model("resnet18", 5, "none", stem="small").eval()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and model.conv1.padding == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    features = {}
    model.layer1.register_forward_hook(lambda _m, _i, out: features.update(layer1=out.shape))
    with torch.no_grad():
        assert model(torch.rand(2, 3, size, size)).shape == (2, 5)
    assert features["layer1"][-2:] == (size, size)  # torchvision's stem: size / 4


def test_default_network_is_unchanged():
    model = build_model("resnet18", 5, "none")
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert isinstance(model.maxpool, nn.MaxPool2d)


@pytest.mark.parametrize("name", ["densenet121", "efficientnet_b0"])
def test_small_stem_of_other_families(name):
    model = build_model(name, 3, "none", stem="small").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 3)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.stride == (1, 1) and first.kernel_size == (3, 3)


def test_pretrained_weights_load_into_every_layer_but_the_new_stem(tmp_path):
    source = build_model("resnet18", 1000, "none")  # stands for ImageNet weights (no download in tests)
    path = tmp_path / "backbone.pt"
    torch.save(source.state_dict(), path)
    model = build_model("resnet18", 4, path, stem="small")
    assert torch.equal(model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert model.conv1.weight.shape == (64, 3, 3, 3) and model.fc.out_features == 4


def test_small_stem_is_refused_where_unknown():
    with pytest.raises(ValueError, match="stem 'small' is not available for model 'mobilenet_v2'"):
        build_model("mobilenet_v2", 3, "none", stem="small")
    with pytest.raises(ValueError, match="stem must be one of"):
        apply_stem(build_model("resnet18", 3, "none"), "tiny")


# ---- config: normalisation, milestones, selection --------------------------------------
def test_the_medmnist_v2_preset_is_the_protocol():
    config = TrainConfig.from_dict({**load_config_file("configs/medmnist-v2.yaml"), "dataset": "retinamnist"})
    check_config(config)
    assert (config.normalize, config.batch_size, config.lr, config.weight_decay) == ("half", 128, 1e-3, 0.0)
    assert (config.epochs, config.lr_milestones, config.lr_gamma, config.select_metric) == (100, [50, 75], 0.1, "auc")
    assert (config.model, config.weights, config.image_size, config.augment) == ("resnet18", "none", 28, "none")


def test_half_normalisation_maps_to_minus_one_one():
    from lmfloss.data.transforms import build_transform

    out = build_transform("half").finish(torch.tensor([[[[0, 255]]] * 3], dtype=torch.uint8))
    assert torch.equal(out, torch.tensor([[[[-1.0, 1.0]]] * 3]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"stem": "tiny"}, "stem='tiny' is invalid"),
        ({"normalize": "zscore"}, "normalize='zscore' is invalid"),
        ({"select_metric": "loss"}, "select_metric='loss' is invalid"),
        ({"lr_milestones": [75, 50]}, "must be increasing"),
        ({"lr_milestones": [50, 120]}, "reaches past the last epoch"),
    ],
)
def test_bad_protocol_values_are_one_line_errors(changes, message, tmp_path, capsys):
    argv = ["train", "--dataset", "synthetic", "--epochs", "100", "--out", str(tmp_path / "run")]
    for key, value in changes.items():
        argv += [f"--{key.replace('_', '-')}", ",".join(map(str, value)) if isinstance(value, list) else value]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "run").exists()  # nothing written


# ---- calibration ---------------------------------------------------------------------
def _probs(n=400, k=4, seed=0, temperature=1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y]
    p = np.exp(logits / temperature)
    return y, p / p.sum(1, keepdims=True), logits


def test_ece_brier_nll_against_direct_formulas_and_references():
    from torchmetrics.functional.classification import multiclass_calibration_error

    y, p, _ = _probs()
    conf, pred = p.max(1), p.argmax(1)
    edges = np.linspace(0, 1, 16)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf >= lo) & ((conf < hi) if hi < 1 else (conf <= hi))
        if inside.any():
            ece += inside.mean() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    assert expected_calibration_error(y, p) == pytest.approx(ece, abs=1e-12)
    reference = multiclass_calibration_error(torch.tensor(p), torch.tensor(y), num_classes=4, n_bins=15, norm="l1")
    assert expected_calibration_error(y, p) == pytest.approx(float(reference), abs=1e-6)
    assert brier_score(y, p) == pytest.approx(np.mean(np.sum((p - np.eye(4)[y]) ** 2, axis=1)), abs=1e-12)
    assert negative_log_likelihood(y, p) == pytest.approx(log_loss(y, p, labels=[0, 1, 2, 3]), abs=1e-12)
    bins = calibration_bins(y, p)
    assert bins["count"].sum() == len(y)


def test_temperature_scaling_is_fitted_and_improves_nll_of_an_overconfident_model():
    y, _, logits = _probs(n=2000, seed=3)
    sharp = logits * 4.0  # an over-confident model of the same ranking
    temperature = fit_temperature(sharp, y)
    # NLL(z / T) depends on z / T only: scaling the logits by 4 scales the optimum by 4.
    assert temperature == pytest.approx(4.0 * fit_temperature(logits, y), rel=1e-4)
    before = torch.nn.functional.cross_entropy(torch.tensor(sharp), torch.tensor(y)).item()
    after = torch.nn.functional.cross_entropy(torch.tensor(sharp) / temperature, torch.tensor(y)).item()
    assert after < before
    with pytest.raises(ValueError, match="temperature scaling needs"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int))


# ---- macro rule and binary metrics ---------------------------------------------------
def test_balanced_accuracy_is_macro_recall_over_all_classes_with_one_missing():
    y, p, _ = _probs(k=4, seed=5)
    y[y == 3] = 0
    report = classification_report(y, p.argmax(1), p, ["a", "b", "c", "d"], n_bootstrap=0)
    expected = recall_score(y, p.argmax(1), labels=[0, 1, 2, 3], average="macro", zero_division=0)
    assert report["balanced_accuracy"] == pytest.approx(expected) == pytest.approx(report["recall_macro"])
    assert report["classes_without_support"] == ["d"]


def test_binary_threshold_is_chosen_on_validation_only():
    rng = np.random.default_rng(0)
    y_val = rng.integers(0, 2, 300)
    score = np.clip(0.3 * (y_val == 0) + rng.normal(0.35, 0.15, 300), 0, 1)
    val = np.stack([score, 1 - score], axis=1)  # class 0 is the positive (the rarer in training)
    positive = positive_index(["malignant", "benign"], [100, 400])
    assert positive == 0
    threshold = youden_threshold(y_val, val, positive)
    # Youden's J is maximal at the chosen threshold among all thresholds.
    def j(t):
        pred = val[:, 0] >= t
        tpr = (pred & (y_val == 0)).sum() / (y_val == 0).sum()
        fpr = (pred & (y_val == 1)).sum() / (y_val == 1).sum()
        return tpr - fpr
    assert j(threshold) >= max(j(t) for t in np.unique(val[:, 0])) - 1e-12
    # The test report applies the validation threshold: changing the test set does not move it.
    y_test = rng.integers(0, 2, 200)
    test = np.stack([np.full(200, 0.5), np.full(200, 0.5)], axis=1)
    report = classification_report(y_test, test.argmax(1), test, ["malignant", "benign"], n_bootstrap=0,
                                   positive=positive, threshold=threshold)
    assert report["at_threshold"]["threshold"] == threshold and report["positive_class"] == "malignant"
    assert {"sensitivity", "specificity"} <= set(report)


@pytest.mark.parametrize(("text", "expected"), [("10,15", [10, 15]), ("[10, 15]", [10, 15]), ("15", [15]), (15, [15])])
def test_lr_milestones_as_text_in_a_config_or_sweep_grid(text, expected):
    """A sweep grid's values are scalars, so a schedule is given as "10,15" (as --lr-milestones takes it)."""
    from lmfloss.config import TrainConfig, check_config

    config = TrainConfig.from_dict({"epochs": 20, "lr_milestones": text})
    check_config(config)
    assert config.lr_milestones == expected


def test_lr_milestones_text_that_is_not_epochs_names_the_key():
    from lmfloss.config import TrainConfig

    with pytest.raises(ValueError, match=r"config lr_milestones: expected whole numbers"):
        TrainConfig.from_dict({"lr_milestones": "ten,15"})
