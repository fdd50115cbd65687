"""Chest X-ray collections read as they are published: NIH ChestX-ray14 and CheXpert.

Both are multi-label (multi-hot targets, :mod:`lmfloss.data.multilabel`) and grouped by patient.

**NIH ChestX-ray14** (Wang et al., "ChestX-ray8", CVPR 2017): ``Data_Entry_2017.csv`` (112,120
images, 30,805 patients), or the Kaggle 5 % sample's ``sample_labels.csv`` (same first seven
columns; ages written ``060Y`` where the full table writes ``60``; the last four headers
spelled differently -- neither is read here). ``Finding Labels`` joins the findings with
``|``; ``No Finding`` means none of the 14 (:data:`NIH_FINDINGS`, the published order, which
ChestMNIST keeps). Images are found anywhere under the root (the release's
``images_001/images/`` ... ``images_012/images/``). With ``train_val_list.txt`` and
``test_list.txt`` (the official patient-disjoint split) the test images are the list's and a
validation share of the train_val patients is drawn by iterative stratification; without them
the loader makes its patient-grouped, iteratively stratified 70:15:15 split.

**CheXpert** (Irvin et al., AAAI 2019): ``train.csv`` and ``valid.csv`` with a ``Path`` column
(``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``, or the full-size
release's ``CheXpert-v1.0/`` prefix) and one column per observation holding ``1.0``
(positive), ``0.0`` (negative), ``-1.0`` (uncertain) or nothing (not mentioned). What an
uncertain value means is the user's choice (the paper's U-Ignore, U-Ones, U-Zeros), per label
if wished (:func:`parse_uncertain`); a blank is negative (the usual reading) or unknown. An
unknown value is ``Record.unknown``: ``-1`` in the label array, left out by the losses and the
metrics. ``valid.csv`` (234 studies labelled by radiologists) is the validation set; the test
set is a share of ``train.csv``'s patients (the official test labels are not distributed with
the training data). Each image carries its study (``patientX/studyY``) for ``score_by: study``.

Why these are read here rather than through torchxrayvision (which reads both and aligns
labels across datasets): see ``docs/ARCHITECTURE.md`` -- in short, its datasets decode and
normalise images their own way (one channel scaled to [-1024, 1024], pandas/scikit-image),
while lmfloss's cache, transforms and splits must be the same for every dataset. Its label
names, order of findings and U-Ignore reading (``-1`` -> NaN) are the ones used here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from lmfloss.data.files import (
    find_metadata,
    image_files,
    lookup_images,
    missing_error,
    read_csv,
    require_root,
)
from lmfloss.data.multilabel import multilabel_holdout
from lmfloss.data.records import DatasetIndex, Record
from lmfloss.errors import DataError
from lmfloss.fileio import read_text

logger = logging.getLogger(__name__)

# The 14 findings in the order of the release's README (and ChestMNIST's label order).
NIH_FINDINGS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
NIH_NO_FINDING = "No Finding"
# The full table (and its 2020 re-release's name), then the Kaggle sample's.
NIH_TABLES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv", "sample_labels.csv")
NIH_LISTS = ("train_val_list.txt", "test_list.txt")
NIH_VIEWS: dict[str, tuple[str, ...] | None] = {"all": None, "PA": ("PA",), "AP": ("AP",)}
NIH_LAYOUT = ("Data_Entry_2017.csv (or the Kaggle sample's sample_labels.csv): Image Index,Finding Labels "
              "(findings joined by '|', 'No Finding' for none),Follow-up #,Patient ID,...,View Position; images "
              "<Image Index> anywhere under the root (images_001/images/ ... images_012/images/); optional "
              "train_val_list.txt and test_list.txt (the official patient-disjoint split); --views PA|AP|all")
NIH_SOURCE = ("https://nihcc.app.box.com/v/ChestXray-NIHCC ; https://www.kaggle.com/datasets/nih-chest-xrays/data "
              "(the 5 % sample: https://www.kaggle.com/datasets/nih-chest-xrays/sample)")

# The 14 observations in the published column order of train.csv / valid.csv.
CHEXPERT_OBSERVATIONS = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity",
                         "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
                         "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"]
# The five observations of the CheXpert competition (Irvin et al. 2019, Table 3), as it lists them.
CHEXPERT_COMPETITION = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
CHEXPERT_LABEL_SETS = {"all": CHEXPERT_OBSERVATIONS, "competition": CHEXPERT_COMPETITION}
CHEXPERT_PREFIXES = ("CheXpert-v1.0-small/", "CheXpert-v1.0/")
CHEXPERT_VIEWS: dict[str, tuple[str, ...] | None] = {"all": None, "frontal": ("Frontal",), "lateral": ("Lateral",)}
CHEXPERT_LAYOUT = ("train.csv and valid.csv (Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,...,Support Devices; "
                   "1.0 / 0.0 / -1.0 uncertain / blank) in the root or CheXpert-v1.0-small/ (or CheXpert-v1.0/) "
                   "below it, images at their Path; --views frontal|lateral|all, --labels all|competition, "
                   "--uncertain ignore|ones|zeros (or per label: Atelectasis=ones,Cardiomegaly=zeros), "
                   "--blank zeros|ignore; valid.csv is the validation set, --score-by study scores studies")
CHEXPERT_SOURCE = "https://stanfordmlgroup.github.io/competitions/chexpert/ (CheXpert-v1.0-small or the full size)"

UNKNOWN = -1
# What a value of each policy becomes: 1 positive, 0 negative, -1 unknown (left out).
UNCERTAIN_POLICIES = {"ignore": UNKNOWN, "ones": 1, "zeros": 0}  # Irvin et al.: U-Ignore, U-Ones, U-Zeros
BLANK_POLICIES = {"zeros": 0, "ignore": UNKNOWN}
# The cells of a CheXpert label column; anything else is refused, naming the line.
_CHEXPERT_VALUES = {"1.0": 1, "1": 1, "0.0": 0, "0": 0, "-1.0": -1, "-1": -1}

VAL_SHARE = 0.15  # the share of a published training list held out for validation (or test), by patient
# The options each adapter takes and their defaults (the config keys of the same names).
NIH_OPTIONS = {"views": "all"}
CHEXPERT_OPTIONS = {"views": "all", "labels": "all", "uncertain": "ignore", "blank": "zeros"}


def _refuse_repeats(ids: Sequence[str], lines: Sequence[str], table: Path) -> None:
    """An image listed twice would be trained on twice and could land in two splits: refused."""
    first: dict[str, str] = {}
    for image, line in zip(ids, lines):
        if first.setdefault(image, line) != line:
            raise DataError(f"{str(table)!r} lists image {image!r} twice (lines {first[image]} and {line})")


def _choice(value: str, choices: Mapping[str, object], option: str, dataset: str) -> str:
    if value not in choices:
        raise ValueError(f"--{option} {value!r} is not one of {list(choices)} for dataset {dataset!r}")
    return value


# --- NIH ChestX-ray14 -------------------------------------------------------------------


def nih_findings(text: str, line: str, table: Path) -> tuple[int, ...]:
    """The indices (into :data:`NIH_FINDINGS`) of a ``Finding Labels`` cell: names joined by
    ``|``; ``No Finding`` alone is none.

    Raises:
        DataError: a name outside the 14, ``No Finding`` beside a finding, or an empty cell.
    """
    names = [part.strip() for part in text.split("|")]
    if names == [NIH_NO_FINDING]:
        return ()
    if not any(names) or NIH_NO_FINDING in names:
        raise DataError(f"{str(table)!r} line {line}: Finding Labels {text!r} is neither 'No Finding' nor "
                        "findings joined by '|'")
    position = {name: j for j, name in enumerate(NIH_FINDINGS)}
    unknown = [name for name in names if name not in position]
    if unknown:
        raise DataError(f"{str(table)!r} line {line}: finding {unknown[0]!r} is not one of the 14 "
                        f"{NIH_FINDINGS} (or 'No Finding')")
    return tuple(sorted({position[name] for name in names}))


def index_nih_cxr14(root: Path | None, csv_path: Path | None = None, *, views: str = "all", seed: int = 23,
                    **_: object) -> DatasetIndex:
    """NIH ChestX-ray14 as published (see the module docstring); groups are patients."""
    _choice(views, NIH_VIEWS, "views", "nih-cxr14")
    root = require_root(root, "nih-cxr14", NIH_LAYOUT)
    table = find_metadata(root, NIH_TABLES)
    if table is None:
        raise FileNotFoundError(f"none of {list(NIH_TABLES)} found under {str(root)!r}; expected {NIH_LAYOUT}")
    required = ["Image Index", "Finding Labels", "Patient ID", *(["View Position"] if NIH_VIEWS[views] else [])]
    rows = read_csv(table, required)
    ids = [r["Image Index"].strip() for r in rows]
    _refuse_repeats(ids, [r["_line"] for r in rows], table)
    labels = [nih_findings(r["Finding Labels"], r["_line"], table) for r in rows]
    official = _nih_official(root, table, ids)
    keep = [i for i, r in enumerate(rows) if NIH_VIEWS[views] is None or r["View Position"].strip() in NIH_VIEWS[views]]
    if len(keep) < len(rows):
        logger.info("nih-cxr14: %d of %d images are %s views (--views %s)", len(keep), len(rows), views, views)
    paths = lookup_images([os.path.splitext(ids[i])[0] for i in keep], image_files(root), root)
    records = [Record(id=ids[i], label=None, path=path, group=f"patient-{rows[i]['Patient ID'].strip()}",
                      labels=labels[i]) for i, path in zip(keep, paths)]
    index = DatasetIndex(name="nih-cxr14", class_names=list(NIH_FINDINGS), records=records, root=root,
                         group_kind="patient", task="multilabel", source=table)
    if official is not None:
        lists = [official[i] for i in keep]
        index.official_split = _with_validation(records, lists, len(NIH_FINDINGS), seed)
        index.split_rule = (f"NIH's official lists: test_list.txt as test; validation {VAL_SHARE:.0%} of "
                            f"train_val_list.txt's patients (iteratively stratified, seed {seed}); train the rest")
        index.split_groups = "patient"
    return index


def _nih_official(root: Path, table: Path, ids: Sequence[str]) -> list[str] | None:
    """``"train"`` (train_val) or ``"test"`` of every table row from the official lists, or
    ``None`` when neither list is there.

    Raises:
        DataError: one list without the other, a listed image the table lacks, an image in both
            lists or in neither.
    """
    found = {name: table.parent / name if (table.parent / name).is_file() else find_metadata(root, [name])
             for name in NIH_LISTS}
    if not any(found.values()):
        return None
    absent = [name for name, path in found.items() if path is None]
    if absent:
        raise DataError(f"{absent[0]} not found under {str(root)!r} next to the other list; the official split "
                        f"needs both {list(NIH_LISTS)} (or neither, for lmfloss's own patient-grouped split)")
    in_table = set(ids)
    split_of: dict[str, str] = {}
    for name, split in zip(NIH_LISTS, ("train", "test")):
        path = found[name]
        for number, raw in enumerate(read_text(path, "list file").splitlines(), start=1):
            image = raw.strip()
            if not image:
                continue
            if image not in in_table:
                raise DataError(f"{str(path)!r} line {number}: image {image!r} is not in {str(table)!r}; "
                                "the list files and the table must come from the same release")
            if split_of.setdefault(image, split) != split:
                raise DataError(f"image {image!r} is in both {NIH_LISTS[0]} and {NIH_LISTS[1]}")
    missing = [i for i in ids if i not in split_of]
    if missing:
        raise DataError(f"{len(missing)} image(s) of {str(table)!r} are in neither {NIH_LISTS[0]} nor "
                        f"{NIH_LISTS[1]} (first: {missing[0]!r}); use the lists of the same release")
    return [split_of[i] for i in ids]


def _with_validation(records: Sequence[Record], splits: Sequence[str], num_labels: int, seed: int, *,
                     source: str = "train", held: str = "val") -> list[str]:
    """``splits`` with a :data:`VAL_SHARE` of the patients of ``source`` moved to ``held``
    (iteratively stratified on the labels present, so every finding keeps its prevalence)."""
    pool = [i for i, split in enumerate(splits) if split == source]
    out = list(splits)
    chosen = multilabel_holdout([records[i] for i in pool], num_labels, VAL_SHARE, seed, grouped=True)
    for i, is_held in zip(pool, chosen):
        if is_held:
            out[i] = held
    return out


# --- CheXpert ---------------------------------------------------------------------------


def parse_uncertain(text: str, names: Sequence[str]) -> list[str]:
    """The uncertainty policy of each label of ``names``: ``"ignore"``, ``"ones"`` or ``"zeros"``
    for all of them, or ``Label=policy`` pairs separated by ``,`` (the labels not named keep a
    bare policy given among the pairs, else ``ignore``): ``"Atelectasis=ones,Cardiomegaly=zeros"``,
    ``"zeros,Atelectasis=ones,Edema=ones"``.

    Raises:
        ValueError: an unknown policy, a name that is not one of ``names``, a label named twice.
    """
    default, per_label = "ignore", {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        name, sep, policy = (piece.strip() for piece in part.rpartition("="))
        if policy not in UNCERTAIN_POLICIES:
            raise ValueError(f"--uncertain {text!r}: policy {policy!r} is not one of {list(UNCERTAIN_POLICIES)}")
        if not sep:
            default = policy
            continue
        if name not in names:
            raise ValueError(f"--uncertain {text!r}: {name!r} is not one of the labels {list(names)}")
        if name in per_label:
            raise ValueError(f"--uncertain {text!r} names {name!r} twice")
        per_label[name] = policy
    return [per_label.get(name, default) for name in names]


def chexpert_value(cell: str, column: str, line: str, table: Path) -> int | None:
    """A CheXpert label cell: 1, 0, -1 (uncertain) or ``None`` (blank: not mentioned).

    Raises:
        DataError: any other value, naming the file, line and column.
    """
    text = cell.strip()
    if not text:
        return None
    if text not in _CHEXPERT_VALUES:
        raise DataError(f"{str(table)!r} line {line}: column {column!r} holds {text!r}; a CheXpert label is 1.0, "
                        "0.0, -1.0 (uncertain) or blank")
    return _CHEXPERT_VALUES[text]


def chexpert_study(path: str, line: str, table: Path) -> tuple[str, str]:
    """``(patient, study)`` of a ``Path`` cell (``.../patient00001/study1/view1_frontal.jpg`` ->
    ``("patient00001", "patient00001/study1")``).

    Raises:
        DataError: a path without ``patient<N>/study<M>/`` folders.
    """
    parts = path.replace("\\", "/").split("/")
    for k, part in enumerate(parts[:-2]):
        if part.startswith("patient") and parts[k + 1].startswith("study"):
            return part, f"{part}/{parts[k + 1]}"
    raise DataError(f"{str(table)!r} line {line}: Path {path!r} has no patient<N>/study<M>/ folders")


def _chexpert_targets(row: Mapping[str, str], names: Sequence[str], policies: Sequence[str], blank: str,
                      table: Path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(labels present, labels unknown)`` of one row under the policies. A blank on a row whose
    ``No Finding`` is 1 is negative whatever ``blank`` says (the labeller found nothing; Support
    Devices excepted), as torchxrayvision reads it."""
    nothing = "No Finding" in row and chexpert_value(row["No Finding"], "No Finding", row["_line"], table) == 1
    present, unknown = [], []
    for j, (name, policy) in enumerate(zip(names, policies)):
        value = chexpert_value(row[name], name, row["_line"], table)
        if value is None:
            value = 0 if nothing and name != "Support Devices" else BLANK_POLICIES[blank]
        elif value == -1:
            value = UNCERTAIN_POLICIES[policy]
        if value == 1:
            present.append(j)
        elif value == UNKNOWN:
            unknown.append(j)
    return tuple(present), tuple(unknown)


