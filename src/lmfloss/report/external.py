"""External validation beside the internal test: each run's ``eval-NAME.json``
(``lmfloss evaluate --name``) against its own test split, with the difference -- the drop from
internal to external test that a clinical reader looks at first (TRIPOD-AI)."""

from __future__ import annotations

from collections.abc import Sequence

from lmfloss import rundir
from lmfloss.report.formats import pct, signed_pct
from lmfloss.report.names import dataset_name, loss_name, model_name
from lmfloss.report.render import Table
from lmfloss.report.runs import ReportRun

EXTERNAL_COLUMNS = ("dataset", "model", "loss", "seed", "run_dir", "external", "external_dataset", "n_external",
                    "metric", "internal_test", "external_test", "difference", "external_ci95_low",
                    "external_ci95_high", "left_out_overlap")


def external_rows(runs: Sequence[ReportRun]) -> list[dict[str, object]]:
    """One row per (finished run, external set): the task's headline on the run's own test
    split and on the external set, and ``external - internal``."""
    rows = []
    for run in runs:
        if not run.finished:
            continue
        metric = run.task.headline
        for name, payload in sorted(rundir.read_external_evals(run.run_dir).items()):
            internal, external = run.test(metric), payload.get(metric)
            ci = payload.get(f"{metric}_ci95") or [None, None]
            overlap = payload.get("overlap_left_out")
            rows.append({
                "dataset": str(run.dataset), "model": run.model, "loss": run.loss, "seed": run.seed,
                "run_dir": str(run.run_dir), "external": name, "external_dataset": payload.get("dataset"),
                "n_external": payload.get("n"), "metric": metric, "internal_test": internal, "external_test": external,
                "difference": None if internal is None or external is None else external - internal,
                "external_ci95_low": ci[0], "external_ci95_high": ci[1],
                # images of the set the run had seen, left out by `evaluate --drop-overlap` (0: none shared)
                "left_out_overlap": overlap.get("dropped_images", 0) if isinstance(overlap, dict) else 0,
            })
    return rows


def external_table(runs: Sequence[ReportRun]) -> Table | None:
    """The report's table of every external evaluation, or ``None`` when there is none."""
    rows = external_rows(runs)
    if not rows:
        return None
    by_run = {str(r.run_dir): r for r in runs}
    table = Table("external_validation", "External validation: each run's headline on its own test split and on "
                  "sets it never saw (lmfloss evaluate --name), in percent",
                  ["Dataset", "Model", "Loss", "Seed", "External set", "n", "Metric", "Internal test", "External",
                   "Difference", "External 95% CI"])
    for row in rows:
        run = by_run[str(row["run_dir"])]
        ci = (row["external_ci95_low"], row["external_ci95_high"])
        table.rows.append([
            dataset_name(str(run.dataset)), model_name(run.model), loss_name(run.loss), str(run.seed),
            f"{row['external']} ({row['external_dataset']})", str(row["n_external"]), run.task.headline_display,
            pct(row["internal_test"]), pct(row["external_test"]), signed_pct(row["difference"]),
            "—" if None in ci else f"[{pct(ci[0])}, {pct(ci[1])}]"])
    left_out: dict[str, list[int]] = {}
    for row in rows:
        left_out.setdefault(str(row["external"]), []).append(int(row["left_out_overlap"]))  # type: ignore[call-overload]
    for name, counts in left_out.items():
        some = [c for c in counts if c]
        if some:
            many = f"{min(some)}-{max(some)}" if min(some) != max(some) else str(max(some))
            table.notes.append(f"{name}: {many} image(s) left out for {len(some)} of its {len(counts)} "
                               "run(s): images the run had seen and the rest of their patients or lesions "
                               "(evaluate --drop-overlap).")
    table.notes.append("Difference = external - internal. Thresholds and scoring level are the run's own "
                       "(chosen on its validation split); nothing is re-chosen on an external set.")
    return table
