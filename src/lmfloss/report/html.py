"""``report.html``: the report as one self-contained page a browser opens offline.

``lmfloss report RUNS --html`` (and ``html: true`` in a sweep file) writes ``report.html`` next
to ``report.md``: **one file, nothing fetched at view time** -- figures are inline SVG
(matplotlib's SVG backend, text kept as text; its raster parts, e.g. a confusion matrix's
image, are ``data:`` URIs inside the SVG) or ``data:`` PNG images (the Grad-CAM grid), the
style and the table-sorting script are inline, and a Content-Security-Policy ``<meta>`` with
``default-src 'none'`` makes the browser itself refuse anything else (only ``data:`` images,
inline styles and the one script, by its SHA-256, are allowed).

It renders the same objects as ``report.md`` and the CSV files -- the :class:`Table` objects
of :mod:`lmfloss.report.tables`, ``summary`` and ``multilabel``, the figures of
:mod:`lmfloss.report.figures` -- so its numbers are theirs, never recomputed in the template
(Jinja2, ``report/templates/report.html.j2``, autoescaped). Beside them it draws what a
folder of files makes one open run by run: the training/validation curves of every run (the
selected epoch marked), the confusion matrices (summed over seeds) and reliability diagrams
(predictions pooled over seeds) per dataset x model, split-leakage warnings, the flags of
unfinished, invalid and unreadable runs, and -- when ``lmfloss cam`` output lies under the
runs folder -- the Grad-CAM table and map grid.

Jinja2 (a dependency of torch, and of the ``html`` extra) renders the page; matplotlib, already
the report's figure library, draws the figures as SVG -- no JavaScript plotting library to
inline (Plotly's is 3.5 MB per page), no framework for sorting (about 25 lines of script).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmfloss import __version__
from lmfloss.errors import LmflossError
from lmfloss.fileio import atomic_write_text
from lmfloss.report import multilabel
from lmfloss.report.cam import find_cam_summaries
from lmfloss.report.figures import FIGURE_CAPTIONS
from lmfloss.report.grid import OK, Grid, per_label
from lmfloss.report.names import dataset_name, loss_name, model_name
from lmfloss.report.render import Table
from lmfloss.report.status import ReportResult, status_section
from lmfloss.report.summary import cam_table, comparison_table, summary_table
from lmfloss.rundir import read_metrics

logger = logging.getLogger(__name__)

HTML_NAME = "report.html"
# matplotlib's SVG as the page needs it, whatever the user's matplotlibrc says: text as text,
# stable ids, raster parts inline (never a file beside it).
SVG_RC = {"svg.fonttype": "none", "svg.hashsalt": "lmfloss", "svg.image_inline": True}
INSTALL_HINT = "pip install 'lmfloss[html]'"

SORT_SCRIPT = r"""(function () {
  "use strict";
  // A cell's key: its leading number ("36.73 \u00b1 0.74", "+2.09 (p=0.816)", "\u22123.1",
  // "<0.001", "[34.14, 41.64]" by its lower end), else its text; empty and "\u2014" cells last.
  var NUMBER = /^[<>\[]?\s*([-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?)/i;
  function key(row, index) {
    var cell = row.children[index];
    var text = cell ? cell.textContent.trim().replace(/\u2212/g, "-") : "";
    if (text === "" || text === "\u2014") { return null; }
    var match = NUMBER.exec(text);
    return match ? parseFloat(match[1]) : text.toLowerCase();
  }
  function compare(x, y) {
    if (typeof x === "number" && typeof y === "number") { return x - y; }
    if (typeof x === "number") { return -1; }
    if (typeof y === "number") { return 1; }
    return x.localeCompare(y, undefined, {numeric: true});
  }
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () {
      var table = th.closest("table");
      var body = table.tBodies[0];
      var index = Array.prototype.indexOf.call(th.parentNode.children, th);
      var ascending = th.getAttribute("data-order") !== "asc";
      th.parentNode.querySelectorAll("th").forEach(function (other) { other.removeAttribute("data-order"); });
      th.setAttribute("data-order", ascending ? "asc" : "desc");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a, index), y = key(b, index);
        if (x === null || y === null) { return (x === null) - (y === null); }  // blanks last both ways
        return ascending ? compare(x, y) : compare(y, x);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
})();
"""

CSS = """\
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 1.5rem 3rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-top: 1.5rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
p.meta { color: #444; }
nav ul { display: flex; flex-wrap: wrap; gap: .3rem 1rem; padding: 0; list-style: none; }
code { background: #f3f3f3; padding: 0 .2em; border-radius: 3px; }
.table-wrap { overflow-x: auto; margin: 1rem 0 .3rem; }
table { border-collapse: collapse; font-size: .85rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid #d9d9d9; padding: .25rem .5rem; text-align: right; white-space: nowrap; }
th { background: #f4f6f8; cursor: pointer; position: sticky; top: 0; }
th[data-order="asc"]::after { content: " \\25B2"; } th[data-order="desc"]::after { content: " \\25BC"; }
td:first-child, td:nth-child(2), th:first-child, th:nth-child(2) { text-align: left; }
td.best { background: #eef7ee; }
.notes p { font-size: .8rem; color: #555; margin: .2rem 0; }
figure { margin: 1.2rem 0; }
figure .svg svg, figure img { max-width: 100%; height: auto; }
figcaption { font-size: .85rem; color: #444; }
.warning { border-left: 4px solid #d9822b; background: #fff6ec; padding: .4rem .8rem; margin: .6rem 0; }
ul.flags li { color: #8a1c1c; }
"""

# A reliability diagram's x and y axes and the calibration bins' observed rate: of the top
# label (a task reported per class) or of every label's probability (per label).
_TOP_LABEL_RELIABILITY = ("confidence (top-label probability)", "accuracy", "accuracy")
_PER_LABEL_RELIABILITY = ("probability of a label", "share of positives", "frequency")


def require_jinja2() -> Any:
    """The ``jinja2`` module, or a one-line error saying what to install."""
    try:
        import jinja2  # optional extra: lmfloss[html]
    except ImportError:
        raise LmflossError(f"report.html needs jinja2 (not installed): {INSTALL_HINT}") from None
    return jinja2


def csp(script: str = SORT_SCRIPT) -> str:
    """The page's Content-Security-Policy: nothing from anywhere, but ``data:`` images, inline
    styles (matplotlib's SVG styles its elements inline) and the one script, by its hash."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; "
            "base-uri 'none'; form-action 'none'")


# ------------------------------------------------------------------------------- blocks
def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def table_block(table: Table) -> dict[str, Any]:
    """A :class:`Table` as the template's table block: the same display strings as its Markdown,
    but a label cell the Markdown leaves blank under the same dataset/model repeats it, so a
    row sorted away from its group still says what it is."""
    labels = table._n_label_columns()
    rows, above = [], [""] * labels
    for i, row in enumerate(table.rows):
        filled = [text or above[j] if j < labels else text for j, text in enumerate(row)]
        above = filled[:labels] + above[len(filled[:labels]):]
        rows.append([{"text": text, "best": (i, j) in table.best and bool(text)} for j, text in enumerate(filled)])
    return {"kind": "table", "id": "table-" + _slug(table.name), "title": table.title, "columns": list(table.columns),
            "rows": rows, "notes": [note.replace("`", "") for note in table.notes]}


def svg_text(fig: Any) -> str:
    """A matplotlib figure as inline SVG markup (text kept as text, stable ids, no XML prolog)."""
    import matplotlib  # not at the top: lmfloss.cam imports this package without matplotlib

    buffer = io.StringIO()
    # The figures lay themselves out (subplots_adjust): no "tight" box, which draws them twice.
    with matplotlib.rc_context(SVG_RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def svg_file_text(path: Path) -> str:
    """An SVG file's markup without its XML prolog and DOCTYPE, for inlining."""
    text = path.read_text(encoding="utf-8")
    return text[text.index("<svg"):]


_SVG_ID = re.compile(r'\bid="([^"]+)"')


def scope_ids(svg: str, prefix: str) -> str:
    """``svg`` with every ``id`` it defines, and every ``#id`` reference to one, prefixed: many
    matplotlib SVGs inline in one page would otherwise repeat ``figure_1``, ``axes_1``, clip
    paths... (duplicate ids, and a reference could resolve into another figure)."""
    ids = set(_SVG_ID.findall(svg))
    if not ids:
        return svg
    seen: dict[str, int] = {}

    def rename(match: re.Match) -> str:
        # Two identical images of one figure get one hashed id; references (clip paths, markers)
        # point at the first definition, so a repeat gets a suffix.
        name = match.group(1)
        seen[name] = seen.get(name, 0) + 1
        return f'id="{prefix}-{name}"' if seen[name] == 1 else f'id="{prefix}-{name}-{seen[name]}"'

    svg = _SVG_ID.sub(rename, svg)
    return re.sub(r"(url\(#|href=\"#)([^)\"]+)",
                  lambda m: m.group(1) + (f"{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(2)), svg)


def figure_block(fig_id: str, svg: str, alt: str, caption: str) -> dict[str, Any]:
    slug = "figure-" + _slug(fig_id)
    return {"kind": "figure", "id": slug, "svg": scope_ids(svg, slug), "alt": alt, "caption": caption}


def _text_blocks(lines: Sequence[str]) -> list[dict[str, Any]]:
    """Markdown lines of the status section as paragraphs and lists (backticks dropped)."""
    blocks: list[dict[str, Any]] = []
    for line in lines:
        text = line.replace("`", "")
        if text.startswith("- "):
            if not blocks or blocks[-1]["kind"] != "list":
                blocks.append({"kind": "list", "entries": [], "css": "flags", "title": None})
            blocks[-1]["entries"].append(text[2:])
        elif text.strip():
            blocks.append({"kind": "text", "text": text})
    return blocks


# ------------------------------------------------------------------------- run figures
def _new_figure(width: float, height: float) -> Any:
    # not at the top: lmfloss.cam imports this package without matplotlib
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _panels(grid: Grid) -> list[tuple[str, str]]:
    return [(d, m) for d in grid.datasets for m in grid.models
            if any(grid.cell(d, m, loss).status == OK or grid.cell(d, m, loss).unfinished for loss in grid.losses)]


def curves_figure(grid: Grid, dataset: str, model: str) -> Any | None:
    """Every run's curves of one dataset x model, one column per loss: training and validation
    loss (top), the validation headline metric of the task (macro-F1; mAP for multi-label) with
    each run's selected epoch marked (bottom); unfinished runs dashed."""
    # not at the top: lmfloss.cam imports this package without matplotlib
    from matplotlib.ticker import MaxNLocator

    losses = [loss for loss in grid.losses if grid.cell(dataset, model, loss).runs
              or grid.cell(dataset, model, loss).unfinished]
    if not losses:
        return None
    task = grid.task(dataset)
    score = f"val_{task.headline}"
    fig = _new_figure(2.6 * len(losses) + 0.6, 4.6)
    axes = fig.subplots(2, len(losses), squeeze=False, sharex="col")
    for k, loss in enumerate(losses):
        cell = grid.cell(dataset, model, loss)
        top, bottom = axes[0][k], axes[1][k]
        for run, finished in [*((r, True) for r in cell.runs), *((r, False) for r in cell.unfinished)]:
            try:
                rows = read_metrics(run.run_dir)
            except (OSError, ValueError) as exc:  # one damaged file costs its curve, not the page
                logger.warning("no curves for %s: %s", run.run_dir, exc)
                continue
            if not rows:
                continue
            epochs = [r["epoch"] for r in rows]
            style = "-" if finished else "--"
            label = f"seed {run.seed}" + ("" if finished else " (unfinished)")
            marker = "." if len(epochs) < 30 else None  # a run of one epoch is a point
            top.plot(epochs, [np.nan if r.get("train_loss") is None else r["train_loss"] for r in rows], style,
                     marker=marker, color="tab:blue", linewidth=1, alpha=.7)
            top.plot(epochs, [np.nan if r.get("val_loss") is None else r["val_loss"] for r in rows], style,
                     marker=marker, color="tab:orange", linewidth=1, alpha=.7)
            values = [np.nan if r.get(score) is None else r[score] for r in rows]
            line = bottom.plot(epochs, values, style, marker=marker, linewidth=1, label=label)[0]
            best = (run.report or {}).get("best_epoch")
            if finished and best in epochs:
                bottom.plot([best], [values[epochs.index(best)]], "o", color=line.get_color(), markersize=4)
        top.set_title(loss_name(loss), fontsize=9)
        bottom.set_xlabel("epoch", fontsize=8)
        if k == 0:
            top.set_ylabel("loss (train —, val —)", fontsize=8)
            bottom.set_ylabel(f"val {task.headline_display}", fontsize=8)
        bottom.set_ylim(0, 1)
        if len(cell.runs) + len(cell.unfinished) <= 6:
            bottom.legend(fontsize=6, loc="lower right")
        for ax in (top, bottom):
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{dataset_name(dataset)}, {model_name(model)}: train (blue) and val (orange) loss; val "
                 f"{task.headline_display} with each run's selected epoch (dot)", fontsize=9)
    # A fixed layout (tight_layout measures every tick label of every panel: most of the cost).
    fig.subplots_adjust(left=0.6 / fig.get_figwidth(), right=0.98, bottom=0.11, top=0.86, wspace=0.32, hspace=0.12)
    return fig


def confusion_figure(grid: Grid, dataset: str, model: str) -> Any | None:
    """The test confusion matrix of every loss of one dataset x model reported per class,
    summed over the cell's seeds (rows: true class, normalised; counts in the cells)."""
    cells = [grid.cell(dataset, model, loss) for loss in grid.losses]
    cells = [c for c in cells if c.status == OK]
    if not cells or per_label(grid.task(dataset)):
        return None
    names = cells[0].runs[0].class_names
    k = len(names)
    cols = min(3, len(cells))
    rows = -(-len(cells) // cols)
    side = max(2.4, 0.32 * k + 1.2)
    fig = _new_figure(side * cols, side * rows + 0.4)
    grid_axes = fig.subplots(rows, cols, squeeze=False)
    axes = grid_axes.ravel()
    for ax in axes[len(cells):]:
        ax.axis("off")
    for index, (ax, cell) in enumerate(zip(axes, cells)):
        total = np.zeros((k, k))
        used = 0
        for run in cell.runs:
            matrix = ((run.report or {}).get("test") or {}).get("confusion_matrix")
            if matrix is not None and np.shape(matrix) == (k, k):
                total += np.asarray(matrix, dtype=np.float64)
                used += 1
        norm = total / np.maximum(total.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(k), names, rotation=90, fontsize=6)
        ax.set_yticks(range(k), names if index % cols == 0 else [""] * k, fontsize=6)
        ax.set_title(f"{loss_name(cell.loss)} ({used} run{'s' if used != 1 else ''})", fontsize=8)
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, int(total[i, j]), ha="center", va="center", fontsize=5,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.suptitle(f"{dataset_name(dataset)}, {model_name(model)}: test confusion (rows: true, columns: predicted)",
                 fontsize=9)
    fig.subplots_adjust(left=0.9 / fig.get_figwidth(), right=0.98, bottom=0.7 / fig.get_figheight(),
                        top=1 - 0.5 / fig.get_figheight(), wspace=0.12, hspace=0.45)
    return fig


def reliability_figure(grid: Grid, dataset: str, model: str, n_bins: int = 15) -> Any | None:
    """One reliability curve per loss of one dataset x model, the test predictions of its seeds
    pooled: accuracy against top-label confidence (multi-label: the share of positives against
    every label's probability, :meth:`lmfloss.task.Task.calibration_bins`), the diagonal for
    reference."""
    task = grid.task(dataset)
    x_label, y_label, observed_key = _PER_LABEL_RELIABILITY if per_label(task) else _TOP_LABEL_RELIABILITY
    fig = _new_figure(4.2, 3.6)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
    drawn = 0
    for loss in grid.losses:
        cell = grid.cell(dataset, model, loss)
        if cell.status != OK:
            continue
        ys, ps = [], []
        for run in cell.runs:
            try:
                predictions = run.predictions()
            except (OSError, ValueError):
                continue
            if predictions.probs is not None:
                ys.append(predictions.labels)
                ps.append(predictions.probs)
        if not ys:
            continue
        y, p = np.concatenate(ys), np.concatenate(ps)
        bins = task.calibration_bins(y, p, n_bins)
        observed = bins[observed_key]
        used = bins["count"] > 0
        ax.plot(bins["confidence"][used], observed[used], "o-", markersize=3, linewidth=1, label=loss_name(loss))
        drawn += 1
    if not drawn:
        return None
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(x_label, fontsize=8)
    ax.set_ylabel(y_label, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{dataset_name(dataset)}, {model_name(model)}", fontsize=9)
    fig.subplots_adjust(left=0.16, right=0.97, bottom=0.14, top=0.9)
    return fig


# ---------------------------------------------------------------------------- sections
def _leakage_blocks(result: ReportResult) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for run in result.runs:
        leak = (run.report or {}).get("split_leakage")
        if run.finished and isinstance(leak, dict) and leak.get("straddling_groups") and run.dataset not in seen:
            seen[run.dataset] = leak
    blocks = []
    for dataset, leak in seen.items():
        kind = leak.get("group_kind") or "group"
        blocks.append({"kind": "warning", "text": (
            f"{dataset_name(dataset)}: the split leaks {leak['straddling_groups']} {kind}s — "
            f"{leak.get('test_images_affected')} test images ({100 * float(leak.get('test_share', 0)):.1f}%) share a "
            f"{kind} with a training or validation image, so its test numbers are likely optimistic; "
            f"--group-by {kind} keeps each {kind} in one split.")})
    return blocks or [{"kind": "text", "text": "No split of these runs leaks lesions or patients between train/"
                                               "validation and test (or their data has no group ids to check)."}]


def _cam_blocks(result: ReportResult, roots: Sequence[str | Path]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    table = cam_table(result.runs, roots)
    if table is not None:
        blocks.append(table_block(table))
    for path, _rows in find_cam_summaries(roots):
        png = path.parent / "fig_attention.png"
        if png.is_file():
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            blocks.append({"kind": "figure", "id": _slug(f"cam-{path.parent.name}"), "svg": None,
                           "src": f"data:image/png;base64,{data}",
                           "alt": f"Grad-CAM maps of {path.parent.name}: one row per image, one column per "
                                  "group of runs, the annotation boxes in green",
                           "caption": f"Grad-CAM maps from lmfloss cam ({path.parent}): image, then each group's "
                                      "map over it, annotation boxes in green."})
    return blocks


def build_sections(result: ReportResult, roots: Sequence[str | Path], figure_files: dict[str, list[Path]],
                   compare_tables: Sequence[Table] = ()) -> list[dict[str, Any]]:
    """The page's sections, each a list of blocks (tables, figures, warnings, text)."""
    sections: list[dict[str, Any]] = []
    summary = [t for t in (summary_table(result.grid, result.comparisons),
                           multilabel.summary_table(result.grid, result.comparisons)) if t is not None]
    if summary:
        sections.append({"id": "summary", "title": "Summary: LMF against the best baseline",
                         "blocks": [table_block(t) for t in summary]})
    sections.append({"id": "runs", "title": "Runs", "blocks": _text_blocks(status_section(result))})
    sections.append({"id": "leakage", "title": "Split leakage", "blocks": _leakage_blocks(result)})
    sections.append({"id": "tables", "title": "Tables",
                     "blocks": [table_block(t) for t in [*result.tables] if t not in compare_tables]})
    tests = []
    if any(c.metric == "f1_macro" for c in result.comparisons):
        tests.append(table_block(comparison_table(result.comparisons)))
    if any(c.metric != "f1_macro" for c in result.comparisons):
        tests.append({"kind": "text", "text": "Multi-label comparisons (mAP and macro AUC, over seeds and over test "
                                              "images) are summarised in the multi-label summary and tables above; "
                                              "every test is in paired_tests_multilabel.csv."})
    if tests:
        sections.append({"id": "tests", "title": "Is LMF's difference real? Paired tests", "blocks": tests})
    if compare_tables:
        sections.append({"id": "paper", "title": "Beside the paper", "blocks": [table_block(t) for t in compare_tables]})
    figures = []
    for label, paths in figure_files.items():
        svg = [p for p in paths if p.suffix == ".svg"]
        if svg:
            caption = FIGURE_CAPTIONS.get(label, label)
            figures.append(figure_block(label, svg_file_text(svg[0]), f"{label}: {caption}", f"{label}: {caption}."))
    if figures:
        sections.append({"id": "figures", "title": "Figures", "blocks": figures})
    # (section id, title, figure maker, alt text and caption of a panel at ``where``)
    per_panel = [
        ("curves", "Training curves", curves_figure,
         "training and validation curves of every run of {where}",
         "Curves of every run of {where}: loss (top) and the validation selection score (bottom); a dot "
         "marks the epoch each run kept."),
        ("confusion", "Confusion matrices", confusion_figure,
         "test confusion matrices of each loss on {where}",
         "Test confusion matrices of {where}, summed over each loss's seeds."),
        ("calibration", "Calibration", reliability_figure,
         "reliability diagram of each loss on {where}",
         "Reliability of {where}: test predictions of each loss's seeds pooled; ECE, Brier and NLL per loss "
         "are in the calibration table."),
    ]
    panels = _panels(result.grid)
    for section_id, title, maker, alt, caption in per_panel:
        blocks = []
        for dataset, model in panels:
            fig = maker(result.grid, dataset, model)
            if fig is not None:
                where = f"{dataset_name(dataset)}, {model_name(model)}"
                blocks.append(figure_block(f"{section_id} {dataset} {model}", svg_text(fig), alt.format(where=where),
                                           caption.format(where=where)))
        if blocks:
            sections.append({"id": section_id, "title": title, "blocks": blocks})
    cam = _cam_blocks(result, roots)
    if cam:
        sections.append({"id": "cam", "title": "Grad-CAM against the annotations", "blocks": cam})
    return sections


def write_html(result: ReportResult, roots: Sequence[str | Path], n_boot: int,
               figure_files: dict[str, list[Path]], compare_tables: Sequence[Table] = (),
               path: Path | None = None) -> Path:
    """Render ``report.html`` into the report's folder (or at ``path``; atomically) and return its path."""
    jinja2 = require_jinja2()
    env = jinja2.Environment(loader=jinja2.PackageLoader("lmfloss.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                             lstrip_blocks=True)
    sections = build_sections(result, roots, figure_files, compare_tables)
    page = env.get_template("report.html.j2").render(
        title="lmfloss report", roots=[str(r) for r in roots], n_boot=n_boot, sections=sections,
        version=__version__, css=CSS, script=SORT_SCRIPT, csp=csp(),
    )
    path = Path(path) if path is not None else result.out_dir / HTML_NAME
    atomic_write_text(page, path)
    logger.info("report.html: %.1f MB", len(page.encode("utf-8")) / 2**20)
    return path
