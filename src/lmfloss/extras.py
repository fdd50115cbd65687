"""How to install an optional extra, said the way that works for this installation.

``pip install 'lmfloss[sweep]'`` is right for a wheel from the package index, and wrong for
the README's quickstart, where ``make demo`` installed a source checkout in editable mode into
``.venv``: there that line would reach for a package index copy of lmfloss. From a checkout
the hint names the environment's own Python and the checkout::

    .venv/bin/python -m pip install -e '.[sweep]'

No torch here: the command line asks before it imports anything heavy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# src/lmfloss/extras.py -> the checkout root of an editable install (parents[2])
_CHECKOUT = Path(__file__).resolve().parents[2]


def source_checkout(root: Path | None = None) -> Path | None:
    """The lmfloss source checkout this package runs from (or ``root``, if it is one), or
    ``None`` for an installed wheel (its parent folders are site-packages and the environment,
    with no ``src/lmfloss``)."""
    root = _CHECKOUT if root is None else root
    pyproject = root / "pyproject.toml"
    if not (root / "src" / "lmfloss").is_dir() or not pyproject.is_file():
        return None
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return root if 'name = "lmfloss"' in text else None


def _shown(path: Path) -> str:
    """``path`` relative to the working folder where it lies below it, else absolute."""
    try:
        relative = Path(os.path.relpath(path))
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if relative.parts[:1] == ("..",) else str(relative)


def install_hint(extra: str) -> str:
    """The command that installs ``lmfloss[extra]`` into the running environment."""
    checkout = source_checkout()
    if checkout is None:
        return f"pip install 'lmfloss[{extra}]'"
    # sys.executable as given, not resolved: a virtual environment's python is a symlink to
    # the system's, and pip must run from the environment
    python = _shown(Path(sys.executable)) if sys.executable else "python"  # empty in an embedded interpreter
    return f"{python} -m pip install -e '{_shown(checkout)}[{extra}]'"
