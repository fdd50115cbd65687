"""The report asks each dataset's :class:`~lmfloss.task.Task` (crafted runs, nothing trained):
its key, its display words, its headline (selection, curves), its averaged and per-item
metrics; a task registered outside ``src/`` flows through; an unknown one is listed, not fatal."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import pickle
from pathlib import Path

import pytest
import yaml

from lmfloss import rundir
from lmfloss.report import build_report, find_runs
from lmfloss.report.aggregate import best_on_val, build_grid, missing_values
from lmfloss.report.names import DatasetKey, dataset_name
from lmfloss.report.panels import curves_figure
from lmfloss.report.runs import UNREADABLE
from lmfloss.task import MULTICLASS, MULTILABEL, TASKS, register_task
from report_helpers import LABELS, make_multilabel_run, make_run, noisy_preds


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _set_task(run_dir: Path, task: str) -> None:
    """Record ``task`` in a crafted run's config.yaml and report.json."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**config, "task": task}, sort_keys=False))
    if (run_dir / "report.json").is_file():
        report = json.loads((run_dir / "report.json").read_text())
        (run_dir / "report.json").write_text(json.dumps({**report, "task": task}))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """ODIR-5K's two tasks side by side (3 seeds x 2 losses each), and one more multi-label
    dataset whose first run has the metrics.csv of lmfloss <= 0.3."""
    root = tmp_path_factory.mktemp("mixed") / "runs"
    for loss, skill in (("bce", 0.8), ("lmf", 1.2)):
        for seed in (1, 2, 3):
            make_multilabel_run(root, dataset="odir5k", loss=loss, seed=seed, skill=skill)
            make_multilabel_run(root, dataset="chestmnist", loss=loss, seed=seed, skill=skill + seed / 10,
                                metrics_header="old" if seed == 1 else "new")
    for loss, error in (("ce", 0.35), ("lmf", 0.25)):
        for seed in (1, 2, 3):
            make_run(root, dataset="odir5k", model="resnet18", loss=loss, seed=seed,
                     preds=noisy_preds(LABELS, error, seed), val_f1=0.5 + seed / 100)
    return root


def test_one_dataset_s_two_tasks_are_two_datasets_that_know_their_task(mixed):
    grid = build_grid(find_runs([mixed]))
    assert grid.datasets == ["odir5k", "odir5k:multilabel", "chestmnist:multilabel"]
    assert [grid.task(d) for d in grid.datasets] == [MULTICLASS, MULTILABEL, MULTILABEL]
    assert all(isinstance(d, DatasetKey) and d.name in ("odir5k", "chestmnist") for d in grid.datasets)
    assert [dataset_name(d) for d in grid.datasets] == ["ODIR-5K", "ODIR-5K (multi-label)",
                                                        "ChestMNIST (multi-label)"]
    cell = grid.cell("odir5k:multilabel", "resnet18", "lmf")  # the key's text reaches the same cell
    assert cell.task is MULTILABEL and cell.n == 3


def test_results_csv_keeps_the_keys_text_and_names_the_task(mixed, tmp_path):
    build_report([mixed], tmp_path / "report", n_boot=50, figures=False)
    rows = _rows(tmp_path / "report" / "results.csv")
    pairs = {(r["dataset"], r["task"]) for r in rows}
    assert pairs == {("odir5k", "multiclass"), ("odir5k:multilabel", "multilabel"),
                     ("chestmnist:multilabel", "multilabel")}
    for row in rows:
        report = json.loads((Path(row["run_dir"]) / "report.json").read_text())
        odir = (report["test"].get("odir_score") or {}).get("final")
        assert (row["odir_score"] == "") == (odir is None)  # the ODIR score: of multi-label runs only
        if odir is not None:
            assert float(row["odir_score"]) == pytest.approx(odir)
    summary = _rows(tmp_path / "report" / "summary_multilabel.csv")
    assert {(r["dataset"], r["metric"]) for r in summary} == {
        (d, m) for d in ("odir5k:multilabel", "chestmnist:multilabel") for m in ("map", "auc_macro")}
    assert {r["dataset"] for r in _rows(tmp_path / "report" / "summary.csv")} == {"odir5k"}


