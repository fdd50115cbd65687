"""``lmfloss demo``: summary files agree with each run's report (tiny network, 1 epoch)."""

from __future__ import annotations

import csv
import json

import pytest

from lmfloss.cli import main
from lmfloss.train import demo

TINY = {"model": "shufflenet_v2_x0_5", "image_size": 16, "bootstrap": 50}


def _check_outputs(out, losses):
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == demo.SUMMARY_COLUMNS
    assert [r["loss"] for r in rows] == losses
    for row in rows:
        report = json.loads((out / row["loss"] / "report.json").read_text())
        assert report["config"]["dataset"] == "synthetic" and report["config"]["loss"] == row["loss"]
        for key in demo.SUMMARY_COLUMNS[1:]:
            assert float(row[key]) == pytest.approx(report["test"][key], abs=5e-5)
    text = (out / "summary.md").read_text()
    assert "| ce |" in text and "| lmf |" in text and "fibroma (20)" in text
    assert (out / "f1_per_class.png").stat().st_size > 1000
    page = (out / "report.html").read_text(encoding="utf-8")  # make demo ends with the page
    assert "<svg" in page and "Content-Security-Policy" in page


@pytest.mark.slow
def test_demo_in_process_via_cli(tmp_path, monkeypatch, capsys):
    original = demo.demo_config
    monkeypatch.setattr(demo, "demo_config", lambda *a, **k: original(*a, **k).replace(**TINY))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--jobs", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| loss | accuracy |" in printed and "| lmf |" in printed
    _check_outputs(out, ["ce", "lmf"])


@pytest.mark.slow
def test_demo_parallel_processes(tmp_path):
    summary = demo.run_demo(tmp_path / "d", losses=["ce", "lmf"], epochs=1, jobs=2, quiet=True,
                            overrides=TINY)
    assert [r["loss"] for r in summary.rows] == ["ce", "lmf"]
    _check_outputs(tmp_path / "d", ["ce", "lmf"])


def test_demo_rejects_unknown_loss(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--losses", "ce,nope"]) == 2
    assert "unknown loss(es) ['nope']" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_multilabel_summarises_map_per_loss(tmp_path):
    summary = demo.run_demo(tmp_path / "ml2", epochs=1, jobs=1, quiet=True, task="multilabel", overrides=TINY)
    with open(tmp_path / "ml2" / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == demo.summary_columns("multilabel") and [r["loss"] for r in rows] == ["bce", "lmf"]
    for row in rows:
        report = json.loads((tmp_path / "ml2" / row["loss"] / "report.json").read_text())
        assert report["task"] == "multilabel"
        assert float(row["map"]) == pytest.approx(report["test"]["map"], abs=5e-5)
    assert "Per-label test AP" in summary.markdown
