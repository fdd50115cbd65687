"""The Optuna side of a sweep: storage, study, sampler, objective and the worker loop.

Every worker (a process on this machine or another) runs :func:`run_worker` against the
same study in a relational database (SQLite file or PostgreSQL URL) and takes the next
trial until there is nothing left:

- **Grid**: a trial *claims* a grid point by writing the point's key as the user attribute
  ``claim`` and only then reads the other trials; it trains only if no other trial that is
  complete, running or waiting holds the same claim, else it claims another free point.
  Because every worker writes before it reads, two workers can never both go ahead with one
  point (at worst both step aside and the point is taken later), so every grid point is
  completed exactly once.
- **Heartbeat**: a running trial's worker writes a heartbeat every ``heartbeat`` seconds;
  a trial whose heartbeat is older than ``grace`` seconds (its worker was killed) is failed
  by whichever worker looks next, and :class:`optuna.storages.RetryHeartbeatStaleTrialCallback`
  (the new name of ``RetryFailedTrialCallback``) queues a copy with the same parameters,
  which the next free worker runs. Workers wait while other workers' trials run, so a killed
  trial is always picked up, never left as a hole. A waiting worker says which trials it
  waits for, on which worker, and how old their last heartbeat is (:class:`WaitLog`).
- **Resume**: a trial's run directory is named from its parameters; if it already holds a
  finished run (``report.json``), the result is reused instead of retrained, and a
  half-trained run continues from ``last.pt``.

The objective is the validation macro-F1 (``report["val"]["f1_macro"]``; a multi-label run's
mAP, ``report["val"]["map"]``), never test.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import socket
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import FrozenTrial, Trial, TrialState

from lmfloss.config import TrainConfig, diff_configs, format_diff
from lmfloss.errors import DiskFull, Interrupted, LmflossError
from lmfloss.fileio import disk_full
from lmfloss.rundir import CONFIG, read_config_dict, read_report, wait_until_free, write_sweep_info
from lmfloss.sweep.runners import TrialRunner, default_runner
from lmfloss.sweep.spec import Range, Scalar, SweepSpec, point_key, run_name
from lmfloss.sweep.storage import (
    GridPointSampler,
    default_storage,
    make_sampler,
    make_storage,
    open_study,
    redact,
)
from lmfloss.sweep.tuning import PER_SPACE, next_space, scalar_params
from lmfloss.task import get_task

logger = logging.getLogger(__name__)

RUNS_DIR = "runs"
TEST_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "balanced_accuracy",
                "map", "auc_macro")  # the last two: multi-label runs
WAIT_LOG_EVERY = 30.0  # seconds between a waiting worker's "still waiting" lines


# ---- the state of the study ------------------------------------------------------------
def point_status(spec: SweepSpec, trials: Sequence[FrozenTrial], max_retry: int,
                 exclude: int | None = None) -> dict[str, str]:
    """Status of every grid point (that ``spec.only`` lets through): complete | failed |
    running | waiting | free.

    A point is *failed* when its training raised an error (``error`` user attribute) or it
    was killed more than ``max_retry`` times; both are left alone rather than retried forever.
    ``exclude`` is a trial number to ignore (the trial asking).
    """
    keys = [point_key(p) for p in spec.wanted_points()]
    seen: dict[str, set[str]] = {k: set() for k in keys}
    killed: Counter[str] = Counter()
    for t in trials:
        claim = t.user_attrs.get("claim")
        if claim not in seen or t.number == exclude:
            continue
        if t.state == TrialState.FAIL:
            if "error" in t.user_attrs:
                seen[claim].add("failed")
            else:
                killed[claim] += 1
        elif t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING):
            seen[claim].add(t.state.name.lower())
    status = {}
    for key in keys:
        for name in ("complete", "failed", "running", "waiting"):
            if name in seen[key]:
                status[key] = name
                break
        else:
            status[key] = "failed" if killed[key] > max_retry else "free"
    return status


FORGIVEN = "forgiven_errors"  # the study's user attribute: failed trials --retry-failed set aside


def counted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials less the failed ones ``--retry-failed`` set aside (so their grid
    points are free again): what every decision of the sweep reads."""
    forgiven = set(study.user_attrs.get(FORGIVEN) or ())
    return [t for t in study.get_trials(deepcopy=False) if t.number not in forgiven]


