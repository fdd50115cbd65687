"""A multi-label recipe against the plain reference, seed by seed (issue 28).

Reads the plain reference's JSON files (benchmarks/plain_reference.py) and the plain-BCE runs of
the recipe (configs/multilabel-odir.yaml or multilabel-synthetic.yaml: selection run and its
refit on train + validation; other losses in the folder are left out), all on the same test
split, and prints the Markdown table of benchmarks/results/odir-recipe.md (synthetic-recipe.md).

    python benchmarks/recipe_results.py --reference benchmarks/results/plain-reference-odir \
        --runs sweeps/ml-odir/runs
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def plain_bce(report: dict) -> bool:
    """A run of the recipe's loss: BCE without ``pos_weight`` (a preset's other losses aside)."""
    config = report["config"]
    return config["loss"] == "bce" and (config.get("loss_params") or {}).get("pos_weight") is None


def _mean(values: list[float]) -> str:
    if not values:
        return "—"
    spread = f" ± {statistics.stdev(values) * 100:.1f}" if len(values) > 1 else ""
    return f"**{statistics.mean(values) * 100:.2f}**{spread} (n = {len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="folder of the plain reference's seed<N>.json")
    parser.add_argument("--runs", type=Path, nargs="+", required=True,
                        help="the recipe sweep's runs folder(s) (seeds run in separate sweeps: give each)")
    args = parser.parse_args()
    reference = {int(p.stem.removeprefix("seed")): json.loads(p.read_text())
                 for p in sorted(args.reference.glob("seed*.json"))}
    recipe = {}
    for run in sorted(r for folder in args.runs for r in folder.iterdir()):
        report = run / "report.json"
        if report.is_file():
            data = json.loads(report.read_text())
            if plain_bce(data):
                recipe[int(data["config"]["seed"])] = data
    print("| seed | plain reference: epoch, val mAP, **test mAP** | recipe selection run (70 %): epoch, val mAP, "
          "test mAP | recipe refit (85 %): epochs, **test mAP** [95 % CI] |")
    print("|---:|---|---|---|")
    plain, selection, refit = [], [], []
    for seed in sorted(set(reference) | set(recipe)):
        ref, run = reference.get(seed), recipe.get(seed)
        cells = [f"{ref['chosen_epoch']}, {ref['val_map_chosen'] * 100:.2f}, **{ref['test_map'] * 100:.2f}**"
                 if ref else "running"]
        if run:
            fit = run.get("refit") or {}
            ci = fit.get("test", {}).get("map_ci95") or [float("nan")] * 2
            cells += [f"{run['best_epoch']}, {run['val']['map'] * 100:.2f}, {run['test']['map'] * 100:.2f}",
                      f"{fit.get('epochs')}, **{fit['test']['map'] * 100:.2f}** [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]"
                      if fit else "—"]
            selection.append(run["test"]["map"])
            if fit:
                refit.append(fit["test"]["map"])
        else:
            cells += ["running", "running"]
        if ref:
            plain.append(ref["test_map"])
        print(f"| {seed} | " + " | ".join(cells) + " |")
    print(f"| mean ± SD | {_mean(plain)} | {_mean(selection)} | {_mean(refit)} |")


if __name__ == "__main__":
    main()
