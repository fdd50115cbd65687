"""``MODEL_CARD.md``: what a finished run is, how it was made and how far to trust it.

The card is generated from a run's ``report.json`` and ``config.yaml`` only (read through
:mod:`lmfloss.rundir`); it holds no hand-written number, and every statement under
"Intended use and limitations" follows from a recorded fact (the weights, the image size,
the split's leakage, the test classes' sizes, the loss's logit scale). A key that an
older lmfloss did not write is shown as "not recorded"; a metric recorded as undefined
(an AUC with a class missing from test) as "n/a". Torch is not imported, so
``lmfloss report`` and the training loop's last step can write cards cheaply.

Training writes one card into every finished run directory (``MODEL_CARD.md``);
``lmfloss export`` writes one per exported model next to it, named after it
(``FILE.MODEL_CARD.md``, so two exports into one folder keep two cards), with a section on
the exported file (Mitchell et al., "Model Cards for Model Reporting", FAT* 2019).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmfloss import __version__, rundir
from lmfloss.config import SCORED_UNITS, TrainConfig, option_keys
from lmfloss.data.splits import paper_split_sizes
from lmfloss.errors import LmflossError
from lmfloss.fileio import atomic_write_text
from lmfloss.rundir import MODEL_CARD
from lmfloss.task import Task, get_task, of_target

NOT_RECORDED = "not recorded"
FEW_TEST_IMAGES = 10  # below this a class's test F1 moves by > 0.1 with one image

_STEMS = {"imagenet": "torchvision's stem", "small": "small stem (3x3 stride-1 first conv, no max-pool)"}
_NORMALIZE = {"none": "x / 255 (no mean/std)", "imagenet": "x / 255, then ImageNet mean/std",
              "half": "x / 255, then (x - 0.5) / 0.5"}


def _fmt(value: Any) -> str:
    """A metric as text: 4 decimals, ``n/a`` for a recorded ``None``."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _get(mapping: Mapping[str, Any] | None, key: str) -> str:
    """``mapping[key]`` formatted, or "not recorded" when an older lmfloss did not write it."""
    if not isinstance(mapping, Mapping) or key not in mapping:
        return NOT_RECORDED
    return _fmt(mapping[key])


def _interval(ci: Any) -> str:
    if isinstance(ci, Sequence) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        return f"[{ci[0]:.4f}, {ci[1]:.4f}]"
    return NOT_RECORDED


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "l") -> list[str]:
    sep = ["---"] + [("---:" if align == "r" else "---")] * (len(header) - 1)
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |",
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def _class_counts(report: Mapping[str, Any], class_names: Sequence[str]) -> dict[str, list[int | None]]:
    """Per split, the images of each class: train from ``train_class_counts``, val and test
    from the per-class ``support`` of their reports (``None`` where not recorded)."""
    train = report.get("train_class_counts")
    counts: dict[str, list[int | None]] = {
        "train": list(train) if isinstance(train, Sequence) and len(train) == len(class_names)
        else [None] * len(class_names)}
    for split in ("val", "test"):
        support = (report.get(split) or {}).get("support") or {}
        counts[split] = [support.get(name) for name in class_names]
    return counts


def _split_rule(config: Mapping[str, Any], report: Mapping[str, Any], counts: Mapping[str, list]) -> str:
    """How the images were split: ``data.split`` of the report (lmfloss records it since
    k-fold), else reconstructed from the config and the per-class counts."""
    data = report.get("data") or {}
    seed = config.get("split_seed")
    if data.get("split"):
        return str(data["split"])
    if config.get("fold") is not None:
        return (f"{config.get('folds')}-fold cross-validation (fold seed {config.get('fold_seed')}): "
                f"fold {config['fold']} as test")
    if config.get("group_by"):
        return f"the paper's stratified 70:15:15 split, grouped by {config['group_by']}, seed {seed}"
    if not (counts["train"] and all(v is not None for column in counts.values() for v in column)):
        return NOT_RECORDED
    if all(paper_split_sizes(t + v + s) == (t, v, s) for t, v, s in zip(*counts.values())):
        return f"the paper's stratified 70:15:15 split, seed {seed}"
    if report.get("skipped_images"):
        return f"{NOT_RECORDED} (undecodable images were left out after splitting)"
    return "the dataset's own train/val/test split (not the paper's 70:15:15 proportions)"


