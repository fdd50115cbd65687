"""Reading a finished (or running) run directory back: ``load_run``, ``evaluate_run``, ``predict``.

A run directory (see ``docs/ARCHITECTURE.md``) holds ``config.yaml`` and ``best.pt`` /
``last.pt``; that is enough to rebuild the model, the data and the preprocessing the run
used, with no download (``weights="none"``, the trained weights come from the checkpoint).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from lmfloss import rundir
from lmfloss.config import TrainConfig, option_keys
from lmfloss.data import dataset_for, get_adapter, splits_for
from lmfloss.data.dataset import prepare_image
from lmfloss.data.load import whole_dataset
from lmfloss.data.overlap import shared_images, without_shared
from lmfloss.data.transforms import build_transform
from lmfloss.errors import DataError
from lmfloss.models import build_model
from lmfloss.rundir import check_same_data, read_config
from lmfloss.task import Task, get_task
from lmfloss.train.checkpoint import load_checkpoint
from lmfloss.train.engine import evaluate, predict_logits, resolve_device
from lmfloss.train.scoring import SplitResult, fit_temperature, reports, scored, split_result

logger = logging.getLogger(__name__)

CHECKPOINTS = ("best", "last", "refit")  # refit: trained on train + validation (config refit)


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
        data: what the run recorded about its data (``Splits.identity()``), or ``None``
            for a run of lmfloss 0.1.
    """

    run_dir: Path
    config: TrainConfig
    model: nn.Module
    class_names: list[str]
    epoch: int
    device: torch.device
    data: dict[str, Any] | None = None

    @property
    def task(self) -> Task:
        """The run's :class:`~lmfloss.task.Task` (its config's; for a multi-label run
        ``class_names`` are the labels)."""
        return get_task(self.config)

    @functools.cached_property
    def splits(self):
        """The run's :class:`lmfloss.data.Splits` (loaded on first use: needs the dataset),
        checked against the data the run recorded when it was trained."""
        splits = splits_for(self.config)
        check_same_data(self.data, splits.identity(), list(splits.class_names), self.class_names, self.run_dir)
        return splits

    def dataset(self, split: str):
        """The dataset of ``split`` with the run's preprocessing (:func:`lmfloss.data.dataset_for`),
        never augmented."""
        return dataset_for(self.config, split, self.splits)

    def preprocess(self, image: np.ndarray | str | Path) -> torch.Tensor:
        """An image file or ``uint8 [H, W, 3]`` array -> ``float32 [3, S, S]`` as in training.

        The same resize (PIL for file datasets, torch for array datasets), intensity rule
        and scaling/normalisation the run's training data got
        (:func:`lmfloss.data.dataset.prepare_image`).
        """
        c = self.config
        array = prepare_image(image, c.image_size, resize=get_adapter(c.dataset).resize, intensity=c.intensity)
        pixels = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        return build_transform(c.normalize, "none")(pixels)


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
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {list(CHECKPOINTS)}, got {checkpoint!r}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} does not exist")
    config = read_config(run_dir)
    path = run_dir / f"{checkpoint}.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist; the run has not finished an epoch"
            + (" (try --checkpoint last)" if checkpoint == "best" else "")
        )
    dev = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    state = load_checkpoint(path, map_location="cpu")
    class_names = list(state.get("class_names") or [])
    model = build_model(config.model, get_task(config).outputs(len(class_names)), weights="none", stem=config.stem)
    model.load_state_dict(state["model"])
    model.to(dev).eval()
    return Run(run_dir, config, model, class_names, int(state.get("epoch", 0)), dev, state.get("data"))


