"""The same tuning budget for every method: one search space per loss, the same number of
trials in each, then each loss's best configuration with several seeds.

A reviewer's first question about a loss comparison is whether the baselines got the care the
method got (Alshammari et al., CVPR 2022: a tuned plain baseline beats most specialised
long-tail losses). A sweep file with ``budget: per_space`` gives each entry of its ``space``
list (one per loss: its own parameters plus lr and weight decay) ``trials`` trials of the
random or TPE sampler; each trial draws from the space with the fewest trials so far, so the
budget stays equal while workers come and go. When the sweep ends, ``OUT/tuning.md`` states
the budget, each space and what was chosen on validation, and ``OUT/confirm.yaml`` is the grid
sweep that trains each loss's chosen configuration with the seeds given
(``confirm_seeds``, default 1-5); ``lmfloss report`` on its runs compares them with Holm.

The optuna parameters of space ``i`` are named ``s<i>:<key>``, so two spaces may give one key
(``lr``) different ranges without optuna's one-distribution-per-name rule getting in the way.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from lmfloss.config import TrainConfig
from lmfloss.fileio import atomic_write_text
from lmfloss.sweep.spec import Range, Scalar, SweepSpec

PER_SPACE = "per_space"
BUDGETS = ("total", PER_SPACE)
CONFIRM_SEEDS = 5  # seeds each chosen configuration is trained with
ACTIVE_STATES = ("COMPLETE", "RUNNING", "WAITING")


def param_name(space: int, key: str) -> str:
    """The optuna name of ``key`` in space ``space``."""
    return f"s{space}:{key}"


def next_space(spec: SweepSpec, trials: Sequence[Any]) -> int:
    """The space the next trial draws from: the one with the fewest complete or running
    trials (ties: the first in the file)."""
    counts = [0] * len(spec.subspaces)
    for trial in trials:
        space = trial.user_attrs.get("space")
        if isinstance(space, int) and 0 <= space < len(counts) and trial.state.name in ACTIVE_STATES:
            counts[space] += 1
    return min(range(len(counts)), key=lambda i: (counts[i], i))


def space_label(spec: SweepSpec, space: int) -> str:
    """A space's name for a reader: its loss (``lmf``), else ``space <i>``."""
    loss = spec.subspaces[space].get("loss")
    if isinstance(loss, list) and len(loss) == 1:
        return str(loss[0])
    return f"space {space}"


def describe_value(value: Any) -> str:
    if isinstance(value, Range):
        kind = "int" if value.integer else "float"
        return f"{kind} in [{value.low:g}, {value.high:g}]" + (" (log)" if value.log else "") + (
            f" step {value.step:g}" if value.step else "")
    if isinstance(value, list):
        return " | ".join(map(str, value))
    return str(value)


