"""MedMNIST v2 parity: CE test ACC / AUC of lmfloss's runs against the published figures.

Reads finished run directories (e.g. the ``loss=ce`` runs of ``configs/medmnist-v2-losses.yaml``
and the small-stem runs of ``configs/medmnist-v2-parity.yaml``) and prints, per dataset and
stem, the per-seed test accuracy and AUC, their mean ± std, and the differences from the
published MedMNIST v2 ResNet-18 (28) numbers (Yang et al., Scientific Data 2023, Table 3).

    python benchmarks/medmnist_v2_parity.py sweeps/medmnist-v2/runs sweeps/medmnist-v2-small/runs
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from lmfloss.report.runs import find_runs

# Published test ACC / AUC of ResNet-18 (28) (MedMNIST v2, Table 3).
PUBLISHED = {"retinamnist": (0.524, 0.717), "breastmnist": (0.863, 0.901)}


def _sd(values: np.ndarray) -> str:
    return f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="folders holding run directories")
    parser.add_argument("--loss", default="ce")
    args = parser.parse_args()
    cells: dict[tuple[str, str], list] = defaultdict(list)
    for run in find_runs(args.runs):
        if run.finished and run.loss == args.loss and run.dataset in PUBLISHED:
            cells[(run.dataset, str(run.config.get("stem", "imagenet")))].append(run)
    print("| dataset | stem | seeds | test ACC per seed | test AUC per seed | ACC mean ± std | AUC mean ± std "
          "| published ACC / AUC | Δ ACC | Δ AUC | best epochs |")
    print("|---|---|---:|---|---|---:|---:|---:|---:|---:|---|")
    for (dataset, stem), runs in sorted(cells.items()):
        runs.sort(key=lambda r: r.seed)
        acc = np.array([r.test("accuracy") for r in runs])
        auc = np.array([r.test("auc_macro_ovr") for r in runs])
        pub_acc, pub_auc = PUBLISHED[dataset]
        print(f"| {dataset} | {stem} | {len(runs)} | {', '.join(f'{a:.3f}' for a in acc)} | "
              f"{', '.join(f'{a:.3f}' for a in auc)} | {acc.mean():.3f}{_sd(acc)} | {auc.mean():.3f}{_sd(auc)} | "
              f"{pub_acc:.3f} / {pub_auc:.3f} | {100 * (acc.mean() - pub_acc):+.1f} | {100 * (auc.mean() - pub_auc):+.1f} | "
              f"{', '.join(str((r.report or {}).get('best_epoch')) for r in runs)} |")


if __name__ == "__main__":
    main()