def evaluate_run(run: Run, split: str = "test", batch_size: int | None = None,
                 calibrate: bool = False, tta: str | None = None) -> dict[str, Any]:
    """Recompute the report of ``split`` from the run's checkpoint.

    Binary tasks get the metrics at the validation-chosen threshold, as in ``report.json``.
    With ``calibrate``, a temperature is fitted on the **validation** logits
    (:func:`lmfloss.train.scoring.fit_temperature`) and the report gains ``calibration``:
    the temperature and ECE, Brier and NLL before and after. With ``tta`` (``"flip"``,
    ``"flip4"``) the softmax is averaged over flipped views; the report records ``tta`` and
    whether the run was trained with flips (flipping is the user's choice for a model that
    never saw a flipped image -- allowed, and said).

    Returns:
        ``{"split", "checkpoint_epoch", "report", "ids", "labels", "probs"}``.

    Raises:
        ValueError: an empty split (or, with ``calibrate``, an empty validation split).
    """
    def score(name: str):
        dataset = run.dataset(name)
        if len(dataset) == 0:
            raise ValueError(f"split {name!r} of {run.config.dataset!r} has no images"
                             + ("; --calibrate fits the temperature on validation" if name == "val" else ""))
        loader = DataLoader(dataset, batch_size=batch_size or run.config.batch_size, shuffle=False)
        return split_result(name, evaluate(run.model, loader, device=run.device, tta=tta, task=run.task), dataset,
                            run.task)

    results = {split: score(split)}
    # The validation split chooses the binary threshold and the multi-label thresholds.
    if (calibrate or run.task.chooses_on_val(len(run.class_names))) and split != "val":
        results["val"] = score("val")
    try:
        saved = rundir.read_report(run.run_dir) or {}
    except Exception:  # a damaged report.json only costs the recorded training counts
        saved = {}
    train_counts = saved.get(run.task.counts_key()) or run.splits.class_counts("train")
    report = reports(results, run.config, run.class_names, train_counts)[split]
    if calibrate:
        val = scored(results["val"], run.config)
        temperature = fit_temperature(val.logits, val.labels, task=run.task)
        after = reports(results, run.config, run.class_names, train_counts, temperature)[split]
        report["calibration"] = {
            "temperature": temperature, "fitted_on": "val",
            **{f"{m}_before": report[m] for m in ("ece", "brier", "nll")},
            **{f"{m}_after": after[m] for m in ("ece", "brier", "nll")},
        }
    if tta is not None:
        report["tta"] = tta
        report["trained_with_flips"] = run.config.augment in ("flip", "hflip", "randaugment")
        if not report["trained_with_flips"]:
            logger.warning("test-time flips on a run trained without flip augmentation (augment=%r); "
                           "recorded in the report", run.config.augment)
        elif tta == "flip4" and run.config.augment == "hflip":
            logger.warning("test-time vertical flips (flip4) on a run trained with horizontal flips only "
                           "(augment='hflip'); --tta flip averages the views it was trained on")
    target = scored(results[split], run.config)
    return {"split": split, "checkpoint_epoch": run.epoch, "report": report,
            "ids": target.ids, "labels": target.labels, "probs": target.probs()}


EXTERNAL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def parse_label_map(text: str | None) -> dict[str, str]:
    """``--label-map``: ``EXTERNAL=RUN,...`` pairs (an external set's name of a class or label
    -> the run's name of it).

    Raises:
        ValueError: a pair without ``=``, or one external name mapped twice.
    """
    mapping: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in (text or "").split(","))):
        source, sep, target = (part.strip() for part in pair.partition("="))
        if not sep or not source or not target:
            raise ValueError(f"--label-map takes EXTERNAL=RUN pairs separated by ',', got {pair!r}")
        if source in mapping:
            raise ValueError(f"--label-map maps {source!r} twice")
        mapping[source] = target
    return mapping


def external_splits(run: Run, overrides: dict[str, Any], label_map: dict[str, str]) -> tuple[Any, TrainConfig,
                                                                                                 list[int]]:
    """The whole labelled external dataset as one ``test`` split, read with the run's own
    settings (task, grouping, intensity rule, image size), and the index of each of its
    classes or labels among the run's (the external set's order may differ).

    Raises:
        ValueError: a class or label the run knows and the external set lacks, or the reverse
            (after ``label_map``): both lists named, nothing scored.
    """
    # The external set's own location and dataset options (views, uncertainty policy...), not the run's.
    reset = {"folds": None, "fold": None, "label_columns": None, "csv": None, "root": None,
             **dict.fromkeys(option_keys())}
    config = run.config.replace(**{**reset, **overrides})
    whole = whole_dataset(config)
    names = [label_map.get(n, n) for n in whole.class_names]
    unknown_sources = sorted(set(label_map) - set(whole.class_names))
    lacking = [n for n in run.class_names if n not in names]
    extra = [n for n in names if n not in run.class_names]
    if unknown_sources or lacking or extra or len(set(names)) != len(names):
        what = {"class": "classes"}.get(run.task.item, f"{run.task.item}s")
        raise ValueError(
            f"the external set's {what} do not match the run's: "
            + "; ".join(part for part in (
                f"the run knows {lacking} and the external set has none" if lacking else "",
                f"the external set has {extra} the run does not know" if extra else "",
                f"--label-map names {unknown_sources}, not {what} of the external set" if unknown_sources else "",
                "two external names map to one" if len(set(names)) != len(names) else "") if part)
            + f". Nothing is scored as absent: map the names with --label-map EXTERNAL=RUN,... (run's {what}: "
            f"{run.class_names}; external: {whole.class_names})")
    return whole, config, [run.class_names.index(n) for n in names]


def _in_run_order(result: SplitResult, order: list[int]) -> SplitResult:
    """``result``'s labels in the run's class (label) order; ``order[j]`` is the run's index of
    the external set's class ``j``."""
    labels = np.asarray(result.labels)
    if labels.ndim == 2:
        aligned = np.zeros_like(labels)
        aligned[:, order] = labels
    else:
        aligned = np.asarray(order, dtype=np.int64)[labels]
    return SplitResult(result.split, result.ids, aligned, result.logits, result.task, result.groups)


