"""The command line (lmfloss.cli): what every subcommand shares."""

from __future__ import annotations

import signal

from lmfloss.cli import main


def test_sigterm_inside_a_command_exits_143(tmp_path, monkeypatch, capsys):
    from lmfloss.commands import report as report_command
    from lmfloss.errors import TrainingInterrupted

    def stopped(args):
        raise TrainingInterrupted("stopped during epoch 2 (step 5); last.pt holds epoch 1", signal.SIGTERM)

    monkeypatch.setattr(report_command, "_run_report", stopped)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "out")]) == 128 + signal.SIGTERM == 143
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == ["lmfloss report: stopped during epoch 2 (step 5); last.pt holds epoch 1"]
