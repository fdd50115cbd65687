"""The run directory: one module owns its file names, writers and typed readers.

A run directory is what ``lmfloss train`` (:func:`lmfloss.train.fit`) writes and what
``evaluate``, ``predict``, ``cam``, ``sweep`` and ``report`` read::

    config.yaml       the resolved TrainConfig (absolute paths; what was typed in a comment)
    metrics.csv       one row per finished epoch (:func:`metrics_columns` of the task)
    last.pt           everything a resume needs, rewritten atomically after every epoch
    best.pt           the model state of the epoch with the best validation score
    refit.pt          with ``refit``: the model trained on train + validation for best.pt's epochs
    report.json       validation and test metrics of best.pt; its presence = *finished*
    predictions.csv   id,label,pred,prob_<class>... of the test split (class names)
    per_class.csv     class,train_count,support,precision,recall,f1 (test)
    confusion.png, curves.png, calibration.png
    MODEL_CARD.md     what the model is, how it was trained and tested, its limits (from the two above)
    sweep.json        a sweep trial's study, trial number, parameters and tags
    eval-<split>-<checkpoint>[-tta-<views>][-calibrated].json   ``lmfloss evaluate``'s metrics (:func:`read_eval`)
    eval-<name>.json  ``lmfloss evaluate --name``: the run scored on an external set (:func:`read_external_evals`)
    .lock             held while a process trains into the directory (:class:`RunLock`)

Importing this module does not import torch, so ``lmfloss report`` and ``split`` stay
light; :func:`load_checkpoint` imports it when a ``.pt`` file is read (the writers live in
:mod:`lmfloss.train.checkpoint`).
Every text file is written atomically (:mod:`lmfloss.fileio`): a reader never sees half
a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lmfloss.config import TrainConfig, load_config_file, save_config
from lmfloss.errors import DataError, LmflossError
from lmfloss.fileio import atomic_write_text, csv_text, read_csv_rows
from lmfloss.task import MULTICLASS, Task, get_task

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

CONFIG = "config.yaml"
METRICS = "metrics.csv"
LAST = "last.pt"
BEST = "best.pt"
REFIT = "refit.pt"
REPORT = "report.json"
PREDICTIONS = "predictions.csv"
PER_CLASS = "per_class.csv"
CONFUSION = "confusion.png"
CURVES = "curves.png"
CALIBRATION = "calibration.png"
SWEEP_INFO = "sweep.json"
TRIAL_CONFIG = "trial-config.yaml"
LOCK_FILE = ".lock"
TENSORBOARD = "tensorboard"
MODEL_CARD = "MODEL_CARD.md"

# Files fit() writes; --overwrite removes exactly these (never anything else in the folder).
RUN_FILES = (CONFIG, METRICS, LAST, BEST, REFIT, REPORT, PREDICTIONS, PER_CLASS, CONFUSION, CURVES, CALIBRATION,
             MODEL_CARD)
RUN_FOLDERS = (TENSORBOARD,)


def metrics_columns(task: Task | str | None = None) -> tuple[str, ...]:
    """``metrics.csv``'s columns for ``task``: the losses, the task's validation scores
    (``val_<key>`` for each of its ``epoch_metrics``), the learning rate and the seconds."""
    return ("epoch", "train_loss", "val_loss", *(f"val_{k}" for k in get_task(task).epoch_metrics), "lr", "seconds")


METRICS_COLUMNS = metrics_columns(MULTICLASS)
PER_CLASS_COLUMNS = ("class", "train_count", "support", "precision", "recall", "f1")
PER_LABEL_COLUMNS = ("label", "train_positives", "support", "negatives", "ap", "auc", "precision", "recall", "f1",
                     "threshold", "f1_at_threshold")


def _read_json(path: Path, advice: str) -> Any:
    """The JSON value in ``path``, or ``None`` when there is no such file.

    Raises:
        LmflossError: the file is not readable UTF-8 JSON (the message names it and gives
            ``advice``).
    """
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LmflossError(f"{str(path)!r} is not readable JSON ({exc}); {advice}") from None


# ---- config.yaml ---------------------------------------------------------------------
def read_config_dict(run_dir: str | Path) -> dict[str, Any]:
    """``config.yaml`` as a mapping.

    Raises:
        FileNotFoundError: not a run directory (no config.yaml).
        ValueError: not UTF-8, not YAML, not a mapping (the message names the file).
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a run directory (no {CONFIG})")
    return load_config_file(path)


