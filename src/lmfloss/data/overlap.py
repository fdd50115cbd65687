"""Images an external validation set shares with a run's own data.

External validation means data the model never saw. Public datasets overlap more than their
names suggest: every one of HAM10000's 10,015 images is in ISIC-2019's training set (the same
ISIC archive ids), so a run trained on one and "externally validated" on the other scores its
own training images. :func:`shared_images` finds the external images that are the run's: the
same image id **and** the same image (the same file bytes, or the same pixels once decoded),
so two unrelated folders that both hold ``benign/0001.png`` are not mistaken for one. An
external image with a run image's id but other pixels (a re-encoded or resized copy, or an
unrelated image of the same name) is listed apart: it cannot be told from here.

``lmfloss evaluate --name`` refuses an external set with shared images, or with
``--drop-overlap`` scores the rest (:func:`without_shared`): the shared images and every other
image of their patients or lesions, since a patient whose other eye the run trained on is no
external patient.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from lmfloss.data.records import SPLIT_NAMES, Record
from lmfloss.data.splits import Splits

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Overlap:
    """What :func:`shared_images` found.

    Attributes:
        shared: the run's split (``train``/``val``/``test``) -> ids of the external images that
            are that split's images (same id, same image), in the external set's order.
        same_id_other_image: ids of external images named like a run image whose pixels differ.
    """

    shared: dict[str, list[str]] = field(default_factory=dict)
    same_id_other_image: list[str] = field(default_factory=list)

    @property
    def ids(self) -> set[str]:
        """Every shared external image id."""
        return {i for ids in self.shared.values() for i in ids}

    def __bool__(self) -> bool:
        return bool(self.ids)

    def counts(self) -> dict[str, int]:
        """Shared images per run split, every split named (``{"train": 3, "val": 0, "test": 1}``)."""
        return {split: len(self.shared.get(split, [])) for split in SPLIT_NAMES}

    def describe(self, n_external: int) -> str:
        """``3 of the external set's 80 images are the run's own (train 2, validation 1, test 0;
        e.g. 12_left, 12_right)``."""
        counts = self.counts()
        examples = sorted(self.ids)[:3]
        return (f"{len(self.ids)} of the external set's {n_external} images are the run's own (train "
                f"{counts['train']}, validation {counts['val']}, test {counts['test']}; e.g. {', '.join(examples)})")


def _same_file_bytes(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as left, open(b, "rb") as right:
        while True:
            x, y = left.read(_CHUNK), right.read(_CHUNK)
            if x != y:
                return False
            if not x:
                return True


def _same_image(mine: Splits, record: Record, theirs: Splits, other: Record) -> bool:
    """One image in both datasets: the same file bytes, else the same decoded pixels."""
    try:
        if record.path is not None and other.path is not None and _same_file_bytes(record.path, other.path):
            return True
        a, b = mine.load_image(record), theirs.load_image(other)
    except (OSError, ValueError) as error:  # an unreadable file is scored (or refused) by evaluation itself
        logger.debug("cannot compare %s: %s", other.id, error)
        return False
    return a.shape == b.shape and bool(np.array_equal(a, b))


def shared_images(run_splits: Splits, external: Splits, split: str = "test") -> Overlap:
    """The images of ``external``'s ``split`` that are images of ``run_splits`` (any split).

    Args:
        run_splits: the data the run was trained, validated and tested on.
        external: the external set (:func:`lmfloss.data.load.whole_dataset`: one ``test`` split).
        split: the external split to check.

    Returns:
        An :class:`Overlap`; falsy when the sets share no image.
    """
    mine: dict[str, tuple[str, Record]] = {}
    for name in SPLIT_NAMES:
        for record in run_splits.records(name):
            mine.setdefault(record.id, (name, record))
    shared: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    other_image: list[str] = []
    for record in external.records(split):
        hit = mine.get(record.id)
        if hit is None:
            continue
        name, own = hit
        (shared[name] if _same_image(run_splits, own, external, record) else other_image).append(record.id)
    found = Overlap({k: v for k, v in shared.items() if v}, other_image)
    if found or other_image:
        logger.info("%d external image(s) are named like one of the run's: %d the same image, %d other pixels",
                    len(found.ids) + len(other_image), len(found.ids), len(other_image))
    return found


def without_shared(external: Splits, ids: Iterable[str]) -> tuple[Splits, int, int]:
    """``external`` (a whole set: :func:`lmfloss.data.load.whole_dataset`) without the images
    ``ids`` and every other image of their groups (patients, lesions): the rest, how many images
    were left out and how many groups those were.

    Raises:
        ValueError: nothing is left.
    """
    ids = set(ids)
    records = external.index.records
    groups = {r.group for r in records if r.id in ids and r.group is not None}
    keep = [i for i, r in enumerate(records) if r.id not in ids and (r.group is None or r.group not in groups)]
    if not keep:
        raise ValueError(f"every image of the external set is the run's own or of its patients/lesions "
                         f"({len(records)} images): nothing is left to score as external")
    official = external.index.official_split
    index = dataclasses.replace(external.index, records=[records[i] for i in keep],
                                official_split=None if official is None else [official[i] for i in keep])
    rest = Splits(index, ["test"] * len(keep), seed=external.seed, group_by=external.group_by, official=True,
                  skip_bad_images=external.skip_bad_images, skipped=external.skipped)
    return rest, len(records) - len(keep), len(groups)
