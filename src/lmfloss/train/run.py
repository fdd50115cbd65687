"""Reading a finished (or running) run directory back: ``load_run``, ``evaluate_run``, ``predict``.

A run directory (see ``docs/ARCHITECTURE.md``) holds ``config.yaml`` and ``best.pt`` /
``last.pt``; that is enough to rebuild the model, the data and the preprocessing the run
used, with no download (``weights="none"``, the trained weights come from the checkpoint).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lmfloss.config import TrainConfig

logger = logging.getLogger(__name__)

CHECKPOINTS = ("best", "last")


@dataclass
class Run:
    """A trained model and everything needed to use it like the run did.

    Attributes:
        run_dir: the run directory.
        config: the run's :class:`TrainConfig` (from ``config.yaml``).
        model: the network with the checkpoint's weights, in eval mode, on ``device``.
        class_names: class names in class-index order.
        epoch: the epoch the checkpoint was written at.
        device: where ``model`` lives.
    """

    run_dir: Path
    config: TrainConfig
    model: nn.Module
    class_names: list[str]
    epoch: int
    device: torch.device

    @functools.cached_property
    def splits(self):
        """The run's :class:`lmfloss.data.Splits` (loaded on first use: needs the dataset)."""
        from lmfloss.data import load_splits

        c = self.config
        return load_splits(
            dataset=c.dataset, root=c.root, csv=c.csv, seed=c.split_seed, group_by=c.group_by,
            download=c.download, skip_bad_images=c.skip_bad_images,
        )

    def dataset(self, split: str):
        """``make_dataset(splits, split, ...)`` with the run's image size and normalisation
        (never augmented)."""
        from lmfloss.data import make_dataset

        c = self.config
        return make_dataset(self.splits, split, image_size=c.image_size, normalize=c.normalize,
                            augment="none", cache_dir=c.cache_dir)

    def preprocess(self, image: np.ndarray | str | Path) -> torch.Tensor:
        """An image file or ``uint8 [H, W, 3]`` array -> ``float32 [3, S, S]`` as in training.

        Resized to ``S x S`` (bilinear, antialiased) and scaled/normalised with the run's
        ``normalize`` setting.
        """
        from PIL import Image

        from lmfloss.data.images import read_image
        from lmfloss.data.transforms import build_transform

        size = self.config.image_size
        if isinstance(image, (str, Path)):
            array = read_image(image, size=size)
        else:
            array = np.asarray(image, dtype=np.uint8)
            if array.ndim == 2:
                array = np.repeat(array[..., None], 3, axis=2)
            if array.ndim != 3 or array.shape[2] != 3:
                raise ValueError(f"expected an image array [H, W, 3] uint8, got shape {list(array.shape)}")
            if array.shape[:2] != (size, size):
                array = np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.BILINEAR))
        pixels = torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1)  # writable copy
        return build_transform(self.config.normalize, "none")(pixels)


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu") -> Run:
    """Rebuild a run's model from its directory.

    Args:
        run_dir: a directory written by :func:`lmfloss.train.fit`.
        checkpoint: ``"best"`` (best validation macro-F1) or ``"last"`` (last finished epoch).
        device: where to put the model.

    Raises:
        FileNotFoundError: not a run directory, or the checkpoint file is missing.
        ValueError: unknown ``checkpoint`` name.
    """
    from lmfloss.models import build_model
    from lmfloss.train.checkpoint import load_checkpoint
    from lmfloss.train.engine import resolve_device
    from lmfloss.train.rundir import config_from_run

    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {list(CHECKPOINTS)}, got {checkpoint!r}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} does not exist")
    config = config_from_run(run_dir)
    path = run_dir / f"{checkpoint}.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist; the run has not finished an epoch"
            + (" (try --checkpoint last)" if checkpoint == "best" else "")
        )
    dev = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    state = load_checkpoint(path, map_location="cpu")
    class_names = list(state.get("class_names") or [])
    model = build_model(config.model, len(class_names), weights="none")
    model.load_state_dict(state["model"])
    model.to(dev).eval()
    return Run(run_dir, config, model, class_names, int(state.get("epoch", 0)), dev)


def evaluate_run(run: Run, split: str = "test", batch_size: int | None = None) -> dict[str, Any]:
    """Recompute the report of ``split`` from the run's checkpoint.

    Returns:
        ``{"split", "checkpoint_epoch", "report": classification_report(...),
        "ids", "labels", "probs"}``.
    """
    from torch.utils.data import DataLoader

    from lmfloss.metrics import classification_report
    from lmfloss.train.engine import evaluate

    dataset = run.dataset(split)
    if len(dataset) == 0:
        raise ValueError(f"split {split!r} of {run.config.dataset!r} has no images")
    loader = DataLoader(dataset, batch_size=batch_size or run.config.batch_size, shuffle=False)
    res = evaluate(run.model, loader, device=run.device)
    probs = torch.softmax(res["logits"], dim=1).numpy()
    labels = res["labels"].numpy()
    report = classification_report(labels, probs.argmax(axis=1), probs, run.class_names,
                                   n_bootstrap=run.config.bootstrap, seed=run.config.seed)
    ids = [dataset.records[int(i)].id for i in res["indices"]]
    return {"split": split, "checkpoint_epoch": run.epoch, "report": report,
            "ids": ids, "labels": labels, "probs": probs}


@torch.inference_mode()
def predict(run: Run, images: Sequence[str | Path | np.ndarray], batch_size: int = 32) -> np.ndarray:
    """Class probabilities ``float64 [N, K]`` of new images with the run's preprocessing."""
    run.model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack([run.preprocess(im) for im in images[start : start + batch_size]])
        logits = run.model(batch.to(run.device))
        out.append(torch.softmax(logits.float(), dim=1).cpu().double())
    if not out:
        return np.zeros((0, len(run.class_names)))
    return torch.cat(out).numpy()