def best_per_space(spec: SweepSpec, rows: Sequence[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """Each space's complete trial with the best validation objective (``trials.csv`` rows
    carrying ``space`` and ``params``); ties: the earlier trial."""
    best: dict[int, Mapping[str, Any]] = {}
    for row in rows:
        space = row.get("space")
        if row.get("state") != "COMPLETE" or not isinstance(space, int) or row.get("val_objective") is None:
            continue
        if space not in best or row["val_objective"] > best[space]["val_objective"]:
            best[space] = row
    return best


def _counts(rows: Sequence[Mapping[str, Any]], space: int) -> tuple[int, int]:
    """A space's complete trials and the trials its configurations failed: a trial whose
    training raised. Not failed: one stopped or killed (it is run again) or one stopped by a full
    disk (the machine's fault; lmfloss before 0.4 recorded it as an error)."""
    mine = [r for r in rows if r.get("space") == space]
    failed = [r for r in mine if r.get("state") == "FAIL" and r.get("error")
              and not str(r["error"]).startswith("DiskFull:")]
    return sum(r.get("state") == "COMPLETE" for r in mine), len(failed)


def tuning_markdown(spec: SweepSpec, rows: Sequence[Mapping[str, Any]]) -> str:
    """``tuning.md``: the budget, each space and the configuration chosen on validation."""
    best = best_per_space(spec, rows)
    # a base value some space searches (``loss``, ``lr``...) is not what that space's trials ran with
    searched = [{key.split(".", 1)[0] for key in sub} for sub in spec.subspaces]
    anywhere = set().union(*searched)
    partly = [k for k in sorted(anywhere - set.intersection(*searched)) if k in spec.base and k != "loss_params"]
    lines = [f"# Tuning of {spec.name}: the same budget for every loss", "",
             f"{spec.sampler} sampler (seed {spec.seed}), **{spec.trials} trials per space**, "
             f"{len(spec.subspaces)} spaces; each configuration chosen on **validation** by the run's headline "
             "metric (never on test). Base settings shared by every trial: "
             + ", ".join(f"`{k}: {v}`" for k, v in sorted(spec.base.items())
                         if k != "loss_params" and k not in anywhere) + "."
             + ("".join(f" In the spaces that do not search `{k}`: `{k}: {spec.base[k]}`." for k in partly)), ""]
    for i, sub in enumerate(spec.subspaces):
        complete, failed = _counts(rows, i)
        lines += [f"## {space_label(spec, i)}", "", f"Trials: {complete} complete" + (f", {failed} failed" if failed
                                                                                    else "") + ".", "",
                  "| parameter | searched |", "|---|---|",
                  *(f"| `{k}` | {describe_value(v)} |" for k, v in sub.items()), ""]
        chosen = best.get(i)
        if chosen is None:
            lines += ["No complete trial: nothing chosen.", ""]
            continue
        params = ", ".join(f"`{k}={v}`" for k, v in chosen["params"].items())
        scores = [float(r["val_objective"]) for r in rows if r.get("space") == i and r.get("state") == "COMPLETE"
                  and r.get("val_objective") is not None]
        lines += [f"Chosen (trial {chosen['trial']}, validation {chosen.get('val_metric') or 'score'} "
                  f"{chosen['val_objective']:.4f}): {params}. Its trials' median {statistics.median(scores):.4f}, "
                  f"worst {min(scores):.4f}.", ""]
    return "\n".join(lines)


def confirm_seeds(spec: SweepSpec, n: int = CONFIRM_SEEDS) -> list[int]:
    """The ``n`` seeds the chosen configurations are confirmed with: the first positive
    integers other than the tuning's own training seed. The tuning run of a chosen
    configuration won on validation partly by its seed's luck, which it carries to test too;
    retraining it with that seed (identical on a CPU) would bring the luck into the comparison,
    more for a loss with a larger space. Fresh seeds leave it out."""
    tuned = spec.base.get("seed", TrainConfig().seed)
    return [s for s in range(1, n + 2) if s != tuned][:n]


def confirm_sweep(spec: SweepSpec, rows: Sequence[Mapping[str, Any]],
                  seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """The grid sweep (as a YAML mapping) that trains each space's chosen configuration with
    ``seeds`` (default :func:`confirm_seeds`): one entry per space in ``space``, the base of
    the tuning sweep."""
    seeds = confirm_seeds(spec) if seeds is None else list(seeds)
    best = best_per_space(spec, rows)
    base = {k: v for k, v in spec.base.items() if k != "seed"}
    space = [{**{k: [v] for k, v in best[i]["params"].items()}, "seed": list(seeds)} for i in sorted(best)]
    return {"name": f"{spec.name}-confirm",
            "description": f"each loss's configuration chosen by {spec.name} ({spec.trials} trials per loss on "
                           f"validation), trained with seeds {list(seeds)}",
            "sampler": "grid", "base": base, "space": space, "tuning": tuning_record(spec, rows)}


def tuning_record(spec: SweepSpec, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How the confirmed configurations were chosen, as plain data: the tuning sweep, its budget,
    and per space the searched ranges, the trials run and the chosen trial with its validation
    score. ``confirm.yaml`` carries it, each confirmation run's ``sweep.json`` records it, and
    ``lmfloss report`` shows it beside the comparison."""
    best = best_per_space(spec, rows)
    spaces = []
    for i, sub in enumerate(spec.subspaces):
        complete, failed = _counts(rows, i)
        chosen = best.get(i)
        spaces.append({
            "label": space_label(spec, i), "searched": {k: describe_value(v) for k, v in sub.items()},
            "complete": complete, "failed": failed,
            # every complete trial's validation score, best first: how much the choice mattered
            "val_scores": sorted((float(r["val_objective"]) for r in rows if r.get("space") == i
                                  and r.get("state") == "COMPLETE" and r.get("val_objective") is not None),
                                 reverse=True),
            "chosen": None if chosen is None else {
                "trial": chosen["trial"], "params": dict(chosen["params"]),
                "val_metric": chosen.get("val_metric"), "val_score": chosen["val_objective"]}})
    return {"study": spec.name, "sampler": spec.sampler, "sampler_seed": spec.seed,
            "trials_per_space": spec.trials, "seed": spec.base.get("seed"), "spaces": spaces}


def write_tuning(spec: SweepSpec, rows: Sequence[Mapping[str, Any]], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``tuning.md`` and ``confirm.yaml`` into ``out_dir``."""
    out = Path(out_dir)
    atomic_write_text(tuning_markdown(spec, rows) + "\n", out / "tuning.md")
    atomic_write_text(yaml.safe_dump(confirm_sweep(spec, rows), sort_keys=False), out / "confirm.yaml")
    return out / "tuning.md", out / "confirm.yaml"


def check_budget(budget: Any, sampler: str, n_spaces: int, where: str) -> str:
    """A sweep file's ``budget``, checked.

    Raises:
        ValueError: an unknown budget, or ``per_space`` without a list of spaces or with a grid.
    """
    budget = "total" if budget is None else budget
    if budget not in BUDGETS:
        raise ValueError(f"{where}: budget must be one of {list(BUDGETS)}, got {budget!r}")
    if budget == PER_SPACE and (sampler == "grid" or n_spaces < 2):
        raise ValueError(f"{where}: budget: per_space gives each entry of a list of spaces the same number of "
                         f"random/tpe trials; it needs sampler random or tpe and at least two spaces")
    return budget


def scalar_params(spec: SweepSpec, space: int, suggest: Any) -> dict[str, Scalar]:
    """The trial's values of space ``space``: a single choice taken as it is, the rest from
    ``suggest(name, value)`` under their space-prefixed optuna names."""
    params: dict[str, Scalar] = {}
    for key, value in spec.subspaces[space].items():
        params[key] = value[0] if isinstance(value, list) and len(value) == 1 else suggest(param_name(space, key),
                                                                                               value)
    return params
