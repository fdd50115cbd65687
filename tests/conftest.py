"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny models on one intra-op thread, then restore the setting.

    Models at 28-64 px gain nothing from intra-op threads, and on a shared 2-core machine
    OpenMP threads waiting for a busy core make them 10-100x slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
