"""Find and read run directories for a report, without re-training and without torch.

A run directory (the format of :mod:`lmfloss.rundir`) may sit anywhere below the folders
given (a sweep's output folder holds one per trial). A run is *finished* iff its
``report.json`` is valid; otherwise it is *unfinished* and shown as such, never dropped
silently. A run whose ``config.yaml`` cannot be read at all (not UTF-8, not YAML) is
*unreadable*: listed in the report with the reason, and left out of the tables.

Which runs are the same experiment: runs that differ only in the seed (and in runtime
keys: device, data folder...), on the same data. The data is identified by the
fingerprint ``report.json`` records (:meth:`lmfloss.data.Splits.identity`), so runs on
two different CSV files are two datasets, never one.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from lmfloss import rundir
from lmfloss.config import TrainConfig, flatten, keys_with_role
from lmfloss.errors import LmflossError
from lmfloss.report.names import DatasetKey
from lmfloss.report.settings import infer_settings, read_setting
from lmfloss.task import Task, get_task

logger = logging.getLogger(__name__)

FINISHED = "finished"
UNFINISHED = "unfinished"
INVALID = "invalid"  # report.json exists but cannot be read
UNREADABLE = "unreadable"  # config.yaml cannot be read: dataset, model and loss are unknown

# Config keys that do not change what a run measures (the "runtime" role of lmfloss.config),
# and the replicates (seed, CV fold): runs differing only here are repeats of one experiment.
_NON_EXPERIMENT_KEYS = keys_with_role("runtime") | {"seed", "fold"}
_DEFAULT_CONFIG = TrainConfig().to_dict()


def _number(value: Any) -> float | None:
    # focal's ``alpha`` may be the string "margins": not a hyperparameter value to tabulate.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@cache
def _loss_defaults(name: str) -> tuple[tuple[str, Any], ...]:
    # torch-free: only for runs of lmfloss 0.1, whose report.json lacks the resolved loss
    # parameters, is the loss library -- and torch -- imported to fill them in.
    from lmfloss.losses import loss_parameters

    try:
        params = loss_parameters(name)
    except ValueError:  # a loss this installation does not know: no defaults to fill in
        return ()
    return tuple((k, v) for k, v in params.items() if k != "reduction")


@dataclass
class ReportRun:
    """One run directory as a report sees it.

    Attributes:
        run_dir: The folder.
        config: ``config.yaml`` as a mapping (``{}`` when unreadable).
        status: ``finished`` | ``unfinished`` | ``invalid`` | ``unreadable``.
        report: ``report.json`` as a mapping (``None`` unless finished).
        setting: Hyperparameter-study setting recorded by the sweep, if any.
        epochs_done: Rows in ``metrics.csv`` (progress of an unfinished run).
        problem: Why the run is invalid or unreadable.
        invalid_file: The file an invalid run's problem is in (``report.json``, or
            ``predictions.csv`` holding a value that is not a probability).
        dataset_key: The dataset this run counts for (set by :func:`find_runs`: the
            adapter name, or the CSV/folder name, with the data fingerprint added where
            runs of one name saw different data, and the run's task).
    """

    run_dir: Path
    config: dict[str, Any]
    status: str
    report: dict[str, Any] | None = None
    setting: str | None = None
    epochs_done: int = 0
    problem: str | None = None
    dataset_key: DatasetKey | None = None
    invalid_file: str = rundir.REPORT  # which file made an invalid run invalid
    _predictions: rundir.Predictions | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    @property
    def data(self) -> dict[str, Any]:
        """What ``report.json`` records about the data (``{}`` for runs of lmfloss 0.1)."""
        return dict((self.report or {}).get("data") or {})

    @property
    def fingerprint(self) -> str | None:
        return self.data.get("fingerprint")

    @property
    def task(self) -> Task:
        """The run's :class:`~lmfloss.task.Task`: ``report.json``'s, else the config's (runs
        older than multi-label support are multi-class). Its ``headline`` is the metric the
        run is judged and its configuration chosen by.

        Raises:
            ValueError: a task this installation does not know (:func:`read_run` lists such a
                run as unreadable).
        """
        return _task_of(self.report, self.config)

    @property
    def dataset(self) -> DatasetKey:
        return self.dataset_key or DatasetKey(str(self.config.get("dataset")), self.task)

    @property
    def model(self) -> str:
        return str(self.config.get("model"))

    @property
    def base_loss(self) -> str:
        """The loss's registry name (``config.yaml``'s ``loss``)."""
        return str(self.config.get("loss"))

    @property
    def loss(self) -> str:
        """The method: the loss name, with ``-drw`` when deferred re-weighting is on (LDAM-DRW
        and LMF-DRW are methods of their own in the literature and in the tables)."""
        drw = self.loss_params.get("drw_epoch")
        return f"{self.base_loss}-drw" if drw is not None else self.base_loss

    @property
    def seed(self) -> int | None:
        seed = self.config.get("seed")
        return None if seed is None else int(seed)

    @property
    def fold(self) -> int | None:
        """The cross-validation fold the run trained (``None`` outside k-fold CV)."""
        fold = self.config.get("fold")
        return None if fold is None else int(fold)

    @property
    def replicate(self) -> tuple[int, int]:
        """What makes runs of one experiment repeats of each other: the seed and the CV fold."""
        return (-1 if self.seed is None else self.seed, -1 if self.fold is None else self.fold)

    @property
    def loss_params(self) -> dict[str, Any]:
        """Every parameter the run's loss was trained with (``report.json``'s ``loss``), or
        for older runs the config's with the loss's defaults for those not given."""
        resolved = ((self.report or {}).get("loss") or {}).get("params")
        if isinstance(resolved, dict):
            return dict(resolved)
        return {**dict(_loss_defaults(self.base_loss)), **(self.config.get("loss_params") or {})}

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
        """The config without seed and runtime keys: runs sharing it (and the dataset key,
        which tells data versions apart) are repeats of one experiment."""
        full = {**_DEFAULT_CONFIG, **self.config}  # keys an older config.yaml lacks had their default
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

    def predictions(self) -> rundir.Predictions:
        """The test predictions (``predictions.csv``), read once and cached."""
        if self._predictions is None:
            self._predictions = rundir.read_predictions(self.run_dir, self.class_names)
        return self._predictions


PROBABILITY_SLACK = 1e-6  # rounding in a written probability (4 decimals) is not an error


def prediction_problem(run: ReportRun) -> str | None:
    """Why ``run``'s ``predictions.csv`` cannot be scored, in one line naming the file and the
    line (a NaN, an infinity, or a probability outside ``[0, 1]``); ``None`` when every
    probability is one, or the file is absent or unreadable (the report's tables and figures
    then say what they lack, as before)."""
    try:
        predictions = run.predictions()
    except (OSError, ValueError):
        return None
    probs = predictions.probs
    if probs is None:
        return None
    bad = ~np.isfinite(probs) | (probs < -PROBABILITY_SLACK) | (probs > 1 + PROBABILITY_SLACK)
    if not bad.any():
        return None
    row, column = (int(i) for i in np.argwhere(bad)[0])
    name = predictions.class_names[column] if column < len(predictions.class_names) else str(column)
    return (f"{run.run_dir / rundir.PREDICTIONS}: line {row + 2}: prob_{name} is {float(probs[row, column])!r}, not a "
            f"probability in [0, 1] ({int(bad.any(axis=1).sum())} line(s) like it)")


def invalidate_bad_predictions(runs: Sequence[ReportRun]) -> list[ReportRun]:
    """Mark every finished run whose ``predictions.csv`` holds a value that is not a probability
    ``invalid`` (with :func:`prediction_problem`'s line), so the rest of the study is reported
    without it; returns those runs."""
    bad = []
    for run in runs:
        problem = prediction_problem(run) if run.finished else None
        if problem is not None:
            logger.warning("run %s is invalid: %s", run.run_dir, problem)
            run.status, run.problem, run.invalid_file = INVALID, problem, rundir.PREDICTIONS
            bad.append(run)
    return bad


def aligned_preds(reference: rundir.Predictions, other: rundir.Predictions) -> np.ndarray:
    """``other``'s predictions in ``reference``'s image order (:meth:`Predictions.aligned`),
    without building the id index when both list the same images in the same order (every run
    of a study usually does: the report pairs hundreds of them).

    Raises:
        ValueError: the two hold different images or different labels for one image.
    """
    if np.array_equal(reference.ids, other.ids):
        if not np.array_equal(reference.labels, other.labels):
            raise ValueError("the two runs give different labels to the same test images")
        return other.preds
    return reference.aligned(other).preds


def nonfinite_values(run: ReportRun) -> list[tuple[str, float]]:
    """``report.json``'s test and validation scalars that are not finite numbers (NaN, ±inf),
    as ``("test.f1_macro", nan)`` pairs: the tables print them as they are, the runs section
    names the run."""
    out = []
    for split in ("test", "val"):
        for key, value in ((run.report or {}).get(split) or {}).items():
            if isinstance(value, float) and not math.isfinite(value):
                out.append((f"{split}.{key}", value))
    return out


def varied_settings(chosen: ReportRun, runs: Sequence[ReportRun]) -> dict[str, Any]:
    """The experiment settings that differ among ``runs``, with ``chosen``'s values.

    Settings are the experiment key's, flattened (``loss_params.alpha``); a key set in some
    runs and absent in others differs. Used to name experiments that share a method
    (``lmf (alpha=0.5)``) in the report and in ``lmfloss cam``.
    """
    flats = [flatten(json.loads(run.experiment_key)) for run in runs]
    mine = flatten(json.loads(chosen.experiment_key))
    keys = sorted({k for flat in flats for k in flat})
    return {k: mine.get(k) for k in keys if len({json.dumps(f.get(k), default=str) for f in flats}) > 1}


def _task_of(report: dict[str, Any] | None, config: dict[str, Any]) -> Task:
    return get_task((report or {}).get("task") or config.get("task"))


def _metric(report: dict[str, Any] | None, split: str, metric: str) -> float | None:
    if not report:
        return None
    value = (report.get(split) or {}).get(metric)
    if value is None or isinstance(value, (dict, list)):
        return None
    return float(value)


def read_run(run_dir: str | Path) -> ReportRun | None:
    """Read one run directory; ``None`` if its ``config.yaml`` is a YAML mapping but not a
    training config (some other tool's file).

    A ``config.yaml`` that cannot be read gives an ``unreadable`` run with the reason;
    an unreadable ``report.json`` an ``invalid`` one.
    """
    run_dir = Path(run_dir)
    try:
        config = rundir.read_config_dict(run_dir)
    except (OSError, ValueError) as exc:
        logger.warning("run %s: config.yaml cannot be read (%s); listed as unreadable", run_dir, exc)
        return ReportRun(run_dir=run_dir, config={}, status=UNREADABLE, problem=str(exc))
    if not {"dataset", "model", "loss"} <= set(config):
        return None
    status, report, problem = UNFINISHED, None, None
    try:
        report = rundir.read_report(run_dir)
        status = FINISHED if report is not None else UNFINISHED
    except LmflossError as exc:
        logger.warning("run %s: %s; shown as invalid", run_dir, exc)
        status, problem = INVALID, str(exc)
    try:
        epochs = len(rundir.read_metrics(run_dir))
    except (OSError, ValueError):
        epochs = 0
    try:
        _task_of(report, config)
    except ValueError as exc:  # a task this installation does not know: its tables cannot be built
        logger.warning("run %s: unknown task: %s; listed as unreadable", run_dir, exc)
        return ReportRun(run_dir=run_dir, config={}, status=UNREADABLE, problem=f"unknown task: {exc}")
    return ReportRun(run_dir=run_dir, config=config, status=status, report=report,
                     setting=read_setting(run_dir, config), epochs_done=epochs, problem=problem)


def assign_dataset_keys(runs: Sequence[ReportRun]) -> None:
    """Give every run its dataset key: runs on different data never share one.

    The key is the adapter's name (``ham10000``, ``retinamnist``), for ``csv`` and
    ``imagefolder`` the name of the CSV file or image folder; where runs of one name saw
    different data (different fingerprints), ``@<fingerprint>`` is appended to each. The key
    holds the run's task (:class:`~lmfloss.report.names.DatasetKey`): one dataset's two tasks
    (ODIR-5K's single-label form and its official multi-label task) are two datasets of a report.
    """
    by_name: dict[tuple[str, str], set[str | None]] = defaultdict(set)
    names = {}
    for run in runs:
        adapter = str(run.config.get("dataset"))
        name = adapter
        if adapter in ("csv", "imagefolder"):
            data_name = run.data.get("name")
            source = run.config.get("csv") if adapter == "csv" else run.config.get("root")
            name = str(data_name or (Path(str(source)).stem if source else adapter))
        names[id(run)] = name
        by_name[(name, run.task)].add(run.fingerprint)
    for run in runs:
        name = names[id(run)]
        versions = by_name[(name, run.task)] - {None}
        key = f"{name}@{run.fingerprint[:8]}" if len(versions) > 1 and run.fingerprint else name
        run.dataset_key = DatasetKey(key, run.task)


def config_files(root: Path) -> list[Path]:
    """Every ``config.yaml`` at or below ``root``, sorted. Symbolic links to folders are
    followed (a study may be a folder of links to runs kept in several places), each folder
    read once however many links reach it; a link back to a folder above it (a loop) is
    refused with one warning line."""
    found, seen = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # reached again through another link: read once
            subfolders[:] = []
            continue
        seen.add(real)
        if rundir.CONFIG in files:
            found.append(Path(folder) / rundir.CONFIG)
        kept = []
        for name in sorted(subfolders):
            link = os.path.join(folder, name)
            target = os.path.realpath(link)
            if os.path.islink(link) and (real == target or real.startswith(target.rstrip(os.sep) + os.sep)):
                logger.warning("runs folder: %s links to %s, a folder above it (a loop); not followed", link, target)
                continue
            kept.append(name)
        subfolders[:] = kept
    return sorted(found)


def find_runs(roots: Sequence[str | Path]) -> list[ReportRun]:
    """All run directories at or below each root, finished or not, sorted by path.

    Args:
        roots: Folders to search (a run directory itself is accepted too).

    Returns:
        The runs found, each once, with their dataset keys assigned.

    Raises:
        FileNotFoundError: A root does not exist.
        LmflossError: No run directory was found under any root.
    """
    if not roots:
        raise ValueError("no runs folder given; expected at least one RUNS_DIR")
    seen: set[Path] = set()
    runs: list[ReportRun] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"runs folder {str(root)!r} does not exist")
        if not root.is_dir():
            raise NotADirectoryError(f"runs folder {str(root)!r} is a file; expected a folder")
        for config_path in config_files(root):
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
    assign_dataset_keys([r for r in runs if r.status != UNREADABLE])
    logger.info(
        "found %d run(s): %d finished, %d unfinished",
        len(runs), sum(r.finished for r in runs), sum(not r.finished for r in runs),
    )
    return runs