def _chexpert_table(root: Path) -> tuple[Path, Path]:
    """``(train.csv, valid.csv)`` under ``root`` (in it or up to two folders below)."""
    # the release's own folders first: a root holding several datasets may have other train.csv files
    train = find_metadata(root, ["train.csv", *(f"{prefix}train.csv" for prefix in CHEXPERT_PREFIXES)])
    if train is None:
        raise FileNotFoundError(f"train.csv not found under {str(root)!r}; expected {CHEXPERT_LAYOUT}")
    valid = train.parent / "valid.csv"
    if not valid.is_file():
        raise FileNotFoundError(f"valid.csv not found next to {str(train)!r}; CheXpert ships both")
    return train, valid


def _chexpert_image(path: str, base: Path, root: Path) -> str | None:
    """The image file of a ``Path`` cell: below the tables' folder with the release prefix
    stripped, or below the root as written; ``None`` when neither exists."""
    relative = path.strip().replace("\\", "/")
    for prefix in CHEXPERT_PREFIXES:
        if relative.startswith(prefix):
            relative = relative[len(prefix):]
            break
    for candidate in (base / relative, root / path.strip()):
        if candidate.is_file():
            return os.path.abspath(candidate)
    return None


def index_chexpert(root: Path | None, csv_path: Path | None = None, *, views: str = "all", labels: str = "all",
                   uncertain: str = "ignore", blank: str = "zeros", seed: int = 23, **_: object) -> DatasetIndex:
    """CheXpert as published (see the module docstring); groups are patients, each image knows
    its study."""
    _choice(views, CHEXPERT_VIEWS, "views", "chexpert")
    names = CHEXPERT_LABEL_SETS[_choice(labels, CHEXPERT_LABEL_SETS, "labels", "chexpert")]
    _choice(blank, BLANK_POLICIES, "blank", "chexpert")
    policies = parse_uncertain(uncertain, names)
    root = require_root(root, "chexpert", CHEXPERT_LAYOUT)
    train, valid = _chexpert_table(root)
    required = ["Path", *names, *(["Frontal/Lateral"] if CHEXPERT_VIEWS[views] else [])]
    records, splits, missing = [], [], []
    for table, split in ((train, "train"), (valid, "val")):
        rows = read_csv(table, required)
        _refuse_repeats([r["Path"].strip() for r in rows], [r["_line"] for r in rows], table)
        for row in rows:
            present, unknown = _chexpert_targets(row, names, policies, blank, table)
            if CHEXPERT_VIEWS[views] and row["Frontal/Lateral"].strip() not in CHEXPERT_VIEWS[views]:
                continue
            patient, study = chexpert_study(row["Path"], row["_line"], table)
            image = _chexpert_image(row["Path"], train.parent, root)
            if image is None:
                missing.append(row["Path"].strip())
                continue
            records.append(Record(id=row["Path"].strip(), label=None, path=image, group=patient, labels=present,
                                  unknown=unknown, study=study))
            splits.append(split)
    if missing:
        raise missing_error("image files", missing, train.parent)
    index = DatasetIndex(name="chexpert", class_names=list(names), records=records, root=root,
                         group_kind="patient", task="multilabel", source=train)
    index.official_split = _with_validation(records, splits, len(names), seed, held="test")
    index.split_rule = (f"CheXpert's valid.csv as validation; test {VAL_SHARE:.0%} of train.csv's patients "
                        f"(iteratively stratified, seed {seed}); train the rest")
    index.split_groups = "patient"
    logger.info("chexpert: %d images (%s views), labels %s, uncertain %s, blank %s", len(records), views,
                labels, ", ".join(f"{n}={p}" for n, p in zip(names, policies)), blank)
    return index
