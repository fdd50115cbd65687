"""Marks a fixture passes on to the tests that use it (pytest has no marks on fixtures).

A test that uses a fixture which trains a model is itself slow; a test that uses a fixture
reading ``../shared`` needs that data. ``conftest.py`` copies these marks onto every test
whose fixture closure holds the fixture, so the tiers follow the fixtures without anyone
having to remember them test by test::

    @pytest.fixture(scope="module")
    @fixture_marks(pytest.mark.slow)  # trains a 1-epoch run
    def trained_run(tmp_path_factory): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

MARKS_ATTRIBUTE = "_lmfloss_test_marks"
F = TypeVar("F", bound=Callable[..., Any])


def fixture_marks(*marks: pytest.MarkDecorator) -> Callable[[F], F]:
    """Give every test that uses the decorated fixture ``marks`` (put it under ``@pytest.fixture``)."""

    def attach(function: F) -> F:
        setattr(function, MARKS_ATTRIBUTE, (*getattr(function, MARKS_ATTRIBUTE, ()), *marks))
        return function

    return attach
