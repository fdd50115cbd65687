"""``lmfloss train``, ``evaluate``, ``predict`` and ``demo``.

``train`` takes every :class:`~lmfloss.config.TrainConfig` field as a flag
(``--batch-size`` for ``batch_size``...), or ``--config FILE.yaml`` with the same keys
(flags override the file), or ``--resume RUN_DIR``. It also runs under
``torchrun --nproc_per_node N -m lmfloss train ...`` (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lmfloss import rundir
from lmfloss.config import SCORED_UNITS, TrainConfig, parse_int_list, parse_name_list
from lmfloss.config import build_config as build
from lmfloss.data.files import walk_images
from lmfloss.fileio import atomic_write_text, csv_text, read_csv_rows
from lmfloss.rundir import read_config
from lmfloss.task import TASK_CHOICES, get_task


def _config_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(TrainConfig) if f.name != "loss_params"]


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, its help and type declared on the field; default None
    means "not given" (the --config file or the default wins)."""
    for f in _config_fields():
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type).split("|")[0].strip()  # "int | None" -> "int"
        help_text = f.metadata["help"]
        if kind == "list[int]":
            parser.add_argument(flag, dest=f.name, type=parse_int_list, default=None, metavar="E1,E2", help=help_text)
        elif kind == "list[str]":
            parser.add_argument(flag, dest=f.name, type=parse_name_list, default=None, metavar="A,B", help=help_text)
        elif kind == "bool":
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif kind == "int":
            parser.add_argument(flag, dest=f.name, type=int, default=None, metavar="N", help=help_text)
        elif kind == "float":
            parser.add_argument(flag, dest=f.name, type=float, default=None, metavar="X", help=help_text)
        else:
            choices = f.metadata["choices"]
            parser.add_argument(flag, dest=f.name, default=None, help=help_text,
                                metavar="|".join(choices) if choices else None)
    parser.add_argument("--loss-param", dest="loss_param", action="append", metavar="KEY=VALUE",
                        help="loss parameter, repeatable (e.g. --loss-param beta=2)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``evaluate``, ``predict`` and ``demo``."""
    train = subparsers.add_parser(
        "train", help="train a model into a run directory",
        description="Train with the paper's protocol (flags override --config FILE.yaml).",
    )
    _add_config_flags(train)
    train.add_argument("--config", dest="config_file", metavar="FILE.yaml", help="YAML file of config keys")
    train.add_argument("--out", help="run directory to write")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from last.pt")
    train.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    train.set_defaults(func=_run_train)

    ev = subparsers.add_parser("evaluate", help="recompute a run's report from a checkpoint")
    ev.add_argument("--run", required=True, metavar="RUN_DIR")
    ev.add_argument("--split", choices=("val", "test"), default="test")
    ev.add_argument("--checkpoint", choices=("best", "last", "refit"), default="best",
                    help="best (chosen on validation), last, or refit (trained on train + validation: --refit)")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--out", metavar="FILE.json", help="where to write the report (default "
                    "RUN_DIR/eval-<split>-<checkpoint>[-tta-<views>][-calibrated].json, or eval-<name>.json)")
    ev.add_argument("--dataset", default=None, help="external validation: score the run on this whole labelled "
                    "dataset it never saw (with --root or --csv, and --name)")
    ev.add_argument("--root", default=None, help="the external dataset's root folder")
    ev.add_argument("--csv", default=None, help="the external dataset's CSV (--dataset csv)")
    ev.add_argument("--name", default=None, help="the external set's name: writes RUN_DIR/eval-<name>.json, "
                    "shown beside the internal test by lmfloss report")
    ev.add_argument("--label-map", default=None, metavar="EXTERNAL=RUN,...",
                    help="the external set's class or label names that differ from the run's")
    ev.add_argument("--drop-overlap", action="store_true",
                    help="external validation: leave out the external images that are the run's own (same id and "
                    "image; HAM10000 is inside ISIC-2019) and the other images of their patients or lesions, "
                    "instead of refusing")
    ev.add_argument("--tta", choices=("flip", "flip4"), default=None,
                    help="test-time augmentation: average the softmax over horizontal flips (flip) or "
                    "horizontal, vertical and both (flip4)")
    ev.add_argument("--calibrate", action="store_true",
                    help="fit a temperature on the validation split (never test) and report ECE, Brier "
                    "and NLL before and after")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=_run_evaluate)

    pr = subparsers.add_parser("predict", help="classify new images with a run's best model")
    pr.add_argument("--run", required=True, metavar="RUN_DIR")
    pr.add_argument("images", nargs="*", metavar="IMAGE", help="image files, or folders of images (searched recursively)")
    pr.add_argument("--csv", metavar="FILE", help="CSV with a 'path' (or 'image') column of image files")
    pr.add_argument("--tta", choices=("flip", "flip4"), default=None,
                    help="test-time augmentation: average the softmax over flipped views")
    pr.add_argument("--skip-bad-images", action="store_true",
                    help="predict the other images when one cannot be decoded (listed, with an error column)")
    pr.add_argument("--out", metavar="FILE.csv", help="write the predictions here (default: stdout)")
    pr.add_argument("--checkpoint", choices=("best", "last", "refit"), default="best")
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(func=_run_predict)

    demo = subparsers.add_parser(
        "demo", help="train CE and LMF on the embedded synthetic set and compare (~1-2 min on CPU)"
    )
    demo.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    demo.add_argument("--losses", default=None,
                      help="comma-separated losses (default: ce,lmf; the paper's five: ce,focal,ldam,bwcce,lmf)")
    demo.add_argument("--jobs", type=int, default=None,
                      help="parallel one-thread training processes on the CPU (default: one per core)")
    demo.add_argument("--epochs", type=int, default=None, help="epochs per loss")
    demo.add_argument("--device", default="cpu")
    demo.add_argument("--task", choices=TASK_CHOICES, default="multiclass",
                      help="multilabel: the embedded multi-label set (lesions of 5 kinds, several per image), "
                      "BCE and LMF by default, summarised by mAP and AUC")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=_run_demo)