def forgive_errors(study: optuna.Study) -> list[int]:
    """``--retry-failed``: set aside every trial whose training raised so far, so that its
    grid point is trained again (a transient cause: a full disk, a busy GPU, a lock); a new
    error fails the point again. Returns the trials set aside now."""
    before = set(study.user_attrs.get(FORGIVEN) or ())
    errors = {t.number for t in study.get_trials(deepcopy=False)
              if t.state == TrialState.FAIL and "error" in t.user_attrs} - before
    if errors:
        study.set_user_attr(FORGIVEN, sorted(before | errors))
    return sorted(errors)


def next_action(spec: SweepSpec, trials: Sequence[FrozenTrial], max_retry: int) -> str:
    """What a worker should do now: ``run`` a trial, ``wait`` for others, or stop (``done``)."""
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    if spec.sampler == "grid":
        status = Counter(point_status(spec, trials, max_retry).values())
        if status["free"] or status["waiting"] or waiting:
            return "run"
        return "wait" if running else "done"
    budget = spec.total_trials
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    errors = sum(t.state == TrialState.FAIL and "error" in t.user_attrs for t in trials)
    if complete >= budget or errors >= budget:
        return "done"
    if waiting or complete + running < budget:
        return "run"
    return "wait" if running else "done"


RERUN_ADVICE = "run the same `lmfloss sweep` command again to continue the sweep"


class SweepInterrupted(Interrupted):
    """Ctrl-C or SIGTERM stopped a sweep worker; re-running the sweep continues it."""


class _StopTrial(KeyboardInterrupt):
    """Carries an interruption through ``study.optimize`` (which catches ``Exception``)."""

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.message, self.signal_number = message, signal_number


