"""The benchmark scripts group runs as ``lmfloss report`` does (its grid and experiments).

No run folders are committed, so the scripts' grouping functions run on crafted run
directories: a copy of a run in a second sweep folder counts once, a configuration the
report does not choose (worse on validation) stays out, a second stem is its own row.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from lmfloss.report import find_runs
from lmfloss.report.aggregate import build_grid, experiments
from report_helpers import LABELS, make_multilabel_run, make_run, noisy_preds

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _eval(run: Path, checkpoint: str, **payload) -> None:
    (run / f"eval-test-{checkpoint}.json").write_text(
        json.dumps({"split": "test", "checkpoint": checkpoint, **payload}))


@pytest.fixture()
def runs(tmp_path: Path) -> dict[str, Path]:
    """RetinaMNIST x resnet18: CE and LMF (beta 1, chosen on val) x 3 seeds, every run with a
    last-epoch evaluation and a calibration; LMF beta 2 x 3 seeds (worse on val); a copy of CE
    seed 1 in a second sweep folder; an unfinished CE seed. Beside ``runs``, in ``small``: CE with
    the small stem x 2 seeds (the parity check's second sweep)."""
    root = tmp_path / "runs"
    out = {}
    rng = np.random.default_rng(3)
    for loss, params, val in (("ce", {}, 0.5), ("lmf", {"beta": 1.0}, 0.7), ("lmf", {"beta": 2.0}, 0.6)):
        for seed in (1, 2, 3):
            run = make_run(root / "sweep", dataset="retinamnist", model="resnet18", loss=loss, seed=seed,
                           loss_params=params, val_f1=val, preds=noisy_preds(LABELS, 0.1 * seed, seed + len(loss)))
            report = json.loads((run / "report.json").read_text())
            report["best_epoch"] = seed + 10 * len(loss)
            report["test"]["auc_macro_ovr"] = 0.6 + 0.01 * seed
            (run / "report.json").write_text(json.dumps(report))
            _eval(run, "last", epoch=20, accuracy=float(rng.random()), auc_macro_ovr=float(rng.random()),
                  f1_macro=float(rng.random()))
            _eval(run, "best", epoch=seed, calibration={
                k: float(rng.random()) for k in ("temperature", "ece_before", "ece_after", "nll_before", "nll_after")})
            out[f"{loss}{params.get('beta', '')}-s{seed}"] = run
    copy = root / "sweep-again" / out["ce-s1"].name
    shutil.copytree(out["ce-s1"], copy)
    out["copy"] = copy
    for seed in (1, 2):
        run = make_run(tmp_path / "small", dataset="retinamnist", model="resnet18", loss="ce", seed=seed,
                       name=f"small-s{seed}")
        config = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**config, "stem": "small"}, sort_keys=False))
        report = json.loads((run / "report.json").read_text())
        report["test"]["auc_macro_ovr"] = 0.7
        (run / "report.json").write_text(json.dumps(report))
        out[f"small-s{seed}"] = run
    make_run(root / "sweep", dataset="retinamnist", model="resnet18", loss="ce", seed=4, finished=False)
    return out


def _calibration(run: Path) -> list[float]:
    block = json.loads((run / "eval-test-best.json").read_text())["calibration"]
    return [block[k] for k in ("temperature", "ece_before", "ece_after", "nll_before", "nll_after")]


def _root(runs: dict[str, Path]) -> Path:
    return runs["ce-s1"].parents[1]


def test_calibration_table_averages_the_reports_cells(runs):
    found = find_runs([_root(runs)])
    cells = _script("calibration_table").calibration_cells(found)
    assert set(cells) == {("retinamnist", "ce"), ("retinamnist", "lmf")}
    # CE: three seeds, seed 1 and its copy counted once; LMF: the beta chosen on validation only.
    assert cells[("retinamnist", "ce")] == [_calibration(runs[f"ce-s{s}"]) for s in (1, 2, 3)]
    assert cells[("retinamnist", "lmf")] == [_calibration(runs[f"lmf1.0-s{s}"]) for s in (1, 2, 3)]
    grid = build_grid(found)
    assert [r.run_dir for r in grid.cell("retinamnist", "resnet18", "lmf").runs] == [
        runs[f"lmf1.0-s{s}"].resolve() for s in (1, 2, 3)]


