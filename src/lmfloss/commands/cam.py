"""``lmfloss cam``: Grad-CAM maps for trained runs, scored against boxes or lesion masks."""

from __future__ import annotations

import argparse
import math

METHOD_CHOICES = ("gradcam", "gradcam++", "hirescam", "scorecam", "eigencam", "layercam")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the lmfloss parser."""
    parser = subparsers.add_parser(
        "cam",
        help="Grad-CAM maps of trained runs, scored against boxes or lesion masks (Fig. 3)",
        description=(
            "Compute class activation maps for one or more run directories, score them "
            "against annotation boxes (pointing game, energy in box vs chance, IoU) and draw "
            "the paper's Fig. 3. Writes cam_metrics.csv, cam_summary.csv, overlays/ and "
            "fig_attention.png/.pdf into --out."
        ),
    )
    parser.add_argument("--run", dest="runs", action="append", required=True, metavar="RUN_DIR",
                        help="run directory (repeat for one figure column per run)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"),
                        help="split to take images from (default: test)")
    select = parser.add_mutually_exclusive_group()
    select.add_argument("--ids", nargs="+", metavar="ID", help="image ids to explain")
    select.add_argument("--misclassified", action="store_true",
                        help="images misclassified by at least one run")
    parser.add_argument("--n", type=int, default=None, metavar="N",
                        help="number of images (default 8, spread over classes); a cap with "
                             "--ids/--misclassified")
    parser.add_argument("--method", default="gradcam", choices=METHOD_CHOICES,
                        help="CAM method from pytorch-grad-cam (default: gradcam)")
    parser.add_argument("--target-layer", default=None, metavar="DOTTED.NAME",
                        help="layer to explain (default: per architecture, e.g. layer4.2)")
    parser.add_argument("--target", default="pred", choices=("pred", "true", "both"),
                        help="class the map explains (default: the predicted one)")
    ann = parser.add_mutually_exclusive_group()
    ann.add_argument("--boxes", default=None, metavar="FILE.csv",
                     help="CSV id,x0,y0,x1,y1 in original pixels (x1, y1 exclusive)")
    ann.add_argument("--masks", default=None, metavar="DIR",
                     help="folder of binary masks <id>_segmentation.png (HAM10000 layout)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"))
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | mps (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--figure-rows", type=int, default=8,
                        help="images shown in fig_attention (default: 8)")
    parser.add_argument("--no-overlays", action="store_true", help="skip per-image overlay PNGs")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")
    parser.set_defaults(func=_run_cam)


def _fmt(value: float) -> str:
    return "-" if isinstance(value, float) and math.isnan(value) else f"{value:.3f}"


def _run_cam(args: argparse.Namespace) -> int:
    from lmfloss.cam.run import run_cam

    outputs = run_cam(
        args.runs, args.out, split=args.split, ids=args.ids, n=args.n,
        misclassified=args.misclassified, method=args.method, target_layer=args.target_layer,
        target=args.target, boxes_csv=args.boxes, masks_dir=args.masks,
        checkpoint=args.checkpoint, device=args.device, batch_size=args.batch_size,
        figure_rows=args.figure_rows, overlays=not args.no_overlays,
    )
    rows = [r for r in outputs.summary if r["class"] == "all"]
    header = ("run", "target", "images", "scored", "acc", "pointing", "energy", "chance", "IoU@.5")
    table = [header] + [
        (r["run"], r["target"], str(r["n_images"]), str(r["n_scored"]), _fmt(r["accuracy"]),
         _fmt(r["pointing_hit_rate"]), _fmt(r["energy_in_box"]), _fmt(r["chance"]),
         _fmt(r["iou_at_half_max"]))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"metrics: {outputs.metrics_csv}")
    print(f"summary: {outputs.summary_csv}")
    for path in outputs.figure:
        print(f"figure: {path}")
    if outputs.overlays:
        print(f"overlays: {outputs.out_dir / 'overlays'} ({len(outputs.overlays)} PNG)")
    return 0
