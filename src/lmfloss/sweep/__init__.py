"""Sweeps: grids and searches over training configs on an Optuna study (SQLite/PostgreSQL).

::

    from lmfloss.sweep import load_sweep, run_sweep

    spec = load_sweep("configs/demo-sweep.yaml")
    result = run_sweep(spec, "sweeps/demo", workers=2)
    result.best["run_dir"], result.best["val_objective"]  # val macro-F1 (mAP if multi-label)

Modules: :mod:`~lmfloss.sweep.spec` (the sweep file's model: grid, overrides, naming),
:mod:`~lmfloss.sweep.parse` (reading and validating it), :mod:`~lmfloss.sweep.storage`
(database, heartbeat, samplers), :mod:`~lmfloss.sweep.engine` (claims, the worker loop), :mod:`~lmfloss.sweep.runners` (training one
trial in-process or under torchrun), :mod:`~lmfloss.sweep.launch` (local workers, summary),
:mod:`~lmfloss.sweep.tuning` (the same budget per loss, confirmation), :mod:`~lmfloss.sweep.status` (``--status``).
"""

from lmfloss.rundir import read_report
from lmfloss.sweep.engine import next_action, point_status, run_worker
from lmfloss.sweep.launch import SweepResult, run_sweep, summarize, trial_rows, write_trials_csv
from lmfloss.sweep.parse import load_sweep, parse_sets, parse_sweep
from lmfloss.sweep.runners import TorchrunRunner, TrialRunner, default_runner
from lmfloss.sweep.spec import Override, Range, SweepSpec, point_key, run_name
from lmfloss.sweep.storage import (
    GridPointSampler,
    default_storage,
    make_storage,
    open_study,
    redact,
)

__all__ = [
    "GridPointSampler",
    "Override",
    "Range",
    "SweepResult",
    "SweepSpec",
    "TorchrunRunner",
    "TrialRunner",
    "default_runner",
    "default_storage",
    "load_sweep",
    "make_storage",
    "next_action",
    "open_study",
    "parse_sets",
    "parse_sweep",
    "point_key",
    "point_status",
    "read_report",
    "redact",
    "run_name",
    "run_sweep",
    "run_worker",
    "summarize",
    "trial_rows",
    "write_trials_csv",
]
