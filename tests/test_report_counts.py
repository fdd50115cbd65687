"""Every averaged number of ``lmfloss report`` says how many values it rests on.

A run whose ``report.json`` lacks a metric (an older lmfloss did not record ``ece``, or a
per-class F1) is skipped in that metric's mean: the mean then rests on fewer runs than
the rest of its table, and must say ``n=k``; report.md lists which runs lack what.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lmfloss.report import build_report, find_runs
from lmfloss.report.aggregate import build_grid, missing_values
from lmfloss.report.summary import calibration_table
from lmfloss.report.tables import main_table, per_class_table
from report_helpers import LABELS, make_run, noisy_preds

SEEDS = (1, 2, 3, 4, 5)
MODEL = "efficientnet_v2_s"


def _edit(run: Path, edit) -> None:
    path = run / "report.json"
    report = json.loads(path.read_text())
    edit(report["test"])
    path.write_text(json.dumps(report))


@pytest.fixture()
def runs(tmp_path: Path) -> dict[tuple[str, int], Path]:
    """CE and LMF x 5 seeds on HAM-10K; every run records calibration, except:
    LMF seeds 2-5 (an older lmfloss: no ece/brier/nll, so LMF's calibration rests on seed 1),
    CE seed 3 (no per-class F1 of akiec) and LMF seed 4 (no accuracy)."""
    root = tmp_path / "runs"
    out = {}
    for loss, err in (("ce", 0.35), ("lmf", 0.15)):
        for seed in SEEDS:
            run = make_run(root, loss=loss, seed=seed, preds=noisy_preds(LABELS, err, seed + 10 * len(loss)),
                           val_f1=0.5 if loss == "ce" else 0.6)
            _edit(run, lambda t, s=seed: t.update(ece=0.01 * s, brier=0.1 + 0.01 * s, nll=0.5 + 0.1 * s))
            out[(loss, seed)] = run
    for seed in (2, 3, 4, 5):
        _edit(out[("lmf", seed)], lambda t: [t.pop(k) for k in ("ece", "brier", "nll")])
    _edit(out[("ce", 3)], lambda t: t["f1_per_class"].pop("akiec"))
    _edit(out[("lmf", 4)], lambda t: t.pop("accuracy"))
    return out


def _test(run: Path) -> dict:
    return json.loads((run / "report.json").read_text())["test"]


def _row(table, loss_label: str) -> list[str]:
    return next(r for r in table.rows if r[1] == loss_label)


def test_main_table_marks_a_mean_over_fewer_runs(runs):
    grid = build_grid(find_runs([runs[("ce", 1)].parent]))
    assert grid.expected_n == 5
    table = main_table(grid, MODEL, n_boot=20)
    lmf = _row(table, "LMF")
    accuracy = [_test(runs[("lmf", s)])["accuracy"] for s in SEEDS if s != 4]
    assert lmf[2] == f"{100 * np.mean(accuracy):.2f} ± {100 * np.std(accuracy, ddof=1):.2f} (n=4)"
    f1 = [_test(runs[("lmf", s)])["f1_macro"] for s in SEEDS]
    assert lmf[5] == f"{100 * np.mean(f1):.2f} ± {100 * np.std(f1, ddof=1):.2f}"  # all five: unmarked
    assert "(n=" not in _row(table, "CCE")[2]


def test_calibration_table_marks_a_one_run_value(runs):
    grid = build_grid(find_runs([runs[("ce", 1)].parent]))
    table = calibration_table(grid, MODEL)
    ce, lmf = _row(table, "CCE"), _row(table, "LMF")
    ece = [0.01 * s for s in SEEDS]
    assert ce[2] == f"{np.mean(ece):.3f} ± {np.std(ece, ddof=1):.3f}"
    # Only seed 1 recorded LMF's ECE: never a bare one-run value beside a five-run mean.
    assert lmf[2] == "0.010 (n=1)" and lmf[3] == "0.110 (n=1)"
    assert lmf[5].endswith("(n=4)")  # accuracy: seed 4 lacks it


def test_per_class_table_marks_a_class_some_runs_lack(runs):
    grid = build_grid(find_runs([runs[("ce", 1)].parent]))
    table = per_class_table(grid, MODEL)
    akiec = next(r for r in table.rows if r[1] == "akiec")
    values = [_test(runs[("ce", s)])["f1_per_class"]["akiec"] for s in SEEDS if s != 3]
    assert akiec[3] == f"{100 * np.mean(values):.2f} ± {100 * np.std(values, ddof=1):.2f} (n=4)"
    assert "(n=" not in akiec[4]
    bcc = next(r for r in table.rows if r[1] == "bcc")
    assert "(n=" not in bcc[3]


def test_summary_minority_class_says_its_seeds(runs):
    result = build_report([runs[("ce", 1)].parent], runs[("ce", 1)].parent.parent / "out", n_boot=20,
                          figures=False)
    md = (result.out_dir / "report.md").read_text()
    summary = md.split("## Summary")[1].split("\n## ")[0]
    assert "akiec (n=229):" in summary and "(seeds 5/4)" in summary


def test_report_lists_which_runs_lack_what(runs):
    root = runs[("ce", 1)].parent
    grid = build_grid(find_runs([root]))
    lacking = {(r.loss, r.seed): keys for r, keys in missing_values(grid)}
    assert lacking == {
        ("lmf", 2): ["test.ece", "test.brier", "test.nll"],
        ("lmf", 3): ["test.ece", "test.brier", "test.nll"],
        ("lmf", 4): ["test.accuracy", "test.ece", "test.brier", "test.nll"],
        ("lmf", 5): ["test.ece", "test.brier", "test.nll"],
        ("ce", 3): ["test.f1_per_class.akiec"],
    }
    result = build_report([root], root.parent / "out", n_boot=20, figures=False)
    md = (result.out_dir / "report.md").read_text()
    section = md.split("Values missing from runs")[1].split("\n## ")[0]
    assert str(runs[("ce", 3)].resolve()) in section and "test.f1_per_class.akiec" in section
    line = next(x for x in section.splitlines() if str(runs[("lmf", 4)].resolve()) in x)
    assert "test.accuracy" in line and "test.ece" in line
    assert str(runs[("ce", 1)].resolve()) not in section


def test_complete_runs_list_nothing_missing(tmp_path: Path):
    for seed in (1, 2):
        make_run(tmp_path / "runs", loss="ce", seed=seed)
    grid = build_grid(find_runs([tmp_path / "runs"]))
    assert missing_values(grid) == []
    build_report([tmp_path / "runs"], tmp_path / "out", n_boot=20, figures=False)
    assert "Values missing from runs" not in (tmp_path / "out" / "report.md").read_text()


def test_interval_and_difference_over_fewer_seeds_say_n(tmp_path: Path):
    root = tmp_path / "runs"
    for seed in (1, 2, 3):
        make_run(root, loss="lmf", seed=seed, preds=noisy_preds(LABELS, 0.15, seed))
        if seed < 3:
            make_run(root, loss="ce", seed=seed, preds=noisy_preds(LABELS, 0.35, seed + 10))
    result = build_report([root], tmp_path / "out", n_boot=20, figures=False)
    table = next(t for t in result.tables if t.name.startswith("table2"))
    ce, lmf = _row(table, "CCE"), _row(table, "LMF")
    assert ce[6].startswith("[") and ce[6].endswith("] (n=2)")  # the CI of a 2-seed mean beside 3-seed ones
    assert lmf[6].endswith("]")
    # LMF - CE pairs 2 seeds: the image-level test, on those 2 seeds, says so.
    assert ce[7].startswith("+") and ce[7].endswith("; n=2)") and "images p" in ce[7]
