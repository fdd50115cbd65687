"""What report.html (and report.md) tell a reader (issue 26), checked without a browser: the
answer sentence, per-cell curves, figures that say what they show, the runs table, non-finite
values, shared bootstrap resamples, symbolic links to runs and the contents list. The browser
checks (nothing clipped, one colour per loss, what is in view) are in test_report_html.py."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from lmfloss.cli import main
from lmfloss.metrics import bootstrap_ci, bootstrap_indices, resampled_metric
from lmfloss.report import build_report, find_runs
from lmfloss.report.aggregate import build_grid
from lmfloss.report.figures import fig1_data, figure_caption
from lmfloss.report.formats import nonfinite, num, pct, signed_pct
from lmfloss.report.names import loss_colors
from lmfloss.report.panels import confusion_panels, curves_figure, mean_sd, reliability_figure
from lmfloss.report.stats import cell_interval, paired_bootstrap_test, resampled_scores
from lmfloss.report.summary import answers
from report_helpers import LABELS, make_run, noisy_preds

MINUS = "\u2212"


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _study(root: Path, seeds=(1, 2, 3), losses=(("ce", 0.35), ("focal", 0.3), ("lmf", 0.25)),
           models=("efficientnet_v2_s",)) -> Path:
    for model in models:
        for loss, error in losses:
            for seed in seeds:
                make_run(root, model=model, loss=loss, seed=seed, preds=noisy_preds(LABELS, error, seed + 7 * len(loss)),
                         val_f1=0.5 + 0.01 * seed + (0.1 if loss == "lmf" else 0))
    return root


def _write_metrics(run: Path, rows: list[tuple]) -> None:
    lines = ["epoch,train_loss,val_loss,val_f1_macro"] + [",".join(str(v) for v in row) for row in rows]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    runs = _study(root / "runs", models=("efficientnet_v2_s", "resnet50"))
    result = build_report([runs], root / "report", n_boot=100, html=True)
    return root / "report", result


# ------------------------------------------------------------------------ 1. the answer
def test_each_dataset_and_model_gets_a_sentence_built_from_the_summary_numbers(page):
    out, result = page
    found = answers(result.grid, result.comparisons)
    assert [(a.dataset, a.model) for a in found] == [("ham10000", "efficientnet_v2_s"), ("ham10000", "resnet50")]
    summary = {(r["model"]): r for r in _csv(out / "summary.csv") if r["best_on_val"] == "True"}
    for a in found:
        row = summary[a.model]
        text = a.text.replace(MINUS, "-")
        assert f"LMF {float(row['lmf_f1']):.2f} vs " in text
        assert f"{float(row['delta_f1']):+.2f} points (LMF {'better' if float(row['delta_f1']) > 0 else 'worse'})" in text
        assert f"[{float(row['delta_ci_low']):+.2f}, {float(row['delta_ci_high']):+.2f}] over 3 seeds" in text
        assert f"Holm p {float(row['p_seeds_holm']):.3f}" in text
        assert ("— significant" in text) == (float(row["p_seeds_holm"]) < 0.05)
        emphasis = [css for _, css in a.parts if css]
        assert emphasis == ["better" if float(row["delta_f1"]) > 0 else "worse"]
    html = (out / "report.html").read_text(encoding="utf-8")
    first = html.index('<p class="answer"')
    assert first < html.index('id="table-summary"')  # above the summary table
    assert re.search(r'<strong class="(better|worse)">[+\u2212]\d', html)  # a sign survives printing in grey


def test_a_lost_comparison_says_worse_with_a_minus(tmp_path):
    runs = _study(tmp_path / "runs", losses=(("ce", 0.15), ("lmf", 0.45)))
    result = build_report([runs], tmp_path / "r", n_boot=50, figures=False)
    (a,) = answers(result.grid, result.comparisons)
    assert f"{MINUS}" in a.text and "(LMF worse)" in a.text and dict(a.parts)[next(t for t, c in a.parts if c)] == "worse"


def test_the_summary_shows_minority_class_f1_before_the_wide_columns(page):
    out, _ = page
    html = (out / "report.html").read_text(encoding="utf-8")
    header = re.search(r'<table id="table-summary".*?<thead><tr>(.*?)</tr>', html, re.S).group(1)
    columns = re.findall(r"<th[^>]*>(.*?)</th>", header)
    assert columns.index("minority-class F1") < columns.index("p (images)")
    assert columns[:2] == ["Dataset", "Model"]
    md = (out / "report.md").read_text(encoding="utf-8")  # report.md keeps summary.csv's order
    assert md.index("| p (images) |") < md.index("| minority-class F1 |")


# --------------------------------------------------------------------------- 2. curves
def test_curves_are_one_mean_line_per_loss_with_an_sd_band_and_data_limits(tmp_path):
    runs = _study(tmp_path / "runs")
    values = {}
    for run in sorted(runs.iterdir()):
        seed = int(run.name.rsplit("-s", 1)[1])
        score = [0.40 + 0.01 * seed, 0.42 + 0.01 * seed, 0.45 + 0.02 * seed]
        values.setdefault(run.name.split("-")[2], []).append(score)
        _write_metrics(run, [(e + 1, 1.0 - 0.1 * e, 1.1 - 0.1 * e, s) for e, s in enumerate(score)])
        report = json.loads((run / "report.json").read_text())
        report["best_epoch"] = 2
        (run / "report.json").write_text(json.dumps(report))
    grid = build_grid(find_runs([runs]))
    panel = curves_figure(grid, "ham10000", "efficientnet_v2_s")
    loss_ax, score_ax = panel.fig.axes
    means = {line.get_gid(): line for line in score_ax.get_lines() if line.get_gid().endswith("--score")}
    assert sorted(means) == ["lossc--ce--score", "lossc--focal--score", "lossc--lmf--score"]  # not one per run
    assert list(means["lossc--lmf--score"].get_ydata()) == pytest.approx(np.mean(values["lmf"], axis=0))
    bands = [c for c in score_ax.collections if (c.get_gid() or "").endswith("-sd")]
    assert len(bands) == 3
    upper = bands[0].get_paths()[0].vertices[:, 1].max()
    assert upper == pytest.approx(np.max(np.mean(values["ce"], axis=0) + np.std(values["ce"], axis=0, ddof=1)))
    lo, hi = score_ax.get_ylim()
    assert 0.3 < lo < 0.41 and 0.5 < hi < 0.6  # from the data, not 0-1
    kept = [line for line in score_ax.get_lines() if (line.get_gid() or "").endswith("--kept")]
    assert len(kept) == 9 and all(line.get_markersize() >= 7 for line in kept)  # every run's kept epoch
    styles = {line.get_gid(): line.get_linestyle() for line in loss_ax.get_lines()}
    assert styles["lossc--lmf--train"] == "-" and styles["lossc--lmf--val"] == "--"
    colors = loss_colors(grid.losses)
    assert means["lossc--lmf--score"].get_color() == colors["lmf"] != colors["ce"]
    legend = [t.get_text() for t in panel.fig.legends[0].get_texts()]
    assert "training" in legend and "validation" in legend and "± 1 SD over seeds" in legend


def test_a_curve_with_a_gap_says_so(tmp_path):
    runs = _study(tmp_path / "runs", seeds=(1,))
    run = next(r for r in runs.iterdir() if "-lmf-" in r.name)
    _write_metrics(run, [(1, 1.0, 1.0, 0.4), (2, "nan", 0.9, "inf"), (3, 0.8, 0.8, 0.5)])
    panel = curves_figure(build_grid(find_runs([runs])), "ham10000", "efficientnet_v2_s")
    assert panel.notes == ["LMF: 2 value(s) in metrics.csv are NaN or ±inf and are not drawn: the curve has a gap there"]
    line = next(x for x in panel.fig.axes[1].get_lines() if x.get_gid() == "lossc--lmf--score")
    assert np.isnan(line.get_ydata()[1])


def test_mean_and_sd_skip_missing_epochs():
    values = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan]])
    mean, sd = mean_sd(values)
    assert list(mean[:2]) == [2.0, 2.0] and np.isnan(mean[2])
    assert sd[0] == pytest.approx(np.std([1.0, 3.0], ddof=1)) and np.isnan(sd[1])


def test_the_page_grows_with_cells_not_with_runs(tmp_path):
    sizes = {}
    for seeds in ((1, 2), (1, 2, 3, 4, 5, 6)):
        runs = _study(tmp_path / f"runs{len(seeds)}", seeds=seeds)
        result = build_report([runs], tmp_path / f"r{len(seeds)}", n_boot=20, figures=False, html=True)
        text = result.html.read_text(encoding="utf-8")
        curves = re.search(r'<figure id="figure-curves-.*?</figure>', text, re.S).group(0)
        sizes[len(seeds)] = curves.count("<path")
    assert sizes[6] == sizes[2]


# ----------------------------------------------------------------------- 3. figures
def test_fig1_spreads_by_sd_over_seeds_and_its_caption_is_its_title(tmp_path):
    runs = _study(tmp_path / "runs", models=("efficientnet_v2_s", "resnet50"))
    result = build_report([runs], tmp_path / "r", n_boot=20, html=True)
    grid = result.grid
    mean, spread, n = fig1_data(grid)[("ham10000", "ce")]
    per_model = [grid.cell("ham10000", m, "ce").values("f1_macro") for m in grid.models]
    assert n == 2 and mean == pytest.approx(np.mean([np.mean(v) for v in per_model]))
    assert spread == pytest.approx(np.sqrt(np.mean([np.var(v, ddof=1) for v in per_model])))
    caption = figure_caption("Fig. 1", grid)
    assert "± 1 SD over seeds" in caption and "absolute deviation" not in caption
    svg = (tmp_path / "r" / "figures" / "fig1_macro_f1.svg").read_text()
    assert caption[1:] in svg  # the figure's title says what its caption says
    html = result.html.read_text(encoding="utf-8")
    md = (tmp_path / "r" / "report.md").read_text()
    assert f"Fig. 1: {caption}." in html and f"Fig. 1: {caption}." in md
    assert "absolute deviation" not in html


def test_confusion_matrices_keep_long_class_names_whole_and_leave_no_blank_panel(tmp_path):
    names = ["Melanocytic nevus (dermoscopic)", "Basal cell carcinoma of the skin", "nv"]
    runs = tmp_path / "runs"
    for loss in ("ce", "focal", "ldam", "bwcce", "lmf"):
        make_run(runs, loss=loss, seed=1, class_names=names)
    result = build_report([runs], tmp_path / "r", n_boot=20, figures=False, html=True)
    found = confusion_panels(result.grid, "ham10000", "efficientnet_v2_s")
    assert found is not None and len(found[1]) == 5
    html = result.html.read_text(encoding="utf-8")
    block = re.search(r'<figure id="confusion-.*?</figure>', html, re.S).group(0)
    assert block.count('<table class="confusion">') == 5
    for name in names:
        assert f'<th scope="row" class="true">{name}</th>' in block and f'<th scope="col">{name}</th>' in block
    assert '<div class="confusions">' in block  # tables that wrap onto rows: no blank panel


def test_reliability_markers_grow_with_their_bins_and_sparse_bins_are_lighter(tmp_path):
    runs = _study(tmp_path / "runs", seeds=(1,))
    rng = np.random.default_rng(0)
    for run in runs.iterdir():  # confidences spread over the bins, a few of them rare
        rows = list(csv.reader((run / "predictions.csv").open()))
        for row in rows[1:]:
            top = float(rng.choice([0.95, 0.9, 0.7, 0.5], p=[0.6, 0.3, 0.09, 0.01]))
            row[3:] = [f"{top:.4f}" if c == row[2] else f"{(1 - top) / 2:.4f}" for c in ("akiec", "bcc", "nv")]
        with (run / "predictions.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
    panel = reliability_figure(build_grid(find_runs([runs])), "ham10000", "efficientnet_v2_s")
    ax = panel.fig.axes[0]
    dots = [c for c in ax.collections if (c.get_gid() or "").endswith("--bins")]
    sizes = np.concatenate([d.get_sizes() for d in dots])
    assert sizes.min() < sizes.max()
    assert {round(float(d.get_alpha()), 2) for d in dots} <= {0.95, 0.3}
    assert any("drawn lighter" in note for note in panel.notes)
    assert [t.get_text() for t in ax.get_legend().get_texts()][0] == "CCE (200)"  # predictions per loss


# ------------------------------------------------------------------------ 4. runs table
class _Table(HTMLParser):
    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.id, self.inside, self.rows, self.cell = table_id, False, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == self.id:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _table(html: str, table_id: str) -> list[list[str]]:
    parser = _Table(table_id)
    parser.feed(html)
    return parser.rows


def test_the_runs_table_has_one_row_per_run_with_what_it_trained_and_scored(tmp_path):
    runs = _study(tmp_path / "runs", seeds=(1, 2))
    make_run(runs, loss="ce", seed=3, finished=False)
    result = build_report([runs], tmp_path / "r", n_boot=20, figures=False, html=True)
    rows = _table(result.html.read_text(encoding="utf-8"), "table-runs")
    header, body = rows[0], rows[1:]
    assert header[:4] == ["Dataset", "Model", "Loss", "seed"] and {"best epoch", "val", "test", "status"} <= set(header)
    assert len(body) == len(result.runs) == 7
    by_dir = {row[header.index("folder")]: row for row in body}
    for run in result.runs:
        row = by_dir[str(run.run_dir)]
        assert row[header.index("seed")] == str(run.seed)
        assert row[header.index("status")].startswith(run.status)
        if run.finished:
            assert row[header.index("test")] == f"{100 * run.test('f1_macro'):.2f}"
            assert row[header.index("val")] == f"{100 * run.val('f1_macro'):.2f}"
            assert row[header.index("best epoch")] == "1"
    lmf = next(row for row in body if row[2] == "LMF")
    assert "alpha=1" in lmf[header.index("loss parameters")] and "beta=1" in lmf[header.index("loss parameters")]


# ---------------------------------------------------------------------- 5. non-finite
def test_nonfinite_values_print_the_same_everywhere():
    assert [pct(float("nan")), pct(float("inf")), pct(float("-inf"))] == ["NaN", "+inf", f"{MINUS}inf"]
    assert [signed_pct(float("nan")), signed_pct(-0.0762), signed_pct(0.02)] == ["NaN", "-7.62", "+2.00"]
    assert num(float("-inf"), ".3f") == nonfinite(float("-inf")) == f"{MINUS}inf"


def test_a_nan_metric_prints_as_nan_in_every_table_and_flags_its_run(tmp_path):
    runs = _study(tmp_path / "runs")
    odd = next(r for r in runs.iterdir() if "-lmf-" in r.name and r.name.endswith("-s2"))
    report = json.loads((odd / "report.json").read_text())
    report["test"]["f1_macro"] = float("nan")
    report["test"]["accuracy"] = float("-inf")
    (odd / "report.json").write_text(json.dumps(report))  # json writes NaN and -Infinity
    build_report([runs], tmp_path / "r", n_boot=20, figures=False, html=True)
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    words = md.replace(str(tmp_path), "")
    assert "nan" not in words.replace("NaN", "") and "-inf" not in words
    assert re.search(r"\| LMF \| " + MINUS + r"inf \(?", md)  # accuracy of a mean over a -inf
    assert re.search(r"\| HAM-10K \| EfficientNetV2 \| NaN \|", md)  # the summary's LMF macro-F1
    assert f"`{odd}` (HAM-10K / EfficientNetV2 / LMF, seed 2): test.accuracy = {MINUS}inf, test.f1_macro = NaN" in md
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "+nan" not in html and "test.f1_macro = NaN" in html


def test_a_nan_probability_invalidates_its_run_in_one_line_and_the_rest_renders(tmp_path, caplog):
    runs = _study(tmp_path / "runs")
    bad = next(r for r in runs.iterdir() if "-focal-" in r.name and r.name.endswith("-s1"))
    lines = (bad / "predictions.csv").read_text().splitlines()
    cells = lines[5].split(",")
    cells[-1] = "nan"
    lines[5] = ",".join(cells)
    (bad / "predictions.csv").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        assert main(["report", str(runs), "--out", str(tmp_path / "r"), "--html", "--bootstrap", "20", "--quiet"]) == 0
    problem = f"{bad / 'predictions.csv'}: line 6: prob_nv is nan, not a probability in [0, 1]"
    assert problem in caplog.text
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "Runs whose predictions.csv cannot be read (counted as unfinished):" in md and problem in md
    assert (tmp_path / "r" / "report.html").is_file()
    status = {r["run_dir"]: r["status"] for r in _csv(tmp_path / "r" / "results.csv")}
    assert status[str(bad)] == "invalid"
    assert "n=2" in md  # Focal's means rest on the two valid seeds


# ---------------------------------------------------------------- 6. shared resamples
@pytest.mark.parametrize(("n", "k"), [(200, 3), (37, 5), (500, 12)])
def test_shared_resamples_give_the_metrics_modules_numbers_exactly(n, k):
    rng = np.random.default_rng(n)
    labels = rng.integers(0, k, n)
    preds = np.stack([np.where(rng.random(n) < 0.4, rng.integers(0, k, n), labels) for _ in range(4)])
    idx = bootstrap_indices(n, 300, 5)
    reference = np.stack([resampled_metric(labels, p, idx, k) for p in preds])
    assert np.array_equal(resampled_scores(labels, preds, k, 300, 5), reference)  # bit for bit
    assert cell_interval(labels, preds, num_classes=k, n_boot=300, seed=5) == bootstrap_ci(
        labels, preds, num_classes=k, n_boot=300, seed=5)
    test = paired_bootstrap_test(labels, preds[:2], preds[2:], num_classes=k, n_boot=300, seed=5)
    deltas = np.stack([reference[0] - reference[2], reference[1] - reference[3]]).mean(axis=0)
    assert test.ci95 == tuple(float(q) for q in np.quantile(deltas, [0.025, 0.975]))


# ----------------------------------------------------------------------- 6. symlinks
def test_a_folder_of_symbolic_links_to_runs_is_a_study_and_a_loop_is_refused(tmp_path, caplog):
    first = _study(tmp_path / "here", losses=(("ce", 0.3),))
    second = _study(tmp_path / "there", losses=(("lmf", 0.2),))
    study = tmp_path / "study"
    study.mkdir()
    for run in [*first.iterdir(), *second.iterdir()]:
        (study / run.name).symlink_to(run, target_is_directory=True)
    (study / "again").symlink_to(next(first.iterdir()), target_is_directory=True)  # one run, two links
    (study / "loop").symlink_to(study, target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="lmfloss.report.runs"):
        runs = find_runs([study])
    assert len(runs) == 6 and {r.loss for r in runs} == {"ce", "lmf"}
    loops = [r.getMessage() for r in caplog.records if "a loop" in r.getMessage()]
    assert loops == [f"runs folder: {study / 'loop'} links to {os.path.realpath(study)}, a folder above it (a loop); "
                     "not followed"]


# ---------------------------------------------------------------------- 7. navigation
def test_the_contents_list_links_every_dataset_and_model(page):
    out, result = page
    html = (out / "report.html").read_text(encoding="utf-8")
    nav = re.search(r'<nav id="contents".*?</nav>', html, re.S).group(0)
    links = re.findall(r'href="#([^"]+)"', nav)
    for model in result.grid.models:
        anchor = f"cell-ham10000-{model.replace('_', '-')}"
        assert anchor in links and f'<section id="{anchor}" class="cell">' in html
    assert all(f'id="{link}"' in html for link in links)
    assert "position: sticky" in re.search(r"nav#contents \{[^}]*\}", html).group(0)


def test_no_text_of_a_cell_figure_leaves_the_figure(tmp_path):
    """matplotlib's own renderer boxes at build time (the browser test checks the drawn page)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    runs = _study(tmp_path / "runs", losses=(("ce", 0.3), ("focal", 0.3), ("ldam", 0.3), ("bwcce", 0.3),
                                             ("lmf", 0.2)))
    grid = build_grid(find_runs([runs]))
    for maker in (curves_figure, reliability_figure):
        fig = maker(grid, "ham10000", "efficientnet_v2_s").fig
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        frame = fig.bbox
        # matplotlib keeps labels of ticks beyond an axis's view (never drawn): only those in view count
        hidden = set()
        for ax in fig.axes:
            for axis, (lo, hi) in ((ax.xaxis, sorted(ax.get_xlim())), (ax.yaxis, sorted(ax.get_ylim()))):
                for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                    if not lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                        hidden.update({id(tick.label1), id(tick.label2)})
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden]
        assert len(texts) > 10
        for text in texts:
            box = text.get_window_extent(renderer)
            assert (box.x0 >= frame.x0 - 0.5 and box.x1 <= frame.x1 + 0.5 and box.y0 >= frame.y0 - 0.5
                    and box.y1 <= frame.y1 + 0.5), (maker.__name__, text.get_text(), box, frame)


def test_the_multi_label_summary_keeps_its_column_order_on_the_page(tmp_path):
    from report_helpers import make_multilabel_run

    for loss in ("bce", "lmf"):
        for seed in (1, 2, 3):
            make_multilabel_run(tmp_path / "runs", loss=loss, seed=seed)
    result = build_report([tmp_path / "runs"], tmp_path / "r", n_boot=20, figures=False, html=True)
    html = result.html.read_text(encoding="utf-8")
    header = re.search(r'<table id="table-summary-multilabel".*?<thead><tr>(.*?)</tr>', html, re.S).group(1)
    columns = re.findall(r"<th[^>]*>(.*?)</th>", header)
    assert columns[:5] == ["Dataset", "Model", "LMF mAP", "best baseline (val)", "ΔmAP (seeds)"]
    assert len(answers(result.grid, result.comparisons)) == 1 and "test mAP" in html  # its sentence is on mAP


def test_captions_end_in_one_full_stop(page):
    out, _ = page
    html = (out / "report.html").read_text(encoding="utf-8")
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html, re.S)
    assert captions and not [c for c in captions if c.rstrip().endswith("..")]