def _leakage(report: Mapping[str, Any]) -> tuple[str, str | None]:
    """(the data section's line, the limitation it implies or ``None``)."""
    if "split_leakage" not in report:
        return f"leakage between splits {NOT_RECORDED}", None
    leak = report["split_leakage"]
    if not leak:
        return ("the data has no lesion or patient ids, so leakage between splits could not be checked",
                None)
    kind = leak.get("group_kind") or "group"
    groups = leak.get("straddling_groups", 0)
    if not groups:
        return f"checked: no {kind} has images in more than one split", None
    line = (f"the split leaks {groups} {kind}s: {leak.get('test_images_affected')} test images "
            f"({float(leak.get('test_share', 0.0)):.1%}) share a {kind} with a training or validation image")
    return line, f"{line[0].upper()}{line[1:]}, so the test metrics are likely optimistic."


def _protocol(config: Mapping[str, Any], report: Mapping[str, Any], task: Task) -> list[str]:
    milestones = config.get("lr_milestones")
    schedule = (f"MultiStepLR: x{config.get('lr_gamma')} after epochs {', '.join(map(str, milestones))}"
                if milestones else f"StepLR: x{config.get('lr_gamma')} every {config.get('lr_step')} epochs")
    select = config.get("select_metric", report.get("select_metric"))
    rows = [
        ("epochs", config.get("epochs")),
        ("batch size", config.get("batch_size")),
        ("optimizer", f"Adam, lr {config.get('lr')}, weight decay {config.get('weight_decay')}"),
        ("lr schedule", schedule),
        ("model selection", f"best validation {select}: epoch {report.get('best_epoch', NOT_RECORDED)}"),
        (f"validation {task.headline_display}", _get(report.get("val"), task.headline)),
        *([("scored per", report.get("score_by", "image"))] if task.group_scoring else []),
        ("image size", f"{config.get('image_size')} px"),
        ("normalisation", f"{config.get('normalize')}: {_NORMALIZE.get(str(config.get('normalize')), '')}".rstrip(": ")),
        ("augmentation", config.get("augment")),
        ("intensity rule", config.get("intensity")),
    ]
    if "sampler" in config:
        rows.append(("class sampler", config["sampler"]))
    rows += [("seed", config.get("seed")), ("split seed", config.get("split_seed"))]
    # the dataset's own options (CheXpert's uncertainty policy...): what the labels meant in training
    rows += [(f"data option {key}", config[key]) for key in option_keys() if config.get(key) is not None]
    rows.append(("trained by", _software(report.get("software"))))
    return _table(("setting", "value"), rows)


def _software(record: Mapping[str, Any] | None) -> str:
    """``lmfloss 0.4.0.dev0 (commit c64862a0b1c2), torch 2.14.1, Python 3.11.9, on cpu (AMD EPYC ...), 1 torch thread``."""
    if not record:
        return NOT_RECORDED  # runs of lmfloss before 0.4 did not record it
    commit = record.get("git_commit")
    source = (f"commit {commit[:12]}" + (" with uncommitted changes" if record.get("git_dirty") else "")
              if commit else str(record.get("source") or "installed package"))
    threads = record.get("torch_threads")
    return (f"lmfloss {record.get('lmfloss')} ({source}), torch {record.get('torch')}, Python {record.get('python')}, "
            f"on {record.get('device')} ({record.get('device_name')})"
            + (f", {threads} torch thread{'s' if threads != 1 else ''}" if threads else ""))


