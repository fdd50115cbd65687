"""The sweep file: a base training config, a search space over its keys, a sampler.

A sweep file is YAML::

    name: demo                      # default study name (``--study`` overrides it)
    sampler: grid                   # grid | random | tpe
    trials: 20                      # budget of completed trials (random/tpe; grid: every point)
    seed: 0                         # sampler seed
    base:                           # a TrainConfig mapping, or the path of a train YAML file
      from: train.yaml              #   (relative to the sweep file); with `from:`, that
      dataset: synthetic            #   file's keys and then the mapping's own
      epochs: 1
    space:                          # key -> values; keys are TrainConfig fields,
      loss: [ce, lmf]               #   ``loss_params.<name>`` for a loss parameter and
      seed: [1, 2]                  #   ``tags.<name>`` for a label recorded with the trial
      lr: {low: 1.0e-5, high: 1.0e-3, log: true}   # a range (random/tpe only)
    overrides:                      # per-cell settings, applied in order where ``when`` matches
      - when: {dataset: ham10000, model: resnet50, loss: lmf}
        set: {loss_params.alpha: 0.5, loss_params.beta: 1.0}
    launcher: {nproc_per_node: 1}   # > 1: every trial runs under torchrun

``space`` may also be a *list* of such mappings: the grid is then the union of their
Cartesian products (scikit-learn's ``ParameterGrid`` convention), and within one mapping
``{same_as: KEY}`` ties a key to another (the paper's setting-1, ``alpha == beta``).

Values are YAML scalars (str, int, float, bool, null). Relative paths (``root``, ``csv``,
``cache_dir``) are taken relative to the current directory, as for ``lmfloss train``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lmfloss.config import TrainConfig, apply_overrides, field_names, keys_with_role
from lmfloss.config import flatten as flatten_config
from lmfloss.data.adapters import resolve_config

SAMPLERS = ("grid", "random", "tpe")
TOP_LEVEL_KEYS = ("name", "description", "sampler", "trials", "seed", "base", "space", "overrides",
                  "launcher", "html", "budget", "tuning")
# Keys that say where and how fast a run happens, not what it measures (the "runtime" role
# of lmfloss.config): they may differ between the machines of one study.
MACHINE_KEYS = keys_with_role("runtime")
CONFIG_FIELDS = tuple(field_names())

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Range:
    """A numeric range of a random/TPE search: ``low <= x <= high``.

    Attributes:
        low, high: the bounds (inclusive).
        log: sample uniformly in log space (``low > 0``).
        step: discretisation step (not with ``log``).
        integer: an integer parameter (``suggest_int``), else a float.
    """

    low: float
    high: float
    log: bool = False
    step: float | None = None
    integer: bool = False


@dataclass(frozen=True)
class Override:
    """``set`` is applied to every trial whose resolved values match all of ``when``."""

    when: dict[str, Scalar]
    set: dict[str, Any]


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, validated sweep file.

    Attributes:
        name: default study name.
        sampler: ``grid`` | ``random`` | ``tpe``.
        trials: completed trials wanted (``None`` for grid: every point once).
        seed: sampler seed.
        base: the base training config as a flat mapping (TrainConfig fields).
        subspaces: the search space; a list of mappings key -> list of choices | Range |
            ``("same_as", KEY)``. One mapping unless the file gave a list (a union of grids).
        overrides: per-cell settings.
        nproc_per_node: processes per trial (``> 1``: launched with torchrun).
        source: the file it came from (``None`` when built in code).
        only: ``KEY -> values``: this worker takes only the grid points whose value of every
            KEY is one of the values (``lmfloss sweep --only``); the study stays the same.
        html: write the report of the sweep's runs (``OUT/report/``, with ``report.html``)
            when the sweep ends (``html: true`` in the sweep file).
    """

    name: str
    sampler: str
    base: dict[str, Any]
    subspaces: list[dict[str, Any]]
    trials: int | None = None
    seed: int = 0
    overrides: list[Override] = field(default_factory=list)
    nproc_per_node: int = 1
    source: str | None = None
    only: dict[str, list[Scalar]] = field(default_factory=dict)
    html: bool = False  # after the sweep, write OUT/report/ with report.html (not part of the fingerprint)
    budget: str = "total"  # per_space: `trials` trials in each entry of a list of spaces (lmfloss.sweep.tuning)
    # how a confirmation sweep's configurations were chosen (lmfloss.sweep.tuning.confirm_sweep):
    # recorded in each run's sweep.json for the report; not part of the fingerprint
    tuning: dict[str, Any] | None = None

    @property
    def total_trials(self) -> int:
        """Complete trials the sweep wants: ``trials``, or ``trials`` per space with ``budget: per_space``."""
        return (self.trials or 0) * (len(self.subspaces) if self.budget == "per_space" else 1)

    # ---- the grid -------------------------------------------------------------------
    @property
    def keys(self) -> list[str]:
        """Every key of the space, in first-seen order."""
        seen: dict[str, None] = {}
        for sub in self.subspaces:
            seen.update(dict.fromkeys(sub))
        return list(seen)

    def grid_points(self) -> list[dict[str, Scalar]]:
        """Every point of a grid, in file order, duplicates removed.

        Returns:
            One mapping key -> value per point (the trial's parameters).

        Raises:
            ValueError: the space holds a range (only random/TPE can sample one).
        """
        points: list[dict[str, Scalar]] = []
        seen: set[str] = set()
        for sub in self.subspaces:
            free = [k for k, v in sub.items() if isinstance(v, list)]
            ranged = [k for k, v in sub.items() if isinstance(v, Range)]
            if ranged:
                raise ValueError(f"the grid sampler needs a list of values for {ranged}, got a range")
            for combo in itertools.product(*(sub[k] for k in free)):
                values = dict(zip(free, combo))
                point = {k: values[k] if k in values else values[sub[k][1]] for k in sub}
                key = point_key(point)
                if key not in seen:
                    seen.add(key)
                    points.append(point)
        return points

    def wanted(self, point: Mapping[str, Scalar]) -> bool:
        """Whether ``point`` passes the ``only`` filter (a key outside the space is matched
        against the base config)."""
        for key, values in self.only.items():
            if key in point:
                value = point[key]
            else:
                value = flatten(self.base, {}).get(key)
            if not any(_same(value, v) for v in values):
                return False
        return True

    def wanted_points(self) -> list[dict[str, Scalar]]:
        """The grid points this worker may train (:meth:`grid_points` through :meth:`wanted`)."""
        return [p for p in self.grid_points() if self.wanted(p)]

    def choices(self) -> dict[str, list[Scalar]]:
        """Categorical choices of each grid key: the values over all points, first-seen order.

        Optuna requires one distribution per parameter name across a study, so every trial
        suggests a key with these same choices.
        """
        out: dict[str, list[Scalar]] = {}
        for point in self.grid_points():
            for k, v in point.items():
                bucket = out.setdefault(k, [])
                if not any(_same(v, b) for b in bucket):
                    bucket.append(v)
        return out

    # ---- configs --------------------------------------------------------------------
    def resolve(self, params: Mapping[str, Scalar]) -> tuple[TrainConfig, dict[str, Scalar]]:
        """The training config and the tags of one trial.

        ``base``, then ``params``, then every matching override, in order.

        Returns:
            ``(config, tags)``; ``tags`` maps ``<name>`` of each ``tags.<name>`` key.

        Raises:
            ValueError: a key or value TrainConfig rejects.
        """
        values = dict(self.base)
        values["loss_params"] = dict(values.get("loss_params") or {})
        tags: dict[str, Scalar] = {}
        apply_overrides(values, params, extra=tags)
        for override in self.overrides:
            flat = flatten(values, tags)
            if all(k in flat and _same(flat[k], v) for k, v in override.when.items()):
                apply_overrides(values, override.set, extra=tags)
        return resolve_config(TrainConfig.from_dict(values).with_absolute_paths()), tags

    def fingerprint(self) -> str:
        """A hash of what the study measures: sampler, space, base and overrides.

        Machine-specific keys (data folders, device, ...) are left out, so workers on
        machines with different data paths join the same study.
        """
        # Keys at their default are left out too, so a newer lmfloss with more config keys
        # (at their defaults) still joins a study an older one created.
        defaults = TrainConfig().to_dict()
        base = {k: v for k, v in self.base.items() if k not in MACHINE_KEYS and v != defaults.get(k)}
        data = {
            "sampler": self.sampler,
            "space": [{k: _jsonable(v) for k, v in sub.items()} for sub in self.subspaces],
            "base": base,
            "overrides": [[o.when, {k: v for k, v in o.set.items() if k not in MACHINE_KEYS}]
                          for o in self.overrides],
            "trials": self.trials,
            **({"budget": self.budget} if self.budget != "total" else {}),  # older studies keep their fingerprint
        }
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- naming -------------------------------------------------------------------------
def point_key(params: Mapping[str, Scalar]) -> str:
    """Canonical JSON of a point (sorted keys): equal points give equal keys."""
    return json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True)


