"""A run's model with its preprocessing, as one ONNX or TorchScript file someone can deploy.

The exported graph takes what an image decoder gives -- ``uint8`` RGB images
``[N, H, W, 3]`` -- and returns ``float32`` probabilities ``[N, K]`` in ``class_names`` order,
as the run's task defines them (:meth:`lmfloss.task.Task.probabilities`: a softmax over the
classes of a multi-class run, a sigmoid per label of a multi-label run). Inside it: ``x / 255``
and the run's per-channel normalisation (:data:`lmfloss.data.transforms.NORMALIZATIONS`), the
network, the task's activation. The batch size is free.

Resizing -- which inputs are exact:

* **At the run's image size** ``S`` (``[N, S, S, 3]``) every export gives the
  probabilities of ``lmfloss predict`` (:func:`lmfloss.train.predict`) on the same pixels
  to 1e-4 (each export is checked against PyTorch before it is written). This is the only size an ONNX file accepts (ONNX
  Runtime refuses another with "Got invalid dimensions for input: images"), and the only
  size a TorchScript file of a **file dataset** run accepts (HAM10000, csv, imagefolder...):
  those runs were resized with PIL's antialiased bilinear filter, which no graph reproduces.
  Resize first as training did: ``lmfloss.data.dataset.prepare_image(image, S,
  resize=<sidecar input.training_resize>)``.
* **TorchScript of an array dataset run** (MedMNIST, synthetic) accepts any ``H, W``: the
  graph resizes with the very operation training used
  (:func:`lmfloss.data.dataset.resize_array`: ``interpolate(bilinear, antialias=True)``,
  rounded to uint8), bit-exact on the CPU. ONNX does not get this resize: ONNX Runtime's
  antialiased ``Resize`` differs from torch's in float rounding, which moved about 0.5% of
  the pixels of random images by one grey level in our measurement (28 -> 32 px).

Next to ``FILE`` the export writes ``FILE.json`` (the sidecar: the task, class names, image
size, input layout, the **preprocessing recipe**, normalisation, the decision rule -- for
binary tasks the positive class and the validation-chosen Youden threshold --, the lmfloss
version, the source run, the data fingerprint and a test-metrics summary) and
``FILE.MODEL_CARD.md`` (:mod:`lmfloss.modelcard`; one card per exported model, so another
export's card in the same folder is never replaced, nor a run directory's own files).
ONNX files carry the same facts in ``metadata_props`` (the whole sidecar as
``lmfloss_sidecar``, the key facts as their own entries); TorchScript files carry the
sidecar as the extra file ``lmfloss.json`` (``torch.jit.load(path, _extra_files={"lmfloss.json": ""})``).
Every file is written atomically, after the exported model has been checked.

The recipe (``preprocessing`` in the sidecar, :func:`preprocessing_recipe`) is an ordered
list of steps with exact parameters, from an image file to the probabilities: ``decode``
(PIL), ``to_uint8_rgb`` (the run's intensity rule, :mod:`lmfloss.data.images`, case by PIL
mode), ``resize`` (the training resize), then what the graph does itself (``in_graph``):
``scale`` (``x / 255``), ``normalize``, ``network`` and the task's activation (``softmax``,
``sigmoid``). Following it with NumPy
and PIL alone gives ``lmfloss predict``'s probabilities (``tests/test_export_recipe.py``
does exactly that, for both intensity rules).

ONNX export needs ``pip install 'lmfloss[export]'`` (onnx, onnxscript for
``torch.onnx.export``, onnxruntime for the check). TorchScript needs nothing more, but
PyTorch has deprecated it; prefer ONNX for new deployments.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import logging
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lmfloss import __version__, multilabel_metrics, rundir
from lmfloss.data import get_adapter
from lmfloss.data.recipe import INTENSITY_EFFECT_ON_8_BIT, INTENSITY_TEXT, preprocessing_recipe
from lmfloss.data.transforms import NORMALIZATIONS
from lmfloss.errors import LmflossError
from lmfloss.extras import install_hint
from lmfloss.fileio import atomic_write, atomic_write_text
from lmfloss.modelcard import model_card_text
from lmfloss.task import MULTICLASS, Task, get_task, of_target
from lmfloss.train.run import CHECKPOINTS, load_run

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")  # the ``export`` extra
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"
ONNX_OPSET = 18
TORCHSCRIPT_EXTRA_FILE = "lmfloss.json"
TOLERANCE = 1e-4  # largest probability difference allowed between the export and PyTorch
MODEL_CARD_SUFFIX = ".MODEL_CARD.md"  # FILE.MODEL_CARD.md: one card per exported model


class ProbabilityHead(nn.Module):
    """The task's logits -> probabilities (:meth:`lmfloss.task.Task.probabilities`) as a
    module, so the exported graph ends in the task's activation whatever the task: a softmax,
    a sigmoid per label, or a registered task's own (``[N, 1]`` logits -> ``[N, 2]``)."""

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.task.probabilities(logits)


