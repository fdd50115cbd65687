"""What code and machine trained a run: recorded in ``report.json`` as ``software``.

A results file must name the commit its numbers came from; before this record a run held its
configuration and data fingerprint but not the lmfloss that trained it, so a study that ran
across commits had to be dated from worktree logs. ``software(device)`` returns::

    {"lmfloss": "0.4.0.dev0", "source": "git checkout", "git_commit": "c64862a...", "git_dirty": False,
     "python": "3.11.9", "torch": "2.14.1+cpu", "torchvision": "0.29.1+cpu",
     "device": "cpu", "device_name": "AMD EPYC ...", "torch_threads": 1}

``source`` says where the code came from: ``git checkout`` (an editable install or
``PYTHONPATH=src`` in a clone), ``source tree`` (the same without git history, e.g. an unpacked
archive) or ``installed package`` (a wheel). ``git_commit`` is the checkout's commit, ``None``
otherwise -- never the commit of some other repository the user happens to work in. ``git_dirty`` says whether
``src/`` differed from that commit (uncommitted edits), ``None`` where git could not tell.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import torch
import torchvision

from lmfloss import __version__
from lmfloss.extras import source_checkout


def _git(*args: str, cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):  # no git, or a hung filesystem: not worth a failed run
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_commit(checkout: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the lmfloss checkout this package runs from (or at ``checkout``);
    ``(None, None)`` where there is none (a wheel in site-packages) or git is missing."""
    checkout = source_checkout(checkout)
    if checkout is None:
        return None, None
    # the top level must be this checkout itself: a wheel installed into a virtual environment
    # inside the user's own repository must not report the user's commit as lmfloss's
    top = _git("rev-parse", "--show-toplevel", cwd=checkout)
    if top is None or Path(top).resolve() != checkout.resolve():
        return None, None
    commit = _git("rev-parse", "HEAD", cwd=checkout)
    if commit is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", "src", cwd=checkout)
    return commit, (None if status is None else bool(status))


def device_name(device: torch.device | str) -> str:
    """The accelerator's name (``NVIDIA H100 80GB HBM3``) or the CPU model."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def software(device: torch.device | str) -> dict[str, Any]:
    """The record described in the module docstring, for a run trained on ``device``."""
    commit, dirty = source_commit()
    source = "git checkout" if commit else "source tree" if source_checkout() else "installed package"
    return {"lmfloss": __version__, "source": source, "git_commit": commit, "git_dirty": dirty,
            "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "device": str(torch.device(device)), "device_name": device_name(device),
            "torch_threads": torch.get_num_threads()}
