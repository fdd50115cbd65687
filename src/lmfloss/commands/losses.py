"""``lmfloss losses``: print the loss registries (names, tasks, parameters with defaults, descriptions)."""

from __future__ import annotations

import argparse

from lmfloss.task import MULTICLASS, TASK_CHOICES, TASKS, Task, get_task


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
    parser.add_argument("--task", choices=TASK_CHOICES, default=None,
                        help="show only the losses of this task (default: every task)")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    parser.set_defaults(func=_run_losses)


def _format_default(value: object) -> str:
    return "None" if value is None else repr(value)


def _entry(name: str, task: Task, cls: type) -> list[str]:
    params = ", ".join(f"{key}={_format_default(value)}" for key, value in task.loss_parameters(name).items())
    return [f"{name:<15} {cls.description}", f"{'':<15} task: {task.display}; params: {params}"]


def _run_losses(args: argparse.Namespace) -> int:
    if args.name is not None:
        tasks = [get_task(args.task)] if args.task else [t for t in TASKS.values() if args.name in t.losses()]
        if not tasks or args.name not in tasks[0].losses():
            (tasks or [MULTICLASS])[0].loss_parameters(args.name)  # ValueError naming the valid ones
        for task in tasks:
            print("\n".join(_entry(args.name, task, task.losses()[args.name])))
        return 0
    task = get_task(args.task)
    registry = task.losses()
    for name, cls in registry.items():
        print("\n".join(_entry(name, task, cls)))
    if args.task is None:
        for other in TASKS.values():
            if other is task:
                continue
            losses = other.losses()
            both = [n for n in losses if n in registry]
            print(f"  {other.display} tasks (--task {other.name}, targets {other.targets}): {', '.join(losses)} "
                  f"({', '.join(both)} exist for both tasks); details: lmfloss losses --task {other.name}")
    return 0