def _label_test_metrics(report: Mapping[str, Any], config: Mapping[str, Any], label_names: Sequence[str],
                        checkpoint: str) -> tuple[list[str], list[str]]:
    """(lines of the test section of a run with any subset of labels per image, limitations
    they imply)."""
    test = report.get("test") or {}
    odir = test.get("odir_score") or {}
    unit = SCORED_UNITS.get(report.get("score_by"), "images")
    lines = [f"{checkpoint} (epoch {report.get('best_epoch', NOT_RECORDED)}), {_get(test, 'n')} test {unit}"
             + (" (a patient's probability of a label: the largest of its images')" if unit == "patients" else "")
             + (" (a study's probability of a label: the largest of its views')" if unit == "studies" else "")
             + f"; intervals: percentile bootstrap over test {unit} ({config.get('bootstrap')} resamples).", ""]
    lines += _table(("metric", "value", "95% interval"), [
        ("mAP (mean average precision over labels)", _get(test, "map"), _interval(test.get("map_ci95"))),
        ("AUC (macro over labels)", _get(test, "auc_macro"), _interval(test.get("auc_macro_ci95"))),
        ("AUC (micro)", _get(test, "auc_micro"), ""),
        ("macro-F1 at p >= 0.5", _get(test, "f1_macro"), ""),
        ("macro-F1 at the validation-chosen thresholds", _get(test, "f1_macro_at_threshold"), ""),
        ("subset accuracy (every label right)", _get(test, "subset_accuracy"), ""),
        ("Hamming loss", _get(test, "hamming_loss"), ""),
        ("ODIR-2019 score ((kappa + micro-F1 + AUC) / 3, flattened, p > 0.5)", _get(odir, "final"), ""),
    ])
    if report.get("macro_rule"):
        lines += ["", f"Macro averages: {report['macro_rule']}."]
    per_label = [(name, *(_get(test.get(key), name) for key in ("ap_per_label", "auc_per_label", "f1_per_label",
                                                                "f1_per_label_at_threshold", "thresholds")),
                  _get(test.get("support"), name)) for name in label_names]
    lines += ["", *_table(("label", "AP", "AUC", "F1 (0.5)", "F1 (val threshold)", "threshold (val)",
                           "test positives"), per_label, "r")]
    lines += ["", f"Calibration (every label's probability as a binary forecast: ECE over 15 bins, Brier, NLL): "
                  f"ECE {_get(test, 'ece')}, Brier {_get(test, 'brier')}, NLL {_get(test, 'nll')}."]
    limits = ["Decisions per label use thresholds chosen on this dataset's validation split; choose them again on "
              "local validation data before use elsewhere."]
    if test.get("labels_without_positives"):
        limits.append(f"Labels without a positive test {unit[:-1]} have no test score: "
                      f"{', '.join(test['labels_without_positives'])}.")
    support = test.get("support") or {}
    few = [f"{name} ({support[name]})" for name in label_names
           if isinstance(support.get(name), int) and 0 < support[name] < FEW_TEST_IMAGES]
    if few:
        limits.append(f"Labels with fewer than {FEW_TEST_IMAGES} positive test {unit} have unreliable per-label "
                      f"metrics: {', '.join(few)}.")
    return lines, limits


