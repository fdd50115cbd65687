"""Which images ``lmfloss cam`` explains, and short names for the runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_N = 8


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Short unique names for runs: the directory name, with parents added on clashes."""
    paths = [Path(p).resolve() for p in run_dirs]
    depth = 1
    while True:
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels) or depth >= max(len(p.parts) for p in paths):
            return labels
        depth += 1


def round_robin(records: Sequence[Any], n: int) -> list[Any]:
    """Up to ``n`` records, one per class in turn (record order within a class), so that
    minority classes appear even among a few images of an imbalanced split."""
    by_class: dict[int, list[Any]] = {}
    for record in records:
        by_class.setdefault(int(record.label), []).append(record)
    queues = [by_class[c] for c in sorted(by_class)]
    chosen: list[Any] = []
    depth = 0
    while len(chosen) < n and any(depth < len(q) for q in queues):
        chosen.extend(q[depth] for q in queues if depth < len(q) and len(chosen) < n)
        depth += 1
    return chosen


def predictions(run: Any, split: str, dataset: Any, batch_size: int, checkpoint: str = "best") -> dict[str, int]:
    """Predicted class per id of the loaded model.

    ``predictions.csv`` holds the best checkpoint's test predictions, so it is used only for
    ``split == "test"`` and ``checkpoint == "best"``; otherwise a forward pass
    (:func:`lmfloss.train.engine.evaluate`) gives them.
    """
    from lmfloss import rundir

    if split == "test" and checkpoint == "best" and (Path(run.run_dir) / rundir.PREDICTIONS).is_file():
        saved = rundir.read_predictions(run.run_dir, run.class_names)
        return {str(i): int(p) for i, p in zip(saved.ids, saved.preds)}
    from torch.utils.data import DataLoader

    from lmfloss.train.engine import evaluate

    result = evaluate(run.model, DataLoader(dataset, batch_size=batch_size, shuffle=False), device=run.device)
    return {
        dataset.records[int(i)].id: int(p)
        for i, p in zip(result["indices"].tolist(), result["logits"].argmax(1).tolist())
    }


def select_images(
    records: Sequence[Any],
    split: str,
    *,
    ids: Sequence[str] | None,
    n: int | None,
    misclassified_by: list[dict[str, int]] | None,
    annotated: set[str] | None,
) -> list[Any]:
    """The records to explain: ``ids`` (in the given order; unknown ids are an error),
    else the images misclassified by any run, else ``n`` (default 8) round-robin over
    classes, preferring annotated images. ``n`` caps ``ids``/misclassified selections."""
    by_id = {r.id: r for r in records}
    if ids:
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            example = ", ".join(repr(r.id) for r in records[:3])
            raise ValueError(
                f"image id(s) {unknown} are not in the {split} split; expected ids such as "
                f"{example}"
            )
        chosen = [by_id[i] for i in dict.fromkeys(ids)]
        return chosen[:n] if n else chosen
    pool = list(records)
    if misclassified_by is not None:
        pool = [r for r in pool if any(p.get(r.id, r.label) != r.label for p in misclassified_by)]
        if not pool:
            raise ValueError(f"no image of the {split} split is misclassified by these runs")
        return pool[:n] if n else pool
    if annotated is not None:
        with_ann = [r for r in pool if r.id in annotated]
        if with_ann:
            pool = with_ann
    return round_robin(pool, n or DEFAULT_N)
