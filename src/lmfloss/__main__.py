"""``python -m lmfloss`` (and ``torchrun -m lmfloss``) runs the command line."""

import sys

from lmfloss.cli import main

sys.exit(main())