class _QuietTrialEnd(logging.Filter):
    """Drops Optuna's lines about a trial this worker stopped (Ctrl-C/SIGTERM) or another
    worker failed as stale: lmfloss says each in one line, where Optuna printed the whole
    traceback (~25 lines for a Ctrl-C). A trial whose training raised keeps Optuna's
    traceback: that may be a bug to report."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (_StopTrial, optuna.exceptions.UpdateFinishedTrialError)):
            return False
        return not re.fullmatch(r"Trial \d+ failed with value None\.", record.getMessage())


_QUIET_TRIAL_END = _QuietTrialEnd()


# ---- the objective ---------------------------------------------------------------------
class Objective:
    """Trains (or reuses) one trial and returns its validation macro-F1.

    Args:
        spec: the sweep.
        out_dir: the sweep folder; run directories go to ``<out_dir>/runs/<name>``.
        runner: trains one config into one run directory, returning ``report.json``.
        sampler: the study's sampler (grid points are handed to it).
        max_retry: see :func:`point_status`.
        study_name: recorded in each run's ``sweep.json``.
    """

    def __init__(self, spec: SweepSpec, out_dir: Path, runner: TrialRunner,
                 sampler: optuna.samplers.BaseSampler, max_retry: int, study_name: str) -> None:
        self.spec = spec
        self.out_dir = out_dir
        self.runner = runner
        self.sampler = sampler
        self.max_retry = max_retry
        self.study_name = study_name
        self.reaped: tuple[int, str] | None = None  # (trial, run) another worker failed under us
        self.stop: _StopTrial | None = None  # Ctrl-C/SIGTERM stopped the current trial
        self.stop_error: DiskFull | None = None  # a full disk stopped it
        self._rng = random.Random()  # spreads concurrent workers over different points
        if spec.sampler == "grid":
            self._points = {point_key(p): p for p in spec.grid_points()}
            self._choices = spec.choices()

    def __call__(self, trial: Trial) -> float:
        params = self._grid_params(trial) if self.spec.sampler == "grid" else self._search_params(trial)
        name = run_name(params)
        run_dir = self.out_dir / RUNS_DIR / name
        trial.set_user_attr("run_name", name)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        started = time.perf_counter()
        try:
            config, tags = self.spec.resolve(params)  # a sampled value TrainConfig rejects fails here
            trial.set_user_attr("tags", tags)
            self._wait_for_run_dir(trial.number, run_dir)
            report = read_report(run_dir)
            reused = report is not None
            if reused:
                _check_same_config(run_dir, config)
            if report is None:
                logger.info("trial %d: training %s", trial.number, name)
                report = dict(self.runner(config, run_dir))
        except Exception as exc:
            full = disk_full(exc, then=RERUN_ADVICE)
            if full is not None:
                # A full disk is the machine's, not the trial's: recorded as an error it would fail
                # every following trial (and a grid point for good). The trial is left for a re-run
                # like a stopped one, and the worker stops with the one line of the full disk.
                self.stop_error = full
                # best effort: the study's database may be on the full disk too (or the trial was
                # failed as stale meanwhile); the worker stops with the disk's line either way
                with contextlib.suppress(Exception):
                    trial.set_user_attr("interrupted", f"DiskFull: {full}")
                    if self.spec.sampler != "grid":
                        _queue_copy(trial)
                raise _StopTrial(str(full), 0) from exc
            if _is_interruption(exc):
                # Ctrl-C / SIGTERM: the run keeps last.pt; the trial is left for a re-run
                # (it counts as killed, not failed), and this worker stops.
                # (failed as stale meanwhile: the heartbeat's retry has queued the copy already)
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    trial.set_user_attr("interrupted", str(exc))
                    if self.spec.sampler != "grid":  # a grid point is free again; a drawn one is queued
                        _queue_copy(trial)
                self.stop = _StopTrial(
                    f"stopped during trial {trial.number} ({name}); its run keeps the finished epochs; "
                    + RERUN_ADVICE, exc.signal_number,
                )
                raise self.stop from exc
            try:
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            except optuna.exceptions.UpdateFinishedTrialError:
                self.reaped = (trial.number, name)  # failed as stale meanwhile: its copy meets the error again
            logger.warning("trial %d (%s) failed: %s: %s", trial.number, name, type(exc).__name__, exc)
            raise
        try:
            return self._record(trial, params, tags, run_dir, report, reused, started)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker failed this trial as stale (no heartbeat for `grace` seconds: this
            # process or its machine was paused) and queued a copy; the finished run stays in
            # run_dir, and the copy reuses it. run_worker carries on with the next trial.
            self.reaped = (trial.number, name)
            raise

    def _record(self, trial: Trial, params: dict[str, Scalar], tags: dict[str, Any], run_dir: Path,
                report: Mapping[str, Any], reused: bool, started: float) -> float:
        metric = objective_metric(report)
        value = float(report["val"][metric])
        test = report.get("test") or {}
        name = run_dir.name
        trial.set_user_attr("reused", reused)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        f1 = report["val"].get("f1_macro")
        trial.set_user_attr("val_f1_macro", None if f1 is None else float(f1))
        trial.set_user_attr("val_metric", metric)
        for key in TEST_METRICS:
            if isinstance(test.get(key), (int, float)):
                trial.set_user_attr(f"test_{key}", float(test[key]))
        write_sweep_info({
            "study": self.study_name, "trial": trial.number, "params": params, "tags": tags,
            **({"tuning": self.spec.tuning} if self.spec.tuning else {}),
            **{k: v for k, v in tags.items() if k not in ("study", "trial", "params", "tags")},
        }, run_dir)
        logger.info("trial %d: %s val %s %.4f%s", trial.number, name, "mAP" if metric == "map" else "macro-F1", value,
                    " (reused finished run)" if reused else "")
        return value

    def _wait_for_run_dir(self, number: int, run_dir: Path) -> None:
        """Wait while another live process trains into ``run_dir`` -- the worker of a trial
        that was failed as stale while only paused, whose copy this trial may be -- so that
        this trial reuses that run instead of failing on its lock."""
        last = [-float("inf")]

        def say(holder: str) -> None:
            if time.monotonic() - last[0] >= WAIT_LOG_EVERY:
                logger.info("trial %d: waiting for %s, in use by %s", number, run_dir.name, holder)
                last[0] = time.monotonic()

        wait_until_free(run_dir, on_wait=say)

    # grid: claim a free point, stepping aside when another trial holds it
    def _grid_params(self, trial: Trial) -> dict[str, Scalar]:
        fixed = trial.params  # a re-queued trial of a killed worker already has its point
        tried: set[str] = set()
        while True:
            if fixed:
                key = point_key(fixed)
                point: Mapping[str, Scalar] = fixed
            else:
                trials = counted_trials(trial.study)
                status = point_status(self.spec, trials, self.max_retry, exclude=trial.number)
                free = [k for k, s in status.items() if s == "free" and k not in tried]
                if not free:
                    trial.set_user_attr("skipped", "no free grid point left")
                    raise optuna.TrialPruned("no free grid point left")
                key = self._rng.choice(free)
                point = self._points[key]
            trial.set_user_attr("claim", key)  # write first, then read: see the module docstring
            rivals = [t.number for t in trial.study.get_trials(deepcopy=False)
                      if t.number != trial.number and t.user_attrs.get("claim") == key
                      and t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)]
            if not rivals:
                break
            if fixed:
                trial.set_user_attr("duplicate_of", min(rivals))
                raise optuna.TrialPruned(f"grid point already taken by trial {min(rivals)}")
            tried.add(key)
        if not fixed and isinstance(self.sampler, GridPointSampler):
            self.sampler.assign(trial.number, point)
        return {k: trial.suggest_categorical(k, self._choices[k]) for k in point}

    # random / TPE: sample, then make sure no other trial is training the same folder
    def _search_params(self, trial: Trial) -> dict[str, Scalar]:
        if self.spec.budget == PER_SPACE:  # the space with the fewest trials, its keys named per space
            space = trial.user_attrs.get("space")  # a copy of a killed trial keeps its space and values
            if not (isinstance(space, int) and 0 <= space < len(self.spec.subspaces)):
                space = next_space(self.spec, trial.study.get_trials(deepcopy=False))
            trial.set_user_attr("space", space)
            params = scalar_params(self.spec, space, lambda name, value: _suggest(trial, name, value))
            trial.set_user_attr("point", params)
        else:
            params = {key: _suggest(trial, key, value) for key, value in self.spec.subspaces[0].items()}
        key = point_key(params)
        trial.set_user_attr("claim", key)
        busy = [t.number for t in trial.study.get_trials(deepcopy=False)
                if t.number != trial.number and t.user_attrs.get("claim") == key
                and t.state in (TrialState.RUNNING, TrialState.WAITING)]
        if busy:
            trial.set_user_attr("duplicate_of", min(busy))
            raise optuna.TrialPruned(f"the same parameters are being trained by trial {min(busy)}")
        return params


def _queue_copy(trial: Trial) -> None:
    """Queue a copy of an interrupted random/TPE trial -- its values, space and run -- as the
    heartbeat's retry does for a killed one, so that the next run continues its run (from
    ``last.pt``) instead of drawing new values and leaving the half-trained run behind."""
    trial.study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs={k: v for k, v in trial.user_attrs.items() if k != "interrupted"},
        system_attrs={"failed_trial": trial.number},
    ))


def _suggest(trial: Trial, name: str, value: Any) -> Scalar:
    """One value of a random/TPE trial: from a :class:`Range`, or one of a list of choices."""
    if isinstance(value, Range):
        if value.integer:
            return trial.suggest_int(name, int(value.low), int(value.high), step=int(value.step or 1), log=value.log)
        return trial.suggest_float(name, value.low, value.high, step=value.step, log=value.log)
    return trial.suggest_categorical(name, value)


def objective_metric(report: Mapping[str, object]) -> str:
    """What a trial is judged by on validation: its task's headline (macro-F1, or mAP for a
    multi-label run)."""
    return get_task(report).headline


def _is_interruption(exc: BaseException) -> bool:
    return isinstance(exc, Interrupted)


def _check_same_config(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to reuse a finished run trained with another config (an edited sweep file)."""
    if not (run_dir / CONFIG).is_file():
        return
    diffs = diff_configs(read_config_dict(run_dir), config, ignore_roles=("runtime",))
    if diffs:
        raise LmflossError(f"{str(run_dir)!r} holds a finished run of another config "
                           f"({format_diff(diffs, 'run has', 'sweep asks')}); delete it or use another --out")


