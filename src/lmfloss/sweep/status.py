"""``lmfloss sweep --status``: where a study stands, read from its database and run folders.

A tuning study of 40 trials runs for hours (days on a CPU); its summary (``trials.csv``,
``tuning.md``, ``confirm.yaml``) is written only when it ends. This says, without training,
writing or creating anything, how far it is: trials complete and budget left per space (per
loss) or grid points done, the best validation score so far, and each running trial with
its epoch and the age of its heartbeat (a worker that stopped beating is named)."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lmfloss.errors import LmflossError
from lmfloss.report.names import metric_name
from lmfloss.rundir import read_config_dict, read_metrics
from lmfloss.sweep.engine import HeartbeatAges, counted_trials, point_status
from lmfloss.sweep.launch import trial_rows
from lmfloss.sweep.spec import SweepSpec
from lmfloss.sweep.storage import make_storage, redact
from lmfloss.sweep.tuning import PER_SPACE, best_per_space, space_label


def _epochs(run_dir: str | None) -> str:
    """``epoch 37/100`` of a run directory that is training (``?`` where it cannot tell)."""
    if not run_dir:
        return "epoch ?"
    done: int | str = "?"
    total: Any = "?"
    with contextlib.suppress(OSError, ValueError):
        done = len(read_metrics(run_dir))
    with contextlib.suppress(OSError, ValueError, AttributeError):
        total = read_config_dict(run_dir).get("epochs", "?")
    return f"epoch {done}/{total}"


def _best(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return "—"
    metric = metric_name(str(row.get("val_metric")))
    return f"best val {metric} {row['val_objective']:.4f} (trial {row['trial']})"


def _running_line(trial: FrozenTrial, ages: Mapping[int, float], grace: int) -> str:
    age = ages.get(trial.number)
    beat = "no heartbeat yet" if age is None else f"heartbeat {age:.0f} s ago"
    if age is not None and age > grace:
        beat += f" -- older than --grace {grace} s: its worker is gone or paused; the next worker re-queues it"
    attrs = trial.user_attrs
    return (f"    trial {trial.number} {attrs.get('run_name', '?')}: {_epochs(attrs.get('run_dir'))}, "
            f"{beat}, worker {attrs.get('worker', '?')}")


def study_status(spec: SweepSpec, url: str, study_name: str, *, heartbeat: int = 60, grace: int | None = None,
                 max_retry: int = 3) -> list[str]:
    """The lines of ``--status``.

    Raises:
        LmflossError: no such study (nothing has run yet), or the storage cannot be opened.
    """
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise LmflossError(f"no study database at {url.removeprefix('sqlite:///')!r}: the sweep has not run yet "
                           "(or --out/--storage names another folder)")
    storage = make_storage(url, heartbeat=heartbeat, grace=grace, max_retry=max_retry)
    grace = storage.grace_period or 2 * heartbeat
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise LmflossError(f"no study {study_name!r} in {redact(url)} (it holds: {', '.join(names) or 'none'})") \
            from None
    trials = counted_trials(study)
    rows = trial_rows(study)
    best = max((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: r["val_objective"], default=None)
    states = Counter(t.state.name for t in trials)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    ages = HeartbeatAges(storage, study_name)([t.number for t in running])
    lines = [f"study {study_name!r} in {redact(url)} ({time.strftime('%Y-%m-%d %H:%M:%S')}):"]
    if spec.sampler == "grid":
        points = point_status(spec, trials, max_retry)
        status = Counter(points.values())
        lines.append(f"  {status['complete']} of {len(points)} grid points complete, {status['running']} running, "
                     f"{status['failed']} failed, {status['free'] + status['waiting']} to do")
        lines.append(f"  {_best(best)}")
        for key in (k for k, s in points.items() if s == "failed"):
            last = max((t for t in trials if t.user_attrs.get("claim") == key and t.state == TrialState.FAIL),
                       key=lambda t: t.number)
            why = last.user_attrs.get("error") or f"killed more than --max-retry {max_retry} times"
            lines.append(f"  failed: {last.user_attrs.get('run_name', key)} (trial {last.number}): {why}")
        if status["failed"]:
            lines.append("  (--retry-failed trains failed points again once their cause is mended)")
    elif spec.budget == PER_SPACE:
        best_rows = best_per_space(spec, rows)
        lines.append(f"  {spec.trials} {spec.sampler} trials per space x {len(spec.subspaces)} spaces "
                     f"= {spec.total_trials}; {states['COMPLETE']} complete, {states['RUNNING']} running, "
                     f"{states['WAITING']} queued, {_failed(trials)}")
        width = max(len(space_label(spec, i)) for i in range(len(spec.subspaces)))
        for i in range(len(spec.subspaces)):
            mine = [t for t in trials if t.user_attrs.get("space") == i]
            done = sum(t.state == TrialState.COMPLETE for t in mine)
            now = sum(t.state == TrialState.RUNNING for t in mine)
            lines.append(f"  {space_label(spec, i):<{width}}  {done}/{spec.trials}"
                         + (f" (+{now} running)" if now else "") + f"  {_best(best_rows.get(i))}")
    else:
        lines.append(f"  {states['COMPLETE']} of {spec.total_trials} {spec.sampler} trials complete, "
                     f"{states['RUNNING']} running, {states['WAITING']} queued, {_failed(trials)}")
        lines.append(f"  {_best(best)}")
    left = _left(spec, trials, points if spec.sampler == "grid" else None)
    eta = _eta(trials, left, max(1, len(running)))
    if eta:
        lines.append(f"  {eta}")
    if running:
        lines.append("  running:")
        lines.extend(_running_line(t, ages, grace) for t in running)
    return lines


def _left(spec: SweepSpec, trials: Sequence[FrozenTrial], points: Mapping[str, str] | None) -> int:
    """Trials still to train, the running ones included."""
    if points is not None:
        return sum(s in ("free", "waiting", "running") for s in points.values())
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return max(0, spec.total_trials - complete)


def _eta(trials: Sequence[FrozenTrial], left: int, workers: int) -> str:
    """``about 4.2 h left: 36 trials at the median trial's 7.1 min, 1 worker`` (trained trials
    only: a reused run took no time); empty before the first trained trial."""
    seconds = [t.user_attrs["seconds"] for t in trials
               if t.state == TrialState.COMPLETE and not t.user_attrs.get("reused")
               and isinstance(t.user_attrs.get("seconds"), (int, float))]
    if not seconds or not left:
        return ""
    median = statistics.median(seconds)
    total = left * median / workers
    when = f"{total / 3600:.1f} h" if total >= 5400 else f"{total / 60:.0f} min"
    return (f"about {when} left: {left} trial(s) at the median trained trial's {median / 60:.1f} min, "
            f"{workers} worker(s) running")


def _failed(trials: Sequence[FrozenTrial]) -> str:
    """``2 failed (errors), 1 stopped or killed`` -- a stopped trial is re-run, a failed one not."""
    errors = sum(t.state == TrialState.FAIL and "error" in t.user_attrs for t in trials)
    stopped = sum(t.state == TrialState.FAIL and "error" not in t.user_attrs for t in trials)
    return f"{errors} failed, {stopped} stopped or killed (re-run)"
