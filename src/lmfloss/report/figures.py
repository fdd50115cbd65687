"""The paper's Figs. 1, 2 and 4 from runs, as PNG and PDF (matplotlib, Agg backend).

- Fig. 1: macro-F1 per dataset and loss, mean across architectures (of each one's seed
  mean), error bar = ± 1 SD over seeds (pooled over architectures) -- the tables' dispersion,
  not the paper's "average deviation", so the page has one measure.
- Fig. 2: per-class image counts of each dataset (train + val + test of the runs' split).
- Fig. 4: mean macro-F1 per LMF hyperparameter setting, error bar = ± 1 SD over the
  setting's configurations.

Each figure's caption is built with it from the same words (:func:`figure_caption`), and each
loss has its report-wide colour (:func:`lmfloss.report.names.loss_colors`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmfloss.fileio import save_figure
from lmfloss.report.grid import OK, Grid, per_class_datasets
from lmfloss.report.names import dataset_name, loss_colors, loss_gid, loss_name, model_name
from lmfloss.report.runs import ReportRun

logger = logging.getLogger(__name__)

# Each figure's caption (report.md and report.html); Fig. 1's depends on the grid (figure_caption).
FIGURE_CAPTIONS = {
    "Fig. 1": "macro-F1 per dataset and loss, mean over architectures ± 1 SD over seeds",
    "Fig. 2": "per-class image counts of each dataset (multi-label: positive images per label)",
    "Fig. 4": "mean macro-F1 per LMF hyperparameter setting ± 1 SD over its configurations",
    "Per-label AUC": "each label's test AUC by loss (multi-label datasets), mean over seeds ± 1 SD over seeds",
}


def figure_caption(label: str, grid: Grid) -> str:
    """A figure's caption, the words its own title uses (Fig. 1 names its architectures)."""
    if label != "Fig. 1":
        return FIGURE_CAPTIONS.get(label, label)
    models = grid.models
    if len(models) == 1:
        return f"macro-F1 of {model_name(models[0])} per dataset and loss, mean over seeds ± 1 SD over seeds"
    return (f"macro-F1 per dataset and loss, mean over {len(models)} architectures ± 1 SD over seeds "
            "(pooled over the architectures)")


def sd(values: Sequence[float]) -> float:
    """The sample standard deviation (ddof 1; 0 for a single value: no spread to draw)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only; never a window)."""
    # not at the top: lmfloss.cam imports this package without matplotlib.
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    return plt


# Active while the report draws (a Text reads it when created): a "$" in a class, label or run
# name is drawn as itself, not parsed as mathtext (which refuses e.g. "$\\badcmd$").
FIGURE_RC = {"text.parse_math": False}


def save_figure_files(fig: Any, out_dir: Path, stem: str) -> list[Path]:
    """``fig`` as PNG (report.md), PDF (a paper) and SVG (report.html inlines it; text kept as
    text) in ``out_dir``, then closed; returns the three paths."""
    import matplotlib  # not at the top: lmfloss.cam imports this package without matplotlib

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf", out_dir / f"{stem}.svg"]
    # The tight box measured once for the three files ("tight" in each savefig draws the figure twice).
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)
    save_figure(fig, paths[0], dpi=150, bbox_inches=box)
    save_figure(fig, paths[1], bbox_inches=box)
    # The SVG's raster parts stay inside it whatever the user's matplotlibrc says (report.html inlines it).
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": stem, "svg.image_inline": True}):
        save_figure(fig, paths[2], bbox_inches=box, metadata={"Date": None})
    pyplot().close(fig)
    return paths


