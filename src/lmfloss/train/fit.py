"""``fit(config, out_dir)``: one training run, start to finish, into a run directory.

The protocol is the paper's ("Training parameters"): Adam (lr 1e-4, weight decay 5e-4),
StepLR x0.1 every 30 epochs (or ``lr_milestones``), 100 epochs, batch 32; the model state
with the best **validation** score (``select_metric``: macro-F1 as the paper, or AUC as
MedMNIST v2) is kept (``best.pt``) and evaluated once on the validation and test splits.

Reliability:
    * ``last.pt`` is written atomically after every finished epoch with everything a resume
      needs; ``fit(..., resume=True)`` continues from it and ends bit-for-bit where an
      uninterrupted run ends (the shuffle of epoch e depends only on ``seed`` and e, the
      RNG states are restored, ``metrics.csv`` is rebuilt from the checkpoint's history).
    * SIGINT/SIGTERM finish the current step and raise :class:`TrainingInterrupted`.
    * A full disk (any write of the run: checkpoints, metrics.csv, pictures, report) raises
      :class:`DiskFull` naming the file and the epoch ``last.pt`` holds; ``best.pt`` and
      ``last.pt`` are replaced together (never a best.pt of an epoch last.pt does not
      hold), so ``--resume`` after freeing space ends where an uninterrupted run ends.
    * A NaN/inf loss raises :class:`NonFiniteLossError` naming the epoch and step.

``fit`` keeps no global state: signal handlers are restored, logging is not configured,
a process group it created is destroyed, so it can be called many times in one process
(the sweep does). It does seed Python's, NumPy's and torch's global generators, as any
reproducible training script must.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from lmfloss import rundir
from lmfloss.config import (
    TrainConfig,
    check_config,
    diff_configs,
    format_diff,
    path_keys,
)
from lmfloss.data import dataset_for
from lmfloss.data.splits import Splits
from lmfloss.errors import DataError, Interrupted, LmflossError, TrainingInterrupted
from lmfloss.extras import install_hint
from lmfloss.fileio import atomic_write_all, disk_full
from lmfloss.modelcard import write_model_card
from lmfloss.models import build_model
from lmfloss.rundir import RunLock, check_same_data, prepare_run_dir, remove_if_empty
from lmfloss.task import Task, get_task
from lmfloss.train import plots
from lmfloss.train.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)
from lmfloss.train.checks import check_trainable
from lmfloss.train.distributed import (
    DistContext,
    all_gather_objects,
    barrier,
    close_distributed,
    init_distributed,
)
from lmfloss.train.engine import (
    amp_dtype_for,
    evaluate,
    resolve_device,
    stop_on_signals,
    train_one_epoch,
)
from lmfloss.train.loaders import load_data, make_loader
from lmfloss.train.provenance import software
from lmfloss.train.scoring import SplitResult, final_report, scored, selection_scores, split_result

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What :func:`fit` returns; ``report`` is the content of ``report.json``.

    ``best_val_score`` is the validation ``select_metric`` of ``best_epoch`` (the score that
    chose it); :attr:`best_val_headline` the task's headline metric there (macro-F1, mAP).
    """

    run_dir: Path
    best_epoch: int
    best_val_score: float
    report: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    select_metric: str = "f1_macro"

    @property
    def task(self) -> Task:
        return get_task(self.report)

    @property
    def best_val_headline(self) -> float:
        """The task's headline metric on validation at the best epoch (NaN where undefined)."""
        return _number(self.report["val"].get(self.task.headline))


def _set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds the global generator user code may use
    torch.manual_seed(seed)


def _any_rank(ctx: DistContext, flag: Any) -> Any:
    """A stop check that fires on every rank at the same step (collectives stay matched)."""
    if not ctx.enabled:
        return flag
    return lambda: any(all_gather_objects(ctx, bool(flag())))


