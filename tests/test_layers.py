"""The layering promises of the package: what each command may import."""

from __future__ import annotations

import json
import subprocess
import sys

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