def test_the_baseline_and_configuration_are_chosen_on_the_tasks_validation_headline(tmp_path, caplog):
    root = tmp_path / "runs"
    # val mAP and val macro-F1 disagree: mAP (multi-label's headline) must decide.
    val = {"bce": (0.9, 0.1), "asl": (0.2, 0.95), "lmf": (0.5, 0.5)}
    for loss in val:
        for seed in (1, 2):
            make_multilabel_run(root, loss=loss, seed=seed)
    make_multilabel_run(root, loss="lmf", seed=1, loss_params={"gamma": 2.0})  # a second LMF configuration
    for run_dir in root.iterdir():
        report = json.loads((run_dir / "report.json").read_text())
        loss = report["config"]["loss"]
        tuned = bool(report["config"]["loss_params"])
        report["val"]["map"], report["val"]["f1_macro"] = (0.95, 0.0) if tuned else val[loss]
        (run_dir / "report.json").write_text(json.dumps(report))
    with caplog.at_level("INFO", logger="lmfloss.report.aggregate"):
        grid = build_grid(find_runs([root]))
    assert best_on_val(grid, "chestmnist:multilabel", "resnet18").loss == "bce"
    chosen = grid.cell("chestmnist:multilabel", "resnet18", "lmf")
    assert chosen.n_configs == 2 and chosen.varied == {"loss_params.gamma": 2.0}
    assert "reporting the best by validation mAP" in caplog.text


def test_curves_plot_the_headline_from_old_and_new_metrics_files(mixed):
    grid = build_grid(find_runs([mixed]))
    fig = curves_figure(grid, "chestmnist:multilabel", "resnet18").fig
    score = fig.axes[1]  # the validation-score panel
    assert score.get_ylabel() == "val mAP"
    curves = [line for line in score.get_lines() if len(line.get_xdata()) == 2]
    # one mean line per loss, over seed 1 (val_accuracy, val_balanced_accuracy) and seeds 2, 3 (val_subset_accuracy)
    assert [line.get_gid() for line in curves] == ["lossc--bce--score", "lossc--lmf--score"]
    for line in curves:
        assert list(line.get_ydata()) == pytest.approx([0.4, 0.45])  # val_map of every run


def test_values_missing_from_a_run_are_the_tasks(mixed, tmp_path):
    root = tmp_path / "runs"
    for seed in (1, 2):
        make_multilabel_run(root, loss="lmf", seed=seed)
    lacking = root / "chestmnist-resnet18-lmf--s2"
    report = json.loads((lacking / "report.json").read_text())
    del report["test"]["map"], report["test"]["ap_per_label"]["hernia"], report["val"]["map"]
    (lacking / "report.json").write_text(json.dumps(report))
    (run, keys), = missing_values(build_grid(find_runs([root])))
    assert run.run_dir == lacking.resolve()
    assert keys == ["test.map", "test.ap_per_label.hernia", "val.map"]


@pytest.fixture
def graded():
    """A task registered from outside ``src/``: multi-class, judged by balanced accuracy."""
    task = register_task(dataclasses.replace(MULTICLASS, name="graded", display="graded",
                                             headline="balanced_accuracy", headline_display="balanced accuracy"))
    yield task
    del TASKS[task.name]


def test_a_registered_task_flows_through_the_report(graded, tmp_path):
    root = tmp_path / "runs"
    for loss, error in (("ce", 0.35), ("lmf", 0.25)):
        for seed in (1, 2, 3):
            run_dir = make_run(root, loss=loss, seed=seed, preds=noisy_preds(LABELS, error, seed))
            _set_task(run_dir, "graded")
    metrics = (root / "ham10000-efficientnet_v2_s-ce--s1" / "metrics.csv")
    metrics.write_text("epoch,train_loss,val_loss,val_accuracy,val_f1_macro,val_balanced_accuracy,lr,seconds\n"
                       "1,1.0,1.0,0.5,0.5,0.61,0.0001,1.0\n")
    result = build_report([root], tmp_path / "report", n_boot=50, figures=False, html=True)
    assert result.grid.datasets == ["ham10000:graded"] and result.grid.task("ham10000:graded") is graded
    text = (tmp_path / "report" / "report.md").read_text()
    assert "HAM-10K (graded)" in text and "Table 2." in text  # the per-class tables: its targets are indices
    assert [r["dataset"] for r in _rows(tmp_path / "report" / "summary.csv")] == ["ham10000:graded"]
    fig = curves_figure(result.grid, "ham10000:graded", "efficientnet_v2_s").fig
    score = fig.axes[1]  # the validation-score panel
    assert score.get_ylabel() == "val balanced accuracy"
    assert [list(line.get_ydata()) for line in score.get_lines()][0] == [0.61]


