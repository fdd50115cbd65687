"""``lmfloss sweep``: run a grid or a search over training configs on an Optuna study.

Examples::

    lmfloss sweep --config configs/demo-sweep.yaml --out sweeps/demo --workers 2
    lmfloss sweep --config configs/paper-grid.yaml \\
        --storage postgresql+psycopg2://user:pass@db-host/lmfloss --study paper-grid

Start the same command on every machine (same file, ``--storage`` and ``--study``): each
worker takes the next trial; finished trials are never run twice and a killed worker's
trial is re-run by another worker.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmfloss.errors import USER_ERRORS

if TYPE_CHECKING:
    from lmfloss.sweep.spec import SweepSpec


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lmfloss sweep`` to the lmfloss parser."""
    parser = subparsers.add_parser(
        "sweep",
        help="run a grid/random/TPE sweep of training runs on an Optuna study (SQLite or PostgreSQL)",
        description=(
            "Run a sweep file's trials: every trial is one training run directory under "
            "OUT/runs/, named from its parameters; the objective is validation macro-F1. "
            "Start the same command on several machines with a shared --storage to share the work."
        ),
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="sweep YAML file (see configs/)")
    parser.add_argument("--storage", metavar="URL",
                        help="study database URL (default: sqlite:///OUT/study.db); "
                        "e.g. postgresql+psycopg2://user:pass@host:5432/db")
    parser.add_argument("--study", metavar="NAME", help="study name (default: the sweep file's name)")
    parser.add_argument("--out", metavar="DIR", help="sweep folder for run directories (default: sweeps/NAME)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes on this machine (default 1)")
    parser.add_argument("--devices", metavar="0,1,...|auto",
                        help="run the trials on these GPUs (auto: every visible one): one worker per GPU and "
                        "trial slot, each seeing only its GPU (replaces --workers)")
    parser.add_argument("--trials-per-device", type=int, default=1, metavar="N",
                        help="concurrent trials per GPU (default 1); checked up front against the GPU's free "
                        "memory and one trial's measured need")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the base config, e.g. --set root=/data/medmnist "
                        "--set epochs=2 (repeatable)")
    parser.add_argument("--only", action="append", default=[], metavar="KEY=V1,V2",
                        help="train only the grid points whose KEY is one of the values, e.g. "
                        "--only dataset=breastmnist --only loss=ce,lmf (repeatable; the study is the "
                        "same, so a later run without --only trains the rest)")
    parser.add_argument("--nproc-per-trial", type=int, metavar="N",
                        help="run each trial under torchrun with N processes (default: the file's "
                        "launcher.nproc_per_node, else 1 = in-process)")
    parser.add_argument("--heartbeat", type=int, default=60, metavar="S",
                        help="seconds between a running trial's heartbeats (default 60)")
    parser.add_argument("--grace", type=int, metavar="S",
                        help="seconds without heartbeat before a trial counts as dead and is "
                        "re-queued (default 2 x heartbeat)")
    parser.add_argument("--max-retry", type=int, default=3, metavar="N",
                        help="times a killed trial is re-queued (default 3)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the trials (grid points and run names) and exit")
    parser.add_argument("--retry-failed", action="store_true",
                        help="train again the grid points whose training raised an error (left alone otherwise), "
                        "once the cause is mended; a finished run of the point is reused")
    parser.add_argument("--status", action="store_true",
                        help="say where the study stands (trials done per space or grid points, best so far, "
                        "each running trial's epoch and heartbeat) and exit; trains and writes nothing")
    parser.add_argument("--quiet", action="store_true", help="only warnings and the summary")
    parser.set_defaults(func=_run_sweep)


