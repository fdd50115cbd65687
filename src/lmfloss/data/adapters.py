"""The registry of dataset adapters: name -> how to index a root, what layout it expects.

Every adapter is a function ``index(root, csv, download, task=..., label_columns=...) ->
DatasetIndex``; the registry holds it with the layout it expects, where the data is
published (``lmfloss datasets``) and the targets it can give (:func:`resolve_task`: the one
place that decides a run's task from what was asked and what the dataset is; any registered
task whose targets the dataset gives, :mod:`lmfloss.task`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmfloss.config import option_keys
from lmfloss.data import chestxray, files, medmnist
from lmfloss.data.records import DatasetIndex
from lmfloss.data.synthetic import index_synthetic, index_synthetic_multilabel
from lmfloss.data.targets import or_words, targets_of, tasks_where
from lmfloss.task import TASKS, Task, get_task

if TYPE_CHECKING:
    from lmfloss.config import TrainConfig

logger = logging.getLogger(__name__)

IndexFunction = Callable[..., DatasetIndex]
# What a metric selecting the epoch is, where its name alone does not say (refusals name it).
_METRIC_NOTES = {"map": " (mean average precision over labels)"}


@dataclass(frozen=True)
class Adapter:
    """One dataset adapter.

    Attributes:
        name: registry name (``--dataset``).
        index: ``(root, csv, download) -> DatasetIndex``.
        layout: the folder/file layout expected under ``--root``.
        source: where the data is published.
        group_kind: ``"lesion"`` / ``"patient"`` when images can be grouped, else ``None``.
        needs_root: False for ``synthetic``, MedMNIST and ``csv``.
        user_groups: the groups come from the user's own data (a CSV column, sub-folders), so
            either ``--group-by`` name is accepted.
        group_hint: how to give this adapter's data groups (for the error when it has none).
        in_memory: an array dataset (MedMNIST, synthetic), resized in memory with torch.
        targets: the kinds of targets the dataset can give (:attr:`lmfloss.task.Task.target`),
            its natural one first (``("multi-hot",)`` for ChestMNIST; ODIR-5K, csv and
            synthetic give both ``index`` and ``multi-hot``).
        score_by: how a run of a task scoring groups (multi-label) of this dataset is scored
            unless told otherwise (``"patient"`` for ODIR-5K, whose official task scores patients;
            ``"study"`` for CheXpert, whose paper scores a study by the maximum over its views).
        options: the dataset's own options (config keys declared ``option``: ``views``,
            ``labels``, ``uncertain``, ``blank``) with their defaults; another dataset refuses them.
        group_by: how its images are grouped when split unless told otherwise (``"patient"``
            for the chest X-ray collections, whose patients have many images).
        studies: its records carry their study (``Record.study``), so ``score_by: study`` applies.
    """

    name: str
    index: IndexFunction
    layout: str
    source: str
    group_kind: str | None = None
    needs_root: bool = True
    user_groups: bool = False
    group_hint: str = ""
    in_memory: bool = False
    targets: tuple[str, ...] = ("index",)
    score_by: str = "image"
    options: Mapping[str, str | None] = field(default_factory=dict)
    group_by: str | None = None
    studies: bool = False

    @property
    def tasks(self) -> tuple[str, ...]:
        """The registered tasks the dataset can give (those of its targets), its natural one first."""
        return tuple(task.name for kind in self.targets for task in TASKS.values() if task.target == kind)

    @property
    def resize(self) -> str:
        """How this adapter's images are resized for training: ``"torch"`` (array datasets,
        :func:`lmfloss.data.dataset.resize_array`) or ``"pil"`` (files, the image cache)."""
        return "torch" if self.in_memory else "pil"


# The synthetic set of each kind of targets: 7 classes, or 5 lesion kinds with boxes per lesion.
_SYNTHETIC: dict[str, Callable[[], DatasetIndex]] = {"index": index_synthetic, "multi-hot": index_synthetic_multilabel}


def _synthetic(root: Path | None, csv: Path | None, download: bool, **options: Any) -> DatasetIndex:
    return _SYNTHETIC[get_task(options.get("task")).target]()


def _files(function: Callable[..., DatasetIndex], accepts: tuple[str, ...] = ()) -> IndexFunction:
    """An index function of :mod:`lmfloss.data.files`; ``accepts`` names the options it takes."""
    def index(root: Path | None, csv: Path | None, download: bool, **options: Any) -> DatasetIndex:
        return function(root, csv, **{k: v for k, v in options.items() if k in accepts})

    index.__name__ = function.__name__
    return index


def _medmnist(name: str) -> IndexFunction:
    def index(root: Path | None, csv: Path | None, download: bool, **options: Any) -> DatasetIndex:
        return medmnist.index_medmnist(name, root, download_missing=download)

    return index


ADAPTERS: dict[str, Adapter] = {}


def register(adapter: Adapter) -> Adapter:
    ADAPTERS[adapter.name] = adapter
    return adapter


register(Adapter(
    "synthetic", _synthetic,
    layout="(none: generated in memory, deterministic; 3,100 RGB images of 64 px, 7 classes, imbalance 50; "
    "--task multilabel: 3,000 images with up to four lesions of 5 kinds, prevalence 45% to 2%, boxes per lesion)",
    source="embedded in lmfloss", needs_root=False, in_memory=True, targets=("index", "multi-hot"),
))
register(Adapter(
    "ham10000", _files(files.index_ham10000),
    layout="Kaggle 'ham1000-segmentation-and-classification': GroundTruth.csv (image,MEL,NV,BCC,AKIEC,BKL,DF,VASC), "
    "images/<id>.jpg, masks/<id>_segmentation.png; or Harvard Dataverse/ISIC: HAM10000_metadata.csv "
    "(lesion_id,image_id,dx,...), HAM10000_images_part_1/, HAM10000_images_part_2/",
    source="https://doi.org/10.7910/DVN/DBW86T ; https://www.kaggle.com/datasets/surajghuwalewala/ham1000-segmentation-and-classification",
    group_kind="lesion",
))
register(Adapter(
    "isic2019", _files(files.index_isic2019),
    layout="ISIC_2019_Training_GroundTruth.csv (image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK), images <id>.jpg anywhere "
    "under the root (e.g. ISIC_2019_Training_Input/); optional ISIC_2019_Training_Metadata.csv for lesion_id",
    source="https://challenge.isic-archive.com/data/#2019 ; https://www.kaggle.com/datasets/andrewmvd/isic-2019",
    group_kind="lesion",
))
register(Adapter(
    "odir5k", _files(files.index_odir5k, ("task",)),
    layout="full_df.csv (one row per eye image: ID,...,N,D,G,C,A,H,M,O,labels,filename), images in "
    "preprocessed_images/ or anywhere under the root; --task multilabel: the official task, the patient's 8 "
    "labels N,D,G,C,A,H,M,O on each eye, scored per patient",
    source="https://www.kaggle.com/datasets/andrewmvd/ocular-disease-recognition-odir5k",
    group_kind="patient", targets=("index", "multi-hot"), score_by="patient",
))
register(Adapter(
    "covid19", _files(files.index_covid19),
    layout="class folders COVID/, Lung_Opacity/, Normal/, Viral Pneumonia/ (each with images/ or images directly), "
    "in the root or one folder below it (COVID-19_Radiography_Dataset/)",
    source="https://www.kaggle.com/datasets/tawsifurrahman/covid19-radiography-database",
))
register(Adapter(
    "imagefolder", _files(files.index_imagefolder),
    layout="<root>/<class>/<image>, images at any depth below a class folder (ids: paths relative to the "
    "root); with <root>/<class>/<patient>/<image> the patient folder is the group of --group-by patient",
    source="your own data", user_groups=True,
    group_hint="put each patient's (or lesion's) images in a sub-folder of its class folder: "
    "<root>/<class>/<patient>/<image>",
))
register(Adapter(
    "csv", _files(files.index_csv, ("task", "label_columns", "no_finding")), needs_root=False,
    layout="--csv FILE with columns path,label[,split][,group] (split: train/val/test; group, patient_id or "
    "lesion_id for --group-by); paths relative to --root or to the CSV's folder; --task multilabel: a column "
    "labels (';'-separated label names, empty = no finding) or one 0/1 column per label (--label-columns A,B,C)",
    source="your own data", user_groups=True, targets=("index", "multi-hot"), options={"no_finding": None},
    group_hint="add a column group (or patient_id, lesion_id) to the CSV",
))
register(Adapter(
    "nih-cxr14", _files(chestxray.index_nih_cxr14, ("seed", *chestxray.NIH_OPTIONS)),
    layout=chestxray.NIH_LAYOUT, source=chestxray.NIH_SOURCE, group_kind="patient", targets=("multi-hot",),
    options=chestxray.NIH_OPTIONS, group_by="patient",
))
register(Adapter(
    "chexpert", _files(chestxray.index_chexpert, ("seed", *chestxray.CHEXPERT_OPTIONS)),
    layout=chestxray.CHEXPERT_LAYOUT, source=chestxray.CHEXPERT_SOURCE, group_kind="patient",
    targets=("multi-hot",), score_by="study", options=chestxray.CHEXPERT_OPTIONS, group_by="patient", studies=True,
))
for _flag in medmnist.FLAGS:
    register(Adapter(
        _flag, _medmnist(_flag),
        layout=f"{_flag}.npz (or {_flag}_64/_128/_224.npz via --dataset {_flag}_224) in the root or root/{_flag}/; "
        "official train/val/test splits" + ("; multi-label (14 findings)" if _flag in medmnist.MULTILABEL else ""),
        source=medmnist.HOMEPAGE, needs_root=False, in_memory=True,
        targets=(get_task(medmnist.task_of(_flag)).target,),
    ))


def get_adapter(name: str) -> Adapter:
    """The adapter called ``name``; MedMNIST names may carry a size (``dermamnist_224``).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if name in ADAPTERS:
        return ADAPTERS[name]
    parsed = medmnist.parse_name(name)
    if parsed is not None:
        base = ADAPTERS[parsed[0]]
        return Adapter(name, _medmnist(name), base.layout, base.source, needs_root=False, in_memory=True,
                       targets=base.targets)
    raise ValueError(
        f"unknown dataset {name!r}; expected one of {sorted(ADAPTERS)} "
        "(MedMNIST names may end in _64, _128 or _224)"
    )