def evaluate_external(run: Run, overrides: dict[str, Any], *, label_map: dict[str, str] | None = None,
                      batch_size: int | None = None, tta: str | None = None,
                      drop_overlap: bool = False) -> dict[str, Any]:
    """Score a finished run on a whole labelled dataset it never saw (external validation).

    The run's own preprocessing, its scoring level (patients when the run scores patients)
    and the thresholds it chose on **its** validation split (a binary task's Youden threshold,
    a multi-label task's per-label thresholds) -- never re-chosen on the external set. The
    report has the form of ``report.json``'s test section, bootstrap intervals included.

    An external image that is one of the run's own (train, validation or test: the same id and
    image, :func:`lmfloss.data.overlap.shared_images`) is refused, or with ``drop_overlap``
    left out with every other image of its patient or lesion.

    Args:
        run: from :func:`load_run`.
        overrides: the external set's config keys (``dataset`` and ``root`` or ``csv``, ...).
        label_map: an external class or label name -> the run's name of it.
        drop_overlap: score the external images the run never saw instead of refusing.

    Returns:
        ``{"report", "ids", "labels", "probs", "dataset", "n_images", "overlap"}``; ``overlap``
        says what was left out (``None`` when the sets share no image).

    Raises:
        ValueError: names that do not match (:func:`external_splits`), images the run saw
            (without ``drop_overlap``), an empty external set.
    """
    whole, config, order = external_splits(run, overrides, label_map or {})
    whole, overlap = _without_the_runs_images(run, whole, drop_overlap)
    dataset = dataset_for(config, "test", whole)
    if len(dataset) == 0:
        raise ValueError(f"the external set {config.dataset!r} has no images")
    loader = DataLoader(dataset, batch_size=batch_size or run.config.batch_size, shuffle=False)
    external = _in_run_order(split_result("test", evaluate(run.model, loader, device=run.device, tta=tta,
                                                           task=run.task), dataset, run.task), order)
    results = {"test": external}
    if run.task.chooses_on_val(len(run.class_names)):
        val = run.dataset("val")
        results["val"] = split_result("val", evaluate(run.model, DataLoader(val, batch_size=loader.batch_size),
                                                      device=run.device, tta=tta, task=run.task), val, run.task)
    try:
        saved = rundir.read_report(run.run_dir) or {}
    except Exception:  # a damaged report.json only costs the recorded training counts
        saved = {}
    train_counts = saved.get(run.task.counts_key()) or run.splits.class_counts("train")
    report = reports(results, run.config, run.class_names, train_counts)["test"]
    target = scored(external, run.config)
    return {"report": report, "ids": target.ids, "labels": target.labels, "probs": target.probs(),
            "dataset": config.dataset, "n_images": len(dataset), "overlap": overlap}


def _without_the_runs_images(run: Run, whole: Any, drop: bool) -> tuple[Any, dict[str, Any] | None]:
    """``whole`` checked for the run's own images: refused, or (``drop``) left without them."""
    found = shared_images(run.splits, whole)
    if found.same_id_other_image:
        logger.warning("%d external image(s) have the id of one of the run's images but other pixels (e.g. %s): "
                       "scored as external; if they are resized or re-encoded copies of them, remove them from the "
                       "external set",
                       len(found.same_id_other_image), ", ".join(found.same_id_other_image[:3]))
    if not found:
        return whole, None
    n_external = len(whole.records("test"))
    if not drop:
        raise ValueError(f"{found.describe(n_external)}: scoring them is not external validation. Pass "
                         "--drop-overlap to score the others (every image of their patients or lesions left "
                         "out too), or remove them from the external set")
    rest, n_dropped, n_groups = without_shared(whole, found.ids)
    logger.warning("left out %d of the external set's %d images: %d the run's own, the rest of their %d "
                   "patients/lesions", n_dropped, n_external, len(found.ids), n_groups)
    return rest, {"dropped_images": n_dropped, "shared_images": found.counts(), "dropped_groups": n_groups,
                  "examples": sorted(found.ids)[:5], "same_id_other_image": len(found.same_id_other_image)}


@torch.inference_mode()
def predict(run: Run, images: Sequence[str | Path | np.ndarray], batch_size: int = 32,
            skip_bad_images: bool = False, tta: str | None = None) -> np.ndarray:
    """Class probabilities ``float64 [N, K]`` of new images with the run's preprocessing
    (multi-label: ``[N, L]``, one sigmoid per label).

    Args:
        run: from :func:`load_run`.
        images: image files or ``uint8 [H, W, 3]`` arrays.
        batch_size: images per forward pass.
        skip_bad_images: an undecodable file gets a row of NaN instead of stopping the
            prediction of the others.
        tta: ``"flip"`` or ``"flip4"``: average the softmax over flipped views.

    Raises:
        DataError: an undecodable file (unless ``skip_bad_images``), naming it.
    """

    run.model.eval()
    k = len(run.class_names)
    out = np.full((len(images), k), np.nan)
    for start in range(0, len(images), batch_size):
        tensors, rows = [], []
        for i, image in enumerate(images[start : start + batch_size], start):
            try:
                tensors.append(run.preprocess(image))
                rows.append(i)
            except DataError:
                if not skip_bad_images:
                    raise
        if tensors:
            logits = predict_logits(run.model, torch.stack(tensors).to(run.device), tta, run.task)
            out[rows] = run.task.probabilities(logits.float()).cpu().double().numpy()
    return out
