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
  trial is always picked up, never left as a hole.
- **Resume**: a trial's run directory is named from its parameters; if it already holds a
  finished run (``report.json``), the result is reused instead of retrained, and a
  half-trained run continues from ``last.pt``.

The objective is the validation macro-F1 (``report["val"]["f1_macro"]``), never test.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.study import Study
from optuna.trial import FrozenTrial, Trial, TrialState

from lmfloss.config import TrainConfig, load_config_file
from lmfloss.errors import LmflossError
from lmfloss.sweep.runners import TrialRunner, default_runner, read_report
from lmfloss.sweep.spec import MACHINE_KEYS, Range, Scalar, SweepSpec, point_key, run_name

logger = logging.getLogger(__name__)

RUNS_DIR = "runs"
TEST_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "balanced_accuracy")


# ---- storage and study --------------------------------------------------------------
def default_storage(out_dir: str | Path) -> str:
    """SQLite file ``<out_dir>/study.db``: nothing to start, fine for one machine."""
    return f"sqlite:///{(Path(out_dir) / 'study.db').absolute()}"


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported as given (it has no password to hide)
        return url


def make_storage(url: str, *, heartbeat: int = 60, grace: int | None = None,
                 max_retry: int = 3) -> RDBStorage:
    """An Optuna RDB storage with heartbeats and retry of stale trials.

    Args:
        url: SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg2://u:p@host/db``).
        heartbeat: seconds between a running trial's heartbeats.
        grace: seconds without heartbeat after which a running trial counts as dead
            (default ``2 * heartbeat``).
        max_retry: how many times a dead trial is re-queued.

    Raises:
        ValueError: bad numbers or an unusable URL.
        LmflossError: the database cannot be reached.
    """
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, int) or heartbeat < 1:
        raise ValueError(f"heartbeat must be a whole number of seconds >= 1, got {heartbeat!r}")
    grace = 2 * heartbeat if grace is None else grace
    if isinstance(grace, bool) or not isinstance(grace, int) or grace <= heartbeat:
        raise ValueError(f"grace must be a whole number of seconds > heartbeat ({heartbeat}), got {grace!r}")
    if max_retry < 0:
        raise ValueError(f"max_retry must be >= 0, got {max_retry}")
    if url.startswith("sqlite"):
        # Several processes share the file: wait for its lock instead of failing at once.
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 120}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        for attempt in range(4):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return RDBStorage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat,
                        grace_period=grace,
                        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                    )
            except Exception as exc:
                # Workers starting together on a fresh database race to create its tables
                # ("table studies already exists"); the loser simply opens it again.
                if attempt == 3 or "already exists" not in str(exc):
                    raise
                time.sleep(0.2 + random.random())
        raise AssertionError("unreachable")  # pragma: no cover
    except ImportError as exc:
        raise LmflossError(f"storage {redact(url)!r} needs a database driver: {exc} "
                           "(PostgreSQL: pip install 'lmfloss[postgres]')") from None
    except Exception as exc:  # sqlalchemy's ArgumentError / OperationalError
        name = type(exc).__name__
        if name == "ArgumentError":
            raise ValueError(f"--storage {redact(url)!r} is not a database URL; expected e.g. "
                             "sqlite:///study.db or postgresql+psycopg2://user:pass@host/db") from None
        raise LmflossError(f"cannot open study storage {redact(url)!r}: {name}: "
                           f"{str(exc).splitlines()[0]}") from None


