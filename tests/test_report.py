"""``lmfloss report`` on crafted run directories: numbers equal report.json, gaps shown."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from lmfloss.cli import main
from lmfloss.errors import LmflossError
from lmfloss.report import build_report, find_runs, infer_settings, read_predictions
from lmfloss.report.aggregate import build_grid
from lmfloss.report.figures import fig1_data, fig4_data
from lmfloss.report.names import DatasetKey, dataset_name, model_name
from lmfloss.report.render import latex_escape
from lmfloss.report.tables import hparam_table, main_table, per_class_table
from report_helpers import CLASSES, LABELS, make_run, noisy_preds


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture()
def grid_runs(tmp_path: Path) -> Path:
    """HAM x {effnet, resnet50} x {ce, lmf} x 2 seeds, nested like sweep folders, with gaps:
    resnet50/ce seed 2 unfinished, ISIC only has effnet/ce (so ISIC's lmf is missing)."""
    root = tmp_path / "runs"
    for model in ("efficientnet_v2_s", "resnet50"):
        for loss, err in (("ce", 0.35), ("lmf", 0.15)):
            for seed in (1, 2):
                finished = not (model == "resnet50" and loss == "ce" and seed == 2)
                make_run(root / f"sweep-{model}" / "trials", model=model, loss=loss, seed=seed,
                         preds=noisy_preds(LABELS, err, seed + 10 * len(loss)), finished=finished)
    make_run(root / "isic", dataset="isic2019", loss="ce", seed=1)
    (root / "sweep-resnet50" / "config.yaml").write_text("sampler: grid\nspace: {}\n")  # not a run
    return root


def test_find_runs_nested_and_unfinished(grid_runs: Path):
    runs = find_runs([grid_runs])
    assert len(runs) == 9
    unfinished = [r for r in runs if not r.finished]
    assert [(r.model, r.loss, r.seed) for r in unfinished] == [("resnet50", "ce", 2)]
    assert unfinished[0].epochs_done == 1
    lmf = next(r for r in runs if r.loss == "lmf")
    assert (lmf.alpha, lmf.beta) == (1.0, 1.0)


def test_single_run_dir_and_broken_report(tmp_path: Path):
    run = make_run(tmp_path / "runs", loss="ce", seed=1)
    assert [r.run_dir for r in find_runs([run])] == [run.resolve()]
    broken = make_run(tmp_path / "runs", loss="lmf", seed=1)
    (broken / "report.json").write_text("{not json")
    result = build_report([tmp_path / "runs"], tmp_path / "out", n_boot=20, figures=False)
    assert sorted(r.status for r in result.runs) == ["finished", "invalid"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "cannot be read" in md and str(broken.resolve()) in md
    assert result.grid.cell("ham10000", "efficientnet_v2_s", "lmf").status == "unfinished"


def test_find_runs_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(LmflossError, match="no run directories"):
        find_runs([tmp_path / "empty"])


def test_results_csv_equals_report_json(grid_runs: Path, tmp_path: Path):
    result = build_report([grid_runs], tmp_path / "out", n_boot=50, figures=False)
    rows = _read_csv(tmp_path / "out" / "results.csv")
    assert len(rows) == len(result.runs) == 9
    for row in rows:
        report_path = Path(row["run_dir"]) / "report.json"
        if row["status"] == "unfinished":
            assert not report_path.exists() and row["f1_macro"] == ""
            continue
        test = json.loads(report_path.read_text())["test"]
        for metric in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
            assert float(row[metric]) == test[metric]
        assert float(row["f1_macro_ci95_lo"]) == test["f1_macro_ci95"][0]
        assert row["setting"] == ("setting-1+setting-2+setting-3" if row["loss"] == "lmf" else "")


def test_main_table_values_best_and_gaps(grid_runs: Path):
    grid = build_grid(find_runs([grid_runs]))
    table = main_table(grid, "efficientnet_v2_s", n_boot=50)
    ham_lmf = next(r for r in table.rows if r[1] == "LMF" and table.rows.index(r) < 3)
    f1 = [json.loads(p.read_text())["test"]["f1_macro"]
          for p in sorted(grid_runs.glob("sweep-efficientnet_v2_s/trials/*lmf*/report.json"))]
    assert ham_lmf[5] == f"{100 * np.mean(f1):.2f} ± {100 * np.std(f1, ddof=1):.2f}"
    # LMF (15% noise) beats CE (35%) in every metric column within HAM-10K: marked best.
    i = table.rows.index(ham_lmf)
    assert {(i, j) for j in (2, 3, 4, 5)} <= table.best
    # ISIC-2019 has a CE run on EfficientNetV2 but no LMF run: missing, not averaged.
    isic = [r for r in table.rows if r[0] == "ISIC-2019"][0]
    isic_lmf = table.rows[table.rows.index(isic) + 1]
    assert isic_lmf[1] == "LMF" and isic_lmf[2] == "missing"
    assert "(n=1)" in isic[2]  # one seed where the others have two
    md = table.to_markdown()
    assert f"**{ham_lmf[5]}**" in md and "| missing |" in md


def test_partial_seeds_and_unfinished_are_flagged(grid_runs: Path):
    grid = build_grid(find_runs([grid_runs]))
    table = main_table(grid, "resnet50", n_boot=50)
    ce = next(r for r in table.rows if r[1] == "CCE")
    report = json.loads(next(grid_runs.glob("sweep-resnet50/trials/*ce*s1/report.json")).read_text())
    assert ce[2] == f"{100 * report['test']['accuracy']:.2f} (n=1; 1 unfinished)"
    only_unfinished = grid_runs.parent / "u"
    make_run(only_unfinished, model="resnet50", loss="focal", finished=False)
    grid = build_grid(find_runs([grid_runs, only_unfinished]))
    focal = next(r for r in main_table(grid, "resnet50", n_boot=20).rows if r[1] == "Focal")
    assert focal[2] == "unfinished (1 run)"


def test_latex_and_csv_render(grid_runs: Path, tmp_path: Path):
    build_report([grid_runs], tmp_path / "out", n_boot=30, figures=False)
    tex = (tmp_path / "out" / "tables" / "table2_efficientnet_v2_s.tex").read_text()
    assert tex.count(r"\begin{tabular}") == 1 and r"\bottomrule" in tex
    assert r"\textbf{" in tex and r"$\pm$" in tex and "±" not in tex
    assert tex.count("{") == tex.count("}")
    assert r"\caption{Test performance" in tex and r"\label{tab:table2_efficientnet_v2_s}" in tex
    assert latex_escape("a_b & 50% — p<0.001 ±") == r"a\_b \& 50\% --- p$<$0.001 $\pm$"
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    for line in body.strip().splitlines():
        assert line.endswith(r"\\") and line.count(" & ") == 7  # 8 columns incl. the p column
    rows = list(csv.reader((tmp_path / "out" / "tables" / "table2_efficientnet_v2_s.csv").open()))
    assert rows[0][:6] == ["Dataset", "Loss", "Accuracy", "Precision", "Recall", "Macro F1"]
    assert not any("**" in cell for row in rows for cell in row)


def test_paired_tests_in_report(grid_runs: Path, tmp_path: Path):
    result = build_report([grid_runs], tmp_path / "out", n_boot=200, figures=False)
    tests = _read_csv(tmp_path / "out" / "paired_tests.csv")
    by_model = {t["model"]: t for t in tests}
    assert set(by_model) == {"efficientnet_v2_s", "resnet50"}
    # resnet50: only seed 1 has both CE and LMF finished; effnet pairs both seeds.
    assert by_model["resnet50"]["n_pairs"] == "1" and by_model["efficientnet_v2_s"]["n_pairs"] == "2"
    runs = {(r.model, r.loss, r.seed): r for r in result.runs}
    expected = np.mean([
        f1_score(LABELS, runs[("efficientnet_v2_s", "lmf", s)].predictions().preds, average="macro")
        - f1_score(LABELS, runs[("efficientnet_v2_s", "ce", s)].predictions().preds, average="macro")
        for s in (1, 2)
    ])
    assert float(by_model["efficientnet_v2_s"]["delta_f1_images"]) == pytest.approx(expected, abs=1e-12)
    assert float(by_model["efficientnet_v2_s"]["delta_f1_seeds"]) == pytest.approx(expected, abs=1e-12)
    # 15% vs 35% label noise on 200 images: a real difference over images.
    assert float(by_model["efficientnet_v2_s"]["p_images"]) < 0.01
    seed_deltas = [float(d) for d in by_model["efficientnet_v2_s"]["seed_deltas"].split()]
    assert np.mean(seed_deltas) == pytest.approx(expected, abs=1e-12)
    # 2 seeds: no seed-level t-test and no two-level bootstrap -- an empty cell, not a number.
    for model in ("efficientnet_v2_s", "resnet50"):
        assert by_model[model]["p_seeds_t"] == "" and by_model[model]["p_seeds_and_images"] == ""
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Paired tests over seeds" in md and "missing (no run)" in md and "unfinished" in md
    assert "(n=2 < 3 seeds)" in md


def test_index_labels_read_like_names(tmp_path: Path):
    preds = noisy_preds(LABELS, 0.2, 0)
    a = read_predictions(make_run(tmp_path, preds=preds, name="a") / "predictions.csv", CLASSES)
    b = read_predictions(make_run(tmp_path, preds=preds, index_labels=True, name="b") / "predictions.csv", CLASSES)
    assert np.array_equal(a.preds, preds) and np.array_equal(b.preds, preds)
    assert np.array_equal(a.labels, b.labels)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label,pred\nx,zebra,nv\n")
    with pytest.raises(ValueError, match="'zebra' is neither a class name"):
        read_predictions(bad, CLASSES)


def test_table6_selects_on_validation_not_test(tmp_path: Path):
    root = tmp_path / "runs"
    # (1.0, 2.0): better on test, worse on validation; (1.0, 0.5): the reverse.
    make_run(root, loss="lmf", loss_params={"alpha": 1.0, "beta": 2.0},
             preds=noisy_preds(LABELS, 0.05, 1), val_f1=0.60)
    make_run(root, loss="lmf", loss_params={"alpha": 1.0, "beta": 0.5},
             preds=noisy_preds(LABELS, 0.30, 2), val_f1=0.70)
    grid = build_grid(find_runs([root]))
    table = hparam_table(grid, compare_paper=True)
    assert table.rows[0][2] == "1.0 [paper 1.0]"
    assert table.rows[1][2] == "0.5 [paper 2.0]"
    # Tables 2-4 report the same validation-selected configuration, and say so.
    main = main_table(grid, "efficientnet_v2_s", n_boot=20)
    report = json.loads(next(root.glob("*beta0.5*/report.json")).read_text())
    assert main.rows[0][5] == f"{100 * report['test']['f1_macro']:.2f}"
    assert "HAM-10K / LMF: 2 configurations ran; shown is the best by validation macro-F1 " \
        "(loss_params.beta=0.5)." in main.notes


def test_table6_says_a_tuned_configuration_was_chosen_from_its_trials(tmp_path: Path):
    root = tmp_path / "runs"
    plain = make_run(root / "plain", loss="lmf", loss_params={"alpha": 1.0, "beta": 1.0})
    assert hparam_table(build_grid(find_runs([root])), compare_paper=False).rows[0][2] == "1.0 (only one tried)"
    # a confirmation run of a tuning sweep: one configuration here, chosen from 8 trials
    record = {"study": "tune-x", "trials_per_space": 8, "sampler": "random", "seed": 1,
              "spaces": [{"label": "lmf", "complete": 8, "failed": 0, "chosen": None,
                          "searched": {"loss_params.alpha": "float in [0.25, 2]"}}]}
    (plain / "sweep.json").write_text(json.dumps({"study": "x", "trial": 0, "params": {}, "tuning": record}))
    table = hparam_table(build_grid(find_runs([root])), compare_paper=False)
    assert table.rows[0][2] == "1.0 (chosen from 8 tuning trials)"
    assert table.rows[1][2] == "1.0 (fixed in tuning)"  # beta was not searched


def test_table6_says_when_the_only_configuration_was_the_only_one_to_finish(tmp_path: Path):
    root = tmp_path / "runs"
    make_run(root, loss="lmf", loss_params={"alpha": 1.0, "beta": 1.0})
    make_run(root, loss="lmf", loss_params={"alpha": 0.5, "beta": 2.0}, finished=False)  # a trial still training
    make_run(root, loss="lmf", loss_params={"alpha": 2.0, "beta": 0.5}, finished=False)
    table = hparam_table(build_grid(find_runs([root])), compare_paper=False)
    assert [table.rows[0][2], table.rows[1][2]] == ["1.0 (only one of 3 finished)", "1.0 (only one of 3 finished)"]


def test_table6_prints_a_sampled_value_to_three_significant_digits(tmp_path: Path):
    # a random sampler draws alpha = 0.8234567; the table shows what a reader can use
    root = tmp_path / "runs"
    make_run(root, loss="lmf", loss_params={"alpha": 0.8234567, "beta": 1.7654321})
    table = hparam_table(build_grid(find_runs([root])), compare_paper=False)
    assert table.rows[0][2].split()[0] == "0.823"
    assert table.rows[1][2].split()[0] == "1.77"


def test_hparam_settings_and_fig4(tmp_path: Path):
    assert infer_settings(0.7, 0.7) == ["setting-1"]
    assert infer_settings(1.0, 1.5) == ["setting-2"]
    assert infer_settings(0.5, 1.0) == ["setting-3"]
    assert infer_settings(1.0, 1.0) == ["setting-1", "setting-2", "setting-3"]
    assert infer_settings(0.5, 2.0) == []
    root = tmp_path / "runs"
    f1 = {}
    for k, (a, b) in enumerate([(0.5, 0.5), (2.0, 2.0), (1.0, 0.5), (1.0, 2.0), (1.0, 1.0)]):
        run = make_run(root, loss="lmf", loss_params={"alpha": a, "beta": b},
                       preds=noisy_preds(LABELS, 0.1 + 0.05 * k, k))
        f1[(a, b)] = json.loads((run / "report.json").read_text())["test"]["f1_macro"]
    data = fig4_data(find_runs([root]))[("ham10000", "efficientnet_v2_s")]
    s1 = [f1[(0.5, 0.5)], f1[(2.0, 2.0)], f1[(1.0, 1.0)]]
    assert data["setting-1"][0] == pytest.approx(np.mean(s1), abs=1e-12)
    assert data["setting-1"][1] == pytest.approx(np.std(s1, ddof=1), abs=1e-12)  # the page's one spread: SD
    assert data["setting-2"][2] == 3 and data["setting-3"][2] == 1


def test_compare_paper_and_figures(tmp_path: Path):
    root = tmp_path / "runs"
    for model in ("efficientnet_v2_s", "resnet50"):
        for loss in ("ce", "lmf"):
            make_run(root, model=model, loss=loss, preds=noisy_preds(LABELS, 0.2, len(model + loss)))
    result = build_report([root], tmp_path / "out", compare_paper=True, n_boot=30)
    out = tmp_path / "out"
    table = (out / "tables" / "table2_efficientnet_v2_s_vs_paper.csv").open()
    rows = list(csv.reader(table))
    ham_lmf = next(r for r in rows if r[1] == "LMF")
    run = next(r for r in result.runs if (r.model, r.loss) == ("efficientnet_v2_s", "lmf"))
    measured = run.test("f1_macro")
    j = rows[0].index("Macro F1")
    assert ham_lmf[j] == f"{100 * measured:.2f}" and ham_lmf[j + 1] == "84.61"
    assert ham_lmf[j + 2] == f"{100 * measured - 84.61:+.2f}"
    per_class = list(csv.reader((out / "tables" / "table5_efficientnet_v2_s_vs_paper.csv").open()))
    akiec = next(r for r in per_class if r[1] == "akiec")
    assert akiec[2] == "229" and akiec[per_class[0].index("LMF (paper)")] == "79.57"
    for stem in ("fig1_macro_f1", "fig2_class_distribution"):
        for suffix in (".png", ".pdf"):
            assert (out / "figures" / f"{stem}{suffix}").stat().st_size > 1000
    assert (out / "figures" / "fig2_class_distribution.png").read_bytes()[:4] == b"\x89PNG"
    data = fig1_data(result.grid)
    values = [r.test("f1_macro") for r in result.runs if r.loss == "ce"]
    assert data[("ham10000", "ce")][0] == pytest.approx(np.mean(values), abs=1e-12)
    assert data[("ham10000", "ce")][1] == 0.0  # one seed per architecture: no SD over seeds to pool
    md = (out / "report.md").read_text()
    assert "Beside the paper" in md and "figures/fig1_macro_f1.png" in md
    assert re.search(r"\| HAM-10K \| CCE \| .* \| 81\.85 \|", md)
    # The headline row: LMF vs the best baseline, with the paired p-value and seed counts.
    lmf = run.test("f1_macro")
    assert f"| HAM-10K | EfficientNetV2 | {100 * lmf:.2f} | CCE " in md


def test_cli_report(grid_runs: Path, tmp_path: Path, capsys):
    out = tmp_path / "cli-out"
    assert main(["report", str(grid_runs), "--out", str(out), "--bootstrap", "20", "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "9 runs (8 finished)" in printed and (out / "report.md").is_file()
    assert main(["report", str(tmp_path / "absent"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lmfloss report: error: runs folder") and "absent" in err
    assert main(["report", str(tmp_path / "absent"), "--out", str(tmp_path / "never")]) == 2
    assert not (tmp_path / "never").exists()
    assert main(["report", str(grid_runs), "--out", str(out), "--bootstrap", "0"]) == 2
    assert "n_boot must be >= 1, got 0" in capsys.readouterr().err


def test_per_class_table_values_and_row_best(grid_runs: Path):
    grid = build_grid(find_runs([grid_runs]))
    table = per_class_table(grid, "efficientnet_v2_s")
    ham = [r for r in table.rows[:3]]
    assert [r[1] for r in ham] == CLASSES and [r[2] for r in ham] == ["229", "360", "4693"]
    reports = {
        loss: [json.loads(p.read_text())["test"]["f1_per_class"]
               for p in sorted(grid_runs.glob(f"sweep-efficientnet_v2_s/trials/*-{loss}-*/report.json"))]
        for loss in ("ce", "lmf")
    }
    for i, row in enumerate(ham):
        means = {}
        for loss, column in (("ce", 3), ("lmf", 4)):
            values = [r[row[1]] for r in reports[loss]]
            means[column] = np.mean(values)
            assert row[column] == f"{100 * np.mean(values):.2f} ± {100 * np.std(values, ddof=1):.2f}"
        best = max(means, key=means.get)
        assert (i, best) in table.best and (i, 7 - best) not in table.best  # one winner per class


def test_sweep_setting_tag_and_duplicate_seeds(tmp_path: Path):
    root = tmp_path / "runs"
    run = make_run(root / "a", loss="lmf", loss_params={"alpha": 1.0, "beta": 1.0}, seed=1)
    # lmfloss sweep writes the trial's tags into sweep.json; a recorded setting wins.
    (run / "sweep.json").write_text(json.dumps({"study": "hp", "trial": 3, "params": {},
                                                "tags": {"setting": "setting-2"}, "setting": "setting-2"}))
    # The same run copied into a second sweep folder counts once, not as n=2.
    make_run(root / "b", loss="lmf", loss_params={"alpha": 1.0, "beta": 1.0}, seed=1)
    runs = find_runs([root])
    assert sorted(r.settings for r in runs) == [["setting-1", "setting-2", "setting-3"], ["setting-2"]]
    cell = build_grid(runs).cell("ham10000", "efficientnet_v2_s", "lmf")
    assert cell.n == 1 and cell.seeds == [1]


def test_cam_summary_joined_to_its_run(tmp_path: Path):
    root = tmp_path / "runs"
    make_run(root, loss="lmf", seed=4, name="lmf-s4")
    cam = root / "cam-out"
    cam.mkdir()
    (cam / "cam_summary.csv").write_text(
        "run,target,class,n_images,n_scored,accuracy,pointing_hit_rate,energy_in_box,chance,"
        "energy_over_chance,iou_at_half_max,best_iou\n"
        "lmf-s4,pred,akiec,4,4,0.5,0.25,0.3,0.1,3.0,0.2,0.4\n"
        "lmf-s4,pred,all,8,8,0.5,0.625,0.41,0.1,4.1,0.2,0.45\n"
    )
    build_report([root], tmp_path / "out", n_boot=20, figures=False)
    md = (tmp_path / "out" / "report.md").read_text()
    # an older cam_summary.csv: the columns it lacks (layer, shuffled baseline, ROAD) are dashes
    assert "| HAM-10K | EfficientNetV2 | LMF | 4 | pred | — | 8 | 0.625 | — | 0.41 | 4.1 | — |" in md
    assert "| 0.25 |" not in md  # per-class rows stay in the cam output


def test_other_models_and_datasets_keep_their_names(tmp_path: Path):
    root = tmp_path / "runs"
    make_run(root, dataset="retinamnist", model="resnet18", loss="cb")
    make_run(root, dataset="retinamnist", model="resnet18", loss="focal")  # alpha="margins"
    result = build_report([root], tmp_path / "out", n_boot=20, figures=False)
    table = next(t for t in result.tables if t.name == "table_main_resnet18")
    assert table.title == "Test performance of each loss on ResNet-18 (percent)"
    assert table.rows[0][0] == "RetinaMNIST"
    # MedMNIST's published spelling, its sizes said; a name it does not know stays as it is
    keys = ("breastmnist_64", DatasetKey("chestmnist", "multilabel"), "breastmnist_65", "mydata")
    assert [dataset_name(d) for d in keys] == \
        ["BreastMNIST (64 px)", "ChestMNIST (multi-label)", "breastmnist_65", "mydata"]
    assert [model_name(m) for m in ("resnet18", "convnext_tiny")] == ["ResNet-18", "convnext_tiny"]
    assert [row[1] for row in table.rows] == ["Focal", "CB"]
    focal = next(r for r in _read_csv(tmp_path / "out" / "results.csv") if r["loss"] == "focal")
    assert focal["alpha"] == "" and focal["setting"] == ""
    build_report([root], tmp_path / "cmp", n_boot=20, figures=False, compare_paper=True)
    assert "nothing to compare" in (tmp_path / "cmp" / "report.md").read_text()
    assert (tmp_path / "out" / "tables" / "table_main_resnet18.tex").is_file()


def test_fig1_with_one_architecture_spreads_over_seeds(tmp_path: Path):
    root = tmp_path / "runs"
    for seed in (1, 2, 3):
        make_run(root, dataset="breastmnist", model="resnet18", loss="ce", seed=seed)
    runs = find_runs([root])
    values = [r.test("f1_macro") for r in runs]
    mean, sd, n = fig1_data(build_grid(runs))[("breastmnist", "ce")]
    assert mean == pytest.approx(np.mean(values), abs=1e-12) and n == 3
    assert sd == pytest.approx(np.std(values, ddof=1), abs=1e-12)  # the tables' spread, not the paper's MAD


def test_report_lists_a_run_with_a_cp1252_config_as_unreadable(tmp_path, capsys):
    runs = tmp_path / "runs"
    (runs / "bad").mkdir(parents=True)
    (runs / "bad" / "config.yaml").write_bytes("dataset: csv\nnote: Übel\n".encode("cp1252"))
    (runs / "started").mkdir()
    (runs / "started" / "config.yaml").write_text("dataset: synthetic\nmodel: resnet18\nloss: ce\n")
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out), "--no-figures", "--quiet"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    text = (out / "report.md").read_text()
    assert "2 run directories: 0 finished" in text
    after = text[text.index("whose config.yaml cannot be read"):].splitlines()[1:]
    listed = [line for line in after[: after.index("## Tables")] if line.startswith("- ")]
    assert len(listed) == 1, listed  # the unfinished run is not unreadable
    assert f"`{runs / 'bad'}`" in listed[0] and "not UTF-8" in listed[0]
    assert "synthetic / ResNet-18 / CCE: unfinished (1 run(s)" in text


def test_a_configuration_that_never_finished_is_not_counted_as_one_chosen_among(tmp_path: Path):
    # a tuning study's folder: two trials finished, one stopped on a full disk (config.yaml only)
    root = tmp_path / "runs"
    make_run(root, loss="lmf", loss_params={"alpha": 1.0, "beta": 2.0}, val_f1=0.6)
    make_run(root, loss="lmf", loss_params={"alpha": 1.0, "beta": 0.5}, val_f1=0.7)
    make_run(root, loss="lmf", loss_params={"alpha": 1.0, "beta": 1.5}, finished=False)
    grid = build_grid(find_runs([root]))
    cell = grid.cell(grid.datasets[0], grid.models[0], "lmf")
    assert (cell.n_configs, cell.n_unfinished_configs) == (2, 1)
    main = main_table(grid, grid.models[0], n_boot=20)
    assert "HAM-10K / LMF: 2 configurations finished (1 more did not: not chosen among); shown is the best " \
        "by validation macro-F1 (loss_params.beta=0.5)." in main.notes
    # one finished: it is shown, and the note still says what did not finish
    (next(root.glob("*beta2.0*")) / "report.json").unlink()
    grid = build_grid(find_runs([root]))
    main = main_table(grid, grid.models[0], n_boot=20)
    assert "HAM-10K / LMF: 1 configuration finished (2 more did not: not chosen among); shown is that one " \
        "(loss_params.beta=0.5)." in main.notes, main.notes


def test_the_external_table_says_what_drop_overlap_left_out(tmp_path: Path):
    from lmfloss.report.external import external_rows, external_table

    root = tmp_path / "runs"
    for seed in (1, 2):
        run = make_run(root, loss="lmf", seed=seed)
        left_out = {"dropped_images": 7, "dropped_groups": 3, "shared_images": {"train": 5, "val": 1, "test": 0},
                    "examples": ["ISIC_0024306"], "same_id_other_image": 0} if seed == 1 else None
        (run / "eval-site-b.json").write_text(json.dumps(
            {"external": "site-b", "dataset": "csv", "n": 50, "f1_macro": 0.4, "f1_macro_ci95": [0.3, 0.5],
             "overlap_left_out": left_out}))
    runs = find_runs([root])
    assert [row["left_out_overlap"] for row in external_rows(runs)] == [7, 0]
    notes = external_table(runs).notes
    assert "site-b: 7 image(s) left out for 1 of its 2 run(s): images the run had seen and the rest of their " \
        "patients or lesions (evaluate --drop-overlap)." in notes
