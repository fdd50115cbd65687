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
            "Compute class activation maps for one or more run directories (several seeds per "
            "loss allowed), score them against annotation boxes (pointing game with tolerance, "
            "energy in box, each beside a shuffled-annotation baseline; IoU), measure their "
            "faithfulness (ROAD) beside a random map's, compare losses over seeds and draw the "
            "paper's Fig. 3. Writes cam_metrics.csv, cam_summary.csv, cam_groups.csv, "
            "cam_tests.csv (two groups or more), overlays/ and fig_attention.png/.pdf into --out."
        ),
    )
    parser.add_argument("--run", dest="runs", action="append", default=[], metavar="RUN_DIR",
                        help="run directory (repeat; runs differing only in the seed form one group, "
                             "one figure column per group)")
    parser.add_argument("--runs-from", action="append", default=[], metavar="SWEEP_DIR",
                        help="add every finished run below this folder, grouped by loss (repeatable)")
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
                        help="layer to explain (default: the deepest block whose map is at least "
                             "--min-map-size per side at the run's image size)")
    parser.add_argument("--min-map-size", type=int, default=7, metavar="PX",
                        help="smallest map side the default layer may have (default: 7, layer4 at 224 px)")
    parser.add_argument("--tolerance", type=float, default=None, metavar="PX",
                        help="pointing game: a hit within this many map pixels of the annotation "
                             "(default: 15 px x image size / 224, Zhang et al.; 0: exact)")
    parser.add_argument("--faithfulness", default="road", choices=("road", "drop", "none"),
                        help="ROAD (remove and debias, 10-90%% removal), the confidence drop when "
                             "the map's top 20%% is removed, or none (default: road)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the shuffled-annotation baseline, random maps and imputer noise")
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


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}"


def _pm(row: dict, metric: str) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    return _fmt(mean) if math.isnan(std) else f"{_fmt(mean)} ± {_fmt(std)}"


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _run_cam(args: argparse.Namespace) -> int:
    from lmfloss.cam.run import run_cam  # torch: lmfloss --help runs without it

    outputs = run_cam(
        args.runs, args.out, runs_from=args.runs_from, split=args.split, ids=args.ids, n=args.n,
        misclassified=args.misclassified, method=args.method, target_layer=args.target_layer,
        target=args.target, boxes_csv=args.boxes, masks_dir=args.masks,
        checkpoint=args.checkpoint, device=args.device, batch_size=args.batch_size,
        figure_rows=args.figure_rows, overlays=not args.no_overlays,
        min_map_size=args.min_map_size, tolerance=args.tolerance,
        faithfulness=args.faithfulness, seed=args.seed, progress=not args.quiet,
    )
    runs = [r for r in outputs.summary if r["class"] == "all"]
    # The faithfulness column: ROAD, or the confidence drop with --faithfulness drop.
    faith = "conf_drop" if args.faithfulness == "drop" else "road"
    name = {"road": "ROAD", "conf_drop": "drop"}[faith]
    _print_table(
        ("run", "target", "layer", "map", "images", "scored", "acc", "pointing", "shuffled", "energy",
         "chance", name, "random"),
        [(r["run"], r["target"], r["layer"], r["map_size"], str(r["n_images"]), str(r["n_scored"]),
          _fmt(r["accuracy"]), _fmt(r["pointing_hit_rate"]), _fmt(r["pointing_shuffled"]),
          _fmt(r["energy_in_box"]), _fmt(r["chance"]), _fmt(r[faith]), _fmt(r[f"{faith}_random"]))
         for r in runs],
    )
    if any(g["n_runs"] > 1 for g in outputs.groups):
        print()
        _print_table(
            ("group", "target", "runs", "pointing", "pointing - shuffled", "energy/chance", name),
            [(g["group"], g["target"], str(g["n_runs"]), _pm(g, "pointing_hit_rate"),
              _pm(g, "pointing_minus_shuffled"), _pm(g, "energy_over_chance"), _pm(g, faith))
             for g in outputs.groups],
        )
    if outputs.tests:
        print()
        _print_table(
            ("target", "metric", "A", "B", "seeds", "A - B", "p (seeds)", "p (images)"),
            [(t["target"], t["metric"], t["group_a"], t["group_b"], str(t["n_seeds"]), _fmt(t["delta"]),
              _fmt(t["p_seeds_holm"]), _fmt(t["p_images_holm"])) for t in outputs.tests],
        )
    print(f"metrics: {outputs.metrics_csv}")
    print(f"summary: {outputs.summary_csv}")
    print(f"groups: {outputs.groups_csv}")
    if outputs.tests_csv:
        print(f"tests: {outputs.tests_csv} (p Holm-corrected)")
    for path in outputs.figure:
        print(f"figure: {path}")
    if outputs.overlays:
        print(f"overlays: {outputs.out_dir / 'overlays'} ({len(outputs.overlays)} PNG)")
    return 0
