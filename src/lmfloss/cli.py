"""The ``lmfloss`` command line: one entry point, one module per subcommand.

Each module in :mod:`lmfloss.commands` exposes ``register(subparsers)``, which adds
its parser(s) and sets ``func`` (a callable taking the parsed namespace and
returning an exit code). Heavy imports (torch, sklearn) happen inside ``func``
so that ``lmfloss --help`` stays instant.

User mistakes (``ValueError``, ``FileNotFoundError``, ...) become one line on
stderr and exit status 2; so does any error that comes from a full disk (ENOSPC,
EDQUOT, SQLite's "database or disk is full" anywhere in its cause/context chain,
whoever raised it: :func:`lmfloss.fileio.disk_full` makes the line). ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence

from lmfloss import __version__
from lmfloss.errors import USER_ERRORS, DiskFull, Interrupted, LmflossError
from lmfloss.extras import install_hint
from lmfloss.fileio import disk_full

# Order is the order shown by ``lmfloss --help``.
COMMAND_MODULES = (
    "lmfloss.commands.losses",
    "lmfloss.commands.data",
    "lmfloss.commands.train",
    "lmfloss.commands.export",
    "lmfloss.commands.cam",
    "lmfloss.commands.sweep",
    "lmfloss.commands.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmfloss",
        description="Imbalanced medical image classification with the LMF loss and its baselines.",
    )
    parser.add_argument("--version", action="version", version=f"lmfloss {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


# Commands that need an optional extra: (module to import, the extra that brings it).
COMMAND_EXTRAS = {
    "cam": ("pytorch_grad_cam", "cam"),
    "sweep": ("optuna", "sweep"),
}


def check_extra(command: str) -> None:
    """Raise a one-line error saying what to ``pip install`` when ``command``'s extra is missing."""
    if command not in COMMAND_EXTRAS:
        return
    module, extra = COMMAND_EXTRAS[command]
    if importlib.util.find_spec(module) is None:
        raise LmflossError(f"lmfloss {command} needs the optional package {module!r}: {install_hint(extra)}")


def _configure_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )


def _disk_full(exc: BaseException) -> DiskFull | None:
    """``exc`` itself when it is a :class:`DiskFull`, else the one :func:`lmfloss.fileio.disk_full`
    makes when the chain of ``exc`` holds "no space left" (``None`` when it does not)."""
    if isinstance(exc, DiskFull):
        return exc
    return disk_full(exc)


def _reader_gone() -> int:
    # The reader of our output went away (`lmfloss ... | head`): not an error of ours.
    # Point stdout at devnull so the interpreter's final flush does not fail again.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    _configure_logging(getattr(args, "quiet", False))
    try:
        check_extra(args.command)
        return int(args.func(args) or 0)
    except Interrupted as exc:  # Ctrl-C or SIGTERM stopped the work at a safe point
        if args.debug:
            raise
        print(f"lmfloss {args.command}: {exc}", file=sys.stderr)
        return 128 + exc.signal_number
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"lmfloss {args.command}: error: {_disk_full(exc) or exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _reader_gone()
    except Exception as exc:
        # A full disk met by a writer that is not ours (tensorboard, numpy, torch, SQLite):
        # the same one line as our own writers give, not a traceback.
        full = _disk_full(exc)
        if full is None or args.debug:
            raise
        print(f"lmfloss {args.command}: error: {full}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lmfloss {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
