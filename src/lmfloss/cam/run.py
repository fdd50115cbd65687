"""The ``lmfloss cam`` pipeline: maps for trained runs, scored, drawn and tabulated.

Stages of :func:`run_cam`:

1. **validate** -- options (:class:`CamOptions`) and the runs' configs, without torch:
   runs of one dataset and one image size, grouped into experiments (the seeds of a
   loss; :mod:`lmfloss.cam.groups`);
2. **select** -- the images (:mod:`lmfloss.cam.selection`), their annotations read in
   original pixels and brought to the map (boxes rescaled with
   :func:`lmfloss.cam.metrics.rescale_boxes`, ``x * S / W`` with floor/ceil; masks resized
   with nearest neighbour), and a fixed seeded derangement of the annotated images (the
   shuffled baseline);
3. **compute** -- per run, at the layer chosen for the run's image size
   (:func:`lmfloss.cam.layers.choose_target_layer`), maps in batches for the predicted
   class (``target="pred"``), the true class (``"true"``) or both, and their faithfulness
   next to a random map's (:mod:`lmfloss.cam.faithfulness`), under one progress bar;
4. **score** -- every map against its image's region and, as the like-for-like baseline,
   against its derangement partner's (:func:`lmfloss.cam.metrics.region_metrics`, with the
   pointing-game tolerance; for the partner only the pointing and energy it reports,
   :func:`lmfloss.cam.metrics.pointing_metrics`);
5. **write** -- ``cam_metrics.csv`` (one row per image x run x target), ``cam_summary.csv``
   (per run and target: one row per true class and an ``all`` row), ``cam_groups.csv``
   (per group: mean and SD over its runs), ``cam_tests.csv`` (paired tests between groups,
   with two groups or more; :mod:`lmfloss.cam.compare`),
   ``overlays/<run>/<id>_<target>.png`` and ``fig_attention.png``/``.pdf`` (one column
   per group: its first run).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lmfloss.cam.compute import METHODS, compute_cams
from lmfloss.cam.faithfulness import (
    check_faithfulness,
    model_probabilities,
    perturbations,
    random_maps,
    scores_from_probabilities,
)
from lmfloss.cam.figure import FigureCell, FigureRow, attention_figure, write_overlays
from lmfloss.cam.groups import CamRun, describe_runs
from lmfloss.cam.layers import DEFAULT_MIN_MAP_SIZE, check_min_map_size, choose_target_layer
from lmfloss.cam.metrics import check_tolerance, pointing_metrics, region_metrics
from lmfloss.cam.selection import Selection, explains_labels, select_scored
from lmfloss.cam.tables import FAITHFULNESS_KEYS, SCORE_KEYS, write_tables
from lmfloss.task import get_task
from lmfloss.train import load_run

logger = logging.getLogger(__name__)

TARGETS = ("pred", "true", "both")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CamOptions:
    """What :func:`run_cam` does; validated on construction (ValueError naming the value).

    Attributes:
        split: ``"train"``, ``"val"`` or ``"test"``.
        ids: image ids to explain (error naming any id not in the split).
        n: how many images (default 8, spread round-robin over the classes, annotated
            images first); with ``ids``/``misclassified`` a cap.
        misclassified: images misclassified by at least one run (from ``predictions.csv``
            for the test split, else a forward pass).
        method: a CAM method (:data:`lmfloss.cam.compute.METHODS`).
        target_layer: dotted layer name, or None for the deepest block whose map is at
            least ``min_map_size`` per side at the runs' image size.
        target: ``"pred"`` (map of the predicted class), ``"true"`` or ``"both"``.
        boxes_csv / masks_dir: annotations; neither: the dataset's known boxes, if any.
        checkpoint: ``"best"`` or ``"last"``.
        device: where the models run.
        batch_size: images per CAM call (and per faithfulness batch).
        figure_rows: images in ``fig_attention`` (the first ones selected).
        overlays: write one overlay PNG per image, run and target.
        min_map_size: see ``target_layer`` (>= 1).
        tolerance: pointing-game margin in map pixels; ``None``: 15 px scaled by image
            size / 224 (Zhang et al. 2016); 0: the exact game.
        faithfulness: ``"road"``, ``"drop"`` or ``"none"`` (:mod:`lmfloss.cam.faithfulness`).
        seed: seed of the shuffled baseline's derangement, the random maps and the ROAD
            imputer's noise.
        progress: show one progress bar (tqdm) for the whole job.
    """

    split: str = "test"
    ids: tuple[str, ...] | None = None
    n: int | None = None
    misclassified: bool = False
    method: str = "gradcam"
    target_layer: str | None = None
    target: str = "pred"
    boxes_csv: str | Path | None = None
    masks_dir: str | Path | None = None
    checkpoint: str = "best"
    device: str = "cpu"
    batch_size: int = 16
    figure_rows: int = 8
    overlays: bool = True
    min_map_size: int = DEFAULT_MIN_MAP_SIZE  # layer4's 7x7 at the paper's 224 px
    tolerance: float | None = None  # None: Zhang et al.'s 15 px at 224 px, scaled to the map
    faithfulness: str = "road"  # road | drop | none
    seed: int = 0  # the derangement, the random maps and the imputer's noise
    progress: bool = False

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {list(TARGETS)}, got {self.target!r}")
        if self.method not in METHODS:
            raise ValueError(f"unknown CAM method {self.method!r}; expected one of {sorted(METHODS)}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be train, val or test, got {self.split!r}")
        if self.n is not None and self.n < 1:
            raise ValueError(f"--n must be >= 1, got {self.n}")
        if self.ids and self.misclassified:
            raise ValueError("give either --ids or --misclassified, not both")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        check_min_map_size(self.min_map_size)
        if self.tolerance is not None:
            check_tolerance(self.tolerance)
        check_faithfulness(self.faithfulness)

    @property
    def targets(self) -> list[str]:
        return ["pred", "true"] if self.target == "both" else [self.target]


@dataclass
class CamOutputs:
    """What :func:`run_cam` wrote, and the rows of its CSV files."""

    out_dir: Path
    metrics_csv: Path
    summary_csv: Path
    figure: list[Path]
    overlays: list[Path] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    groups_csv: Path | None = None
    tests_csv: Path | None = None
    groups: list[dict[str, Any]] = field(default_factory=list)
    tests: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TargetMaps:
    """One run's maps of one target, with its faithfulness and the random maps'."""

    target: str
    result: Any  # lmfloss.cam.compute.CamResult
    faithfulness: dict[str, np.ndarray]


def _map_size(result: Any) -> str:
    return "x".join(str(v) for v in result.map_size) if result.map_size else ""


# ---- 1. validate (CamOptions, lmfloss.cam.groups.describe_runs) and load ------------------
def _load(runs: Sequence[CamRun], options: CamOptions) -> list[Any]:
    """Load every run's model; refuse runs whose classes or split ids differ."""
    loaded = [load_run(r.run_dir, checkpoint=options.checkpoint, device=options.device) for r in runs]
    reference = loaded[0]
    class_names = list(reference.class_names)
    ids = [r.id for r in reference.splits.records(options.split)]
    for info, run in zip(runs[1:], loaded[1:]):
        if list(run.class_names) != class_names or [r.id for r in run.splits.records(options.split)] != ids:
            raise ValueError(
                f"run {info.label!r} uses different data than {runs[0].label!r} "
                f"(classes {list(run.class_names)} vs {class_names}, or other {options.split} ids); "
                "compare runs trained on the same dataset and split"
            )
    return loaded


