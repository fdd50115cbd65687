"""How a compared configuration was chosen: the tuning budget of a confirmation sweep.

A loss comparison is fair only when every loss got the same care. ``lmfloss sweep`` with
``budget: per_space`` tunes each loss in its own space with the same number of trials and writes
``confirm.yaml``, whose ``tuning`` record (:func:`lmfloss.sweep.tuning.tuning_record`) every
confirmation run keeps in its ``sweep.json``. This table states that budget, each loss's space
and what validation chose, beside the comparison it led to."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from typing import Any

from lmfloss import rundir
from lmfloss.report.formats import num
from lmfloss.report.names import loss_name, metric_name
from lmfloss.report.render import Table
from lmfloss.report.runs import ReportRun

TUNING_COLUMNS = ("study", "space", "searched", "trials_complete", "trials_failed", "chosen_trial", "chosen",
                  "val_metric", "val_score", "val_scores", "trials_per_space", "sampler", "tuning_seed", "confirm_seeds",
                  "confirm_val_scores")


def tuning_records(runs: Sequence[ReportRun]) -> dict[str, tuple[dict[str, Any], list[ReportRun]]]:
    """Study name -> (its tuning record, its confirmation runs among ``runs``); one read of each
    run's ``sweep.json``."""
    found: dict[str, tuple[dict[str, Any], list[ReportRun]]] = {}
    for run in runs:
        record = (rundir.read_sweep_info(run.run_dir) or {}).get("tuning")
        if isinstance(record, dict) and isinstance(record.get("spaces"), list):
            found.setdefault(str(record.get("study")), (record, []))[1].append(run)
    return found


def _seeds(study_runs: Sequence[ReportRun]) -> list[int]:
    """The seeds a study's confirmation runs used, sorted."""
    return sorted({run.seed for run in study_runs if isinstance(run.seed, int)})


def confirmation_val_scores(study_runs: Sequence[ReportRun], loss: str, metric: str) -> list[float]:
    """The validation ``metric`` of a study's confirmation runs (``study_runs``) of ``loss``, by seed: the
    chosen configuration's validation score again, with seeds that did not choose it. The gap
    to the tuning trial's score is the luck the choice picked up (the winner's curse of a
    best-of-N on one seed)."""
    scores = []
    for run in sorted(study_runs, key=lambda r: (r.seed if isinstance(r.seed, int) else 0)):
        if run.loss != loss:
            continue
        value = run.val(metric)
        if isinstance(value, (int, float)):
            scores.append(float(value))
    return scores


def _tuned_space(runs: Sequence[ReportRun], loss: str) -> dict[str, Any] | None:
    """The tuning record's space of ``loss`` that these runs' configuration was chosen in (``None``:
    the runs carry no tuning record for it)."""
    for record, _ in tuning_records(runs).values():
        for space in record["spaces"]:
            if space.get("label") == loss and isinstance(space.get("complete"), int):
                return space
    return None


def tuned_trials(runs: Sequence[ReportRun], loss: str) -> int | None:
    """How many complete tuning trials chose ``loss``'s configuration of these runs (``None``:
    the runs carry no tuning record for it) -- a confirmation run has one configuration, but
    it was not the only one tried."""
    space = _tuned_space(runs, loss)
    return None if space is None else space["complete"]


def tuned_note(runs: Sequence[ReportRun], loss: str, key: str) -> str | None:
    """How tuning set ``loss``'s parameter ``key`` (``loss_params.alpha``) in these runs:
    ``chosen from N tuning trials`` when its space searched it, ``fixed in tuning`` when the
    space left it at its value, ``None`` when the runs carry no tuning record for ``loss``."""
    space = _tuned_space(runs, loss)
    if space is None:
        return None
    return f"chosen from {space['complete']} tuning trials" if key in (space.get("searched") or {}) \
        else "fixed in tuning"


def configurations_tried(runs: Sequence[ReportRun], loss: str, n_configs: int) -> int:
    """How many configurations ``loss`` had tried on validation before these runs: its tuning
    trials when the runs come from a tuning study's confirmation, else the configurations
    present (``n_configs``, at least 1)."""
    tuned = tuned_trials(runs, loss)
    return max(n_configs, 1) if tuned is None else tuned


def _key(key: str) -> str:
    return key.removeprefix("loss_params.")


