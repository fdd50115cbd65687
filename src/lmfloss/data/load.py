"""``load_splits``: adapter index -> the paper's (or the official, or a group) split."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from lmfloss.config import option_keys
from lmfloss.data.adapters import Adapter, get_adapter, resolve_task, settled_options
from lmfloss.data.images import image_header_ok
from lmfloss.data.records import SPLIT_NAMES, DatasetIndex, check_class_names
from lmfloss.data.splits import GROUP_KINDS, Splits, check_split_classes
from lmfloss.data.targets import Targets, or_words, targets_of, tasks_where
from lmfloss.errors import DataError
from lmfloss.task import Task, get_task

if TYPE_CHECKING:
    from lmfloss.config import TrainConfig
    from lmfloss.data.dataset import ImageDataset

logger = logging.getLogger(__name__)

T = TypeVar("T")


def unreadable_image(path: str, *, header: bool = True) -> str | None:
    """Why the image file at ``path`` cannot be used, or ``None`` -- checked without decoding.

    The one check ``lmfloss split`` and ``lmfloss train`` share (through :func:`load_splits`):
    the file exists through any symbolic links, is a regular file the user may read and,
    with ``header``, its image header parses (:func:`lmfloss.data.images.image_header_ok`).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"a symbolic link to {os.readlink(path)!r}, which does not exist"
        return "it does not exist"
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "not readable (permission denied)"
    if header and not image_header_ok(path):
        return "not an image (its header does not parse)"
    return None


def _bad_images(index: DatasetIndex, skip_bad_images: bool) -> list[tuple[int, str]]:
    """``(record position, reason)`` of every image file that cannot be used; without
    ``skip_bad_images`` the first few are a :class:`DataError` with the hint to skip them.

    Headers are parsed only when skipping (that reads every file); without it an image that
    does not decode fails when the image cache is built, with the same hint.
    """
    bad = [(i, reason) for i, record in enumerate(index.records) if record.path is not None
           and (reason := unreadable_image(record.path, header=skip_bad_images)) is not None]
    shown = ", ".join(f"{index.records[i].path!r} ({reason})" for i, reason in bad[:3])
    more = ", ..." if len(bad) > 3 else ""
    if bad and not skip_bad_images:
        raise DataError(f"{len(bad)} image file(s) cannot be read: {shown}{more}; fix or remove them, "
                        "or pass --skip-bad-images to skip them")
    if bad:
        logger.warning("skipping %d unreadable image(s): %s%s", len(bad), shown, more)
    return bad


def _without(index: DatasetIndex, assignment: list[T], bad: list[tuple[int, str]]) -> tuple[DatasetIndex, list[T]]:
    """``index`` and its split ``assignment`` without the ``bad`` records.

    The split is made over every record first and the bad ones are left out after, so a
    good image lands in the split it gets when every file is good: skipping two broken
    files moves no other image between train, validation and test.
    """
    if not bad:
        return index, assignment
    drop = {i for i, _ in bad}
    keep = [i for i in range(len(index.records)) if i not in drop]
    official = None if index.official_split is None else [index.official_split[i] for i in keep]
    kept = dataclasses.replace(index, records=[index.records[i] for i in keep], official_split=official)
    return kept, [assignment[i] for i in keep]


@dataclass(frozen=True)
class LoadRequest:
    """What :func:`load_splits` is asked: a dataset and how to split it (its arguments, one
    object). Built once, from a run's config (:meth:`of`) or from ``load_splits``' arguments,
    and handed to the loader whole.
    """

    dataset: str
    root: str | Path | None = None
    csv: str | Path | None = None
    seed: int = 23  # the paper's split seed
    group_by: str | None = None
    download: bool = False
    skip_bad_images: bool = False
    folds: int | None = None
    fold: int | None = None
    fold_seed: int = 23
    folds_include_test: bool = False
    task: str | None = None  # None: not asked, the dataset's own (resolve_task)
    label_columns: Sequence[str] | None = None
    options: Mapping[str, str | None] | None = None  # the dataset's own options (views, uncertain...)

    @classmethod
    def of(cls, config: TrainConfig) -> LoadRequest:
        """The request of a run's config (dataset, root, csv, split seed, group_by, fold...)."""
        return cls(
            dataset=config.dataset, root=config.root, csv=config.csv, seed=config.split_seed,
            group_by=config.group_by, download=config.download, skip_bad_images=config.skip_bad_images,
            folds=config.folds, fold=config.fold, fold_seed=config.fold_seed,
            folds_include_test=config.folds_include_test, task=config.task, label_columns=config.label_columns,
            options={key: getattr(config, key) for key in option_keys()},
        )


