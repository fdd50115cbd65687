"""``lmfloss export``: a finished run's model with its preprocessing, as ONNX or TorchScript.

See :mod:`lmfloss.export` for what the file takes and returns and which input sizes are
exact. ``--format`` and ``--checkpoint`` are checked by the library (not argparse
``choices``) so that a wrong value is one line naming it, like every other user error.
"""

from __future__ import annotations

import argparse

from lmfloss.task import get_task


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export``."""
    parser = subparsers.add_parser(
        "export", help="write a run's model with its preprocessing as ONNX or TorchScript",
        description="Export a finished run: uint8 RGB images [N, H, W, 3] in, class probabilities [N, K] out, "
                    "scaling and normalisation inside. Inputs must be at the run's image size, except for "
                    "TorchScript of array-dataset runs (MedMNIST, synthetic), which resize as training did. "
                    "Writes FILE, FILE.json (the preprocessing recipe from image file to probabilities: "
                    "intensity rule, resize, normalisation; class names, task, decision threshold, test "
                    "metrics) and FILE.MODEL_CARD.md next to FILE (a card per exported model; a run "
                    "directory's own files are never replaced). ONNX needs: pip install 'lmfloss[export]'.",
    )
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="a finished run directory")
    parser.add_argument("--checkpoint", default="best", metavar="best|last",
                        help="best (best validation score; default) or last")
    parser.add_argument("--format", required=True, dest="fmt", metavar="onnx|torchscript",
                        help="onnx (recommended; opset 18) or torchscript (deprecated by PyTorch)")
    parser.add_argument("--out", required=True, metavar="FILE", help="the model file to write")
    parser.add_argument("--quiet", action="store_true", help="no log lines")
    parser.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from lmfloss.export import export_run, output_kind  # torch: lmfloss --help runs without it

    result = export_run(args.run, args.out, args.fmt, checkpoint=args.checkpoint)
    info = result.info
    shape = ", ".join(str(d) for d in info["input"]["shape"])
    decision = info["decision"]
    rule = (f"; positive class {decision['positive_class']}, threshold {decision['threshold']:.4f}"
            if decision.get("threshold") is not None else "")
    task = get_task(info)  # the sidecar records the task by name
    kind = output_kind(task).words(task)["counted"]
    print(f"{result.model}: {args.fmt}, uint8 RGB [{shape}] -> probabilities of {len(info['class_names'])} "
          f"{kind}{rule}")
    print(f"written: {result.model}, {result.sidecar}, {result.model_card}")
    return 0