def read_config(run_dir: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` of a run (``config.yaml``); unknown keys are refused by name."""
    data = read_config_dict(run_dir)
    try:
        return TrainConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{str(Path(run_dir) / CONFIG)!r}: {exc}") from None


def write_config(config: TrainConfig, run_dir: str | Path, typed: dict[str, Any] | None = None) -> None:
    save_config(config, Path(run_dir) / CONFIG, typed)


# ---- report.json -----------------------------------------------------------------------
def read_report(run_dir: str | Path) -> dict[str, Any] | None:
    """``report.json`` of a finished run, or ``None`` when the run is not finished.

    Raises:
        LmflossError: the file exists but is not a JSON mapping with ``val`` and ``test``
            metrics (a damaged or foreign file; the message says to delete it to re-run).
    """
    path = Path(run_dir) / REPORT
    report = _read_json(path, "delete it to re-run the evaluation")
    if report is None:
        return None
    if not isinstance(report, dict) or not all(isinstance(report.get(s), dict) for s in ("val", "test")):
        raise LmflossError(f"{str(path)!r} has no 'val' and 'test' metrics; expected lmfloss's report format "
                           "(delete it to re-run the evaluation)")
    return report


def is_finished(run_dir: str | Path) -> bool:
    """Whether the run directory holds a finished run (a valid ``report.json``)."""
    try:
        return read_report(run_dir) is not None
    except LmflossError:
        return False


def write_report(report: dict[str, Any], run_dir: str | Path) -> None:
    """Write ``report.json`` (last of a run's files: its presence marks the run finished)."""
    atomic_write_text(json.dumps(report, indent=2) + "\n", Path(run_dir) / REPORT)


# ---- eval-<split>-<checkpoint>.json (lmfloss evaluate) ----------------------------------
def eval_path(run_dir: str | Path, split: str, checkpoint: str, *, tta: str | None = None,
              calibrated: bool = False) -> Path:
    """Where ``lmfloss evaluate --split SPLIT --checkpoint best|last`` writes by default: the
    name says what was done (``eval-test-best-tta-flip-calibrated.json``), so no evaluation
    overwrites another."""
    return Path(run_dir) / ("-".join(["eval", split, checkpoint, *(["tta", tta] if tta else []),
                                      *(["calibrated"] if calibrated else [])]) + ".json")


def external_eval_path(run_dir: str | Path, name: str) -> Path:
    """Where ``lmfloss evaluate --name NAME`` writes a run's score on an external set."""
    return Path(run_dir) / f"eval-{name}.json"


def read_external_evals(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Every external evaluation of a run (``eval-NAME.json`` with an ``external`` key), by name;
    an unreadable file is left out with a warning naming it."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(run_dir).glob("eval-*.json")):
        try:
            payload = _read_json(path, "run `lmfloss evaluate --name` again")
        except LmflossError as exc:
            logger.warning("%s", exc)
            continue
        if isinstance(payload, dict) and isinstance(payload.get("external"), str):
            found[payload["external"]] = payload
    return found


def write_eval(payload: dict[str, Any], path: str | Path) -> None:
    """Write an evaluation (``split``, ``checkpoint``, ``epoch``, ``class_names`` and the
    metrics of ``report.json``'s splits)."""
    atomic_write_text(json.dumps(payload, indent=2) + "\n", path)


def read_eval(run_dir: str | Path, split: str, checkpoint: str, *, tta: str | None = None,
              calibrated: bool = False) -> dict[str, Any] | None:
    """The evaluation :func:`write_eval` left at :func:`eval_path`, or ``None`` if there is none.
    A calibrated evaluation of lmfloss <= 0.3 (``eval-<split>-<checkpoint>.json`` holding a
    ``calibration`` block) is read too.

    Raises:
        LmflossError: the file is not a JSON mapping of that split and checkpoint.
    """
    path = eval_path(run_dir, split, checkpoint, tta=tta, calibrated=calibrated)
    if (calibrated or tta) and not path.is_file():
        older = read_eval(run_dir, split, checkpoint)
        same = older is not None and (not calibrated or "calibration" in older) and older.get("tta") == tta
        return older if same else None
    payload = _read_json(path, "run `lmfloss evaluate` again")
    if payload is None:
        return None
    if not isinstance(payload, dict) or (payload.get("split"), payload.get("checkpoint")) != (split, checkpoint):
        raise LmflossError(f"{str(path)!r} is not lmfloss evaluate's output for the {split} split of "
                           f"{checkpoint}.pt; run `lmfloss evaluate` again")
    return payload


# ---- metrics.csv ---------------------------------------------------------------------
def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return value


def upgrade_history_row(row: dict[str, Any]) -> dict[str, Any]:
    """An epoch row of an older run with today's names: a multi-label run (``val_map``) of
    lmfloss <= 0.3 called its subset accuracy ``val_accuracy`` and kept an always-empty
    ``val_balanced_accuracy``."""
    if "val_map" in row and "val_accuracy" in row:
        row = {("val_subset_accuracy" if k == "val_accuracy" else k): v for k, v in row.items()
               if k != "val_balanced_accuracy"}
    return row


def write_metrics(history: Sequence[dict[str, Any]], run_dir: str | Path, task: Task | str | None = None) -> None:
    """Rewrite ``metrics.csv`` from the full history (one row per finished epoch; a value an
    older run did not record, or an undefined AUC, is an empty cell)."""
    columns = metrics_columns(task)
    rows = [[_fmt(row.get(c)) for c in columns] for row in history]
    atomic_write_text(csv_text(columns, rows), Path(run_dir) / METRICS)


def read_metrics(run_dir: str | Path) -> list[dict[str, float | int | None]]:
    """Rows of ``metrics.csv`` as numbers (``epoch`` int, empty cells ``None``); ``[]`` without the file."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    _, rows = read_csv_rows(path, ["epoch"], what="metrics file")

    def number(row: dict[str, str], key: str) -> float | int | None:
        value = row[key]
        try:
            return None if value == "" else int(value) if key == "epoch" else float(value)
        except ValueError:
            raise ValueError(f"{path}: line {row['_line']}: {key} {value!r} is not a number") from None

    return [upgrade_history_row({k: number(row, k) for k in row if k != "_line"}) for row in rows]


# ---- predictions.csv -----------------------------------------------------------------
@dataclass(frozen=True)
class Predictions:
    """Test-set predictions of one run, in file order.

    Attributes:
        ids: ``[N]`` record ids (unique; patient ids for a run scored per patient).
        labels: ``[N]`` int64 true class indices; multi-label: ``[N, L]`` 0/1.
        preds: ``[N]`` int64 predicted class indices; multi-label: ``[N, L]`` 0/1 at ``p >= 0.5``.
        probs: ``[N, K]`` float64 probabilities (``None`` if the file has no prob columns).
        class_names: ``K`` names (the labels of a multi-label run), index order.
    """

    ids: np.ndarray
    labels: np.ndarray
    preds: np.ndarray
    class_names: list[str]
    probs: np.ndarray | None = None

    @property
    def task(self) -> str:
        return "multilabel" if self.labels.ndim == 2 else "multiclass"

    def aligned(self, other: Predictions) -> Predictions:
        """``other``'s predictions in this one's id order.

        Raises:
            ValueError: the two hold different images or different labels for one image.
        """
        position = {i: k for k, i in enumerate(other.ids)}
        if len(position) != len(self.ids) or any(i not in position for i in self.ids):
            raise ValueError("the two runs were tested on different images")
        order = np.array([position[i] for i in self.ids], dtype=np.int64)
        if not np.array_equal(other.labels[order], self.labels):
            raise ValueError("the two runs give different labels to the same test images")
        probs = None if other.probs is None else other.probs[order]
        return Predictions(self.ids, other.labels[order], other.preds[order], other.class_names, probs)


def write_predictions(ids: Sequence[str], labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str],
                      run_dir: str | Path, decisions: np.ndarray | None = None) -> None:
    """``predictions.csv``: ``id,label,pred,prob_<class>...`` with class names as labels;
    ``pred`` is the argmax of ``probs`` (ties: the lowest class index).

    Multi-label (``labels`` ``[N, L]``): ``id,labels,pred,true_<label>...,prob_<label>...``;
    ``labels`` and ``pred`` are ``;``-joined label names, ``pred`` from ``decisions`` (``[N, L]``
    0/1: the task's decision at the thresholds chosen on validation, :meth:`lmfloss.task.Task.decide`,
    the rule of ``predict`` and the export; ``p >= 0.5`` without), ``true_<label>`` 0/1 (-1
    unknown), ``prob_<label>`` the sigmoid written exactly (``repr``), so that scikit-learn on
    this file gives ``report.json``'s numbers even where a barely trained model's probabilities
    differ in the 9th digit.
    """
    if np.ndim(labels) == 2:
        decided = (np.asarray(probs) >= 0.5) if decisions is None else np.asarray(decisions)
        header = ["id", "labels", "pred", *(f"true_{c}" for c in class_names), *(f"prob_{c}" for c in class_names)]
        rows = [
            [i, ";".join(c for c, t in zip(class_names, truth) if t == 1), ";".join(c for c, d in zip(class_names, ds)
                                                                             if d),
             *(int(t) for t in truth), *(repr(float(x)) for x in row)]  # exact: report.json == sklearn(csv)
            for i, truth, ds, row in zip(ids, labels, decided, probs)
        ]
        atomic_write_text(csv_text(header, rows), Path(run_dir) / PREDICTIONS)
        return
    preds = probs.argmax(axis=1) if decisions is None else np.asarray(decisions)
    header = ["id", "label", "pred"] + [f"prob_{c}" for c in class_names]
    rows = [
        [i, class_names[int(t)], class_names[int(p)], *(f"{float(x):.8g}" for x in row)]
        for i, t, p, row in zip(ids, labels, preds, probs)
    ]
    atomic_write_text(csv_text(header, rows), Path(run_dir) / PREDICTIONS)


def _class_index(value: str, class_names: list[str], path: Path) -> int:
    if value in class_names:
        return class_names.index(value)
    try:
        index = int(float(value))
    except ValueError:
        raise ValueError(f"{path}: class {value!r} is neither a class name {class_names} nor an index") from None
    if class_names and not 0 <= index < len(class_names):
        raise ValueError(f"{path}: class index {index} outside 0..{len(class_names) - 1}")
    return index


def _read_multilabel(path: Path, columns: list[str], rows: list[dict[str, str]], class_names: list[str]) -> Predictions:
    names = class_names or [c[len("true_"):] for c in columns if c.startswith("true_")]
    missing = [c for n in names for c in (f"true_{n}", f"prob_{n}") if c not in columns]
    if missing:
        raise ValueError(f"{path}: multi-label predictions lack column(s) {missing}")
    ids = [row["id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate ids; every test record must appear once")
    try:
        labels = np.array([[int(row[f"true_{n}"]) for n in names] for row in rows], dtype=np.int64).reshape(-1, len(names))
        probs = np.array([[float(row[f"prob_{n}"]) for n in names] for row in rows], dtype=np.float64).reshape(-1, len(names))
    except ValueError as exc:
        raise ValueError(f"{path}: a true_/prob_ value is not a number ({exc})") from None
    return Predictions(ids=np.asarray(ids, dtype=object), labels=labels, preds=(probs >= 0.5).astype(np.int64),
                       class_names=list(names), probs=probs)


def read_predictions(path: str | Path, class_names: Iterable[str] = ()) -> Predictions:
    """Read ``predictions.csv`` (a run directory or the file itself).

    ``label``/``pred`` may be class names or integer indices; names are mapped through
    ``class_names`` (from ``report.json``), or through the ``prob_<class>`` columns' order
    when ``class_names`` is empty. A multi-label file (``true_<label>`` columns) gives
    ``[N, L]`` labels and predictions.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: missing columns, unknown class names or duplicate ids.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PREDICTIONS
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {str(path)!r} does not exist")
    columns, rows = read_csv_rows(path, ["id"], what="predictions file")
    if any(c.startswith("true_") for c in columns):
        return _read_multilabel(path, columns, rows, list(class_names))
    missing = [c for c in ("label", "pred") if c not in columns]
    if missing:
        raise DataError(f"predictions file {str(path)!r} lacks column(s) {missing}; found columns {columns}")
    prob_columns = [c for c in columns if c.startswith("prob_")]
    names = list(class_names) or [c[len("prob_"):] for c in prob_columns]
    ids = [row["id"] for row in rows]
    labels = [_class_index(row["label"], names, path) for row in rows]
    preds = [_class_index(row["pred"], names, path) for row in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate ids; every test record must appear once")
    if not names:
        names = [str(i) for i in range(max(labels + preds, default=-1) + 1)]
    probs = None
    if prob_columns and len(prob_columns) == len(names):
        try:
            probs = np.array([[float(row[c]) for c in prob_columns] for row in rows], dtype=np.float64)
        except ValueError:
            probs = None
    return Predictions(
        ids=np.asarray(ids, dtype=object),
        labels=np.asarray(labels, dtype=np.int64),
        preds=np.asarray(preds, dtype=np.int64),
        class_names=names,
        probs=probs,
    )


# ---- per_class.csv -------------------------------------------------------------------
def write_per_class(report: dict[str, Any], class_names: Sequence[str], train_counts: Sequence[Any],
                    run_dir: str | Path) -> None:
    """``per_class.csv``: ``class,train_count,support,precision,recall,f1`` of one split.

    A multi-label run (``train_counts`` the ``[L, 2]`` table, ``report`` per label):
    :data:`PER_LABEL_COLUMNS` -- each label's training positives, positives and negatives in
    the split, AP, AUC, precision/recall/F1 at 0.5, the validation-chosen threshold and F1 at it
    (empty where undefined: a label without positives here)."""
    if "ap_per_label" in report:  # a report per label (multi-hot targets): one row per label
        def cell(key: str, name: str) -> str:
            value = (report.get(key) or {}).get(name)
            return "" if value is None else f"{value:.6f}"

        rows = [[name, int(train_counts[k][1]), report["support"][name], report["negatives"][name],
                 cell("ap_per_label", name), cell("auc_per_label", name), cell("precision_per_label", name),
                 cell("recall_per_label", name), cell("f1_per_label", name), cell("thresholds", name),
                 cell("f1_per_label_at_threshold", name)]
                for k, name in enumerate(class_names)]
        atomic_write_text(csv_text(PER_LABEL_COLUMNS, rows), Path(run_dir) / PER_CLASS)
        return
    rows = [
        [name, int(train_counts[k]), report["support"][name], f"{report['precision_per_class'][name]:.6f}",
         f"{report['recall_per_class'][name]:.6f}", f"{report['f1_per_class'][name]:.6f}"]
        for k, name in enumerate(class_names)
    ]
    atomic_write_text(csv_text(PER_CLASS_COLUMNS, rows), Path(run_dir) / PER_CLASS)


# ---- sweep.json ----------------------------------------------------------------------
def read_sweep_info(run_dir: str | Path) -> dict[str, Any] | None:
    """``sweep.json`` of a sweep trial (study, trial, params, tags), or ``None``."""
    path = Path(run_dir) / SWEEP_INFO
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_sweep_info(info: dict[str, Any], run_dir: str | Path) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(info, indent=2, default=str) + "\n", Path(run_dir) / SWEEP_INFO)


# ---- life cycle ----------------------------------------------------------------------
class RunDirBusy(LmflossError):
    """Another live process holds a run directory's lock (:class:`RunLock`); ``holder`` says
    which ("lmfloss pid 123 on host h since ...")."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


def wait_until_free(run_dir: str | Path, *, poll: float = 2.0,
                    on_wait: Callable[[str], None] | None = None) -> str | None:
    """Block while another process holds ``run_dir``'s :class:`RunLock`; return the holder
    waited for (``None``: the directory was free at once). ``on_wait(holder)`` is called
    before each sleep of ``poll`` seconds. A directory without a lock file returns at once
    (nothing is created). The lock is only tested, not kept: the caller takes it itself."""
    if not (Path(run_dir) / LOCK_FILE).is_file():
        return None
    holder = None
    while True:
        try:
            RunLock(run_dir).acquire().release()
            return holder
        except RunDirBusy as exc:
            holder = exc.holder
            if on_wait is not None:
                on_wait(holder)
        time.sleep(poll)


class RunLock:
    """An exclusive lock on a run directory, held while a run trains into it.

    ``fcntl.flock`` on ``<run_dir>/.lock``: the kernel releases it when the holding process
    ends in any way (SIGKILL included), so a lock can never be left stale by a dead run;
    the file holds the holder's pid, host and start time for the message a second process
    gets. The file itself stays (removing it would let two processes lock two different
    files of one name).

    Raises:
        RunDirBusy: another process holds the lock (the message names it).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunDirBusy(
                f"run directory {str(self.path.parent)!r} is in use by {holder}; wait for it to "
                "finish, or choose another --out", holder=holder,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"lmfloss pid {os.getpid()} on host {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (``last.pt``, ``best.pt``) written by
    :func:`lmfloss.train.checkpoint.atomic_save`; torch is imported here, not with the module.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable lmfloss checkpoint.
    """
    import torch  # torch-free: split and report import this module; only reading a checkpoint needs torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        # RNG states hold numpy arrays and tuples, so the full unpickler is needed; the
        # file is one lmfloss wrote itself into the run directory.
        data = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise ValueError(f"checkpoint {str(path)!r} cannot be read: {exc}") from None
    if not isinstance(data, dict) or "model" not in data:
        raise ValueError(f"checkpoint {str(path)!r} is not an lmfloss checkpoint (no 'model' key)")
    return data


def prepare_run_dir(out: Path, resume: bool, overwrite: bool, *, is_main: bool = True,
                    sync: Callable[[], None] = lambda: None) -> dict | None:
    """Check what ``out`` holds before a run starts; return the checkpoint to resume from, or None.

    Args:
        out: the run directory.
        resume: continue from ``last.pt`` (a new run when there is none).
        overwrite: remove :data:`RUN_FILES` and :data:`RUN_FOLDERS` first (nothing else).
        is_main: only the main process (DDP rank 0) removes files or creates the folder.
        sync: a barrier between processes (DDP), called around the changes.

    Raises:
        LmflossError: a finished or unfinished run is there and neither flag was given.
    """
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"run directory {str(out)!r} exists and is not a directory")
    if resume and overwrite:
        raise ValueError("pass either resume or overwrite, not both")
    last = out / LAST
    if resume:
        if last.is_file():
            return load_checkpoint(last)
        logger.info("nothing to resume in %s (no last.pt): starting a new run", out)
    elif overwrite:
        if is_main and out.is_dir():
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
            for name in RUN_FOLDERS:
                shutil.rmtree(out / name, ignore_errors=True)
    elif (out / REPORT).is_file():
        raise LmflossError(
            f"run directory {str(out)!r} already holds a finished run ({REPORT}); "
            "pass --resume to reuse it, --overwrite to replace it, or choose another --out"
        )
    elif last.is_file():
        raise LmflossError(
            f"run directory {str(out)!r} holds an unfinished run ({LAST}); "
            "pass --resume to continue it or --overwrite to start again"
        )
    sync()
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    sync()
    return None


def check_same_data(recorded: dict[str, Any] | None, current: dict[str, Any], class_names: list[str],
                    recorded_classes: list[str] | None, run_dir: str | Path) -> None:
    """Refuse to go on when the data a run was trained on changed (``--resume``,
    ``evaluate``, ``cam``): other labels or images would be scored silently.

    ``recorded``/``current`` are :meth:`lmfloss.data.Splits.identity` mappings; a run of
    lmfloss 0.1 recorded none, and only its class names are compared.

    Raises:
        LmflossError: the class names or the data fingerprint differ.
    """
    if recorded_classes is not None and list(recorded_classes) != list(class_names):
        raise LmflossError(
            f"the data changed since {str(run_dir)!r} was trained: its classes were {list(recorded_classes)}, "
            f"the data now gives {list(class_names)}; point --root/--csv at the data the run was trained on "
            f"({CONFIG}), or train a new run"
        )
    if recorded and recorded.get("fingerprint") and recorded["fingerprint"] != current["fingerprint"]:
        raise LmflossError(
            f"the data changed since {str(run_dir)!r} was trained: {current.get('source')} now has fingerprint "
            f"{current['fingerprint']} with {current.get('images')} images per split, the run recorded "
            f"{recorded['fingerprint']} with {recorded.get('images')} (read from {recorded.get('source')}); "
            "images, labels or splits differ. Restore that data, or train a new run"
        )


def remove_if_empty(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but its lock file (a run that failed
    before writing anything leaves no folder behind)."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {LOCK_FILE}:
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run_dir.rmdir()