def _class_test_metrics(report: Mapping[str, Any], config: Mapping[str, Any], class_names: Sequence[str],
                        checkpoint: str) -> tuple[list[str], list[str]]:
    """(lines of the test section of a run with one class per image, limitations they imply)."""
    test = report.get("test") or {}
    limits: list[str] = []
    lines = [f"{checkpoint} (epoch {report.get('best_epoch', NOT_RECORDED)}), {_get(test, 'n')} test images; "
             f"the 95% interval is a percentile bootstrap over test images ({config.get('bootstrap')} resamples).",
             ""]
    lines += _table(("metric", "value", "95% interval"), [
        ("accuracy", _get(test, "accuracy"), ""),
        ("balanced accuracy", _get(test, "balanced_accuracy"), ""),
        ("macro-F1", _get(test, "f1_macro"), _interval(test.get("f1_macro_ci95"))),
        ("macro precision", _get(test, "precision_macro"), ""),
        ("macro recall", _get(test, "recall_macro"), ""),
        ("AUC (macro, one-vs-rest)", _get(test, "auc_macro_ovr"), ""),
    ])
    if report.get("macro_rule"):
        lines += ["", f"Macro averages: {report['macro_rule']}."]
    per_class = [(name, *(_get(test.get(f"{m}_per_class"), name) for m in ("f1", "precision", "recall")),
                  _get(test.get("support"), name)) for name in class_names]
    lines += ["", *_table(("class", "F1", "precision", "recall", "test images"), per_class, "r")]
    lines += ["", f"Calibration (top-label ECE over 15 bins, multi-class Brier, NLL): ECE {_get(test, 'ece')}, "
                  f"Brier {_get(test, 'brier')}, NLL {_get(test, 'nll')}."]
    if len(class_names) == 2:
        positive = test.get("positive_class")
        if positive is None:
            lines += ["", f"Binary decision: positive class and threshold {NOT_RECORDED}."]
        else:
            lines += ["", f"Positive class: {positive}. At the argmax: sensitivity {_get(test, 'sensitivity')}, "
                          f"specificity {_get(test, 'specificity')}."]
            at = test.get("at_threshold")
            if at:
                lines.append(
                    f"At the threshold P({positive}) >= {at['threshold']:.4f}, chosen on validation (Youden's J): "
                    f"sensitivity {_get(at, 'sensitivity')}, specificity {_get(at, 'specificity')}, balanced "
                    f"accuracy {_get(at, 'balanced_accuracy')}, macro-F1 {_get(at, 'f1_macro')}.")
                limits.append(f"The decision threshold {at['threshold']:.4f} was chosen on this dataset's "
                              "validation split; choose it again on local validation data before use elsewhere.")
            else:
                lines.append(f"Validation-chosen threshold: {NOT_RECORDED}.")
    support = test.get("support") or {}
    few = [f"{name} ({support[name]})" for name in class_names
           if isinstance(support.get(name), int) and support[name] < FEW_TEST_IMAGES]
    if few:
        limits.append(f"Classes with fewer than {FEW_TEST_IMAGES} test images have unreliable per-class "
                      f"metrics: {', '.join(few)}.")
    return lines, limits


@dataclass(frozen=True)
class CardKind:
    """What a card says differently by the shape of the task's target
    (:attr:`lmfloss.task.Task.target`); ``{display}``, ``{item}`` and ``{n}`` (the number of
    classes or labels) in the texts are the task's.

    Attributes:
        test_section: ``(report, config, class names, checkpoint) -> (lines, limitations)``.
        counts_header: the first column of the data section's table of counts.
        task_line: a line of the data section saying what the task is, or ``None``.
    """

    test_section: Callable[[Mapping[str, Any], Mapping[str, Any], Sequence[str], str], tuple[list[str], list[str]]]
    counts_header: str
    task_line: str | None = None


CARD_KINDS: dict[str, CardKind] = {
    "index": CardKind(_class_test_metrics, "{item}"),
    "multi-hot": CardKind(_label_test_metrics, "{item} (positives)",
                          "- Task: {display} ({n} {item}s per image, any subset; the table counts each {item}'s "
                          "positive images)."),
}
"""Target kind -> what the card says of it."""


def card_kind(task: Task) -> CardKind:
    """The :class:`CardKind` of ``task``'s target.

    Raises:
        ValueError: a target kind this module does not describe (the known ones are listed).
    """
    return of_target(CARD_KINDS, task, "model card layout")


