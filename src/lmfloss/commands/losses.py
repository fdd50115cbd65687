"""``lmfloss losses``: print the loss registries (names, tasks, parameters with defaults, descriptions)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the lmfloss parser."""
    parser = subparsers.add_parser(
        "losses",
        help="list the available losses with the tasks they support and their parameters",
        description=(
            "List every loss of lmfloss.losses.LOSSES (multi-class) and MULTILABEL_LOSSES (multi-label): "
            "its name, the task it is for, its parameters with defaults (pass them as loss_params in a "
            "config) and a one-line description. Names such as lmf exist for both tasks."
        ),
    )
    parser.add_argument(
        "name", nargs="?", default=None, help="show only this loss (default: all)"
    )
    parser.add_argument("--task", choices=("multiclass", "multilabel"), default=None,
                        help="show only the losses of this task (default: both)")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    parser.set_defaults(func=_run_losses)


def _format_default(value: object) -> str:
    return "None" if value is None else repr(value)


def _entry(name: str, task: str, cls: type) -> list[str]:
    from lmfloss.losses import loss_parameters

    params = ", ".join(f"{key}={_format_default(value)}" for key, value in loss_parameters(name, task).items())
    return [f"{name:<15} {cls.description}", f"{'':<15} task: {task.replace('multi', 'multi-')}; params: {params}"]


def _run_losses(args: argparse.Namespace) -> int:
    from lmfloss.losses import TASKS, loss_parameters, losses_for

    if args.name is not None:
        tasks = [args.task] if args.task else [t for t in TASKS if args.name in losses_for(t)]
        if not tasks or args.name not in losses_for(tasks[0]):
            loss_parameters(args.name, (tasks or ["multiclass"])[0])  # ValueError naming the valid ones
        for task in tasks:
            print("\n".join(_entry(args.name, task, losses_for(task)[args.name])))
        return 0
    task = args.task or "multiclass"
    registry = losses_for(task)
    for name, cls in registry.items():
        print("\n".join(_entry(name, task, cls)))
    if args.task is None:
        multilabel = losses_for("multilabel")
        both = [n for n in multilabel if n in registry]
        print(f"  multi-label tasks (--task multilabel, targets [N, L] of 0/1): {', '.join(multilabel)} "
              f"({', '.join(both)} exist for both tasks); details: lmfloss losses --task multilabel")
    return 0
