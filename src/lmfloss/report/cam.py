"""Grad-CAM scores in a report: the ``cam_summary.csv`` files ``lmfloss cam`` wrote."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from lmfloss.report.runs import ReportRun


def find_cam_summaries(roots: Sequence[str | Path]) -> list[tuple[Path, list[dict[str, str]]]]:
    """Every ``cam_summary.csv`` (written by ``lmfloss cam``) at or below the roots.

    Returns:
        ``(path, rows)`` pairs; rows as read (``run, target, class, n_images, ...``).
    """
    found = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("cam_summary.csv")):
            with path.open(newline="") as handle:
                found.append((path, list(csv.DictReader(handle))))
    return found


def match_run(label: str, runs: Sequence[ReportRun]) -> ReportRun | None:
    """The run whose directory path ends with ``label`` (``lmfloss cam``'s run names)."""
    parts = tuple(Path(label).parts)
    if not parts:
        return None
    matches = [r for r in runs if r.run_dir.parts[-len(parts) :] == parts]
    return matches[0] if len(matches) == 1 else None