def test_epochs_table_pairs_the_reports_runs_by_seed(runs):
    cells = _script("medmnist_v2_epochs").epoch_cells(find_runs([_root(runs)]))
    assert set(cells) == {("retinamnist", "ce"), ("retinamnist", "lmf")}
    for method, key in (("ce", "ce"), ("lmf", "lmf1.0")):
        expected = {}
        for seed in (1, 2, 3):
            report = json.loads((runs[f"{key}-s{seed}"] / "report.json").read_text())
            last = json.loads((runs[f"{key}-s{seed}"] / "eval-test-last.json").read_text())
            expected[seed] = (report["best_epoch"], 100 * report["test"]["f1_macro"], 100 * last["f1_macro"])
        assert cells[("retinamnist", method)] == expected


def test_parity_table_keeps_stems_apart_and_counts_a_seed_once(runs):
    found = find_runs([_root(runs), runs["small-s1"].parent])
    cells = _script("medmnist_v2_parity").parity_cells(found, "ce")
    assert {key: [r.seed for r in v] for key, v in cells.items()} == {
        ("retinamnist", "imagenet"): [1, 2, 3], ("retinamnist", "small"): [1, 2]}
    seed1 = {r.run_dir for r in cells[("retinamnist", "imagenet")]} & {runs["copy"].resolve(), runs["ce-s1"].resolve()}
    assert len(seed1) == 1  # a run and its copy: one vote
    assert {r.run_dir for r in cells[("retinamnist", "small")]} == {runs[f"small-s{s}"].resolve() for s in (1, 2)}
    # Those are the report's experiments: the same runs, one cell per config but the seed.
    ce = [c for c in experiments(found) if c.loss == "ce"]
    assert [c.varied for c in ce] == [{"stem": "imagenet"}, {"stem": "small"}]
    assert [len(c.unfinished) for c in ce] == [1, 0]


def test_scripts_print_their_tables(runs, monkeypatch, capsys):
    roots = [str(_root(runs)), str(runs["small-s1"].parent)]
    for name, line, folders in (("calibration_table", "| retinamnist | lmf | 3 |", roots[:1]),
                                ("medmnist_v2_epochs", "| retinamnist | ce | 3 | 21, 22, 23 |", roots[:1]),
                                ("medmnist_v2_parity", "| retinamnist | small | 2 |", roots)):
        monkeypatch.setattr(sys, "argv", [name, *folders])
        _script(name).main()
        assert line in capsys.readouterr().out


def test_tuned_results_prints_the_reports_numbers(tmp_path, monkeypatch, capsys):
    from lmfloss.report import build_report

    root = tmp_path / "runs"
    record = {"study": "tune-x", "trials_per_space": 8, "sampler": "random", "seed": 1,
              "spaces": [{"label": loss, "complete": 8, "failed": 0, "searched": {"lr": "float in [0.0001, 0.003]"},
                          "chosen": {"trial": k, "params": {"loss": loss, "lr": 0.001}, "val_metric": "f1_macro",
                                     "val_score": 0.5 + k / 10}}
                         for k, loss in enumerate(("ce", "lmf"))]}
    for loss, err, val in (("ce", 0.35, 0.60), ("lmf", 0.15, 0.55)):
        for seed in (1, 2, 3):
            run = make_run(root, loss=loss, seed=seed, preds=noisy_preds(LABELS, err, seed + 7 * len(loss)),
                           val_f1=val + seed / 100)
            (run / "sweep.json").write_text(json.dumps({"study": "c", "trial": seed, "params": {}, "tuning": record}))
            report = json.loads((run / "report.json").read_text())
            report["test"]["auc_macro_ovr"] = 0.6 + (0.1 + seed / 50 if loss == "lmf" else 0) + seed * seed / 100
            (run / "report.json").write_text(json.dumps(report))
    build_report([root], tmp_path / "report", n_boot=20, figures=False)
    monkeypatch.setattr(sys, "argv", ["tuned_results", "--report", str(tmp_path / "report")])
    _script("tuned_results").main()
    out = capsys.readouterr().out
    lmf = [100 * json.loads((r / "report.json").read_text())["test"]["f1_macro"]
           for r in sorted(root.glob("*lmf*"))]
    lmf_row = next(line for line in out.splitlines() if line.startswith("| LMF |"))
    assert f"**{np.mean(lmf):.2f} ± {np.std(lmf, ddof=1):.2f}** (3)" in lmf_row
    assert "lr=0.001 (8)" in lmf_row and "| 60.00 |" in lmf_row  # chosen in tuning, its validation score
    ce_row = next(line for line in out.splitlines() if line.startswith("| CE (best on val) |"))
    paired = next(r for r in csv.DictReader((tmp_path / "report" / "paired_tests.csv").open()) if r["baseline"] == "ce")
    # in points, like the table's other columns (paired_tests.csv holds fractions)
    assert "Trained by lmfloss at: not recorded (6 runs)." in out  # make_run writes no software record
    # the threshold-free view, outside the Holm family: LMF - CE in macro AUC (one-vs-rest), paired by seed
    from scipy import stats

    auc = {(r["loss"], r["seed"]): 100 * float(r["auc_macro_ovr"])
           for r in csv.DictReader((tmp_path / "report" / "results.csv").open())}
    deltas = [auc[("lmf", s)] - auc[("ce", s)] for s in ("1", "2", "3")]
    auc_row = next(line for line in out.splitlines() if line.startswith("| CE |"))
    assert auc_row.endswith(f"| {np.mean(deltas):+.2f} | {stats.ttest_1samp(deltas, 0).pvalue:.3f} |")
    assert "outside the report's Holm family: exploratory, uncorrected" in out
    assert f"| {100 * float(paired['delta_f1_seeds']):+.2f} [{100 * float(paired['ci95_t_lo']):+.2f}, " in ce_row and f"| {float(paired['p_seeds_holm']):.3f} |" in ce_row


