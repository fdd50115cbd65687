"""Find and read run directories (the training issue's format) without re-training.

A run directory is any folder holding a ``config.yaml`` with the training config's
``dataset``, ``model`` and ``loss`` keys; it may sit anywhere below the folders given
(a sweep's output folder holds one per trial). A run is *finished* iff ``report.json``
exists; otherwise it is *unfinished* and shown as such, never dropped silently.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lmfloss.config import TrainConfig, keys_with_role
from lmfloss.errors import LmflossError

logger = logging.getLogger(__name__)

FINISHED = "finished"
UNFINISHED = "unfinished"
INVALID = "invalid"  # report.json exists but cannot be read

# Config keys that do not change what a run measures (the "runtime" role of lmfloss.config,
# and the seed): two runs differing only here are repeats of the same experiment.
_NON_EXPERIMENT_KEYS = keys_with_role("runtime") | {"seed"}
_DEFAULT_CONFIG = TrainConfig().to_dict()
# Where a sweep records the hyperparameter-study setting of a trial: ``lmfloss sweep``
# writes ``sweep.json`` with the trial's ``tags`` (``tags.setting`` in the sweep file).
_SETTING_FILES = ("sweep.json", "trial.json")


@dataclass
class Run:
    """One run directory as read from disk.

    Attributes:
        run_dir: The folder.
        config: ``config.yaml`` as a mapping.
        status: ``finished`` | ``unfinished`` | ``invalid``.
        report: ``report.json`` as a mapping (``None`` unless finished).
        setting: Hyperparameter-study setting recorded by the sweep, if any.
        epochs_done: Rows in ``metrics.csv`` (progress of an unfinished run).
    """

    run_dir: Path
    config: dict[str, Any]
    status: str
    report: dict[str, Any] | None = None
    setting: str | None = None
    epochs_done: int = 0
    _predictions: Predictions | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    @property
    def dataset(self) -> str:
        return str(self.config.get("dataset"))

    @property
    def model(self) -> str:
        return str(self.config.get("model"))

    @property
    def loss(self) -> str:
        return str(self.config.get("loss"))

    @property
    def seed(self) -> int | None:
        seed = self.config.get("seed")
        return None if seed is None else int(seed)

    @property
    def loss_params(self) -> dict[str, Any]:
        """The run's loss parameters, with the loss's defaults for those not given."""
        return {**loss_defaults(self.loss), **(self.config.get("loss_params") or {})}

    @property
    def alpha(self) -> float | None:
        """LMF's ``alpha`` (numeric ``alpha`` of any loss; ``None`` if absent or not a number)."""
        return _number(self.loss_params.get("alpha"))

    @property
    def beta(self) -> float | None:
        """LMF's ``beta`` (``None`` if absent or not a number)."""
        return _number(self.loss_params.get("beta"))

    @property
    def experiment_key(self) -> str:
        """The config without seed and hardware keys: runs sharing it are repeats."""
        # Keys an older config.yaml lacks had their default value then.
        full = {**_DEFAULT_CONFIG, **self.config}
        kept = {k: v for k, v in full.items() if k not in _NON_EXPERIMENT_KEYS}
        kept["loss_params"] = self.loss_params  # {} and the explicit defaults are one experiment
        return json.dumps(kept, sort_keys=True, default=str)

    @property
    def settings(self) -> list[str]:
        """The hyperparameter-study setting(s): the sweep's record, else inferred."""
        if self.setting:
            return [self.setting]
        return infer_settings(self.alpha, self.beta)

    @property
    def class_names(self) -> list[str]:
        if self.report and self.report.get("class_names"):
            return [str(c) for c in self.report["class_names"]]
        return []

    def test(self, metric: str) -> float | None:
        """A test-split scalar from ``report.json`` (``None`` if absent)."""
        return _metric(self.report, "test", metric)

    def val(self, metric: str) -> float | None:
        """A validation-split scalar from ``report.json`` (``None`` if absent)."""
        return _metric(self.report, "val", metric)

    def predictions(self) -> Predictions:
        """The test predictions (``predictions.csv``), read once and cached."""
        if self._predictions is None:
            self._predictions = read_predictions(self.run_dir / "predictions.csv", self.class_names)
        return self._predictions


