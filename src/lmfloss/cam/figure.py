"""Overlays and the attention figure (the paper's Fig. 3 layout).

``fig_attention.png`` / ``.pdf``: one row per image; the first column is the image with
its annotation boxes (green, as the paper's doctor boxes), then one column per run with
the CAM overlaid (jet colour map), each titled with the true and the predicted class
(green when right, red when wrong). Sized for print: 1.7 in per panel, 7-pt text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from lmfloss.cam.metrics import Box
from lmfloss.fileio import atomic_write, save_figure

BOX_COLOUR = (0, 220, 0)
PANEL_INCHES = 1.7
CAPTION_INCHES = 0.35


def resize_map(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float map to ``[height, width]`` (PIL, float32)."""
    cam = np.asarray(cam, dtype=np.float32)
    if cam.shape == (height, width):
        return cam
    return np.asarray(
        Image.fromarray(cam, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    )


def overlay_cam(
    image: np.ndarray, cam: np.ndarray, *, alpha: float = 0.45, colormap: str = "jet"
) -> np.ndarray:
    """Blend a CAM over an image.

    Args:
        image: ``uint8 [H, W, 3]`` (or ``[H, W]`` grey).
        cam: ``[h, w]`` map in ``[0, 1]``; resized to the image (bilinear).
        alpha: weight of the heat map.
        colormap: a matplotlib colour map name.

    Returns:
        ``uint8 [H, W, 3]`` = ``(1 - alpha) * image + alpha * colormap(cam)``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"image must be [H, W, 3], got shape {image.shape}")
    height, width = image.shape[:2]
    heat = colormaps[colormap](np.clip(resize_map(cam, height, width), 0.0, 1.0))[..., :3]
    mixed = (1 - alpha) * image[..., :3].astype(np.float32) / 255.0 + alpha * heat
    return np.clip(np.round(mixed * 255.0), 0, 255).astype(np.uint8)


def draw_boxes(
    image: np.ndarray, boxes: Sequence[Box], *, colour: tuple[int, int, int] = BOX_COLOUR
) -> np.ndarray:
    """Draw boxes (x1/y1 exclusive) on a copy of ``uint8 [H, W, 3]``; line ~1% of the size."""
    canvas = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    draw = ImageDraw.Draw(canvas)
    line = max(1, round(min(canvas.size) / 100))
    for x0, y0, x1, y1 in boxes:
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=line)
    return np.asarray(canvas)


def safe_name(image_id: str) -> str:
    """An image id as a file name (ids of folder datasets may hold path separators)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in image_id)


def save_overlay(
    path: str | Path, image: np.ndarray, cam: np.ndarray, boxes: Sequence[Box] = ()
) -> Path:
    """Write the CAM overlay (with boxes, if any) as a PNG at the image's resolution."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(draw_boxes(overlay_cam(image, cam), boxes))
    atomic_write(path, lambda handle: picture.save(handle, format="PNG"), binary=True)
    return path


@dataclass
class FigureCell:
    """One run's panel: its map (None: not computed) and predicted class name."""

    cam: np.ndarray | None
    predicted: str


@dataclass
class FigureRow:
    """One image: the image, its boxes, its true class and one cell per run."""

    image_id: str
    image: np.ndarray
    true: str
    boxes: list[Box] = field(default_factory=list)
    cells: list[FigureCell] = field(default_factory=list)


def attention_figure(
    rows: Sequence[FigureRow], run_names: Sequence[str], out: str | Path, *, caption: str | None = None
) -> list[Path]:
    """Draw the attention figure and save it as ``<out>.png`` and ``<out>.pdf``.

    Args:
        rows: one :class:`FigureRow` per image, each with ``len(run_names)`` cells.
        run_names: column titles (e.g. the loss of each run).
        out: output path without (or with) suffix, e.g. ``out_dir / "fig_attention"``.
        caption: a line under the panels (e.g. the CAM layer and its map size).

    Returns:
        The two written paths (PNG, PDF).
    """
    if not rows:
        raise ValueError("the attention figure needs at least one image row")
    for row in rows:
        if len(row.cells) != len(run_names):
            raise ValueError(
                f"row {row.image_id!r} has {len(row.cells)} cells for {len(run_names)} runs"
            )
    ncols = 1 + len(run_names)
    bottom = CAPTION_INCHES if caption else 0.0
    fig = Figure(figsize=(PANEL_INCHES * ncols, (PANEL_INCHES + 0.25) * len(rows) + 0.3 + bottom))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, row in enumerate(rows):
        ax = axes[r][0]
        ax.imshow(draw_boxes(row.image, row.boxes) if row.boxes else row.image[..., :3])
        ax.set_title(f"{row.image_id}\ntrue: {row.true}", fontsize=7)
        if r == 0:
            ax.text(0.5, 1.45, "image", transform=ax.transAxes, ha="center", fontsize=8,
                    fontweight="bold")
        for c, cell in enumerate(row.cells, start=1):
            ax = axes[r][c]
            if cell.cam is None:
                ax.imshow(np.full_like(row.image[..., :3], 255))
            else:
                ax.imshow(draw_boxes(overlay_cam(row.image, cell.cam), row.boxes))
            right = cell.predicted == row.true
            ax.set_title(
                f"true: {row.true}\npred: {cell.predicted}", fontsize=7,
                color="darkgreen" if right else "firebrick",
            )
            if r == 0:
                ax.text(0.5, 1.45, run_names[c - 1], transform=ax.transAxes, ha="center",
                        fontsize=8, fontweight="bold")
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])
    if caption:
        fig.text(0.5, 0.1 * bottom / fig.get_figheight(), caption, ha="center", va="bottom", fontsize=6,
                 wrap=True)
    fig.tight_layout(rect=(0, bottom / fig.get_figheight(), 1, 1 - 0.3 / fig.get_figheight()))
    out = Path(out)
    stem = out.with_suffix("") if out.suffix in (".png", ".pdf") else out
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    save_figure(fig, paths[0], dpi=200)
    save_figure(fig, paths[1])
    return paths


def write_overlays(folder: Path, suffix: str, maps: np.ndarray, records: Sequence, images: dict,
                   boxes: dict) -> list[Path]:
    """``<folder>/<id>_<suffix>.png`` for every record: its map over its image, with boxes.

    Args:
        maps: ``[N, H, W]``, one per record, in order.
        images / boxes: per record id (boxes may be empty).
    """
    return [save_overlay(folder / f"{safe_name(rec.id)}_{suffix}.png", images[rec.id], maps[k], boxes[rec.id])
            for k, rec in enumerate(records)]
