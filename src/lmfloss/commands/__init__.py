"""Subcommands of the ``lmfloss`` command line, one module per area."""