def _layers(loaded: Sequence[Any], runs: Sequence[CamRun], options: CamOptions) -> list[Any]:
    """Each run's target layer at its image size (one dummy forward each), before any work."""
    return [choose_target_layer(run.model, options.target_layer, (info.image_size, info.image_size),
                                min_map_size=options.min_map_size) for run, info in zip(loaded, runs)]


def _task_options(loaded: Sequence[Any], options: CamOptions) -> CamOptions:
    """The options for the runs' task (one task: runs of several are refused). A run whose
    images have any subset of labels (:func:`lmfloss.cam.selection.explains_labels`) explains
    each label an image has, one map per (image, label), scored against that label's region:
    the target is the true label (``pred`` -- the default -- is taken as that; ``both`` and
    ``--misclassified`` have no meaning there)."""
    tasks = {get_task(run.task) for run in loaded}
    if len(tasks) > 1:
        raise ValueError(f"{' and '.join(sorted(t.display for t in tasks))} runs compared together; "
                         "compare runs of one task")
    task = tasks.pop()
    if not explains_labels(task):
        return options
    if options.target == "both" or options.misclassified:
        raise ValueError(f"{task.display} runs get one map per {task.item} present in an image (--target true); "
                         "--target both and --misclassified are for multi-class runs")
    if options.target == "pred":
        logger.info("%s runs: one map per %s present in each image, for that %s's logit", task.display, task.item,
                    task.item)
    return replace(options, target="true")


