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
from lmfloss.extras import install_hint
from lmfloss.fileio import atomic_write_text
from lmfloss.report import multilabel
from lmfloss.report.cam import find_cam_summaries
from lmfloss.report.figures import figure_caption
from lmfloss.report.grid import OK, Grid
from lmfloss.report.names import dataset_name, loss_name, model_name
from lmfloss.report.panels import SD_WORDS, confusion_panels, curves_figure, reliability_figure
from lmfloss.report.render import Table
from lmfloss.report.status import ReportResult, runs_table, status_section
from lmfloss.report.summary import Answer, answers, cam_table, comparison_table, summary_table

logger = logging.getLogger(__name__)

HTML_NAME = "report.html"
# matplotlib's SVG as the page needs it, whatever the user's matplotlibrc says: text as text,
# stable ids, raster parts inline (never a file beside it).
SVG_RC = {"svg.fonttype": "none", "svg.hashsalt": "lmfloss", "svg.image_inline": True}

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
  // On a narrow screen the contents stick to the top of the page: a link lands its heading
  // below them, not under them (beside the page, as a sidebar, they need no room).
  var nav = document.querySelector("nav#contents");
  function pad() {
    var box = nav.getBoundingClientRect();
    document.documentElement.style.scrollPaddingTop = box.width < innerWidth / 2 ? "" : Math.ceil(box.height) + "px";
  }
  if (nav) { pad(); addEventListener("resize", pad); }
})();
"""

CSS = """\
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1b1b1b;
       line-height: 1.45; }
.page { max-width: 1200px; padding: 0 1.25rem 3rem; min-width: 0; }
nav#contents { position: sticky; top: 0; z-index: 3; background: #f7f8fa; border-bottom: 1px solid #ddd;
               padding: .4rem 1rem; font-size: .85rem; max-height: 35vh; overflow-y: auto; }