def check_resume_config(config: TrainConfig, saved: dict[str, Any]) -> None:
    """Refuse to resume with a change to what the run computes (runtime and resumable keys may change)."""
    diffs = diff_configs(saved, config, ignore_roles=("runtime", "resumable"))
    if diffs:
        raise ValueError(
            f"cannot resume with a different configuration ({format_diff(diffs, 'run has', 'asked')}); "
            "resume with the run's config.yaml or start a new run"
        )


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    if config.lr_milestones:
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.lr_milestones),
                                                    gamma=config.lr_gamma)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)


def fit(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
) -> RunResult:
    """Train ``config`` into ``out_dir`` and write the complete run directory.

    Args:
        config: the run's :class:`~lmfloss.config.TrainConfig`.
        out_dir: the run directory (created if missing).
        resume: continue from ``out_dir/last.pt`` if present (a finished run with as many
            epochs as ``config.epochs`` is returned as is); else start a new run.
        overwrite: remove the files of a previous run in ``out_dir`` first.
        quiet: no progress bars (the per-epoch summary still goes to the log at INFO).

    Returns:
        :class:`RunResult` with the best epoch, its validation macro-F1 and ``report.json``.

    Raises:
        ValueError: invalid config values, unknown model/loss/dataset, resume with a
            different configuration.
        LmflossError: ``out_dir`` holds a finished or unfinished run and neither
            ``resume`` nor ``overwrite`` was given; :class:`TrainingInterrupted`;
            :class:`NonFiniteLossError`.
    """
    typed = {k: getattr(config, k) for k in path_keys()}
    config = check_trainable(check_config(config).with_absolute_paths())
    if config.folds is not None and config.fold is None:
        raise ValueError(f"config folds={config.folds} without a fold trains nothing by itself; use "
                         "lmfloss train --folds (every fold: lmfloss.train.cv.cross_validate) or set fold")
    device = resolve_device(config.device)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"run directory {str(out)!r} exists and is not a directory")
    ctx = init_distributed(device.type)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    created = False
    lock = None
    try:
        if ctx.is_main:  # one writer per run directory: a second `lmfloss train --out` fails at once
            try:
                out.mkdir(parents=True)
                created = True
            except FileExistsError:
                pass
            lock = RunLock(out).acquire()
        with stop_on_signals() as stop:
            try:
                return _fit(config, out, resume, overwrite, quiet, device, ctx, _any_rank(ctx, stop), typed)
            except Interrupted as exc:
                exc.signal_number = stop.signal_number or exc.signal_number
                raise
    except BaseException:
        if created and lock is not None:
            # A run that failed before writing anything leaves no folder -- only if this
            # process made the folder and holds its lock (never another process's lock file).
            remove_if_empty(out)
        raise
    finally:
        if lock is not None:
            lock.release()
        close_distributed(ctx)


@dataclass
class _Training:
    """The state one run carries from epoch to epoch (and into ``last.pt``)."""

    raw_model: torch.nn.Module  # the network itself (DDP/compile wrap it for training only)
    train_model: torch.nn.Module
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    amp_dtype: torch.dtype | None
    channels_last: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -float("inf")
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch: int = 0
    saved_epoch: int = 0  # the epoch last.pt holds (what a full disk leaves to resume from)


@dataclass
class _Run:
    """What every step of one run reads and nothing changes once training starts (the
    configuration, where it writes, the data and its counts): one object for the helpers of
    :func:`_fit` instead of a dozen parameters passed along."""

    config: TrainConfig
    task: Task
    out: Path
    ctx: DistContext
    device: torch.device
    class_names: list[str]
    train_counts: list[Any]
    data: dict[str, Any]
    skipped: list[str]
    splits: Splits
    datasets: dict[str, Any]
    progress: bool
    should_stop: Any
    loaders: dict[str, Any] = field(default_factory=dict)
    writer: Any = None


