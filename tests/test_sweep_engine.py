"""The study machinery with cheap injected trial runners: claims, concurrency, kill + retry.

Concurrency is real: worker processes share one study in SQLite or PostgreSQL (the latter
when ``LMFLOSS_TEST_POSTGRES_URL`` is set, e.g. by ``.ci/start-postgres.sh``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from lmfloss.cli import main
from lmfloss.errors import LmflossError
from lmfloss.sweep import (
    load_sweep,
    make_storage,
    parse_sweep,
    point_key,
    run_name,
    run_sweep,
    run_worker,
    summarize,
)
from sweep_helpers import stale_on_call

POSTGRES_URL = os.environ.get("LMFLOSS_TEST_POSTGRES_URL")
GRID = {
    "name": "engine-test",
    "base": {"dataset": "synthetic", "epochs": 1},
    "space": {"loss": ["ce", "lmf"], "seed": [1, 2, 3]},
}

# A worker process: the sweep's own run_worker with a runner that logs every call and
# sleeps, so that workers overlap (each waits for a second worker before its first trial).
WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from lmfloss.sweep import parse_sweep, run_worker

    cfg = json.loads(sys.argv[1])
    log = Path(cfg["log"])

    def note(event, name):
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()} {event} {name}\\n")

    def runner(config, run_dir):
        note("start", run_dir.name)
        deadline = time.time() + 60
        while cfg["wait_for"] > 1 and time.time() < deadline:
            pids = {line.split()[0] for line in log.read_text().splitlines()}
            if len(pids) >= cfg["wait_for"]:
                break
            time.sleep(0.05)
        time.sleep(cfg["sleep"])
        value = config.seed / 10 + (0.5 if config.loss == "lmf" else 0.0)
        report = {"val": {"f1_macro": value}, "test": {"f1_macro": value / 2, "accuracy": 0.25}}
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "report.json").write_text(json.dumps(report))
        note("end", run_dir.name)
        return report

    run_worker(parse_sweep(cfg["sweep"]), cfg["out"], storage=cfg["storage"],
               study_name=cfg["study"], runner=runner, heartbeat=1, grace=3, poll=0.2)
    """
)


def expected_val(params: dict) -> float:
    return params["seed"] / 10 + (0.5 if params["loss"] == "lmf" else 0.0)


def fast_runner(config, run_dir: Path) -> dict:
    """Module level, so spawned local workers can unpickle it."""
    value = expected_val({"seed": config.seed, "loss": config.loss})
    report = {"val": {"f1_macro": value}, "test": {"f1_macro": value / 2, "accuracy": 0.25}}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_text(json.dumps(report))
    with open(run_dir.parent.parent / "calls.log", "a") as handle:
        handle.write(f"{os.getpid()} {run_dir.name}\n")
    return report


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if not POSTGRES_URL:
        pytest.skip("LMFLOSS_TEST_POSTGRES_URL is not set (start a server with .ci/start-postgres.sh)")
    return POSTGRES_URL


def study_trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=make_storage(url)).get_trials(deepcopy=False)


