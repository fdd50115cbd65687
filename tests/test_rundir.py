"""The run directory (lmfloss.rundir): its files read back or refused by name, one writer at
a time, and a run that refuses data which changed since it was trained."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cli_helpers import one_error_line
from data_helpers import TINY, csv_dataset
from lmfloss import rundir
from lmfloss.cli import main
from lmfloss.errors import LmflossError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_damaged_report_of_a_finished_run_is_refused_by_name(tmp_path):
    """fit's finished-run check read report.json without validating it (a KeyError then)."""
    from lmfloss.rundir import read_report

    (tmp_path / "report.json").write_text(json.dumps({"val": {"f1_macro": 0.5}}))
    with pytest.raises(LmflossError, match="has no 'val' and 'test' metrics"):
        read_report(tmp_path)
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(LmflossError, match="is not readable JSON"):
        read_report(tmp_path)


def test_a_damaged_or_misplaced_evaluation_is_refused_by_name(tmp_path):
    from lmfloss import rundir

    path = rundir.eval_path(tmp_path, "test", "last")
    path.write_text("{not json")
    with pytest.raises(LmflossError, match="eval-test-last.json.*not readable JSON"):
        rundir.read_eval(tmp_path, "test", "last")
    # best.pt's evaluation copied under last.pt's name is not last.pt's evaluation
    rundir.write_eval({"split": "test", "checkpoint": "best", "f1_macro": 0.5}, path)
    with pytest.raises(LmflossError, match="not lmfloss evaluate's output for the test split of last.pt"):
        rundir.read_eval(tmp_path, "test", "last")


@pytest.mark.slow
def test_run_records_absolute_paths_and_refuses_changed_data(tmp_path, monkeypatch, capsys):
    table = csv_dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--dataset", "csv", "--csv", "data/base.csv", "--out", "run",
                 "--cache-dir", "cache", *TINY]) == 0
    text = (run / "config.yaml").read_text()
    saved = yaml.safe_load(text)
    assert Path(saved["csv"]).is_absolute() and Path(saved["csv"]) == table.resolve()
    assert "# csv as typed: data/base.csv" in text
    test_images = json.loads((run / "report.json").read_text())["test"]["n"]

    # Elsewhere, a different data/base.csv (three classes): the run still reads its own.
    elsewhere = tmp_path / "elsewhere"
    csv_dataset(elsewhere / "data", labels=("a", "b", "c"), seed=5)
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--out", str(tmp_path / "eval.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["n"] == test_images == 4

    # One label changes in the run's own CSV: scoring or resuming would be silently wrong.
    table.write_text(table.read_text().replace("img/benign3.png,benign", "img/benign3.png,malignant"))
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 2
    line = one_error_line(capsys, "evaluate")
    assert "the data changed since" in line and str(run) in line
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 2
    # The image cache's progress bars still show under --quiet (a bug of its own, see
    # test_train_cli.py's test_quiet_train_error_is_the_only_stderr_line); the error is the one other line.
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if x.strip() and not x.startswith("caching ")]
    assert len(lines) == 1 and lines[0].startswith("lmfloss train: error: "), lines
    assert "the data changed since" in lines[0]


@pytest.mark.slow
def test_refused_resume_keeps_the_finished_run(tmp_path, capsys):
    from lmfloss.rundir import is_finished

    table = csv_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", "--dataset", "csv", "--csv", str(table), "--out", str(run),
                 "--cache-dir", str(tmp_path / "cache"), *TINY]) == 0
    assert is_finished(run)
    table.write_text(table.read_text().replace("img/benign3.png,benign", "img/benign3.png,malignant"))
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 2
    assert "the data changed since" in capsys.readouterr().err
    assert is_finished(run)  # nothing of the finished run is lost by a refused command


@pytest.mark.slow
def test_second_train_on_one_run_directory_fails_at_once(tmp_path):
    table = csv_dataset(tmp_path / "data")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "lmfloss", "train", "--dataset", "csv", "--csv", str(table),
               "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *TINY]
    command[command.index("--epochs") + 1] = "2"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while "pid" not in ((out / ".lock").read_text() if (out / ".lock").is_file() else ""):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.02)
        # Hold the first run still while the second starts: it keeps its lock and is certain
        # to be running, however slow the machine (its pid is in the lock file).
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run([*command, "--overwrite"], env=env, capture_output=True, text=True,
                                timeout=120)
        assert first.poll() is None
        first.send_signal(signal.SIGCONT)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr, lines  # no data loaded, nothing trained
        assert lines[0].startswith("lmfloss train: error: ")
        assert f"is in use by lmfloss pid {first.pid}" in lines[0]
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGCONT)
            first.kill()
            first.wait()
    assert (out / "report.json").is_file()
    assert [row["epoch"] for row in csv.DictReader((out / "metrics.csv").open())] == ["1", "2"]


def test_losing_the_race_for_a_new_run_directory_leaves_the_winners_lock(tmp_path, monkeypatch):
    import importlib

    from lmfloss.config import TrainConfig
    from lmfloss.rundir import RunLock

    fit_module = importlib.import_module("lmfloss.train.fit")
    out = tmp_path / "run"
    held: list[RunLock] = []

    class OtherProcessFirst(RunLock):
        """The other process creates the folder and locks it between our check and our lock."""

        def acquire(self) -> RunLock:
            held.append(RunLock(self.path.parent).acquire())
            return super().acquire()

    monkeypatch.setattr(fit_module, "RunLock", OtherProcessFirst)
    config = TrainConfig(dataset="synthetic", model="shufflenet_v2_x0_5", weights="none", image_size=28,
                         epochs=1, device="cpu", bootstrap=0, loss="ce")
    try:
        with pytest.raises(LmflossError, match="is in use by lmfloss pid"):
            fit_module.fit(config, out, quiet=True)
        assert (out / ".lock").is_file()  # the winner's lock file, still naming it
        assert f"pid {os.getpid()}" in (out / ".lock").read_text()
    finally:
        for lock in held:
            lock.release()


def test_evaluation_files_are_named_by_what_was_done(tmp_path):
    names = {rundir.eval_path(tmp_path, "test", "best").name,
             rundir.eval_path(tmp_path, "test", "best", tta="flip").name,
             rundir.eval_path(tmp_path, "test", "best", calibrated=True).name,
             rundir.eval_path(tmp_path, "test", "best", tta="flip4", calibrated=True).name}
    assert names == {"eval-test-best.json", "eval-test-best-tta-flip.json", "eval-test-best-calibrated.json",
                     "eval-test-best-tta-flip4-calibrated.json"}  # none overwrites another
    # a calibrated evaluation written by lmfloss <= 0.3 under the plain name is still found
    rundir.write_eval({"split": "test", "checkpoint": "best", "calibration": {"temperature": 1.5}},
                      rundir.eval_path(tmp_path, "test", "best"))
    assert rundir.read_eval(tmp_path, "test", "best", calibrated=True)["calibration"]["temperature"] == 1.5
    assert rundir.read_eval(tmp_path, "test", "best", tta="flip") is None