def _run_sweep(args: argparse.Namespace) -> int:
    # optional extra: lmfloss.sweep imports optuna (lmfloss[sweep]); `lmfloss --help` runs without it
    from lmfloss.sweep import load_sweep, parse_sets, run_sweep
    from lmfloss.sweep.devices import (
        check_memory,
        gpu_free_bytes,
        measure_trial_memory,
        parse_devices,
        worker_devices,
    )
    from lmfloss.sweep.engine import RERUN_ADVICE, SweepInterrupted

    spec = _with_cli_options(load_sweep(args.config, sets=parse_sets(args.sets)), args)
    study_name = args.study or spec.name
    out_dir = Path(args.out) if args.out else Path("sweeps") / study_name
    if spec.html and not args.dry_run:
        # slow import (lmfloss.report ~0.4s): `lmfloss --help` loads this module
        from lmfloss.report.html import require_jinja2

        require_jinja2()  # html: true needs jinja2: say so before hours of training, not after

    if args.dry_run:
        _print_dry_run(spec, out_dir)
        return 0
    if args.status:
        from lmfloss.sweep.status import study_status
        from lmfloss.sweep.storage import default_storage

        print("\n".join(study_status(spec, args.storage or default_storage(out_dir), study_name,
                                      heartbeat=args.heartbeat, grace=args.grace, max_retry=args.max_retry)))
        return 0

    devices = parse_devices(args.devices)
    worker_devices(devices or ["cpu"], args.trials_per_device)  # validates --trials-per-device
    if devices and args.trials_per_device > 1:
        first = spec.resolve(spec.wanted_points()[0] if spec.sampler == "grid" else {})[0]
        check_memory(devices, args.trials_per_device, measure_trial_memory(first, devices[0]), gpu_free_bytes)
    try:
        result = run_sweep(spec, out_dir, storage=args.storage, study_name=study_name,
                           workers=args.workers, heartbeat=args.heartbeat, grace=args.grace,
                           max_retry=args.max_retry, devices=devices, trials_per_device=args.trials_per_device,
                           retry_failed=args.retry_failed)
    except KeyboardInterrupt:  # outside a trial (e.g. while waiting for other workers)
        raise SweepInterrupted(f"interrupted; {RERUN_ADVICE}", 2) from None
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(result.counts.items()))
    print(f"study {result.study_name!r} in {result.storage}: {counts or 'no trials'}")
    if result.best is not None:
        _print_best(result.best)
    print(f"trials: {result.trials_csv}")
    if spec.html:
        _print_html_report(out_dir)
    if result.failed_points:
        print(f"failed grid points ({len(result.failed_points)}): {', '.join(result.failed_points)} "
              "(trials.csv says why; --retry-failed trains them again once the cause is mended)")
        return 1
    return 0


def _with_cli_options(spec: SweepSpec, args: argparse.Namespace) -> SweepSpec:
    """``spec`` with ``--only`` and ``--nproc-per-trial`` applied (each checked)."""
    # optional extra: lmfloss.sweep imports optuna (lmfloss[sweep])
    from lmfloss.sweep.parse import parse_only

    if args.only:
        spec = dataclasses.replace(spec, only=parse_only(args.only))
        if spec.sampler != "grid":
            raise ValueError(f"--only selects grid points; sampler {spec.sampler!r} has none")
        if not spec.wanted_points():
            raise ValueError(f"--only {' '.join(args.only)} matches none of the {len(spec.grid_points())} grid points")
    if args.nproc_per_trial is not None:
        if args.nproc_per_trial < 1:
            raise ValueError(f"--nproc-per-trial must be >= 1, got {args.nproc_per_trial}")
        spec = dataclasses.replace(spec, nproc_per_node=args.nproc_per_trial)
    return spec


def _print_dry_run(spec: SweepSpec, out_dir: Path) -> None:
    """``--dry-run``: the run directories of the grid points, or what the search explores."""
    # optional extra: lmfloss.sweep imports optuna (lmfloss[sweep])
    from lmfloss.sweep import run_name

    if spec.sampler == "grid":
        points = spec.wanted_points()
        print(f"{len(points)} grid point(s) of sweep {spec.name!r}"
              + (f" (of {len(spec.grid_points())}, --only)" if spec.only else "") + ":")
        for point in points:
            print(f"  {out_dir / 'runs' / run_name(point)}")
    else:
        per_space = f" per space x {len(spec.subspaces)} spaces" if spec.budget == "per_space" else ""
        print(f"{spec.sampler} search of {spec.trials} trial(s){per_space} over {spec.keys}")


def _print_best(best: dict[str, Any]) -> None:
    """The best trial's line: its validation score and, when it has one, its test score."""
    metric = "mAP" if best.get("val_metric") == "map" else "macro-F1"
    test = best.get("test_map" if best.get("val_metric") == "map" else "test_f1_macro")
    test_text = "" if test is None else f", test {metric} {test:.4f}"
    value = best.get("val_objective")  # the trial's value: the objective of val_metric
    print(f"best: {best['run_name']} (trial {best['trial']}): val {metric} "
          f"{'n/a' if value is None else f'{value:.4f}'}{test_text}")
    print(f"  {best['run_dir']}")


def _print_html_report(out_dir: Path) -> None:
    """``html: true``: the sweep's report; a report that cannot be built is a line, not an error
    (the sweep's own outcome and exit status still follow)."""
    # slow import (lmfloss.report ~0.4s): `lmfloss --help` loads this module
    from lmfloss.report import build_report

    try:
        report = build_report([out_dir / "runs"], out_dir / "report", html=True)
        print(f"report: {report.out_dir / 'report.md'}; html: {report.html}")
    except USER_ERRORS as exc:  # the sweep's own outcome (and exit status) still follows
        print(f"no report: {exc}; lmfloss report {out_dir / 'runs'} --html writes it")