def test_a_run_of_a_task_this_installation_lacks_is_listed_not_fatal(tmp_path):
    root = tmp_path / "runs"
    for loss in ("ce", "lmf"):
        make_run(root, loss=loss, seed=1)
    stranger = make_run(root, loss="ce", seed=2)
    _set_task(stranger, "ordinal")
    runs = find_runs([root])
    (unknown,) = [r for r in runs if r.status == UNREADABLE]
    assert unknown.run_dir == stranger.resolve() and "ordinal" in unknown.problem
    build_report([root], tmp_path / "report", n_boot=50, figures=False)
    text = (tmp_path / "report" / "report.md").read_text()
    assert f"`{stranger.resolve()}`: unknown task:" in text


def test_a_dataset_key_is_its_text_and_keeps_its_task():
    key = DatasetKey("odir5k", MULTILABEL)
    assert key == "odir5k:multilabel" and hash(key) == hash("odir5k:multilabel")
    assert DatasetKey("odir5k", "multiclass") == "odir5k" and DatasetKey("odir5k").task is MULTICLASS
    for copied in (copy.deepcopy(key), pickle.loads(pickle.dumps(key))):
        assert copied == key and copied.name == "odir5k" and copied.task is MULTILABEL
    assert dataset_name(key) == "ODIR-5K (multi-label)" and dataset_name("odir5k@abc") == "ODIR-5K (data abc)"
    assert json.dumps({"dataset": key}) == '{"dataset": "odir5k:multilabel"}'


# ---- a multi-label run written by lmfloss 0.3 (before lmfloss.task) -------------------------
RUN_03 = Path(__file__).resolve().parent / "fixtures" / "runs-0.3" / "synthetic-multilabel-bce"


def test_a_multilabel_run_of_lmfloss_0_3_still_reads(tmp_path):
    """0.3's multi-label metrics.csv called its subset accuracy val_accuracy and kept an empty
    val_balanced_accuracy; its report.json and predictions.csv are today's."""
    history = rundir.read_metrics(RUN_03)
    raw = list(csv.DictReader((RUN_03 / "metrics.csv").open()))
    assert [r["val_subset_accuracy"] for r in history] == [float(r["val_accuracy"]) for r in raw]
    assert all("val_accuracy" not in r and "val_balanced_accuracy" not in r for r in history)
    (run,) = find_runs([RUN_03])
    assert run.task.name == "multilabel"
    report = json.loads((RUN_03 / "report.json").read_text())
    result = build_report([RUN_03], tmp_path / "report", n_boot=50)
    rows = list(csv.DictReader((tmp_path / "report" / "results.csv").open()))
    assert len(rows) == 1 and float(rows[0]["map"]) == pytest.approx(report["test"]["map"], abs=1e-4)
    assert result is not None


def test_a_multilabel_cell_still_training_says_so_in_every_table(tmp_path):
    # a tuning study read while trials train: the per-label tables said "missing" where the
    # performance table said "unfinished"
    from lmfloss.report.multilabel import main_table, per_label_table

    root = tmp_path / "runs"
    make_multilabel_run(root, loss="bce", seed=1)
    make_multilabel_run(root, loss="asl", seed=1, finished=False)
    grid = build_grid(find_runs([root]))
    main = main_table(grid, "resnet18", n_boot=10)
    asl = next(row for row in main.rows if row[1] == "ASL")
    assert set(asl[2:8]) == {"unfinished (1 run)"}  # the six metric columns
    per_label = per_label_table(grid, "resnet18", "auc_per_label")
    column = per_label.columns.index("ASL")
    assert {row[column] for row in per_label.rows} == {"unfinished (1 run)"}
