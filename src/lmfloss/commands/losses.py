"""``lmfloss losses``: print the loss registry (names, parameters with defaults, descriptions)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the lmfloss parser."""
    parser = subparsers.add_parser(
        "losses",
        help="list the available losses with their parameters",
        description=(
            "List every loss of lmfloss.losses.LOSSES: its name, its parameters with defaults "
            "(pass them as loss_params in a config) and a one-line description."
        ),
    )
    parser.add_argument(
        "name", nargs="?", default=None, help="show only this loss (default: all)"
    )
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    parser.set_defaults(func=_run_losses)


def _format_default(value: object) -> str:
    return "None" if value is None else repr(value)


def _run_losses(args: argparse.Namespace) -> int:
    from lmfloss.losses import LOSSES, loss_parameters

    names = list(LOSSES) if args.name is None else [args.name]
    for name in names:
        params = loss_parameters(name)  # ValueError listing the valid names if unknown
        cls = LOSSES[name]
        print(f"{name:<15} {cls.description}")
        shown = ", ".join(f"{key}={_format_default(value)}" for key, value in params.items())
        print(f"{'':<15} params: {shown}")
    return 0
