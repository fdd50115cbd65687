"""Grouping runs by experiment, spread over seeds and paired tests between losses (no torch)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from lmfloss.cam.compare import group_summary, paired_tests
from lmfloss.cam.groups import describe_runs, finished_runs
from lmfloss.errors import LmflossError
from report_helpers import make_run


def _set(run_dir: Path, **changes) -> None:
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config.update(changes)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_seeds_of_a_loss_form_one_group(tmp_path):
    dirs = [make_run(tmp_path, loss=loss, seed=seed, name=f"{loss}-s{seed}")
            for loss in ("ce", "lmf") for seed in (1, 2, 3)]
    runs = describe_runs(dirs)
    assert [(r.label, r.group, r.seed) for r in runs] == [
        (f"{loss}-s{seed}", loss, seed) for loss in ("ce", "lmf") for seed in (1, 2, 3)]
    assert {r.dataset for r in runs} == {"ham10000"}


def test_groups_sharing_a_method_are_told_apart(tmp_path):
    a = make_run(tmp_path, loss="lmf", loss_params={"alpha": 1.0, "beta": 1.0}, name="a")
    b = make_run(tmp_path, loss="lmf", loss_params={"alpha": 0.5, "beta": 1.0}, name="b")
    c = make_run(tmp_path, loss="lmf", loss_params={"alpha": 0.5, "beta": 1.0}, seed=7, name="c")
    groups = [r.group for r in describe_runs([a, b, c])]
    assert groups == ["lmf (alpha=1.0)", "lmf (alpha=0.5)", "lmf (alpha=0.5)"]


def test_runs_of_different_datasets_or_sizes_are_refused(tmp_path):
    ham = make_run(tmp_path, dataset="ham10000", name="ham")
    derma = make_run(tmp_path, dataset="dermamnist", name="derma")
    with pytest.raises(ValueError, match=r"different datasets compared together \('ham' on ham10000, 'derma' on dermamnist\)"):
        describe_runs([ham, derma])
    small = make_run(tmp_path, name="small")
    _set(small, image_size=64)
    with pytest.raises(ValueError, match=r"different image sizes compared together \('ham' at 224 px, 'small' at 64 px\)"):
        describe_runs([ham, small])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        describe_runs([tmp_path / "nope"])
    with pytest.raises(ValueError, match="at least one run directory"):
        describe_runs([])


def test_finished_runs_only(tmp_path):
    sweep = tmp_path / "sweep"
    done = make_run(sweep, seed=1, name="s1")
    make_run(sweep, seed=2, name="s2", finished=False)
    assert finished_runs(sweep) == [done.resolve()]
    empty = tmp_path / "empty"
    make_run(empty, name="s3", finished=False)
    with pytest.raises(LmflossError, match=r"holds no finished run \(1 unfinished"):
        finished_runs(empty)


def test_runs_from_reads_each_run_once(tmp_path, monkeypatch):
    """``lmfloss cam --runs-from`` reads every config.yaml and report.json once (find_runs),
    and groups those runs; a --run directory given beside them is read once too."""
    import lmfloss.report.runs as report_runs
    from lmfloss import rundir

    sweep = tmp_path / "sweep"
    done = [make_run(sweep, loss=loss, seed=seed, name=f"{loss}-s{seed}") for loss in ("ce", "lmf") for seed in (1, 2)]
    make_run(sweep, seed=3, name="ce-s3", finished=False)
    extra = make_run(tmp_path / "other", loss="focal", seed=1, name="focal-s1")
    reads: dict[str, list[Path]] = {"config": [], "report": []}
    real_config, real_report = rundir.read_config_dict, rundir.read_report

    def config(run_dir):
        reads["config"].append(Path(run_dir).resolve())
        return real_config(run_dir)

    def report(run_dir):
        reads["report"].append(Path(run_dir).resolve())
        return real_report(run_dir)

    monkeypatch.setattr(report_runs.rundir, "read_config_dict", config)
    monkeypatch.setattr(report_runs.rundir, "read_report", report)
    runs = describe_runs([extra], runs_from=[sweep])
    assert [r.label for r in runs] == ["focal-s1", "ce-s1", "ce-s2", "lmf-s1", "lmf-s2"]
    assert [r.group for r in runs] == ["focal", "ce", "ce", "lmf", "lmf"]
    every = sorted(p.resolve() for p in [*done, extra, sweep / "ce-s3"])
    assert sorted(reads["config"]) == every and sorted(reads["report"]) == every  # once each
    with pytest.raises(LmflossError, match="holds no finished run"):
        describe_runs([], runs_from=[_unfinished(tmp_path)])


def _unfinished(tmp_path: Path) -> Path:
    folder = tmp_path / "unfinished"
    make_run(folder, name="u", finished=False)
    return folder


# ---- spread and paired tests ----------------------------------------------------------------
def _rows(group: str, seed: int, hits: np.ndarray, road: np.ndarray) -> list[dict]:
    return [{"run": f"{group}-s{seed}", "group": group, "seed": seed, "target": "pred", "id": f"i{k}",
             "pointing_hit": float(h), "energy_in_box": 0.1 + 0.2 * float(h), "box_area_fraction": 0.1,
             "road": float(r), "conf_drop": math.nan}
            for k, (h, r) in enumerate(zip(hits, road))]


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(0)
    out = []
    for seed in (1, 2, 3, 4):
        for group, p in (("lmf", 0.6), ("ce", 0.4)):
            out += _rows(group, seed, rng.random(50) < p, rng.normal(0.1 if group == "lmf" else 0.0, 0.1, 50))
    out += _rows("focal", 9, rng.random(50) < 0.5, rng.normal(0, 0.1, 50))  # no seed in common
    return out


def test_paired_tests_match_scipy(rows):
    tests = paired_tests(rows)
    assert {t["metric"] for t in tests} == {"pointing_hit_rate", "energy_over_chance", "road"}
    assert {(t["group_a"], t["group_b"]) for t in tests} == {("lmf", "ce")}  # focal shares no seed
    hit = next(t for t in tests if t["metric"] == "pointing_hit_rate")
    by = {(r["group"], r["seed"], r["id"]): r["pointing_hit"] for r in rows}
    ids = [f"i{k}" for k in range(50)]
    lmf = np.array([[by[("lmf", s, i)] for i in ids] for s in (1, 2, 3, 4)])
    ce = np.array([[by[("ce", s, i)] for i in ids] for s in (1, 2, 3, 4)])
    over_seeds = stats.ttest_rel(lmf.mean(1), ce.mean(1))
    over_images = stats.ttest_rel(lmf.mean(0), ce.mean(0))
    assert hit["n_seeds"] == 4 and hit["seeds"] == "1 2 3 4" and hit["n_images"] == 50
    assert hit["delta"] == pytest.approx((lmf - ce).mean())
    assert hit["p_seeds"] == pytest.approx(over_seeds.pvalue)
    assert hit["p_images"] == pytest.approx(over_images.pvalue)
    half = stats.t.ppf(0.975, 3) * (lmf.mean(1) - ce.mean(1)).std(ddof=1) / 2
    assert (hit["ci95_low"], hit["ci95_high"]) == pytest.approx((hit["delta"] - half, hit["delta"] + half))
    # energy/chance per image is energy / mean chance: the seed means are the summary's ratio.
    energy = next(t for t in tests if t["metric"] == "energy_over_chance")
    assert energy["delta"] == pytest.approx(hit["delta"] * 0.2 / 0.1)
    # Holm over the three tests of the file.
    ps = sorted(t["p_seeds"] for t in tests)
    assert min(t["p_seeds_holm"] for t in tests) == pytest.approx(min(1.0, 3 * ps[0]))


def test_fewer_than_three_seeds_give_no_p(rows):
    two = [r for r in rows if r["seed"] in (1, 2)]
    (hit,) = [t for t in paired_tests(two) if t["metric"] == "pointing_hit_rate"]
    assert hit["n_seeds"] == 2 and hit["p_seeds"] is None and math.isnan(hit["ci95_low"])
    assert hit["p_images"] is not None  # images still pair up


def test_faithfulness_falls_back_to_the_confidence_drop(rows):
    drop = [{**r, "road": math.nan, "conf_drop": r["road"]} for r in rows]
    assert {t["metric"] for t in paired_tests(drop)} == {"pointing_hit_rate", "energy_over_chance", "conf_drop"}


def test_group_summary_mean_and_sd_over_runs():
    def summary(group, seed, hit):
        return {"group": group, "seed": seed, "target": "pred", "class": "all", "layer": "layer2.1",
                "map_size": "8x8", "accuracy": 0.5, "pointing_hit_rate": hit,
                "pointing_minus_shuffled": hit - 0.3, "energy_over_chance": 2.0, "energy_minus_shuffled": 0.1,
                "road": math.nan, "road_minus_random": math.nan, "conf_drop": 0.2,
                "conf_drop_minus_random": 0.1}

    rows = [summary("lmf", 1, 0.5), summary("lmf", 2, 0.7), summary("lmf", 3, 0.6), summary("ce", 1, 0.4),
            {**summary("lmf", 1, 0.0), "class": "nevus"}]
    out = {g["group"]: g for g in group_summary(rows)}
    assert out["lmf"]["n_runs"] == 3 and out["lmf"]["seeds"] == "1 2 3"
    assert out["lmf"]["pointing_hit_rate_mean"] == pytest.approx(0.6)
    assert out["lmf"]["pointing_hit_rate_std"] == pytest.approx(0.1)
    assert math.isnan(out["lmf"]["road_mean"])  # not computed
    assert out["ce"]["n_runs"] == 1 and math.isnan(out["ce"]["pointing_hit_rate_std"])
    assert (out["ce"]["layer"], out["ce"]["map_size"]) == ("layer2.1", "8x8")
