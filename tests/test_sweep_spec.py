"""The sweep file: parsing, validation, grids, overrides, naming, and the presets in configs/."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from cli_helpers import one_error_line
from lmfloss.cli import main
from lmfloss.config import TrainConfig
from lmfloss.sweep import Range, load_sweep, parse_sets, parse_sweep, point_key, run_name

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# Table 6 of Sadi et al.: (alpha, beta) of the best LMF result per dataset x model.
TABLE6 = {
    ("odir5k", "efficientnet_v2_s"): (1.0, 0.6), ("odir5k", "resnet50"): (1.0, 0.5),
    ("odir5k", "densenet121"): (1.0, 1.1), ("ham10000", "efficientnet_v2_s"): (1.0, 2.0),
    ("ham10000", "resnet50"): (0.5, 1.0), ("ham10000", "densenet121"): (1.0, 1.3),
    ("isic2019", "efficientnet_v2_s"): (1.0, 0.5), ("isic2019", "resnet50"): (1.0, 0.5),
    ("isic2019", "densenet121"): (1.0, 2.0), ("covid19", "efficientnet_v2_s"): (1.0, 1.5),
    ("covid19", "resnet50"): (1.0, 1.2), ("covid19", "densenet121"): (1.0, 2.0),
}


def sweep(**changes):
    data = {"base": {"dataset": "synthetic", "epochs": 1}, "space": {"loss": ["ce", "lmf"]}}
    data.update(changes)
    return parse_sweep(data)


def test_grid_is_the_cartesian_product_in_file_order():
    spec = sweep(space={"loss": ["ce", "lmf", "focal"], "seed": [1, 2], "lr": 0.01})
    expected = [{"loss": loss, "seed": seed, "lr": 0.01}
                for loss, seed in itertools.product(["ce", "lmf", "focal"], [1, 2])]
    assert spec.grid_points() == expected
    assert spec.choices() == {"loss": ["ce", "lmf", "focal"], "seed": [1, 2], "lr": [0.01]}


def test_union_of_grids_with_a_tied_key_and_no_duplicates():
    spec = sweep(space=[
        {"loss_params.alpha": [0.5, 1.0], "loss_params.beta": {"same_as": "loss_params.alpha"}},
        {"loss_params.alpha": [1.0], "loss_params.beta": [0.5, 1.0]},
    ])
    pairs = [(p["loss_params.alpha"], p["loss_params.beta"]) for p in spec.grid_points()]
    assert pairs == [(0.5, 0.5), (1.0, 1.0), (1.0, 0.5)]  # (1, 1) once


def test_resolve_applies_params_then_matching_overrides_in_order():
    spec = sweep(
        base={"dataset": "synthetic", "loss_params": {"gamma": 2.0}},
        space={"loss": ["focal", "lmf"], "tags.setting": ["s1"]},
        overrides=[
            {"when": {"loss": "lmf"}, "set": {"loss_params.beta": 0.5, "epochs": 3}},
            {"when": {"loss": "lmf", "tags.setting": "s1"}, "set": {"loss_params.beta": 0.7}},
            {"when": {"loss": "ce"}, "set": {"epochs": 99}},
        ],
    )
    config, tags = spec.resolve({"loss": "lmf", "tags.setting": "s1"})
    assert isinstance(config, TrainConfig)
    assert config.loss == "lmf" and config.epochs == 3
    assert config.loss_params == {"gamma": 2.0, "beta": 0.7}
    assert tags == {"setting": "s1"}
    config, _ = spec.resolve({"loss": "focal", "tags.setting": "s1"})
    assert config.epochs == 100 and config.loss_params == {"gamma": 2.0}


def test_relative_data_paths_are_taken_from_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = sweep(base={"dataset": "retinamnist", "root": "../data"})
    config, _ = spec.resolve({"loss": "ce"})
    assert config.root == str(tmp_path.parent / "data")
    spec = parse_sweep({"base": {"dataset": "synthetic"}, "space": {"loss": ["lmf"]}},
                       sets=parse_sets(["base.root=/srv/medmnist", "epochs=4", "loss_params.beta=2"]))
    config, _ = spec.resolve({"loss": "ce"})
    assert (config.root, config.epochs, config.loss_params) == ("/srv/medmnist", 4, {"beta": 2})


def test_run_names_come_from_the_parameters_and_never_collide():
    assert run_name({"loss": "lmf", "seed": 1}) == "loss=lmf_seed=1"
    assert run_name({"loss_params.beta": 0.5, "loss": "logit-adjusted"}) == "beta=0.5_loss=logit-adjusted"
    # the same short name for two keys: keep the full keys
    assert run_name({"loss_params.seed": 1, "seed": 2}) == "loss_params.seed=1_seed=2"
    # floats printed with 6 digits would collide: a hash of the exact values is appended
    a, b = run_name({"lr": 0.00012345671}), run_name({"lr": 0.00012345679})
    assert a != b and a.startswith("lr=0.000123457-")
    long = run_name({f"tags.k{i}": "x" * 20 for i in range(10)})
    assert len(long) <= 120 and long != run_name({f"tags.k{i}": "x" * 20 for i in range(9)})
    assert point_key({"b": 1, "a": 2}) == point_key({"a": 2, "b": 1})


def test_ranges_parse_for_random_and_tpe():
    spec = sweep(sampler="tpe", trials=5, space={
        "lr": {"low": 1e-5, "high": 1e-2, "log": True},
        "epochs": {"low": 1, "high": 9, "step": 2},
        "loss": {"choices": ["ce", "lmf"]},
    })
    space = spec.subspaces[0]
    assert space["lr"] == Range(1e-5, 1e-2, log=True)
    assert space["epochs"] == Range(1, 9, step=2.0, integer=True)
    assert space["loss"] == ["ce", "lmf"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sampler": "bayes"}, r"sampler must be one of \['grid', 'random', 'tpe'\], got 'bayes'"),
        ({"trails": 3}, r"unknown key\(s\) \['trails'\]"),
        ({"space": {"lossy": ["ce"]}}, r"unknown key 'lossy'; expected a TrainConfig field"),
        ({"space": {"loss": []}}, r"key 'loss': empty list"),
        ({"space": {"loss": [["ce"]]}}, r"values must be str, int, float, bool or null, got \['ce'\]"),
        ({"space": {"lr": {"low": 1, "high": 0.1}}}, r"need low < high, got low=1.0, high=0.1"),
        ({"space": {"lr": {"low": 0, "high": 1, "log": True}}}, r"a log range needs low > 0, got 0.0"),
        ({"space": {"lr": {"low": 0.1, "high": 1}}}, r"the grid sampler needs a list of values for \['lr'\]"),
        ({"sampler": "random", "space": {"loss": ["ce"]}}, r"sampler 'random' needs a trial budget"),
        ({"trials": 0}, r"trials must be a positive integer, got 0"),
        ({"space": {"loss_params.beta": {"same_as": "loss_params.alpha"}}},
         r"same_as 'loss_params.alpha' must name a key with a list of values"),
        ({"base": {"epoch": 3}}, r"unknown config key\(s\) \['epoch'\]"),
        ({"overrides": [{"when": {"loss": "lmf"}}]}, r"expected a mapping with 'when' and 'set'"),
        ({"launcher": {"nproc_per_node": 0}}, r"nproc_per_node must be a positive integer, got 0"),
        ({"space": None}, r"'space' is missing"),
    ],
)
def test_invalid_sweeps_name_the_value_received(changes, message):
    with pytest.raises(ValueError, match=message):
        sweep(**changes)


def test_bad_set_and_missing_file():
    with pytest.raises(ValueError, match=r"--set expects KEY=VALUE, got 'epochs'"):
        parse_sets(["epochs"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_sweep("/nonexistent/sweep.yaml")


def test_base_may_be_a_training_config_file(tmp_path):
    (tmp_path / "train.yaml").write_text("dataset: synthetic\nepochs: 2\nimage_size: 32\n")
    (tmp_path / "sweep.yaml").write_text("base: train.yaml\nspace: {seed: [1, 2]}\n")
    spec = load_sweep(tmp_path / "sweep.yaml")
    config, _ = spec.resolve(spec.grid_points()[1])
    assert (config.epochs, config.image_size, config.seed) == (2, 32, 2)
    assert spec.name == "sweep"


# ---- the presets ----------------------------------------------------------------------
def _valid_names(spec):
    from lmfloss.data.adapters import get_adapter
    from lmfloss.losses import LOSSES
    from lmfloss.models import list_models

    models = set(list_models())
    for point in spec.grid_points():
        config, _ = spec.resolve(point)
        assert config.loss in LOSSES
        assert config.model in models
        get_adapter(config.dataset)  # raises for an unknown dataset


def test_paper_grid_preset_follows_the_paper_and_table6():
    spec = load_sweep(CONFIGS / "paper-grid.yaml")
    points = spec.grid_points()
    assert len(points) == 4 * 3 * 5
    _valid_names(spec)
    seen = set()
    for point in points:
        config, _ = spec.resolve(point)
        assert (config.epochs, config.batch_size, config.lr, config.weight_decay) == (100, 32, 1e-4, 5e-4)
        assert (config.lr_step, config.lr_gamma, config.image_size, config.weights) == (30, 0.1, 224, "imagenet")
        assert config.root.endswith(config.dataset)
        if config.loss == "lmf":
            alpha, beta = TABLE6[(config.dataset, config.model)]
            assert config.loss_params == {"alpha": alpha, "beta": beta}
            seen.add((config.dataset, config.model))
        else:
            assert config.loss_params == {}
    assert seen == set(TABLE6)
    assert {p["loss"] for p in points} == {"ce", "focal", "ldam", "bwcce", "lmf"}


def test_paper_hparams_preset_has_three_settings_of_eleven_values():
    spec = load_sweep(CONFIGS / "paper-hparams.yaml")
    points = spec.grid_points()
    assert len(points) == 33
    _valid_names(spec)
    table6_values = {v for pair in TABLE6.values() for v in pair}
    by_setting: dict[str, list[tuple[float, float]]] = {}
    for point in points:
        config, tags = spec.resolve(point)
        assert (config.dataset, config.model, config.loss, config.epochs) == ("ham10000", "efficientnet_v2_s", "lmf", 60)
        by_setting.setdefault(tags["setting"], []).append((config.loss_params["alpha"], config.loss_params["beta"]))
    assert sorted(by_setting) == ["setting-1", "setting-2", "setting-3"]
    varied = {
        "setting-1": [a for a, b in by_setting["setting-1"] if a == b],
        "setting-2": [b for a, b in by_setting["setting-2"] if a == 1.0],
        "setting-3": [a for a, b in by_setting["setting-3"] if b == 1.0],
    }
    for values in varied.values():
        assert len(set(values)) == 11 and min(values) == 0.5 and max(values) == 2.0
        assert table6_values <= set(values)
    assert len({run_name(p) for p in points}) == 33


def test_medmnist_cpu_preset_covers_every_loss_seed_and_dataset():
    from lmfloss.losses import LOSSES

    spec = load_sweep(CONFIGS / "medmnist-cpu.yaml")
    points = spec.grid_points()
    assert len(points) == 8 * 3 * 2
    _valid_names(spec)
    assert {p["loss"] for p in points} == set(LOSSES)
    assert {p["dataset"] for p in points} == {"retinamnist", "breastmnist"}
    assert {p["seed"] for p in points} == {1, 2, 3}
    config, _ = spec.resolve(points[0])
    assert (config.image_size, config.model, config.weights) == (28, "resnet18", "none")


def test_demo_sweep_preset_is_four_small_trials():
    spec = load_sweep(CONFIGS / "demo-sweep.yaml")
    points = spec.grid_points()
    assert sorted((p["loss"], p["seed"]) for p in points) == [("ce", 1), ("ce", 2), ("lmf", 1), ("lmf", 2)]
    config, _ = spec.resolve(points[0])
    assert config.dataset == "synthetic" and config.epochs == 1 and config.weights == "none"
    assert config.image_size <= 32


def test_only_selects_grid_points_and_keeps_the_study():
    import dataclasses

    from lmfloss.sweep.parse import parse_only

    spec = parse_sweep({"base": {"dataset": "synthetic"}, "space": [
        {"loss": ["ce", "lmf"], "seed": [1, 2]},
        {"loss": ["lmf"], "loss_params.drw_epoch": [5], "seed": [1, 2]}]})
    only = dataclasses.replace(spec, only=parse_only(["loss=lmf", "loss_params.drw_epoch=null"]))
    assert [p["seed"] for p in only.wanted_points()] == [1, 2]
    assert all("loss_params.drw_epoch" not in p for p in only.wanted_points())
    drw = dataclasses.replace(spec, only=parse_only(["loss_params.drw_epoch=5"]))
    assert len(drw.wanted_points()) == 2
    assert only.fingerprint() == spec.fingerprint()  # the same study
    with pytest.raises(ValueError, match="--only expects KEY=V1,V2"):
        parse_only(["loss"])
    with pytest.raises(ValueError, match="unknown key 'los'"):
        parse_only(["los=ce"])


@pytest.mark.parametrize(("space", "extra", "culprit"), [
    ({"loss": ["ce", "lfm"]}, {}, "lfm"),
    ({"loss": ["lmf"], "loss_params.betta": [1.0, 2.0]}, {}, "betta"),
    ({"loss": ["ce", "lmf"]}, {"trials": 3}, "trials"),
], ids=["loss-typo", "loss-param-typo", "grid-with-trials"])
def test_sweep_dry_run_refuses_typos(tmp_path, capsys, space, extra, culprit):
    base = yaml.safe_load((Path(__file__).parents[1] / "configs" / "demo-sweep.yaml").read_text())["base"]
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "typo", "sampler": "grid", "base": base, "space": space, **extra}))
    assert main(["sweep", "--config", str(sweep), "--dry-run", "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys, "sweep")
    assert repr(culprit) in line or f"{culprit}:" in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_in_configs_parses_and_each_grid_point_is_a_valid_config(path):
    from lmfloss.config import build_config, check_config

    raw = yaml.safe_load(path.read_text())
    if "space" not in raw:  # a training config
        check_config(build_config(path))
        return
    spec = load_sweep(path)
    if spec.sampler == "grid":
        for point in spec.grid_points():
            check_config(spec.resolve(point)[0])


@pytest.mark.parametrize("name", ["multilabel-odir.yaml", "multilabel-synthetic.yaml", "ablation-odir.yaml"])
def test_multilabel_presets_train_with_the_recipe(name):
    """The recipe that matches the plain script (benchmarks/results/odir-recipe.md): plain BCE,
    20 epochs with x0.1 after 10 and 15, batch 64, Adam 1e-3 without weight decay, flips."""
    spec = load_sweep(CONFIGS / name)
    recipe = {"epochs": 20, "lr_milestones": [10, 15], "batch_size": 64, "lr": 1e-3, "weight_decay": 0.0,
              "select_metric": "map"}
    base, _ = spec.resolve({})
    assert {k: getattr(base, k) for k in recipe} == recipe
    assert base.augment == ("hflip" if name == "multilabel-synthetic.yaml" else "flip")
    bce = [spec.resolve(p)[0] for p in spec.grid_points() if p.get("loss", base.loss) == "bce"]
    assert bce and any(c.loss_params == {"pos_weight": None} for c in bce)
    assert base.refit is (name != "ablation-odir.yaml")  # the ablation's reference is the selection run