def _data_section(report: Mapping[str, Any], config: Mapping[str, Any], task: Task,
                  class_names: Sequence[str]) -> list[str]:
    """The "Data" section: dataset, split, leakage check and the counts per split."""
    data = report.get("data") or {}
    counts = _class_counts(report, class_names)
    images = data.get("images") or {}
    name = data.get("name") or config["dataset"]
    kind = card_kind(task)
    lines = ["## Data", "",
             f"- Dataset: {name} (adapter `{config['dataset']}`), data fingerprint "
             f"`{data.get('fingerprint', NOT_RECORDED)}`, "
             + (f"read from `{data['source']}`." if data.get("source") else "source folder: none or not recorded."),
             f"- Split: {_split_rule(config, report, counts)}.",
             "- Images: " + (" / ".join(f"{images[s]} {s}" for s in ("train", "val", "test") if s in images)
                             or NOT_RECORDED) + ".",
             f"- Leakage check: {_leakage(report)[0]}."]
    if report.get("skipped_images"):
        lines.append(f"- Skipped as undecodable: {len(report['skipped_images'])} images (listed in report.json).")
    if kind.task_line:
        lines.append(kind.task_line.format(display=task.display, n=len(class_names), item=task.item))
    heads = ("train", "val", "test")
    if report.get("score_by") in ("patient", "study"):  # val/test are scored per patient (study)
        unit = SCORED_UNITS[report["score_by"]]
        heads = ("train (images)", f"val ({unit})", f"test ({unit})")
    return lines + ["", *_table((kind.counts_header.format(item=task.item), *heads),
                                [(c, *(NOT_RECORDED if counts[s][k] is None else counts[s][k]
                                       for s in ("train", "val", "test"))) for k, c in enumerate(class_names)], "r")]


def _uses(report: Mapping[str, Any], config: Mapping[str, Any], task: Task, origin: str,
          limits: Sequence[str]) -> list[str]:
    """The "Intended use and limitations" items, each from a recorded fact."""
    test = report.get("test") or {}
    name = (report.get("data") or {}).get("name") or config["dataset"]
    size = config["image_size"]
    unit = SCORED_UNITS.get(report.get("score_by"), "images")
    uses = ["Research use only: not a medical device, and not for diagnosis or any clinical decision.",
            f"Trained at {size} px {origin} on {name}; give it images preprocessed as in training "
            f"(intensity rule {config['intensity']}, resized to {size}x{size}, normalisation {config['normalize']}).",
            f"Evaluated only on the held-out test split of {name} ({_get(test, 'n')} {unit}); not validated "
            "on external data (other sites, devices or populations)."]
    leak_limit = _leakage(report)[1]
    if leak_limit:
        uses.append(leak_limit)
    uses += limits
    loss = report.get("loss") or {}
    params = loss.get("params")
    scale = params.get("scale") if isinstance(params, Mapping) else None
    if isinstance(scale, (int, float)) and scale != 1 and test.get("ece") is not None:
        uses.append(f"`{loss.get('name') or config['loss']}` trains logits multiplied by a scale of {scale}, so its "
                    f"{task.activation} outputs are scores rather than calibrated risks "
                    f"(test ECE {test['ece']:.4f}); `lmfloss evaluate --calibrate` fits a temperature on validation.")
    return uses


def _refit_lines(report: Mapping[str, Any], task: Task) -> list[str]:
    """The refit model beside the selection run (``report.json``'s ``refit``), if there is one."""
    refit = report.get("refit")
    if not isinstance(refit, Mapping):
        return []
    test, chosen = refit.get("test") or {}, report.get("test") or {}
    return ["", "### Refit on train + validation", "",
            f"After selection, a fresh model was trained on the training and validation images together "
            f"({refit.get('train_images', NOT_RECORDED)} images) for the {refit.get('epochs', NOT_RECORDED)} epoch(s) "
            f"selection chose, with the same seed and schedule (`{refit.get('checkpoint', 'refit.pt')}`); its "
            f"decision thresholds are {refit.get('thresholds_from', NOT_RECORDED)}. No data was left to check it "
            "on but the test split.", "",
            *_table(("model", f"test {task.headline_display}", "95% CI"),
                    [("selection run (best.pt)", _get(chosen, task.headline), _interval(chosen.get(f"{task.headline}_ci95"))),
                     ("refit (train + validation)", _get(test, task.headline), _interval(test.get(f"{task.headline}_ci95")))])]