def build_config(args: argparse.Namespace, base: dict[str, Any] | None = None):
    """The TrainConfig of ``lmfloss train`` (see :func:`lmfloss.config.build_config`)."""

    overrides = {f.name: getattr(args, f.name, None) for f in _config_fields()}
    return build(args.config_file, overrides, args.loss_param, base)


def _run_train(args: argparse.Namespace) -> int:
    # torch-free: lmfloss.train loads torch; `lmfloss --help`, split and report load this module
    from lmfloss.train import fit
    from lmfloss.train.cv import config_of_cv, cross_validate, is_cv_dir
    from lmfloss.train.distributed import is_main_process

    if args.resume:
        if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
            raise ValueError(f"--resume {args.resume!r} and --out {args.out!r} name different directories")
        # Flags may still change how the resumed run executes (device, workers, epochs...);
        # fit refuses changes to what was trained (e.g. --loss-param) by name.
        saved = config_of_cv(args.resume) if is_cv_dir(args.resume) else read_config(args.resume)
        config = build_config(args, base=saved.to_dict())
        out = args.resume
    else:
        if not args.out:
            raise ValueError("lmfloss train needs --out RUN_DIR (or --resume RUN_DIR)")
        config = build_config(args)
        out = args.out
    if config.folds is not None and config.fold is None:
        result = cross_validate(config, out, resume=bool(args.resume), overwrite=args.overwrite, quiet=args.quiet)
        mean, std = result.rows[-2], result.rows[-1]
        task = get_task(result.reports[0])
        key, name = task.headline, task.headline_display
        spread = "" if std[key] is None else f" ± {std[key]:.4f}"
        print(f"{out}: {config.folds}-fold cross-validation, test {name} {_fmt(mean[key])}{spread} "
              f"(mean ± std over folds); {Path(out) / 'cv_summary.csv'}")
        return 0
    result = fit(config, out, resume=bool(args.resume), overwrite=args.overwrite, quiet=args.quiet)
    if is_main_process():
        print(_FORMATS[result.task.target][0](result))
    return 0


