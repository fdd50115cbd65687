"""The paper's LMF hyperparameter-study settings: recorded by a sweep, or inferred."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lmfloss import rundir


def read_setting(run_dir: Path, config: dict[str, Any]) -> str | None:
    """The ``setting`` a sweep recorded for the run (``sweep.json``: top level, ``tags``,
    ``user_attrs`` or ``params``), else a ``setting`` loss parameter, else ``None``."""
    data = rundir.read_sweep_info(run_dir)
    if data is not None:
        for source in (data, data.get("tags"), data.get("user_attrs"), data.get("params")):
            if isinstance(source, dict) and source.get("setting"):
                return str(source["setting"])
    setting = (config.get("loss_params") or {}).get("setting")
    return None if setting is None else str(setting)


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