class DeployedModel(nn.Module):
    """``uint8`` RGB images ``[N, H, W, 3]`` -> ``float32`` probabilities ``[N, K]``.

    The run's preprocessing (:meth:`lmfloss.train.Run.preprocess`) and network in one
    module: ``x / 255``, then ``(x - mean) / std`` when the run normalised, the network
    and the task's activation (:class:`ProbabilityHead`).

    Args:
        network: the trained classifier (eval mode), float ``[N, 3, S, S]`` -> logits.
        image_size: the run's ``S``.
        normalize: the run's normalisation (a key of ``NORMALIZATIONS``).
        resize_in_graph: resize other sizes to ``S`` with training's torch resize (array
            dataset runs only); otherwise another size is an error.
        task: the run's task; the graph ends in its probabilities.
        head: the task's probabilities as a module (default :class:`ProbabilityHead` of
            ``task``; TorchScript takes a traced one, since a task object cannot be scripted).
    """

    __jit_ignored_attributes__ = ["task"]  # a Python object, asked in Python only (the head is traced)

    def __init__(self, network: nn.Module, image_size: int, normalize: str, resize_in_graph: bool = False,
                 task: Task = MULTICLASS, head: nn.Module | None = None) -> None:
        super().__init__()
        self.task = task
        self.head = ProbabilityHead(task) if head is None else head
        stats = NORMALIZATIONS[normalize]
        mean, std = stats if stats is not None else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        self.network = network
        self.image_size = image_size
        self.normalize = normalize
        self.resize_in_graph = resize_in_graph
        self.normalized = stats is not None
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.shape_error = (f"expected uint8 RGB images [N, {image_size}, {image_size}, 3] (the run's image size; "
                            "resize first as training did)")
        if resize_in_graph:
            self.shape_error = "expected uint8 RGB images [N, H, W, 3]"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[3] != 3 or images.dtype != torch.uint8:
            raise ValueError(self.shape_error)
        size = self.image_size
        x = images.permute(0, 3, 1, 2).to(torch.float32)
        if x.shape[2] != size or x.shape[3] != size:
            if not self.resize_in_graph:
                raise ValueError(self.shape_error)
            # lmfloss.data.dataset.resize_array, the training resize of array datasets.
            x = nn.functional.interpolate(x, size=[size, size], mode="bilinear", align_corners=False,
                                          antialias=True).round().clamp(0.0, 255.0)
        x = x / 255.0
        if self.normalized:
            x = (x - self.mean) / self.std
        return self.head(self.network(x).float())


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` wrote: the model file, its sidecar, the model card, and the
    sidecar's content (``info``)."""

    model: Path
    sidecar: Path
    model_card: Path
    info: dict[str, Any]


def sidecar_path(out: str | Path) -> Path:
    """``FILE.json`` of an exported ``FILE``."""
    return Path(f"{out}.json")


def model_card_path(out: str | Path) -> Path:
    """``FILE.MODEL_CARD.md`` of an exported ``FILE``: named after the model, so exports into
    one folder keep a card each and a run directory's ``MODEL_CARD.md`` stays training's."""
    return Path(f"{out}{MODEL_CARD_SUFFIX}")


def _check_out(out: Path) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    parent = out.parent
    if not parent.exists():
        raise FileNotFoundError(f"folder {str(parent)!r} of the output file {str(out)!r} does not exist")
    if not parent.is_dir():
        raise NotADirectoryError(f"{str(parent)!r} (the folder of output file {str(out)!r}) is a file, not a folder")
    written = (out, sidecar_path(out), model_card_path(out))
    for path in written:
        if path.is_dir():
            raise IsADirectoryError(f"output file {str(path)!r} is a folder; expected a file path")
    if (parent / rundir.CONFIG).is_file():
        for path in written:
            if path.name in rundir.RUN_FILES:
                raise ValueError(f"output file {str(path)!r} would replace the run directory's own {path.name}; "
                                 "give --out another name")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write into folder {str(parent)!r} (output file {str(out)!r})")


def require_onnx() -> None:
    """Raise a one-line error saying what to install when the ``export`` extra is missing."""
    missing = [m for m in ONNX_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise LmflossError(f"ONNX export needs {', '.join(missing)} (not installed): {install_hint('export')}")


def deployable(run: Any, resize_in_graph: bool = False) -> DeployedModel:
    """The :class:`DeployedModel` of a run from :func:`lmfloss.train.load_run` (on the CPU).

    Raises:
        ValueError: ``resize_in_graph`` for a file dataset run (PIL's resize is not in any graph).
    """
    if resize_in_graph and get_adapter(run.config.dataset).resize != "torch":
        raise ValueError(f"dataset {run.config.dataset!r} was resized with PIL in training; "
                         "that resize cannot be put in the graph")
    return DeployedModel(run.model.cpu().eval(), run.config.image_size, run.config.normalize, resize_in_graph,
                         get_task(run.config)).eval()


def onnx_bytes(model: DeployedModel, metadata: dict[str, str]) -> bytes:
    """``model`` as an ONNX file (opset 18, dynamic batch, input ``[N, S, S, 3]`` uint8)
    with ``metadata`` in ``metadata_props``."""
    require_onnx()
    size = model.image_size
    example = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    # The exporter's graph optimiser logs every pass at INFO; that is not the user's business.
    quiet = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(max(q.level, logging.WARNING))
    try:
        program = torch.onnx.export(
            model, (example,), None, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=ONNX_OPSET,
            dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}}, dynamo=True, verbose=False,
        )
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    proto = program.model_proto
    proto.doc_string = "lmfloss: uint8 RGB images [N, H, W, 3] -> class probabilities [N, K]"
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def torchscript_bytes(model: DeployedModel, info: dict[str, Any]) -> bytes:
    """``model`` as a TorchScript file: the network and the task's probabilities traced, the
    preprocessing scripted (its size check and resize stay shape-dependent), the sidecar as
    extra file ``lmfloss.json``."""
    size = model.image_size
    with warnings.catch_warnings():  # torch 2.9+ deprecates torch.jit; the user asked for it
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=FutureWarning)
        # A copy without gradients: the saved module's outputs should not require grad.
        frozen = copy.deepcopy(model.network).requires_grad_(False)
        example = torch.zeros(2, 3, size, size)
        network = torch.jit.trace(frozen, example)
        with torch.no_grad():
            head = torch.jit.trace(model.head, network(example).float())
        scripted = torch.jit.script(DeployedModel(network, size, model.normalize, model.resize_in_graph,
                                                  model.task, head).eval())
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer, _extra_files={TORCHSCRIPT_EXTRA_FILE: json.dumps(info, indent=2)})
    return buffer.getvalue()


def load_exported(data: bytes, fmt: str) -> Callable[[np.ndarray], np.ndarray]:
    """A callable ``uint8 [N, H, W, 3] -> float32 [N, K]`` (numpy) of an exported file's bytes."""
    if fmt == "onnx":
        import onnxruntime  # optional extra: lmfloss[export]

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        return lambda images: session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=FutureWarning)
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    return lambda images: module(torch.from_numpy(images)).detach().numpy()


@torch.inference_mode()
def _check_export(model: DeployedModel, data: bytes, fmt: str) -> float:
    """The largest probability difference between the export and ``model`` on random
    images (batches of 1 and 3; and another size when the graph resizes); over
    :data:`TOLERANCE` it is an error."""
    size = model.image_size
    rng = np.random.default_rng(0)
    run = load_exported(data, fmt)
    worst = 0.0
    shapes = [(1, size, size), (3, size, size)] + ([(2, size + 5, size * 2)] if model.resize_in_graph else [])
    for shape in shapes:
        images = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
        expected = model(torch.from_numpy(images)).numpy()
        worst = max(worst, float(np.abs(run(images) - expected).max()))
    if not worst <= TOLERANCE:
        raise LmflossError(f"the {fmt} export differs from PyTorch by {worst:.2g} in probability (allowed "
                           f"{TOLERANCE:g}); nothing was written")
    return worst


@dataclass(frozen=True)
class OutputKind:
    """What an export says of a task's outputs, by the shape of its target
    (:attr:`lmfloss.task.Task.target`); ``{activation}``, ``{item}``, ``{items}`` and
    ``{display}`` in the texts are the task's words.

    Attributes:
        meaning: the sidecar's ``output.meaning``.
        counted: what ``lmfloss export`` says the ``K`` outputs are.
        decision: ``(run, report.json, measured) -> the sidecar's decision rule``.
    """

    meaning: str
    counted: str
    decision: Callable[[Any, Mapping[str, Any], bool], dict[str, Any]]

    def words(self, task: Task) -> dict[str, str]:
        """The texts of this kind in ``task``'s words."""
        fields = {"activation": task.activation, "item": task.item, "items": task.items, "display": task.display}
        return {"meaning": self.meaning.format(**fields), "counted": self.counted.format(**fields)}


def _class_decision(run: Any, report: Mapping[str, Any], measured: bool) -> dict[str, Any]:
    """One class per image: the argmax, or for two classes ``P(positive) >= threshold`` at
    the validation-chosen Youden threshold where ``report.json`` describes the exported weights."""
    test = report.get("test") or {}
    positive = test.get("positive_class") if len(run.class_names) == 2 else None
    if positive is None:
        return {"rule": "argmax"}
    threshold = (test.get("at_threshold") or {}).get("threshold") if measured else None
    return {"positive_class": positive, "positive_index": run.class_names.index(positive),
            "threshold": threshold, "chosen_on": "validation, Youden's J" if threshold is not None else None,
            "rule": (f"P({positive}) >= threshold" if threshold is not None else
                     "argmax (report.json holds no threshold for this checkpoint)")}


def _label_decision(run: Any, report: Mapping[str, Any], measured: bool) -> dict[str, Any]:
    """Any subset of labels: a label is present when its probability reaches its threshold,
    chosen on validation (F1 per label) where ``report.json`` describes the exported weights,
    else 0.5; with ``score_by: patient`` the thresholds apply to a patient's probability, the
    largest of its images'."""
    chosen = (report.get("val") or {}).get("thresholds_chosen") or {}
    ok = measured and all(name in chosen for name in run.class_names)
    per_patient = report.get("score_by") == "patient"
    return {
        "rule": "label l is present when P(l) >= thresholds[l]",
        "thresholds": {name: float(chosen[name]) if ok else multilabel_metrics.DEFAULT_THRESHOLD
                       for name in run.class_names},
        "chosen_on": "validation, the F1-maximising threshold of each label" if ok else None,
        "score_by": report.get("score_by") or "image",
        **({"patient_rule": "a patient's probability of a label is the largest of its images' (both eyes); the "
                            "thresholds were chosen on those patient probabilities"} if per_patient else {}),
        **({"study_rule": "a study's probability of a label is the largest of its views'; the thresholds were "
                          "chosen on those study probabilities"} if report.get("score_by") == "study" else {}),
    }


OUTPUT_KINDS: dict[str, OutputKind] = {
    "index": OutputKind("{activation} {item} probabilities in class_names order", "{items}", _class_decision),
    "multi-hot": OutputKind("{activation} probabilities, one per {item} in class_names order ({display}: any "
                            "subset of the {item}s)", "{item}s (a {activation} each)", _label_decision),
}
"""Target kind -> what an export says of the outputs and how they become decisions."""


def output_kind(task: Task) -> OutputKind:
    """The :class:`OutputKind` of ``task``'s target.

    Raises:
        ValueError: a target kind this module does not describe (the known ones are listed).
    """
    return of_target(OUTPUT_KINDS, task, "export description")


def sidecar_info(run: Any, report: dict[str, Any], fmt: str, checkpoint: str, out: Path,
                 resize_in_graph: bool) -> dict[str, Any]:
    """The sidecar's content (see the module docstring); metrics and threshold only where
    ``report.json`` describes the exported weights (best.pt, or last.pt of the best epoch)."""
    c, size, k = run.config, run.config.image_size, len(run.class_names)
    task = get_task(c)
    kind = output_kind(task)
    training_resize = get_adapter(c.dataset).resize
    measured = report.get("best_epoch") == run.epoch
    test = report.get("test") or {}
    stats = NORMALIZATIONS[c.normalize]
    how = (f"any H, W: the graph resizes to {size}x{size} as training did (torch bilinear, antialiased, rounded "
           "to uint8; bit-exact on the CPU)" if resize_in_graph else
           f"resize to {size}x{size} first, as training did: lmfloss.data.dataset.prepare_image(image, {size}, "
           f"resize={training_resize!r})" + (" (PIL bilinear)" if training_resize == "pil" else
                                             " (torch bilinear, antialiased, rounded to uint8)"))
    data = report.get("data") or run.data or {}
    return {
        "lmfloss_version": __version__,
        "format": fmt,
        "file": out.name,
        "model_card": model_card_path(out).name,
        "task": task.name,
        "source": {"run_dir": str(run.run_dir.resolve()), "checkpoint": checkpoint, "epoch": run.epoch},
        "class_names": list(run.class_names),
        "image_size": size,
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "channels": "RGB (grayscale: repeat "
                  "into 3 channels)", "shape": ["N", "H", "W", 3] if resize_in_graph else ["N", size, size, 3],
                  "resize_in_graph": resize_in_graph, "training_resize": training_resize, "resize": how},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["N", k],
                   "meaning": kind.words(task)["meaning"]},
        "intensity": {"rule": c.intensity, "description": INTENSITY_TEXT[c.intensity],
                      "eight_bit_images": INTENSITY_EFFECT_ON_8_BIT[c.intensity],
                      "applies_to": "image files (see preprocessing.arrays)"},
        "preprocessing": preprocessing_recipe(c, training_resize, resize_in_graph),
        "normalization": {"name": c.normalize, "scale": "x / 255", "mean": None if stats is None else list(stats[0]),
                          "std": None if stats is None else list(stats[1]), "in_graph": True},
        "decision": kind.decision(run, report, measured),
        "data": {key: data.get(key) for key in ("dataset", "name", "fingerprint")},
        "model": {"architecture": c.model, "stem": c.stem, "weights": c.weights,
                  "loss": (report.get("loss") or {}).get("name", c.loss)},
        "test_metrics": {key: test[key] for key in task.test_metrics if key in test} if measured else None,
        "test_metrics_of": (f"{checkpoint}.pt, epoch {run.epoch}" if measured else
                            f"not measured: report.json describes best.pt (epoch {report.get('best_epoch')}); "
                            f"run lmfloss evaluate --checkpoint {checkpoint}"),
    }


def _metadata(info: dict[str, Any]) -> dict[str, str]:
    """ONNX ``metadata_props`` (strings): the facts a runtime needs, and the whole sidecar."""
    resize = next(step for step in info["preprocessing"]["steps"] if step["op"] == "resize")
    meta = {"lmfloss_version": info["lmfloss_version"], "class_names": json.dumps(info["class_names"]),
            "image_size": str(info["image_size"]), "input_layout": "NHWC uint8 RGB",
            "normalization": info["normalization"]["name"], "source_run": info["source"]["run_dir"],
            "checkpoint": info["source"]["checkpoint"], "data_fingerprint": str(info["data"]["fingerprint"]),
            "task": info["task"], "intensity": info["intensity"]["rule"],
            "resize": f"{resize['method']} {resize['size'][0]}x{resize['size'][1]}"
                      + (" (in the graph)" if resize["in_graph"] else ""),
            "normalization_mean": json.dumps(info["normalization"]["mean"]),
            "normalization_std": json.dumps(info["normalization"]["std"]),
            "preprocessing": json.dumps(info["preprocessing"]),
            "lmfloss_sidecar": json.dumps(info)}
    decision = info["decision"]
    if "thresholds" in decision:
        meta["label_thresholds"] = json.dumps(decision["thresholds"])
    if "positive_class" in decision:
        meta["positive_class"] = decision["positive_class"]
        if decision["threshold"] is not None:
            meta["decision_threshold"] = repr(float(decision["threshold"]))
    return meta


def export_run(run_dir: str | Path, out: str | Path, fmt: str, checkpoint: str = "best") -> ExportResult:
    """Export a finished run's model with its preprocessing (see the module docstring).

    Args:
        run_dir: a finished run directory.
        out: the model file to write; ``FILE.json`` and ``FILE.MODEL_CARD.md`` go next to it.
        fmt: ``"onnx"`` or ``"torchscript"``.
        checkpoint: ``"best"`` or ``"last"``.

    Returns:
        The paths written and the sidecar's content.

    Raises:
        ValueError: unknown ``fmt`` or ``checkpoint``, or an output path that would replace a
            run directory's own file (``best.pt``, ``MODEL_CARD.md``...).
        FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError: an
            output path that cannot be written, or a missing run directory or checkpoint.
        LmflossError: an unfinished run (no report.json), the ONNX extra missing, or an
            export that does not match PyTorch. Nothing is written in any of these cases.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {list(CHECKPOINTS)}, got {checkpoint!r}")
    out, run_dir = Path(out), Path(run_dir)
    _check_out(out)
    if fmt == "onnx":
        require_onnx()
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} does not exist")
    config = rundir.read_config_dict(run_dir)
    report = rundir.read_report(run_dir)
    if report is None:
        raise LmflossError(f"run {str(run_dir)!r} is not finished (no {rundir.REPORT}); finish it with "
                           f"lmfloss train --resume {run_dir}")
    run = load_run(run_dir, checkpoint=checkpoint, device="cpu")
    resize_in_graph = fmt == "torchscript" and get_adapter(run.config.dataset).resize == "torch"
    model = deployable(run, resize_in_graph)
    info = sidecar_info(run, report, fmt, checkpoint, out, resize_in_graph)
    data = onnx_bytes(model, _metadata(info)) if fmt == "onnx" else torchscript_bytes(model, info)
    logger.debug("largest probability difference of the %s export: %.2g", fmt, _check_export(model, data, fmt))
    card = model_card_text(report, config, run_dir, export={
        "file": out.name, "format": fmt, "checkpoint": checkpoint, "epoch": run.epoch,
        "input": f"uint8 RGB [{', '.join(map(str, info['input']['shape']))}]; {info['input']['resize']}",
        "output": f"float32 probabilities [N, {len(run.class_names)}] in class order",
        "sidecar": sidecar_path(out).name, "note": None if info["test_metrics"] else info["test_metrics_of"],
    })
    atomic_write(out, lambda handle: handle.write(data), binary=True)
    atomic_write_text(json.dumps(info, indent=2) + "\n", sidecar_path(out))
    atomic_write_text(card, model_card_path(out))
    logger.debug("exported %s (%s.pt, epoch %d) to %s", run_dir, checkpoint, run.epoch, out)
    return ExportResult(out, sidecar_path(out), model_card_path(out), info)
