"""The multi-label loss comparison as Markdown: per dataset and loss, test mAP, macro AUC and the
ODIR-2019 score with 95 % intervals, and LMF against every baseline, paired over seeds with
Holm's correction -- all from ``lmfloss report`` over the sweeps' run folders (one report, so
one Holm family over every comparison of both datasets).

Usage::

    python benchmarks/multilabel_results.py sweeps/ml-odir/runs sweeps/ml-synthetic/runs \\
        --out benchmarks/results/multilabel-cpu.md [--report sweeps/ml-report]

Nothing is chosen on test: each run's epoch and per-label thresholds were chosen on validation
by training, and "best baseline" is the one with the best mean validation mAP.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats

from lmfloss.report import build_report
from lmfloss.report import multilabel as ml
from lmfloss.report.aggregate import OK, best_on_val
from lmfloss.report.names import dataset_name, loss_name, model_name
from lmfloss.report.tables import fmt_p

METRICS = (("map", "test mAP"), ("auc_macro", "test macro AUC"), ("odir", "ODIR score"))


def t_interval(values: list[float]) -> str:
    """``mean [lo, hi]`` in percent, the 95 % t-interval over seeds (mean alone with one value)."""
    if not values:
        return "—"
    mean = float(np.mean(values))
    if len(values) < 2:
        return f"{100 * mean:.2f}"
    half = float(stats.t.ppf(0.975, len(values) - 1)) * float(np.std(values, ddof=1)) / np.sqrt(len(values))
    return f"{100 * mean:.2f} [{100 * (mean - half):.2f}, {100 * (mean + half):.2f}]"


def dataset_tables(result, dataset: str, n_boot: int) -> list[str]:
    grid = result.grid
    lines = []
    for model in grid.models:
        cells = [grid.cell(dataset, model, loss) for loss in grid.losses]
        cells = [c for c in cells if c.status == OK]
        if not cells:
            continue
        best = best_on_val(grid, dataset, model)
        lines += [f"### {dataset_name(dataset)}, {model_name(model)}", "",
                  "| loss | seeds | " + " | ".join(f"{name} (95% t-CI over seeds)" for _, name in METRICS)
                  + " | mAP, seed mean (95% bootstrap CI over the test images, or patients where scored per patient) | val mAP |",
                  "|---|---:|" + "---:|" * (len(METRICS) + 2)]
        for cell in cells:
            ci = ml.map_interval(cell, n_boot=n_boot)
            mean_map = np.mean(ml.values(cell, "map")) if ml.values(cell, "map") else float("nan")
            name = loss_name(cell.loss) + (" (best baseline on val)" if best is not None and cell is best else "")
            lines.append(f"| {name} | {cell.n} | " + " | ".join(t_interval(ml.values(cell, m)) for m, _ in METRICS)
                         + f" | {100 * mean_map:.2f}" + ("" if ci is None else f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]")
                         + f" | {100 * np.mean(cell.val_values('map')):.2f} |")
        lines.append("")
    return lines


def comparison_table(result, datasets: list[str]) -> list[str]:
    comparisons = [c for c in result.comparisons if c.dataset in datasets]
    family = sum(c.seed_test.p is not None for c in result.comparisons)
    lines = [f"LMF minus each baseline, percentage points; paired over seeds (t-test, Holm over the family of all "
             f"{family} LMF-vs-baseline comparisons of this file: every baseline x {{mAP, macro AUC}} x dataset); "
             "p (images): paired bootstrap over the same test images/patients, seeds averaged.", "",
             "| dataset | baseline | metric | seeds | Δ (95% t-CI) | p (seeds) | Holm p | Δ images (95% CI) | p (images) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for c in comparisons:
        t, b = c.seed_test, c.test
        ci = "" if t.ci95 is None else f" [{100 * t.ci95[0]:+.2f}, {100 * t.ci95[1]:+.2f}]"
        lines.append(
            f"| {dataset_name(c.dataset)} | {loss_name(c.baseline)} | {ml.METRIC_NAMES[c.metric]} | {t.n} | "
            f"{'—' if t.mean is None else f'{100 * t.mean:+.2f}'}{ci} | "
            f"{'—' if t.p is None else fmt_p(t.p)} | {'—' if t.p_holm is None else fmt_p(t.p_holm)} | "
            + ("— | —" if b is None else f"{100 * b.delta:+.2f} [{100 * b.ci95[0]:+.2f}, {100 * b.ci95[1]:+.2f}] | "
               f"{fmt_p(b.p_value)}") + " |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders (the sweeps' runs/)")
    parser.add_argument("--out", default=None, help="write the Markdown here")
    parser.add_argument("--report", default=None, help="also keep the full report (with report.html) here")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.report) if args.report else Path(tmp) / "report"
        result = build_report(args.runs, out, n_boot=args.bootstrap, html=bool(args.report))
        datasets = ml.datasets(result.grid)
        lines = []
        for dataset in datasets:
            lines += dataset_tables(result, dataset, args.bootstrap)
        lines += ["### LMF against each baseline", "", *comparison_table(result, datasets)]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
