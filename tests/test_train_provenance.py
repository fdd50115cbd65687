"""``report.json``'s ``software``: the lmfloss commit (only of an lmfloss checkout, dirty or
not), the library versions and the device, shown in the model card and report's results.csv."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from lmfloss import __version__
from lmfloss.modelcard import MODEL_CARD, NOT_RECORDED, model_card_text
from lmfloss.report import build_report
from lmfloss.train.provenance import device_name, software, source_commit
from report_helpers import make_run

REPO = Path(__file__).resolve().parents[1]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def _checkout(folder: Path) -> Path:
    """A minimal lmfloss-shaped source tree."""
    (folder / "src" / "lmfloss").mkdir(parents=True)
    (folder / "src" / "lmfloss" / "__init__.py").write_text("x = 1\n")
    (folder / "pyproject.toml").write_text('[project]\nname = "lmfloss"\n')
    return folder


@needs_git
def test_commit_of_this_checkout_is_git_head():
    if not (REPO / ".git").exists():
        pytest.skip("the tests do not run from a git checkout")
    commit, dirty = source_commit(REPO)
    assert commit == _git(REPO, "rev-parse", "HEAD")
    assert dirty == bool(_git(REPO, "status", "--porcelain", "--untracked-files=no", "--", "src"))


@needs_git
def test_uncommitted_source_edits_are_dirty(tmp_path):
    repo = _checkout(tmp_path / "lmfloss")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    head = _git(repo, "rev-parse", "HEAD")
    assert source_commit(repo) == (head, False)
    (repo / "notes.txt").write_text("untracked, outside src\n")
    (repo / "README.md").write_text("an edit outside src does not change what trains\n")
    assert source_commit(repo) == (head, False)
    (repo / "src" / "lmfloss" / "__init__.py").write_text("x = 2\n")
    assert source_commit(repo) == (head, True)


@needs_git
def test_a_package_inside_someone_elses_repository_has_no_commit(tmp_path):
    # e.g. site-packages in a virtual environment inside the user's own project
    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "-q")
    (project / "a.txt").write_text("a\n")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "theirs")
    nested = _checkout(project / ".venv" / "lib" / "lmfloss-copy")
    assert source_commit(nested) == (None, None)
    assert source_commit(tmp_path / "nowhere") == (None, None)


def test_software_names_versions_and_device():
    record = software("cpu")
    assert record["lmfloss"] == __version__ and record["torch"] == torch.__version__
    assert record["source"] == ("git checkout" if record["git_commit"] else "source tree")  # the tests run from src
    assert record["device"] == "cpu" and record["device_name"] == device_name("cpu") and record["device_name"]
    assert record["torch_threads"] == torch.get_num_threads()
    assert json.loads(json.dumps(record)) == record  # it goes into report.json as it is


def test_card_and_results_csv_show_what_trained_the_run(tmp_path):
    runs = tmp_path / "runs"
    commit = "0123456789abcdef0123456789abcdef01234567"
    records = {"clean": {"git_commit": commit, "git_dirty": False}, "dirty": {"git_commit": commit, "git_dirty": True},
               "wheel": {"source": "installed package", "git_commit": None, "git_dirty": None},
               "archive": {"source": "source tree", "git_commit": None, "git_dirty": None}, "old": None}
    for seed, (name, extra) in enumerate(records.items(), start=1):
        run = make_run(runs, seed=seed, name=name)
        report = json.loads((run / "report.json").read_text())
        if extra is not None:
            report["software"] = {"lmfloss": "9.9", "python": "3.11.9", "torch": "2.14.1", "torchvision": "0.29.1",
                                  "device": "cpu", "device_name": "Some CPU", "torch_threads": 1, **extra}
        (run / "report.json").write_text(json.dumps(report))
    build_report([runs], tmp_path / "report", n_boot=10, figures=False)
    rows = {Path(r["run_dir"]).name: r for r in csv.DictReader((tmp_path / "report" / "results.csv").open())}
    assert rows["clean"]["lmfloss_commit"] == commit and rows["clean"]["lmfloss_version"] == "9.9"
    assert rows["dirty"]["lmfloss_commit"] == commit + "+dirty"
    assert rows["wheel"]["lmfloss_commit"] == "" and rows["old"]["lmfloss_version"] == ""

    def trained_by(name: str) -> str:
        report = json.loads((runs / name / "report.json").read_text())
        return next(line for line in model_card_text(report, {}).splitlines() if line.startswith("| trained by |"))

    assert trained_by("clean") == (f"| trained by | lmfloss 9.9 (commit {commit[:12]}), torch 2.14.1, Python 3.11.9, "
                                   "on cpu (Some CPU), 1 torch thread |")
    assert f"commit {commit[:12]} with uncommitted changes" in trained_by("dirty")
    assert "(installed package)" in trained_by("wheel") and "(source tree)" in trained_by("archive")
    assert trained_by("old") == f"| trained by | {NOT_RECORDED} |"


@pytest.mark.slow
def test_a_trained_run_records_its_software(imagefolder_run):
    report = json.loads((imagefolder_run / "report.json").read_text())
    record = report["software"]
    assert record["torch"] == torch.__version__ and record["device"] == "cpu"
    assert (record["git_commit"], record["git_dirty"]) == source_commit()
    assert "| trained by | lmfloss " in (imagefolder_run / MODEL_CARD).read_text()


def test_software_says_where_the_code_came_from(tmp_path, monkeypatch):
    from lmfloss import extras

    monkeypatch.setattr(extras, "_CHECKOUT", _checkout(tmp_path / "unpacked-archive"))  # no .git
    assert (software("cpu")["source"], software("cpu")["git_commit"]) == ("source tree", None)
    monkeypatch.setattr(extras, "_CHECKOUT", tmp_path / "venv" / "lib" / "python3.11" / "site-packages")
    assert (software("cpu")["source"], software("cpu")["git_commit"]) == ("installed package", None)
