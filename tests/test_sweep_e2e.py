"""``lmfloss sweep`` end to end: real 1-epoch trials on the synthetic set, two worker
processes, on SQLite and on PostgreSQL (when ``LMFLOSS_TEST_POSTGRES_URL`` is set)."""

from __future__ import annotations

import csv
import json
import os
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from lmfloss.cli import main
from lmfloss.sweep import make_storage

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("LMFLOSS_TEST_POSTGRES_URL")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_workers_train_every_grid_point_once(tmp_path, capsys, backend):
    if backend == "postgres" and not POSTGRES_URL:
        pytest.skip("LMFLOSS_TEST_POSTGRES_URL is not set (start a server with .ci/start-postgres.sh)")
    # The demo sweep's base config, made cheaper still: 16 px, one grid point per worker.
    sweep = yaml.safe_load((REPO / "configs" / "demo-sweep.yaml").read_text())
    sweep["base"].update(image_size=16, batch_size=128, bootstrap=20)
    sweep["space"] = {"loss": ["ce", "lmf"], "seed": [5]}
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(sweep))
    out = tmp_path / "out"
    study = f"e2e-{uuid.uuid4().hex[:8]}"
    url = POSTGRES_URL if backend == "postgres" else f"sqlite:///{out / 'study.db'}"
    argv = ["sweep", "--config", str(config), "--out", str(out), "--study", study, "--workers", "2",
            "--quiet"]
    if backend == "postgres":
        argv += ["--storage", url]

    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert f"study '{study}'" in stdout and "2 complete" in stdout

    trials = optuna.load_study(study_name=study, storage=make_storage(url)).get_trials()
    assert sorted(t.params["loss"] for t in trials) == ["ce", "lmf"]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        run_dir = Path(t.user_attrs["run_dir"])
        assert run_dir == out / "runs" / f"loss={t.params['loss']}_seed=5"
        report = json.loads((run_dir / "report.json").read_text())
        # the objective is the validation macro-F1; test metrics are stored beside it
        assert t.value == pytest.approx(report["val"]["f1_macro"])
        assert t.user_attrs["test_f1_macro"] == pytest.approx(report["test"]["f1_macro"])
        assert t.user_attrs["test_accuracy"] == pytest.approx(report["test"]["accuracy"])
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert (saved["loss"], saved["seed"], saved["epochs"], saved["image_size"]) == (t.params["loss"], 5, 1, 16)
        assert json.loads((run_dir / "sweep.json").read_text())["trial"] == t.number
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # one trial per worker process

    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["run_name"] for r in rows) == ["loss=ce_seed=5", "loss=lmf_seed=5"]

    # A second invocation finds the grid complete and trains nothing.
    assert main(argv) == 0
    again = optuna.load_study(study_name=study, storage=make_storage(url)).get_trials()
    assert len(again) == 2


def test_a_trial_can_run_under_torchrun(tmp_path, capsys):
    """--nproc-per-trial 2: the trial is two DDP ranks (gloo on CPU) started by torchrun."""
    sweep = {
        "name": "torchrun",
        "base": {"dataset": "synthetic", "model": "resnet18", "weights": "none", "image_size": 16,
                 "epochs": 1, "batch_size": 64, "device": "cpu", "bootstrap": 20},
        "space": {"loss": ["lmf"]},
    }
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(sweep))
    out = tmp_path / "out"
    assert main(["sweep", "--config", str(config), "--out", str(out), "--nproc-per-trial", "2",
                 "--quiet"]) == 0
    run_dir = out / "runs" / "loss=lmf"
    report = json.loads((run_dir / "report.json").read_text())
    trial = optuna.load_study(study_name="torchrun", storage=make_storage(f"sqlite:///{out / 'study.db'}")).trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.value == pytest.approx(report["val"]["f1_macro"])
    assert yaml.safe_load((run_dir / "trial-config.yaml").read_text())["loss"] == "lmf"
    assert "1 complete" in capsys.readouterr().out