def open_study(spec: SweepSpec, storage: RDBStorage, study_name: str, *,
               sampler: optuna.samplers.BaseSampler | None = None) -> Study:
    """Create or join the study, checking that it was made from the same sweep.

    Raises:
        LmflossError: the study exists but holds a different sweep (space, base or sampler).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for attempt in range(3):  # two machines creating the tables at once may collide
        try:
            study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                        sampler=sampler, load_if_exists=True)
            break
        except optuna.exceptions.DuplicatedStudyError:
            if attempt == 2:
                raise
            time.sleep(0.5 + random.random())
    fingerprint = spec.fingerprint()
    existing = study.user_attrs.get("sweep_fingerprint")
    if existing is None:
        study.set_user_attr("sweep_fingerprint", fingerprint)
        study.set_user_attr("sweep_source", spec.source)
        study.set_user_attr("sweep_sampler", spec.sampler)
    elif existing != fingerprint:
        raise LmflossError(
            f"study {study_name!r} was created from a different sweep (fingerprint {existing}, "
            f"this one {fingerprint}: space, base config or sampler differ); use another "
            "--study or --out, or the sweep file it was created with"
        )
    return study


# ---- sampling ------------------------------------------------------------------------
class GridPointSampler(optuna.samplers.BaseSampler):
    """Returns the values of the grid point the objective assigned to each trial.

    The point is chosen by the objective (it has to claim it first), then every key is
    suggested as a categorical with the study-wide choices; this sampler answers with the
    assigned value. Trials re-queued for a dead worker carry their parameters already.
    """

    def __init__(self) -> None:
        self._assigned: dict[int, dict[str, Scalar]] = {}

    def assign(self, trial_number: int, point: Mapping[str, Scalar]) -> None:
        self._assigned[trial_number] = dict(point)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        try:
            return self._assigned[trial.number][param_name]
        except KeyError:
            raise LmflossError(f"trial {trial.number} has no grid value for {param_name!r}") from None


def make_sampler(spec: SweepSpec, worker_index: int = 0) -> optuna.samplers.BaseSampler:
    """Grid: :class:`GridPointSampler`; random/TPE: Optuna's, seeded per worker so that
    workers do not all draw the same sequence (seed from the file, host and worker index)."""
    if spec.sampler == "grid":
        return GridPointSampler()
    seed = zlib.crc32(f"{spec.seed}/{socket.gethostname()}/{worker_index}".encode())
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


# ---- the state of the study ------------------------------------------------------------
def point_status(spec: SweepSpec, trials: Sequence[FrozenTrial], max_retry: int,
                 exclude: int | None = None) -> dict[str, str]:
    """Status of every grid point: complete | failed | running | waiting | free.

    A point is *failed* when its training raised an error (``error`` user attribute) or it
    was killed more than ``max_retry`` times; both are left alone rather than retried forever.
    ``exclude`` is a trial number to ignore (the trial asking).
    """
    keys = [point_key(p) for p in spec.grid_points()]
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


def next_action(spec: SweepSpec, trials: Sequence[FrozenTrial], max_retry: int) -> str:
    """What a worker should do now: ``run`` a trial, ``wait`` for others, or stop (``done``)."""
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    if spec.sampler == "grid":
        status = Counter(point_status(spec, trials, max_retry).values())
        if status["free"] or status["waiting"] or waiting:
            return "run"
        return "wait" if running else "done"
    budget = spec.trials or 0
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    errors = sum(t.state == TrialState.FAIL and "error" in t.user_attrs for t in trials)
    if complete >= budget or errors >= budget:
        return "done"
    if waiting or complete + running < budget:
        return "run"
    return "wait" if running else "done"


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
        self._rng = random.Random()  # spreads concurrent workers over different points
        if spec.sampler == "grid":
            self._points = {point_key(p): p for p in spec.grid_points()}
            self._choices = spec.choices()

    def __call__(self, trial: Trial) -> float:
        params = self._grid_params(trial) if self.spec.sampler == "grid" else self._search_params(trial)
        name = run_name(params)
        run_dir = self.out_dir / RUNS_DIR / name
        config, tags = self.spec.resolve(params)
        trial.set_user_attr("run_name", name)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("tags", tags)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        started = time.perf_counter()
        try:
            report = read_report(run_dir)
            reused = report is not None
            if reused:
                _check_same_config(run_dir, config)
            if report is None:
                logger.info("trial %d: training %s", trial.number, name)
                report = dict(self.runner(config, run_dir))
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            logger.warning("trial %d (%s) failed: %s: %s", trial.number, name, type(exc).__name__, exc)
            raise
        value = float(report["val"]["f1_macro"])
        test = report.get("test") or {}
        trial.set_user_attr("reused", reused)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        trial.set_user_attr("val_f1_macro", value)
        for metric in TEST_METRICS:
            if isinstance(test.get(metric), (int, float)):
                trial.set_user_attr(f"test_{metric}", float(test[metric]))
        _write_json(run_dir / "sweep.json", {
            "study": self.study_name, "trial": trial.number, "params": params, "tags": tags,
            **{k: v for k, v in tags.items() if k not in ("study", "trial", "params", "tags")},
        })
        logger.info("trial %d: %s val macro-F1 %.4f%s", trial.number, name, value,
                    " (reused finished run)" if reused else "")
        return value

    # grid: claim a free point, stepping aside when another trial holds it
    def _grid_params(self, trial: Trial) -> dict[str, Scalar]:
        fixed = trial.params  # a re-queued trial of a killed worker already has its point
        tried: set[str] = set()
        while True:
            if fixed:
                key = point_key(fixed)
                point: Mapping[str, Scalar] = fixed
            else:
                trials = trial.study.get_trials(deepcopy=False)
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
        params: dict[str, Scalar] = {}
        for key, spec in self.spec.subspaces[0].items():
            if isinstance(spec, Range):
                if spec.integer:
                    params[key] = trial.suggest_int(key, int(spec.low), int(spec.high),
                                                    step=int(spec.step or 1), log=spec.log)
                else:
                    params[key] = trial.suggest_float(key, spec.low, spec.high, step=spec.step, log=spec.log)
            else:
                params[key] = trial.suggest_categorical(key, spec)
        key = point_key(params)
        trial.set_user_attr("claim", key)
        busy = [t.number for t in trial.study.get_trials(deepcopy=False)
                if t.number != trial.number and t.user_attrs.get("claim") == key
                and t.state in (TrialState.RUNNING, TrialState.WAITING)]
        if busy:
            trial.set_user_attr("duplicate_of", min(busy))
            raise optuna.TrialPruned(f"the same parameters are being trained by trial {min(busy)}")
        return params


def _check_same_config(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to reuse a finished run trained with another config (an edited sweep file)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return
    saved = load_config_file(path)
    wanted = config.to_dict()
    ignore = MACHINE_KEYS | {"bootstrap"}
    diffs = sorted(k for k in set(saved) | set(wanted)
                   if k not in ignore and saved.get(k) != wanted.get(k))
    if diffs:
        detail = ", ".join(f"{k}: run has {saved.get(k)!r}, sweep asks {wanted.get(k)!r}" for k in diffs)
        raise LmflossError(f"{str(run_dir)!r} holds a finished run of another config ({detail}); "
                           "delete it or use another --out")


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


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
    ran = 0
    logger.info("worker %d joined study %r in %s", worker_index, study_name, redact(url))
    while max_trials is None or ran < max_trials:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)
        action = next_action(spec, study.get_trials(deepcopy=False), max_retry)
        if action == "done":
            break
        if action == "wait":
            time.sleep(poll)
            continue
        callbacks = [lambda _s, t: on_trial(t)] if on_trial else None
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=callbacks,
                       gc_after_trial=False, show_progress_bar=False)
        ran += 1
    logger.info("worker %d finished after %d trial(s)", worker_index, ran)
    return ran