def fig1_data(grid: Grid) -> dict[tuple[str, str], tuple[float, float, int]]:
    """``(dataset, loss) -> (mean, SD over seeds, n models)`` of macro-F1.

    Each architecture contributes its cell's seed-mean test macro-F1; architectures
    whose cell is missing or unfinished are left out (``n models`` says how many count).
    The spread is the SD over seeds, as in the tables: pooled over the architectures
    (the root of their mean seed variance, of those with two seeds or more). With a single
    architecture: mean and SD over its seeds, ``n`` seeds.
    """
    data = {}
    for dataset in grid.datasets:
        for loss in grid.losses_of(dataset):
            cells = [grid.cell(dataset, m, loss) for m in grid.models]
            per_model = [c.values("f1_macro") for c in cells if c.status == OK and c.values("f1_macro")]
            if not per_model:
                continue
            if len(grid.models) == 1:
                values = per_model[0]
                data[(dataset, loss)] = (float(np.mean(values)), sd(values), len(values))
                continue
            variances = [float(np.var(v, ddof=1)) for v in per_model if len(v) > 1]
            pooled = float(np.sqrt(np.mean(variances))) if variances else 0.0
            data[(dataset, loss)] = (float(np.mean([np.mean(v) for v in per_model])), pooled, len(per_model))
    return data


def figure1(grid: Grid, out_dir: str | Path) -> list[Path]:
    """Fig. 1: grouped bars of mean macro-F1 per dataset and loss; returns the files.
    Multi-label datasets have their own figure (:func:`lmfloss.report.multilabel.figure_label_auc`)."""
    grid = grid.for_datasets(per_class_datasets(grid))
    if not grid.datasets:
        return []
    plt = pyplot()
    data = fig1_data(grid)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(grid.datasets)), 4))
    width = 0.8 / max(len(grid.losses), 1)
    x = np.arange(len(grid.datasets))
    colors = loss_colors(grid.losses)
    for k, loss in enumerate(grid.losses):
        heights = [100 * data.get((d, loss), (np.nan, 0, 0))[0] for d in grid.datasets]
        errors = [100 * data.get((d, loss), (0, 0, 0))[1] for d in grid.datasets]
        positions = x + (k - (len(grid.losses) - 1) / 2) * width
        bars = ax.bar(positions, heights, width, yerr=errors, capsize=3, label=loss_name(loss), color=colors[loss])
        for patch in bars.patches:
            patch.set_gid(loss_gid(loss, "bar"))
        for pos, d, h in zip(positions, grid.datasets, heights):
            n = data.get((d, loss), (0, 0, 0))[2]
            if 0 < n < len(grid.models) or (len(grid.models) == 1 and n != grid.expected_n):
                ax.annotate(f"n={n}", (pos, h), ha="center", va="bottom", fontsize="x-small")
    ax.set_xticks(x, [dataset_name(d) for d in grid.datasets])
    ax.set_ylabel("Macro F1 (%)")
    caption = figure_caption("Fig. 1", grid)
    ax.set_title(caption[0].upper() + caption[1:], fontsize="medium")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), title="Loss")
    return save_figure_files(fig, Path(out_dir), "fig1_macro_f1")


def class_distribution(runs: Sequence[ReportRun]) -> dict[str, dict[str, int]]:
    """``dataset -> {class: images}`` over train + val + test, from finished runs' reports.

    Train counts are ``train_class_counts``; val/test counts the splits' ``support``
    (a list in class order or a ``{class: n}`` mapping). Falls back to train counts only.
    """
    out: dict[str, dict[str, int]] = {}
    for run in runs:
        if not run.finished or run.dataset in out or not run.class_names:
            continue
        report = run.report or {}
        names = run.class_names
        totals = np.zeros(len(names), dtype=np.int64)
        train = report.get("train_class_counts")
        if train is None or len(train) != len(names):
            continue
        totals += np.asarray(train, dtype=np.int64)
        for split in ("val", "test"):
            support = (report.get(split) or {}).get("support")
            if isinstance(support, dict):
                totals += np.asarray([int(support.get(c, 0)) for c in names])
            elif isinstance(support, list) and len(support) == len(names):
                totals += np.asarray(support, dtype=np.int64)
        out[run.dataset] = {c: int(n) for c, n in zip(names, totals)}
    return out


