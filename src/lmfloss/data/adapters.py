"""The registry of dataset adapters: name -> how to index a root, what layout it expects.

Every adapter is a function ``index(root, csv, download, task=..., label_columns=...) ->
DatasetIndex``; the registry holds it with the layout it expects, where the data is
published (``lmfloss datasets``) and the tasks it can give (:func:`resolve_task`: the one
place that decides a run's task from what was asked and what the dataset is).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmfloss.data import medmnist
from lmfloss.data.records import DatasetIndex

if TYPE_CHECKING:
    from lmfloss.config import TrainConfig

TASKS = ("multiclass", "multilabel")
MULTILABEL_SELECT = ("map", "auc")
IndexFunction = Callable[..., DatasetIndex]


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
        tasks: the tasks the dataset can give, its natural one first (``("multilabel",)``
            for ChestMNIST; ODIR-5K, csv and synthetic give both).
        score_by: how a multi-label run of this dataset is scored unless told otherwise
            (``"patient"`` for ODIR-5K, whose official task scores patients).
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
    tasks: tuple[str, ...] = ("multiclass",)
    score_by: str = "image"

    @property
    def resize(self) -> str:
        """How this adapter's images are resized for training: ``"torch"`` (array datasets,
        :func:`lmfloss.data.dataset.resize_array`) or ``"pil"`` (files, the image cache)."""
        return "torch" if self.in_memory else "pil"


def _synthetic(root: Path | None, csv: Path | None, download: bool, **options: Any) -> DatasetIndex:
    from lmfloss.data.synthetic import index_synthetic, index_synthetic_multilabel

    return index_synthetic_multilabel() if options.get("task") == "multilabel" else index_synthetic()


def _files(function_name: str, accepts: tuple[str, ...] = ()) -> IndexFunction:
    """An index function of :mod:`lmfloss.data.files`; ``accepts`` names the options it takes."""
    def index(root: Path | None, csv: Path | None, download: bool, **options: Any) -> DatasetIndex:
        from lmfloss.data import files

        return getattr(files, function_name)(root, csv, **{k: v for k, v in options.items() if k in accepts})

    index.__name__ = function_name
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
    source="embedded in lmfloss", needs_root=False, in_memory=True, tasks=("multiclass", "multilabel"),
))
register(Adapter(
    "ham10000", _files("index_ham10000"),
    layout="Kaggle 'ham1000-segmentation-and-classification': GroundTruth.csv (image,MEL,NV,BCC,AKIEC,BKL,DF,VASC), "
    "images/<id>.jpg, masks/<id>_segmentation.png; or Harvard Dataverse/ISIC: HAM10000_metadata.csv "
    "(lesion_id,image_id,dx,...), HAM10000_images_part_1/, HAM10000_images_part_2/",
    source="https://doi.org/10.7910/DVN/DBW86T ; https://www.kaggle.com/datasets/surajghuwalewala/ham1000-segmentation-and-classification",
    group_kind="lesion",
))
register(Adapter(
    "isic2019", _files("index_isic2019"),
    layout="ISIC_2019_Training_GroundTruth.csv (image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK), images <id>.jpg anywhere "
    "under the root (e.g. ISIC_2019_Training_Input/); optional ISIC_2019_Training_Metadata.csv for lesion_id",
    source="https://challenge.isic-archive.com/data/#2019 ; https://www.kaggle.com/datasets/andrewmvd/isic-2019",
    group_kind="lesion",
))
register(Adapter(
    "odir5k", _files("index_odir5k", ("task",)),
    layout="full_df.csv (one row per eye image: ID,...,N,D,G,C,A,H,M,O,labels,filename), images in "
    "preprocessed_images/ or anywhere under the root; --task multilabel: the official task, the patient's 8 "
    "labels N,D,G,C,A,H,M,O on each eye, scored per patient",
    source="https://www.kaggle.com/datasets/andrewmvd/ocular-disease-recognition-odir5k",
    group_kind="patient", tasks=("multiclass", "multilabel"), score_by="patient",
))
register(Adapter(
    "covid19", _files("index_covid19"),
    layout="class folders COVID/, Lung_Opacity/, Normal/, Viral Pneumonia/ (each with images/ or images directly), "
    "in the root or one folder below it (COVID-19_Radiography_Dataset/)",
    source="https://www.kaggle.com/datasets/tawsifurrahman/covid19-radiography-database",
))
register(Adapter(
    "imagefolder", _files("index_imagefolder"),
    layout="<root>/<class>/<image>, images at any depth below a class folder (ids: paths relative to the "
    "root); with <root>/<class>/<patient>/<image> the patient folder is the group of --group-by patient",
    source="your own data", user_groups=True,
    group_hint="put each patient's (or lesion's) images in a sub-folder of its class folder: "
    "<root>/<class>/<patient>/<image>",
))
register(Adapter(
    "csv", _files("index_csv", ("task", "label_columns")), needs_root=False,
    layout="--csv FILE with columns path,label[,split][,group] (split: train/val/test; group, patient_id or "
    "lesion_id for --group-by); paths relative to --root or to the CSV's folder; --task multilabel: a column "
    "labels (';'-separated label names, empty = no finding) or one 0/1 column per label (--label-columns A,B,C)",
    source="your own data", user_groups=True, tasks=("multiclass", "multilabel"),
    group_hint="add a column group (or patient_id, lesion_id) to the CSV",
))
for _flag in medmnist.FLAGS:
    register(Adapter(
        _flag, _medmnist(_flag),
        layout=f"{_flag}.npz (or {_flag}_64/_128/_224.npz via --dataset {_flag}_224) in the root or root/{_flag}/; "
        "official train/val/test splits" + ("; multi-label (14 findings)" if _flag in medmnist.MULTILABEL else ""),
        source=medmnist.HOMEPAGE, needs_root=False, in_memory=True, tasks=(medmnist.task_of(_flag),),
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
                       tasks=base.tasks)
    raise ValueError(
        f"unknown dataset {name!r}; expected one of {sorted(ADAPTERS)} "
        "(MedMNIST names may end in _64, _128 or _224)"
    )


def resolve_task(dataset: str, task: str = "multiclass") -> str:
    """The task a run of ``dataset`` has when ``task`` was asked: ``task`` itself if the dataset
    gives it; a dataset that is multi-label by nature (ChestMNIST) is multi-label whatever
    the default said. The config/data layer decides the task here, once; losses, metrics,
    report, predict, export and cam read it from the run.

    Raises:
        ValueError: an unknown task, or a multi-label task of a multi-class-only dataset.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    adapter = get_adapter(dataset)
    if task in adapter.tasks:
        return task
    if adapter.tasks == ("multilabel",):
        return "multilabel"
    raise ValueError(f"dataset {dataset!r} is {' or '.join(t.replace('multi', 'multi-') for t in adapter.tasks)} "
                     f"only; --task {task} needs one of "
                     f"{sorted(a.name for a in ADAPTERS.values() if task in a.tasks and a.name not in medmnist.FLAGS)}"
                     + (" or chestmnist" if task == "multilabel" else ""))


