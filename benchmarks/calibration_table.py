"""Temperature scaling per method: the fitted temperature and test ECE / NLL before and after.

Reads the ``calibration`` block that ``lmfloss evaluate --run RUN --calibrate`` writes into
``RUN/eval-test-best-calibrated.json`` (``eval-test-best.json`` before lmfloss 0.4) (the temperature is fitted on the validation split, never on
test) and prints, per dataset and method, the mean over runs: the runs ``lmfloss report``
averages in that cell (:func:`lmfloss.report.aggregate.build_grid`: the configuration best on
validation, one run per seed).

    python benchmarks/calibration_table.py sweeps/medmnist-v2/runs
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from lmfloss import rundir
from lmfloss.report.aggregate import OK, build_grid
from lmfloss.report.runs import UNREADABLE, ReportRun, find_runs

FIELDS = ("temperature", "ece_before", "ece_after", "nll_before", "nll_after")


def calibration_cells(runs: Sequence[ReportRun]) -> dict[tuple[str, str], list[list[float]]]:
    """(dataset, method) -> :data:`FIELDS` of each run of the report's cell that holds a
    calibration (the dataset is named with the model where the runs hold several)."""
    grid = build_grid([r for r in runs if r.status != UNREADABLE])
    cells: dict[tuple[str, str], list[list[float]]] = {}
    for (dataset, model, method), cell in grid.cells.items():
        if cell.status != OK:
            continue
        rows = []
        for run in cell.runs:
            calibration = (rundir.read_eval(run.run_dir, "test", "best", calibrated=True) or {}).get("calibration")
            if calibration:
                rows.append([calibration[f] for f in FIELDS])
        if rows:
            cells[(dataset if len(grid.models) == 1 else f"{dataset} {model}", method)] = rows
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="folders holding run directories")
    args = parser.parse_args()
    cells = calibration_cells(find_runs(args.runs))
    print("| dataset | method | runs | temperature (range) | test ECE before → after | test NLL before → after |")
    print("|---|---|---:|---:|---:|---:|")
    for (dataset, method), rows in sorted(cells.items()):
        t, ece0, ece1, nll0, nll1 = np.asarray(rows).T
        print(f"| {dataset} | {method} | {len(rows)} | {t.mean():.2f} ({t.min():.2f}–{t.max():.2f}) | "
              f"{ece0.mean():.3f} → {ece1.mean():.3f} | {nll0.mean():.3f} → {nll1.mean():.3f} |")


if __name__ == "__main__":
    main()
