"""Test macro-F1 of each method at the epoch chosen on validation and at the last epoch.

The MedMNIST v2 protocol keeps the epoch with the best validation AUC. On a small validation
set that can be an early epoch, before the learning-rate decay and before deferred
re-weighting (DRW) starts, where the losses have not yet shaped the minority classes. This
prints, per dataset and method, the epochs chosen, the test macro-F1 there (the report's
figure) and at the last epoch -- a fixed epoch, declared before training, so not a choice made
on test -- and LMF minus each method at the last epoch (paired over seeds, t-test, Holm over
the printed family).

The last-epoch figures come from ``lmfloss evaluate --run RUN --checkpoint last`` (which
writes ``RUN/eval-test-last.json``); runs without it are left out of that column and counted.
The runs of each dataset and method are those ``lmfloss report`` averages
(:func:`lmfloss.report.aggregate.build_grid`: the configuration best on validation, one run
per seed).

    python benchmarks/medmnist_v2_epochs.py sweeps/medmnist-v2/runs
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from lmfloss import rundir
from lmfloss.report.aggregate import OK, build_grid
from lmfloss.report.names import is_baseline
from lmfloss.report.runs import UNREADABLE, ReportRun, find_runs
from lmfloss.report.stats import holm, seed_t_test


def _last_f1(run) -> float | None:
    evaluation = rundir.read_eval(run.run_dir, "test", "last")
    return 100 * evaluation["f1_macro"] if evaluation else None


def epoch_cells(runs: Sequence[ReportRun]) -> dict[tuple[str, str], dict[int, tuple]]:
    """(dataset, method) -> {seed: (epoch chosen on validation, test macro-F1 there, at the
    last epoch or None)}, percent, for each cell of the report's grid (the dataset is named
    with the model where the runs hold several)."""
    grid = build_grid([r for r in runs if r.status != UNREADABLE])
    cells: dict[tuple[str, str], dict[int, tuple]] = {}
    for (dataset, model, method), cell in grid.cells.items():
        if cell.status == OK:
            cells[(dataset if len(grid.models) == 1 else f"{dataset} {model}", method)] = {
                run.seed: ((run.report or {}).get("best_epoch"), 100 * run.test("f1_macro"), _last_f1(run))
                for run in cell.runs
            }
    return cells


def _ms(values: list[float]) -> str:
    a = np.asarray(values)
    return f"{a.mean():.2f} ± {a.std(ddof=1):.2f}" if a.size > 1 else (f"{a[0]:.2f}" if a.size else "—")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="folders holding run directories")
    parser.add_argument("--reference", default="lmf", help="the method compared with every other (default lmf)")
    args = parser.parse_args()
    cells = epoch_cells(find_runs(args.runs))

    print("| dataset | method | seeds | epochs chosen on val | macro-F1 at that epoch | macro-F1 at the last epoch "
          f"| {args.reference} − method, last epoch (seeds) | p (t) | p (Holm) |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    rows, tests = [], []
    for (dataset, method), seeds in sorted(cells.items()):
        ref = cells.get((dataset, args.reference), {})
        paired = [ref[s][2] - seeds[s][2] for s in sorted(seeds)
                  if s in ref and ref[s][2] is not None and seeds[s][2] is not None]
        test = seed_t_test(paired) if method != args.reference else None
        # As in `lmfloss report`: LMF-DRW is a variant of LMF, shown but not a baseline, so
        # its comparison stays out of the family Holm corrects over.
        variant = args.reference == "lmf" and not is_baseline(method)
        rows.append((dataset, method, seeds, test, variant))
        tests.append(test.p if test and not variant else None)
    for (dataset, method, seeds, test, variant), p_holm in zip(rows, holm(tests)):
        values = [seeds[s] for s in sorted(seeds)]
        last = [v[2] for v in values if v[2] is not None]
        missing = f" (n={len(last)})" if len(last) != len(values) else ""
        delta = f"{test.mean:+.2f}" if test and test.mean is not None else "—"
        p = f"{test.p:.3f}" if test and test.p is not None else "—"
        ph = f"{p_holm:.3f}" if p_holm is not None else ("variant" if variant and method != args.reference else "—")
        print(f"| {dataset} | {method} | {len(values)} | {', '.join(str(v[0]) for v in values)} | "
              f"{_ms([v[1] for v in values])} | {_ms(last)}{missing} | {delta} | {p} | {ph} |")
    print(f"\nHolm family: the {sum(t is not None for t in tests)} comparisons with a Holm p above "
          "(a variant of LMF is compared but not in the family).")


if __name__ == "__main__":
    main()