def _multiclass_line(result: Any) -> str:
    """The one line ``lmfloss train`` prints for a run that decides one class per image."""
    test = result.report["test"]
    chosen = (f"val macro-F1 {result.best_val_headline:.4f}" if result.select_metric == "f1_macro" else
              f"val {result.select_metric} {result.best_val_score:.4f}, macro-F1 {result.best_val_headline:.4f}")
    if test.get("f1_macro_ci95"):
        return (f"{result.run_dir}: best epoch {result.best_epoch} ({chosen}); "
                f"test accuracy {test['accuracy']:.4f}, macro-F1 {test['f1_macro']:.4f} "
                f"[{test['f1_macro_ci95'][0]:.4f}, {test['f1_macro_ci95'][1]:.4f}]")
    return f"{result.run_dir}: best epoch {result.best_epoch}; test macro-F1 {test['f1_macro']:.4f}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _multilabel_line(result: Any) -> str:
    """The one line ``lmfloss train`` prints for a multi-label run."""
    report, test = result.report, result.report["test"]
    ci = test.get("map_ci95")
    level = SCORED_UNITS.get(report.get("score_by"), "images")
    return (f"{result.run_dir}: best epoch {result.best_epoch} (val {result.select_metric} "
            f"{_fmt(result.best_val_score)}); test ({test['n']} {level}) mAP {_fmt(test['map'])}"
            + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "") + f", macro AUC {_fmt(test['auc_macro'])}"
            # the challenge's own score, on the challenge's data only (report.json keeps it for every run)
            + (f", ODIR score {_fmt((test.get('odir_score') or {}).get('final'))}"
               if (report.get("config") or {}).get("dataset") == "odir5k" else ""))


def _calibration_line(cal: dict[str, Any]) -> str:
    return (f"temperature {cal['temperature']:.4f} (fitted on val): ECE {cal['ece_before']:.4f} -> "
            f"{cal['ece_after']:.4f}, NLL {cal['nll_before']:.4f} -> {cal['nll_after']:.4f}, "
            f"Brier {cal['brier_before']:.4f} -> {cal['brier_after']:.4f}")


def _format_multilabel(report: dict[str, Any]) -> str:
    keys = ("map", "auc_macro", "auc_micro", "f1_macro", "f1_macro_at_threshold", "f1_micro", "subset_accuracy",
            "hamming_loss", "ece", "brier", "nll")
    lines = [f"{k:<22} {_fmt(report.get(k))}" for k in keys if k in report]
    if report.get("map_ci95"):
        lo, hi = report["map_ci95"]
        lines.append(f"{'map_ci95':<22} [{lo:.4f}, {hi:.4f}]")
    odir = report.get("odir_score") or {}
    lines.append(f"{'odir_score':<22} {_fmt(odir.get('final'))} (kappa {_fmt(odir.get('kappa'))}, F1 "
                 f"{_fmt(odir.get('f1'))}, AUC {_fmt(odir.get('auc'))})")
    lines.append("per label AP / AUC: " + ", ".join(
        f"{n} {_fmt(report['ap_per_label'][n])}/{_fmt(report['auc_per_label'][n])}" for n in report["ap_per_label"]))
    if report.get("labels_without_positives"):
        lines.append("labels without a positive image here (out of the macro averages): "
                     + ", ".join(report["labels_without_positives"]))
    if report.get("calibration"):
        lines.append(_calibration_line(report["calibration"]))
    return "\n".join(lines)


def _format_report(report: dict[str, Any]) -> str:
    return _FORMATS[get_task(report).target][1](report)


