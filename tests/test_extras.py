"""The install hint of a missing extra: ``pip install 'lmfloss[x]'`` for an installed wheel, the
environment's own Python and ``pip install -e`` for the source checkout ``make demo`` installs
(where the plain line would reach for another copy of lmfloss)."""

from __future__ import annotations

import sys
from pathlib import Path

from lmfloss import extras
from lmfloss.cli import main
from lmfloss.extras import install_hint, source_checkout

REPO = Path(__file__).resolve().parents[1]


def _checkout(folder: Path, name: str = "lmfloss") -> Path:
    (folder / "src" / "lmfloss").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n')
    return folder


def test_a_checkout_is_recognised_and_a_wheel_is_not(tmp_path):
    assert source_checkout(REPO) == REPO  # the tests run from the checkout
    assert source_checkout(_checkout(tmp_path / "copy")) == tmp_path / "copy"
    assert source_checkout(_checkout(tmp_path / "other", name="lmfloss-plugin")) is None
    assert source_checkout(tmp_path / "site-packages") is None


def test_installed_wheel_gets_the_package_index_line(tmp_path, monkeypatch):
    monkeypatch.setattr(extras, "_CHECKOUT", tmp_path / "lib" / "python3.11" / "site-packages")
    assert install_hint("sweep") == "pip install 'lmfloss[sweep]'"


def test_checkout_gets_its_own_python_and_an_editable_install(tmp_path, monkeypatch):
    repo = _checkout(tmp_path / "lmfloss")
    venv_python = repo / ".venv" / "bin" / "python"
    monkeypatch.setattr(extras, "_CHECKOUT", repo)
    monkeypatch.setattr(sys, "executable", str(venv_python))
    monkeypatch.chdir(repo)
    assert install_hint("sweep") == ".venv/bin/python -m pip install -e '.[sweep]'"
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # from another folder: paths that still work there
    assert install_hint("cam") == f"{venv_python} -m pip install -e '{repo}[cam]'"
    monkeypatch.setattr(sys, "executable", "")  # an embedded interpreter does not know its path
    assert install_hint("cam") == f"python -m pip install -e '{repo}[cam]'"


def test_a_command_whose_extra_is_missing_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "optuna" else object())
    assert main(["sweep", "--config", "x.yaml", "--out", "o"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lmfloss sweep: error: lmfloss sweep needs the optional package 'optuna': {install_hint('sweep')}"]