def resolve_task(dataset: str, task: str | None = None) -> str:
    """The task a run of ``dataset`` has when ``task`` was asked: ``task`` itself if the dataset
    gives its targets; not asked (``None``), the dataset's own: the default task where it gives
    its targets, else its natural one (ChestMNIST: multi-label by nature). A task asked for is
    never swapped: ``--task multiclass`` on ChestMNIST is refused, as silently training
    another task than the one asked would be. The config/data layer decides the task here,
    once; losses, metrics, report, predict, export and cam read it from the run.

    Raises:
        ValueError: an unknown task, or a task asked whose targets the dataset cannot give (a
            multi-label task of a multi-class-only dataset, a multi-class one of ChestMNIST).
    """
    asked = get_task(task)
    adapter = get_adapter(dataset)
    if asked.target in adapter.targets:
        return asked.name
    if task is None:
        return adapter.tasks[0]
    others = [a.name for a in ADAPTERS.values() if asked.target in a.targets]
    flags = [name for name in others if name in medmnist.FLAGS]
    raise ValueError(f"dataset {dataset!r} is {' or '.join(get_task(t).display for t in adapter.tasks)} only; "
                     f"--task {asked.name} needs one of {sorted(set(others) - set(flags))}"
                     + "".join(f" or {flag}" for flag in flags)
                     + f" (leave --task out for {dataset}'s own task, {adapter.tasks[0]})")