def _format_multiclass(report: dict[str, Any]) -> str:
    keys = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted",
            "balanced_accuracy", "auc_macro_ovr", "auc_macro_ovo", "ece", "brier", "nll",
            "sensitivity", "specificity")
    lines = [f"{k:<18} {report[k]:.4f}" if report.get(k) is not None else f"{k:<18} n/a"
             for k in keys if k in report]
    if report.get("f1_macro_ci95"):
        lo, hi = report["f1_macro_ci95"]
        lines.append(f"{'f1_macro_ci95':<18} [{lo:.4f}, {hi:.4f}]")
    lines.append("per class F1: " + ", ".join(f"{n} {v:.3f}" for n, v in report["f1_per_class"].items()))
    at = report.get("at_threshold")
    if at:
        lines.append(f"at the validation-chosen threshold {at['threshold']:.4f} ({report['positive_class']} "
                     f"positive): sensitivity {at['sensitivity']:.4f}, specificity {at['specificity']:.4f}, "
                     f"balanced accuracy {at['balanced_accuracy']:.4f}")
    if report.get("calibration"):
        lines.append(_calibration_line(report["calibration"]))
    return "\n".join(lines)


# How a finished run is printed, by the kind of its targets: (the training line, evaluate's report).
_FORMATS = {"index": (_multiclass_line, _format_multiclass), "multi-hot": (_multilabel_line, _format_multilabel)}


def _run_evaluate(args: argparse.Namespace) -> int:
    from lmfloss.train import evaluate_run, load_run  # torch-free: as in _run_train
    from lmfloss.train.provenance import software

    if args.dataset or args.csv or args.root or args.name or args.label_map or args.drop_overlap:
        return _run_external(args)
    run = load_run(args.run, checkpoint=args.checkpoint, device=args.device)
    result = evaluate_run(run, args.split, calibrate=args.calibrate, tta=args.tta)
    out = Path(args.out) if args.out else rundir.eval_path(args.run, args.split, args.checkpoint, tta=args.tta,
                                                           calibrated=args.calibrate)
    payload = {"split": args.split, "checkpoint": args.checkpoint, "epoch": result["checkpoint_epoch"],
               "class_names": run.class_names, **result["report"], "software": software(run.device)}
    rundir.write_eval(payload, out)
    print(f"{args.run} ({args.checkpoint}.pt, epoch {result['checkpoint_epoch']}), {args.split} split, "
          f"{result['report']['n']} images:")
    print(_format_report(result["report"]))
    print(f"written: {out}")
    return 0


PATIENT_COLUMNS = ("patient_id", "patient", "group")  # predict --csv: a patient per image, as the csv adapter reads


def _read_image_list(csv_path: str) -> tuple[list[str], list[str] | None]:
    """The image paths of ``predict --csv`` (relative ones taken from the CSV's folder) and,
    where the CSV has a patient column, each image's patient."""
    columns, rows = read_csv_rows(csv_path, what="--csv")
    column = next((c for c in ("path", "image", "file", "filename") if c in columns), None)
    if column is None:
        raise ValueError(f"--csv {csv_path!r} needs a 'path' column of image files; it has {columns}")
    patient = next((c for c in PATIENT_COLUMNS if c in columns), None)
    base = Path(csv_path).parent
    rows = [row for row in rows if row[column].strip()]
    images = [str(p if Path(p).is_absolute() else base / p) for p in (row[column].strip() for row in rows)]
    if patient is None:
        return images, None
    missing = [str(row["_line"]) for row in rows if not row[patient].strip()]
    if missing:
        raise ValueError(f"--csv {csv_path!r}: line(s) {', '.join(missing[:5])} have no {patient}")
    return images, [row[patient].strip() for row in rows]


def _expand_images(arguments: list[str]) -> list[str]:
    """Image files as given; a folder stands for every image below it (any depth, sorted)."""
    images: list[str] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = walk_images(path)[0]
            if not found:
                raise FileNotFoundError(f"folder {argument!r} holds no image files")
            images += [str(p) for p in found]
        elif path.is_file():
            images.append(argument)
        else:
            raise FileNotFoundError(f"image file {argument!r} does not exist")
    return images