def load_splits(
    dataset: str,
    root: str | Path | None = None,
    csv: str | Path | None = None,
    seed: int = 23,
    group_by: str | None = None,
    download: bool = False,
    skip_bad_images: bool = False,
    folds: int | None = None,
    fold: int | None = None,
    fold_seed: int = 23,
    folds_include_test: bool = False,
    task: str | None = None,
    label_columns: list[str] | None = None,
    options: Mapping[str, str | None] | None = None,
) -> Splits:
    """Index a dataset and split it into train/val/test.

    Datasets with official splits (MedMNIST, ``csv`` with a ``split`` column) keep them.
    Otherwise the paper's stratified split is used (per class ``val = test =
    round_half_up(0.15 n_c)``, seeded shuffle), or, with ``group_by``, a split that keeps
    every lesion/patient in one split. Image files are checked for existence, not decoded.

    Args:
        dataset: adapter name (see :func:`lmfloss.data.list_adapters`).
        root: dataset root folder (not needed for ``synthetic``).
        csv: CSV file for the ``csv`` adapter.
        seed: seed of the split shuffle (the paper: 23).
        group_by: ``None`` (the paper), ``"lesion"`` or ``"patient"``.
        download: fetch downloadable datasets (MedMNIST) when missing.
        skip_bad_images: leave out image files that cannot be read or do not parse
            (:func:`unreadable_image`; recorded in ``splits.skipped``) instead of failing.
            The split is made over every file and the bad ones are left out after it, so
            no good image changes split. Without it, a file that cannot be read (a dangling
            symbolic link, a folder, no permission) is a :class:`DataError` with the hint.
        folds, fold, fold_seed: k-fold cross-validation (:func:`lmfloss.data.splits.fold_split`):
            the split of fold ``fold`` of ``folds`` (stratified, grouped by ``group_by``).
            Without ``fold`` the splits are the paper's (use :func:`fold_assignment` for the
            folds themselves).
        folds_include_test: pool a dataset's official train/val/test split into the folds
            (k-fold is refused on such a dataset otherwise: it would discard its test split).
        task: a task's name (:mod:`lmfloss.task`), or ``None``: the dataset's own
            (:func:`lmfloss.data.adapters.resolve_task`: ChestMNIST is multi-label by nature; a
            task it cannot give is refused, never swapped). How the images
            are split follows the task's targets (:mod:`lmfloss.data.targets`): multi-label
            splits and folds use iterative stratification (:mod:`lmfloss.data.multilabel`).
        label_columns: ``csv`` with ``task="multilabel"``: the 0/1 columns, one per label.
        options: the dataset's own options (``views``, ``labels``, ``uncertain``, ``blank``:
            :attr:`lmfloss.data.adapters.Adapter.options`); ``None`` values take its defaults.

    Returns:
        The :class:`Splits`.

    Raises:
        ValueError: unknown dataset, group kind or split seed.
        FileNotFoundError: missing root, metadata or image files.
        DataError: malformed metadata, labels outside the classes, an empty class, an
            unreadable image file (without ``skip_bad_images``).
    """
    return _load(LoadRequest(
        dataset, root=root, csv=csv, seed=seed, group_by=group_by, download=download,
        skip_bad_images=skip_bad_images, folds=folds, fold=fold, fold_seed=fold_seed,
        folds_include_test=folds_include_test, task=task, label_columns=label_columns, options=options,
    ))[0]


def _load(request: LoadRequest) -> tuple[Splits, DatasetIndex, list[tuple[int, str]]]:
    """``(splits, the index with every record, (position, reason) of the records left out)``."""
    adapter = get_adapter(request.dataset)
    task = get_task(resolve_task(request.dataset, request.task))
    request = _settled(request, adapter, task)
    index = _read_index(request, adapter, task)
    bad = _bad_images(index, request.skip_bad_images)
    check_folds(request.dataset, index, request.folds, request.fold, request.folds_include_test)
    targets = targets_of(task)
    if request.group_by is not None:
        targets.warn_groups(index, request.group_by)
    assignment, official = _assign(request, index, targets)
    kept, kept_assignment = _without(index, assignment, bad)
    cv = None
    if request.folds is not None and request.fold is not None:
        cv = {"folds": request.folds, "fold": request.fold, "fold_seed": request.fold_seed}
    splits = Splits(
        kept, kept_assignment, seed=request.seed, group_by=request.group_by, official=official,
        skip_bad_images=request.skip_bad_images, skipped=[str(index.records[i].path) for i, _ in bad], cv=cv,
    )
    check_split_classes(splits)
    if request.group_by is None:
        _warn_leakage(splits)
    return splits, index, bad


