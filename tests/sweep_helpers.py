"""What another sweep worker does to this one's trial, for the engine's tests."""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from lmfloss.sweep import make_storage


def fail_as_stale(url: str, study_name: str) -> int:
    """Fail the study's one running trial as another worker's ``fail_stale_trials`` would
    (its heartbeat older than the grace period: its worker was paused or killed), queueing
    the heartbeat's retry copy; return the trial's number."""
    storage = make_storage(url, heartbeat=1, grace=2)
    study = optuna.load_study(study_name=study_name, storage=storage)
    (running,) = [t for t in study.get_trials() if t.state == TrialState.RUNNING]
    storage.set_trial_state_values(running._trial_id, TrialState.FAIL)
    storage.failed_trial_callback(study, storage.get_trial(running._trial_id))
    return running.number


def stale_on_call(url: str, study_name: str, runner: Callable, *, call: int = 1,
                  then: BaseException | None = None) -> tuple[Callable, list[str]]:
    """``runner`` wrapped so that its ``call``-th trial is failed as stale by "another worker"
    while it trains (and then raises ``then``, if given); returns it and the run names it saw."""
    calls: list[str] = []

    def wrapped(config, run_dir):
        calls.append(run_dir.name)
        if len(calls) == call:
            fail_as_stale(url, study_name)
            if then is not None:
                raise then
        return runner(config, run_dir)

    return wrapped, calls