def _run_external(args: argparse.Namespace) -> int:
    """``lmfloss evaluate --dataset D (--root R | --csv F) --name NAME``: external validation."""
    # torch-free: as in _run_train
    from lmfloss.train.provenance import software
    from lmfloss.train.run import EXTERNAL_NAME, evaluate_external, load_run, parse_label_map

    if not args.name or not EXTERNAL_NAME.fullmatch(args.name):
        raise ValueError("external validation needs --name NAME (letters, digits, '.', '_', '-'), got "
                         f"{args.name!r}: the result is written to RUN_DIR/eval-NAME.json")
    if not (args.dataset or args.csv):
        raise ValueError("external validation needs --dataset (and --root) or --csv")
    if args.calibrate or args.split != "test":
        raise ValueError("--calibrate and --split are for the run's own splits, not an external set")
    overrides = {"dataset": args.dataset or "csv", "root": args.root, "csv": args.csv}
    label_map = parse_label_map(args.label_map)
    run = load_run(args.run, checkpoint=args.checkpoint, device=args.device)
    result = evaluate_external(run, overrides, label_map=label_map, tta=args.tta, drop_overlap=args.drop_overlap)
    out = Path(args.out) if args.out else rundir.external_eval_path(args.run, args.name)
    report = result["report"]
    payload = {"external": args.name, "dataset": result["dataset"], "root": args.root, "csv": args.csv,
               "label_map": label_map, "checkpoint": args.checkpoint, "epoch": run.epoch, "class_names": run.class_names,
               "thresholds_from": "the run's validation split", "overlap_left_out": result["overlap"], **report,
               "software": software(run.device)}  # what evaluated it (report.json says what trained it)
    rundir.write_eval(payload, out)
    internal = (rundir.read_report(args.run) or {}).get("test") or {}
    key, name = run.task.headline, run.task.headline_display
    level = report.get("score_by", "images")
    print(f"{args.run} on {args.name} ({result['dataset']}, {report['n']} {'patients' if level == 'patient' else 'images'}):")
    print(_format_report(report))
    if isinstance(internal.get(key), (int, float)) and isinstance(report.get(key), (int, float)):
        print(f"{name}: internal test {internal[key]:.4f}, external {report[key]:.4f} "
              f"({report[key] - internal[key]:+.4f})")
    print(f"written: {out}")
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from lmfloss.train import load_run, predict  # torch-free: as in _run_train

    images = _expand_images(list(args.images))
    patients = None
    if args.csv:
        listed, patients = _read_image_list(args.csv)
        patients = None if patients is None else [None] * len(images) + patients
        images += listed
    if not images:
        raise ValueError("lmfloss predict needs image files, a folder of images or --csv FILE")
    run = load_run(args.run, checkpoint=args.checkpoint, device=args.device)
    per_patient = patients is not None and run.task.group_scoring and run.config.score_by == "patient"
    probs = predict(run, images, skip_bad_images=args.skip_bad_images, tta=args.tta)
    if per_patient:
        return _predict_patients(args, run, images, patients, probs)
    failed = [image for image, row in zip(images, probs) if np.isnan(row).any()]
    header = ["image", "pred"] + [f"prob_{c}" for c in run.class_names] + (["error"] if failed else [])
    thresholds = _chosen_thresholds(run)
    rows = []
    for image, row in zip(images, probs):
        if np.isnan(row).any():
            rows.append([image, "", *([""] * len(run.class_names)), "undecodable image"])
        else:
            decided = run.task.decide(row[None, :], thresholds)[0]
            pred = (";".join(c for c, d in zip(run.class_names, decided) if d) if np.ndim(decided)
                    else run.class_names[int(decided)])
            rows.append([image, pred, *(f"{p:.6f}" for p in row), *([""] if failed else [])])
    text = csv_text(header, rows)
    if args.out:
        atomic_write_text(text, args.out)
        print(f"{len(images) - len(failed)} predictions written to {args.out}")
    else:
        sys.stdout.write(text)
    if failed:
        print(f"lmfloss predict: skipped {len(failed)} undecodable image(s) (rows with an error): "
              f"{', '.join(failed[:5])}", file=sys.stderr)
    return 0


