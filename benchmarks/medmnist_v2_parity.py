"""MedMNIST v2 parity: CE test ACC / AUC of lmfloss's runs against the published figures.

Reads finished run directories (e.g. the ``loss=ce`` runs of ``configs/medmnist-v2-losses.yaml``
and the small-stem runs of ``configs/medmnist-v2-parity.yaml``) and prints, per dataset and
stem, the per-seed test accuracy and AUC, their mean ± std, and the differences from the
published MedMNIST v2 ResNet-18 (28) numbers (Yang et al., Scientific Data 2023, Table 3).

The reference code keeps ``best_model = model`` (a reference to the live model), so what it
tests is the *last* epoch, not the best-validation one. Where a run holds
``eval-test-last.json`` (``lmfloss evaluate --run RUN --checkpoint last``), a second table gives
the last epoch's figures as well. Runs are grouped as ``lmfloss report`` groups repeats
(:func:`lmfloss.report.aggregate.experiments`: one experiment per dataset and config but the
seed, one run per seed), so the two stems are two experiments.

    python benchmarks/medmnist_v2_parity.py sweeps/medmnist-v2/runs sweeps/medmnist-v2-small/runs
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmfloss import rundir
from lmfloss.report.aggregate import experiments
from lmfloss.report.runs import ReportRun, find_runs

# Published test ACC / AUC of ResNet-18 (28) (MedMNIST v2, Table 3).
PUBLISHED = {"retinamnist": (0.524, 0.717), "breastmnist": (0.863, 0.901)}


def parity_cells(runs: Sequence[ReportRun], loss: str) -> dict[tuple[str, str], list[ReportRun]]:
    """(dataset, stem) -> the finished runs of each experiment of ``loss`` on a published
    dataset; the stem is followed by any other setting that tells two experiments apart."""
    cells: dict[tuple[str, str], list[ReportRun]] = {}
    for cell in experiments(runs):
        if cell.loss != loss or cell.dataset not in PUBLISHED or not cell.runs:
            continue
        stem = str(cell.runs[0].config.get("stem", "imagenet"))
        others = ", ".join(f"{k}={v}" for k, v in cell.varied.items() if k != "stem")
        cells[(cell.dataset, f"{stem} ({others})" if others else stem)] = list(cell.runs)
    return cells


def _sd(values: np.ndarray) -> str:
    return f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="folders holding run directories")
    parser.add_argument("--loss", default="ce")
    args = parser.parse_args()
    folders = [p for p in args.runs if Path(p).is_dir()]
    for missing in sorted(set(args.runs) - set(folders)):
        print(f"(no runs yet in {missing})", file=sys.stderr)
    cells = parity_cells(find_runs(folders), args.loss) if folders else {}
    _table(cells, lambda r: (r.test("accuracy"), r.test("auc_macro_ovr"), (r.report or {}).get("best_epoch")),
           "epoch with the best validation AUC")
    last = {key: [r for r in runs if rundir.read_eval(r.run_dir, "test", "last")] for key, runs in cells.items()}
    _table({k: v for k, v in last.items() if v}, _last_epoch, "last epoch (what the reference code tests)")


def _last_epoch(run) -> tuple[float, float, int]:
    report = rundir.read_eval(run.run_dir, "test", "last")
    return report["accuracy"], report["auc_macro_ovr"], report["epoch"]


def _table(cells: dict, scores, title: str) -> None:
    if not cells:
        return
    print(f"\n{title}\n")
    print("| dataset | stem | seeds | test ACC per seed | test AUC per seed | ACC mean ± std | AUC mean ± std "
          "| published ACC / AUC | Δ ACC | Δ AUC | epochs tested |")
    print("|---|---|---:|---|---|---:|---:|---:|---:|---:|---|")
    for (dataset, stem), runs in sorted(cells.items()):
        runs.sort(key=lambda r: r.seed)
        acc, auc, epochs = (np.array(v) for v in zip(*(scores(r) for r in runs)))
        pub_acc, pub_auc = PUBLISHED[dataset]
        print(f"| {dataset} | {stem} | {len(runs)} | {', '.join(f'{a:.3f}' for a in acc)} | "
              f"{', '.join(f'{a:.3f}' for a in auc)} | {acc.mean():.3f}{_sd(acc)} | {auc.mean():.3f}{_sd(auc)} | "
              f"{pub_acc:.3f} / {pub_auc:.3f} | {100 * (acc.mean() - pub_acc):+.1f} | {100 * (auc.mean() - pub_auc):+.1f} | "
              f"{', '.join(str(e) for e in epochs)} |")


if __name__ == "__main__":
    main()
