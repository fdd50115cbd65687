"""budget: per_space -- the same tuning budget for every loss (issue 28), then each loss's
chosen configuration as a grid of seeds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import optuna
import pytest
import yaml

from lmfloss.sweep import parse_sweep, run_worker
from lmfloss.sweep.launch import summarize
from lmfloss.sweep.parse import load_sweep
from lmfloss.sweep.tuning import confirm_sweep, tuning_markdown

TUNE = {
    "name": "tune-test",
    "sampler": "random",
    "trials": 3,
    "seed": 0,
    "budget": "per_space",
    "base": {"dataset": "synthetic", "epochs": 1},
    "space": [
        {"loss": ["lmf"], "loss_params.alpha": {"low": 0.25, "high": 2.0}, "lr": {"low": 1e-4, "high": 1e-2, "log": True}},
        {"loss": ["focal"], "loss_params.gamma": {"low": 0.5, "high": 3.0}, "lr": {"low": 1e-5, "high": 1e-3, "log": True}},
        {"loss": ["ce"], "weight_decay": [0.0, 5e-4]},
    ],
}


def scored_runner(config, run_dir: Path) -> dict:
    """No training: the validation score is a known function of the configuration."""
    value = 0.5 + 0.1 * (config.loss == "lmf") - abs(config.lr - 1e-3) + config.weight_decay
    report = {"val": {"f1_macro": value}, "test": {"f1_macro": value / 2, "accuracy": 0.25}}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_text(json.dumps(report))
    return report


def test_per_space_budget_is_parsed_and_checked():
    spec = parse_sweep(TUNE)
    assert spec.budget == "per_space" and spec.total_trials == 9
    with pytest.raises(ValueError, match="a list of spaces .* needs sampler: grid, or budget: per_space"):
        parse_sweep({**TUNE, "budget": "total"})
    with pytest.raises(ValueError, match="budget: per_space .* needs sampler random or tpe and at least two"):
        parse_sweep({**TUNE, "space": TUNE["space"][0]})
    with pytest.raises(ValueError, match="budget must be one of"):
        parse_sweep({**TUNE, "budget": "equal"})
    # a sweep without budget keeps the fingerprint it had (a running study is still joined)
    single = {k: v for k, v in TUNE.items() if k != "budget"} | {"space": TUNE["space"][0]}
    assert parse_sweep(single).fingerprint() == parse_sweep({**single, "budget": "total"}).fingerprint()


def test_every_space_gets_the_same_trials_and_the_best_of_each_is_confirmed(tmp_path):
    spec = parse_sweep(TUNE)
    out = tmp_path / "out"
    assert run_worker(spec, out, runner=scored_runner, heartbeat=1) == 9
    result = summarize(spec, out, f"sqlite:///{out / 'study.db'}", spec.name)
    rows = result.rows
    per_loss = {}
    for row in rows:
        assert row["state"] == "COMPLETE"
        per_loss.setdefault(row["params"]["loss"], []).append(row)
    assert {k: len(v) for k, v in per_loss.items()} == {"lmf": 3, "focal": 3, "ce": 3}  # the same budget
    for loss, trials in per_loss.items():  # each trial drew from its own loss's space
        assert all(spec.subspaces[t["space"]]["loss"] == [loss] for t in trials)
        assert all(set(t["params"]) == set(spec.subspaces[t["space"]]) for t in trials)
    lmf = [r for r in rows if r["params"]["loss"] == "lmf"]
    assert all(0.25 <= r["params"]["loss_params.alpha"] <= 2.0 and 1e-4 <= r["params"]["lr"] <= 1e-2 for r in lmf)
    text = (out / "tuning.md").read_text()
    assert "**3 trials per space**" in text and "## focal" in text and "float in [0.25, 2] " in text.replace("|", " ")
    best_lmf = max(lmf, key=lambda r: r["val_objective"])
    assert f"{best_lmf['val_objective']:.4f}" in text
    lmf_scores = sorted(r["val_objective"] for r in lmf)
    assert f"Its trials' median {lmf_scores[1]:.4f}, worst {lmf_scores[0]:.4f}." in text
    confirm = load_sweep(out / "confirm.yaml")
    points = confirm.grid_points()
    # TUNE trains at the default seed (23): the first five seeds are fresh
    assert len(points) == 3 * 5 and {p["seed"] for p in points} == {1, 2, 3, 4, 5}
    chosen_lmf = {p["loss_params.alpha"] for p in points if p["loss"] == "lmf"}
    assert chosen_lmf == {best_lmf["params"]["loss_params.alpha"]}


def test_the_copy_of_a_killed_trial_keeps_its_space_and_reuses_its_run(tmp_path):
    # The heartbeat's retry copy carries the killed trial's values; it used to be given the
    # space with the fewest trials, so a focal trial's copy trained CE and the run was lost.
    from sweep_helpers import stale_on_call

    spec = parse_sweep({**TUNE, "trials": 2})
    out = tmp_path / "out"
    url = f"sqlite:///{out / 'study.db'}"
    runner, calls = stale_on_call(url, spec.name, scored_runner, call=2)  # the first focal trial

    run_worker(spec, out, storage=url, runner=runner, heartbeat=1, grace=2, poll=0.2)
    trials = optuna.load_study(study_name=spec.name, storage=url).get_trials()
    (killed,) = [t for t in trials if t.state.name == "FAIL"]
    (copy,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert killed.user_attrs["space"] == copy.user_attrs["space"] == 1 and copy.params == killed.params
    assert copy.user_attrs["reused"] is True and len(calls) == len(set(calls))  # nothing trained twice
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["space"] for t in complete) == [0, 0, 1, 1, 2, 2]  # the same budget


def test_confirmation_seeds_leave_out_the_tuning_seed():
    # the chosen run won on validation partly by its seed's luck; retraining it with that seed
    # (identical on a CPU) would carry the luck into the comparison
    from lmfloss.sweep.tuning import confirm_seeds

    assert confirm_seeds(parse_sweep({**TUNE, "base": {**TUNE["base"], "seed": 1}})) == [2, 3, 4, 5, 6]
    assert confirm_seeds(parse_sweep({**TUNE, "base": {**TUNE["base"], "seed": 3}})) == [1, 2, 4, 5, 6]
    assert confirm_seeds(parse_sweep(TUNE)) == [1, 2, 3, 4, 5]  # tuned at the default seed, 23
    for name in ("tune-odir.yaml", "tune-retinamnist.yaml"):  # the shipped tuning files tune at seed 1
        spec = load_sweep(Path(__file__).resolve().parents[1] / "configs" / name)
        assert spec.base["seed"] == 1 and confirm_seeds(spec) == [2, 3, 4, 5, 6]


def test_tuning_summary_says_when_a_space_chose_nothing():
    spec = parse_sweep(TUNE)
    rows = [{"trial": 0, "state": "COMPLETE", "space": 0, "val_objective": 0.7, "val_metric": "f1_macro",
             "params": {"loss": "lmf", "loss_params.alpha": 1.0, "lr": 1e-3}},
            {"trial": 1, "state": "FAIL", "space": 1, "val_objective": None, "params": {}, "error": "RuntimeError: NaN"},
            # not failures of the space's configurations: a stopped trial, one an old lmfloss failed on a full disk
            {"trial": 2, "state": "FAIL", "space": 1, "val_objective": None, "params": {}, "error": None},
            {"trial": 3, "state": "FAIL", "space": 1, "val_objective": None, "params": {},
             "error": "DiskFull: no space left on the device writing 'last.pt'"}]
    text = tuning_markdown(spec, rows)
    assert "Trials: 0 complete, 1 failed." in text and "No complete trial: nothing chosen." in text
    # the base's loss, lr and weight decay are replaced in some or all spaces: not "shared by every trial"
    shared = text.split("Base settings shared by every trial: ", 1)[1].split("\n", 1)[0]
    assert "`epochs: 1`" in shared and "`dataset: synthetic`" in shared
    assert not any(f"`{key}:" in shared.split(" In the spaces")[0] for key in ("loss", "lr", "weight_decay", "loss_params"))
    # ce's space leaves lr at the base, the others weight decay; every space sets its loss
    assert "In the spaces that do not search `weight_decay`: `weight_decay: " in shared
    assert "In the spaces that do not search `lr`: `lr: " in shared and "search `loss`" not in shared
    assert yaml.safe_load(yaml.safe_dump(confirm_sweep(spec, rows)))["space"] == [
        {"loss": ["lmf"], "loss_params.alpha": [1.0], "lr": [0.001], "seed": [1, 2, 3, 4, 5]}]


def test_the_report_states_the_budget_spaces_and_choices_of_a_confirmation_sweep(tmp_path):
    """confirm.yaml carries the tuning record; each confirmation run keeps it in sweep.json;
    the report's tuning table and tuning.csv state the budget, each space and what was chosen."""
    from lmfloss.report.runs import ReportRun
    from lmfloss.report.tuning import configurations_tried, tuned_trials, tuning_rows, tuning_tables

    spec = parse_sweep(TUNE)
    out = tmp_path / "tune"
    run_worker(spec, out, runner=scored_runner, heartbeat=1)
    summarize(spec, out, f"sqlite:///{out / 'study.db'}", spec.name)  # writes tuning.md and confirm.yaml
    confirm = load_sweep(out / "confirm.yaml")
    record = confirm.tuning
    assert record["trials_per_space"] == 3 and [s["label"] for s in record["spaces"]] == ["lmf", "focal", "ce"]
    assert record["spaces"][0]["searched"]["loss_params.alpha"] == "float in [0.25, 2]"
    assert all(s["complete"] == 3 and s["chosen"]["val_metric"] == "f1_macro" for s in record["spaces"])

    confirm = dataclasses.replace(confirm, only={"seed": [1, 2]})
    run_worker(confirm, tmp_path / "confirm", runner=scored_runner, heartbeat=1)
    runs = []
    for info in sorted((tmp_path / "confirm" / "runs").glob("*/sweep.json")):
        assert json.loads(info.read_text())["tuning"] == record  # every confirmation run keeps it
        params = json.loads(info.read_text())["params"]
        # each confirmation run's validation score: what the chosen configuration scores with other seeds
        val = 0.5 + params["seed"] / 100 + (0.1 if params["loss"] == "lmf" else 0)
        runs.append(ReportRun(run_dir=info.parent, config={"seed": params["seed"], "loss": params["loss"]},
                              status="finished", report={"val": {"f1_macro": val}}))
    assert len(runs) == 3 * 2
    (table,) = tuning_tables(runs)
    assert "3 random trials per loss" in table.title and "chosen on validation" in table.title
    lmf = record["spaces"][0]["chosen"]
    assert table.rows[0][0] == "LMF" and f"alpha={lmf['params']['loss_params.alpha']:.3g}" in table.rows[0][3]
    assert "loss_params." not in table.rows[0][3] and table.rows[0][4].endswith("(macro-F1)")
    assert "seeds 1, 2" in table.notes[0]
    from lmfloss.report.html import table_block

    block = table_block(table)  # on the page, the long columns wrap instead of scrolling sideways
    assert [cell["wrap"] for cell in block["rows"][0]] == [False, True, False, True, False, False, False]
    assert block["wrap"] == [False, True, False, True, False, False, False]  # the header sits over its left-aligned text
    scores = record["spaces"][0]["val_scores"]  # every LMF trial's validation score, best first
    assert len(scores) == 3 and scores[0] == pytest.approx(lmf["val_score"]) and scores == sorted(scores, reverse=True)
    assert table.rows[0][5] == f"{100 * scores[1]:.2f} / {100 * scores[2]:.2f}"
    # the chosen configuration's validation score with the confirmation seeds (1, 2): 61, 62 for LMF
    assert table.rows[0][6] == "61.50 ± 0.71 (2 seeds)" and table.rows[1][6] == "51.50 ± 0.71 (2 seeds)"
    assert "luck that choice picked up" in table.notes[2]
    # Table 6 says LMF's alpha/beta were chosen from the tuning trials, not "only one tried"
    assert tuned_trials(runs, "lmf") == 3 and tuned_trials(runs, "asl") is None
    # the summary's "configurations (LMF/baseline)": the tuning trials, not the one configuration confirmed
    assert configurations_tried(runs, "lmf", 1) == 3 and configurations_tried(runs, "asl", 0) == 1
    rows = tuning_rows(runs)
    assert [r["space"] for r in rows] == ["lmf", "focal", "ce"] and {r["confirm_seeds"] for r in rows} == {"1 2"}
    assert rows[2]["val_score"] == pytest.approx(record["spaces"][2]["chosen"]["val_score"])
    assert rows[0]["confirm_val_scores"] == "0.610000 0.620000" and rows[2]["confirm_val_scores"] == "0.510000 0.520000"


def test_runs_without_a_tuning_record_have_no_tuning_table(tmp_path):
    from lmfloss.report.runs import ReportRun
    from lmfloss.report.tuning import tuning_tables

    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "sweep.json").write_text(json.dumps({"study": "s", "trial": 0, "params": {}, "tags": {}}))
    assert tuning_tables([ReportRun(run_dir=tmp_path / "r", config={}, status="finished")]) == []