@dataclass(frozen=True)
class Predictions:
    """Test-set predictions of one run, in file order.

    Attributes:
        ids: ``[N]`` record ids (unique).
        labels: ``[N]`` int64 true class indices.
        preds: ``[N]`` int64 predicted class indices.
        class_names: ``K`` names, index order.
    """

    ids: np.ndarray
    labels: np.ndarray
    preds: np.ndarray
    class_names: list[str]


def _number(value: Any) -> float | None:
    # focal's ``alpha`` may be the string "margins": not a hyperparameter value to tabulate.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@cache
def _loss_defaults(name: str) -> tuple[tuple[str, Any], ...]:
    try:
        from lmfloss.losses import loss_parameters
    except ImportError:  # pragma: no cover - the loss library is part of the package
        return ()
    try:
        params = loss_parameters(name)
    except ValueError:  # a loss this installation does not know: no defaults to fill in
        return ()
    return tuple((k, v) for k, v in params.items() if k != "reduction")


def loss_defaults(name: str) -> dict[str, Any]:
    """Default parameters of loss ``name`` (``{}`` for a loss lmfloss does not know)."""
    return dict(_loss_defaults(name))


def _metric(report: dict[str, Any] | None, split: str, metric: str) -> float | None:
    if not report:
        return None
    value = (report.get(split) or {}).get(metric)
    if value is None or isinstance(value, (dict, list)):
        return None
    return float(value)


def _read_yaml(path: Path) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        logger.warning("skipping %s: cannot read it (%s)", path, exc)
        return None
    return data if isinstance(data, dict) else None


def _read_setting(run_dir: Path, config: dict[str, Any]) -> str | None:
    for name in _SETTING_FILES:
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict):
            for source in (data, data.get("tags"), data.get("user_attrs"), data.get("params")):
                if isinstance(source, dict) and source.get("setting"):
                    return str(source["setting"])
    setting = (config.get("loss_params") or {}).get("setting")
    return None if setting is None else str(setting)


def _count_epochs(path: Path) -> int:
    if not path.is_file():
        return 0
    with path.open(newline="") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def read_run(run_dir: str | Path) -> Run | None:
    """Read one run directory; ``None`` if its ``config.yaml`` is not a training config.

    Args:
        run_dir: Folder holding ``config.yaml`` (and ``report.json`` once finished).

    Returns:
        The :class:`Run`; ``status`` says whether it finished.
    """
    run_dir = Path(run_dir)
    config = _read_yaml(run_dir / "config.yaml")
    if config is None or not {"dataset", "model", "loss"} <= set(config):
        return None
    status, report = UNFINISHED, None
    report_path = run_dir / "report.json"
    if report_path.is_file():
        try:
            report = json.loads(report_path.read_text())
            status = FINISHED
        except (OSError, json.JSONDecodeError) as exc:
            logger.warning("run %s: report.json is unreadable (%s); shown as invalid", run_dir, exc)
            status = INVALID
    return Run(
        run_dir=run_dir,
        config=config,
        status=status,
        report=report,
        setting=_read_setting(run_dir, config),
        epochs_done=_count_epochs(run_dir / "metrics.csv"),
    )


