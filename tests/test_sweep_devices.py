"""Issue 13: a sweep's workers placed on GPUs, several trials per GPU (checked with fake devices)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from lmfloss.cli import main
from lmfloss.errors import LmflossError
from lmfloss.sweep import parse_sweep, run_name, run_sweep
from lmfloss.sweep.devices import check_memory, parse_devices, worker_devices

GRID = {"name": "devices", "sampler": "grid", "base": {"dataset": "synthetic", "device": "cpu"},
        "space": {"loss": ["ce", "lmf"], "seed": [1, 2, 3]}}


def placed_runner(config, run_dir: Path) -> dict:
    """Module level (spawned workers unpickle it): records the GPU its worker was given."""
    report = {"val": {"f1_macro": config.seed / 10}, "test": {"f1_macro": 0.1}}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_text(json.dumps(report))
    with open(run_dir.parent.parent / "placement.log", "a") as handle:
        handle.write(f"{os.getpid()} {os.environ.get('CUDA_VISIBLE_DEVICES')} {run_dir.name}\n")
    return report


def test_devices_are_parsed_and_checked_against_the_machine():
    assert parse_devices("0,2", count=lambda: 4) == ["0", "2"]
    assert parse_devices("auto", count=lambda: 3) == ["0", "1", "2"]
    assert parse_devices(None, count=lambda: 3) is None
    with pytest.raises(ValueError, match="--devices 5: this machine has 4 GPU"):
        parse_devices("0,5", count=lambda: 4)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        parse_devices("auto", count=lambda: 0)
    with pytest.raises(ValueError, match="names a GPU twice"):
        parse_devices("1,1", count=lambda: 4)
    with pytest.raises(ValueError, match="GPU numbers such as 0,1"):
        parse_devices("cuda:0", count=lambda: 4)


def test_trials_per_device_give_one_worker_per_slot():
    assert worker_devices(["0", "1"], 2) == ["0", "0", "1", "1"]
    assert worker_devices(["3"], 1) == ["3"]
    with pytest.raises(ValueError, match="--trials-per-device must be an integer >= 1, got 0"):
        worker_devices(["0"], 0)


def test_memory_check_refuses_more_trials_than_fit():
    gib = 2**30
    free = {"0": 40 * gib, "1": 10 * gib}
    check_memory(["0"], 4, need_bytes=8 * gib, free_bytes=free.get)  # 4 x 9.2 GiB < 40 GiB
    with pytest.raises(LmflossError, match=r"GPU 1 has 10.0 GiB free .* so 1 fit"):
        check_memory(["0", "1"], 2, need_bytes=8 * gib, free_bytes=free.get)


# Worker processes (each imports torch and optuna): seconds each, as slow as a tiny training.
@pytest.mark.slow
def test_each_worker_sees_its_own_gpu_and_every_point_runs_once(tmp_path):
    spec = parse_sweep(GRID)
    result = run_sweep(spec, tmp_path / "out", runner=placed_runner, heartbeat=1, devices=["0", "1"],
                       trials_per_device=1)
    # COMPLETE once per point; a worker may also step aside (PRUNED) when the other holds the last point.
    assert result.counts["COMPLETE"] == 6 and set(result.counts) <= {"COMPLETE", "PRUNED"}
    lines = [line.split() for line in (tmp_path / "out" / "placement.log").read_text().splitlines()]
    assert Counter(name for _, _, name in lines) == Counter(run_name(p) for p in spec.grid_points())
    by_worker = {}
    for pid, device, _ in lines:
        by_worker.setdefault(pid, set()).add(device)
    assert all(len(devices) == 1 for devices in by_worker.values())  # a worker keeps its GPU
    assert set().union(*by_worker.values()) <= {"0", "1"}
    assert str(os.getpid()) not in by_worker  # with placement every worker is a spawned process


@pytest.mark.parametrize(("argv", "message"), [
    (["--trials-per-device", "0"], "--trials-per-device must be an integer >= 1, got 0"),
    (["--devices", "7"], "--devices 7: this machine has"),
])
def test_bad_device_options_are_one_line_and_start_nothing(tmp_path, capsys, argv, message):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(json.dumps(GRID))
    assert main(["sweep", "--config", str(sweep), "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "out").exists()