# ---- waiting for other workers ---------------------------------------------------------
class HeartbeatAges:
    """Seconds since each running trial's last heartbeat, by the database's clock.

    Optuna has no public reader of heartbeats: this reads its ``trial_heartbeats`` table
    (``trial_id``, ``heartbeat``: what :meth:`RDBStorage.record_heartbeat` writes and
    ``fail_stale_trials`` compares with ``now()``), finding trial ids through the storage's
    public API. Any failure (a future schema) gives no ages, never an error: the ages are
    only said in the log.
    """

    def __init__(self, storage: RDBStorage, study_name: str) -> None:
        self.storage = storage
        self.study_name = study_name
        self._ids: dict[int, int] = {}  # trial number -> trial id (fixed once created)

    def __call__(self, numbers: Sequence[int]) -> dict[int, float]:
        """``{trial number: seconds}``; a trial without a heartbeat yet is left out."""
        if not numbers:
            return {}
        try:
            study_id = self.storage.get_study_id_from_name(self.study_name)
            for number in numbers:
                if number not in self._ids:
                    self._ids[number] = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
            by_id = {self._ids[n]: n for n in numbers}
            table = sa.table("trial_heartbeats", sa.column("trial_id", sa.Integer),
                             sa.column("heartbeat", sa.DateTime))
            with self.storage.engine.connect() as conn:
                now = conn.execute(sa.select(sa.func.now())).scalar_one()
                rows = conn.execute(sa.select(table.c.trial_id, table.c.heartbeat)
                                    .where(table.c.trial_id.in_(list(by_id)))).all()
        except Exception as exc:  # noqa: BLE001 - the log line then says "heartbeat unknown"
            logger.debug("cannot read the trials' heartbeats: %s: %s", type(exc).__name__, exc)
            return {}
        return {by_id[trial_id]: _seconds_between(beat, now) for trial_id, beat in rows}