def start_worker(tmp_path: Path, url: str, study: str, *, sleep: float, wait_for: int) -> subprocess.Popen:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cfg = {"sweep": GRID, "out": str(tmp_path / "out"), "storage": url, "study": study,
           "log": str(tmp_path / "calls.log"), "sleep": sleep, "wait_for": wait_for}
    return subprocess.Popen([sys.executable, str(script), json.dumps(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def completed_once(trials, spec) -> None:
    """Every grid point has exactly one COMPLETE trial whose value is the run's val macro-F1."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    keys = Counter(point_key(t.params) for t in complete)
    assert sorted(keys) == sorted(point_key(p) for p in spec.grid_points())
    assert set(keys.values()) == {1}
    for t in complete:
        assert t.value == pytest.approx(expected_val(t.params))
        report = json.loads((Path(t.user_attrs["run_dir"]) / "report.json").read_text())
        assert t.value == report["val"]["f1_macro"] != report["test"]["f1_macro"]
        assert Path(t.user_attrs["run_dir"]).name == run_name(t.params)


# Worker processes (each imports torch and optuna): seconds each, as slow as a tiny training.
@pytest.mark.slow
def test_two_concurrent_workers_complete_every_grid_point_once(tmp_path, storage_url):
    study = f"two-workers-{uuid.uuid4().hex[:8]}"
    workers = [start_worker(tmp_path, storage_url, study, sleep=0.3, wait_for=2) for _ in range(2)]
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, output
    spec = parse_sweep(GRID)
    completed_once(study_trials(storage_url, study), spec)
    starts = [line.split() for line in (tmp_path / "calls.log").read_text().splitlines()
              if line.split()[1] == "start"]
    assert Counter(name for _, _, name in starts) == Counter(run_name(p) for p in spec.grid_points())
    assert len({pid for pid, _, _ in starts}) == 2, "both workers should have trained trials"


# Worker processes (each imports torch and optuna): seconds each, as slow as a tiny training.
@pytest.mark.slow
def test_killed_worker_trial_is_rerun_by_another_worker(tmp_path, storage_url):
    study = f"kill-{uuid.uuid4().hex[:8]}"
    victim = start_worker(tmp_path, storage_url, study, sleep=300, wait_for=1)
    log = tmp_path / "calls.log"
    deadline = time.time() + 60
    while not (log.is_file() and "start" in log.read_text()):
        assert time.time() < deadline and victim.poll() is None, "the first worker never started a trial"
        time.sleep(0.05)
    killed_name = log.read_text().split()[2]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)

    spec = parse_sweep(GRID)
    calls_before = log.read_text()
    ran = run_worker(spec, tmp_path / "out", storage=storage_url, study_name=study,
                     runner=fast_runner, heartbeat=1, grace=2, poll=0.2)
    trials = study_trials(storage_url, study)
    completed_once(trials, spec)
    assert ran == len(spec.grid_points())  # the killed point's retry plus the five others

    killed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(killed) == 1 and killed[0].user_attrs["run_name"] == killed_name
    assert "error" not in killed[0].user_attrs  # killed, not crashed
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == killed[0].params
    # The killed worker never finished its trial; the survivor ran every point once.
    assert "end" not in calls_before
    survivor = Counter(line.split()[1] for line in (tmp_path / "out" / "calls.log").read_text().splitlines())
    assert survivor == Counter(run_name(p) for p in spec.grid_points())


# Worker processes (each imports torch and optuna): seconds each, as slow as a tiny training.
@pytest.mark.slow
def test_local_worker_processes_share_the_grid(tmp_path):
    spec = parse_sweep(GRID)
    result = run_sweep(spec, tmp_path / "out", workers=2, runner=fast_runner, heartbeat=1)
    completed_once(study_trials(f"sqlite:///{tmp_path / 'out' / 'study.db'}", spec.name), spec)
    assert result.counts == {"COMPLETE": 6}
    assert result.best["val_f1_macro"] == pytest.approx(0.8)  # lmf, seed 3
    assert result.best["run_name"] == "loss=lmf_seed=3"
    assert result.best["test_f1_macro"] == pytest.approx(0.4)
    calls = (tmp_path / "out" / "calls.log").read_text().splitlines()
    assert len(calls) == 6


def test_finished_runs_are_reused_and_not_run_twice(tmp_path):
    spec = parse_sweep(GRID)
    out = tmp_path / "out"
    # A run finished before the sweep started (e.g. by an earlier study): reused.
    done = out / "runs" / "loss=ce_seed=1"
    done.mkdir(parents=True)
    (done / "report.json").write_text(json.dumps({"val": {"f1_macro": 0.123}, "test": {}}))
    assert run_worker(spec, out, runner=fast_runner, heartbeat=1) == 6
    calls = Counter(line.split()[1] for line in (out / "calls.log").read_text().splitlines())
    assert "loss=ce_seed=1" not in calls and len(calls) == 5
    trials = study_trials(f"sqlite:///{out / 'study.db'}", spec.name)
    reused = [t for t in trials if t.user_attrs.get("reused")]
    assert [t.value for t in reused] == [0.123]
    # Running the sweep again trains nothing: every point is complete.
    assert run_worker(spec, out, runner=fast_runner, heartbeat=1) == 0
    assert len((out / "calls.log").read_text().splitlines()) == 5
    json_file = json.loads((done / "sweep.json").read_text())
    assert json_file["params"] == {"loss": "ce", "seed": 1} and json_file["study"] == spec.name


def test_failing_trial_is_recorded_and_not_retried_forever(tmp_path, capfd, caplog):
    spec = parse_sweep({**GRID, "space": {"loss": ["ce", "lmf"]}})

    calls = []

    def runner(config, run_dir):
        calls.append(config.loss)
        if config.loss == "lmf":
            raise RuntimeError("loss went NaN")
        return fast_runner(config, run_dir)

    run_worker(spec, tmp_path / "out", runner=runner, heartbeat=1)
    assert sorted(calls) == ["ce", "lmf"]
    err = capfd.readouterr().err + caplog.text  # a trial that raised keeps its traceback: it may be a bug
    assert "Traceback" in err and "RuntimeError: loss went NaN" in err
    result = summarize(spec, tmp_path / "out", f"sqlite:///{tmp_path / 'out' / 'study.db'}", spec.name)
    assert result.failed_points == ["loss=lmf"]
    assert result.counts == {"COMPLETE": 1, "FAIL": 1}
    failed = [r for r in result.rows if r["state"] == "FAIL"]
    assert failed[0]["error"] == "RuntimeError: loss went NaN"
    assert "loss went NaN" in (tmp_path / "out" / "trials.csv").read_text()


def test_a_trial_failed_as_stale_while_its_worker_was_paused_is_not_lost(tmp_path, caplog):
    # A worker (or its machine) is paused past the grace period: another worker fails its
    # trial as stale and queues a copy. When the paused worker wakes and finishes, Optuna
    # refuses to tell the trial ("Cannot tell a FAIL trial"); the worker must carry on, and
    # the copy must reuse the finished run rather than train it again.
    spec = parse_sweep({**GRID, "space": {"loss": ["ce", "lmf"], "seed": [1]}})
    out = tmp_path / "out"
    url = f"sqlite:///{out / 'study.db'}"
    runner, calls = stale_on_call(url, spec.name, fast_runner)
    with caplog.at_level("WARNING", logger="lmfloss.sweep.engine"):
        run_worker(spec, out, storage=url, runner=runner, heartbeat=1, grace=2, poll=0.2)
    assert sorted(calls) == ["loss=ce_seed=1", "loss=lmf_seed=1"]  # none trained twice
    trials = study_trials(url, spec.name)
    completed_once(trials, spec)
    (reaped,) = [t for t in trials if t.state == TrialState.FAIL]
    (copy,) = [t for t in trials if t.system_attrs.get("failed_trial") == reaped.number]
    assert copy.state == TrialState.COMPLETE and copy.user_attrs["reused"] is True
    assert reaped.user_attrs["run_name"] == calls[0] == copy.user_attrs["run_name"]
    assert f"trial {reaped.number} ({calls[0]}) finished after another worker had failed it" in caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("then", ["interrupted", "raised"])
def test_a_trial_failed_as_stale_then_stopped_or_raising_is_said_as_such(tmp_path, then):
    # failed as stale by another worker, then Ctrl-C'd (or its training raised): the worker
    # stops with the one-line SweepInterrupted (or goes on), not Optuna's "Cannot tell a FAIL trial"
    from lmfloss.errors import TrainingInterrupted
    from lmfloss.sweep.engine import SweepInterrupted

    spec = parse_sweep({**GRID, "space": {"loss": ["ce"], "seed": [1]}})
    url = f"sqlite:///{tmp_path / 'study.db'}"
    runner, calls = stale_on_call(url, spec.name, fast_runner, then=TrainingInterrupted(
        "stopped after epoch 3; last.pt kept", 2) if then == "interrupted" else RuntimeError("loss went NaN"))

    if then == "interrupted":
        with pytest.raises(SweepInterrupted, match="stopped during trial 0"):
            run_worker(spec, tmp_path / "out", storage=url, runner=runner, heartbeat=1, grace=2, poll=0.2)
        assert run_worker(spec, tmp_path / "out", storage=url, runner=runner, heartbeat=1, grace=2, poll=0.2) == 1
    else:
        run_worker(spec, tmp_path / "out", storage=url, runner=runner, heartbeat=1, grace=2, poll=0.2)
    assert len(calls) == 2  # the copy queued by the heartbeat's retry trained the point
    completed_once(study_trials(url, spec.name), spec)


def test_a_trial_waits_for_a_live_run_of_its_point_and_reuses_it(tmp_path, caplog):
    # The copy of a trial failed as stale finds its run directory locked by the paused worker,
    # now training again: it waits for the lock, then reuses the run (no error, no retraining).
    import threading

    from lmfloss.rundir import RunLock

    spec = parse_sweep({**GRID, "space": {"loss": ["ce"], "seed": [1]}})
    out = tmp_path / "out"
    run_dir = out / "runs" / "loss=ce_seed=1"
    run_dir.mkdir(parents=True)
    lock = RunLock(run_dir).acquire()
    waiting = threading.Event()

    class SeesWaiting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting for" in record.getMessage():
                waiting.set()

    def finish() -> None:
        # the other process finishes only once the worker waits for it (a fixed sleep raced a
        # slow worker start: the run was finished before the worker looked, and nothing waited)
        waiting.wait(timeout=60)
        (run_dir / "report.json").write_text(json.dumps({"val": {"f1_macro": 0.321}, "test": {}}))
        lock.release()

    engine_logger = logging.getLogger("lmfloss.sweep.engine")
    handler = SeesWaiting()
    engine_logger.addHandler(handler)
    other = threading.Thread(target=finish)
    other.start()
    calls = []
    try:
        with caplog.at_level("INFO", logger="lmfloss.sweep.engine"):
            run_worker(spec, out, runner=lambda c, d: calls.append(d) or fast_runner(c, d), heartbeat=1)
    finally:
        waiting.set()
        other.join()
        engine_logger.removeHandler(handler)
    assert calls == []
    (trial,) = study_trials(f"sqlite:///{out / 'study.db'}", spec.name)
    assert trial.state == TrialState.COMPLETE and trial.value == 0.321 and trial.user_attrs["reused"] is True
    assert f"waiting for loss=ce_seed=1, in use by lmfloss pid {os.getpid()}" in caplog.text


def test_finished_run_of_another_config_is_not_reused(tmp_path):
    spec = parse_sweep({**GRID, "space": {"loss": ["ce"]}})
    run_dir = tmp_path / "out" / "runs" / "loss=ce"
    run_dir.mkdir(parents=True)
    (run_dir / "report.json").write_text(json.dumps({"val": {"f1_macro": 0.5}, "test": {}}))
    (run_dir / "config.yaml").write_text("dataset: synthetic\nloss: ce\nepochs: 7\n")
    run_worker(spec, tmp_path / "out", runner=fast_runner, heartbeat=1)
    trial = study_trials(f"sqlite:///{tmp_path / 'out' / 'study.db'}", spec.name)[0]
    assert trial.state == TrialState.FAIL
    assert "epochs: run has 7, sweep asks 1" in trial.user_attrs["error"]


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_search_samplers_stop_at_the_trial_budget(tmp_path, sampler):
    spec = parse_sweep({
        "sampler": sampler, "trials": 4, "seed": 3,
        "base": {"dataset": "synthetic"},
        "space": {"loss": ["ce", "lmf"], "lr": {"low": 1.0e-5, "high": 1.0e-2, "log": True},
                  "seed": {"low": 1, "high": 3}},
    })
    seen = []

    def runner(config, run_dir):
        seen.append(config)
        return {"val": {"f1_macro": config.lr * 10}, "test": {}}

    run_worker(spec, tmp_path / "out", runner=runner, heartbeat=1)
    trials = study_trials(f"sqlite:///{tmp_path / 'out' / 'study.db'}", spec.name)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4
    for t in complete:
        assert 1e-5 <= t.params["lr"] <= 1e-2 and t.params["seed"] in (1, 2, 3)
        assert isinstance(t.params["seed"], int)
        assert t.value == pytest.approx(t.params["lr"] * 10)
    assert {c.dataset for c in seen} == {"synthetic"}


def test_a_study_refuses_a_different_sweep(tmp_path):
    out = tmp_path / "out"
    run_worker(parse_sweep({**GRID, "space": {"loss": ["ce"]}}), out, runner=fast_runner, heartbeat=1)
    other = parse_sweep({**GRID, "space": {"loss": ["ce", "focal"]}})
    with pytest.raises(Exception, match="different sweep"):
        run_worker(other, out, runner=fast_runner, heartbeat=1)
    # Machine-specific keys (data folder, device) may differ between workers of one study.
    same = parse_sweep({**GRID, "space": {"loss": ["ce"]}}, sets={"root": "/elsewhere", "device": "cpu"})
    assert run_worker(same, out, runner=fast_runner, heartbeat=1) == 0


def test_cli_reports_an_unreachable_storage_in_one_line(tmp_path, capsys):
    pytest.importorskip("psycopg2", reason="the PostgreSQL driver (lmfloss[postgres]) is not installed")
    config = tmp_path / "s.yaml"
    config.write_text("base: {dataset: synthetic}\nspace: {loss: [ce]}\n")
    code = main(["sweep", "--config", str(config), "--out", str(tmp_path / "o"),
                 "--storage", "postgresql+psycopg2://u:secret@127.0.0.1:1/none"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot open study storage" in err and "secret" not in err and len(err.splitlines()) == 1


def test_cli_dry_run_lists_the_grid(tmp_path, capsys):
    repo = Path(__file__).resolve().parents[1]
    assert main(["sweep", "--config", str(repo / "configs" / "demo-sweep.yaml"),
                 "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    spec = load_sweep(repo / "configs" / "demo-sweep.yaml")
    assert f"{len(spec.grid_points())} grid point(s)" in out
    for point in spec.grid_points():
        assert str(tmp_path / "runs" / run_name(point)) in out


@pytest.mark.parametrize("sampler", ["grid", "random"])
def test_a_full_disk_stops_the_sweep_instead_of_failing_every_trial(tmp_path, sampler):
    # Seen in a tuning study: with the disk full, each trial failed at its first checkpoint and
    # was recorded as an error, 13 in a row; a grid point would have stayed failed for good.
    from lmfloss.errors import DiskFull

    space = {"loss": ["ce", "lmf"]} if sampler == "grid" else {"lr": {"low": 1e-4, "high": 1e-2}}
    spec = parse_sweep({**GRID, "sampler": sampler, "space": space, **({"trials": 2} if sampler != "grid" else {})})
    calls = []

    def full(config, run_dir):
        calls.append(run_dir.name)
        raise OSError(28, "No space left on device", str(run_dir / "last.pt"))

    with pytest.raises(DiskFull, match=r"no space left .*last\.pt.*run the same `lmfloss sweep` command again"):
        run_worker(spec, tmp_path / "out", runner=full, heartbeat=1)
    assert len(calls) == 1  # stopped at the first
    (stopped, *queued) = study_trials(f"sqlite:///{tmp_path / 'out' / 'study.db'}", spec.name)
    assert stopped.state == TrialState.FAIL and "error" not in stopped.user_attrs
    # space freed: the same command trains everything, the stopped trial's run included
    assert run_worker(spec, tmp_path / "out", runner=lambda c, d: calls.append(d.name) or fast_runner(c, d),
                      heartbeat=1) == 2
    assert calls[1] == calls[0] or sampler == "grid"  # a random trial continues with the same values
    assert sum(t.state == TrialState.COMPLETE for t in study_trials(f"sqlite:///{tmp_path / 'out' / 'study.db'}",
                                                                     spec.name)) == 2


def test_retry_failed_trains_failed_points_again_once(tmp_path, capsys):
    spec = parse_sweep({**GRID, "space": {"loss": ["ce", "lmf"]}})
    out = tmp_path / "out"
    calls = []

    def broken(config, run_dir):
        calls.append(config.loss)
        if config.loss == "lmf":
            raise RuntimeError("CUDA out of memory (another process holds the GPU)")
        return fast_runner(config, run_dir)

    assert run_sweep(spec, out, runner=broken, heartbeat=1).failed_points == ["loss=lmf"]
    assert run_sweep(spec, out, runner=broken, heartbeat=1).failed_points == ["loss=lmf"]  # left alone
    assert sorted(calls) == ["ce", "lmf"]
    # still failing: tried once more, failed again, no loop
    assert run_sweep(spec, out, runner=broken, heartbeat=1, retry_failed=True).failed_points == ["loss=lmf"]
    assert sorted(calls) == ["ce", "lmf", "lmf"]
    # the cause mended: the point is trained, the sweep has no failed point left
    result = run_sweep(spec, out, runner=fast_runner, heartbeat=1, retry_failed=True)
    assert result.failed_points == [] and result.counts["COMPLETE"] == 2
    with pytest.raises(ValueError, match="a random search has none"):
        run_sweep(parse_sweep({**GRID, "sampler": "random", "trials": 1, "space": {"lr": {"low": 1e-4, "high": 1e-2}}}),
                  tmp_path / "random", runner=fast_runner, heartbeat=1, retry_failed=True)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_status_says_where_a_study_stands_and_writes_nothing(tmp_path, capsys):
    from lmfloss.sweep.storage import make_sampler, open_study

    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({**GRID, "space": {"loss": ["ce", "lmf"], "seed": [1, 2]}}))
    out = tmp_path / "out"
    argv = ["sweep", "--config", str(config), "--out", str(out), "--status"]
    assert main(argv) == 2 and "the sweep has not run yet" in capsys.readouterr().err
    assert not out.exists()  # nothing created
    spec = load_sweep(config)

    calls = []

    def one_fails(config, run_dir):  # the second trial raises
        calls.append({"loss": config.loss, "seed": config.seed})
        if len(calls) == 2:
            raise RuntimeError("loss went NaN")
        return fast_runner(config, run_dir)

    run_worker(spec, out, runner=one_fails, heartbeat=1, max_trials=3)
    # a trial some worker is training now: three of its ten epochs done
    study = open_study(spec, make_storage(f"sqlite:///{out / 'study.db'}"), spec.name, sampler=make_sampler(spec))
    claimed = {t.user_attrs.get("claim") for t in study.get_trials()}
    (todo,) = [p for p in spec.grid_points() if point_key(p) not in claimed]
    trial = study.ask()
    run_dir = out / "runs" / run_name(todo)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("loss: lmf\nepochs: 10\n")
    (run_dir / "metrics.csv").write_text("epoch,train_loss\n1,0.9\n2,0.8\n3,0.7\n")
    for key, value in {"claim": point_key(todo), "run_name": run_dir.name,
                       "run_dir": str(run_dir), "worker": "host:123"}.items():
        trial.set_user_attr(key, value)
    files = sorted(p.name for p in out.rglob("*"))
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "2 of 4 grid points complete, 1 running, 1 failed, 0 to do" in text
    assert f"best val macro-F1 {max(expected_val(calls[0]), expected_val(calls[2])):.4f} (trial" in text
    assert f"failed: {run_name(calls[1])} (trial 1): RuntimeError: loss went NaN" in text
    assert f"trial {trial.number} {run_dir.name}: epoch 3/10, no heartbeat yet, worker host:123" in text
    assert "about " in text and "left: 1 trial(s) at the median trained trial's 0.0 min, 1 worker(s) running" in text
    assert sorted(p.name for p in out.rglob("*")) == files  # wrote nothing


def test_interrupted_trial_stops_the_worker_and_is_run_again_later(tmp_path, capfd, caplog):
    from lmfloss.errors import TrainingInterrupted
    from lmfloss.sweep.engine import SweepInterrupted

    spec = parse_sweep({**GRID, "space": {"loss": ["ce", "lmf"], "seed": [4]}})

    def interrupted(config, run_dir):
        raise TrainingInterrupted("stopped after epoch 3; last.pt kept", 15)

    with pytest.raises(SweepInterrupted, match="run the same `lmfloss sweep` command again") as info:
        run_worker(spec, tmp_path / "out", runner=interrupted, heartbeat=1)
    assert info.value.signal_number == 15
    # a Ctrl-C is one line, not Optuna's traceback (on stderr or through logging)
    assert "Traceback" not in capfd.readouterr().err + caplog.text
    trials = study_trials(f"sqlite:///{tmp_path / 'out' / 'study.db'}", spec.name)
    assert len(trials) == 1 and trials[0].state == TrialState.FAIL
    assert "error" not in trials[0].user_attrs and "last.pt kept" in trials[0].user_attrs["interrupted"]
    # The next invocation runs both points, the interrupted one included.
    assert run_worker(spec, tmp_path / "out", runner=fast_runner, heartbeat=1) == 2
    completed_once(study_trials(f"sqlite:///{tmp_path / 'out' / 'study.db'}", spec.name), spec)


def test_an_interrupted_random_trial_is_continued_not_redrawn(tmp_path):
    # A random trial stopped by Ctrl-C keeps its half-trained run; the next invocation must
    # continue that run (the same values) instead of drawing new ones and leaving it behind.
    from lmfloss.errors import TrainingInterrupted
    from lmfloss.sweep.engine import SweepInterrupted

    spec = parse_sweep({**GRID, "sampler": "random", "trials": 2, "space": {"lr": {"low": 1e-4, "high": 1e-2}}})

    def interrupted(config, run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        raise TrainingInterrupted("stopped after epoch 3; last.pt kept", 2)

    with pytest.raises(SweepInterrupted):
        run_worker(spec, tmp_path / "out", runner=interrupted, heartbeat=1)
    stopped, queued = study_trials(f"sqlite:///{tmp_path / 'out' / 'study.db'}", spec.name)
    assert stopped.state == TrialState.FAIL and queued.state == TrialState.WAITING
    calls = []
    run_worker(spec, tmp_path / "out", runner=lambda c, d: calls.append(d.name) or fast_runner(c, d), heartbeat=1)
    trials = study_trials(f"sqlite:///{tmp_path / 'out' / 'study.db'}", spec.name)
    assert calls[0] == stopped.user_attrs["run_name"] and len(calls) == 2
    (copy,) = [t for t in trials if t.system_attrs.get("failed_trial") == stopped.number]
    assert copy.state == TrialState.COMPLETE and copy.params == stopped.params
    assert "interrupted" not in copy.user_attrs  # the copy was not stopped


def test_random_workers_in_separate_processes_draw_different_values_and_one_worker_repeats(tmp_path):
    # Two `lmfloss sweep --workers 1` on one host are both worker 0: seeding by worker made
    # them draw the same sequence, so the second trained the first's configurations again.
    from lmfloss.sweep.storage import make_sampler

    spec = parse_sweep({**GRID, "sampler": "random", "trials": 4, "space": {"lr": {"low": 1e-4, "high": 1e-2}}})
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = optuna.create_study(study_name="s", storage=url, sampler=make_sampler(spec, 0))
    second = optuna.load_study(study_name="s", storage=url, sampler=make_sampler(spec, 0))
    drawn = [study.ask().suggest_float("lr", 1e-4, 1e-2) for study in (first, second, first, second)]
    assert len(set(drawn)) == 4
    again = optuna.create_study(sampler=make_sampler(spec, 0))  # a re-run of the sweep draws the same
    assert [again.ask().suggest_float("lr", 1e-4, 1e-2) for _ in range(4)] == drawn


@pytest.mark.parametrize("message", [
    "(sqlite3.OperationalError) table studies already exists",
    "(sqlite3.IntegrityError) UNIQUE constraint failed: alembic_version.version_num",
    "(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint",
])
def test_storage_retries_the_race_of_workers_creating_one_database(tmp_path, monkeypatch, message):
    # Two workers opening a fresh database at once: the loser of the schema race opens it again.
    import lmfloss.sweep.storage as storage_module

    real, calls = storage_module.RDBStorage, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(message)
        return real(*args, **kwargs)

    monkeypatch.setattr(storage_module, "RDBStorage", flaky)
    monkeypatch.setattr(storage_module.time, "sleep", lambda seconds: None)
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert len(calls) == 2 and isinstance(storage, real)


def test_storage_does_not_retry_other_errors(tmp_path, monkeypatch):
    import lmfloss.sweep.storage as storage_module

    def broken(*args, **kwargs):
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(storage_module, "RDBStorage", broken)
    with pytest.raises(LmflossError, match="disk I/O error"):
        make_storage(f"sqlite:///{tmp_path / 'study.db'}")


def test_a_waiting_worker_says_whose_heartbeat_it_waits_for(tmp_path, caplog):
    """A worker whose only work is a dead worker's trial says so while it waits: the trial,
    its worker, the heartbeat's age and when another worker takes it over."""
    import logging
    import re
    import warnings

    from lmfloss.sweep.storage import GridPointSampler, open_study

    spec = parse_sweep({**GRID, "space": {"loss": ["ce"]}})
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = make_storage(url, heartbeat=1, grace=2)
    study = open_study(spec, storage, spec.name, sampler=GridPointSampler())
    with warnings.catch_warnings():  # "heartbeat is supposed to be used with optimize": a dead worker's trial
        warnings.simplefilter("ignore", UserWarning)
        dead = study.ask()  # RUNNING, as a worker that was then SIGKILLed left it
    dead.set_user_attr("claim", point_key({"loss": "ce"}))
    dead.set_user_attr("run_name", "loss=ce")
    dead.set_user_attr("worker", "deadhost:4242")
    storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(spec.name), dead.number))

    with caplog.at_level(logging.INFO, logger="lmfloss.sweep.engine"):
        ran = run_worker(spec, tmp_path / "out", storage=url, runner=fast_runner, heartbeat=1, grace=2, poll=0.2)
    assert ran == 1
    waits = [r.getMessage() for r in caplog.records if "waits for trial" in r.getMessage()]
    assert waits, "the waiting worker said nothing"
    for line in waits:
        assert f"waits for trial {dead.number} (loss=ce) on deadhost:4242" in line
        assert "re-run by another worker once 2 s pass without a heartbeat" in line
    # Said at once when the heartbeat grew older than its 1 s interval (not 30 s later).
    late = [line for line in waits if "may be dead" in line]
    assert late, waits
    age = float(re.search(r"last heartbeat (\d+) s ago", late[0]).group(1))
    assert age > 1
    # ... and before the trial was taken over (the retry is what this worker then ran).
    messages = [r.getMessage() for r in caplog.records]
    assert messages.index(late[0]) < next(i for i, m in enumerate(messages) if "training loss=ce" in m)
    trials = study_trials(url, spec.name)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]


