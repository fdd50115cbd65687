"""The run directory's life cycle: what it holds, whether a new run may start there.

A run directory is *finished* when ``report.json`` exists (docs/ARCHITECTURE.md). A new
run refuses a directory holding a finished or unfinished run unless asked to resume
(continue from ``last.pt``) or overwrite (remove exactly the files :data:`RUN_FILES`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from lmfloss.config import TrainConfig
from lmfloss.errors import LmflossError
from lmfloss.train.checkpoint import load_checkpoint
from lmfloss.train.distributed import DistContext, barrier

logger = logging.getLogger(__name__)

# Files fit() writes; --overwrite removes exactly these (never anything else in the folder).
RUN_FILES = (
    "config.yaml", "metrics.csv", "last.pt", "best.pt", "report.json", "predictions.csv",
    "per_class.csv", "confusion.png", "curves.png", "calibration.png",
)
RUN_FOLDERS = ("tensorboard",)
def prepare_run_dir(out: Path, resume: bool, overwrite: bool, ctx: DistContext) -> dict | None:
    """Check what ``out`` holds; return the checkpoint to resume from, or None."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"run directory {str(out)!r} exists and is not a directory")
    finished = (out / "report.json").is_file()
    last = out / "last.pt"
    if resume and overwrite:
        raise ValueError("pass either resume or overwrite, not both")
    if resume:
        if last.is_file():
            return load_checkpoint(last)
        logger.info("nothing to resume in %s (no last.pt): starting a new run", out)
    elif overwrite:
        if ctx.is_main and out.is_dir():
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
            for name in RUN_FOLDERS:
                shutil.rmtree(out / name, ignore_errors=True)
    elif finished:
        raise LmflossError(
            f"run directory {str(out)!r} already holds a finished run (report.json); "
            "pass --resume to reuse it, --overwrite to replace it, or choose another --out"
        )
    elif last.is_file():
        raise LmflossError(
            f"run directory {str(out)!r} holds an unfinished run (last.pt); "
            "pass --resume to continue it or --overwrite to start again"
        )
    barrier(ctx)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    barrier(ctx)
    return None


def config_from_run(run_dir: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` stored in ``run_dir/config.yaml``."""
    from lmfloss.config import load_config_file

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a run directory (no config.yaml)")
    return TrainConfig.from_dict(load_config_file(path))


