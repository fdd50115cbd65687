"""Reading and validating sweep files (the format is described in :mod:`lmfloss.sweep.spec`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from lmfloss.config import (
    TrainConfig,
    apply_overrides,
    load_config_file,
    load_yaml,
    parse_key_values,
    split_key_value,
)
from lmfloss.sweep.spec import (
    CONFIG_FIELDS,
    SAMPLERS,
    TOP_LEVEL_KEYS,
    Override,
    Range,
    Scalar,
    SweepSpec,
    run_name,
)
from lmfloss.sweep.tuning import PER_SPACE, check_budget
from lmfloss.train.checks import check_trainable

_SCALAR = (str, int, float, bool, type(None))


def check_key(key: Any, where: str) -> str:
    """A valid space/override key, else ``ValueError`` naming it and the valid ones."""
    if not isinstance(key, str):
        raise ValueError(f"{where}: keys must be strings, got {key!r}")
    if key.startswith(("loss_params.", "tags.")) and key.split(".", 1)[1]:
        return key
    if key in CONFIG_FIELDS and key != "loss_params":
        return key
    raise ValueError(
        f"{where}: unknown key {key!r}; expected a TrainConfig field "
        f"({', '.join(f for f in CONFIG_FIELDS if f != 'loss_params')}), "
        "'loss_params.<name>' or 'tags.<name>'"
    )


def _check_scalar(value: Any, where: str) -> Scalar:
    if not isinstance(value, _SCALAR):
        raise ValueError(f"{where}: values must be str, int, float, bool or null, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: values must be finite, got {value!r}")
    return value


def _parse_values(key: str, spec: Any, where: str) -> Any:
    where = f"{where} key {key!r}"
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"{where}: empty list of values")
        return [_check_scalar(v, where) for v in spec]
    if isinstance(spec, Mapping):
        if set(spec) == {"same_as"}:
            return ("same_as", check_key(spec["same_as"], where))
        if "choices" in spec:
            if set(spec) != {"choices"}:
                raise ValueError(f"{where}: 'choices' takes no other options, got {sorted(spec)}")
            return _parse_values(key, spec["choices"], where.rsplit(" key ", 1)[0])
        allowed = {"low", "high", "log", "step", "type"}
        unknown = sorted(set(spec) - allowed)
        if unknown or not {"low", "high"} <= set(spec):
            raise ValueError(
                f"{where}: a range needs 'low' and 'high' (optional 'log', 'step', 'type'), "
                f"got {dict(spec)!r}"
            )
        kind = spec.get("type", "int" if all(isinstance(spec[b], int) and not isinstance(spec[b], bool)
                                             for b in ("low", "high")) else "float")
        if kind not in ("int", "float"):
            raise ValueError(f"{where}: range type must be 'int' or 'float', got {kind!r}")
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: low/high must be numbers, got {spec['low']!r}, {spec['high']!r}") from None
        log = bool(spec.get("log", False))
        step = spec.get("step")
        if not low < high:
            raise ValueError(f"{where}: need low < high, got low={low}, high={high}")
        if log and low <= 0:
            raise ValueError(f"{where}: a log range needs low > 0, got {low}")
        if log and step is not None:
            raise ValueError(f"{where}: 'step' cannot be combined with 'log'")
        if step is not None and (not isinstance(step, (int, float)) or step <= 0):
            raise ValueError(f"{where}: step must be a positive number, got {step!r}")
        return Range(low, high, log=log, step=None if step is None else float(step),
                     integer=kind == "int")
    # A single scalar is a one-value axis (handy for tags).
    return [_check_scalar(spec, where)]


def _parse_subspace(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"{where} must be a non-empty mapping of key -> values, got {raw!r}")
    sub = {check_key(k, where): _parse_values(k, v, where) for k, v in raw.items()}
    for key, value in sub.items():
        if isinstance(value, tuple):
            target = value[1]
            if target not in sub or not isinstance(sub[target], list):
                raise ValueError(
                    f"{where} key {key!r}: same_as {target!r} must name a key with a list of "
                    "values in the same mapping"
                )
    return sub


def parse_sweep(data: Mapping[str, Any], *, base_dir: Path | None = None,
                sets: Mapping[str, Any] | None = None, source: str | None = None) -> SweepSpec:
    """Validate a sweep mapping (the YAML's content) into a :class:`SweepSpec`.

    Args:
        data: the mapping.
        base_dir: folder that a ``base: FILE`` path is relative to (the sweep file's).
        sets: ``KEY -> value`` applied to the base config (``--set``), same keys as ``space``.
        source: where it came from, for messages.

    Raises:
        ValueError: an unknown key, a bad value, an empty space... naming what was received.
    """
    where = f"sweep file {source!r}" if source else "sweep"
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {list(TOP_LEVEL_KEYS)}")

    sampler = str(data.get("sampler", "grid")).lower()
    if sampler not in SAMPLERS:
        raise ValueError(f"{where}: sampler must be one of {list(SAMPLERS)}, got {data.get('sampler')!r}")

    base = _parse_base(data.get("base") or {}, where, base_dir, sets)
    raw_space = data.get("space")
    budget = check_budget(data.get("budget"), sampler, len(raw_space) if isinstance(raw_space, list) else 1, where)
    subspaces = _parse_space(raw_space, sampler, where, per_space=budget == PER_SPACE)
    trials = data.get("trials")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise ValueError(f"{where}: trials must be a positive integer, got {trials!r}")
    if sampler == "grid" and trials is not None:
        raise ValueError(f"{where}: 'trials: {trials}' applies to random/tpe sampling; a grid trains "
                         "every point once -- remove 'trials' or choose sampler: random or tpe")
    if sampler != "grid" and trials is None:
        raise ValueError(f"{where}: sampler {sampler!r} needs a trial budget ('trials: N')")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{where}: seed must be an integer, got {seed!r}")
    launcher = data.get("launcher") or {}
    if not isinstance(launcher, Mapping) or set(launcher) - {"nproc_per_node"}:
        raise ValueError(f"{where}: launcher takes only 'nproc_per_node', got {launcher!r}")
    nproc = launcher.get("nproc_per_node", 1)
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"{where}: launcher.nproc_per_node must be a positive integer, got {nproc!r}")
    name = data.get("name") or (Path(source).stem if source else "sweep")
    html = data.get("html", False)
    if not isinstance(html, bool):
        raise ValueError(f"{where}: html must be true or false, got {html!r}")
    tuning = data.get("tuning")
    if tuning is not None and not isinstance(tuning, Mapping):
        raise ValueError(f"{where}: tuning must be a mapping (what lmfloss wrote into confirm.yaml), got {tuning!r}")
    spec = SweepSpec(name=str(name), sampler=sampler, base=base, subspaces=subspaces,
                     trials=trials, seed=seed, overrides=_parse_overrides(data.get("overrides"), where),
                     nproc_per_node=nproc, source=source, html=html, budget=budget,
                     tuning=None if tuning is None else dict(tuning))
    check_points(spec)
    return spec


def _representative_points(spec: SweepSpec) -> list[dict[str, Scalar]]:
    """Random/TPE: every categorical value once (the other keys at their first value or
    the range's bounds), so a typo in any value is found before a trial samples it."""
    sub = spec.subspaces[0]

    def first(value: Any) -> Scalar:
        return value[0] if isinstance(value, list) else (int(value.low) if value.integer else value.low)

    base = {k: first(v) for k, v in sub.items()}
    points = [base]
    for key, value in sub.items():
        options = value if isinstance(value, list) else [first(value), int(value.high) if value.integer else value.high]
        points += [{**base, key: option} for option in options[1:]]
    return points


def check_points(spec: SweepSpec) -> None:
    """Every grid point (random/TPE: every value of the space) must give a trainable config:
    known dataset, model, loss, loss parameter names and values (:func:`check_trainable`),
    checked before any trial trains -- and by ``--dry-run``.

    Raises:
        ValueError: naming the point and what is wrong with it.
    """
    points = spec.grid_points() if spec.sampler == "grid" else _representative_points(spec)
    checked: set[str] = set()
    for point in points:
        try:
            config, _ = spec.resolve(point)
            key = repr(sorted(config.to_dict().items(), key=str))
            if key not in checked:
                checked.add(key)
                check_trainable(config)
        except ValueError as exc:
            label = "grid point" if spec.sampler == "grid" else "value"
            raise ValueError(f"sweep {spec.source or spec.name!r}, {label} {run_name(point)}: {exc}") from None


def _parse_base(base_raw: Any, where: str, base_dir: Path | None, sets: Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(base_raw, str):
        base_raw = {"from": base_raw}
    if not isinstance(base_raw, Mapping):
        raise ValueError(f"{where}: base must be a training config mapping or a file path, got {base_raw!r}")
    if "from" in base_raw:  # a train YAML file's keys, then the mapping's own on top
        path = Path(str(base_raw["from"]))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        base_raw = {**load_config_file(path), **{k: v for k, v in base_raw.items() if k != "from"}}
    base = dict(TrainConfig.from_dict(dict(base_raw)).to_dict())  # validates the keys
    for key, value in (sets or {}).items():
        _apply_set(base, check_key(key, "--set"), value)
    TrainConfig.from_dict(base)
    return base


def _parse_space(raw_space: Any, sampler: str, where: str, per_space: bool = False) -> list[dict[str, Any]]:
    if raw_space is None:
        raise ValueError(f"{where}: 'space' is missing; give at least one key with its values")
    if isinstance(raw_space, list):
        if not raw_space:
            raise ValueError(f"{where}: 'space' is an empty list")
        subspaces = [_parse_subspace(s, f"{where} space[{i}]") for i, s in enumerate(raw_space)]
    else:
        subspaces = [_parse_subspace(raw_space, f"{where} space")]
    if sampler != "grid":
        if len(subspaces) > 1 and not per_space:
            raise ValueError(f"{where}: a list of spaces (a union of grids) needs sampler: grid, or "
                             f"budget: per_space (the same {sampler} budget in each), got {sampler!r}")
        tied = [k for k, v in subspaces[0].items() if isinstance(v, tuple)]
        if tied:
            raise ValueError(f"{where}: same_as ({tied}) needs sampler: grid, got {sampler!r}")
    return subspaces


def _parse_overrides(items: Any, where: str) -> list[Override]:
    overrides = []
    for i, item in enumerate(items or []):
        w = f"{where} overrides[{i}]"
        if not isinstance(item, Mapping) or set(item) - {"when", "set"} or "set" not in item:
            raise ValueError(f"{w}: expected a mapping with 'when' and 'set', got {item!r}")
        when = item.get("when") or {}
        changes = item["set"]
        if not isinstance(when, Mapping) or not isinstance(changes, Mapping):
            raise ValueError(f"{w}: 'when' and 'set' must be mappings, got {item!r}")
        overrides.append(Override(
            when={check_key(k, w): _check_scalar(v, w) for k, v in when.items()},
            set={check_key(k, w) if k != "loss_params" else k: v for k, v in changes.items()},
        ))
    return overrides


def _apply_set(base: dict[str, Any], key: str, value: Any) -> None:
    if key.startswith("tags."):
        raise ValueError(f"--set {key}: tags belong to the search space, not the base config")
    apply_overrides(base, {key: value})


def parse_sets(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["epochs=2", "root=/data"]`` -> ``{"epochs": 2, "root": "/data"}`` (YAML scalars);
    ``base.root=...`` is accepted for ``root=...``."""
    values = parse_key_values([p[len("base."):] if p.startswith("base.") else p for p in pairs or []],
                              "--set")
    return values


def parse_only(pairs: Sequence[str] | None) -> dict[str, list[Scalar]]:
    """``["dataset=breastmnist", "loss=ce,lmf"]`` -> ``{"dataset": ["breastmnist"], "loss": ["ce", "lmf"]}``."""
    out: dict[str, list[Scalar]] = {}
    for pair in pairs or []:
        key, text = split_key_value(pair, "--only", "KEY=V1,V2")
        key = check_key(key, "--only")
        # YAML scalars, so --only loss_params.drw_epoch=null selects the points without it.
        values = [_check_scalar(yaml_scalar(part), "--only") for part in text.split(",") if part.strip()]
        if not values:
            raise ValueError(f"--only {key}= needs at least one value, e.g. --only {key}=a,b")
        out[key] = values
    return out


def yaml_scalar(text: str) -> Scalar:
    try:
        value = load_yaml(text.strip())
    except yaml.YAMLError:
        return text.strip()
    return value if isinstance(value, _SCALAR) else text.strip()


def load_sweep(path: str | Path, sets: Mapping[str, Any] | None = None) -> SweepSpec:
    """Read and validate a sweep file.

    Args:
        path: the YAML file.
        sets: ``--set`` values applied to its base config.

    Raises:
        FileNotFoundError: no such file.
        ValueError: invalid content (the message names the key and value).
    """
    path = Path(path)
    data = load_config_file(path)
    return parse_sweep(data, base_dir=path.parent, sets=sets, source=str(path))