def _seconds_between(earlier: datetime, later: datetime) -> float:
    # PostgreSQL answers with time zones, SQLite without: compare as optuna does.
    return max((later.replace(tzinfo=None) - earlier.replace(tzinfo=None)).total_seconds(), 0.0)


class WaitLog:
    """Says, while a worker waits, which other workers' trials it waits for.

    One INFO line per running trial: its number and run, its worker (the ``worker`` user
    attribute, ``host:pid``), the age of its last heartbeat, and that once ``grace``
    seconds pass without one the trial is failed and re-run by another worker. Lines come
    at the first wait, then at most every ``every`` seconds -- and at once when a trial's
    heartbeat becomes older than the interval (its worker may be dead: the user sees why
    the sweep stands still, and for how long).

    Args:
        worker_index: this worker's index (named in the lines).
        heartbeat: the heartbeat interval, seconds.
        grace: seconds without a heartbeat after which a trial is failed.
        every: seconds between lines while nothing changes.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, worker_index: int, heartbeat: int, grace: int, *, every: float = WAIT_LOG_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.worker_index = worker_index
        self.heartbeat = heartbeat
        self.grace = grace
        self.every = every
        self.clock = clock
        self._last: float | None = None
        self._late: set[int] = set()

    def __call__(self, running: Sequence[FrozenTrial], ages: Mapping[int, float]) -> list[str]:
        """Log (or not) for one look at the study; returns the lines logged."""
        now = self.clock()
        late = {t.number for t in running if ages.get(t.number, 0.0) > self.heartbeat}
        newly_late = late - self._late
        self._late = late
        if not running or (self._last is not None and now - self._last < self.every and not newly_late):
            return []
        self._last = now
        lines = [self._line(t, ages.get(t.number)) for t in running]
        for line in lines:
            logger.info("%s", line)
        return lines

    def _line(self, trial: FrozenTrial, age: float | None) -> str:
        worker = trial.user_attrs.get("worker", "an unknown worker")
        run = trial.user_attrs.get("run_name")
        what = f"trial {trial.number}" + (f" ({run})" if run else "")
        head = f"worker {self.worker_index} waits for {what} on {worker}"
        rerun = f"re-run by another worker once {self.grace} s pass without a heartbeat (grace)"
        if age is None:
            return f"{head}: no heartbeat read yet; it is {rerun}"
        if age > self.heartbeat:
            left = max(self.grace - age, 0.0)
            return (f"{head}: last heartbeat {age:.0f} s ago, every {self.heartbeat} s expected -- its worker "
                    f"may be dead; it is {rerun}, in about {left:.0f} s")
        return f"{head}: last heartbeat {age:.0f} s ago; it is {rerun}"


# ---- the worker loop -----------------------------------------------------------------
def run_worker(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    runner: TrialRunner | None = None,
    heartbeat: int = 60,
    grace: int | None = None,
    max_retry: int = 3,
    worker_index: int = 0,
    poll: float | None = None,
    max_trials: int | None = None,
    on_trial: Callable[[FrozenTrial], None] | None = None,
) -> int:
    """Take trials from the study until it is finished; return how many this worker ran.

    Args:
        spec: the sweep.
        out_dir: the sweep folder (run directories, default SQLite storage).
        storage: database URL (default: :func:`default_storage` of ``out_dir``).
        study_name: the study (default ``spec.name``).
        runner: trains one trial (default: :func:`lmfloss.sweep.runners.default_runner`).
        heartbeat, grace, max_retry: see :func:`make_storage`.
        worker_index: this worker's index among local workers (sampler seeding, logs).
        poll: seconds between looks while only other workers' trials run (default: the
            smaller of ``heartbeat`` and 2 s: one cheap query, and a worker whose last
            trial is left to others stops soon after they finish).
        max_trials: stop after this many trials even if work remains (``None``: no limit).
        on_trial: called with each finished trial of this worker.

    Raises:
        LmflossError: the storage cannot be opened or holds a different sweep.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(out_dir)
    study_name = study_name or spec.name
    storage_obj = make_storage(url, heartbeat=heartbeat, grace=grace, max_retry=max_retry)
    sampler = make_sampler(spec, worker_index)
    study = open_study(spec, storage_obj, study_name, sampler=sampler)
    objective = Objective(spec, out_dir, runner or default_runner(spec.nproc_per_node), sampler,
                          max_retry, study_name)
    poll = float(min(heartbeat, 2) if poll is None else poll)
    heartbeat_ages = HeartbeatAges(storage_obj, study_name)
    wait_log = WaitLog(worker_index, heartbeat, storage_obj.grace_period or 2 * heartbeat)
    ran = 0
    logging.getLogger("optuna.study._optimize").addFilter(_QUIET_TRIAL_END)  # once: filters are a set
    logger.info("worker %d joined study %r in %s", worker_index, study_name, redact(url))
    while max_trials is None or ran < max_trials:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)
        trials = counted_trials(study)
        action = next_action(spec, trials, max_retry)
        if action == "done":
            break
        if action == "wait":
            running = [t for t in trials if t.state == TrialState.RUNNING]
            wait_log(running, heartbeat_ages([t.number for t in running]))
            time.sleep(poll)
            continue
        callbacks = [lambda _s, t: on_trial(t)] if on_trial else None
        objective.reaped = objective.stop = objective.stop_error = None
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=callbacks,
                           gc_after_trial=False, show_progress_bar=False)
        except _StopTrial as stop:
            if objective.stop_error is not None:
                raise objective.stop_error from None
            raise SweepInterrupted(stop.message, stop.signal_number) from None
        except Exception:
            if objective.stop_error is not None:
                raise objective.stop_error from None
            if objective.stop is not None:  # stopped, and Optuna could not tell a trial failed as stale
                raise SweepInterrupted(objective.stop.message, objective.stop.signal_number) from None
            if objective.reaped is None:
                raise
            # Optuna cannot tell a trial that another worker already failed ("Cannot tell a
            # FAIL trial"): the work is not lost, so this worker goes on.
            number, name = objective.reaped
            logger.warning("trial %d (%s) finished after another worker had failed it as stale (no "
                           "heartbeat for %s s: was this process paused?); its copy reuses the "
                           "finished run", number, name, storage_obj.grace_period or 2 * heartbeat)
        ran += 1
    logger.info("worker %d finished after %d trial(s)", worker_index, ran)
    return ran