def format_value(value: Scalar) -> str:
    if isinstance(value, float):
        return format(value, ".6g")
    return str(value)


def run_name(params: Mapping[str, Scalar], max_length: int = 120) -> str:
    """A folder name for a trial, from its parameters: ``loss=lmf_seed=1``.

    Keys are shortened to their last dotted part (``loss_params.beta`` -> ``beta``) unless
    two keys would then clash. Characters outside ``[A-Za-z0-9._=-]`` become ``-``. When the
    printed values lose information (a float with more than 6 significant digits) or the name
    would exceed ``max_length``, a hash of the exact parameters is appended so that two
    different points never share a folder.
    """
    if not params:
        return "default"
    short = {k: k.rsplit(".", 1)[-1] for k in params}
    if len(set(short.values())) < len(short):
        short = {k: k for k in params}
    parts = [f"{short[k]}={format_value(v)}" for k, v in params.items()]
    name = re.sub(r"[^A-Za-z0-9._=-]+", "-", "_".join(parts))
    lossy = any(isinstance(v, float) and math.isfinite(v) and float(format_value(v)) != v
                for v in params.values())
    if lossy or len(name) > max_length:
        digest = hashlib.sha1(point_key(params).encode()).hexdigest()[:8]
        name = f"{name[: max_length - 9]}-{digest}"
    return name


def flatten(values: Mapping[str, Any], tags: Mapping[str, Scalar]) -> dict[str, Any]:
    """Config values with ``loss_params.<k>`` and ``tags.<k>`` keys, for matching ``when``."""
    flat = flatten_config(values)
    flat.update({f"tags.{k}": v for k, v in tags.items()})
    return flat


def _same(a: Any, b: Any) -> bool:
    # 1 and 1.0 match, True and 1 do not (YAML gives bools and ints distinct types).
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _jsonable(value: Any) -> Any:
    if isinstance(value, Range):
        return dataclasses.asdict(value)
    if isinstance(value, tuple):
        return list(value)
    return value
