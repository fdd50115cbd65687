"""Temperature scaling per method: the fitted temperature and test ECE / NLL before and after.

Reads the ``calibration`` block that ``lmfloss evaluate --run RUN --calibrate`` writes into
``RUN/eval-test-best.json`` (the temperature is fitted on the validation split, never on
test) and prints, per dataset and method, the mean over runs.

    python benchmarks/calibration_table.py sweeps/medmnist-v2/runs
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from lmfloss import rundir
from lmfloss.report.runs import find_runs

FIELDS = ("temperature", "ece_before", "ece_after", "nll_before", "nll_after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="folders holding run directories")
    args = parser.parse_args()
    cells: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    for run in find_runs(args.runs):
        calibration = (rundir.read_eval(run.run_dir, "test", "best") or {}).get("calibration")
        if run.finished and calibration:
            cells[(run.dataset, run.loss)].append([calibration[f] for f in FIELDS])
    print("| dataset | method | runs | temperature (range) | test ECE before → after | test NLL before → after |")
    print("|---|---|---:|---:|---:|---:|")
    for (dataset, method), rows in sorted(cells.items()):
        t, ece0, ece1, nll0, nll1 = np.asarray(rows).T
        print(f"| {dataset} | {method} | {len(rows)} | {t.mean():.2f} ({t.min():.2f}–{t.max():.2f}) | "
              f"{ece0.mean():.3f} → {ece1.mean():.3f} | {nll0.mean():.3f} → {nll1.mean():.3f} |")


if __name__ == "__main__":
    main()