# ---- 2. select: lmfloss.cam.selection.select_scored ---------------------------------------
# ---- 3. compute --------------------------------------------------------------------------
class _BatchWork:
    """What the faithfulness scores of one batch share between targets and runs, made once.

    - per run, the probabilities of the clean batch (every target of a run scores against it);
    - per input and map size, the random-map baseline's perturbed images: the random maps
      are seeded per image (:func:`lmfloss.cam.faithfulness.random_maps`), not per run, and
      ROAD's imputation is most of the cost of the scores;
    - per run, the probabilities of those perturbed images (the same for every target).
    """

    def __init__(self, options: CamOptions, start: int) -> None:
        self.kind, self.seed, self.start = options.faithfulness, options.seed, start
        self._perturbed: list[tuple[torch.Tensor, tuple[int, int], torch.Tensor]] = []
        self._clean: dict[int, np.ndarray] = {}
        self._random: dict[int, np.ndarray] = {}

    def clean(self, r: int, run: Any, batch: torch.Tensor) -> np.ndarray:
        if r not in self._clean:
            self._clean[r] = model_probabilities(run.model, batch, task=get_task(run.task))
        return self._clean[r]

    def random(self, r: int, run: Any, batch: torch.Tensor, map_size: tuple[int, int]) -> np.ndarray:
        if r not in self._random:  # a run has one layer, so one map size
            self._random[r] = model_probabilities(run.model, self._random_perturbed(batch, map_size), batch.device,
                                                  get_task(run.task))
        return self._random[r]

    def _random_perturbed(self, batch: torch.Tensor, map_size: tuple[int, int]) -> torch.Tensor:
        images = batch.detach().cpu()
        for made_from, size, perturbed in self._perturbed:
            if size == tuple(map_size) and torch.equal(made_from, images):
                return perturbed
        noise = random_maps(len(images), tuple(map_size), tuple(images.shape[-2:]), self.seed, first_index=self.start)
        perturbed = perturbations(images, noise, kind=self.kind, seed=self.seed, first_index=self.start)
        self._perturbed.append((images, tuple(map_size), perturbed))
        return perturbed


def _faithfulness(r: int, run: Any, batch: Any, result: Any, options: CamOptions, start: int,
                  work: _BatchWork) -> dict[str, np.ndarray]:
    if options.faithfulness == "none":
        return {}
    kind = options.faithfulness
    before = work.clean(r, run, batch)
    own_perturbed = perturbations(batch, result.maps, kind=kind, seed=options.seed, first_index=start)
    own = scores_from_probabilities(before, model_probabilities(run.model, own_perturbed, batch.device,
                                                                get_task(run.task)),
                                    result.target_classes, kind=kind)
    rand = scores_from_probabilities(before, work.random(r, run, batch, result.map_size), result.target_classes,
                                     kind=kind)
    return {**own, **{f"{key}_random": value for key, value in rand.items() if key in ("road", "conf_drop")}}


def _merge(parts: list[Any], faith: list[dict[str, np.ndarray]]) -> tuple[Any, dict[str, np.ndarray]]:
    result = replace(parts[0], **{
        key: np.concatenate([getattr(p, key) for p in parts])
        for key in ("maps", "probabilities", "predicted", "target_classes")
    })
    merged = {key: np.concatenate([f[key] for f in faith]) for key in faith[0]} if faith and faith[0] else {}
    return result, merged