def _range(text: str) -> str:
    """``float in [0.0001, 0.003] (log)`` -> ``[0.0001, 0.003] log``: narrow enough for a page."""
    return text.replace("float in ", "").replace("int in ", "int ").replace(" (log)", " log")


def _chosen(space: dict[str, Any]) -> str:
    chosen = space.get("chosen")
    if not chosen:
        return "nothing (no complete trial)"
    return ", ".join(f"{_key(k)}={v:.3g}" if isinstance(v, float) else f"{_key(k)}={v}"
                     for k, v in chosen["params"].items() if k != "loss")


def tuning_rows(runs: Sequence[ReportRun]) -> list[dict[str, object]]:
    """One row per (tuning study, space) for ``tuning.csv``."""
    rows = []
    for study, (record, study_runs) in tuning_records(runs).items():
        for space in record["spaces"]:
            chosen = space.get("chosen") or {}
            rows.append({
                "study": study, "space": space.get("label"),
                "searched": "; ".join(f"{k}: {v}" for k, v in (space.get("searched") or {}).items()),
                "trials_complete": space.get("complete"), "trials_failed": space.get("failed"),
                "chosen_trial": chosen.get("trial"), "chosen": _chosen(space) if chosen else "",
                "val_metric": chosen.get("val_metric"), "val_score": chosen.get("val_score"),
                "val_scores": " ".join(f"{v:.6f}" for v in space.get("val_scores") or []),
                "trials_per_space": record.get("trials_per_space"), "sampler": record.get("sampler"),
                "tuning_seed": record.get("seed"), "confirm_seeds": " ".join(map(str, _seeds(study_runs))),
                "confirm_val_scores": " ".join(
                    f"{v:.6f}" for v in confirmation_val_scores(study_runs, str(space.get("label")),
                                                                str(chosen.get("val_metric")))),
            })
    return rows


def _mean_sd(values: Sequence[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{num(100 * values[0])} (1 seed)"
    return f"{num(100 * statistics.mean(values))} ± {num(100 * statistics.stdev(values))} ({len(values)} seeds)"


def tuning_tables(runs: Sequence[ReportRun]) -> list[Table]:
    """One table per tuning study the runs' configurations came from (none for untuned runs)."""
    tables = []
    for study, (record, study_runs) in tuning_records(runs).items():
        table = Table("tuning_" + re.sub(r"[^A-Za-z0-9_.-]+", "-", study),
                      f"Tuning budget ({study}): {record.get('trials_per_space')} {record.get('sampler')} trials per "
                      f"loss (training seed {record.get('seed')}), each loss in its own space, chosen on validation",
                      ["Loss", "Searched", "Trials", "Chosen", "Validation score", "Median / worst trial",
                       "Validation, confirmation seeds"],
                      wrap=["Searched", "Chosen"])
        for space in record["spaces"]:
            chosen = space.get("chosen") or {}
            searched = "; ".join(f"{_key(k)} {_range(str(v))}" for k, v in (space.get("searched") or {}).items()
                                 if k != "loss")
            trials = f"{space.get('complete')}" + (f" (+{space['failed']} failed)" if space.get("failed") else "")
            score, metric = chosen.get("val_score"), str(chosen.get("val_metric"))
            scores = [s for s in space.get("val_scores") or [] if isinstance(s, (int, float))]
            table.rows.append([loss_name(str(space.get("label"))), searched or "—", trials, _chosen(space),
                               "—" if score is None else
                               f"{num(100 * score)} ({metric_name(metric)})",
                               f"{num(100 * statistics.median(scores))} / {num(100 * min(scores))}" if scores
                               else "—",
                               _mean_sd(confirmation_val_scores(study_runs, str(space.get("label")),
                                                                metric))])
        table.notes.append(f"Every loss had the same budget; nothing was chosen on test. The comparison trains each "
                           f"chosen configuration with seeds {', '.join(map(str, _seeds(study_runs)))} and tests "
                           "the differences with Holm's correction.")
        table.notes.append("Median / worst trial: the validation score of the loss's median and worst tuning "
                           "trial, beside its chosen one: how much its tuning mattered.")
        table.notes.append("Validation, confirmation seeds: the chosen configuration's validation score again, mean "
                           "± SD over the confirmation runs (seeds that did not choose it). Its drop from the "
                           "chosen trial's score is the luck that choice picked up; a loss that drops most was "
                           "chosen most by noise.")
        tables.append(table)
    return tables
