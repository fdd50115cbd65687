"""The run directory's life cycle: what it holds, whether a new run may start there.

A run directory is *finished* when ``report.json`` exists (docs/ARCHITECTURE.md). A new
run refuses a directory holding a finished or unfinished run unless asked to resume
(continue from ``last.pt``) or overwrite (remove exactly the files :data:`RUN_FILES`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from lmfloss.config import TrainConfig
from lmfloss.errors import LmflossError
from lmfloss.train.checkpoint import load_checkpoint
from lmfloss.train.distributed import DistContext, barrier

logger = logging.getLogger(__name__)

# Files fit() writes; --overwrite removes exactly these (never anything else in the folder).
RUN_FILES = (
    "config.yaml", "metrics.csv", "last.pt", "best.pt", "report.json", "predictions.csv",
    "per_class.csv", "confusion.png", "curves.png",
)
RUN_FOLDERS = ("tensorboard",)
# Fields that may change when a run is resumed: they change where/how fast it runs, not
# what it computes (epochs: a finished run may be extended).
RESUMABLE_CHANGES = frozenset(
    {"device", "amp", "compile", "channels_last", "workers", "tensorboard", "epochs", "cache_dir",
     "download", "root", "bootstrap"}
)


def check_config(config: TrainConfig) -> None:
    """Reject values no run can use, naming the field, the value and what is expected."""
    if not isinstance(config, TrainConfig):
        raise ValueError(f"fit expects a lmfloss.config.TrainConfig, got {type(config).__name__}")
    rules = {
        "epochs": (config.epochs, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        "batch_size": (config.batch_size, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        "lr": (config.lr, lambda v: isinstance(v, (int, float)) and v > 0, "a number > 0"),
        "weight_decay": (config.weight_decay, lambda v: isinstance(v, (int, float)) and v >= 0, "a number >= 0"),
        "lr_step": (config.lr_step, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        "lr_gamma": (config.lr_gamma, lambda v: isinstance(v, (int, float)) and 0 < v <= 1, "a number in (0, 1]"),
        "image_size": (config.image_size, lambda v: isinstance(v, int) and v >= 8, "an integer >= 8 (pixels)"),
        "seed": (config.seed, lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
        "workers": (config.workers, lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
        "bootstrap": (config.bootstrap, lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
        "amp": (config.amp, lambda v: v in ("bf16", "fp16", "off"), "one of bf16, fp16, off"),
    }
    for name, (value, ok, expected) in rules.items():
        if isinstance(value, bool) or not ok(value):
            raise ValueError(f"config {name}={value!r} is invalid; expected {expected}")


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


def check_resume_config(config: TrainConfig, saved: dict[str, Any]) -> None:
    current = config.to_dict()
    diffs = sorted(
        k for k in set(current) | set(saved)
        if k not in RESUMABLE_CHANGES and current.get(k) != saved.get(k)
    )
    if diffs:
        detail = ", ".join(f"{k}: run has {saved.get(k)!r}, asked {current.get(k)!r}" for k in diffs)
        raise ValueError(
            f"cannot resume with a different configuration ({detail}); "
            "resume with the run's config.yaml or start a new run"
        )


def config_from_run(run_dir: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` stored in ``run_dir/config.yaml``."""
    from lmfloss.config import load_config_file

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a run directory (no config.yaml)")
    return TrainConfig.from_dict(load_config_file(path))


