"""Which runs ``lmfloss cam`` compares, and as repeats of which experiment (torch-free).

Runs that differ only in the seed (and runtime keys) are repeats of one experiment, as in
the report (:attr:`lmfloss.report.runs.ReportRun.experiment_key`); the group is named by
its method (``ce``, ``lmf``, ``ldam-drw``), with the differing settings added where two
groups share a method. ``--runs-from`` takes every finished run below a folder (a sweep's
output), so a sweep's seeds become one group per loss.

Runs compared together must share the dataset and the image size: the maps are scored on
the same images at the network's input size, and the tests pair them image by image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmfloss.cam.selection import run_labels
from lmfloss.config import TrainConfig
from lmfloss.errors import LmflossError
from lmfloss.report.runs import (
    UNREADABLE,
    ReportRun,
    assign_dataset_keys,
    find_runs,
    read_run,
    varied_settings,
)


@dataclass(frozen=True)
class CamRun:
    """One run as ``lmfloss cam`` groups it.

    Attributes:
        run_dir: the run directory.
        label: short unique name (the directory name, parents added on clashes); the
            ``run`` column of the CSV files.
        group: the experiment it repeats (e.g. ``"lmf"``); the ``group`` column.
        seed: the run's seed (``None`` if the config has none).
        dataset: the dataset key (adapter name, or CSV/folder name).
        image_size: the network's input side in pixels.
    """

    run_dir: Path
    label: str
    group: str
    seed: int | None
    dataset: str
    image_size: int


def finished_report_runs(folder: str | Path) -> list[ReportRun]:
    """Every finished run at or below ``folder`` (sorted by path), as read once by
    :func:`lmfloss.report.runs.find_runs`: pass them to :func:`describe_runs` as they are.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        LmflossError: no finished run below it.
    """
    runs = find_runs([folder])
    finished = [r for r in runs if r.finished]
    if not finished:
        raise LmflossError(
            f"--runs-from {str(folder)!r} holds no finished run ({len(runs)} unfinished or unreadable); "
            "expected run directories with a report.json"
        )
    return finished


def finished_runs(folder: str | Path) -> list[Path]:
    """Every finished run directory at or below ``folder`` (sorted by path).

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        LmflossError: no finished run below it.
    """
    return [run.run_dir for run in finished_report_runs(folder)]


def _read(run_dir: Path) -> ReportRun:
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} does not exist")
    run = read_run(run_dir)
    if run is None or run.status == UNREADABLE:
        reason = run.problem if run is not None else "its config.yaml is not a training config"
        raise ValueError(f"{str(run_dir)!r} is not a readable run directory: {reason}")
    return run


def _image_size(run: ReportRun) -> int:
    return int(run.config.get("image_size", TrainConfig.image_size))


def _refuse_mixed(labels: Sequence[str], values: Sequence[Any], shown_as: str, what: str, advice: str) -> None:
    """ValueError naming every run (``shown_as`` formats its value) when ``values`` differ."""
    if len(set(values)) > 1:
        shown = ", ".join(f"{label!r} {shown_as.format(value)}" for label, value in zip(labels, values))
        raise ValueError(f"runs of different {what} compared together ({shown}); {advice}")


def _check_comparable(runs: Sequence[ReportRun], labels: Sequence[str]) -> None:
    _refuse_mixed(labels, [run.dataset for run in runs], "on {}", "datasets",
                  "compare runs trained on one dataset")
    _refuse_mixed(labels, [_image_size(run) for run in runs], "at {} px", "image sizes",
                  "maps are scored at the network's input size, so compare runs of one image size")


def _group_labels(runs: Sequence[ReportRun]) -> dict[str, str]:
    """Experiment key -> group name: the method, plus the settings that tell apart the
    experiments sharing a method (``lmf (alpha=0.5)``)."""
    experiments = {run.experiment_key: run for run in runs}  # one run per experiment
    names: dict[str, str] = {}
    for key, run in experiments.items():
        same = [other for other in experiments.values() if other.loss == run.loss]
        if len(same) == 1:
            names[key] = run.loss
            continue
        varied = varied_settings(run, same)
        names[key] = f"{run.loss} (" + ", ".join(
            f"{k.removeprefix('loss_params.')}={v}" for k, v in varied.items()) + ")"
    return names


def describe_runs(run_dirs: Sequence[str | Path | ReportRun], runs_from: Sequence[str | Path] = ()) -> list[CamRun]:
    """Read the runs' configs (no torch), check they can be compared, and group them.

    Args:
        run_dirs: run directories (``--run``), or runs already read (a :class:`ReportRun`
            is used as it is, not read again).
        runs_from: folders whose finished runs come after ``run_dirs`` (``--runs-from``);
            each run below them is read once.

    Raises:
        ValueError: no runs, an unreadable run, runs of different datasets or image sizes.
        FileNotFoundError: a run directory or a ``runs_from`` folder does not exist.
        LmflossError: a ``runs_from`` folder without finished runs.
    """
    given = [*run_dirs, *(run for folder in runs_from for run in finished_report_runs(folder))]
    if not given:
        raise ValueError("give at least one run directory (--run) or a folder of runs (--runs-from)")
    runs = [d if isinstance(d, ReportRun) else _read(Path(d)) for d in given]
    paths = [d.run_dir if isinstance(d, ReportRun) else Path(d) for d in given]
    labels = run_labels(paths)
    assign_dataset_keys(runs)
    _check_comparable(runs, labels)
    groups = _group_labels(runs)
    return [
        CamRun(path, label, groups[run.experiment_key], run.seed, run.dataset, _image_size(run))
        for path, label, run in zip(paths, labels, runs)
    ]
