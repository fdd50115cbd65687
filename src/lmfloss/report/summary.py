"""Is LMF better? The report's summary, comparison and calibration tables, and their CSVs.

Everything chosen is chosen on **validation**: the baseline LMF is compared with in the
summary line is the one with the best mean validation macro-F1 (``best_on_val``), and a
cell that held several configurations (LMF's alpha/beta study) shows the best by
validation too -- the summary says how many configurations each side had, since tuning
more configurations on validation is itself an advantage.

Differences are tested at two levels: a paired t-test over seeds (the unit of
replication; Holm-corrected over every LMF-vs-baseline comparison of the report, the
family) and a paired bootstrap over the same test images (is the difference larger than
the choice of test images explains?).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmfloss.report.cam import find_cam_summaries, match_run
from lmfloss.report.formats import (
    DASH,
    MINUS,
    fmt_p,
    interval_pct,
    n_note,
    num,
    pct,
    seed_p,
    seeds_note,
    signed_pct,
)
from lmfloss.report.grid import OK, Cell, Comparison, Grid, best_on_val, per_label
from lmfloss.report.names import dataset_name, loss_name, model_name
from lmfloss.report.render import Table
from lmfloss.report.runs import ReportRun
from lmfloss.report.stats import MIN_SEEDS_T
from lmfloss.report.tables import train_counts
from lmfloss.report.tuning import configurations_tried

SUMMARY_COLUMNS = (
    "dataset", "model", "baseline", "best_on_val", "selected_on", "n_seeds", "lmf_f1", "baseline_f1",
    "delta_f1", "delta_ci_low", "delta_ci_high", "p_seeds", "p_seeds_holm", "p_images",
)
PAIRED_COLUMNS = (
    "dataset", "model", "reference", "baseline", "n_pairs", "seeds", "seed_deltas", "delta_f1_seeds",
    "ci95_t_lo", "ci95_t_hi", "p_seeds_t", "p_seeds_holm", "n_images", "delta_f1_images", "ci95_images_lo",
    "ci95_images_hi", "p_images", "p_seeds_and_images", "n_boot",
)
CALIBRATION_METRICS = ("ece", "brier", "nll")
FAMILY_NOTE = ("Holm-corrected over the family of every LMF-vs-baseline comparison in this report "
               "({n} with a seed-level p)")


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _pct_or_empty(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 4)


def summary_rows(grid: Grid, comparisons: Sequence[Comparison]) -> list[dict[str, object]]:
    """``summary.csv``: one row per (dataset, model, baseline) LMF was compared with
    (:data:`SUMMARY_COLUMNS`; F1s and differences in percent, empty where undefined)."""
    rows = []
    for c in (c for c in comparisons if c.metric == "f1_macro"):
        lmf, base = grid.cell(c.dataset, c.model, "lmf"), grid.cell(c.dataset, c.model, c.baseline)
        chosen = best_on_val(grid, c.dataset, c.model)
        is_best = chosen is not None and chosen.loss == c.baseline
        t = c.seed_test
        rows.append({
            "dataset": c.dataset, "model": c.model, "baseline": c.baseline,
            "best_on_val": is_best, "selected_on": "val" if is_best else None, "n_seeds": t.n,
            "lmf_f1": _pct_or_empty(_mean(lmf.values("f1_macro"))),
            "baseline_f1": _pct_or_empty(_mean(base.values("f1_macro"))),
            "delta_f1": _pct_or_empty(t.mean),
            "delta_ci_low": None if t.ci95 is None else _pct_or_empty(t.ci95[0]),
            "delta_ci_high": None if t.ci95 is None else _pct_or_empty(t.ci95[1]),
            "p_seeds": t.p, "p_seeds_holm": t.p_holm,
            "p_images": None if c.test is None else c.test.p_value,
        })
    return rows


def paired_rows(comparisons: Sequence[Comparison]) -> list[dict[str, object]]:
    """``paired_tests.csv``: every macro-F1 comparison at both levels (differences as fractions;
    multi-label comparisons: ``paired_tests_multilabel.csv``)."""
    rows = []
    for c in (c for c in comparisons if c.metric == "f1_macro"):
        t, b = c.seed_test, c.test
        rows.append({
            "dataset": c.dataset, "model": c.model, "reference": "lmf", "baseline": c.baseline,
            "n_pairs": t.n, "seeds": " ".join(str(s) for s in c.seeds),
            "seed_deltas": " ".join(repr(d) for d in t.deltas), "delta_f1_seeds": t.mean,
            "ci95_t_lo": None if t.ci95 is None else t.ci95[0], "ci95_t_hi": None if t.ci95 is None else t.ci95[1],
            "p_seeds_t": t.p, "p_seeds_holm": t.p_holm,
            "n_images": None if b is None else b.n_items, "delta_f1_images": None if b is None else b.delta,
            "ci95_images_lo": None if b is None else b.ci95[0], "ci95_images_hi": None if b is None else b.ci95[1],
            "p_images": None if b is None else b.p_value, "p_seeds_and_images": None if b is None else b.p_value_seeds,
            "n_boot": None if b is None else b.n_boot,
        })
    return rows


def _ci(c: Comparison) -> str:
    t = c.seed_test
    return DASH if t.ci95 is None else interval_pct(t.ci95)


def _minority_text(grid: Grid, dataset: str, lmf: Cell, best: Cell) -> str:
    counts = train_counts(grid, dataset)
    if not counts:
        return DASH
    minority = min(counts, key=counts.get)
    a, b = lmf.per_class_f1(minority), best.per_class_f1(minority)
    if not a or not b:
        return DASH
    text = f"{minority} (n={counts[minority]}): {pct(float(np.mean(a)))} vs {pct(float(np.mean(b)))}"
    # The seeds column counts the macro-F1s; a run may lack this class's F1 (an older run).
    if (len(a), len(b)) != (len(lmf.values("f1_macro")), len(best.values("f1_macro"))):
        text += f" (seeds {len(a)}/{len(b)})"
    return text


def summary_table(grid: Grid, comparisons: Sequence[Comparison]) -> Table | None:
    """Per dataset x model: LMF against the baseline with the best **validation** macro-F1."""
    if "lmf" not in grid.losses:
        return None
    by_key = {(c.dataset, c.model, c.baseline): c for c in comparisons if c.metric == "f1_macro"}
    table = Table(
        name="summary", title="LMF against the best baseline (chosen on validation macro-F1)",
        columns=["Dataset", "Model", "LMF", "best baseline (val)", "ΔF1 (seeds)", "95% CI (t)", "p (seeds)",
                 "p (images)", "seed std", "seeds", "configurations (LMF/baseline)", "minority-class F1"],
    )
    for d in grid.datasets:
        for m in grid.models:
            lmf, best = grid.cell(d, m, "lmf"), best_on_val(grid, d, m)
            c = None if best is None else by_key.get((d, m, best.loss))
            if lmf.status != OK or not lmf.values("f1_macro") or best is None or c is None:
                continue
            spread = "/".join(DASH if len(x.values("f1_macro")) < 2
                              else num(np.std(x.values('f1_macro'), ddof=1), ".2f", 100) for x in (lmf, best))
            tried = [configurations_tried(x.runs, x.loss, x.n_configs) for x in (lmf, best)]
            budget = f"{tried[0]}/{tried[1]}"
            if tried[0] > tried[1]:
                budget += " (LMF tuned more on val)"
            table.rows.append([
                dataset_name(d), model_name(m), pct(_mean(lmf.values("f1_macro"))),
                f"{loss_name(best.loss)} {pct(_mean(best.values('f1_macro')))}",
                DASH if c.seed_test.mean is None
                else f"{signed_pct(c.seed_test.mean)}{n_note(c.seed_test.n, grid.expected_n)}", _ci(c), seed_p(c),
                DASH if c.test is None else fmt_p(c.test.p_value), spread,
                f"{len(lmf.values('f1_macro'))}/{len(best.values('f1_macro'))}", budget,
                _minority_text(grid, d, lmf, best),
            ])
    if not table.rows:
        return None
    n_family = sum(c.seed_test.p is not None for c in comparisons)
    table.notes += [
        "Test macro-F1 in percent, mean over seeds (seeds: how many runs each mean rests on, LMF/baseline). "
        "The baseline is the one with the best mean validation macro-F1 (never chosen on test).",
        "ΔF1 (seeds): mean over paired seeds of LMF minus baseline; 95% CI: t-interval over seeds; p (seeds): "
        f"paired t-test over seeds, {FAMILY_NOTE.format(n=n_family)}; no seed-level test with fewer than "
        f"{MIN_SEEDS_T} seeds.",
        "p (images): paired bootstrap over the same test images (is the difference larger than the choice of "
        "test images explains?). Seed std: LMF/baseline. Configurations: how many configurations each side "
        "had tuned on validation.",
    ]
    return table


SIGNIFICANCE = 0.05  # the level the page's sentences name a Holm-corrected p against


@dataclass(frozen=True)
class Answer:
    """The page's one-sentence answer for a dataset x model, as ``(text, emphasis)`` parts:
    the difference's part is emphasised ``better``/``worse`` (a colour, beside its +/− sign)."""

    dataset: str
    model: str
    parts: tuple[tuple[str, str | None], ...]

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.parts)


