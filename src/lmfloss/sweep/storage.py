"""Where a study lives: the RDB storage with heartbeats, the study, the samplers."""

from __future__ import annotations

import importlib.util
import logging
import os
import random
import socket
import time
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import Study
from optuna.trial import FrozenTrial
from sqlalchemy.engine import make_url

from lmfloss.errors import DiskFull, LmflossError
from lmfloss.extras import install_hint
from lmfloss.fileio import disk_full
from lmfloss.sweep.spec import Scalar, SweepSpec

logger = logging.getLogger(__name__)


# ---- storage and study --------------------------------------------------------------
def default_storage(out_dir: str | Path) -> str:
    """SQLite file ``<out_dir>/study.db``: nothing to start, fine for one machine."""
    return f"sqlite:///{(Path(out_dir) / 'study.db').absolute()}"


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported as given (it has no password to hide)
        return url


def with_driver(url: str) -> str:
    """A bare ``postgresql://`` (or ``postgres://``) URL with the driver that is installed.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3 while ``lmfloss[postgres]``
    installs psycopg2, so the bare form would fail with a "no driver" error although a
    driver is there. Explicit ``postgresql+<driver>://`` URLs are kept as given.

    Raises:
        LmflossError: no PostgreSQL driver is installed (says what to install).
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        return url
    for module, driver in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    raise LmflossError(
        f"storage {redact(url)!r} needs a PostgreSQL driver and none is installed: "
        f"{install_hint('postgres')} (psycopg2-binary), or psycopg for postgresql+psycopg://"
    )


def _connection_message(exc: Exception) -> str:
    text = str(exc)
    if "Connection refused" in text or "connection refused" in text:
        return "connection refused (is the server running, and listening on that host and port?)"
    if "could not translate host name" in text or "Name or service not known" in text:
        return "unknown host name"
    if "password authentication failed" in text:
        return "password authentication failed"
    if "does not exist" in text and "database" in text:
        return text.splitlines()[0].split(")", 1)[-1].strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _database_full(exc: BaseException, url: str) -> DiskFull | None:
    """The one-line :class:`DiskFull` when ``exc`` is SQLite's "database or disk is full"
    (or ENOSPC) on the study's database, naming its file (``None`` otherwise)."""
    path = None
    if url.startswith("sqlite"):
        try:
            path = make_url(url).database or None
        except Exception:  # an unparsable URL: the line names no file
            path = None
    return disk_full(exc, path, kept="the study keeps every trial it recorded",
                     then="run the same lmfloss sweep command again (finished trials are not rerun)")


# Errors of two processes initialising one fresh database at once (SQLite and PostgreSQL).
_INIT_RACE_MESSAGES = ("already exists", "UNIQUE constraint failed", "duplicate key value", "database is locked")
_INIT_ATTEMPTS = 6


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
    url = with_driver(url)
    if url.startswith("sqlite"):
        # Several processes share the file: wait for its lock instead of failing at once.
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 120}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        for attempt in range(_INIT_ATTEMPTS):
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
                # and to stamp its schema version ("table studies already exists", "UNIQUE
                # constraint failed: alembic_version..."); the loser simply opens it again.
                if attempt == _INIT_ATTEMPTS - 1 or not any(m in str(exc) for m in _INIT_RACE_MESSAGES):
                    raise
                time.sleep(0.2 + random.random())
        raise AssertionError("unreachable")  # pragma: no cover
    except ImportError as exc:
        raise LmflossError(f"storage {redact(url)!r} needs a database driver that is not installed "
                           f"({exc.name or exc}); for PostgreSQL: {install_hint('postgres')}") from None
    except Exception as exc:  # sqlalchemy's ArgumentError / OperationalError / NoSuchModuleError
        full = _database_full(exc, url)
        if full is not None:
            raise full from exc
        name = type(exc).__name__
        if name == "ArgumentError":
            raise ValueError(f"--storage {redact(url)!r} is not a database URL; expected e.g. "
                             "sqlite:///study.db or postgresql://user:pass@host/db") from None
        if name == "NoSuchModuleError":
            raise LmflossError(f"--storage {redact(url)!r}: unknown database dialect or driver "
                               f"({str(exc).splitlines()[0]})") from None
        raise LmflossError(f"cannot open study storage {redact(url)!r}: {_connection_message(exc)}") from None


def open_study(spec: SweepSpec, storage: RDBStorage, study_name: str, *,
               sampler: optuna.samplers.BaseSampler | None = None) -> Study:
    """Create or join the study, checking that it was made from the same sweep.

    Raises:
        LmflossError: the study exists but holds a different sweep (space, base or sampler).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # load_if_exists: optuna itself turns losing the creation race into loading the study.
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                sampler=sampler, load_if_exists=True)
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


class TrialSeededRandomSampler(optuna.samplers.RandomSampler):
    """Random search whose every draw depends only on the sweep's seed, the trial number and
    the parameter: workers in other processes or on other hosts never repeat each other's
    configurations (trial numbers are unique in a study), and a sweep on one worker draws the
    same configurations each time it is run."""

    def __init__(self, seed: int | None) -> None:
        super().__init__(seed=seed)
        self._base = seed

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        seed = zlib.crc32(f"{self._base}/{trial.number}/{param_name}".encode())
        return optuna.samplers.RandomSampler(seed=seed).sample_independent(study, trial, param_name,
                                                                           param_distribution)


def make_sampler(spec: SweepSpec, worker_index: int = 0) -> optuna.samplers.BaseSampler:
    """Grid: :class:`GridPointSampler`; random: :class:`TrialSeededRandomSampler`; TPE:
    Optuna's, seeded per worker process (the file's seed, host, process and worker index) so
    that workers do not all draw the same start-up trials."""
    if spec.sampler == "grid":
        return GridPointSampler()
    if spec.sampler == "random":
        return TrialSeededRandomSampler(seed=spec.seed)
    seed = zlib.crc32(f"{spec.seed}/{socket.gethostname()}/{os.getpid()}/{worker_index}".encode())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
