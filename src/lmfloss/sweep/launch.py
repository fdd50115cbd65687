"""Run a sweep with N local worker processes and summarise the study.

Several machines join one study by each running ``lmfloss sweep`` with the same sweep file,
``--storage`` URL and ``--study`` name; ``--workers N`` starts N such workers on this
machine (each its own process, sharing the CPU threads between them).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from optuna.study import Study
from optuna.trial import TrialState

from lmfloss.errors import Interrupted
from lmfloss.fileio import atomic_write_text, dict_rows_text
from lmfloss.sweep.devices import worker_devices
from lmfloss.sweep.engine import (
    TEST_METRICS,
    counted_trials,
    forgive_errors,
    next_action,
    point_status,
    run_worker,
)
from lmfloss.sweep.runners import TrialRunner
from lmfloss.sweep.spec import SweepSpec, point_key, run_name
from lmfloss.sweep.storage import default_storage, make_sampler, make_storage, open_study, redact
from lmfloss.sweep.tuning import PER_SPACE, write_tuning

logger = logging.getLogger(__name__)


@dataclass
class SweepResult:
    """What a sweep left in its study.

    Attributes:
        study_name, storage: the study (storage URL with the password hidden).
        out_dir: the sweep folder.
        rows: one mapping per trial (see :func:`trial_rows`).
        counts: trials per state (``COMPLETE``, ``FAIL``, ``PRUNED``, ``RUNNING``, ``WAITING``).
        best: the row of the best complete trial (highest validation objective: macro-F1, or mAP
            for a multi-label study), or ``None``.
        failed_points: run names of grid points that failed for good (error or too many kills).
        trials_csv: where :func:`write_trials_csv` put the table.
    """

    study_name: str
    storage: str
    out_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    best: dict[str, Any] | None = None
    failed_points: list[str] = field(default_factory=list)
    trials_csv: Path | None = None


def trial_rows(study: Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, value (the validation objective: macro-F1, or mAP for a
    multi-label run -- ``val_metric`` says which), run name and folder, params, tags, test
    metrics, duration and the bookkeeping of retries and duplicates."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        row: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name,
            "val_objective": t.value if t.state == TrialState.COMPLETE else None,
            "val_metric": attrs.get("val_metric", "f1_macro") if t.state == TrialState.COMPLETE else None,
            "val_f1_macro": _val_f1_macro(t),
            "run_name": attrs.get("run_name"),
            "params": dict(attrs.get("point") or t.params),  # per-space trials: the keys, not optuna's names
            "space": attrs.get("space"),
            "tags": attrs.get("tags") or {},
            "reused": attrs.get("reused"),
            "seconds": attrs.get("seconds"),
            "retry_of": t.system_attrs.get("failed_trial"),
            "duplicate_of": attrs.get("duplicate_of"),
            "error": attrs.get("error") or attrs.get("skipped"),
            "worker": attrs.get("worker"),
            "run_dir": attrs.get("run_dir"),
        }
        for metric in TEST_METRICS:
            row[f"test_{metric}"] = attrs.get(f"test_{metric}")
        rows.append(row)
    return rows


def _val_f1_macro(trial) -> float | None:
    """A complete trial's validation macro-F1: its objective in a multi-class study; in a
    multi-label one the macro-F1 at 0.5 its run recorded (trials of earlier versions: the
    objective, the only value they kept, when it was macro-F1)."""
    if trial.state != TrialState.COMPLETE:
        return None
    if trial.user_attrs.get("val_metric", "f1_macro") == "f1_macro":
        return trial.value
    return trial.user_attrs.get("val_f1_macro")


def write_trials_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """The trial table as CSV (params and tags as ``key=value;...``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["trial", "state", "val_objective", "val_metric", "val_f1_macro", "run_name", "params", "tags",
               *[f"test_{m}" for m in TEST_METRICS], "reused", "seconds", "retry_of",
               "duplicate_of", "error", "worker", "run_dir"]
    flat = [{**row, **{key: ";".join(f"{k}={v}" for k, v in row[key].items()) for key in ("params", "tags")}}
            for row in rows]
    atomic_write_text(dict_rows_text(columns, flat), path)
    return path


def summarize(spec: SweepSpec, out_dir: Path, storage: str, study_name: str,
              max_retry: int = 3) -> SweepResult:
    """Read the study back (no training) and write ``<out_dir>/trials.csv``."""
    storage_obj = make_storage(storage, max_retry=max_retry)
    study = open_study(spec, storage_obj, study_name, sampler=make_sampler(spec))
    rows = trial_rows(study)
    counts = dict(Counter(r["state"] for r in rows))
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    best = max(complete, key=lambda r: r["val_objective"]) if complete else None
    failed: list[str] = []
    if spec.sampler == "grid":
        status = point_status(spec, counted_trials(study), max_retry)
        names = {point_key(p): run_name(p) for p in spec.grid_points()}
        failed = [names[k] for k, s in status.items() if s == "failed"]
    result = SweepResult(study_name=study_name, storage=redact(storage), out_dir=out_dir, rows=rows,
                         counts=counts, best=best, failed_points=failed)
    result.trials_csv = write_trials_csv(rows, out_dir / "trials.csv")
    if spec.budget == PER_SPACE:
        write_tuning(spec, rows, out_dir)
    return result


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _worker_process(kwargs: dict[str, Any], log_level: int, threads: int, env: dict[str, str] | None = None) -> None:
    # Before anything initialises CUDA in this fresh (spawned) process: its one GPU.
    os.environ.update(env or {})
    logging.basicConfig(level=log_level, format="%(processName)s: %(message)s")
    try:
        with _torch_threads(threads):
            run_worker(**kwargs)
    except Interrupted as exc:  # Ctrl-C reaches every worker: stop quietly, the parent reports
        sys.exit(128 + exc.signal_number)
    except KeyboardInterrupt:
        sys.exit(130)


def _run_local_workers(kwargs: dict[str, Any], workers: int, placement: list[str] | None) -> None:
    """Run ``workers`` workers on the study until they stop (:func:`run_sweep`'s several-worker case).

    Args:
        kwargs: :func:`lmfloss.sweep.engine.run_worker`'s arguments, less ``worker_index``.
        workers: how many workers in all.
        placement: per worker, the GPU it sees (``CUDA_VISIBLE_DEVICES``), or None.
    """
    # Without GPU placement this process is worker 0 and the others are spawned (no forked
    # torch/DB state); with placement every worker is spawned, so each can be given its GPU
    # before CUDA starts. Every worker gets an equal share of the CPU threads.
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    level = logging.getLogger("lmfloss").getEffectiveLevel()
    first = 0 if placement is not None else 1
    processes = [
        context.Process(target=_worker_process, name=f"worker-{i}",
                        args=({**kwargs, "worker_index": i}, level, threads,
                              {"CUDA_VISIBLE_DEVICES": placement[i]} if placement else None))
        for i in range(first, workers)
    ]
    for process in processes:
        process.start()
    try:
        if placement is None:
            with _torch_threads(threads):
                run_worker(**kwargs, worker_index=0)
        for process in processes:
            process.join()
    except BaseException:
        for process in processes:
            process.terminate()
        raise
    for process in processes:
        if process.exitcode:
            logger.warning("%s exited with status %s; its trials are re-run by the others "
                           "or the next `lmfloss sweep`", process.name, process.exitcode)


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    workers: int = 1,
    runner: TrialRunner | None = None,
    heartbeat: int = 60,
    grace: int | None = None,
    max_retry: int = 3,
    devices: list[str] | None = None,
    trials_per_device: int = 1,
    retry_failed: bool = False,
) -> SweepResult:
    """Run ``workers`` local workers on the study until it is done, then summarise it.

    Args:
        spec: the sweep.
        out_dir: the sweep folder.
        storage: database URL (default: SQLite ``<out_dir>/study.db``).
        study_name: default ``spec.name``.
        workers: local workers: this process and ``workers - 1`` spawned ones, each with
            ``cpu_count // workers`` torch threads.
        runner: trains one trial (must be picklable, i.e. a module-level function, when
            ``workers > 1``); default: in-process ``fit`` or torchrun.
        heartbeat, grace, max_retry: see :func:`lmfloss.sweep.engine.make_storage`.
        devices: GPU numbers (:func:`lmfloss.sweep.devices.parse_devices`): then
            ``len(devices) * trials_per_device`` workers are spawned, each seeing one GPU
            (``CUDA_VISIBLE_DEVICES``), and ``workers`` is ignored.
        trials_per_device: concurrent trials per GPU.
        retry_failed: train again the grid points whose training raised
            (:func:`lmfloss.sweep.engine.forgive_errors`); they are left alone otherwise.

    Raises:
        ValueError: ``workers < 1`` or ``trials_per_device < 1``.
        LmflossError: the storage cannot be opened or holds another sweep.
    """
    placement = worker_devices(devices, trials_per_device) if devices else None
    if placement is not None:
        workers = len(placement)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(out_dir)
    study_name = study_name or spec.name
    # Create the study (and its tables) once before the workers race to do it.
    study = open_study(spec, make_storage(url, heartbeat=heartbeat, grace=grace, max_retry=max_retry),
                       study_name, sampler=make_sampler(spec))
    kwargs: dict[str, Any] = dict(spec=spec, out_dir=out_dir, storage=url, study_name=study_name,
                                  runner=runner, heartbeat=heartbeat, grace=grace, max_retry=max_retry)
    if retry_failed:
        if spec.sampler != "grid":
            raise ValueError(f"--retry-failed trains failed grid points again; a {spec.sampler} search has none "
                             "(it draws new trials in place of failed ones)")
        forgiven = forgive_errors(study)
        if forgiven:
            logger.info("training again the grid points of failed trial(s) %s", ", ".join(map(str, forgiven)))
        else:
            logger.info("--retry-failed: no grid point has failed")
    done = next_action(spec, counted_trials(study), max_retry) == "done"
    if done or (workers == 1 and placement is None):
        run_worker(**kwargs)
        return summarize(spec, out_dir, url, study_name, max_retry=max_retry)

    _run_local_workers(kwargs, workers, placement)
    return summarize(spec, out_dir, url, study_name, max_retry=max_retry)
