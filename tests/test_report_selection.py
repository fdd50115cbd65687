"""Issue 10: every choice on validation, seed-level statistics that hold with 3-5 seeds."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from lmfloss.report import build_report
from lmfloss.report.stats import holm, seed_t_test
from report_helpers import LABELS, make_run, noisy_preds


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_seed_t_test_matches_scipy_paired_t_test():
    a = np.array([0.61, 0.58, 0.66, 0.63, 0.60])
    b = np.array([0.57, 0.59, 0.60, 0.58, 0.55])
    result = seed_t_test(a - b)
    reference = stats.ttest_rel(a, b)
    assert result.p == pytest.approx(reference.pvalue, rel=1e-12)
    lo, hi = result.ci95
    ci = reference.confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert result.mean == pytest.approx(float(np.mean(a - b)))


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_than_three_seeds_give_no_seed_p(n):
    result = seed_t_test([0.05, 0.02][:n])
    assert result.p is None and result.ci95 is None and result.n == n


def test_holm_against_a_hand_computed_family():
    # sorted p: 0.01, 0.02, 0.03, 0.20 (m = 4) -> 0.04, 0.06, 0.06 (monotone), 0.20
    assert holm([0.03, None, 0.01, 0.20, 0.02]) == pytest.approx([0.06, None, 0.04, 0.20, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == [] and holm([None]) == [None]


def _grid(root: Path, *, val_f1: dict[str, float], noise: dict[str, float], seeds=(1, 2, 3)) -> None:
    for loss, rate in noise.items():
        for seed in seeds:
            make_run(root, loss=loss, seed=seed, preds=noisy_preds(LABELS, rate, seed + 10 * len(loss)),
                     val_f1=val_f1[loss])


def test_summary_picks_the_best_baseline_on_validation_not_test(tmp_path):
    # focal has the best *test* F1 (5% noise) but the worst validation F1; CE is best on validation.
    _grid(tmp_path / "runs", val_f1={"ce": 0.9, "focal": 0.2, "bwcce": 0.5, "lmf": 0.7},
          noise={"ce": 0.30, "focal": 0.05, "bwcce": 0.35, "lmf": 0.20})
    build_report([tmp_path / "runs"], tmp_path / "out", n_boot=50, figures=False)
    rows = _rows(tmp_path / "out" / "summary.csv")
    assert {r["baseline"] for r in rows} == {"ce", "focal", "bwcce"}
    best = [r for r in rows if r["best_on_val"] == "True"]
    assert len(best) == 1 and best[0]["baseline"] == "ce" and best[0]["selected_on"] == "val"
    by_test = max(rows, key=lambda r: float(r["baseline_f1"]))
    assert by_test["baseline"] == "focal" and by_test["best_on_val"] == "False"
    md = (tmp_path / "out" / "report.md").read_text()
    summary = md.split("## Summary")[1].split("##")[0]
    assert "CCE" in summary and "Focal" not in summary


def test_summary_csv_seed_statistics_and_holm_family(tmp_path):
    _grid(tmp_path / "runs", val_f1={"ce": 0.6, "focal": 0.5, "lmf": 0.7},
          noise={"ce": 0.30, "focal": 0.25, "lmf": 0.15}, seeds=(1, 2, 3, 4))
    result = build_report([tmp_path / "runs"], tmp_path / "out", n_boot=50, figures=False)
    rows = {r["baseline"]: r for r in _rows(tmp_path / "out" / "summary.csv")}
    assert set(rows) == {"ce", "focal"}
    runs = {(r.loss, r.seed): r for r in result.runs}
    p_values = []
    for baseline, row in rows.items():
        deltas = [runs[("lmf", s)].test("f1_macro") - runs[(baseline, s)].test("f1_macro") for s in (1, 2, 3, 4)]
        assert float(row["delta_f1"]) == pytest.approx(100 * np.mean(deltas), abs=1e-3)
        assert float(row["p_seeds"]) == pytest.approx(stats.ttest_1samp(deltas, 0.0).pvalue, rel=1e-9)
        assert int(row["n_seeds"]) == 4 and float(row["delta_ci_low"]) < float(row["delta_f1"]) < float(row["delta_ci_high"])
        p_values.append(float(row["p_seeds"]))
    # The family is the report's two comparisons.
    expected = holm(p_values)
    assert [float(rows[b]["p_seeds_holm"]) for b in rows] == pytest.approx(expected)
    assert list(_rows(tmp_path / "out" / "summary.csv")[0]) == [
        "dataset", "model", "baseline", "best_on_val", "selected_on", "n_seeds", "lmf_f1", "baseline_f1",
        "delta_f1", "delta_ci_low", "delta_ci_high", "p_seeds", "p_seeds_holm", "p_images"]


def test_tuning_budget_is_said_in_the_summary(tmp_path):
    root = tmp_path / "runs"
    for seed in (1, 2, 3):
        make_run(root, loss="ce", seed=seed, val_f1=0.5)
        for beta in (0.5, 2.0):
            make_run(root, loss="lmf", seed=seed, loss_params={"beta": beta}, val_f1=0.6 if beta == 2.0 else 0.4)
    build_report([root], tmp_path / "out", n_boot=50, figures=False)
    md = (tmp_path / "out" / "report.md").read_text()
    summary = md.split("## Summary")[1].split("##")[0]
    assert "2/1 (LMF tuned more on val)" in summary


def test_lmf_drw_is_lmf_not_a_baseline(tmp_path):
    """LMF-DRW is the proposed loss with deferred re-weighting: never "the best baseline" LMF is
    compared with, and not in the LMF-vs-baseline family. LDAM-DRW is a published baseline."""
    root = tmp_path / "runs"
    for seed in (1, 2, 3):
        make_run(root, loss="ce", seed=seed, preds=noisy_preds(LABELS, 0.3, seed), val_f1=0.5)
        make_run(root, loss="ldam", seed=seed, loss_params={"drw_epoch": 5}, preds=noisy_preds(LABELS, 0.25, seed),
                 val_f1=0.6)
        make_run(root, loss="lmf", seed=seed, preds=noisy_preds(LABELS, 0.2, seed), val_f1=0.7)
        make_run(root, loss="lmf", seed=seed, loss_params={"drw_epoch": 5}, preds=noisy_preds(LABELS, 0.1, seed + 7),
                 val_f1=0.9)
    build_report([root], tmp_path / "out", n_boot=50, figures=False)
    rows = _rows(tmp_path / "out" / "summary.csv")
    assert {r["baseline"] for r in rows} == {"ce", "ldam-drw"}
    (best,) = [r for r in rows if r["best_on_val"] == "True"]
    assert best["baseline"] == "ldam-drw"
    md = (tmp_path / "out" / "report.md").read_text()
    summary = md.split("## Summary")[1].split("##")[0]
    assert "LDAM-DRW" in summary and "LMF-DRW" not in summary
    assert "LMF-DRW" in md  # still a row of the tables
