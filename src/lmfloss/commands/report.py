"""``lmfloss report``: tables and figures from run directories (never re-trains)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the lmfloss parser."""
    parser = subparsers.add_parser(
        "report",
        help="tables (Markdown, CSV, LaTeX) and figures from run directories",
        description=(
            "Read run directories (found recursively by config.yaml under each RUNS_DIR) and "
            "write the paper's Tables 2-6 and Figs. 1, 2, 4, results.csv, bootstrap intervals "
            "and paired bootstrap tests of LMF against each baseline, tied together in report.md. "
            "Missing and unfinished runs are shown as such."
        ),
    )
    parser.add_argument("runs_dirs", nargs="+", metavar="RUNS_DIR", help="folder(s) holding run directories")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--compare-paper",
        action="store_true",
        help="put the paper's published numbers (Tables 2-6) beside the measured ones",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="B",
                        help="bootstrap resamples for intervals and paired tests (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG/PDF/SVG figures")
    parser.add_argument("--html", action="store_true",
                        help="also write report.html: one self-contained page (an answer sentence per dataset x "
                             "model, tables, figures, curves per dataset x model with mean +/- SD over seeds, "
                             "confusion and reliability diagrams, every run, Grad-CAM), viewable offline")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    parser.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from lmfloss.report import build_report  # deferred: `lmfloss --help` stays instant (cli.py)

    result = build_report(
        args.runs_dirs,
        args.out,
        compare_paper=args.compare_paper,
        n_boot=args.bootstrap,
        seed=args.seed,
        figures=not args.no_figures,
        html=args.html,
    )
    finished = sum(r.finished for r in result.runs)
    print(
        f"{len(result.runs)} runs ({finished} finished); "
        f"{len(result.tables)} tables, {len(result.comparisons)} paired tests -> {result.out_dir / 'report.md'}"
    )
    if result.html is not None:
        print(f"html: {result.html}")
    return 0
