"""From today's ODIR-5K preset to the recipe, one factor at a time: the table (issue 28).

Reads the runs of the ablation sweep (configs/ablation-odir.yaml: the recipe's selection run with
one factor set back to the preset's) and the BCE runs of the recipe (configs/multilabel-odir.yaml:
their selection runs are the reference row, their refits the training-fraction row), all on the same
353 test patients, and prints the Markdown table of benchmarks/results/odir-ablation.md. Each
row's difference is paired by seed against the recipe's selection run, with a 95 % t-interval
over the seeds (a seed pairs the initialisation and the batch order, not the data split, which is
the same for every run).

    python benchmarks/odir_ablation_results.py --recipe sweeps/ml-odir/runs \
        --ablation sweeps/ablation-odir/runs [--preset sweeps/ml-odir-fast/runs]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from recipe_results import plain_bce  # this folder's script: run as python benchmarks/...
from scipy import stats

IGNORED = {"seed", "refit", "root", "cache_dir", "workers", "device"}


def _flat(config: dict) -> dict:
    flat = {k: v for k, v in config.items() if k != "loss_params"}
    flat.update({f"loss_params.{k}": v for k, v in (config.get("loss_params") or {}).items()})
    return flat


def _reports(runs: Path) -> list[dict]:
    return [json.loads(report.read_text()) for report in sorted(runs.glob("*/report.json"))]


def _factor(config: dict, reference: dict) -> str:
    changed = {k: v for k, v in _flat(config).items() if k not in IGNORED and reference.get(k) != v}
    return ", ".join(f"{k}={v}" for k, v in sorted(changed.items())) or "(none)"


def _cell(values: list[float]) -> str:
    if not values:
        return "—"
    mean = statistics.mean(values) * 100
    return f"{mean:.2f} ± {statistics.stdev(values) * 100:.2f}" if len(values) > 1 else f"{mean:.2f}"


def _paired(values: dict[int, float], reference: dict[int, float]) -> str:
    diffs = [values[s] - reference[s] for s in sorted(values) if s in reference]
    if len(diffs) < 2:
        return f"{diffs[0] * 100:+.2f} (n = 1)" if diffs else "—"
    mean, sem = statistics.mean(diffs), statistics.stdev(diffs) / len(diffs) ** 0.5
    half = stats.t.ppf(0.975, len(diffs) - 1) * sem
    return f"{mean * 100:+.2f} [{(mean - half) * 100:+.2f}, {(mean + half) * 100:+.2f}] (n = {len(diffs)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, required=True, help="runs of configs/multilabel-odir.yaml (its plain-BCE runs are read)")
    parser.add_argument("--ablation", type=Path, required=True, help="the ablation sweep's runs folder")
    parser.add_argument("--preset", type=Path, help="runs of the old preset (configs/multilabel-odir-fast.yaml): "
                                                    "its BCE runs are the last row")
    args = parser.parse_args()
    recipe = [data for data in _reports(args.recipe) if plain_bce(data)]  # the preset's other losses aside
    if not recipe:
        raise SystemExit(f"no finished run (report.json) under {args.recipe}")
    reference_config = _flat(recipe[0]["config"])
    rows: dict[str, dict[int, dict]] = {"recipe selection run (70 % of the patients)": {}}
    refit: dict[int, float] = {}
    for data in recipe:
        seed = int(data["config"]["seed"])
        rows["recipe selection run (70 % of the patients)"][seed] = data
        if data.get("refit"):
            refit[seed] = data["refit"]["test"]["map"]
    for data in _reports(args.ablation):
        rows.setdefault(_factor(data["config"], reference_config), {})[int(data["config"]["seed"])] = data
    reference = {s: d["test"]["map"] for s, d in rows["recipe selection run (70 % of the patients)"].items()}
    print("| changed from the recipe | seeds | best epoch | val mAP | **test mAP** (mean ± SD) | "
          "test mAP − recipe, paired by seed [95 % CI] |")
    print("|---|---|---|---|---|---|")
    for name, by_seed in rows.items():
        seeds = sorted(by_seed)
        test = {s: by_seed[s]["test"]["map"] for s in seeds}
        epochs = ", ".join(str(by_seed[s]["best_epoch"]) for s in seeds)
        diff = "—" if name.startswith("recipe") else _paired(test, reference)
        print(f"| {name} | {', '.join(map(str, seeds))} | {epochs} | "
              f"{_cell([by_seed[s]['val']['map'] for s in seeds])} | **{_cell(list(test.values()))}** | {diff} |")
    preset = {int(d["config"]["seed"]): d for d in (_reports(args.preset) if args.preset else [])
              if d["config"]["loss"] == "bce"}
    if preset:
        seeds = sorted(preset)
        test = {s: preset[s]["test"]["map"] for s in seeds}
        print(f"| **every factor: the old preset** (8 epochs, ×0.1 after 6, batch 32, weight decay 5e-4, "
              f"`pos_weight` from the counts) | {', '.join(map(str, seeds))} | "
              f"{', '.join(str(preset[s]['best_epoch']) for s in seeds)} | "
              f"{_cell([preset[s]['val']['map'] for s in seeds])} | **{_cell(list(test.values()))}** | "
              f"{_paired(test, reference)} |")
    if refit:
        print(f"| training fraction: refit on train + validation (85 %) | {', '.join(map(str, sorted(refit)))} | "
              f"as chosen | — | **{_cell(list(refit.values()))}** | {_paired(refit, reference)} |")


if __name__ == "__main__":
    main()
