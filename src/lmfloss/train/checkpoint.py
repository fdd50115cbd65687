"""Checkpoints: atomic writes and the random-number state needed for an exact resume.

``last.pt`` is rewritten at the end of every finished epoch with everything a resume
needs (model, optimizer, scheduler, grad scaler, epoch, the metrics history, the best
epoch so far, the RNG states of Python, NumPy and torch, the config). ``best.pt`` holds
the model state of the epoch with the best validation macro-F1.

Writes are atomic: the file is written next to its destination, flushed to disk and
``os.replace``-d over it, so a SIGKILL at any moment leaves either the old or the new
checkpoint, never a truncated one. Reading one is :func:`lmfloss.rundir.load_checkpoint`
(the run directory's owner; re-exported here).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmfloss.fileio import atomic_write
from lmfloss.rundir import load_checkpoint  # the run directory's owner reads its files

__all__ = ["atomic_save", "capture_rng_state", "load_checkpoint", "restore_rng_state"]

logger = logging.getLogger(__name__)


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``."""
    atomic_write(path, lambda handle: torch.save(obj, handle), binary=True)


def capture_rng_state() -> dict[str, Any]:
    """The state of every generator a training step may draw from."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - the legacy global generator is what user code may draw from
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002 - see capture_rng_state
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