def find_runs(roots: Sequence[str | Path]) -> list[Run]:
    """All run directories at or below each root, finished or not, sorted by path.

    Args:
        roots: Folders to search (a run directory itself is accepted too).

    Returns:
        The runs found, each once.

    Raises:
        FileNotFoundError: A root does not exist.
        LmflossError: No run directory was found under any root.
    """
    if not roots:
        raise ValueError("no runs folder given; expected at least one RUNS_DIR")
    seen: set[Path] = set()
    runs: list[Run] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"runs folder {str(root)!r} does not exist")
        if not root.is_dir():
            raise NotADirectoryError(f"runs folder {str(root)!r} is a file; expected a folder")
        for config_path in sorted(root.rglob("config.yaml")):
            run_dir = config_path.parent.resolve()
            if run_dir in seen:
                continue
            seen.add(run_dir)
            run = read_run(run_dir)
            if run is not None:
                runs.append(run)
    if not runs:
        raise LmflossError(
            f"no run directories (a config.yaml with dataset, model and loss) under "
            f"{[str(r) for r in roots]}"
        )
    runs.sort(key=lambda r: str(r.run_dir))
    logger.info(
        "found %d run(s): %d finished, %d unfinished",
        len(runs),
        sum(r.finished for r in runs),
        sum(not r.finished for r in runs),
    )
    return runs


def _class_index(value: str, class_names: list[str], path: Path) -> int:
    if value in class_names:
        return class_names.index(value)
    try:
        index = int(float(value))
    except ValueError:
        raise ValueError(
            f"{path}: class {value!r} is neither a class name {class_names} nor an index"
        ) from None
    if class_names and not 0 <= index < len(class_names):
        raise ValueError(f"{path}: class index {index} outside 0..{len(class_names) - 1}")
    return index


def read_predictions(path: str | Path, class_names: Iterable[str] = ()) -> Predictions:
    """Read ``predictions.csv`` (``id,label,pred,prob_<class>...``).

    ``label``/``pred`` may be class names or integer indices; names are mapped through
    ``class_names`` (from ``report.json``), or through the ``prob_<class>`` columns'
    order when ``class_names`` is empty.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Missing columns, unknown class names or duplicate ids.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {str(path)!r} does not exist")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        missing = {"id", "label", "pred"} - set(fields)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; found {fields}")
        names = list(class_names) or [f[len("prob_") :] for f in fields if f.startswith("prob_")]
        ids, labels, preds = [], [], []
        for row in reader:
            ids.append(row["id"])
            labels.append(_class_index(row["label"], names, path))
            preds.append(_class_index(row["pred"], names, path))
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate ids; every test record must appear once")
    if not names:
        names = [str(i) for i in range(max(labels + preds, default=-1) + 1)]
    return Predictions(
        ids=np.asarray(ids, dtype=object),
        labels=np.asarray(labels, dtype=np.int64),
        preds=np.asarray(preds, dtype=np.int64),
        class_names=names,
    )


def find_cam_summaries(roots: Sequence[str | Path]) -> list[tuple[Path, list[dict[str, str]]]]:
    """Every ``cam_summary.csv`` (written by ``lmfloss cam``) at or below the roots.

    Returns:
        ``(path, rows)`` pairs; rows as read (``run, target, class, n_images, ...``).
    """
    found = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("cam_summary.csv")):
            with path.open(newline="") as handle:
                found.append((path, list(csv.DictReader(handle))))
    return found


def match_run(label: str, runs: Sequence[Run]) -> Run | None:
    """The run whose directory path ends with ``label`` (``lmfloss cam``'s run names)."""
    parts = tuple(Path(label).parts)
    if not parts:
        return None
    matches = [r for r in runs if r.run_dir.parts[-len(parts) :] == parts]
    return matches[0] if len(matches) == 1 else None


def infer_settings(alpha: float | None, beta: float | None) -> list[str]:
    """The paper's hyperparameter-study setting(s) an LMF run belongs to.

    Setting-1 varies ``alpha == beta`` together; setting-2 varies ``beta`` with
    ``alpha == 1``; setting-3 varies ``alpha`` with ``beta == 1`` (Sadi et al., "Analysis
    of LMF loss hyperparameters"). ``alpha == beta == 1`` is a point of all three.

    Returns:
        The settings (possibly several, possibly none), in order.
    """
    if alpha is None or beta is None:
        return []
    settings = []
    if np.isclose(alpha, beta):
        settings.append("setting-1")
    if np.isclose(alpha, 1.0):
        settings.append("setting-2")
    if np.isclose(beta, 1.0):
        settings.append("setting-3")
    return settings
