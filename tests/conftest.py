"""Fixtures and hooks shared by every test module: the test tiers and their guard.

Tiers (registered in pyproject.toml):
- ``slow``: trains a model (``make test-fast`` leaves these out). A test that uses a fixture
  marked with ``tiers.fixture_marks(pytest.mark.slow)`` is slow too. The sweep's concurrency
  tests are slow as well: their worker processes take seconds each to import torch and optuna.
- ``browser``: drives Chromium through Playwright.
- ``realdata(*paths)``: reads ``../shared`` (paths relative to it); skipped here, with one
  reason naming what is missing, where it is absent.

The guard: a test not marked slow that reaches the training loop (``fit`` calling
``train_one_epoch``) fails at once, so the fast tier cannot quietly grow a training run.
It sees training in this process only; training in a subprocess (``python -m lmfloss``,
sweep workers, DDP) must be marked by reading the test.
"""

from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path

import pytest
import torch

from data_helpers import TINY, imagefolder
from tiers import MARKS_ATTRIBUTE, fixture_marks

SHARED = Path(__file__).resolve().parents[2] / "shared"


def pytest_configure(config: pytest.Config) -> None:
    # One intra-op thread for the whole session, and for the processes tests start (the CLI,
    # sweep workers, DDP): models at 28-64 px gain nothing from intra-op threads, and on a
    # shared 2-core machine OpenMP threads waiting for a busy core make them 10-100x slower
    # (a 3-epoch BreastMNIST fit took 115 s on two threads on a loaded machine).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


@pytest.fixture
def binary_task():
    """tests/extra_task.py's one-logit binary task ("binary1"), registered for one test."""
    import extra_task

    with extra_task.registered() as task:
        yield task


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny models on one intra-op thread, then restore the setting (the
    session already runs on one, see pytest_configure; this keeps a module right on its own)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
@fixture_marks(pytest.mark.slow)
def imagefolder_run(tmp_path_factory):
    """A finished 1-epoch run on a tiny two-class image folder, trained once for every module
    that only reads it (predict, cam)."""
    # Imported here, not at the top: a conftest that cannot import lmfloss (src half-way
    # through an edit) would fail every test, not only those that use this run.
    from lmfloss.cli import main

    folder = tmp_path_factory.mktemp("imagefolder-run")
    root = imagefolder(folder / "data")
    out = folder / "run"
    code = main(["train", "--dataset", "imagefolder", "--root", str(root), "--out", str(out),
                 "--cache-dir", str(folder / "cache"), *TINY])
    assert code == 0
    return out


# ---- tiers: marks from fixtures, one skip for absent ../shared -----------------------------
def _missing_shared(item: pytest.Item) -> str | None:
    """Why ``item`` cannot run here (its ``realdata`` paths are absent), or None."""
    markers = list(item.iter_markers("realdata"))
    if not markers:
        return None
    if not SHARED.is_dir():
        return f"needs ../shared (the real data sets and the paper, never copied here): {SHARED} not found"
    missing = [path for marker in markers for path in marker.args if not (SHARED / path).exists()]
    if missing:
        return f"needs {', '.join(missing)} under {SHARED}, not found"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is not None:
            for definitions in info.name2fixturedefs.values():
                for definition in definitions:
                    for mark in getattr(definition.func, MARKS_ATTRIBUTE, ()):
                        item.add_marker(mark)
        reason = _missing_shared(item)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


# ---- the guard: no training outside the slow tier ------------------------------------------
_running: list[pytest.Item] = []  # the test whose setup, call or teardown runs now


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        fit_module = importlib.import_module("lmfloss.train.fit")
        original = fit_module.train_one_epoch
    except (ImportError, AttributeError) as exc:
        warnings.warn(f"the training guard is off: lmfloss.train.fit.train_one_epoch not found ({exc})",
                      stacklevel=1)
        return

    def train_one_epoch(*args, **kwargs):
        if _running and _running[-1].get_closest_marker("slow") is None:
            pytest.fail(f"{_running[-1].nodeid} trains a model (fit reached train_one_epoch) but is not "
                        "marked slow: mark the test, or its fixture with tiers.fixture_marks(pytest.mark.slow)",
                        pytrace=False)
        return original(*args, **kwargs)

    fit_module.train_one_epoch = train_one_epoch