def _fit(config, out, resume, overwrite, quiet, device, ctx, should_stop, typed=None) -> RunResult:
    if config.tensorboard and ctx.is_main:
        _require_tensorboard()
    ckpt = prepare_run_dir(out, resume, overwrite, is_main=ctx.is_main, sync=lambda: barrier(ctx))
    if ckpt is not None:
        check_resume_config(config, ckpt["config"])
        report = rundir.read_report(out) if ckpt["epoch"] >= config.epochs else None
        if report is not None:
            logger.info("%s is already finished (%d epochs); nothing to do", out, ckpt["epoch"])
            if ctx.is_main and not (out / rundir.MODEL_CARD).is_file():  # the disk filled up after report.json
                write_model_card(out)
            return RunResult(out, int(report["best_epoch"]), _best_score(ckpt), report,
                             [rundir.upgrade_history_row(r) for r in ckpt["history"]], config.select_metric)

    _set_seed(config.seed)
    splits, datasets = load_data(config, ctx, should_stop, progress=ctx.is_main and not quiet)
    data, train_counts, skipped = _check_data(config, splits, datasets, ckpt, out)
    if ckpt is not None and ctx.is_main:
        # A finished run extended to more epochs gets a new report at the end -- removed only
        # now that the data and config checks have passed, so a refused resume changes nothing.
        (out / rundir.REPORT).unlink(missing_ok=True)
    run = _Run(config, get_task(config), out, ctx, device, list(splits.class_names), train_counts, data, skipped,
               splits, datasets, progress=ctx.is_main and not quiet, should_stop=should_stop)
    t = _build(run, ckpt)
    run.loaders = {s: make_loader(datasets[s], config, ctx, device, train=s == "train") for s in datasets}
    try:
        if ctx.is_main:
            rundir.write_config(config, out, typed)
            if t.history:  # a metrics.csv the disk had no room for is rebuilt from last.pt's history
                rundir.write_metrics(t.history, out, run.task)
        run.writer = _tensorboard(config, out, ctx)
        try:
            for epoch in range(t.start_epoch + 1, config.epochs + 1):
                _one_epoch(t, run, epoch)
        finally:
            if run.writer is not None:
                run.writer.close()
        return _finish(t, run)
    except Exception as exc:
        full = disk_full(exc, kept=_kept(t.saved_epoch), then=f"continue with: lmfloss train --resume {out}")
        if full is None:
            raise
        raise full from exc


def _check_data(config: TrainConfig, splits, datasets, ckpt, out: Path):
    """``(data identity, training counts, skipped images)``, refusing data a run cannot use."""
    class_names = list(splits.class_names)
    data = splits.identity()
    if ckpt is not None:
        check_same_data(ckpt.get("data"), data, class_names, ckpt.get("class_names"), out)
    # Counted from the training dataset itself: images skipped as undecodable
    # (--skip-bad-images) are not trained on, so they must not count in the margins.
    # class_counts also validates every label once (in [0, K)), so the loss need not per step.
    train_counts = _train_counts(config, splits, datasets)
    skipped = [*splits.skipped, *(p for s in ("train", "val", "test") for p in datasets[s].skipped)]
    if skipped:
        logger.warning("skipped %d undecodable image(s) (listed in report.json): %s",
                       len(skipped), ", ".join(map(str, skipped[:5])))
    for split in ("train", "val", "test"):
        if len(datasets[split]) == 0:
            raise LmflossError(f"dataset {config.dataset!r} has no images in its {split} split")
    reweighted = (config.loss in ("wce", "bwcce", "cb", "logit-adjusted") or config.loss_params.get("drw_epoch") is not None
                  or get_task(config).resolved_loss_params(config.loss, config.loss_params).get("pos_weight")
                  not in (None, "none"))
    if config.sampler == "balanced" and reweighted:
        logger.warning("sampler 'balanced' with the re-weighted loss %r%s corrects the imbalance twice "
                       "(the rare classes are drawn more often *and* weighted up); use one of the two, or "
                       "--sampler sqrt", config.loss, " (DRW)" if config.loss_params.get("drw_epoch") is not None else "")
    if config.select_metric == "auc" and get_task(config).target == "index":
        present = set(datasets["val"].labels.tolist())
        absent = [name for c, name in enumerate(class_names) if c not in present]
        if absent:
            raise LmflossError(f"select_metric 'auc' needs every class in the validation split; "
                               f"{absent} have no validation images (use --select-metric f1_macro)")
    return data, train_counts, skipped


