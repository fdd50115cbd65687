"""``python -m lmfloss.sweep.trial CONFIG.yaml RUN_DIR``: one rank of a torchrun trial.

:class:`lmfloss.sweep.runners.TorchrunRunner` starts this under
``torchrun --standalone --nproc_per_node N``; every rank trains the same config with
``fit`` (which joins the process group from torchrun's environment) into ``RUN_DIR``.
Kept out of ``lmfloss.sweep.__init__`` so that ``-m`` runs it without a re-import warning.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from lmfloss.config import TrainConfig, load_config_file
from lmfloss.sweep.runners import train_in_process


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m lmfloss.sweep.trial CONFIG.yaml RUN_DIR", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = TrainConfig.from_dict(load_config_file(argv[0]))
    train_in_process(config, Path(argv[1]))
    return 0


if __name__ == "__main__":  # pragma: no cover - runs under torchrun
    sys.exit(main(sys.argv[1:]))