def figure2(grid: Grid, runs: Sequence[ReportRun], out_dir: str | Path) -> list[Path]:
    """Fig. 2: one bar chart of per-class image counts per dataset; returns the files."""
    plt = pyplot()
    dist = class_distribution(runs)
    datasets = [d for d in grid.datasets if d in dist]
    if not datasets:
        logger.warning("no finished run with class counts; Fig. 2 skipped")
        return []
    cols = min(len(datasets), 2)
    rows = int(np.ceil(len(datasets) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.6 * rows), squeeze=False)
    for k, dataset in enumerate(datasets):
        ax = axes[k // cols][k % cols]
        counts = dist[dataset]
        ax.bar(list(counts), list(counts.values()), color="tab:blue")
        ax.set_title(f"({chr(ord('a') + k)}) {dataset_name(dataset)}")
        ax.set_ylabel("Images")
        ax.tick_params(axis="x", labelrotation=45)
    for k in range(len(datasets), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.tight_layout()
    return save_figure_files(fig, Path(out_dir), "fig2_class_distribution")


def fig4_data(runs: Sequence[ReportRun]) -> dict[tuple[str, str], dict[str, tuple[float, float, int]]]:
    """``(dataset, model) -> {setting: (mean, SD over configurations, n configs)}``.

    Each distinct ``(alpha, beta)`` of finished LMF runs contributes its seed-mean
    test macro-F1 to each setting it belongs to (the sweep's recorded setting, else
    inferred; ``alpha = beta = 1`` belongs to all three). Only dataset x model pairs
    with at least two distinct ``(alpha, beta)`` form a study.
    """
    by_config: dict[tuple[str, str], dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
    settings_of: dict[tuple, set[str]] = defaultdict(set)
    for run in runs:
        if run.loss != "lmf" or not run.finished or run.test("f1_macro") is None:
            continue
        if run.alpha is None or run.beta is None:
            continue
        key = (run.alpha, run.beta)
        by_config[(run.dataset, run.model)][key].append(run.test("f1_macro"))
        settings_of[(run.dataset, run.model, *key)].update(run.settings)
    out = {}
    for (dataset, model), configs in by_config.items():
        if len(configs) < 2:
            continue
        per_setting: dict[str, list[float]] = defaultdict(list)
        for key, values in configs.items():
            for setting in settings_of[(dataset, model, *key)]:
                per_setting[setting].append(float(np.mean(values)))
        if per_setting:
            out[(dataset, model)] = {
                s: (float(np.mean(v)), sd(v), len(v))
                for s, v in sorted(per_setting.items())
            }
    return out


def figure4(runs: Sequence[ReportRun], out_dir: str | Path) -> list[Path]:
    """Fig. 4: mean macro-F1 ± 1 SD per setting; returns the files."""
    plt = pyplot()
    data = fig4_data(runs)
    if not data:
        logger.info("no LMF hyperparameter study among the runs; Fig. 4 skipped")
        return []
    fig, axes = plt.subplots(1, len(data), figsize=(4.5 * len(data), 3.6), squeeze=False)
    for ax, ((dataset, model), settings) in zip(axes[0], sorted(data.items())):
        names = list(settings)
        means = [100 * settings[s][0] for s in names]
        errors = [100 * settings[s][1] for s in names]
        labels = [f"{s}\n(n={settings[s][2]})" for s in names]
        ax.bar(labels, means, yerr=errors, capsize=4, color="tab:green")
        ax.set_ylim(max(0.0, min(means) - 3 * max(errors + [1.0])), min(100.0, max(means) + 3 * max(errors + [1.0])))
        ax.set_title(f"{dataset_name(dataset)}, {model_name(model)}")
        ax.set_ylabel("Mean macro F1 (%)")
    fig.tight_layout()
    return save_figure_files(fig, Path(out_dir), "fig4_hparam_settings")