def _display_signed(value: float) -> str:
    # A typographic minus in prose: a hyphen reads as a dash in a sentence (the tables keep report.md's "-").
    return signed_pct(value).replace("-", MINUS, 1)


def answer(grid: Grid, comparisons: Sequence[Comparison], dataset: str, model: str) -> Answer | None:
    """LMF against the best baseline on validation in one dataset x model, in one sentence built
    from the summary's numbers (the task's headline metric: macro-F1, mAP): the two means, the
    signed difference over paired seeds, its t-interval, the Holm-corrected p and what it says.
    ``None`` where the summary has no row."""
    if "lmf" not in grid.losses:
        return None
    task = grid.task(dataset)
    metric = task.headline
    lmf, best = grid.cell(dataset, model, "lmf"), best_on_val(grid, dataset, model)
    if lmf.status != OK or best is None or not lmf.values(metric):
        return None
    c = next((c for c in comparisons if (c.dataset, c.model, c.baseline, c.metric) == (dataset, model, best.loss,
                                                                                         metric)), None)
    if c is None or c.seed_test.mean is None:
        return None
    t = c.seed_test
    finite = bool(np.isfinite(t.mean))
    verdict = ("LMF better" if t.mean > 0 else "LMF worse" if t.mean < 0 else "no difference") if finite else "undefined"
    emphasis = ("better" if t.mean > 0 else "worse" if t.mean < 0 else None) if finite else None
    spread = (f"95 % CI [{_display_signed(t.ci95[0])}, {_display_signed(t.ci95[1])}] over {t.n} seeds"
              if t.ci95 is not None else f"over {t.n} seed{'s' if t.n != 1 else ''}")
    if t.p_holm is not None:
        word = "significant" if t.p_holm < SIGNIFICANCE else "not significant"
        test = f", Holm p {fmt_p(t.p_holm)} — {word} at {SIGNIFICANCE:g}."
    else:
        test = f" — no test over seeds with fewer than {MIN_SEEDS_T} seeds."
    lead = (f"{dataset_name(dataset)}, {model_name(model)}: LMF {pct(_mean(lmf.values(metric)))} vs "
            f"{loss_name(best.loss)} {pct(_mean(best.values(metric)))} (test {task.headline_display}; "
            f"{loss_name(best.loss)} is the best baseline on validation), ")
    return Answer(dataset, model, ((lead, None), (f"{_display_signed(t.mean)} points ({verdict})", emphasis),
                                   (f", {spread}{test}", None)))


