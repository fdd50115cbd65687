"""``lmfloss cam`` end to end on tiny runs trained on the synthetic set."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from cli_helpers import one_error_line
from lmfloss.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    """A real run: resnet18, random init, 28 px, one epoch of ``fit`` on ``synthetic``."""
    from lmfloss.config import TrainConfig
    from lmfloss.train import fit

    run_dir = tmp_path_factory.mktemp("runs") / "ce"
    config = TrainConfig(dataset="synthetic", model="resnet18", weights="none", image_size=28,
                         epochs=1, batch_size=256, lr=1e-3, device="cpu", bootstrap=10, seed=1)
    fit(config, run_dir, quiet=True)
    return run_dir


def _family_run(resnet_run: Path, model_name: str, image_size: int) -> Path:
    """A run of another architecture (or size): the resnet run's data and config with one
    Adam step of ``model_name`` (a full epoch of DenseNet/EfficientNet on CPU would blow
    the budget)."""
    from lmfloss.models import build_model
    from lmfloss.train import load_run

    run_dir = resnet_run.parent / f"{model_name}-{image_size}"
    if run_dir.exists():
        return run_dir
    run_dir.mkdir()
    config = yaml.safe_load((resnet_run / "config.yaml").read_text())
    config.update(model=model_name, image_size=image_size)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    state = torch.load(resnet_run / "best.pt", map_location="cpu", weights_only=False)
    torch.manual_seed(0)
    model = build_model(model_name, len(state["class_names"]), weights="none")
    ds = load_run(resnet_run).dataset("train")
    images = torch.stack([ds[i][0] for i in range(8)])
    images = torch.nn.functional.interpolate(images, size=image_size, mode="bilinear")
    labels = torch.stack([ds[i][1] for i in range(8)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()
    state.update(model=model.state_dict(), config=config)
    torch.save(state, run_dir / "best.pt")
    return run_dir


def _copy_run(src: Path, dst: Path) -> None:
    """A copy of a run for ``cam``, which reads ``best.pt``: without ``last.pt`` (the model
    plus Adam's moments, 3/4 of a resnet18 run's bytes), so the tests keep the disk small."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("last.pt"))


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_cli_two_runs_both_targets(resnet_run, tmp_path, capsys):
    from lmfloss.cam import box_metrics, compute_cams, rescale_boxes
    from lmfloss.train import load_run

    twin = tmp_path / "lmf"
    _copy_run(resnet_run, twin)
    out = tmp_path / "cam"
    code = main(["cam", "--run", str(resnet_run), "--run", str(twin), "--n", "7",
                 "--target", "both", "--target-layer", "layer3", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "pointing" in printed and "fig_attention.png" in printed
    rows = _read(out / "cam_metrics.csv")
    assert len(rows) == 7 * 2 * 2
    # --n spreads over classes: 7 images, one of each synthetic class.
    assert len({r["true_class"] for r in rows}) == 7
    # layer3 of resnet18 at 28 px is 2x2; Zhang et al.'s 15 px at 224 px is 1.875 px here.
    assert {(r["layer"], r["map_size"]) for r in rows} == {("layer3", "2x2")}
    assert all(float(r["tolerance"]) == pytest.approx(15 * 28 / 224) for r in rows)
    # The twin is the same experiment (the fixture trains the default loss, LMF): one group
    # of two runs, faithfulness for every map.
    assert {r["group"] for r in rows} == {"lmf"}
    for key in ("road", "road_random", "conf_drop", "pointing_hit_shuffled", "energy_in_box_shuffled"):
        assert all(r[key] != "" for r in rows), key
    assert (out / "fig_attention.png").stat().st_size > 10_000
    assert (out / "fig_attention.pdf").read_bytes().startswith(b"%PDF")
    assert len(list((out / "overlays" / "lmf").glob("*_true.png"))) == 7

    # Recompute two rows from scratch: the map of the true class and the box rescaled
    # from 64 px originals to the 28 px map.
    run = load_run(resnet_run)
    ds = run.dataset("test")
    position = {rec.id: i for i, rec in enumerate(ds.records)}
    for row in [r for r in rows if r["run"] == "ce" and r["target"] == "true"][:2]:
        record = ds.records[position[row["id"]]]
        image = ds[position[row["id"]]][0][None]
        cam = compute_cams(run.model, image, [record.label], target_layer="layer3").maps[0]
        original = run.splits.load_image(record).shape[:2]
        boxes = rescale_boxes(run.splits.boxes(record), original, cam.shape)
        expected = box_metrics(cam, boxes, tolerance=float(row["tolerance"]))
        for key, value in expected.items():
            assert float(row[key]) == pytest.approx(value, rel=1e-5, abs=1e-6)
        assert row["target_class"] == row["true_class"]

    summary = _read(out / "cam_summary.csv")
    all_ce = next(s for s in summary if s["run"] == "ce" and s["target"] == "pred"
                  and s["class"] == "all")
    ce_rows = [r for r in rows if r["run"] == "ce" and r["target"] == "pred"]
    assert float(all_ce["pointing_hit_rate"]) == pytest.approx(
        np.mean([float(r["pointing_hit"]) for r in ce_rows]), rel=1e-4)
    assert float(all_ce["chance"]) == pytest.approx(
        np.mean([float(r["box_area_fraction"]) for r in ce_rows]), rel=1e-4)
    assert int(all_ce["n_scored"]) == 7
    assert (all_ce["layer"], all_ce["map_size"]) == ("layer3", "2x2")
    # Score minus baseline, from the per-image rows.
    shuffled = np.mean([float(r["pointing_hit_shuffled"]) for r in ce_rows])
    assert float(all_ce["pointing_shuffled"]) == pytest.approx(shuffled, rel=1e-4)
    groups = _read(out / "cam_groups.csv")
    assert {(g["group"], g["target"], g["n_runs"]) for g in groups} == {("lmf", "pred", "2"), ("lmf", "true", "2")}
    assert not (out / "cam_tests.csv").exists()  # one group: nothing to compare


def test_architecture_families(resnet_run, tmp_path):
    """ResNet, DenseNet and EfficientNet runs side by side at 64 px: one column each, the
    deepest block with a map of at least 7x7 (8x8 for all three), one group each.

    EfficientNet at its smallest (B0; the paper's V2-S layer choice is covered in
    test_cam_compute.py): same torchvision class, same rule.
    """
    from lmfloss.cam.run import run_cam

    runs = [_family_run(resnet_run, name, 64) for name in ("resnet18", "densenet121", "efficientnet_b0")]
    outputs = run_cam(runs, tmp_path / "cam", n=3, overlays=False, faithfulness="drop")
    layers = {r["run"]: (r["layer"], r["map_size"]) for r in outputs.metrics}
    assert layers == {"resnet18-64": ("layer2.1", "8x8"),
                      "densenet121-64": ("features.denseblock2", "8x8"),
                      "efficientnet_b0-64": ("features.3", "8x8")}
    # Three experiments of one loss: the group names say which setting differs.
    assert {r["group"] for r in outputs.metrics} == {
        "lmf (model=resnet18)", "lmf (model=densenet121)", "lmf (model=efficientnet_b0)"}
    for name in ("densenet121-64", "efficientnet_b0-64"):
        rows = [r for r in outputs.metrics if r["run"] == name]
        assert len(rows) == 3
        assert all(0.0 <= r["energy_in_box"] <= 1.0 for r in rows)
        assert all(r["annotation"] == "dataset" for r in rows)
        assert all(np.isfinite(r["conf_drop"]) and np.isnan(r["road"]) for r in rows)
    assert (tmp_path / "cam" / "fig_attention.png").is_file()
    # One group per run, single seeds: tests are written, with no p over seeds.
    assert outputs.tests and all(t["n_seeds"] == 1 and t["p_seeds"] is None for t in outputs.tests)


def test_runs_of_different_image_sizes_are_refused(resnet_run, tmp_path, capsys):
    wide = _family_run(resnet_run, "resnet18", 64)
    code = main(["cam", "--run", str(resnet_run), "--run", str(wide), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "different image sizes" in err and "'ce' at 28 px" in err and "'resnet18-64' at 64 px" in err


def test_runs_of_different_datasets_are_refused(resnet_run, tmp_path, capsys):
    other = tmp_path / "derma"
    _copy_run(resnet_run, other)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["dataset"] = "dermamnist"
    (other / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    code = main(["cam", "--run", str(resnet_run), "--run", str(other), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "different datasets" in err and "dermamnist" in err


def test_boxes_csv_selects_and_clips(resnet_run, tmp_path, caplog):
    from lmfloss.cam.run import run_cam
    from lmfloss.train import load_run

    records = load_run(resnet_run).splits.records("test")
    a, b = records[3].id, records[10].id
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(f"id,x0,y0,x1,y1\n{a},10,10,40,40\n{b},50,50,90,90\n")
    with caplog.at_level("WARNING"):
        outputs = run_cam([resnet_run], tmp_path / "cam", boxes_csv=boxes, n=2,
                          target_layer="layer3")
    assert "clipped to (50, 50, 64, 64)" in caplog.text
    assert sorted(r["id"] for r in outputs.metrics) == sorted([a, b])
    row_b = next(r for r in outputs.metrics if r["id"] == b)
    # (50..64) of 64 px -> floor(50 * 28 / 64) = 21 .. 28 of the 28 px map: 7x7 of 28x28.
    assert row_b["box_area_fraction"] == pytest.approx(49 / 784)
    assert all(r["annotation"] == "boxes" for r in outputs.metrics)


def test_masks_folder_scores_the_mask(resnet_run, tmp_path):
    from lmfloss.cam.run import run_cam
    from lmfloss.train import load_run

    record = load_run(resnet_run).splits.records("test")[0]
    masks = tmp_path / "masks"
    masks.mkdir()
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[8:24, 8:40] = 255  # a 32x16 px lesion -> 14x7 on the 28 px map (nearest)
    Image.fromarray(mask).save(masks / f"{record.id}_segmentation.png")
    outputs = run_cam([resnet_run], tmp_path / "cam", masks_dir=masks, n=1,
                      target_layer="layer3", overlays=False)
    (row,) = outputs.metrics
    assert row["id"] == record.id and row["annotation"] == "masks" and row["n_boxes"] == 1
    assert row["box_area_fraction"] == pytest.approx(14 * 7 / 784)


def test_misclassified_only(resnet_run, tmp_path):
    from lmfloss.cam.run import run_cam

    predictions = _read(resnet_run / "predictions.csv")
    wrong = [p["id"] for p in predictions if p["label"] != p["pred"]]
    assert wrong, "a one-epoch run should get some test images wrong"
    outputs = run_cam([resnet_run], tmp_path / "cam", misclassified=True, n=4, overlays=False)
    assert [r["id"] for r in outputs.metrics] == wrong[:4]
    assert not any(r["correct"] for r in outputs.metrics)
    # No predictions.csv for the val split: the predictions come from a forward pass.
    val = run_cam([resnet_run], tmp_path / "val", split="val", misclassified=True, n=3,
                  overlays=False)
    assert len(val.metrics) == 3 and not any(r["correct"] for r in val.metrics)
    # predictions.csv is the best checkpoint's: the last one is judged by its own forward pass.
    last = run_cam([resnet_run], tmp_path / "last", checkpoint="last", misclassified=True, n=3,
                   overlays=False)
    assert len(last.metrics) == 3 and not any(r["correct"] for r in last.metrics)


@pytest.mark.parametrize(("extra", "message"), [
    (["--ids", "syn-99999"], "syn-99999"),
    (["--target-layer", "layer9"], "candidate layers"),
    (["--masks", "/nonexistent/masks"], "/nonexistent/masks"),
    (["--min-map-size", "0"], "minimum map size must be an integer >= 1 pixel per side, got 0"),
    (["--tolerance", "-1"], "pointing tolerance must be >= 0 pixels, got -1.0"),
    (["--tolerance", "nan"], "pointing tolerance must be >= 0 pixels, got nan"),
    (["--runs-from", "EMPTY"], "holds no finished run"),
    (["--runs-from", "/nonexistent/sweep"], "/nonexistent/sweep"),
])
def test_user_errors_are_one_line(resnet_run, tmp_path, capsys, extra, message):
    (tmp_path / "empty").mkdir()
    unfinished = tmp_path / "empty" / "trial-0"
    _copy_run(resnet_run, unfinished)
    (unfinished / "report.json").unlink()
    extra = [str(tmp_path / "empty") if e == "EMPTY" else e for e in extra]
    code = main(["cam", "--run", str(resnet_run), "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("lmfloss cam: error:") and err.count("\n") == 1
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before any work


def test_runs_from_groups_seeds_by_loss(resnet_run, tmp_path, capsys):
    """--runs-from: three seeds of a loss and one of another (copies of one run with the
    seed and loss relabelled): one group per loss, paired tests over the shared seeds."""
    sweep = tmp_path / "sweep"
    for loss, seed in [("ce", 1), ("ce", 2), ("ce", 3), ("focal", 1), ("focal", 2), ("focal", 3)]:
        run_dir = sweep / f"{loss}-s{seed}"
        _copy_run(resnet_run, run_dir)
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        config.update(loss=loss, seed=seed)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        report = json.loads((run_dir / "report.json").read_text())
        report["loss"] = {"name": loss, "params": {}}
        (run_dir / "report.json").write_text(json.dumps(report))
    out = tmp_path / "cam"
    code = main(["cam", "--runs-from", str(sweep), "--n", "5", "--faithfulness", "none",
                 "--no-overlays", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "pointing - shuffled" in printed and "p (seeds)" in printed
    groups = {g["group"]: g for g in _read(out / "cam_groups.csv")}
    assert set(groups) == {"ce", "focal"} and groups["ce"]["seeds"] == "1 2 3"
    tests = _read(out / "cam_tests.csv")
    assert {t["metric"] for t in tests} == {"pointing_hit_rate", "energy_over_chance"}  # no faithfulness
    # The same weights under two names: every difference is 0, p = 1.
    for t in tests:
        assert (t["group_a"], t["group_b"], t["n_seeds"], t["n_images"]) == ("ce", "focal", "3", "5")
        assert float(t["delta"]) == 0.0 and float(t["p_seeds"]) == 1.0
    # One figure column per group.
    assert (out / "fig_attention.png").is_file()


def test_unknown_box_id_is_an_error(resnet_run, tmp_path, capsys):
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("id,x0,y0,x1,y1\nnot-an-image,1,1,5,5\n")
    code = main(["cam", "--run", str(resnet_run), "--boxes", str(boxes),
                 "--out", str(tmp_path / "o")])
    assert code == 2
    assert "'not-an-image'" in capsys.readouterr().err


def test_ids_keep_their_order_and_true_target(resnet_run, tmp_path, capsys):
    from lmfloss.train import load_run

    records = load_run(resnet_run).splits.records("test")
    ids = [records[5].id, records[2].id]
    out = tmp_path / "cam"
    code = main(["cam", "--run", str(resnet_run), "--ids", *ids, "--target", "true",
                 "--method", "gradcam++", "--no-overlays", "--out", str(out), "--quiet"])
    assert code == 0
    rows = _read(out / "cam_metrics.csv")
    assert [r["id"] for r in rows] == ids
    assert all(r["target_class"] == r["true_class"] for r in rows)
    assert {r["method"] for r in rows} == {"gradcam++"}
    assert not (out / "overlays").exists()


def test_cam_target_layer_without_spatial_output_is_refused(imagefolder_run, tmp_path, capsys):
    out = tmp_path / "cam"
    assert main(["cam", "--run", str(imagefolder_run), "--target-layer", "fc", "--out", str(out),
                 "--n", "2", "--no-overlays", "--quiet"]) == 2
    line = one_error_line(capsys, "cam")
    assert "'fc' has no spatial output" in line
    assert "layers with one:" in line and "conv5" in line  # shufflenet's last feature map