def model_card_text(report: Mapping[str, Any], config: Mapping[str, Any], run_dir: str | Path | None = None,
                    export: Mapping[str, Any] | None = None) -> str:
    """The Markdown of a run's model card.

    Args:
        report: ``report.json`` (:func:`lmfloss.rundir.read_report`); keys of newer
            lmfloss versions may be missing.
        config: ``config.yaml`` as a mapping; keys missing from an older file take their
            :class:`TrainConfig` default (what they were then).
        run_dir: named in the card's header.
        export: from ``lmfloss export``: ``file``, ``format``, ``checkpoint``, ``epoch``,
            ``input``, ``output``, ``sidecar`` and optionally ``note`` (adds the "Exported
            model" section).

    Returns:
        The card, ending with a newline.
    """
    config = {**TrainConfig().to_dict(), **dict(config)}
    task = get_task(report)
    data = report.get("data") or {}
    class_names = [str(c) for c in report.get("class_names") or []]
    name = data.get("name") or config["dataset"]
    loss = report.get("loss") or {}
    loss_name = loss.get("name") or config["loss"]
    params = loss.get("params")

    lines = [f"# Model card: {config['model']} trained with {loss_name} on {name}", "",
             f"Generated by lmfloss {__version__} from `report.json` and `config.yaml`"
             + (f" of `{run_dir}`" if run_dir is not None else "") + "; every number is copied from them.", "",
             *_data_section(report, config, task, class_names)]

    weights = config["weights"]
    origin = ("from scratch (no pre-trained weights)" if weights == "none" else
              "from torchvision's ImageNet weights" if weights == "imagenet" else f"from the weights in `{weights}`")
    if isinstance(params, Mapping):
        loss_text = f"with {', '.join(f'{k}={v}' for k, v in params.items())}" if params else "(no parameters)"
    else:
        loss_text = f"with {dict(config['loss_params']) or 'defaults'} (resolved parameters {NOT_RECORDED})"
    lines += ["", "## Model and loss", "",
              f"- Network: torchvision `{config['model']}`, {_STEMS.get(config['stem'], config['stem'])}, trained {origin}; "
              f"{len(class_names)} {task.items}: {', '.join(class_names) or NOT_RECORDED}.",
              f"- Loss: `{loss_name}` {loss_text}.",
              "", "## Training protocol", "", *_protocol(config, report, task)]

    test_lines, limits = card_kind(task).test_section(report, config, class_names, "best.pt")
    lines += ["", "## Test metrics", "", *test_lines, *_refit_lines(report, task)]
    lines += ["", "## Intended use and limitations", "",
              *(f"- {u}" for u in _uses(report, config, task, origin, limits))]

    if export:
        lines += ["", "## Exported model", "",
                  f"- `{export['file']}` ({export['format']}) from {export['checkpoint']}.pt (epoch {export['epoch']}).",
                  f"- Input: {export['input']}.", f"- Output: {export['output']}.",
                  f"- Preprocessing recipe (every step from image file to probabilities), class names, image "
                  f"size, normalisation and decision rule: `{export['sidecar']}`."]
        if export.get("note"):
            lines.append(f"- {export['note']}")
    return "\n".join(lines) + "\n"


def write_model_card(run_dir: str | Path, out: str | Path | None = None, *,
                     export: Mapping[str, Any] | None = None) -> Path:
    """Write the model card of a finished run (atomically) and return its path.

    Args:
        run_dir: a finished run directory (``report.json`` and ``config.yaml``).
        out: where to write (default ``RUN_DIR/MODEL_CARD.md``).
        export: the exported file's description (see :func:`model_card_text`).

    Raises:
        FileNotFoundError: not a run directory (no ``config.yaml``).
        LmflossError: the run is not finished (no ``report.json``), or the report is damaged.
    """
    run_dir = Path(run_dir)
    config = rundir.read_config_dict(run_dir)
    report = rundir.read_report(run_dir)
    if report is None:
        raise LmflossError(f"run {str(run_dir)!r} is not finished (no {rundir.REPORT}); a model card "
                           "describes a finished run")
    path = Path(out) if out is not None else run_dir / MODEL_CARD
    atomic_write_text(model_card_text(report, config, run_dir, export), path)
    return path
