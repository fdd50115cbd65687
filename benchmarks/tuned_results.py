"""Tables of a tuned loss comparison (issue 28): every loss tuned with the same budget, each
chosen configuration trained with 5 fresh seeds (2-6), LMF against each baseline with Holm.

Reads the files ``lmfloss report`` writes for the confirmation runs (``results.csv``,
``summary.csv``, ``paired_tests.csv``, ``tuning.csv``; for a multi-label report
``summary_multilabel.csv`` and ``paired_tests_multilabel.csv``) -- the numbers are the report's,
not recomputed -- and prints the Markdown tables of benchmarks/results/tuned-*.md: the headline
comparison (macro-F1 or mAP) and the threshold-free one (macro AUC; for a multi-class report a
paired t-test computed here, outside the report's Holm family). With
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

from scipy import stats

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
    paired, best, family = comparisons(args.report, metric)
    untuned = test_scores(args.untuned)[1] if args.untuned else {}

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
        # the paired-tests files hold fractions; the table is in points like every other column
        diff = (f"{100 * float(pair['delta']):+.2f} [{100 * float(pair['ci95_t_lo']):+.2f}, "
                f"{100 * float(pair['ci95_t_hi']):+.2f}]" if pair else "—")
        name = NAMES.get(loss, loss) + (" (best on val)" if loss == best else "")
        row = [name, chosen, val_score, f"**{mean_sd(list(scores.values()))}** ({len(scores)})", seeds, diff,
               f"{float(pair['p_seeds_t']):.3f}" if pair else "—", f"{float(pair['p_seeds_holm']):.3f}" if pair else "—"]
        if untuned:
            row.append(mean_sd(list(untuned.get(loss, {}).values())))
        print("| " + " | ".join(row) + " |")
    print()
    print(f"Best baseline on validation (mean over seeds of the confirmation runs' validation {label}): "
          f"{NAMES.get(best, best) if best else 'none yet (no paired test)'}; validation means: "
          + ", ".join(f"{NAMES.get(k, k)} {statistics.mean(v):.2f}" for k, v in sorted(val.items())) + ".")
    print(f"Holm's correction runs over the {family} LMF-vs-baseline comparisons of this report"
          + (" (mAP and macro AUC)." if metric == "map" else "."))
    print(commits_line(args.report))
    print()
    print(auc_table(args.report, metric, test))


def comparisons(report: Path, metric: str) -> tuple[dict[str, dict[str, str]], str | None, int]:
    """LMF against each baseline on the headline (``delta``, ``ci95_t_lo/hi``, ``p_seeds_t``,
    ``p_seeds_holm`` as fractions), the baseline best on validation, and the size of the report's
    Holm family. A multi-label report keeps them in ``paired_tests_multilabel.csv`` and
    ``summary_multilabel.csv``, one row per metric (mAP and macro AUC in one family)."""
    if metric == "map":
        rows = read_csv(report / "paired_tests_multilabel.csv")
        paired = {r["baseline"]: {**r, "delta": r["delta_seeds"]} for r in rows
                  if r["reference"] == "lmf" and r["metric"] == "map"}
        summary = [r for r in read_csv(report / "summary_multilabel.csv") if r["metric"] == "map"]
    else:
        rows = read_csv(report / "paired_tests.csv")
        paired = {r["baseline"]: {**r, "delta": r["delta_f1_seeds"]} for r in rows if r["reference"] == "lmf"}
        summary = read_csv(report / "summary.csv")
    best = next((r["baseline"] for r in summary if r["best_on_val"] == "True"), None)
    return paired, best, sum(1 for r in rows if r.get("p_seeds_holm"))


def auc_table(report: Path, metric: str, test: dict[str, dict[int, float]]) -> str:
    """The threshold-free view: each loss's test macro AUC and LMF's paired difference. For a
    multi-label report the report's own tests (in its Holm family); for a multi-class one a
    paired t-test over seeds computed here, outside the family (exploratory, uncorrected)."""
    column = "auc_macro" if metric == "map" else "auc_macro_ovr"
    auc: dict[str, dict[int, float]] = defaultdict(dict)
    for row in read_csv(report / "results.csv"):
        if row["status"] == "finished" and row.get(column):
            auc[row["loss"]][int(row["seed"])] = 100 * float(row[column])
    if "lmf" not in auc:
        return "No LMF runs with a test AUC."
    multilabel = metric == "map"  # the report's own tests, even where none could run yet (no common seed)
    tested = {r["baseline"]: r for r in read_csv(report / "paired_tests_multilabel.csv")
              if r["reference"] == "lmf" and r["metric"] == "auc_macro"} if multilabel else {}
    lines = ["| loss | test macro AUC, mean ± SD | LMF − loss (seeds) | p (seeds) |" + (" Holm p |" if multilabel else ""),
             "|---|---:|---:|---:|" + ("---:|" if multilabel else "")]
    for loss in sorted(auc, key=lambda k: (k != "lmf", k)):
        cells = [NAMES.get(loss, loss), mean_sd(list(auc[loss].values()))]
        if loss == "lmf":
            cells += ["—", "—"] + (["—"] if multilabel else [])
        elif multilabel:
            pair = tested.get(loss) or {}
            cells += [f"{100 * float(pair['delta_seeds']):+.2f}" if pair else "—",
                      f"{float(pair['p_seeds_t']):.3f}" if pair.get("p_seeds_t") else "—",
                      f"{float(pair['p_seeds_holm']):.3f}" if pair.get("p_seeds_holm") else "—"]
        else:
            seeds = sorted(set(auc["lmf"]) & set(auc[loss]))
            deltas = [auc["lmf"][k] - auc[loss][k] for k in seeds]
            p = stats.ttest_1samp(deltas, 0.0).pvalue if len(deltas) >= 3 else None
            cells += [f"{statistics.mean(deltas):+.2f}" if deltas else "—", "—" if p is None else f"{p:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Macro AUC " + ("over labels; the report's paired tests (in its Holm family)." if multilabel else
                                 "one-vs-rest; paired t-test over seeds computed here, outside the report's Holm "
                                 "family: exploratory, uncorrected."))
    return "\n".join(lines)


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
