"""How one trial is trained: in this process with ``lmfloss.train.fit``, or under torchrun.

A *trial runner* is any callable ``runner(config: TrainConfig, run_dir: Path) -> report``
that trains ``config`` into ``run_dir`` (the training issue's run-directory format) and
returns ``report.json`` as a mapping (``{"val": {...}, "test": {...}, ...}``). The sweep
never looks at anything else, so tests inject cheap runners and other trainers plug in.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmfloss.config import TrainConfig, save_config
from lmfloss.errors import LmflossError
from lmfloss.rundir import TRIAL_CONFIG, read_report
from lmfloss.train import fit

logger = logging.getLogger(__name__)

TrialRunner = Callable[[TrainConfig, Path], Mapping[str, Any]]


def train_in_process(config: TrainConfig, run_dir: Path) -> Mapping[str, Any]:
    """Train with :func:`lmfloss.train.fit`, resuming from ``last.pt`` when a killed
    worker left one (so a re-run trial continues instead of starting over)."""
    # resume=True starts a new run when there is no last.pt and continues one otherwise.
    result = fit(config, run_dir, resume=True, overwrite=False, quiet=True)
    return result.report


@dataclass(frozen=True)
class TorchrunRunner:
    """Train each trial as ``torchrun --standalone --nproc_per_node N -m lmfloss.sweep.trial``.

    The trial's config is written to ``<run_dir>/trial-config.yaml``; every
    rank calls :func:`train_in_process` (``fit`` sets up DDP from torchrun's environment);
    the worker waits for torchrun and reads ``report.json``. Picklable, so local worker
    processes can carry it.

    Attributes:
        nproc_per_node: processes (GPUs) per trial.
    """

    nproc_per_node: int

    def __call__(self, config: TrainConfig, run_dir: Path) -> Mapping[str, Any]:
        config_path = run_dir / TRIAL_CONFIG
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, config_path)
        torchrun = shutil.which("torchrun")
        launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
        command = [*launcher, "--standalone", f"--nproc_per_node={self.nproc_per_node}",
                   "-m", "lmfloss.sweep.trial", str(config_path), str(run_dir)]
        logger.info("launching %s", " ".join(command))
        completed = subprocess.run(command, env=dict(os.environ), check=False)
        if completed.returncode != 0:
            raise LmflossError(f"torchrun exited with status {completed.returncode} for {str(run_dir)!r}")
        report = read_report(run_dir)
        if report is None:
            raise LmflossError(f"torchrun finished but {str(run_dir / 'report.json')!r} was not written")
        return report


def default_runner(nproc_per_node: int = 1) -> TrialRunner:
    """In-process training for one process per trial, torchrun for several."""
    return train_in_process if nproc_per_node <= 1 else TorchrunRunner(nproc_per_node)