def test_tuned_results_reads_a_multilabel_report(tmp_path, monkeypatch, capsys):
    # ODIR-5K's comparison: the report keeps mAP and macro AUC tests in paired_tests_multilabel.csv
    # (one family); paired_tests.csv and summary.csv have no multi-label rows
    from lmfloss.report import build_report

    root = tmp_path / "runs"
    for loss, skill in (("bce", 1.0), ("lmf", 1.2), ("asl", 0.9)):
        for seed in (2, 3, 4):
            make_multilabel_run(root, dataset="odir5k", loss=loss, seed=seed, skill=skill)
    build_report([root], tmp_path / "report", n_boot=20, figures=False)
    monkeypatch.setattr(sys, "argv", ["tuned_results", "--report", str(tmp_path / "report")])
    _script("tuned_results").main()
    out = capsys.readouterr().out
    tests = {(r["metric"], r["baseline"]): r
             for r in csv.DictReader((tmp_path / "report" / "paired_tests_multilabel.csv").open())}
    best = next(r["baseline"] for r in csv.DictReader((tmp_path / "report" / "summary_multilabel.csv").open())
                if r["metric"] == "map" and r["best_on_val"] == "True")
    for loss, name in (("bce", "BCE"), ("asl", "ASL")):
        row = next(line for line in out.splitlines() if line.startswith(f"| {name} ") and "±" in line and "[" in line)
        pair = tests[("map", loss)]
        assert f"| {100 * float(pair['delta_seeds']):+.2f} [{100 * float(pair['ci95_t_lo']):+.2f}, " in row
        assert row.endswith(f"| {float(pair['p_seeds_holm']):.3f} |") and ("(best on val)" in row) == (loss == best)
        auc = next(line for line in out.splitlines() if line.startswith(f"| {name} |") and "[" not in line)
        assert auc.endswith(f"| {100 * float(tests[('auc_macro', loss)]['delta_seeds']):+.2f} | "
                            f"{float(tests[('auc_macro', loss)]['p_seeds_t']):.3f} | "
                            f"{float(tests[('auc_macro', loss)]['p_seeds_holm']):.3f} |")
    assert "over the 4 LMF-vs-baseline comparisons of this report (mAP and macro AUC)" in out


def test_tuned_results_on_a_multilabel_report_before_any_pair_finished(tmp_path, monkeypatch, capsys):
    # mid-confirmation: LMF and BCE have each finished one run, with different seeds, so the report
    # holds no paired test yet; the AUC table must not fall back to the multi-class t-test
    from lmfloss.report import build_report

    root = tmp_path / "runs"
    make_multilabel_run(root, dataset="odir5k", loss="lmf", seed=2, skill=1.2)
    make_multilabel_run(root, dataset="odir5k", loss="bce", seed=4, skill=1.0)
    build_report([root], tmp_path / "report", n_boot=20, figures=False)
    monkeypatch.setattr(sys, "argv", ["tuned_results", "--report", str(tmp_path / "report")])
    _script("tuned_results").main()
    out = capsys.readouterr().out
    assert "validation mAP): none yet (no paired test); validation means: BCE" in out
    assert "the report's paired tests (in its Holm family)" in out and "exploratory" not in out
    assert next(line for line in out.splitlines() if line.startswith("| BCE |")).endswith("| — | — | — |")