def _compute(loaded: Sequence[Any], runs: Sequence[CamRun], layers: Sequence[Any], selection: Selection,
             options: CamOptions, bar: Any) -> list[list[TargetMaps]]:
    """Maps and faithfulness of every run (outer list) and target (inner list).

    Batch by batch, every run and target in turn, so that what they can share of one batch
    (:class:`_BatchWork`) is made once while only that batch's perturbations are held.
    """
    datasets = [run.dataset(options.split) for run in loaded]
    positions = [{rec.id: i for i, rec in enumerate(ds.records)} for ds in datasets]
    labels = [int(rec.label) for rec in selection.records]  # multi-label: each item's label
    image_of = selection.image_ids
    parts: dict[tuple[int, str], tuple[list[Any], list[dict[str, np.ndarray]]]] = {
        (r, target): ([], []) for r in range(len(loaded)) for target in options.targets}
    for start in range(0, len(selection.records), options.batch_size):
        records = selection.records[start : start + options.batch_size]
        work = _BatchWork(options, start)
        for r, (run, layer) in enumerate(zip(loaded, layers)):
            batch = torch.stack([datasets[r][positions[r][image_of.get(rec.id, rec.id)]][0]
                                 for rec in records]).to(run.device)
            for target in options.targets:
                classes = labels[start : start + len(records)] if target == "true" else None
                result = compute_cams(run.model, batch, classes, method=options.method, target_layer=layer,
                                      batch_size=len(batch), task=get_task(run.task))
                parts[(r, target)][0].append(result)
                parts[(r, target)][1].append(_faithfulness(r, run, batch, result, options, start, work))
                bar.update(len(batch))
    out = []
    for r, info in enumerate(runs):
        per_target = []
        for target in options.targets:
            result, merged = _merge(*parts[(r, target)])
            _warn_flat(info, target, result)
            per_target.append(TargetMaps(target, result, merged))
        out.append(per_target)
    return out


def _warn_flat(info: CamRun, target: str, result: Any) -> None:
    flat = int(np.sum(np.ptp(result.maps.reshape(len(result.maps), -1), axis=1) == 0))
    if flat:
        logger.warning(
            "run %s: %d of %d maps of the %s class are constant (no positive evidence at %s, %s map "
            "at %d px); they carry no location and score like their shuffled baseline",
            info.label, flat, len(result.maps), "true" if target == "true" else "predicted", result.layer,
            _map_size(result) or "its", info.image_size,
        )


# ---- 4. score ----------------------------------------------------------------------------
def _localisation(cam: np.ndarray, image_id: str, selection: Selection) -> dict[str, float]:
    region = selection.regions.get(image_id)
    if region is None:
        return dict.fromkeys(SCORE_KEYS, math.nan)
    own = region_metrics(cam, region, tolerance=selection.tolerance)
    partner = selection.partner.get(image_id)
    # The shuffled baseline reports only pointing and energy: the IoU scores are not computed.
    other = (pointing_metrics(cam, selection.regions[partner], tolerance=selection.tolerance)
             if partner is not None else {"pointing_hit": math.nan, "energy_in_box": math.nan})
    return {**own, "pointing_hit_shuffled": other["pointing_hit"],
            "energy_in_box_shuffled": other["energy_in_box"]}


def _score(info: CamRun, maps: TargetMaps, selection: Selection, class_names: Sequence[str],
           options: CamOptions) -> list[dict[str, Any]]:
    result = maps.result
    rows = []
    for k, rec in enumerate(selection.records):
        pred = int(result.predicted[k])
        if selection.image_ids:  # an item is (image, one of its labels): "pred" is whether the run finds that label
            pred = int(rec.label) if result.probabilities[k, int(rec.label)] >= 0.5 else -1
        ann = selection.annotations[rec.id]
        faith = {key: float(maps.faithfulness[key][k]) if key in maps.faithfulness else math.nan
                 for key in FAITHFULNESS_KEYS}
        rows.append({
            "run": info.label, "group": info.group, "seed": info.seed, "id": rec.id,
            "label": int(rec.label), "true_class": class_names[int(rec.label)], "pred": pred,
            "pred_class": class_names[pred] if pred >= 0 else "", "correct": pred == int(rec.label),
            "prob_pred": float(result.probabilities[k, pred if pred >= 0 else int(rec.label)]),
            "target": maps.target,
            "target_class": class_names[int(result.target_classes[k])], "method": options.method,
            "layer": result.layer, "map_size": _map_size(result), "tolerance": selection.tolerance,
            "annotation": ann.source if ann else "", "n_boxes": len(ann.boxes) if ann else 0,
            **_localisation(result.maps[k], rec.id, selection), **faith,
        })
    return rows


# ---- 5. write ----------------------------------------------------------------------------
def _overlays(out: Path, info: CamRun, maps: TargetMaps, selection: Selection) -> list[Path]:
    boxes = {i: (a.boxes if a else []) for i, a in selection.annotations.items()}
    return write_overlays(out / "overlays" / info.label, maps.target, maps.result.maps, selection.records,
                          selection.images, boxes)


