"""The layering promises of the package: what each command may import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from report_helpers import make_run


def _modules_after(code: str) -> dict[str, bool]:
    script = (
        "import json, sys\n" + code + "\n"
        "print(json.dumps({m: m in sys.modules for m in ('torch', 'torchvision', 'optuna', 'cv2')}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_split_imports_neither_torch_nor_optuna(tmp_path):
    loaded = _modules_after(
        "from lmfloss.cli import main\n"
        f"assert main(['split', '--dataset', 'synthetic', '--out', {str(tmp_path / 'm.csv')!r}, '--quiet']) == 0"
    )
    assert loaded == {"torch": False, "torchvision": False, "optuna": False, "cv2": False}


def test_report_imports_neither_torch_nor_optuna(tmp_path):
    for seed in (1, 2):
        for loss in ("ce", "lmf"):
            make_run(tmp_path / "runs", loss=loss, seed=seed)
    loaded = _modules_after(
        "from lmfloss.cli import main\n"
        f"assert main(['report', {str(tmp_path / 'runs')!r}, '--out', {str(tmp_path / 'out')!r}, "
        "'--bootstrap', '50', '--quiet']) == 0"
    )
    assert loaded["torch"] is False and loaded["optuna"] is False


@pytest.mark.parametrize("module", ["lmfloss.losses"])
def test_the_loss_library_imports_only_torch(module):
    loaded = _modules_after(f"import {module}")
    assert loaded["torch"] is True
    assert loaded["optuna"] is False and loaded["cv2"] is False and loaded["torchvision"] is False


def test_rundir_imports_nothing_from_train(tmp_path):
    """The run directory is below ``train`` in the layers: not one import runs back up,
    not even inside a function (resuming reads last.pt through rundir's own reader)."""
    import ast

    import lmfloss.rundir

    tree = ast.parse(Path(lmfloss.rundir.__file__).read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert [m for m in imported if m.startswith("lmfloss.train")] == []
    # Resuming from last.pt loads torch (to read it) and still nothing of lmfloss.train.
    import torch

    torch.save({"model": {}, "epoch": 3}, tmp_path / "last.pt")
    proc = subprocess.run([sys.executable, "-c", (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from lmfloss.rundir import prepare_run_dir\n"
        f"state = prepare_run_dir(Path({str(tmp_path)!r}), resume=True, overwrite=False)\n"
        "print(json.dumps([state['epoch'], sorted(m for m in sys.modules if m.startswith('lmfloss.train'))]))\n"
    )], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [3, []]


def test_rundir_imports_no_torch_until_a_checkpoint_is_read():
    loaded = _modules_after("import lmfloss.rundir")
    assert loaded == {"torch": False, "torchvision": False, "optuna": False, "cv2": False}


def test_the_old_checkpoint_reader_is_the_run_directorys():
    from lmfloss import rundir
    from lmfloss.train import checkpoint

    assert checkpoint.load_checkpoint is rundir.load_checkpoint