def whole_dataset(config: TrainConfig) -> Splits:
    """Every record of ``config``'s dataset as one ``test`` split, undivided: an external
    validation set (``lmfloss evaluate --name``) is scored whole, so none of a split's checks
    (classes in every split, training positives) applies. Bad images as ``skip_bad_images`` says."""
    request = LoadRequest.of(config)
    adapter = get_adapter(request.dataset)
    task = get_task(resolve_task(request.dataset, request.task))
    request = _settled(request, adapter, task)
    index = _read_index(request, adapter, task)
    bad = _bad_images(index, request.skip_bad_images)
    kept, assignment = _without(index, ["test"] * len(index.records), bad)
    return Splits(kept, assignment, seed=request.seed, group_by=request.group_by, official=True,
                  skip_bad_images=request.skip_bad_images, skipped=[str(index.records[i].path) for i, _ in bad])


def _settled(request: LoadRequest, adapter: Adapter, task: Task) -> LoadRequest:
    """``request`` checked against its dataset and task, with a patient-scored dataset's images
    grouped by patient unless a grouping was asked."""
    dataset, group_by = request.dataset, request.group_by
    if task.group_scoring and adapter.score_by == "patient" and group_by is None:
        # The dataset labels patients (ODIR-5K: each eye carries its patient's labels): an eye in
        # test whose twin is in train would be a leak, so its patients stay whole by default.
        logger.info("dataset %r labels patients: each patient's images kept in one split (group_by patient)",
                    dataset)
        group_by = "patient"
    if group_by is None and adapter.group_by is not None:  # a dataset of many images per patient (chest X-rays)
        group_by = adapter.group_by
    options = settled_options(dataset, request.options or {})
    if request.label_columns is not None and (dataset != "csv" or not targets_of(task).takes_label_columns):
        names = or_words([t.name for t in tasks_where(lambda t: targets_of(t).takes_label_columns)])
        raise ValueError(f"--label-columns is for --dataset csv --task {names}")
    if group_by is not None and group_by not in GROUP_KINDS:
        raise ValueError(f"group_by must be None or one of {list(GROUP_KINDS)}, got {group_by!r}")
    if group_by is not None and not adapter.user_groups and adapter.group_kind != group_by:
        supported = f"only by {adapter.group_kind!r}" if adapter.group_kind else "not at all"
        raise ValueError(f"dataset {dataset!r} can be grouped {supported}, got group_by={group_by!r}")
    if not isinstance(request.seed, int) or isinstance(request.seed, bool):
        raise ValueError(f"seed must be an integer, got {request.seed!r}")
    if adapter.needs_root and request.root is None:
        raise ValueError(f"dataset {dataset!r} needs --root; expected layout: {adapter.layout}")
    return dataclasses.replace(request, group_by=group_by, options=options)


def _read_index(request: LoadRequest, adapter: Adapter, task: Task) -> DatasetIndex:
    """The adapter's index of the request's data, of ``task`` (checked: class names, group ids)."""
    dataset, group_by = request.dataset, request.group_by
    root_path = Path(request.root).expanduser() if request.root is not None else None
    csv_path = Path(request.csv).expanduser() if request.csv is not None else None
    index = adapter.index(root_path, csv_path, request.download, task=task.name,
                          label_columns=request.label_columns, seed=request.seed, **(request.options or {}))
    if get_task(index.task).target != task.target:  # an adapter that ignored the task it was asked for: a bug
        raise DataError(f"dataset {dataset!r} gave a {index.task} index for task {task.name!r}")
    index.task = task.name  # the task asked, whichever task of these targets the adapter knows
    check_class_names(index.class_names)
    index.group_kind = index.group_kind or adapter.group_kind
    if group_by is not None and not any(r.group for r in index.records):
        where = str(csv_path) if dataset == "csv" else str(root_path)
        hint = adapter.group_hint or (
            "put HAM10000_metadata.csv (lesion_id,image_id,...) next to GroundTruth.csv"
            if dataset == "ham10000" else f"its metadata must give a {group_by} id per image")
        raise DataError(f"dataset {dataset!r} ({where!r}) has no {group_by} ids to group by; {hint}")
    return index