def answers(grid: Grid, comparisons: Sequence[Comparison]) -> list[Answer]:
    """:func:`answer` of every dataset x model that has one, in the grid's order."""
    found = (answer(grid, comparisons, d, m) for d in grid.datasets for m in grid.models)
    return [a for a in found if a is not None]


def comparison_table(comparisons: Sequence[Comparison]) -> Table:
    """Every LMF-vs-baseline comparison at both levels."""
    table = Table(
        name="paired_tests", title="LMF minus each baseline in test macro-F1 (percentage points)",
        columns=["Dataset", "Model", "Baseline", "seeds", "ΔF1 per seed", "ΔF1 (seeds)", "95% CI (t)",
                 "p (seeds)", "ΔF1 (images)", "95% CI (images)", "p (images)"],
        wrap=["ΔF1 per seed", "p (seeds)"],  # five seeds' differences in one cell: the page wraps them
    )
    for c in (c for c in comparisons if c.metric == "f1_macro"):
        t, b = c.seed_test, c.test
        table.rows.append([
            dataset_name(c.dataset), model_name(c.model), loss_name(c.baseline), str(t.n),
            ", ".join(signed_pct(d) for d in t.deltas) or DASH,
            DASH if t.mean is None else signed_pct(t.mean), _ci(c), seed_p(c),
            DASH if b is None else signed_pct(b.delta),
            DASH if b is None else interval_pct(b.ci95),
            DASH if b is None else fmt_p(b.p_value),
        ])
    n_family = sum(c.seed_test.p is not None for c in comparisons)
    table.notes += [
        "Runs paired by seed. p (seeds): paired t-test over seeds, " + FAMILY_NOTE.format(n=n_family) + ".",
        "p (images): two-sided paired bootstrap over the same test images; it says nothing about another seed. "
        "The two-level bootstrap over seeds and images is in paired_tests.csv from 10 paired seeds on.",
    ]
    return table