def _train_counts(config: TrainConfig, splits, datasets) -> list[Any]:
    """The training counts the loss is built from (images per class, or a multi-label run's
    ``[L, 2]`` (negatives, positives) table), refusing counts the task's losses cannot use
    (named) and patient scoring without patient ids. Counting validates every split's labels
    once, so the loss need not per step."""
    task, k = get_task(config), len(splits.class_names)
    counts = task.train_counts(datasets["train"].labels, k)
    try:
        task.check_train_counts(counts, splits.class_names)
    except ValueError as exc:
        raise DataError(f"dataset {config.dataset!r}: {exc}") from None
    for split in ("val", "test"):
        task.train_counts(datasets[split].labels, k)
    if config.score_by == "patient" and not any(r.group for r in datasets["val"].records):
        raise DataError(f"score_by 'patient' needs patient ids and dataset {config.dataset!r} has none; use "
                        "--score-by image, or give the CSV a patient_id column")
    return counts


def _build(run: _Run, ckpt) -> _Training:
    """Model, loss, optimizer, schedule -- restored from ``last.pt`` when resuming."""
    config, device = run.config, run.device
    # On resume the weights come from last.pt: no need to download ImageNet weights again.
    model = build_model(config.model, run.task.outputs(len(run.class_names)),
                        "none" if ckpt is not None else config.weights, stem=config.stem)
    # The labels were validated once (the training counts, and every dataset's labels come
    # from its adapter's class list): no per-step host read of the targets.
    loss_fn = run.task.build_loss(config.loss, run.train_counts, validate_args=False, **config.loss_params)
    model.to(device)
    loss_fn.to(device)
    channels_last = device.type == "cuda" and config.channels_last
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _scheduler(optimizer, config)
    amp_dtype = amp_dtype_for(config.amp, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    t = _Training(model, model, loss_fn, optimizer, scheduler, scaler, amp_dtype, channels_last)
    if ckpt is not None:
        _restore(t, ckpt, run)
    wrapped = model
    if run.ctx.enabled:
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    t.train_model = torch.compile(wrapped, mode=config.compile_mode) if config.compile else wrapped
    return t


def _restore(t: _Training, ckpt: dict[str, Any], run: _Run) -> None:
    config, ctx, out = run.config, run.ctx, run.out
    t.raw_model.load_state_dict(ckpt["model"])
    t.optimizer.load_state_dict(ckpt["optimizer"])
    t.scheduler.load_state_dict(ckpt["scheduler"])
    if t.scaler is not None and ckpt.get("scaler"):
        t.scaler.load_state_dict(ckpt["scaler"])
    t.history = [rundir.upgrade_history_row(r) for r in ckpt["history"]]
    t.best_epoch, t.best_score = int(ckpt["best_epoch"]), _best_score(ckpt)
    t.start_epoch = t.saved_epoch = int(ckpt["epoch"])
    rng = ckpt["rng"]
    if len(rng) == ctx.world_size:
        restore_rng_state(rng[ctx.rank])
    else:
        logger.warning("resuming on %d processes, checkpoint has %d: RNG streams reseeded",
                       ctx.world_size, len(rng))
        _set_seed(config.seed + t.start_epoch)
    if t.best_epoch > 0:
        t.best_state = load_checkpoint(out / rundir.BEST)["model"]
    logger.info("resuming %s after epoch %d (best epoch %d)", out, t.start_epoch, t.best_epoch)


def _one_epoch(t: _Training, run: _Run, epoch: int) -> None:
    """Train one epoch, score validation, keep the best state, write the epoch's files."""
    config, ctx, device, loaders = run.config, run.ctx, run.device, run.loaders
    began = time.perf_counter()
    loaders["train"].sampler.set_epoch(epoch - 1)
    t.loss_fn.set_epoch(epoch - 1)
    lr = float(t.optimizer.param_groups[0]["lr"])
    stats = train_one_epoch(
        t.train_model, loaders["train"], t.loss_fn, t.optimizer, device=device, epoch=epoch,
        amp_dtype=t.amp_dtype, scaler=t.scaler, channels_last=t.channels_last, ctx=ctx,
        progress=run.progress, should_stop=run.should_stop, task=run.task,
    )
    if stats["stopped"]:
        raise TrainingInterrupted(_stop_message(run.out, epoch, stats["step"], t.start_epoch, t.history))
    val = evaluate(t.raw_model, loaders["val"], device=device, amp_dtype=t.amp_dtype,
                   channels_last=t.channels_last, ctx=ctx)
    with torch.no_grad():
        val_loss = float(t.loss_fn(val["logits"].to(device), run.task.loss_target(val["labels"].to(device))))
    scores = selection_scores(split_result("val", val, loaders["val"].dataset, run.task), config)
    score = scores[config.select_metric]
    t.scheduler.step()
    row = {"epoch": epoch, "train_loss": stats["loss"], "val_loss": val_loss,
           **{f"val_{key}": scores[key] for key in run.task.epoch_metrics},
           "lr": lr, "seconds": round(time.perf_counter() - began, 3)}
    t.history.append(row)
    improved = score is not None and score > t.best_score
    if improved:  # strictly better: on ties the earlier epoch stays
        t.best_epoch, t.best_score = epoch, score
        t.best_state = _cpu_state_dict(t.raw_model)
    rng = all_gather_objects(ctx, capture_rng_state())
    if ctx.is_main:
        _save_epoch(t, run, epoch, rng, scores if improved else None)
        if run.writer is not None:
            for key, value in row.items():
                if key not in ("epoch", "seconds") and value is not None:
                    run.writer.add_scalar(key, value, epoch)
            run.writer.flush()
    (logger.info if ctx.is_main else logger.debug)(
        "epoch %d/%d  train_loss %.4f  val_loss %.4f  %s  lr %.2g  %.1fs%s", epoch, config.epochs,
        row["train_loss"], val_loss,
        "  ".join(f"val_{k} {'n/a' if scores[k] is None else f'{scores[k]:.4f}'}" for k in run.task.epoch_metrics),
        lr, row["seconds"], "  *best" if improved else "",
    )
    if run.should_stop():
        raise TrainingInterrupted(_stop_message(run.out, epoch + 1, 0, t.start_epoch, t.history))


def _save_epoch(t: _Training, run: _Run, epoch: int, rng: Any, best_scores: dict[str, Any] | None) -> None:
    """``last.pt`` (and ``best.pt`` when the epoch improved, with its validation scores) and
    ``metrics.csv``, all written before any replaces its file."""
    config = run.config
    last = {
        "model": t.raw_model.state_dict(), "optimizer": t.optimizer.state_dict(),
        "scheduler": t.scheduler.state_dict(),
        "scaler": t.scaler.state_dict() if t.scaler is not None else None,
        "epoch": epoch, "rng": rng, "history": t.history, "best_epoch": t.best_epoch,
        "best_val_score": t.best_score, "select_metric": config.select_metric,
        "config": config.to_dict(), "class_names": run.class_names, "world_size": run.ctx.world_size,
        "data": run.data,
    }
    files = [(run.out / rundir.LAST, lambda handle: torch.save(last, handle))]
    if best_scores is not None:
        best = {"model": t.best_state, "epoch": epoch, "select_metric": config.select_metric,
                "val_score": t.best_score, "val_scores": best_scores,
                "config": config.to_dict(), "class_names": run.class_names, "data": run.data}
        # best.pt first and both written before either replaces its file: no space for
        # last.pt must not leave a best.pt of an epoch that last.pt does not hold (a
        # resume would take it for the best of an earlier epoch).
        files.insert(0, (run.out / rundir.BEST, lambda handle: torch.save(best, handle)))
    atomic_write_all(files, binary=True)
    t.saved_epoch = epoch
    rundir.write_metrics(t.history, run.out, run.task)


def _finish(t: _Training, run: _Run) -> RunResult:
    """The best model by the validation score, evaluated once on validation and test."""
    if t.best_state is None:
        raise LmflossError(f"no epoch finished in {run.out}; nothing to evaluate")
    t.raw_model.load_state_dict(t.best_state)
    results = {
        split: split_result(split, evaluate(t.raw_model, run.loaders[split], device=run.device,
                                            amp_dtype=t.amp_dtype, channels_last=t.channels_last, ctx=run.ctx),
                            run.datasets[split], run.task)
        for split in ("val", "test")
    }
    report = final_report(run.config, run.class_names, run.train_counts, results, t.best_epoch)
    report["data"] = run.data
    report["split_leakage"] = run.data.get("leakage")
    report["skipped_images"] = [str(p) for p in run.skipped]
    report["software"] = software(run.device)
    if run.config.refit:
        report["refit"] = _refit(run, t, results)
    if run.ctx.is_main:
        write_outputs(run.out, report, results["test"], t.history, run.train_counts)
    barrier(run.ctx)
    return RunResult(run.out, t.best_epoch, t.best_score, report, t.history, run.config.select_metric)


def _number(value: Any) -> float:
    """A recorded score as a float (NaN where it was undefined, e.g. a macro over no label)."""
    return float("nan") if value is None else float(value)


def _best_score(ckpt: dict[str, Any]) -> float:
    # Checkpoints of lmfloss 0.1 kept only the best validation macro-F1 (the only metric then).
    return float(ckpt.get("best_val_score", ckpt.get("best_val_f1_macro", -float("inf"))))


def _refit(run: _Run, t: _Training, results: dict[str, SplitResult]) -> dict[str, Any]:
    """Train a fresh model on train + validation for the selected number of epochs (the same
    seed, schedule and augmentation; no validation is left to choose anything, so the
    thresholds of the selection run's validation split are kept), save ``refit.pt`` and return
    its test report with how it was made (``report.json``'s ``refit``)."""
    config, ctx = run.config, run.ctx
    epochs = t.best_epoch
    merged = _train_and_val_as_train(run.splits)
    train = dataset_for(config, "train", merged, defer_float=True, warn_notes=False)
    logger.info("refit: %d epoch(s) on train + validation (%d images)", epochs, len(train))
    _set_seed(config.seed)
    counts = _train_counts(config, merged, {"train": train, "val": run.datasets["val"], "test": run.datasets["test"]})
    refit_run = dataclasses.replace(run, train_counts=counts, loaders={
        "train": make_loader(train, config, ctx, run.device, train=True), "test": run.loaders["test"]})
    r = _build(refit_run, None)
    for epoch in range(1, epochs + 1):
        refit_run.loaders["train"].sampler.set_epoch(epoch - 1)
        r.loss_fn.set_epoch(epoch - 1)
        stats = train_one_epoch(r.train_model, refit_run.loaders["train"], r.loss_fn, r.optimizer, device=run.device,
                                epoch=epoch, amp_dtype=r.amp_dtype, scaler=r.scaler, channels_last=r.channels_last,
                                ctx=ctx, progress=run.progress, should_stop=run.should_stop, task=run.task)
        if stats["stopped"]:
            raise TrainingInterrupted(f"stopped during the refit (epoch {epoch}); the selection run is saved. "
                                      f"Continue with: lmfloss train --resume {run.out}")
        r.scheduler.step()
        logger.info("refit epoch %d/%d  train_loss %.4f", epoch, epochs, stats["loss"])
    test = split_result("test", evaluate(r.raw_model, run.loaders["test"], device=run.device, amp_dtype=r.amp_dtype,
                                         channels_last=r.channels_last, ctx=ctx), run.datasets["test"], run.task)
    if ctx.is_main:
        state = {"model": _cpu_state_dict(r.raw_model), "epoch": epochs, "refit": True, "config": config.to_dict(),
                 "class_names": run.class_names, "data": run.data}
        atomic_write_all([(run.out / rundir.REFIT, lambda handle: torch.save(state, handle))], binary=True)
    report = final_report(config, run.class_names, counts, {"val": results["val"], "test": test}, t.best_epoch)
    return {"epochs": epochs, "train_images": len(train), "train_counts": counts, "checkpoint": rundir.REFIT,
            "thresholds_from": "the selection run's validation split", "test": report["test"]}


def _train_and_val_as_train(splits: Splits) -> Splits:
    """``splits`` with its validation records moved into train (test unchanged)."""
    test = {id(r) for r in splits.records("test")}
    assignment = ["test" if id(r) in test else "train" for r in splits.index.records]
    return Splits(splits.index, assignment, seed=splits.seed, group_by=splits.group_by, official=splits.official,
                  skip_bad_images=splits.skip_bad_images, skipped=splits.skipped)


def write_outputs(out: Path, report: dict[str, Any], test: SplitResult, history: list[dict[str, Any]],
                  train_counts: list[Any]) -> None:
    """Write predictions.csv, per_class.csv and the pictures, then report.json (its presence
    marks the run as finished) and MODEL_CARD.md (made from report.json and config.yaml)."""
    class_names = report["class_names"]
    test = scored(test, TrainConfig.from_dict(report["config"]))
    probs = test.probs()
    # pred: the rule predict and the export apply (a multi-label run's thresholds chosen on validation)
    decisions = test.task.decide(probs, test.task.thresholds_of(report))
    rundir.write_predictions(test.ids, test.labels, probs, class_names, out, decisions)
    rundir.write_per_class(report["test"], class_names, train_counts, out)
    caption = f"test, best epoch {report['best_epoch']}"
    plots.plot_confusion_of(report, out / rundir.CONFUSION, caption)
    plots.plot_curves(history, report["best_epoch"], out / rundir.CURVES, test.task)
    plots.plot_reliability(test.labels, probs, out / rundir.CALIBRATION, caption)
    rundir.write_report(report, out)
    write_model_card(out)  # from report.json and config.yaml, so after them


def _kept(saved_epoch: int) -> str:
    """What a run directory holds after a failed write, for :func:`lmfloss.fileio.disk_full`."""
    return f"last.pt holds epoch {saved_epoch}" if saved_epoch else "no epoch is saved yet (no last.pt)"


def _stop_message(out: Path, epoch: int, step: int, start_epoch: int, history: list) -> str:
    done = history[-1]["epoch"] if history else start_epoch
    where = f"during epoch {epoch} (step {step})" if step else f"before epoch {epoch}"
    saved = f"last.pt holds epoch {done}" if done else "no epoch finished yet"
    return f"stopped {where}; {saved}. Continue with: lmfloss train --resume {out}"


def _tensorboard(config: TrainConfig, out: Path, ctx: DistContext):
    if not (config.tensorboard and ctx.is_main):
        return None
    return _require_tensorboard()(log_dir=str(out / "tensorboard"))


def _require_tensorboard():
    """``SummaryWriter``, or a ValueError saying how to install it."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional extra: lmfloss[tensorboard]
    except ImportError:
        raise ValueError(
            f"--tensorboard needs the tensorboard package: {install_hint('tensorboard')}"
        ) from None
    return SummaryWriter


__all__ = ["RunResult", "check_config", "final_report", "fit", "load_data", "write_outputs"]


def _cpu_state_dict(model: torch.nn.Module) -> OrderedDict[str, torch.Tensor]:
    """A CPU copy of ``model.state_dict()`` that keeps its ``_metadata`` (module versions).

    Some modules (e.g. MNASNet, BatchNorm of old checkpoints) read the version from the
    metadata in ``load_state_dict``; a plain dict copy drops it and loading fails.
    """
    state = model.state_dict()
    copy = OrderedDict((k, v.detach().cpu().clone()) for k, v in state.items())
    copy._metadata = getattr(state, "_metadata", None)  # type: ignore[attr-defined]
    return copy