def resolve_config(config: TrainConfig) -> TrainConfig:
    """``config`` with the keys that follow from its task settled, once, before anything runs:
    ``task`` (:func:`resolve_task`); for a task scoring groups (multi-label), ``score_by`` (the
    dataset's own unless given: patient for ODIR-5K) and the grouping it needs; and
    ``select_metric`` (the task's headline when left at the default task's, ``f1_macro``: ``map``
    for a multi-label task; one of the task's selectable metrics otherwise). ``config.yaml``
    records the result, so a resumed run, a sweep's reuse check and the report all see the same keys.

    Raises:
        ValueError: a task the dataset cannot give, a selection metric or key the task has not.
    """
    name = resolve_task(config.dataset, config.task)
    task = get_task(name)
    changes: dict[str, Any] = {}
    if name != config.task:  # not asked (None): the dataset's own, recorded in config.yaml
        if name != get_task(None).name:
            logger.info("dataset %r is %s by nature: task set to %s", config.dataset, task.display, name)
        changes["task"] = name
    changes.update(settled_options(config.dataset, {k: getattr(config, k) for k in option_keys()}))
    if config.group_by is None and get_adapter(config.dataset).group_by is not None:
        changes["group_by"] = get_adapter(config.dataset).group_by
    changes.update(_settled_scoring(config.replace(**changes), task))
    changes.update(_settled_select_metric(config, task))
    _check_task_keys(config, task)
    return config.replace(**changes) if changes else config