def calibration_table(grid: Grid, model: str) -> Table | None:
    """ECE, Brier score and NLL on test per dataset x loss (mean ± std over seeds), or ``None``
    when no run recorded them (runs of lmfloss 0.1)."""
    labelwise = [per_label(grid.task(d)) for d in grid.datasets]
    # A multi-label run has no accuracy; an all-multi-label report shows no such column.
    metrics = CALIBRATION_METRICS if labelwise and all(labelwise) else (*CALIBRATION_METRICS, "accuracy")
    table = Table(
        name=f"calibration_{model}", title=f"Calibration of each loss on {model_name(model)} (test; lower is better)",
        columns=["Dataset", "Loss", "ECE", "Brier", "NLL", *(["accuracy"] if "accuracy" in metrics else [])],
    )
    any_value = False
    for d in grid.datasets:
        for k, loss in enumerate(grid.losses_of(d)):
            cell = grid.cell(d, model, loss)
            row = [dataset_name(d) if k == 0 else "", loss_name(loss)]
            for metric in metrics:
                values = cell.values(metric) if cell.status == OK else []
                if not values:
                    row.append(DASH)
                    continue
                any_value = any_value or metric != "accuracy"
                std = f" ± {num(np.std(values, ddof=1), '.3f')}" if len(values) > 1 else ""
                row.append(f"{num(np.mean(values), '.3f')}{std}{seeds_note(cell, grid.expected_n, len(values))}")
            table.rows.append(row)
    if not any_value:
        return None
    if any(labelwise):
        table.notes.append("Multi-label datasets: every label's sigmoid probability as a binary forecast (ECE over "
                           "15 bins of p, Brier = mean squared error, NLL = mean binary cross-entropy); no accuracy.")
    if not all(labelwise):
        table.notes.append(
            "ECE: top-label expected calibration error over 15 equal-width bins; Brier: multi-class; NLL: mean "
            "negative log-likelihood; ± the standard deviation over seeds, n=k a value resting on fewer runs than "
            "the fullest cell has (report.md lists which runs lack it). LDAM and LMF train logits scaled by 30, so "
            "their raw softmax is not calibrated like cross-entropy's; `lmfloss evaluate --calibrate` fits a "
            "temperature on validation."
        )
    else:
        table.notes.append("± the standard deviation over seeds, n=k a value resting on fewer runs than the fullest "
                           "cell has. `lmfloss evaluate --calibrate` fits a sigmoid temperature on validation.")
    return table


CAM_COLUMNS = ("layer", "n_scored", "pointing_hit_rate", "pointing_minus_shuffled", "energy_in_box",
               "energy_over_chance", "road")


def cam_table(runs: Sequence[ReportRun], roots: Sequence[str | Path]) -> Table | None:
    """Grad-CAM agreement with annotations, from ``lmfloss cam``'s ``cam_summary.csv`` files."""
    table = Table(name="cam", title="Grad-CAM against the annotations (lmfloss cam, all classes)",
                  columns=["Dataset", "Model", "Loss", "seed", "target", *CAM_COLUMNS])
    for _path, rows in find_cam_summaries(roots):
        for row in rows:
            if row.get("class") != "all":
                continue
            run = match_run(row.get("run", ""), runs)
            label = ([dataset_name(run.dataset), model_name(run.model), loss_name(run.loss), str(run.seed)]
                     if run else [row.get("run", "?"), "", "", ""])
            cells = []
            for column in CAM_COLUMNS:
                value = row.get(column)
                try:
                    cells.append(f"{float(value):.3g}")
                except (TypeError, ValueError):  # text (the layer), or absent in an older cam_summary.csv
                    cells.append(str(value) if value else DASH)
            table.rows.append([*label, row.get("target", ""), *cells])
    return table if table.rows else None
