"""Imaging figures of the sample report: channel composite, cell-type map, example cells, marker histograms.

Part of the report stage. These figures show what the imaging stages (``dvp segment``,
``dvp classify``, ``dvp select``) made of one slide. They take arrays and tables, never files;
channel colours come from :func:`dvp_pipeline.report.palettes.channel_colors` (image order, nuclear
channel blue) and cell-type colours from a palette the page passes in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb as matplotlib_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter

from dvp_pipeline.errors import DVPError
from dvp_pipeline.report.figures._util import default_options, isna
from dvp_pipeline.report.palettes import (
    QC_MERGE_COLOR,
    QC_MISSED_COLOR,
    cell_type_palette,
    channel_colors,
    channel_palette,
)

__all__ = [
    "cell_gallery_figure",
    "cell_type_map_figure",
    "composite_rgb",
    "gallery_cells",
    "image_figure",
    "marker_histograms_figure",
    "nucleus_shape_figure",
    "segmentation_qc_figure",
]

_HISTOGRAM_COLOR = "#607d8b"  # markers without a composite colour
_LOW_CONFIDENCE_COLOR = "#b2182b"


def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Downsample the last two axes by averaging ``factor`` x ``factor`` blocks (edges cropped)."""
    if factor <= 1:
        return image.astype(np.float32)
    y, x = (image.shape[-2] // factor) * factor, (image.shape[-1] // factor) * factor
    cropped = image[..., :y, :x].astype(np.float32)
    shape = cropped.shape[:-2] + (y // factor, factor, x // factor, factor)
    return cropped.reshape(shape).mean(axis=(-3, -1))


def _resample_nearest(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of a label image to ``shape`` (labels must not be averaged)."""
    if labels.shape == tuple(shape):
        return labels
    rows = np.minimum((np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0], labels.shape[0] - 1)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1], labels.shape[1] - 1)
    return labels[rows.astype(int)[:, None], cols.astype(int)[None, :]]


def _channel_names(channels: Sequence[str] | None, n_channels: int) -> list[str]:
    """Names of ``n_channels`` channels: the given ones, then ``channel i`` for the unnamed rest."""
    names = list(channels) if channels is not None else []
    return [names[i] if i < len(names) else f"channel {i}" for i in range(n_channels)]


def composite_rgb(
    image: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    channels: Sequence[str] | None = None,
    nuclear_channel: str | None = None,
    max_size: int | None = None,
    percentiles: tuple[float, float] = (1.0, 99.5),
    ranges: Sequence[tuple[float, float]] | None = None,
) -> tuple[np.ndarray, int]:
    """Colour composite of a multichannel image, with cell outlines, downsampled for display.

    Parameters
    ----------
    image
        ``(channels, y, x)`` or ``(y, x)`` intensities.
    labels
        Cell labels (0 = background) of the full image, or of any size (resampled to the thumbnail);
        their boundaries are drawn in white.
    channels
        Channel names in image order; unnamed channels are named by position.
    nuclear_channel
        The nuclear stain, drawn blue (default: the first channel); the others take
        :data:`~dvp_pipeline.report.palettes.CHANNEL_CYCLE` in order and those beyond it are left out.
    max_size
        Longest side of the result in pixels; the image is block-averaged by an integer factor.
        ``None`` keeps full resolution.
    percentiles
        Per-channel intensity range mapped to 0..1 (robust to hot pixels).
    ranges
        Per-channel ``(low, high)`` intensities mapped to 0..1 instead of the image's percentiles
        (so that several crops share one scale).

    Returns
    -------
    The RGB image ``(y, x, 3)`` as floats in 0..1, and the integer downsampling factor used.
    """
    from skimage.segmentation import find_boundaries

    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise DVPError(f"image: expected (channels, y, x) or (y, x), got shape {image.shape}")
    factor = 1 if max_size is None else max(1, int(np.ceil(max(image.shape[1:]) / max_size)))
    small = _block_mean(image, factor)
    colors = channel_colors(_channel_names(channels, small.shape[0]), nuclear=nuclear_channel)
    rgb = np.zeros(small.shape[1:] + (3,), dtype=np.float32)
    for i, color in enumerate(colors):
        if color is None:
            continue
        plane = small[i]
        lo, hi = ranges[i] if ranges is not None else np.percentile(plane, percentiles)
        scaled = np.clip((plane - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(plane)
        rgb += scaled[..., None] * np.asarray(color, dtype=np.float32)
    rgb = np.clip(rgb, 0, 1)
    if labels is not None:
        small_labels = _resample_nearest(np.asarray(labels), rgb.shape[:2])
        edges = find_boundaries(small_labels, mode="inner")
        rgb[edges] = 0.4 * rgb[edges] + 0.6
    return rgb, factor


def image_figure(
    image: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    channels: Sequence[str] | None = None,
    nuclear_channel: str | None = None,
    pixel_size_um: float | None = None,
    max_size: int | None = None,
    title: str | None = None,
) -> Figure:
    """Image thumbnail: channel composite with segmentation outlines, axes in micrometres.

    See :func:`composite_rgb` for the parameters; ``max_size`` defaults to the schema's
    ``report.thumbnail_px``. ``pixel_size_um`` (of the full image) scales the axes, which are in
    pixels when it is missing.
    """
    image = np.asarray(image)
    full_shape = image.shape[-2:]
    max_size = default_options().thumbnail_px if max_size is None else max_size
    rgb, _ = composite_rgb(image, labels, channels=channels, nuclear_channel=nuclear_channel, max_size=max_size)
    scale, unit = (pixel_size_um, "µm") if pixel_size_um and pixel_size_um > 0 else (1.0, "pixels")
    # the image axes get about 8 inches (800 pixels at dpi 100), the legend the rest
    aspect = full_shape[0] / full_shape[1]
    fig = Figure(figsize=(10.0, min(max(8.0 * aspect, 2.5), 11.0) + 0.9), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(rgb, extent=(0, full_shape[1] * scale, full_shape[0] * scale, 0), interpolation="antialiased")
    ax.set_xlabel(f"x ({unit})")
    ax.set_ylabel(f"y ({unit})")
    ax.set_title(title or "Image with segmentation outlines")
    names = _channel_names(channels, image.shape[0] if image.ndim == 3 else 1)
    handles = [
        Patch(color=color, label=name)
        for name, color in zip(names, channel_colors(names, nuclear=nuclear_channel), strict=True)
        if color is not None
    ]
    handles.append(Patch(facecolor="white", edgecolor="grey", label="cell outline"))
    fig.legend(handles=handles, loc="outside right upper", frameon=False, title="channels")
    return fig


def _centroids_um(cells: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    if {"centroid_x_um", "centroid_y_um"} <= set(cells.columns):
        return cells["centroid_x_um"].to_numpy(), cells["centroid_y_um"].to_numpy(), "µm"
    if {"centroid_x", "centroid_y"} <= set(cells.columns):
        return cells["centroid_x"].to_numpy(), cells["centroid_y"].to_numpy(), "pixels"
    raise DVPError("cells table: expected columns centroid_x_um/centroid_y_um or centroid_x/centroid_y")


def cell_type_map_figure(
    cells: pd.DataFrame, *, palette: Mapping[str, str] | None = None, title: str | None = None
) -> Figure:
    """Cell centroids coloured by cell type, in image orientation (y down)."""
    if "cell_type" not in cells.columns:
        raise DVPError("cells table: expected a cell_type column (classified cells)")
    palette = dict(palette) if palette is not None else cell_type_palette(cells["cell_type"])
    x, y, unit = _centroids_um(cells)
    width, height = np.ptp(x) if len(x) else 1.0, np.ptp(y) if len(y) else 1.0
    aspect = height / width if width > 0 else 1.0
    fig = Figure(figsize=(6.6, min(max(4.4 * aspect, 2.5), 8.0) + 0.9), layout="constrained")
    ax = fig.add_subplot()
    size = float(np.clip(12000 / max(len(cells), 1), 0.5, 25.0))
    types = cells["cell_type"].astype(str).to_numpy()
    for cell_type, color in palette.items():
        mask = types == cell_type
        if mask.any():
            ax.scatter(
                x[mask],
                y[mask],
                s=size,
                color=color,
                linewidths=0,
                label=f"{cell_type} (n={int(mask.sum())})",
            )
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.set_xlabel(f"x ({unit})")
    ax.set_ylabel(f"y ({unit})")
    ax.set_title(title or "Cell types (cell centroids)")
    fig.legend(loc="outside right upper", frameon=False, markerscale=max(1.0, 30 / size) ** 0.5, title="cell type")
    return fig


def gallery_cells(cells: pd.DataFrame, *, per_type: int | None = None, order: Sequence[str] = ()) -> pd.DataFrame:
    """The example cells of each cell type shown in the sample report's gallery.

    Parameters
    ----------
    cells
        Classified cells table (``cell_id``, ``cell_type``; ``confidence`` when there is one).
    per_type
        Cells per type (default: the schema's ``report.gallery_cells``): the most confident ones, and
        a quarter of them (at least one when ``per_type >= 4``) the least confident, since those are
        where a wrong call shows first.
    order
        The cell-type order of the page's palette (see
        :func:`~dvp_pipeline.report.palettes.cell_type_palette`).

    Returns
    -------
    The chosen rows of ``cells``, in palette order of their type and by decreasing confidence, with
    a ``gallery`` column: ``"most confident"`` or ``"least confident"``.
    """
    if "cell_type" not in cells.columns:
        raise DVPError("cells table: expected a cell_type column (classified cells)")
    per_type = default_options().gallery_cells if per_type is None else per_type
    types = cells["cell_type"].astype(str)
    has_confidence = "confidence" in cells.columns
    chosen = []
    for cell_type in cell_type_palette(types, order=order):
        group = cells[types == cell_type]
        if has_confidence:
            # ties broken by cell_id so the gallery is the same on every run
            group = group.assign(_c=group["confidence"].fillna(-1.0)).sort_values(
                ["_c", "cell_id"], ascending=[False, True], kind="stable"
            )
            group = group.drop(columns="_c")
        if len(group) <= per_type:
            picked = group.assign(gallery="most confident")
        else:
            n_low = per_type // 4 if has_confidence else 0
            picked = pd.concat(
                [
                    group.iloc[: per_type - n_low].assign(gallery="most confident"),
                    group.iloc[len(group) - n_low :].assign(gallery="least confident"),
                ]
            )
        chosen.append(picked)
    if not chosen:
        return cells.iloc[:0].assign(gallery=pd.Series(dtype=object))
    return pd.concat(chosen)


def _draw_crop(ax, crop: Mapping, rgb: np.ndarray) -> None:
    """One gallery crop: its composite, its cell's outline in white, id and confidence above it."""
    from skimage.segmentation import find_boundaries

    own = np.asarray(crop["labels"]) == int(crop["cell_id"])
    rgb[find_boundaries(own, mode="inner")] = (1.0, 1.0, 1.0)
    ax.imshow(rgb, interpolation="nearest")
    confidence = crop.get("confidence")
    text = f"{int(crop['cell_id'])}" + ("" if isna(confidence) else f" · {float(confidence):.2f}")
    low = crop.get("gallery") == "least confident"
    ax.set_title(text, fontsize=7, color=_LOW_CONFIDENCE_COLOR if low else "black", pad=2)
    for spine in ax.spines.values():
        spine.set_edgecolor(_LOW_CONFIDENCE_COLOR if low else "#cccccc")
        spine.set_linewidth(1.5 if low else 0.5)


def cell_gallery_figure(
    crops: Sequence[Mapping],
    *,
    channels: Sequence[str] | None = None,
    nuclear_channel: str | None = None,
    palette: Mapping[str, str] | None = None,
    percentiles: tuple[float, float] = (1.0, 99.5),
    title: str | None = None,
) -> Figure | None:
    """Example cells as small channel composites with their outline, one row per cell type.

    Parameters
    ----------
    crops
        One mapping per cell (in display order) with ``cell_type``, ``cell_id``, ``confidence``
        (or NaN), ``gallery`` (``"most confident"`` / ``"least confident"``), ``pixels``
        ``(channels, y, x)`` and ``labels`` ``(y, x)``, the crop's cell labels.
    channels, nuclear_channel
        Channel names of the crops' pixels and the nuclear one (for the composite colours).
    palette
        Cell-type colours of the row labels.
    percentiles
        Intensity range mapped to 0..1, per channel over all crops together, so brightness can be
        compared between cells (a crop scaled on its own makes every cell look positive).

    Returns
    -------
    The figure, or ``None`` when there are no crops.
    """
    if not crops:
        return None
    palette = dict(palette) if palette is not None else cell_type_palette(c["cell_type"] for c in crops)
    n_channels = np.asarray(crops[0]["pixels"]).shape[0]
    ranges = []
    for i in range(n_channels):
        values = np.concatenate([np.asarray(c["pixels"])[i].ravel() for c in crops]).astype(np.float64)
        ranges.append(tuple(np.percentile(values, percentiles)))
    rows: dict[str, list[Mapping]] = {}
    for crop in crops:
        rows.setdefault(str(crop["cell_type"]), []).append(crop)
    n_cols = max(len(r) for r in rows.values())
    fig = Figure(figsize=(1.25 * n_cols + 1.6, 1.45 * len(rows) + 0.5), layout="constrained")
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (cell_type, row) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row):
                ax.set_axis_off()
                continue
            rgb, _ = composite_rgb(
                np.asarray(row[c]["pixels"]), channels=channels, nuclear_channel=nuclear_channel, ranges=ranges
            )
            _draw_crop(ax, row[c], rgb)
            if c == 0:
                ax.set_ylabel(cell_type, fontsize=8, color=palette.get(cell_type, "black"), fontweight="bold")
    fig.suptitle(title or "Example cells per type (cell id · confidence)", fontsize=9)
    return fig


def _transform_for(thresholds: pd.DataFrame | None, marker: str, values: np.ndarray):
    """The intensity transform recorded in ``thresholds.tsv`` for ``marker`` as (function, label).

    Transforms are those of :mod:`dvp_pipeline.classify`: ``arcsinh(x / c)``, ``log1p(x / c)`` or none.
    The cofactor ``c`` is read from the ``cofactor`` column (or a number in the transform text); when
    neither is there the 5th percentile of the positive values is used, which only moves the axis,
    not where the threshold sits among the cells.
    """
    name, cofactor = "arcsinh", None
    if thresholds is not None and "marker" in thresholds.columns:
        rows = thresholds[thresholds["marker"].astype(str) == marker]
        if len(rows):
            row = rows.iloc[0]
            if "transform" in rows.columns and not isna(row["transform"]):
                name = str(row["transform"])
            if "cofactor" in rows.columns and not isna(row["cofactor"]):
                cofactor = float(row["cofactor"])
    lowered = name.lower()
    if not lowered.startswith(("arcsinh", "asinh", "log")):
        return (lambda v: np.asarray(v, dtype=float)), "mean intensity"
    if cofactor is None:
        number = re.search(r"\d*\.?\d+(?:[eE][-+]?\d+)?", re.sub(r"^(arcsinh|asinh|log1p|log)", "", lowered))
        cofactor = float(number.group()) if number else None
    if not cofactor or cofactor <= 0:
        positive = values[np.isfinite(values) & (values > 0)]
        cofactor = float(np.percentile(positive, 5)) if positive.size else 1.0
    c = cofactor
    if lowered.startswith("log"):
        return (lambda v: np.log1p(np.clip(np.asarray(v, dtype=float) / c, 0, None))), f"log(1 + intensity / {c:.3g})"
    return (lambda v: np.arcsinh(np.asarray(v, dtype=float) / c)), f"arcsinh(mean intensity / {c:.3g})"


def _draw_threshold(ax, thresholds: pd.DataFrame | None, marker: str, raw: np.ndarray, transform) -> None:
    """The marker's threshold from ``thresholds.tsv`` as a dashed line, with the share of cells above it."""
    if thresholds is None or "marker" not in thresholds.columns:
        return
    match = thresholds[thresholds["marker"].astype(str) == marker]
    row = match.iloc[0] if len(match) else None
    if row is None or isna(row.get("threshold")):
        return
    cut = float(transform(float(row["threshold"])))
    above = float(np.mean(raw > float(row["threshold"]))) * 100 if raw.size else 0.0
    method = row.get("method", "")
    ax.axvline(cut, color="black", linestyle="--", linewidth=1.5)
    ax.text(
        0.98,
        0.95,
        f"threshold ({method})\n{float(row['threshold']):.4g} raw\n{above:.1f}% above",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8,
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
    )


def marker_histograms_figure(
    cells: pd.DataFrame,
    thresholds: pd.DataFrame | None = None,
    *,
    channels: Sequence[str] | None = None,
    colors: Mapping[str, tuple[float, float, float]] | None = None,
) -> Figure:
    """Histogram of each marker's transformed mean intensity per cell, with its threshold.

    Parameters
    ----------
    cells
        Cell table with ``mean_<channel>`` columns.
    thresholds
        ``thresholds.tsv`` (marker, threshold in raw units, method, transform); markers without a row
        are drawn without a threshold.
    channels
        Markers to draw; defaults to every ``mean_<channel>`` column.
    colors
        Colour per marker, as in the composite (default: :func:`~dvp_pipeline.report.palettes.channel_palette`
        of the ``mean_<channel>`` columns, the first one nuclear); markers without one are grey-blue.
    """
    measured = [c[len("mean_") :] for c in cells.columns if c.startswith("mean_")]
    if channels is None:
        channels = measured
    channels = [c for c in channels if f"mean_{c}" in cells.columns]
    if not channels:
        raise DVPError("cells table: no mean_<channel> columns to draw")
    colors = dict(colors) if colors is not None else channel_palette(measured)
    ncols = min(len(channels), 2)
    nrows = int(np.ceil(len(channels) / ncols))
    fig = Figure(figsize=(4.4 * ncols, 3.0 * nrows + 0.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, marker in zip(axes, channels, strict=False):
        raw = cells[f"mean_{marker}"].to_numpy(dtype=float)
        transform, label = _transform_for(thresholds, marker, raw)
        values = transform(raw)
        values = values[np.isfinite(values)]
        ax.hist(values, bins=60, color=colors.get(marker, _HISTOGRAM_COLOR), alpha=0.55, edgecolor="none")
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.set_title(marker, fontweight="bold")
        ax.set_xlabel(label)
        ax.set_ylabel("cells")
        _draw_threshold(ax, thresholds, marker, raw, transform)
    for ax in axes[len(channels) :]:
        ax.set_visible(False)
    fig.suptitle("Marker intensities per cell (dashed: positivity threshold)")
    return fig


def _cut_line(ax, x: float, text: str, *, right: bool) -> None:
    """A QC cut as a dashed line, its text boxed in the upper right (or left) corner."""
    ax.axvline(x, color=QC_MERGE_COLOR, linestyle="--", linewidth=1.5)
    ax.text(
        0.98 if right else 0.02,
        0.95,
        text,
        transform=ax.transAxes,
        ha="right" if right else "left",
        va="top",
        fontsize=8,
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
    )


def nucleus_shape_figure(cells: pd.DataFrame, qc: Mapping) -> Figure:
    """Histograms of nucleus area (log axis) and solidity with the merge checks' cuts.

    Parameters
    ----------
    cells
        The sample's cells table (``nucleus_area_um2`` and ``nucleus_solidity``; the whole cell's
        ``area_um2`` and ``solidity`` without them).
    qc
        ``segment_qc.json`` (``nucleus_area_fence_um2``, ``min_nucleus_solidity``).
    """
    from dvp_pipeline.seg_metrics import nucleus_shape

    area, solidity = nucleus_shape(cells)
    area, solidity = area[np.isfinite(area) & (area > 0)], solidity[np.isfinite(solidity)]
    fence, cut = qc.get("nucleus_area_fence_um2"), qc.get("min_nucleus_solidity")
    fig = Figure(figsize=(9.0, 3.2), layout="constrained")
    ax_area, ax_solidity = fig.subplots(1, 2)
    if area.size:
        top = max(float(area.max()), float(fence or 0)) * 1.05
        bins = np.geomspace(max(float(area.min()), 1e-3), top, 60)
        ax_area.hist(area, bins=bins, color=_HISTOGRAM_COLOR, alpha=0.7, edgecolor="none")
        ax_area.set_xscale("log")
        ax_area.xaxis.set_major_formatter(ScalarFormatter())
        ax_area.xaxis.set_minor_formatter(NullFormatter())
    if fence:
        above = float(np.mean(area > fence) * 100) if area.size else 0.0
        _cut_line(ax_area, fence, f"fence {fence:.0f} µm²\n{above:.1f}% above", right=True)
    ax_area.set_xlabel("nucleus area (µm², log scale)")
    ax_area.set_ylabel("cells")
    if solidity.size:
        ax_solidity.hist(
            solidity,
            bins=np.linspace(min(float(solidity.min()), 0.6), 1.0, 50),
            color=_HISTOGRAM_COLOR,
            alpha=0.7,
            edgecolor="none",
        )
    if cut is not None:
        below = float(np.mean(solidity < cut) * 100) if solidity.size else 0.0
        _cut_line(ax_solidity, cut, f"cut {cut:g}\n{below:.1f}% below", right=False)
    ax_solidity.set_xlabel("nucleus solidity (area / convex hull area)")
    ax_solidity.set_ylabel("cells")
    fig.suptitle("Nucleus size and shape (dashed: the merge checks)")
    return fig


def segmentation_qc_figure(
    crop: Mapping,
    *,
    channels: Sequence[str] | None = None,
    nuclear_channel: str | None = None,
    pixel_size_um: float | None = None,
    title: str | None = None,
) -> Figure:
    """A full-resolution crop of the composite marking likely merged and likely missed cells.

    Parameters
    ----------
    crop
        ``pixels`` ``(channels, y, x)`` and ``labels`` ``(y, x)`` of the window, its ``origin``
        ``(y0, x0)`` in the image, ``suspects`` (labels of the likely merged cells) and ``blobs``
        ``(n, 2)`` (y, x) of the missed blobs in window coordinates (see
        :func:`~dvp_pipeline.report.inputs.segment_qc_crop`).
    channels, nuclear_channel
        Channel names of the pixels and the nuclear one (composite colours, as in :func:`image_figure`).
    pixel_size_um
        Scales the axes (µm from the image origin); pixels when missing.
    """
    from skimage.segmentation import find_boundaries

    labels = np.asarray(crop["labels"])
    rgb, _ = composite_rgb(np.asarray(crop["pixels"]), labels, channels=channels, nuclear_channel=nuclear_channel)
    suspects = np.isin(labels, np.asarray(crop.get("suspects", []), dtype=labels.dtype))
    rgb[find_boundaries(suspects, mode="thick")] = matplotlib_rgb(QC_MERGE_COLOR)  # two pixels: seen at any size
    y0, x0 = crop.get("origin", (0, 0))
    scale, unit = (pixel_size_um, "µm") if pixel_size_um and pixel_size_um > 0 else (1.0, "pixels")
    height, width = labels.shape
    extent = (x0 * scale, (x0 + width) * scale, (y0 + height) * scale, y0 * scale)
    fig = Figure(figsize=(7.6, 6.4), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(rgb, extent=extent, interpolation="nearest")
    blobs = np.asarray(crop.get("blobs", np.zeros((0, 2))), dtype=float).reshape(-1, 2)
    if len(blobs):
        ax.scatter(
            (x0 + blobs[:, 1] + 0.5) * scale,
            (y0 + blobs[:, 0] + 0.5) * scale,
            s=160,
            facecolors="none",
            edgecolors=QC_MISSED_COLOR,
            linewidths=1.6,
        )
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel(f"x ({unit})")
    ax.set_ylabel(f"y ({unit})")
    ax.set_title(title or "Segmentation quality: a window with flagged cells")
    handles = [
        Patch(facecolor="none", edgecolor=QC_MERGE_COLOR, linewidth=2, label="likely merged nuclei"),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="none",
            markerfacecolor="none",
            markeredgecolor=QC_MISSED_COLOR,
            markersize=10,
            label="stain blob without a nucleus",
        ),
        Patch(facecolor="white", edgecolor="grey", label="cell outline"),
    ]
    fig.legend(handles=handles, loc="outside right upper", frameon=False)
    return fig