def resolve_config(config: TrainConfig) -> TrainConfig:
    """``config`` with the keys that follow from its task settled, once, before anything runs:
    ``task`` (:func:`resolve_task`) and, for a multi-label task, ``score_by`` (the dataset's
    own unless given: patient for ODIR-5K) and ``select_metric`` (``map`` when left at the
    multi-class default ``f1_macro``; ``map`` or ``auc`` otherwise). ``config.yaml`` records
    the result, so a resumed run, a sweep's reuse check and the report all see the same keys.

    Raises:
        ValueError: a task the dataset cannot give, a selection metric or key the task has not.
    """
    import logging

    log = logging.getLogger(__name__)
    task = resolve_task(config.dataset, config.task)
    changes: dict[str, Any] = {}
    if task != config.task:
        log.info("dataset %r is multi-label: task set to multilabel", config.dataset)
        changes["task"] = task
    if task == "multilabel":
        score_by = changes["score_by"] = config.score_by or get_adapter(config.dataset).score_by
        if score_by == "patient":
            # A patient's images are combined into one score: they must lie in one split, or one
            # patient would be scored in validation and in test (and a test eye's twin trained on).
            if config.group_by is None:
                log.info("scoring patients: each patient's images kept in one split (group_by patient)")
                changes["group_by"] = "patient"
            elif config.group_by != "patient":
                raise ValueError(f"score_by 'patient' combines a patient's images, so they must share a split: "
                                 f"use group_by patient, not {config.group_by!r}")
        if config.select_metric == "f1_macro":
            changes["select_metric"] = "map"
        elif config.select_metric not in MULTILABEL_SELECT:
            raise ValueError(f"select_metric {config.select_metric!r} is for multi-class tasks; a multi-label "
                             f"run selects its epoch by {' or '.join(MULTILABEL_SELECT)}")
        if config.positive_class is not None:
            raise ValueError("positive_class is for binary multi-class tasks; a multi-label task has a decision "
                             "per label (thresholds chosen on validation)")
        if config.label_columns is not None and config.dataset != "csv":
            raise ValueError(f"label_columns is for --dataset csv, got dataset {config.dataset!r}")
    else:
        if config.select_metric == "map":
            raise ValueError("select_metric 'map' (mean average precision over labels) is for multi-label tasks; "
                             "add --task multilabel or select by f1_macro, auc, accuracy or balanced_accuracy")
        if config.label_columns is not None:
            raise ValueError("config label_columns is for multi-label tasks; add --task multilabel")
        if config.score_by is not None:
            raise ValueError(f"config score_by={config.score_by!r} is for multi-label tasks (--task multilabel)")
    return config.replace(**changes) if changes else config


def list_adapters() -> list[Adapter]:
    """Every registered adapter, in registration order."""
    return list(ADAPTERS.values())
