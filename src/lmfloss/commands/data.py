"""``lmfloss split``, ``lmfloss datasets`` and ``lmfloss prepare`` (issue 3: datasets and splits)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lmfloss.config import INTENSITY_CHOICES, field_info, option_keys, parse_name_list
from lmfloss.data import list_adapters, load_splits
from lmfloss.data.adapters import get_adapter
from lmfloss.data.cache import warn_intensity_notes
from lmfloss.data.load import fold_assignment
from lmfloss.data.medmnist import FLAGS, HOMEPAGE
from lmfloss.data.multilabel import unknown_counts
from lmfloss.data.targets import targets_of
from lmfloss.fileio import atomic_write_text, csv_text
from lmfloss.task import TASK_CHOICES, get_task


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="adapter name (see `lmfloss datasets`)")
    parser.add_argument("--root", default=None, help="dataset root folder (not needed for synthetic)")
    parser.add_argument("--csv", default=None, help="CSV file with path,label[,split] for --dataset csv")
    parser.add_argument("--seed", type=int, default=23, help="split seed (the paper: 23)")
    parser.add_argument(
        "--group-by", choices=["lesion", "patient"], default=None,
        help="keep every lesion (HAM10000, ISIC 2019) or patient (ODIR-5K) in one split",
    )
    parser.add_argument("--download", action="store_true", help="fetch MedMNIST files when missing")
    parser.add_argument("--task", choices=TASK_CHOICES, default=None,
                        help="multiclass (default) | multilabel (csv with a labels column or --label-columns, "
                        "odir5k's official task, synthetic; chestmnist is multi-label by itself)")
    parser.add_argument("--label-columns", default=None, metavar="A,B,C",
                        help="csv, multilabel: one 0/1 column per label instead of a labels column")
    for key in option_keys():  # a dataset's own options, as lmfloss train takes them (help declared on the key)
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key, default=None, help=field_info(key)["help"])
    parser.add_argument(
        "--skip-bad-images", action="store_true",
        help="skip unreadable or undecodable images with a warning instead of failing "
        "(the split is made as if they were good, then they are left out)",
    )
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")


def _load(args: argparse.Namespace):
    return load_splits(
        args.dataset, root=args.root, csv=args.csv, seed=args.seed, group_by=args.group_by,
        download=args.download, skip_bad_images=args.skip_bad_images, task=args.task,
        label_columns=_label_columns(args), options=_options(args),
    )


def _label_columns(args: argparse.Namespace) -> list[str] | None:
    return parse_name_list(args.label_columns)


def _options(args: argparse.Namespace) -> dict[str, str | None]:
    return {key: getattr(args, key) for key in option_keys()}


def format_count_table(splits) -> str:
    """A Markdown table of per-class train/val/test counts with a total row (multi-label: the
    positive images of each label, and the images per split in the last row)."""
    rows = splits.count_table()
    first, last = splits.targets.table_words
    width = max([len(first), len(last), *(len(name) for name, *_ in rows)])
    lines = [
        f"| {first:<{width}} | {'train':>6} | {'val':>6} | {'test':>6} | {'total':>6} |",
        f"|{'-' * (width + 2)}|{'-' * 7}:|{'-' * 7}:|{'-' * 7}:|{'-' * 7}:|",
    ]
    totals = [0, 0, 0]
    for name, *counts in rows:
        totals = [t + c for t, c in zip(totals, counts)]
        lines.append(f"| {name:<{width}} | " + " | ".join(f"{c:>6}" for c in [*counts, sum(counts)]) + " |")
    totals = splits.targets.table_totals(totals, [len(splits.records(s)) for s in ("train", "val", "test")])
    lines.append(f"| {last:<{width}} | " + " | ".join(f"{c:>6}" for c in [*totals, sum(totals)]) + " |")
    return "\n".join(lines)


def format_unknown_table(splits) -> str:
    """A Markdown table of the images per label and split whose value is unknown (CheXpert's
    uncertain labels under U-Ignore, blanks under ``--blank ignore``): left out of that label's
    loss and metrics."""
    columns = {s: unknown_counts(splits.records(s), splits.num_classes) for s in ("train", "val", "test")}
    width = max(len("unknown (left out)"), *(len(n) for n in splits.class_names))
    lines = [f"| {'unknown (left out)':<{width}} | {'train':>6} | {'val':>6} | {'test':>6} | {'total':>6} |",
             f"|{'-' * (width + 2)}|{'-' * 7}:|{'-' * 7}:|{'-' * 7}:|{'-' * 7}:|"]
    for j, name in enumerate(splits.class_names):
        counts = [columns[s][j] for s in ("train", "val", "test")]
        lines.append(f"| {name:<{width}} | " + " | ".join(f"{c:>6}" for c in [*counts, sum(counts)]) + " |")
    return "\n".join(lines)


def _run_folds(args: argparse.Namespace) -> int:
    index, folds = fold_assignment(args.dataset, root=args.root, csv=args.csv, folds=args.folds,
                                   fold_seed=args.fold_seed, group_by=args.group_by,
                                   folds_include_test=args.folds_include_test, download=args.download,
                                   skip_bad_images=args.skip_bad_images, task=args.task,
                                   label_columns=_label_columns(args), options=_options(args))
    targets = targets_of(index.task)
    group_by = args.group_by or get_adapter(args.dataset).group_by  # a chest X-ray set groups patients itself
    grouped = f", grouped by {group_by}" if group_by else ""
    print(f"{index.name}: {args.folds}-fold cross-validation (stratified{grouped}), fold seed {args.fold_seed}")
    width = max(len("class"), *(len(n) for n in index.class_names))
    print(f"| {'class':<{width}} | " + " | ".join(f"fold {k}" for k in range(1, args.folds + 1)) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-------:" for _ in range(args.folds)) + "|")
    for c, name in enumerate(index.class_names):
        counts = [sum(1 for r, f in zip(index.records, folds) if f == k and targets.has(r, c))
                  for k in range(1, args.folds + 1)]
        print(f"| {name:<{width}} | " + " | ".join(f"{n:>6}" for n in counts) + " |")
    if args.out:
        root = index.root
        rows = [[Path(os.path.relpath(r.path, root)).as_posix() if r.path and root else (r.path or r.id),
                 targets.text(r, index.class_names), f] for r, f in zip(index.records, folds)]
        atomic_write_text(csv_text(["path", targets.column, "fold"], rows), args.out)
        print(f"folds: {args.out}")
    return 0


def _run_split(args: argparse.Namespace) -> int:
    if args.folds is not None:
        return _run_folds(args)
    splits = _load(args)
    print(f"{splits.name}: {splits.rule()}")
    print(format_count_table(splits))
    if any(record.unknown for record in splits.index.records):
        print(format_unknown_table(splits))
    leak = splits.leakage()
    if leak is not None and not splits.official:
        print(f"{splits.index.group_kind} groups straddling splits: {leak['straddling_groups']}; test images "
              f"sharing a {splits.index.group_kind} with train/val: {leak['test_images_affected']} "
              f"({100 * leak['test_share']:.1f}%)")
    if splits.skipped:
        print(f"skipped {len(splits.skipped)} unreadable image(s): {', '.join(splits.skipped[:5])}")
    if args.out:
        path = splits.write_manifest(args.out)
        print(f"manifest: {path}")
    boxes_out = args.boxes_out
    if boxes_out is None and args.out and splits.index.boxes is not None:
        out = Path(args.out)
        boxes_out = out.with_name(f"{out.stem}_boxes.csv")
    if boxes_out:
        written = splits.write_boxes(boxes_out)
        if written is None:
            raise ValueError(f"dataset {splits.name!r} has no known lesion boxes; drop --boxes-out")
        print(f"boxes: {written}")
    return 0


def _run_datasets(args: argparse.Namespace) -> int:
    for adapter in list_adapters():
        if adapter.name in FLAGS:
            continue
        print(f"{adapter.name}")
        print(f"  layout: {adapter.layout}")
        print(f"  source: {adapter.source}")
        if adapter.group_kind:
            print(f"  --group-by {adapter.group_kind}" + (" (the default)" if adapter.group_by else ""))
        if adapter.options:
            print("  options: " + ", ".join(f"--{key} (default {value})" for key, value in adapter.options.items()))
        if adapter.tasks != (get_task(None).name,):  # a dataset of the default task only needs no --task
            print(f"  --task {' | '.join(adapter.tasks)}")
    print("MedMNIST 2D: " + ", ".join(FLAGS) + " (chestmnist: multi-label, 14 findings)")
    print("  layout: <flag>.npz or <flag>_64/_128/_224.npz (--dataset <flag>_224) in the root or root/<flag>/; "
          "official splits; --download needs pip install 'lmfloss[medmnist]'")
    print(f"  source: {HOMEPAGE}")
    return 0


def _run_prepare(args: argparse.Namespace) -> int:
    # torch-free: the datasets need torch; `lmfloss split` and `--help` load this module
    from lmfloss.data import make_dataset

    splits = _load(args)
    if splits.index.images is not None:
        print(f"{splits.name} is an array dataset: it is resized in memory, nothing to cache")
        return 0
    notes = []
    for split in args.splits:
        dataset = make_dataset(
            splits, split, args.image_size, cache_dir=args.cache_dir, progress=not args.quiet,
            cache_workers=args.workers, intensity=args.intensity, warn_notes=False,
        )
        notes += dataset.intensity_notes
        print(f"{split}: {len(dataset)} images of {args.image_size} px in {dataset.images_path}")
    warn_intensity_notes(notes, args.intensity)  # once for the dataset, not once per split
    if splits.skipped:
        print(f"skipped {len(splits.skipped)} unreadable image(s): {', '.join(splits.skipped[:5])}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the lmfloss parser."""
    split = subparsers.add_parser(
        "split", help="split a dataset (the paper's 70:15:15) and write the manifest",
        description="Index a dataset, split it and print per-class train/val/test counts. "
        "Checks that every image file exists and can be read, as train does; never decodes them.",
    )
    _add_data_arguments(split)
    split.add_argument("--out", default=None, help="manifest CSV to write (path,label,split; paths relative to the root)")
    split.add_argument("--folds", type=int, default=None, metavar="K",
                       help="k-fold cross-validation: write path,label,fold instead (stratified, grouped by --group-by)")
    split.add_argument("--fold-seed", type=int, default=23, help="seed of the fold assignment (default 23)")
    split.add_argument("--folds-include-test", action="store_true",
                       help="pool a dataset's official test split into the folds")
    split.add_argument(
        "--boxes-out", default=None,
        help="CSV of lesion boxes id,x0,y0,x1,y1 (default for synthetic: <out>_boxes.csv next to --out)",
    )
    split.set_defaults(func=_run_split)

    datasets = subparsers.add_parser("datasets", help="list the dataset adapters, their layouts and sources")
    datasets.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    datasets.set_defaults(func=_run_datasets)

    prepare = subparsers.add_parser(
        "prepare", help="build the decoded, resized uint8 image cache of a dataset",
        description="Decode and resize every image once into a memory-mapped uint8 cache "
        "(training builds it on first use otherwise).",
    )
    _add_data_arguments(prepare)
    prepare.add_argument("--image-size", type=int, default=224, help="side of the square images (the paper: 224)")
    prepare.add_argument("--cache-dir", default=None, help="cache folder (default: <root>/.lmfloss-cache or ~/.cache/lmfloss)")
    prepare.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1),
        help="processes decoding images (0: in this process, as for train; default: min(8, CPU count))",
    )
    prepare.add_argument("--intensity", choices=INTENSITY_CHOICES, default="dtype",
                         help="how 16-bit and float images become 8-bit, as train's --intensity (default dtype)")
    prepare.add_argument("--splits", nargs="+", choices=["train", "val", "test"], default=["train", "val", "test"])
    prepare.set_defaults(func=_run_prepare)
