"""report.html (issue 20): one self-contained page, checked in a real browser.

The static tests read the file; the browser tests open it in headless Chromium from Debian's
packages, driven by Playwright (``executable_path``; no browser is ever downloaded): no console
error, no page error, no request but ``file:``/``data:``, every image and SVG drawn at a non-zero
size, the summary table's numbers equal to ``summary.csv``, sorting by a header click. Outside
CI a machine without Chromium skips them with the reason; CI (``.ci/run`` sets LMFLOSS_CI=1 and
installs chromium) runs them or fails.
"""

from __future__ import annotations

import csv
import html
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from lmfloss.cli import main
from lmfloss.extras import install_hint
from lmfloss.report import build_report
from report_helpers import LABELS, make_multilabel_run, make_run, noisy_preds
from tiers import fixture_marks

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def _chromium() -> str | None:
    for candidate in (os.environ.get("LMFLOSS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A study with everything a page must show or flag: 3 seeds x 3 losses on two models, an
    unfinished run, an unreadable config, a run missing a metric, and lmfloss cam output."""
    root = tmp_path_factory.mktemp("study")
    runs = root / "runs"
    for model in ("efficientnet_v2_s", "resnet50"):
        for loss, error in (("ce", 0.35), ("focal", 0.32), ("lmf", 0.25)):
            for seed in (1, 2, 3):
                make_run(runs, model=model, loss=loss, seed=seed, preds=noisy_preds(LABELS, error, seed + 10 * len(loss)),
                         val_f1=0.5 + 0.01 * seed + (0.1 if loss == "lmf" else 0))
    make_run(runs, model="resnet50", loss="ce", seed=4, finished=False)
    make_run(runs, model="resnet50", loss="focal", seed=4, legacy=True)  # a run of lmfloss 0.1
    broken = runs / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_bytes(b"dataset: \xff\xfe not utf-8\n")
    cam = root / "runs" / "cam-out"
    cam.mkdir()
    (cam / "cam_summary.csv").write_text(
        "run,group,seed,target,class,layer,n_images,pointing_hit_rate,energy_in_box\n"
        "ham10000-efficientnet_v2_s-lmf-alpha1.0-beta1.0-s1,lmf,1,pred,all,features.6,8,0.625,0.41\n")
    from PIL import Image

    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(cam / "fig_attention.png")
    out = root / "report"
    result = build_report([runs], out, n_boot=200, html=True)
    return out, result


class _Tables(HTMLParser):
    """Every <table>'s id and its rows of cell texts; every <img> src; every <script>/<link>/<a> URL."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.urls: list[str] = []
        self.images: list[str] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href", "xlink:href", "action"):
            if key in attrs:
                self.urls.append(attrs[key])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "table":
            self._table = attrs.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(path: Path) -> _Tables:
    parser = _Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _number(text: str) -> float:
    match = re.search(r"[-+−]?\d+(\.\d+)?", text)
    assert match, text
    return float(match.group(0).replace("−", "-"))


def _check_summary(rows: list[list[str]], summary_csv: list[dict[str, str]]) -> None:
    """The page's summary rows against summary.csv: LMF's and the chosen baseline's macro-F1 and
    the seed-level difference, as the page rounds them (2 decimals)."""
    header, body = rows[0], rows[1:]
    chosen = {(r["model"], r["baseline"]): r for r in summary_csv if r["best_on_val"] == "True"}
    assert len(body) == len(chosen) > 0
    column = {name: header.index(name) for name in ("Model", "LMF", "best baseline (val)", "ΔF1 (seeds)")}
    models = {"EfficientNetV2": "efficientnet_v2_s", "ResNet-50": "resnet50"}
    names = {"CCE": "ce", "Focal": "focal"}
    for row in body:
        baseline = names[row[column["best baseline (val)"]].split()[0]]
        reference = chosen[(models[row[column["Model"]]], baseline)]
        assert _number(row[column["LMF"]]) == pytest.approx(float(reference["lmf_f1"]), abs=0.006)
        assert _number(row[column["best baseline (val)"]].split(maxsplit=1)[1]) == pytest.approx(
            float(reference["baseline_f1"]), abs=0.006)
        assert _number(row[column["ΔF1 (seeds)"]]) == pytest.approx(float(reference["delta_f1"]), abs=0.006)


# ------------------------------------------------------------------------------ the file
def test_the_page_is_one_file_that_fetches_nothing(study):
    out, result = study
    page = out / "report.html"
    assert result.html == page and page.is_file()
    text = page.read_text(encoding="utf-8")
    assert re.search(r'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:;',
                     html.unescape(text))
    parsed = _parse(page)
    assert all(url.startswith(("data:", "#")) for url in parsed.urls), [u[:40] for u in parsed.urls
                                                                         if not u.startswith(("data:", "#"))]
    assert parsed.images and all(src.startswith("data:image/png;base64,") for src in parsed.images)
    assert not re.search(r"""(src|href)=["']https?:""", text)
    assert "<svg" in text and text.count("<table") >= 5


def test_the_summary_is_summary_csv_and_every_run_is_accounted_for(study):
    out, _ = study
    parsed = _parse(out / "report.html")
    _check_summary(parsed.tables["table-summary"], _csv(out / "summary.csv"))
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "1 unfinished" in text or "unfinished (1 run" in text  # the unfinished seed is flagged
    assert "broken" in text and "cannot be read" in text.replace("could not", "cannot")  # the unreadable run too
    assert "Grad-CAM" in text and "0.625" in text  # cam_summary.csv's row


def test_every_figure_has_alt_text(study):
    out, _ = study
    text = (out / "report.html").read_text(encoding="utf-8")
    for match in re.finditer(r"<img [^>]*>", text):
        assert re.search(r'alt="[^"]{10,}"', match.group(0))
    assert text.count('role="img" aria-label="') == text.count('<div class="svg"')


def test_ids_are_unique_and_every_reference_resolves(study):
    out, _ = study
    text = (out / "report.html").read_text(encoding="utf-8")
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})[:5]
    references = re.findall(r'(?:url\(#|href="#|aria-describedby=")([^)"]+)', text)
    assert references and set(references) <= set(ids), sorted(set(references) - set(ids))[:5]


