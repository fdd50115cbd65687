"""Tables of a tuned loss comparison (issue 28): every loss tuned with the same budget, each
chosen configuration trained with 5 fresh seeds (2-6), LMF against each baseline with Holm.

Reads the files ``lmfloss report`` writes for the confirmation runs (``results.csv``,
``summary.csv``, ``paired_tests.csv``, ``tuning.csv``) -- the numbers are the report's, not
recomputed -- and prints the Markdown tables of benchmarks/results/tuned-*.md. With
``--untuned``, a report of the same losses without tuning (e.g. benchmarks/results/
medmnist-cpu.md's runs) is set beside it, loss by loss.

    lmfloss report sweeps/tune-retina-confirm/runs --out sweeps/tune-retina-confirm/report
    python benchmarks/tuned_results.py --report sweeps/tune-retina-confirm/report [--untuned OTHER_REPORT]
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

NAMES = {"ce": "CE", "wce": "WCE", "focal": "focal", "ldam": "LDAM", "lmf": "LMF", "bce": "BCE", "asl": "ASL"}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_scores(report: Path) -> tuple[str, dict[str, dict[int, float]], dict[str, list[float]]]:
    """The headline metric's name, each loss's test score by seed and its validation scores
    (percent), from the report's ``results.csv`` (finished runs only)."""
    rows = [r for r in read_csv(report / "results.csv") if r["status"] == "finished"]
    cells = {(r["dataset"], r["model"]) for r in rows}
    if len(cells) > 1:
        raise SystemExit(f"{report}: runs of {len(cells)} dataset x model cells; give a report of one ({sorted(cells)})")
    metric = "map" if rows and rows[0].get("task") == "multilabel" else "f1_macro"
    test: dict[str, dict[int, float]] = defaultdict(dict)
    val: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        test[row["loss"]][int(row["seed"])] = 100 * float(row[metric])
        if row.get(f"val_{metric}"):
            val[row["loss"]].append(100 * float(row[f"val_{metric}"]))
    return metric, dict(test), dict(val)


def mean_sd(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, required=True, help="lmfloss report's folder for the confirmation runs")
    parser.add_argument("--untuned", type=Path, help="lmfloss report's folder for the same losses untuned")
    args = parser.parse_args()
    metric, test, val = test_scores(args.report)
    label = "mAP" if metric == "map" else "macro-F1"
    tuning = {r["space"]: r for r in read_csv(args.report / "tuning.csv")} if (args.report / "tuning.csv").is_file() \
        else {}
    paired = {r["baseline"]: r for r in read_csv(args.report / "paired_tests.csv") if r["reference"] == "lmf"}
    summary = {r["baseline"]: r for r in read_csv(args.report / "summary.csv")}
    untuned = test_scores(args.untuned)[1] if args.untuned else {}
    best = next((b for b, r in summary.items() if r["best_on_val"] == "True"), None)

    print(f"| loss | chosen in tuning (trials) | tuning val {label}: chosen (median, worst) | test {label}, mean ± SD "
          f"(seeds) | per seed | LMF − loss [95 % t-CI] | p (seeds) | Holm p |"
          + (f" untuned test {label} |" if untuned else ""))
    print("|---|---|---:|---:|---|---:|---:|---:|" + ("---:|" if untuned else ""))
    for loss in sorted(test, key=lambda k: (k != "lmf", k)):
        scores = test[loss]
        tune = tuning.get(loss, {})
        chosen = f"{tune.get('chosen') or '—'} ({tune.get('trials_complete', '?')})" if tune else "—"
        val_score = f"{100 * float(tune['val_score']):.2f}" if tune.get("val_score") else "—"
        others = [100 * float(v) for v in (tune.get("val_scores") or "").split()]
        if others:
            val_score += f" ({statistics.median(others):.2f}, {min(others):.2f})"
        seeds = ", ".join(f"{scores[s]:.1f}" for s in sorted(scores))
        pair = paired.get(loss)
        # paired_tests.csv holds fractions; the table is in points like every other column
        diff = (f"{100 * float(pair['delta_f1_seeds']):+.2f} [{100 * float(pair['ci95_t_lo']):+.2f}, "
                f"{100 * float(pair['ci95_t_hi']):+.2f}]" if pair else "—")
        name = NAMES.get(loss, loss) + (" (best on val)" if loss == best else "")
        row = [name, chosen, val_score, f"**{mean_sd(list(scores.values()))}** ({len(scores)})", seeds, diff,
               f"{float(pair['p_seeds_t']):.3f}" if pair else "—", f"{float(pair['p_seeds_holm']):.3f}" if pair else "—"]
        if untuned:
            row.append(mean_sd(list(untuned.get(loss, {}).values())))
        print("| " + " | ".join(row) + " |")
    print()
    print(f"Best baseline on validation (mean over seeds of the confirmation runs' validation {label}): "
          f"{NAMES.get(best, best)}; validation means: "
          + ", ".join(f"{NAMES.get(k, k)} {statistics.mean(v):.2f}" for k, v in sorted(val.items())) + ".")
    print(f"Holm's correction runs over the {len(paired)} LMF-vs-baseline comparisons of this report.")
    print(commits_line(args.report))


def commits_line(report: Path) -> str:
    """Which lmfloss commits trained the runs (``results.csv``'s ``lmfloss_commit``, recorded
    since lmfloss 0.4; a run trained from uncommitted edits ends in ``+dirty``)."""
    rows = [r for r in read_csv(report / "results.csv") if r["status"] == "finished"]
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row.get("lmfloss_commit") or "not recorded"] += 1
    return "Trained by lmfloss at: " + ", ".join(
        f"{commit if commit == 'not recorded' else commit[:7] + commit[40:]} ({n} runs)"
        for commit, n in sorted(counts.items(), key=lambda kv: -kv[1])) + "."


if __name__ == "__main__":
    main()