nav#contents ul { display: flex; flex-wrap: wrap; gap: .1rem 1rem; padding: 0; margin: .2rem 0; list-style: none; }
.nav-title { font-weight: 600; margin: .3rem 0 0; }
@media (min-width: 1000px) {
  body { display: grid; grid-template-columns: 12rem minmax(0, 1fr); }
  nav#contents { height: 100vh; max-height: none; box-sizing: border-box; border-bottom: 0;
                 border-right: 1px solid #ddd; padding: 1rem; }
  nav#contents ul { display: block; }
  nav#contents li { margin: .15rem 0; }
}
h1 { font-size: 1.6rem; margin-top: 1.5rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
section { scroll-margin-top: 1rem; }
p.meta { color: #444; }
p.answer { font-size: 1.02rem; margin: .5rem 0; padding: .35rem .7rem; border-left: 4px solid #8aa4c8;
           background: #f4f7fb; }
.better, td.pos { color: #0a6e31; } .worse, td.neg { color: #b3261e; }
code { background: #f3f3f3; padding: 0 .2em; border-radius: 3px; }
.table-wrap { overflow-x: auto; margin: 1rem 0 .3rem; }
table { border-collapse: separate; border-spacing: 0; font-size: .8rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid #d9d9d9; border-width: 0 1px 1px 0; padding: .25rem .4rem; text-align: right;
         white-space: nowrap; background: #fff; }
tr > :first-child { border-left-width: 1px; } thead th { border-top-width: 1px; }
th { background: #f4f6f8; cursor: pointer; white-space: normal; vertical-align: bottom; }
th[data-order="asc"]::after { content: " \\25B2"; } th[data-order="desc"]::after { content: " \\25BC"; }
td:first-child, td:nth-child(2), th:first-child, th:nth-child(2) { text-align: left; }
td:first-child, th:first-child { position: sticky; left: 0; z-index: 1; box-sizing: border-box; width: 6.5rem;
                                 min-width: 6.5rem; max-width: 6.5rem; white-space: normal; }
td:nth-child(2), th:nth-child(2) { position: sticky; left: 6.5rem; z-index: 1; }
td.wrap { white-space: normal; min-width: 3.5rem; max-width: 16rem; text-align: left; }
th.wrap { text-align: left; }
td.best { background: #eef7ee; }
.notes p { font-size: .8rem; color: #555; margin: .2rem 0; }
figure { margin: 1.2rem 0; }
figure .svg svg, figure img { max-width: 100%; height: auto; }
figcaption { font-size: .85rem; color: #444; }
.warning { border-left: 4px solid #d9822b; background: #fff6ec; padding: .4rem .8rem; margin: .6rem 0; }
ul.flags li { color: #8a1c1c; }
details.table > summary { cursor: pointer; font-weight: 600; margin: .8rem 0 .2rem; }
.confusions { display: flex; flex-wrap: wrap; gap: .8rem 1.2rem; align-items: flex-start; }
table.confusion { font-size: .75rem; }
table.confusion th, table.confusion td { padding: .12rem .3rem; }
table.confusion caption { font-weight: 600; }
table.confusion th, table.confusion td { position: static; width: auto; min-width: 0; max-width: 9rem;
                                         white-space: normal; overflow-wrap: break-word; cursor: default;
                                         text-align: center; }
table.confusion td { min-width: 2.2rem; }
table.confusion th.true { text-align: left; background: #f4f6f8; }
@media print { nav#contents { display: none; } body { display: block; } }
"""

# The summary's columns the page shows first, so the answer -- and the minority class's F1 --
# is in view without scrolling sideways (report.md keeps the CSV's order).
SUMMARY_FIRST = ("Dataset", "Model", "LMF", "best baseline (val)", "ΔF1 (seeds)", "minority-class F1",
                 "95% CI (t)", "p (seeds)")
_SIGNED = re.compile(r"^[+\-\u2212]\d")


def require_jinja2() -> Any:
    """The ``jinja2`` module, or a one-line error saying what to install."""
    try:
        import jinja2  # optional extra: lmfloss[html]
    except ImportError:
        raise LmflossError(f"report.html needs jinja2 (not installed): {install_hint('html')}") from None
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


def _sign(column: str, text: str) -> str | None:
    """``pos``/``neg`` for a signed difference in a Δ column (coloured, beside its +/− sign)."""
    if "Δ" not in column or not _SIGNED.match(text):
        return None
    return "pos" if text.startswith("+") else "neg"


def table_block(table: Table, first: Sequence[str] = (), wide: Sequence[str] = ()) -> dict[str, Any]:
    """A :class:`Table` as the template's table block: the same display strings as its Markdown,
    but a label cell the Markdown leaves blank under the same dataset/model repeats it, so a
    row sorted away from its group still says what it is. Columns named in ``first`` come
    first (in that order); columns in ``wide`` may wrap; a signed difference is marked."""
    labels = table.n_label_columns()
    order = [table.columns.index(c) for c in first if c in table.columns]
    order += [j for j in range(len(table.columns)) if j not in order]
    rows, above = [], [""] * labels
    for i, row in enumerate(table.rows):
        filled = [text or above[j] if j < labels else text for j, text in enumerate(row)]
        above = filled[:labels] + above[len(filled[:labels]):]
        rows.append([{"text": filled[j], "best": (i, j) in table.best and bool(filled[j]),
                      "sign": _sign(table.columns[j], filled[j]),
                      "wrap": table.columns[j] in wide or table.columns[j] in table.wrap}
                     for j in order if j < len(filled)])
    return {"kind": "table", "id": "table-" + _slug(table.name), "title": table.title,
            "columns": [table.columns[j] for j in order], "rows": rows,
            "wrap": [table.columns[j] in wide or table.columns[j] in table.wrap for j in order],
            "notes": [note.replace("`", "") for note in table.notes]}


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


# ------------------------------------------------------------------------- cell figures
def _panels(grid: Grid) -> list[tuple[str, str]]:
    return [(d, m) for d in grid.datasets for m in grid.models
            if any(grid.cell(d, m, loss).status == OK or grid.cell(d, m, loss).unfinished for loss in grid.losses_of(d))]


def cell_id(dataset: str, model: str) -> str:
    """The page anchor of one dataset x model (the contents list links to it)."""
    return "cell-" + _slug(f"{dataset} {model}")


# (what, figure maker, alt text and caption of a panel at ``where``)
CELL_FIGURES = (
    ("curves", curves_figure,
     "training and validation curves of each loss on {where}",
     "Training curves of {where}: one colour per loss (as in every figure of this page), the mean over seeds "
     "with a band of " + SD_WORDS + " (a cell of one seed: its run); training loss solid, validation loss "
     "dashed; a diamond marks the epoch each run kept (chosen on validation)."),
    ("calibration", reliability_figure,
     "reliability diagram of each loss on {where}",
     "Reliability of {where}: test predictions of each loss's seeds pooled; ECE, Brier and NLL per loss are in "
     "the calibration table."),
)


def _cell_sections(result: ReportResult, answers_by_cell: dict[tuple[str, str], Answer]) -> list[dict[str, Any]]:
    """One section per dataset x model: its answer, its curves, confusion matrices, reliability."""
    sections = []
    for dataset, model in _panels(result.grid):
        where = f"{dataset_name(dataset)}, {model_name(model)}"
        blocks: list[dict[str, Any]] = []
        if (dataset, model) in answers_by_cell:
            blocks.append(_answer_block(answers_by_cell[(dataset, model)], prefix="cell-answer"))
        for what, maker, alt, caption in CELL_FIGURES:
            panel = maker(result.grid, dataset, model)
            if panel is not None:
                text = " ".join([caption.format(where=where), *(note.rstrip(".") + "." for note in panel.notes)])
                blocks.append(figure_block(f"{what} {dataset} {model}", svg_text(panel.fig), alt.format(where=where),
                                           text))
            if what == "curves":
                blocks += _confusion_blocks(result.grid, dataset, model, where)
        sections.append({"id": cell_id(dataset, model), "title": where, "blocks": blocks, "cell": True})
    return sections


# A row share's colour: white to matplotlib's "Blues" dark end, white text on the dark half.
_LIGHT, _DARK = np.array([247, 251, 255]), np.array([8, 48, 107])


def _confusion_blocks(grid: Grid, dataset: str, model: str, where: str) -> list[dict[str, Any]]:
    found = confusion_panels(grid, dataset, model)
    if found is None:
        return []
    names, panels = found
    tables = []
    for panel in panels:
        rows = []
        for i, name in enumerate(names):
            cells = []
            for j in range(len(names)):
                share = float(panel.shares[i, j])
                rgb = np.rint(_LIGHT + share * (_DARK - _LIGHT)).astype(int)
                cells.append({"text": f"{int(panel.counts[i, j])}", "title": f"{100 * share:.1f} % of true {name}",
                              "style": f"background:rgb({rgb[0]},{rgb[1]},{rgb[2]});"
                                       f"color:{'#fff' if share > 0.5 else '#111'}"})
            rows.append({"name": name, "cells": cells})
        tables.append({"title": f"{loss_name(panel.loss)} ({panel.runs} run{'s' if panel.runs != 1 else ''})",
                       "names": names, "rows": rows})
    return [{"kind": "confusion", "id": "confusion-" + _slug(f"{dataset} {model}"), "tables": tables,
             "caption": f"Test confusion matrices of {where}, summed over each loss's seeds: rows are the true "
                        "class, columns the predicted one; numbers are images, the colour each row's share."}]


def _answer_block(a: Answer, prefix: str = "answer") -> dict[str, Any]:
    return {"kind": "answer", "id": f"{prefix}-" + _slug(f"{a.dataset} {a.model}"),
            "parts": [{"text": text, "css": css} for text, css in a.parts]}


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
    """The page's sections, each a list of blocks (answers, tables, figures, warnings, text); the
    first answers the question, one section per dataset x model holds its figures."""
    sections: list[dict[str, Any]] = []
    found = answers(result.grid, result.comparisons)
    summary = [t for t in (summary_table(result.grid, result.comparisons),
                           multilabel.summary_table(result.grid, result.comparisons)) if t is not None]
    if summary or found:
        blocks = [_answer_block(a) for a in found]
        # The per-class summary's minority-class F1 moves into view; the multi-label one keeps its order.
        blocks += [table_block(t, first=SUMMARY_FIRST if t.name == "summary" else (),
                               wide=("minority-class F1", "configurations (LMF/baseline)", "best baseline (val)",
                                     "p (seeds)", "p AUC (seeds)"))
                   for t in summary]
        sections.append({"id": "summary", "title": "Summary: LMF against the best baseline", "blocks": blocks})
    every_run = table_block(runs_table(result.runs), wide=("loss parameters", "status", "folder"))
    every_run["collapsed"] = f"Every run: {len(result.runs)} rows (click to open)"  # a 300-run table is long
    runs = _text_blocks(status_section(result)) + [every_run]
    sections.append({"id": "runs", "title": "Runs", "blocks": runs})
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
            caption = figure_caption(label, result.grid)
            figures.append(figure_block(label, svg_file_text(svg[0]), f"{label}: {caption}", f"{label}: {caption}."))
    if figures:
        sections.append({"id": "figures", "title": "Figures", "blocks": figures})
    sections += _cell_sections(result, {(a.dataset, a.model): a for a in found})
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