def test_a_row_keeps_its_dataset_and_model_when_sorted_away_from_its_group(study):
    out, _ = study
    rows = _parse(out / "report.html").tables["table-summary"][1:]
    assert len(rows) == 2 and all(row[0] and row[1] for row in rows)  # report.md leaves the 2nd dataset blank
    assert rows[0][0] == rows[1][0]


def test_a_damaged_metrics_file_costs_its_curve_not_the_page(tmp_path, caplog):
    for seed in (1, 2):
        make_run(tmp_path / "runs", seed=seed)
    metrics = next((tmp_path / "runs").rglob("metrics.csv"))
    lines = metrics.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("val_loss")] = "abc"
    metrics.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    result = build_report([tmp_path / "runs"], tmp_path / "r", n_boot=50, html=True)
    assert result.html.is_file()
    assert f"{metrics}: line 2: val_loss 'abc' is not a number" in caplog.text


def test_a_dollar_in_a_class_name_is_drawn_as_itself(tmp_path):
    names = ["nevus", r"cost $\badcmd$ x", "melanoma"]  # mathtext would refuse \badcmd
    for seed in (1, 2):
        make_run(tmp_path / "runs", seed=seed, class_names=names)
    result = build_report([tmp_path / "runs"], tmp_path / "r", n_boot=50, html=True)
    assert r"cost $\badcmd$ x" in (tmp_path / "r" / "figures" / "fig2_class_distribution.svg").read_text()
    assert r"cost $\badcmd$ x" in result.html.read_text(encoding="utf-8")


def test_report_html_flag_and_a_missing_runs_folder(tmp_path, capsys):
    make_run(tmp_path / "runs", seed=1)
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "r"), "--html", "--bootstrap", "50",
                 "--quiet"]) == 0
    assert f"html: {tmp_path / 'r' / 'report.html'}" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r2"), "--html"]) == 2
    assert not (tmp_path / "r2").exists()


def test_without_jinja2_report_and_sweep_say_what_to_install_before_any_work(tmp_path, monkeypatch, capsys):
    import sys

    import yaml

    from cli_helpers import one_error_line

    monkeypatch.setitem(sys.modules, "jinja2", None)  # import jinja2 -> ImportError
    make_run(tmp_path / "runs", seed=1)
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "r"), "--html"]) == 2
    assert install_hint("html") in one_error_line(capsys, "report")
    assert not (tmp_path / "r").exists()
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"name": "s", "sampler": "grid", "html": True,
                                     "base": {"epochs": 1, "weights": "none", "image_size": 28},
                                     "space": {"loss": ["ce", "lmf"]}}))
    assert main(["sweep", "--config", str(sweep), "--out", str(tmp_path / "sweep")]) == 2
    assert "report.html needs jinja2" in one_error_line(capsys, "sweep")
    assert not (tmp_path / "sweep" / "runs").exists()  # nothing trained


