"""``lmfloss train / evaluate / predict / demo`` through lmfloss.cli.main: outputs and every error path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from cli_helpers import one_error_line
from data_helpers import CLASSES, csv_dataset, rgb
from data_helpers import TINY as TINY_FILES
from lmfloss.cli import main
from tiers import fixture_marks

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HAM_IMAGES = SHARED / "samples" / "ham10000" / "images"
needs_breast = pytest.mark.realdata("data/breastmnist/breastmnist.npz")

TINY = ["--dataset", "breastmnist", "--root", str(SHARED), "--model", "shufflenet_v2_x0_5",
        "--weights", "none", "--image-size", "16", "--epochs", "1", "--device", "cpu",
        "--bootstrap", "50", "--quiet"]


@pytest.fixture(scope="module")
@fixture_marks(pytest.mark.slow, needs_breast)
def cli_run(tmp_path_factory):
    """A run trained from a YAML config with a flag overriding it."""
    folder = tmp_path_factory.mktemp("cli")
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": "breastmnist", "root": str(SHARED), "model": "shufflenet_v2_x0_5",
        "weights": "none", "image_size": 16, "epochs": 3, "device": "cpu", "loss": "focal",
        "loss_params": {"gamma": 1.0}, "bootstrap": 50,
    }))
    out = folder / "run"
    code = main(["train", "--config", str(config), "--epochs", "1", "--loss-param", "gamma=2",
                 "--out", str(out), "--quiet"])
    assert code == 0
    return out


def test_train_config_file_with_flag_overrides(cli_run, capsys):
    saved = yaml.safe_load((cli_run / "config.yaml").read_text())
    assert saved["epochs"] == 1  # the flag beat the file's 3
    assert saved["loss"] == "focal"  # from the file
    assert saved["loss_params"] == {"gamma": 2}  # --loss-param overrides the file's value
    assert saved["lr"] == 1e-4 and saved["lr_step"] == 30  # the paper's defaults
    assert (cli_run / "report.json").is_file()


def test_evaluate_writes_and_prints_report(cli_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--run", str(cli_run), "--split", "test", "--checkpoint", "last"]) == 0
    out = capsys.readouterr().out
    assert "f1_macro" in out and "156 images" in out
    again = json.loads((cli_run / "eval-test-last.json").read_text())
    report = json.loads((cli_run / "report.json").read_text())
    # one epoch: best.pt and last.pt hold the same model, so the numbers agree
    assert again["f1_macro"] == pytest.approx(report["test"]["f1_macro"])
    assert again["confusion_matrix"] == report["test"]["confusion_matrix"]
    # binary: the report's Youden threshold (chosen on validation) is applied again
    assert again["at_threshold"] == pytest.approx(report["test"]["at_threshold"])
    # the run directory's reader finds it by split and checkpoint, and only that one
    from lmfloss import rundir

    assert rundir.read_eval(cli_run, "test", "last") == again
    assert rundir.read_eval(cli_run, "val", "last") is None


def test_evaluate_calibrate_fits_the_temperature_on_validation(cli_run, capsys, monkeypatch):
    from lmfloss.train import run as run_module  # where evaluate_run looks it up

    fitted_on = []
    real = run_module.fit_temperature
    monkeypatch.setattr(run_module, "fit_temperature",
                        lambda logits, labels, **kw: fitted_on.append(len(labels)) or real(logits, labels, **kw))
    assert main(["evaluate", "--run", str(cli_run), "--calibrate", "--out", str(cli_run / "cal.json")]) == 0
    assert fitted_on == [78]  # BreastMNIST's validation split, never the 156 test images
    calibration = json.loads((cli_run / "cal.json").read_text())["calibration"]
    assert calibration["fitted_on"] == "val" and calibration["temperature"] > 0
    assert {"ece_before", "ece_after", "nll_before", "nll_after"} <= set(calibration)
    assert "temperature" in capsys.readouterr().out
    assert main(["evaluate", "--run", str(cli_run), "--tta", "flip", "--out", str(cli_run / "tta.json")]) == 0
    flipped = json.loads((cli_run / "tta.json").read_text())
    assert flipped["tta"] == "flip" and flipped["trained_with_flips"] is False  # allowed, and recorded


@pytest.mark.realdata("data/samples/ham10000/images")
def test_predict_images_and_csv(cli_run, tmp_path, capsys):
    images = sorted(HAM_IMAGES.glob("*.jpg"))[:3]
    listing = tmp_path / "list.csv"
    listing.write_text("path\n" + "".join(f"{p}\n" for p in images[1:]))
    target = tmp_path / "preds.csv"
    code = main(["predict", "--run", str(cli_run), str(images[0]), "--csv", str(listing), "--out", str(target)])
    assert code == 0
    with open(target, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["image"] for r in rows] == [str(p) for p in images]
    names = ["malignant", "normal_benign"]
    for row in rows:
        probs = [float(row[f"prob_{n}"]) for n in names]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert row["pred"] == names[probs.index(max(probs))]


@pytest.mark.slow
def test_existing_run_refused_then_overwrite(cli_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["train", *TINY, "--out", str(cli_run)]) == 2
    line = one_error_line(capsys, "train")
    assert "already holds a finished run" in line and "--overwrite" in line
    copy = tmp_path / "again"
    assert main(["train", *TINY, "--loss", "ce", "--out", str(copy)]) == 0
    first = (copy / "metrics.csv").read_text()
    assert main(["train", *TINY, "--loss", "ce", "--out", str(copy), "--overwrite"]) == 0
    assert (copy / "metrics.csv").read_text().splitlines()[1].split(",")[:-1] == first.splitlines()[1].split(",")[:-1]


@pytest.mark.slow
def test_resume_cli_continues_a_run(cli_run, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", *TINY, "--loss", "ce", "--out", str(out)]) == 0
    # extend the finished 1-epoch run to 2 epochs
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    # what was trained cannot change on resume: refused by name, not silently ignored
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "3", "--loss-param", "beta=3"]) == 2
    assert "loss_params" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--model", "resnet5"], "unknown model 'resnet5'"),
        (["--loss", "lmff"], "lmff"),
        (["--dataset", "no-such-set"], "unknown dataset 'no-such-set'"),
        (["--dataset", "ham10000", "--root", "/nonexistent/ham"], "/nonexistent/ham"),
        (["--weights", "/nonexistent/w.pt"], "/nonexistent/w.pt"),
        (["--epochs", "0"], "epochs=0 is invalid"),
        (["--device", "cuda:7"], "cuda:7"),
        (["--loss-param", "beta"], "--loss-param expects KEY=VALUE, got 'beta'"),
    ],
)
@needs_breast
def test_train_user_errors_are_one_line(argv, expected, tmp_path, capsys):
    code = main(["train", *TINY, *argv, "--out", str(tmp_path / "x")])
    assert code == 2
    assert expected in one_error_line(capsys, "train")


def test_train_needs_out(capsys):
    assert main(["train", "--dataset", "synthetic"]) == 2
    assert "--out RUN_DIR" in one_error_line(capsys, "train")


def test_missing_config_file(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.yaml" in one_error_line(capsys, "train")


def test_unknown_config_key(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("modle: resnet18\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "unknown config key(s) ['modle']" in one_error_line(capsys, "train")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["evaluate", "--run", "/nonexistent/run"], "/nonexistent/run"),
        (["predict", "--run", "/nonexistent/run", "x.png"], "x.png"),
        (["train", "--resume", "/nonexistent/run"], "/nonexistent/run"),
    ],
)
def test_bad_run_directory(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in one_error_line(capsys, argv[0])


def test_predict_errors(cli_run, tmp_path, capsys):
    listing = tmp_path / "bad.csv"
    listing.write_text("file_name\nx.png\n")
    assert main(["predict", "--run", str(cli_run), "--csv", str(listing)]) == 2
    assert "needs a 'path' column" in one_error_line(capsys, "predict")
    assert main(["predict", "--run", str(cli_run)]) == 2
    assert "needs image files, a folder of images or --csv" in one_error_line(capsys, "predict")


def test_quiet_train_error_is_the_only_stderr_line(tmp_path, capsys):
    table = csv_dataset(tmp_path, n=4)
    rows = table.read_text().splitlines()
    # No validation images: training is refused after the data (and its cache) is loaded.
    rows = ["path,label,split"] + [f"{r},{'test' if i % 4 == 0 else 'train'}" for i, r in enumerate(rows[1:])]
    table.write_text("\n".join(rows) + "\n")
    code = main(["train", "--dataset", "csv", "--csv", str(table), "--out", str(tmp_path / "run"),
                 "--cache-dir", str(tmp_path / "cache"), *TINY_FILES])
    assert code == 2
    line = one_error_line(capsys, "train")
    assert "no images in its val split" in line


def test_predict_expands_folders_and_skips_bad_images_on_request(imagefolder_run, tmp_path, capsys):
    rng = np.random.default_rng(6)
    folder = tmp_path / "new"
    (folder / "ward" / "bed3").mkdir(parents=True)
    good = [folder / "a.png", folder / "ward" / "b.jpg", folder / "ward" / "bed3" / "c.png"]
    for k, path in enumerate(good):
        Image.fromarray(rgb(rng, k % 2, size=40)).save(path)
    broken = folder / "ward" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG")
    (folder / "notes.txt").write_text("not an image\n")

    out = tmp_path / "preds.csv"
    assert main(["predict", "--run", str(imagefolder_run), str(folder), "--skip-bad-images", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["image"] for r in rows) == sorted(map(str, [*good, broken]))
    for row in rows:
        if row["image"] == str(broken):
            assert row["pred"] == "" and row["error"] == "undecodable image"
        else:
            assert row["pred"] in CLASSES and row["error"] == ""
            assert sum(float(row[f"prob_{c}"]) for c in CLASSES) == pytest.approx(1.0, abs=1e-5)
    assert str(broken) in capsys.readouterr().err

    assert main(["predict", "--run", str(imagefolder_run), str(folder), "--out", str(tmp_path / "no.csv")]) == 2
    line = one_error_line(capsys, "predict")
    assert str(broken) in line and "--skip-bad-images" in line
    assert not (tmp_path / "no.csv").exists()