def _caption(columns: Sequence[tuple[CamRun, Any]], options: CamOptions) -> str:
    layers = list(dict.fromkeys(f"{result.layer} ({_map_size(result)} map)" for _, result in columns))
    where = layers[0] if len(layers) == 1 else ", ".join(
        f"{info.group}: {result.layer} ({_map_size(result)})" for info, result in columns)
    size = columns[0][0].image_size
    return (f"{options.method} of the {'true' if options.targets[0] == 'true' else 'predicted'} class at "
            f"{where}, {size} px input; green: annotation; first run of each group shown.")


def _shown_prediction(result: Any, k: int, rec: Any, class_names: Sequence[str], selection: Selection) -> str:
    """What a figure cell says the run predicted: the class, or for a multi-label item its label's
    probability."""
    if selection.image_ids:
        return f"p({class_names[int(rec.label)]})={float(result.probabilities[k, int(rec.label)]):.2f}"
    return class_names[int(result.predicted[k])]


def _write_figure(out: Path, figure_maps: dict[str, tuple[CamRun, Any]], selection: Selection,
                  class_names: Sequence[str], options: CamOptions) -> list[Path]:
    shown = selection.records[: max(options.figure_rows, 0)]
    if not shown or not figure_maps:
        return []
    columns = list(figure_maps.values())
    rows = []
    for k, rec in enumerate(shown):  # shown is a prefix of selection.records
        ann = selection.annotations[rec.id]
        cells = [FigureCell(result.maps[k], _shown_prediction(result, k, rec, class_names, selection))
                 for _, result in columns]
        rows.append(FigureRow(rec.id, selection.images[rec.id], class_names[int(rec.label)],
                              list(ann.boxes) if ann else [], cells))
    titles = [group if info.label == group else f"{group}\n{info.label}"
              for group, (info, _) in figure_maps.items()]
    return attention_figure(rows, titles, out / "fig_attention", caption=_caption(columns, options))


def run_cam(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    runs_from: Sequence[str | Path] = (),
    **fields: Any,
) -> CamOutputs:
    """Compute, score and draw CAMs for trained runs, several seeds per loss allowed.

    Args:
        run_dirs: run directories written by :func:`lmfloss.train.fit`; all must use the
            same dataset, split and image size. Runs differing only in the seed form a group.
        out_dir: where the CSVs, overlays and the figure go (created).
        runs_from: folders whose finished runs are added (e.g. a sweep's output).
        **fields: the fields of :class:`CamOptions` (``split``, ``n``, ``target``,
            ``faithfulness``, ...), with its defaults.

    Returns:
        :class:`CamOutputs`.

    Raises:
        ValueError: bad options, runs on different data or image sizes, unknown ids.
        FileNotFoundError: a missing run directory, checkpoint or annotation file.
        LmflossError: a ``runs_from`` folder without finished runs.
        TypeError: a keyword that is not a field of :class:`CamOptions`.
    """
    if "ids" in fields:
        fields["ids"] = tuple(fields["ids"]) if fields["ids"] else None
    options = CamOptions(**fields)
    runs = describe_runs(run_dirs, runs_from=runs_from)
    loaded = _load(runs, options)
    options = _task_options(loaded, options)
    layers = _layers(loaded, runs, options)
    selection = select_scored(loaded, runs[0].image_size, options)
    class_names = list(loaded[0].class_names)
    out = Path(out_dir)
    logger.info("cam: %d image(s) x %d run(s) in %d group(s), method %s, faithfulness %s",
                len(selection.records), len(runs), len({r.group for r in runs}), options.method,
                options.faithfulness)
    rows: list[dict[str, Any]] = []
    overlay_paths: list[Path] = []
    figure_maps: dict[str, tuple[CamRun, Any]] = {}
    total = len(runs) * len(options.targets) * len(selection.records)
    with tqdm(total=total, desc="cam", unit="map", disable=not options.progress, dynamic_ncols=True) as bar:
        computed = _compute(loaded, runs, layers, selection, options, bar)
        for info, per_target in zip(runs, computed):
            for maps in per_target:
                rows += _score(info, maps, selection, class_names, options)
                if options.overlays:
                    overlay_paths += _overlays(out, info, maps, selection)
                if maps.target == options.targets[0] and info.group not in figure_maps:
                    figure_maps[info.group] = (info, maps.result)
    tables = write_tables(out, rows, class_names)
    figure = _write_figure(out, figure_maps, selection, class_names, options)
    return CamOutputs(out, tables["metrics_csv"], tables["summary_csv"], figure, overlay_paths, rows,
                      tables["summary"], tables["groups_csv"], tables["tests_csv"], tables["groups"],
                      tables["tests"])