# ------------------------------------------------------------------------------ the browser
@pytest.fixture(scope="module")
@fixture_marks(pytest.mark.browser)
def browser():
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if executable is None or sync_playwright is None:
        reason = ("needs Debian's chromium (apt-get install chromium) and playwright (pip install playwright); "
                  f"chromium: {executable or 'not found'}, playwright: {'found' if sync_playwright else 'missing'}")
        if os.environ.get("LMFLOSS_CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_page(browser, path: Path):
    """The page at ``path`` with everything it logged and asked for."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = {"console": [], "errors": [], "requests": []}
    page.on("console", lambda message: seen["console"].append((message.type, message.text)))
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on("request", lambda request: seen["requests"].append(request.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, seen


def test_the_browser_shows_it_with_no_error_and_no_request(browser, study):
    out, _ = study
    page, seen = open_page(browser, out / "report.html")
    assert [m for m in seen["console"] if m[0] in ("error", "warning")] == []
    assert seen["errors"] == []
    assert seen["requests"] and all(url.startswith(("file:", "data:")) for url in seen["requests"])
    sizes = page.evaluate("""() => Array.from(document.querySelectorAll('img, main svg'))
        .filter((e) => e.tagName.toLowerCase() === 'img' || !e.parentElement.closest('svg'))
        .map((e) => { const r = e.getBoundingClientRect(); return [e.tagName, r.width, r.height]; })""")
    assert len(sizes) >= 4
    assert all(width > 10 and height > 10 for _, width, height in sizes), sizes
    broken = page.evaluate("() => Array.from(document.images).filter((i) => !i.complete || i.naturalWidth === 0).length")
    assert broken == 0
    page.close()


def test_the_browsers_summary_is_summary_csv_and_tables_sort(browser, study):
    out, _ = study
    page, _ = open_page(browser, out / "report.html")
    rows = page.evaluate("""() => Array.from(document.querySelectorAll('#table-summary tr'))
        .map((tr) => Array.from(tr.children).map((c) => c.textContent.trim()))""")
    _check_summary(rows, _csv(out / "summary.csv"))
    table = page.locator("#tables table.sortable").first  # Table 2 (the runs table above is folded)
    header = table.locator("th").nth(5)  # a numeric column
    header.click()
    column = table.evaluate("(t) => Array.from(t.tBodies[0].rows).map((r) => r.children[5].textContent.trim())")
    numbers = [float(re.match(r"[-\d.]+", c).group(0)) for c in column if re.match(r"[-\d.]+", c)]
    assert numbers == sorted(numbers)
    header.click()
    column = table.evaluate("(t) => Array.from(t.tBodies[0].rows).map((r) => r.children[5].textContent.trim())")
    numbers = [float(re.match(r"[-\d.]+", c).group(0)) for c in column if re.match(r"[-\d.]+", c)]
    assert numbers == sorted(numbers, reverse=True)
    page.close()


def test_the_sort_orders_signed_numbers_intervals_and_text_and_puts_blanks_last(browser, tmp_path):
    from lmfloss.report.html import CSS, SORT_SCRIPT, csp

    cells = ["+2.09 (p=0.816)", "\u2014", "\u22123.10", "-1.5", "36.73 \u00b1 0.74", "<0.001", "", "[9.10, 12.00]",
             "[34.14, 41.64]", "0.5"]
    body = "".join(f"<tr><td>{c}</td></tr>" for c in cells)
    page_path = tmp_path / "sort.html"
    page_path.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
                         f'content="{csp()}"><style>{CSS}</style></head><body><table class="sortable"><thead><tr>'
                         f"<th>x</th></tr></thead><tbody>{body}</tbody></table><script>{SORT_SCRIPT}</script>"
                         "</body></html>", encoding="utf-8")
    page, seen = open_page(browser, page_path)
    header = page.locator("th")
    read = "() => Array.from(document.querySelectorAll('tbody td')).map((c) => c.textContent.trim())"
    header.click()
    assert page.evaluate(read) == ["\u22123.10", "-1.5", "<0.001", "0.5", "+2.09 (p=0.816)", "[9.10, 12.00]",
                                   "[34.14, 41.64]", "36.73 \u00b1 0.74", "\u2014", ""]
    header.click()
    assert page.evaluate(read) == ["36.73 \u00b1 0.74", "[34.14, 41.64]", "[9.10, 12.00]", "+2.09 (p=0.816)", "0.5",
                                   "<0.001", "-1.5", "\u22123.10", "\u2014", ""]
    assert seen["errors"] == []
    page.close()


# ------------------------------------------------------------------- what a reader sees (issue 26)
LONG_NAMES = ["Melanocytic nevus (dermoscopic)", "Basal cell carcinoma of the skin", "Benign keratosis-like lesion"]


@pytest.fixture(scope="module")
def long_names(tmp_path_factory):
    """Five losses (the grid that left a blank third) on classes whose names are long."""
    root = tmp_path_factory.mktemp("long")
    for k, loss in enumerate(("ce", "focal", "ldam", "bwcce", "lmf")):
        for seed in (1, 2, 3):
            make_run(root / "runs", loss=loss, seed=seed, class_names=LONG_NAMES,
                     preds=noisy_preds(LABELS, 0.4 - 0.04 * k, seed + 10 * k), val_f1=0.5 + 0.02 * k)
    return build_report([root / "runs"], root / "report", n_boot=50, html=True)


def _answers(page) -> list[str]:
    return page.evaluate("() => Array.from(document.querySelectorAll('#summary p.answer')).map((p) => p.textContent)")


def test_the_first_screen_answers_in_sentences_equal_to_the_summary(browser, study):
    out, _ = study
    page, _ = open_page(browser, out / "report.html")
    sentences = _answers(page)
    chosen = [r for r in _csv(out / "summary.csv") if r["best_on_val"] == "True"]
    assert len(sentences) == len(chosen) == 2
    for text, row in zip(sentences, chosen):
        numbers = re.match(r".*?: LMF ([\d.]+) vs \S+ ([\d.]+) .*?, ([+\u2212][\d.]+) points \(LMF (better|worse)\), "
                           r"95 % CI \[([+\u2212][\d.]+), ([+\u2212][\d.]+)\] over (\d) seeds, Holm p ([\d.]+) — "
                           r"(not )?significant", text)
        assert numbers, text
        lmf, base, delta, verdict, lo, hi, n, p, negated = numbers.groups()
        value = lambda s: float(s.replace("\u2212", "-"))  # noqa: E731
        assert value(lmf) == pytest.approx(float(row["lmf_f1"]), abs=0.006)
        assert value(base) == pytest.approx(float(row["baseline_f1"]), abs=0.006)
        assert value(delta) == pytest.approx(float(row["delta_f1"]), abs=0.006)
        assert verdict == ("better" if float(row["delta_f1"]) > 0 else "worse")
        assert value(lo) == pytest.approx(float(row["delta_ci_low"]), abs=0.006)
        assert value(hi) == pytest.approx(float(row["delta_ci_high"]), abs=0.006)
        assert int(n) == int(row["n_seeds"]) and float(p) == pytest.approx(float(row["p_seeds_holm"]), abs=0.0006)
        assert (negated is None) == (float(row["p_seeds_holm"]) < 0.05)
    seen = page.evaluate("""() => {
        const first = document.querySelector('#summary p.answer').getBoundingClientRect();
        const sign = document.querySelector('#summary p.answer strong');
        const minority = Array.from(document.querySelectorAll('#table-summary th'))
            .find((th) => th.textContent === 'minority-class F1').getBoundingClientRect();
        return {bottom: first.bottom, height: innerHeight, width: innerWidth, minority: minority.right,
                sign: getComputedStyle(sign).color, text: getComputedStyle(sign.parentElement).color};
    }""")
    assert seen["bottom"] <= seen["height"]  # the answer is on the first screen
    assert seen["minority"] <= seen["width"]  # minority-class F1 without scrolling sideways
    assert seen["sign"] != seen["text"]  # the difference is coloured (its +/- sign is text too)
    page.close()


def test_no_text_is_cut_at_a_figures_edge(browser, long_names):
    page, _ = open_page(browser, long_names.html)
    outside = page.evaluate("""() => {
        const out = [];
        document.querySelectorAll('main figure .svg > svg').forEach((svg) => {
            const box = svg.getBoundingClientRect();
            svg.querySelectorAll('text').forEach((t) => {
                const r = t.getBoundingClientRect();
                if (r.width === 0) { return; }
                if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1) {
                    out.push([svg.closest('figure').id, t.textContent]);
                }
            });
        });
        document.querySelectorAll('table.confusion th').forEach((th) => {
            if (th.scrollWidth > th.clientWidth + 1) { out.push(['confusion', th.textContent]); }
        });
        return out;
    }""")
    assert outside == []
    names = page.evaluate("""() => Array.from(document.querySelectorAll('table.confusion th.true'))
        .map((th) => th.textContent)""")
    assert names == LONG_NAMES * 5  # every class name whole, in every one of the five losses' matrices
    page.close()


def test_each_loss_has_one_colour_in_every_figure(browser, long_names):
    page, _ = open_page(browser, long_names.html)
    found = page.evaluate("""() => {
        const out = [];
        document.querySelectorAll('[id*="lossc--"]').forEach((group) => {
            const loss = /lossc--(.+?)--/.exec(group.id)[1];
            const colours = new Set();
            group.querySelectorAll('path, use').forEach((e) => {
                const style = getComputedStyle(e);
                [style.stroke, style.fill].forEach((c) => {
                    if (c && c !== 'none' && c !== 'rgb(0, 0, 0)' && c !== 'rgb(255, 255, 255)') { colours.add(c); }
                });
            });
            out.push([loss, group.closest('figure').id, Array.from(colours)]);
        });
        return out;
    }""")
    figures = {figure for _, figure, _ in found}
    assert any(f.startswith("figure-fig-1") for f in figures) and any("curves" in f for f in figures)
    assert any("calibration" in f for f in figures)
    colour: dict[str, set[str]] = {}
    for loss, _, colours in found:
        assert len(colours) == 1, (loss, colours)
        colour.setdefault(loss, set()).update(colours)
    assert set(colour) == {"ce", "focal", "ldam", "bwcce", "lmf"}
    assert all(len(c) == 1 for c in colour.values()), colour  # the same colour in every figure
    assert len({c for cs in colour.values() for c in cs}) == 5  # and no two losses share one
    page.close()


def test_the_contents_stay_in_view_and_reach_every_dataset_and_model(browser, study):
    out, result = study
    page, _ = open_page(browser, out / "report.html")
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    nav = page.evaluate("""() => { const r = document.querySelector('nav#contents').getBoundingClientRect();
                                   return [r.top, r.bottom, innerHeight]; }""")
    assert nav[0] >= -1 and nav[0] < nav[2] and nav[1] > 0  # still on screen at the bottom of the page
    links = page.evaluate("() => Array.from(document.querySelectorAll('nav#contents ul.cells a')).map((a) => a.textContent)")
    assert links == ["HAM-10K, EfficientNetV2", "HAM-10K, ResNet-50"]
    page.locator("nav#contents ul.cells a").nth(1).click()
    top = page.evaluate("() => document.querySelector('#cell-ham10000-resnet50').getBoundingClientRect().top")
    assert 0 <= top < 40
    page.close()


def test_the_summary_tables_fit_a_1280_px_screen_without_scrolling_sideways(browser, study, tmp_path):
    # the first tables a reader meets: a column hidden past the right edge is a column unread
    runs = tmp_path / "runs"
    for loss, skill in (("bce", 0.8), ("lmf", 1.2)):
        for seed in (1, 2, 3):
            make_multilabel_run(runs, dataset="odir5k", loss=loss, seed=seed, skill=skill)
    build_report([runs], tmp_path / "report", n_boot=50, html=True, figures=False)
    for page_path in (study[0] / "report.html", tmp_path / "report" / "report.html"):
        page, _ = open_page(browser, page_path)
        widths = page.evaluate("""() => Array.from(document.querySelectorAll('section')[0].querySelectorAll('.table-wrap'))
            .map((w) => [w.scrollWidth, w.clientWidth])""")
        assert widths and all(scroll <= client + 1 for scroll, client in widths), (page_path, widths)
        page.close()
    # and the paired tests, whose per-seed differences fill one cell
    page, _ = open_page(browser, study[0] / "report.html")
    scroll, client = page.evaluate("""() => { const w = document.querySelector('#table-paired-tests').closest('.table-wrap');
                                             return [w.scrollWidth, w.clientWidth]; }""")
    assert scroll <= client + 1, (scroll, client)
    page.close()


def test_on_a_narrow_screen_a_contents_link_lands_its_heading_below_the_contents(browser, study):
    out, _ = study
    page = browser.new_page(viewport={"width": 800, "height": 900})
    page.goto((out / "report.html").resolve().as_uri())
    page.wait_for_load_state("load")
    page.locator("nav#contents a[href='#tables']").click()
    page.wait_for_timeout(100)
    heading, nav = page.evaluate("""() => [document.querySelector('#tables h2').getBoundingClientRect().top,
                                          document.querySelector('nav#contents').getBoundingClientRect().bottom]""")
    assert nav <= heading < nav + 60, (heading, nav)  # in view, not hidden under the sticky contents
    page.close()