def test_wait_lines_come_every_30_s_and_at_once_when_a_heartbeat_is_late(caplog):
    import logging
    from types import SimpleNamespace

    from lmfloss.sweep.engine import WAIT_LOG_EVERY, WaitLog

    now = [0.0]
    log = WaitLog(0, heartbeat=60, grace=120, clock=lambda: now[0])
    trial = SimpleNamespace(number=7, user_attrs={"worker": "node2:99", "run_name": "loss=lmf_seed=1"})
    assert WAIT_LOG_EVERY == 30.0
    with caplog.at_level(logging.INFO, logger="lmfloss.sweep.engine"):
        first = log([trial], {7: 5.0})  # the first look: said at once
        assert len(first) == 1 and "last heartbeat 5 s ago" in first[0] and "node2:99" in first[0]
        now[0] = 20.0
        assert log([trial], {7: 25.0}) == []  # healthy, within 30 s of the last line: quiet
        now[0] = 25.0
        late = log([trial], {7: 65.0})  # older than the 60 s interval: said at once
        assert len(late) == 1 and "last heartbeat 65 s ago" in late[0] and "in about 55 s" in late[0]
        now[0] = 27.0
        assert log([trial], {7: 67.0}) == []  # still late, already said
        now[0] = 55.0
        assert len(log([trial], {7: 95.0})) == 1  # 30 s on: said again
        assert log([], {}) == []  # nothing running: nothing to say
    assert len(caplog.records) == 3 and caplog.records[1].getMessage() == late[0]


def test_bare_postgresql_url_gets_the_installed_driver_and_a_refused_connection_is_named():
    pytest.importorskip("psycopg2")
    from lmfloss.sweep.storage import make_storage, with_driver

    assert with_driver("postgresql://u:p@h/db") == "postgresql+psycopg2://u:p@h/db"
    assert with_driver("postgresql+psycopg://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert with_driver("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(LmflossError, match="connection refused") as info:
        make_storage("postgresql://u:p@127.0.0.1:1/db")
    assert ":p@" not in str(info.value)  # the password is not printed