def _predict_patients(args: argparse.Namespace, run: Any, images: list[str], patients: list[str | None],
                      probs: np.ndarray) -> int:
    """``predict --csv`` with a patient column for a run that scores patients: one row per
    patient, its probability of a label the largest of its images' (as the run was scored and
    its thresholds chosen), decided at the validation-chosen thresholds."""
    groups: dict[str, list[int]] = {}
    for i, (image, patient) in enumerate(zip(images, patients)):
        if not np.isnan(probs[i]).any():
            groups.setdefault(patient or image, []).append(i)
    thresholds = _chosen_thresholds(run, per_patient=True)
    rows = []
    for patient, members in groups.items():
        combined = probs[members].max(axis=0)
        decided = run.task.decide(combined[None, :], thresholds)[0]
        rows.append([patient, len(members), ";".join(c for c, d in zip(run.class_names, decided) if d),
                     *(f"{p:.6f}" for p in combined)])
    text = csv_text(["patient", "images", "pred", *(f"prob_{c}" for c in run.class_names)], rows)
    failed = [image for image, row in zip(images, probs) if np.isnan(row).any()]
    if args.out:
        atomic_write_text(text, args.out)
        print(f"{len(rows)} patient predictions ({len(images) - len(failed)} images) written to {args.out}")
    else:
        sys.stdout.write(text)
    print("lmfloss predict: one row per patient (the --csv's patient column): a label's probability is the "
          "largest of the patient's images', as the run is scored", file=sys.stderr)
    if failed:
        print(f"lmfloss predict: skipped {len(failed)} undecodable image(s): {', '.join(failed[:5])}", file=sys.stderr)
    return 0


def _chosen_thresholds(run: Any, per_patient: bool = False) -> list[float] | None:
    """The per-output thresholds a run chose on validation (report.json; a multi-label run's
    decision per label), for ``predict``'s ``pred`` column; ``None`` for a task that chooses
    none (argmax) and for a checkpoint they were not chosen for (the task's default rule)."""

    report = rundir.read_report(run.run_dir) or {}
    chosen = run.task.thresholds_of(report)
    if chosen is None:
        return None
    if report.get("best_epoch") != run.epoch:
        logging.getLogger(__name__).info("the thresholds chosen on validation belong to best.pt; pred of this "
                                         "checkpoint uses the default per label")
        return None
    if report.get("score_by") == "patient" and not per_patient:
        # Chosen on patients (a label's probability: the larger of the patient's images'); an
        # image of a patient with that finding in one eye only may rightly fall below it.
        print("lmfloss predict: pred applies the thresholds chosen on validation patients to each image "
              "alone; combine a patient's images by the per-label max of prob_<label> to decide per patient",
              file=sys.stderr)
    if report.get("score_by") == "study":  # chosen on studies: a study's probability is the max over its views
        print("lmfloss predict: pred applies the thresholds chosen on validation studies to each view alone; "
              "combine a study's views by the per-label max of prob_<label> to decide per study", file=sys.stderr)
    return chosen


def _run_demo(args: argparse.Namespace) -> int:
    from lmfloss.train.demo import run_demo  # torch-free: as in _run_train

    losses = [s.strip() for s in args.losses.split(",") if s.strip()] if args.losses else None
    summary = run_demo(args.out, losses=losses, epochs=args.epochs, device=args.device, quiet=args.quiet,
                       jobs=args.jobs, task=args.task)
    print(summary.markdown)
    print(f"written: {summary.out_dir}/summary.md, summary.csv, f1_per_class.png and one run per loss")
    if summary.html is not None:
        print(f"report: {summary.html} (open it in a browser; one self-contained page)")
    return 0