def _assign(request: LoadRequest, index: DatasetIndex, targets: Targets) -> tuple[list[str], bool]:
    """``(split of every record, whether it is the dataset's own split)``."""
    grouped = request.group_by is not None
    if request.folds is not None and request.fold is not None:
        return targets.fold_split(index.records, len(index.class_names), request.folds, request.fold,
                                  request.fold_seed, grouped), False
    if index.official_split is not None:
        bad = sorted(set(index.official_split) - set(SPLIT_NAMES))
        if bad:
            raise DataError(f"split values {bad} are not among {list(SPLIT_NAMES)}")
        if grouped and index.split_groups != request.group_by:
            raise ValueError(f"dataset {request.dataset!r} comes with its own split; "
                             f"group_by={request.group_by!r} does not apply")
        return list(index.official_split), True
    return targets.split(index.records, len(index.class_names), request.seed, grouped), False


def _warn_leakage(splits: Splits) -> None:
    leak = splits.leakage()
    kind = splits.index.group_kind
    if leak and leak["straddling_groups"]:
        logger.warning(
            "split leakage: %d %s groups have images in more than one split; %d test images (%.1f%%) "
            "share a %s with a training or validation image -- use --group-by %s to keep each %s in one split",
            leak["straddling_groups"], kind or "", leak["test_images_affected"], 100 * leak["test_share"],
            kind or "group", kind or "patient", kind or "group",
        )


def check_folds(dataset: str, index: DatasetIndex, folds: int | None, fold: int | None,
                include_test: bool) -> None:
    """Refuse k-fold settings a dataset cannot take (one line naming the value)."""
    if folds is None:
        if fold is not None:
            raise ValueError(f"fold={fold!r} needs folds (the number of folds, e.g. --folds 5)")
        return
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"--folds must be an integer >= 2, got {folds!r}")
    if index.official_split is not None and not include_test:
        raise ValueError(
            f"dataset {dataset!r} comes with its own train/val/test split; k-fold cross-validation would "
            "discard its test split -- pass --folds-include-test to pool all its images into the folds"
        )


def fold_assignment(dataset: str, root: str | Path | None = None, csv: str | Path | None = None, *,
                    folds: int, fold_seed: int = 23, group_by: str | None = None,
                    folds_include_test: bool = False, download: bool = False,
                    skip_bad_images: bool = False, task: str | None = None,
                    label_columns: list[str] | None = None,
                    options: Mapping[str, str | None] | None = None) -> tuple[DatasetIndex, list[int]]:
    """``(index, fold of every record)`` for ``lmfloss split --folds``; the same seed gives the same
    folds (assigned over every file, unreadable ones left out after, as :func:`load_splits` does)."""
    splits, index, bad = _load(LoadRequest(
        dataset, root=root, csv=csv, group_by=group_by if group_by else None, download=download,
        skip_bad_images=skip_bad_images, folds=folds, fold=1, fold_seed=fold_seed,
        folds_include_test=folds_include_test, task=task, label_columns=label_columns, options=options,
    ))
    assigned = targets_of(index.task).folds(index.records, len(index.class_names), folds, fold_seed,
                                            grouped=splits.group_by is not None)
    return _without(index, assigned, bad)


def splits_for(config: TrainConfig) -> Splits:
    """The :class:`Splits` of a run's config (dataset, root, csv, split seed, group_by, fold...)."""
    return _load(LoadRequest.of(config))[0]


def dataset_for(
    config: TrainConfig,
    split: str,
    splits: Splits | None = None,
    *,
    defer_float: bool = False,
    progress: bool = False,
    should_stop: Callable[[], bool] | None = None,
    warn_notes: bool = True,
) -> ImageDataset:
    """The dataset of ``split`` exactly as the run of ``config`` sees it: image size,
    intensity rule, normalisation, and augmentation for ``"train"`` only.

    The one path from a config to its data, used by training, ``evaluate``, ``predict``
    and ``cam`` alike, so a served model sees the pixels it was trained on. A missing image
    cache is built with ``config.workers`` decoding processes (0: in this process), as
    ``lmfloss prepare --workers`` builds it. ``warn_notes``: see :func:`make_dataset`.
    """
    splits = splits if splits is not None else splits_for(config)
    # torch-free module (lmfloss split loads it): only the datasets need torch
    from lmfloss.data.dataset import make_dataset

    return make_dataset(
        splits, split, image_size=config.image_size, normalize=config.normalize,
        augment=config.augment if split == "train" else "none", cache_dir=config.cache_dir,
        defer_float=defer_float, intensity=config.intensity, progress=progress, should_stop=should_stop,
        cache_workers=config.workers, warn_notes=warn_notes,
    )