def _settled_scoring(config: TrainConfig, task: Task) -> dict[str, Any]:
    """A task scoring groups: ``score_by`` (given, or the dataset's own) and, to score patients,
    their images kept in one split (``group_by patient``)."""
    if not task.group_scoring:
        return {}  # a score_by given is refused with the other keys the task has not
    adapter = get_adapter(config.dataset)
    score_by = config.score_by or adapter.score_by
    if score_by == "study" and not adapter.studies:
        owners = [a.name for a in ADAPTERS.values() if a.studies]
        raise ValueError(f"score_by 'study' needs images that know their study ({', '.join(owners)}); dataset "
                         f"{config.dataset!r} has none -- use score_by image or patient")
    changes: dict[str, Any] = {"score_by": score_by}
    if score_by == "patient":
        # A patient's images are combined into one score: they must lie in one split, or one
        # patient would be scored in validation and in test (and a test eye's twin trained on).
        if config.group_by is None:
            logger.info("scoring patients: each patient's images kept in one split (group_by patient)")
            changes["group_by"] = "patient"
        elif config.group_by != "patient":
            raise ValueError(f"score_by 'patient' combines a patient's images, so they must share a split: "
                             f"use group_by patient, not {config.group_by!r}")
    return changes


def settled_options(dataset: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset's own options (:attr:`Adapter.options`): each given value, or the dataset's
    default, for the options it takes (a run records them: ``config.yaml`` says which
    uncertainty policy it trained with).

    Raises:
        ValueError: an option given to a dataset that does not take it, naming those that do.
    """
    adapter = get_adapter(dataset)
    for key, value in given.items():
        if value is not None and key not in adapter.options:
            owners = [a.name for a in ADAPTERS.values() if key in a.options]
            raise ValueError(f"{key} is an option of dataset {or_words(owners)}, not of {dataset!r} "
                             f"(got {key}={value!r})")
    return {key: default if given.get(key) is None else given[key] for key, default in adapter.options.items()}


def _settled_select_metric(config: TrainConfig, task: Task) -> dict[str, Any]:
    """The task's headline for a ``select_metric`` left at the default task's; a metric of
    other tasks only is refused, naming them and what this task selects by."""
    metric = config.select_metric
    owners = tasks_where(lambda t: metric in t.select_metrics)
    if metric in task.select_metrics or not owners:  # a metric no task has: the config's choices refuse it
        return {}
    default = get_task(None)
    if metric == default.headline:  # the config's default, left as it was
        return {"select_metric": task.headline}
    displays, names = or_words([t.display for t in owners]), or_words([t.name for t in owners])
    if task is default:  # the task may be the default by oversight: say which --task has the metric
        raise ValueError(f"select_metric {metric!r}{_METRIC_NOTES.get(metric, '')} is for {displays} tasks; "
                         f"add --task {names} or select by {or_words(task.select_metrics)}")
    raise ValueError(f"select_metric {metric!r} is for {displays} tasks; a {task.display} run selects its epoch "
                     f"by {or_words(task.select_metrics)}")


def _check_task_keys(config: TrainConfig, task: Task) -> None:
    """Refuse the keys ``task`` has not (naming the tasks they are for), and label columns of a
    dataset other than ``csv``."""
    targets = targets_of(task)
    if config.positive_class is not None and not targets.has_positive_class:
        kinds = or_words([t.display for t in tasks_where(lambda t: targets_of(t).has_positive_class)])
        raise ValueError(f"positive_class is for binary {kinds} tasks; a {task.display} task has a decision "
                         f"per {task.item} (thresholds chosen on validation)")
    if config.label_columns is not None and not targets.takes_label_columns:
        owners = tasks_where(lambda t: targets_of(t).takes_label_columns)
        raise ValueError(f"config label_columns is for {or_words([t.display for t in owners])} tasks; "
                         f"add --task {or_words([t.name for t in owners])}")
    if config.label_columns is not None and config.dataset != "csv":
        raise ValueError(f"label_columns is for --dataset csv, got dataset {config.dataset!r}")
    if config.score_by is not None and not task.group_scoring:
        owners = tasks_where(lambda t: t.group_scoring)
        raise ValueError(f"config score_by={config.score_by!r} is for {or_words([t.display for t in owners])} "
                         f"tasks (--task {or_words([t.name for t in owners])})")


def list_adapters() -> list[Adapter]:
    """Every registered adapter, in registration order."""
    return list(ADAPTERS.values())
