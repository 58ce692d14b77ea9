"""HTML reports: one page per sample and one for the cohort.

The last stage of the pipeline. Everything here takes tables and arrays that the CLI
(:mod:`dvp_pipeline.cli.report`) has already read from ``results/`` and returns matplotlib figures or
HTML strings; nothing in this module reads or writes files. Pages are self-contained: figures are
embedded as base64 PNG, CSS and the little JavaScript for sortable tables are inline, and every
user-provided string (sample names, conditions, gene and set names, config values) is escaped by
Jinja2's autoescaping.

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (rendered by the Agg canvas),
never through ``pyplot``, so the module leaves matplotlib's global state alone and leaks no figures.

Colours are the same in every figure: :data:`CELL_TYPE_COLORS` for cell types, the order of
appearance in the samples sheet for conditions, and :data:`CHANNEL_COLORS` for image channels.
"""

from __future__ import annotations

import base64
import datetime
import functools
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from dvp_pipeline import __version__
from dvp_pipeline.errors import DVPError

__all__ = [
    "CELL_TYPE_COLORS",
    "CHANNEL_COLORS",
    "DEFAULT_HIGHLIGHT",
    "cell_type_palette",
    "condition_palette",
    "composite_rgb",
    "figure_to_base64",
    "image_figure",
    "cell_type_map_figure",
    "gallery_cells",
    "cell_gallery_figure",
    "classifier_table",
    "marker_histograms_figure",
    "identifications_figure",
    "missing_values_figure",
    "pca_figure",
    "volcano_figure",
    "pathway_score_figure",
    "pathway_heatmap_figure",
    "pathway_dotplot_figure",
    "set_member_heatmap_figure",
    "pathway_scores_long",
    "sample_report",
    "cohort_report",
]

#: One colour per cell type, shared by every figure; cell types not listed get :data:`_EXTRA_COLORS`.
#: The known types take the colour of their marker channel in the image composite.
CELL_TYPE_COLORS: dict[str, str] = {
    "keratinocyte": "#2ca02c",
    "cd8_t_cell": "#d62728",
    "macrophage": "#9467bd",
    "unassigned": "#b0b0b0",
}
_EXTRA_COLORS = ["#1f77b4", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79"]
_CONDITION_COLORS = ["#1f77b4", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]
_CONDITION_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]

#: Composite colour (RGB, 0..1) per channel name; other channels get :data:`_CHANNEL_CYCLE` by position.
CHANNEL_COLORS: dict[str, tuple[float, float, float]] = {
    "DAPI": (0.0, 0.35, 1.0),
    "KRT14": (0.0, 1.0, 0.0),
    "CD8": (1.0, 0.0, 0.0),
    "CD163": (1.0, 0.0, 1.0),
}
_CHANNEL_CYCLE = [
    (0.0, 0.35, 1.0),
    (0.0, 1.0, 0.0),
    (1.0, 0.0, 0.0),
    (1.0, 0.0, 1.0),
    (1.0, 1.0, 0.0),
    (0.0, 1.0, 1.0),
]

#: Gene sets shown in the pathway-score figures when the options name none.
DEFAULT_HIGHLIGHT = (
    "HALLMARK_IL6_JAK_STAT3_SIGNALING",
    "HALLMARK_INTERFERON_GAMMA_RESPONSE",
    "HALLMARK_INTERFERON_ALPHA_RESPONSE",
)

_UP_COLOR, _DOWN_COLOR, _NS_COLOR = "#b2182b", "#2166ac", "#bdbdbd"
_EMPHASIS_COLOR = "#e6a100"


# --------------------------------------------------------------------------- palettes and helpers


def cell_type_palette(cell_types: Iterable[str]) -> dict[str, str]:
    """Colour per cell type: :data:`CELL_TYPE_COLORS` for known types, a fixed cycle for the rest.

    The result is ordered for legends and axes: known types in their canonical order, then the
    others alphabetically, ``unassigned`` last.
    """
    names = {str(c) for c in cell_types if not _isna(c)}
    known = [c for c in CELL_TYPE_COLORS if c in names and c != "unassigned"]
    others = sorted(names - set(CELL_TYPE_COLORS))
    palette = {c: CELL_TYPE_COLORS[c] for c in known}
    for i, name in enumerate(others):
        palette[name] = _EXTRA_COLORS[i % len(_EXTRA_COLORS)]
    if "unassigned" in names:
        palette["unassigned"] = CELL_TYPE_COLORS["unassigned"]
    return palette


def condition_palette(conditions: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``(colour, marker)`` per condition, in order of first appearance."""
    ordered = list(dict.fromkeys(str(c) for c in conditions if not _isna(c)))
    return {
        c: (_CONDITION_COLORS[i % len(_CONDITION_COLORS)], _CONDITION_MARKERS[i % len(_CONDITION_MARKERS)])
        for i, c in enumerate(ordered)
    }


def is_jak_stat(name: str) -> bool:
    """Whether a gene-set name is a JAK/STAT set (these are emphasised everywhere)."""
    return "JAK" in str(name).upper()


def _is_interferon(name: str) -> bool:
    upper = str(name).upper()
    return "INTERFERON" in upper or "IFN" in upper


def _isna(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _first_gene(genes, protein) -> str:
    """First gene name of a ``;``-separated list, falling back to the protein identifier."""
    if isinstance(genes, str) and genes.strip():
        return genes.split(";")[0].strip()
    return str(protein).split(";")[0]


_PALETTE_PNG_BYTES = 300_000


def _compact_png(png: bytes, *, max_size: int | None = None) -> bytes:
    """A PNG made smaller for embedding: downscaled to ``max_size`` pixels on its longest side, and
    re-encoded with a 256-colour palette when it is still large (microscopy composites and previews
    are noisy and compress badly as true colour; a palette cuts them about threefold)."""
    from PIL import Image  # Pillow comes with matplotlib

    image = Image.open(io.BytesIO(png))
    changed = False
    if max_size is not None and max(image.size) > max_size:
        image.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
        changed = True
    if len(png) > _PALETTE_PNG_BYTES and image.mode != "P":
        image = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        changed = True
    if not changed:
        return png
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def figure_to_base64(fig: Figure, *, dpi: int = 100) -> str:
    """Render a figure to PNG and return it base64-encoded (for a ``data:image/png`` URI).

    Large renderings (image composites) are stored with a 256-colour palette to keep pages small.
    """
    buffer = io.BytesIO()
    # "tight" keeps legends placed outside the axes (constrained layout ignores add_artist legends).
    fig.savefig(buffer, format="png", dpi=dpi, facecolor=fig.get_facecolor(), bbox_inches="tight")
    return base64.b64encode(_compact_png(buffer.getvalue())).decode("ascii")


def _png_to_base64(png: bytes, *, max_size: int) -> str:
    """Base64 of a PNG file's bytes, downscaled to ``max_size`` pixels and compacted as above."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise DVPError("preview image: not a PNG file")
    return base64.b64encode(_compact_png(png, max_size=max_size)).decode("ascii")


# --------------------------------------------------------------------------- image figures


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


def composite_rgb(
    image: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    channels: Sequence[str] | None = None,
    max_size: int = 800,
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
        Channel names in image order; known names take :data:`CHANNEL_COLORS`, others a colour by
        position. Channels beyond the six colours of the cycle are left out.
    max_size
        Longest side of the result in pixels; the image is block-averaged by an integer factor.
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
    factor = max(1, int(np.ceil(max(image.shape[1:]) / max_size)))
    small = _block_mean(image, factor)
    names = list(channels) if channels is not None else []
    rgb = np.zeros(small.shape[1:] + (3,), dtype=np.float32)
    for i in range(min(small.shape[0], len(_CHANNEL_CYCLE))):
        name = names[i] if i < len(names) else None
        color = np.asarray(CHANNEL_COLORS.get(name, _CHANNEL_CYCLE[i]), dtype=np.float32)
        plane = small[i]
        lo, hi = ranges[i] if ranges is not None else np.percentile(plane, percentiles)
        scaled = np.clip((plane - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(plane)
        rgb += scaled[..., None] * color
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
    pixel_size_um: float | None = None,
    max_size: int = 800,
    title: str | None = None,
) -> Figure:
    """Image thumbnail: channel composite with segmentation outlines, axes in micrometres.

    See :func:`composite_rgb` for the parameters; ``pixel_size_um`` (of the full image) scales the
    axes, which are in pixels when it is missing.
    """
    image = np.asarray(image)
    full_shape = image.shape[-2:]
    rgb, _ = composite_rgb(image, labels, channels=channels, max_size=max_size)
    scale, unit = (pixel_size_um, "µm") if pixel_size_um and pixel_size_um > 0 else (1.0, "pixels")
    # the image axes get about 8 inches (800 pixels at dpi 100), the legend the rest
    aspect = full_shape[0] / full_shape[1]
    fig = Figure(figsize=(10.0, min(max(8.0 * aspect, 2.5), 11.0) + 0.9), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(rgb, extent=(0, full_shape[1] * scale, full_shape[0] * scale, 0), interpolation="antialiased")
    ax.set_xlabel(f"x ({unit})")
    ax.set_ylabel(f"y ({unit})")
    ax.set_title(title or "Image with segmentation outlines")
    names = list(channels) if channels is not None else [f"channel {i}" for i in range(image.shape[0])]
    n_shown = min(image.shape[0] if image.ndim == 3 else 1, len(_CHANNEL_CYCLE))
    handles = [
        Patch(
            color=CHANNEL_COLORS.get(names[i] if i < len(names) else None, _CHANNEL_CYCLE[i]),
            label=names[i] if i < len(names) else f"channel {i}",
        )
        for i in range(n_shown)
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


def gallery_cells(cells: pd.DataFrame, *, per_type: int = 8) -> pd.DataFrame:
    """The example cells of each cell type shown in the sample report's gallery.

    Parameters
    ----------
    cells
        Classified cells table (``cell_id``, ``cell_type``; ``confidence`` when there is one).
    per_type
        Cells per type: the most confident ones, and a quarter of them (at least one when
        ``per_type >= 4``) the least confident, since those are where a wrong call shows first.

    Returns
    -------
    The chosen rows of ``cells``, in palette order of their type and by decreasing confidence, with
    a ``gallery`` column: ``"most confident"`` or ``"least confident"``.
    """
    if "cell_type" not in cells.columns:
        raise DVPError("cells table: expected a cell_type column (classified cells)")
    types = cells["cell_type"].astype(str)
    has_confidence = "confidence" in cells.columns
    chosen = []
    for cell_type in cell_type_palette(types):
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


def cell_gallery_figure(
    crops: Sequence[Mapping],
    *,
    channels: Sequence[str] | None = None,
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
    channels
        Channel names of the crops' pixels (for the composite colours).
    palette
        Cell-type colours of the row labels.
    percentiles
        Intensity range mapped to 0..1, per channel over all crops together, so brightness can be
        compared between cells (a crop scaled on its own makes every cell look positive).

    Returns
    -------
    The figure, or ``None`` when there are no crops.
    """
    from skimage.segmentation import find_boundaries

    if not crops:
        return None
    palette = dict(palette) if palette is not None else cell_type_palette(c["cell_type"] for c in crops)
    n_channels = min(np.asarray(crops[0]["pixels"]).shape[0], len(_CHANNEL_CYCLE))
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
            crop = row[c]
            rgb, _ = composite_rgb(np.asarray(crop["pixels"]), channels=channels, max_size=10**9, ranges=ranges)
            own = np.asarray(crop["labels"]) == int(crop["cell_id"])
            edges = find_boundaries(own, mode="inner")
            rgb[edges] = (1.0, 1.0, 1.0)
            ax.imshow(rgb, interpolation="nearest")
            confidence = crop.get("confidence")
            text = f"{int(crop['cell_id'])}" + ("" if _isna(confidence) else f" · {float(confidence):.2f}")
            low = crop.get("gallery") == "least confident"
            ax.set_title(text, fontsize=7, color="#b2182b" if low else "black", pad=2)
            for spine in ax.spines.values():
                spine.set_edgecolor("#b2182b" if low else "#cccccc")
                spine.set_linewidth(1.5 if low else 0.5)
            if c == 0:
                ax.set_ylabel(cell_type, fontsize=8, color=palette.get(cell_type, "black"), fontweight="bold")
    fig.suptitle(title or "Example cells per type (cell id · confidence)", fontsize=9)
    return fig


def classifier_table(confusion: pd.DataFrame, summary: Mapping | None = None) -> pd.DataFrame:
    """The cross-validated confusion matrix with each type's recall, precision and cell count.

    Parameters
    ----------
    confusion
        ``cohort/classifier/confusion.tsv`` as read: a ``true`` column (annotated type) and one
        column of cell counts per predicted type.
    summary
        ``cohort/classifier/summary.json``; its ``per_class`` precision and recall are used when
        present, else they are computed from the matrix.

    Returns
    -------
    One row per annotated type: ``annotated type``, ``predicted <type>`` counts, ``recall``,
    ``precision``, ``cells``.
    """
    if "true" not in confusion.columns:
        raise DVPError("classifier confusion.tsv: expected a 'true' column (annotated type) and predicted-type columns")
    matrix = confusion.set_index(confusion["true"].astype(str)).drop(columns="true")
    matrix.columns = [str(c) for c in matrix.columns]
    counts = matrix.to_numpy(dtype=float)
    diagonal = np.array([matrix.at[t, t] if t in matrix.columns else 0 for t in matrix.index], dtype=float)
    recall = diagonal / np.maximum(counts.sum(axis=1), 1)
    predicted = matrix.sum(axis=0)
    precision = diagonal / np.maximum([predicted.get(t, 0) for t in matrix.index], 1)
    per_class = {str(r.get("cell_type")): r for r in (summary or {}).get("per_class", [])}
    table = matrix.astype(int).rename(columns=lambda c: f"predicted {c}")
    table.insert(0, "annotated type", matrix.index)
    table["recall"] = [float(per_class.get(t, {}).get("recall", r)) for t, r in zip(matrix.index, recall, strict=True)]
    table["precision"] = [
        float(per_class.get(t, {}).get("precision", p)) for t, p in zip(matrix.index, precision, strict=True)
    ]
    table["cells"] = counts.sum(axis=1).astype(int)
    return table.reset_index(drop=True)


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
            if "transform" in rows.columns and not _isna(row["transform"]):
                name = str(row["transform"])
            if "cofactor" in rows.columns and not _isna(row["cofactor"]):
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


def marker_histograms_figure(
    cells: pd.DataFrame, thresholds: pd.DataFrame | None = None, *, channels: Sequence[str] | None = None
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
    """
    if channels is None:
        channels = [c[len("mean_") :] for c in cells.columns if c.startswith("mean_")]
    channels = [c for c in channels if f"mean_{c}" in cells.columns]
    if not channels:
        raise DVPError("cells table: no mean_<channel> columns to draw")
    ncols = min(len(channels), 2)
    nrows = int(np.ceil(len(channels) / ncols))
    fig = Figure(figsize=(4.4 * ncols, 3.0 * nrows + 0.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, marker in zip(axes, channels, strict=False):
        raw = cells[f"mean_{marker}"].to_numpy(dtype=float)
        transform, label = _transform_for(thresholds, marker, raw)
        values = transform(raw)
        values = values[np.isfinite(values)]
        color = CHANNEL_COLORS.get(marker)
        ax.hist(values, bins=60, color=color if color else "#607d8b", alpha=0.55, edgecolor="none")
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.set_title(marker, fontweight="bold")
        ax.set_xlabel(label)
        ax.set_ylabel("cells")
        row = None
        if thresholds is not None and "marker" in thresholds.columns:
            match = thresholds[thresholds["marker"].astype(str) == marker]
            row = match.iloc[0] if len(match) else None
        if row is not None and not _isna(row.get("threshold")):
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
    for ax in axes[len(channels) :]:
        ax.set_visible(False)
    fig.suptitle("Marker intensities per cell (dashed: positivity threshold)")
    return fig


# --------------------------------------------------------------------------- MS figures


def _order_runs(
    table: pd.DataFrame, palette: Mapping[str, str], conditions: Sequence[str] | None = None
) -> pd.DataFrame:
    """Runs sorted by cell type (palette order), then condition (given order), sample and run name."""
    type_rank = {c: i for i, c in enumerate(palette)}
    order = table.assign(_type=table["cell_type"].map(lambda c: type_rank.get(c, len(type_rank))))
    by = ["_type"]
    if conditions is not None and "condition" in table.columns:
        cond_rank = {c: i for i, c in enumerate(conditions)}
        order["_cond"] = table["condition"].map(lambda c: cond_rank.get(c, len(cond_rank)))
        by.append("_cond")
    by += [k for k in ("sample", "run") if k in table.columns]
    return order.sort_values(by, kind="stable").drop(columns=[c for c in ("_type", "_cond") if c in order])


def identifications_figure(
    quant_qc: pd.DataFrame,
    *,
    palette: Mapping[str, str] | None = None,
    conditions: Sequence[str] | None = None,
    highlight_runs: Iterable[str] | None = None,
) -> Figure:
    """Proteins and precursors identified per run, bars coloured by cell type.

    Runs are grouped by cell type, then by ``conditions`` (in that order) when ``quant_qc`` has a
    ``condition`` column. ``highlight_runs`` (e.g. one sample's runs) are drawn with a black edge and
    the others faded.
    """
    from matplotlib.colors import to_rgba

    missing = {"run", "cell_type", "proteins", "precursors"} - set(quant_qc.columns)
    if missing:
        raise DVPError(f"quant_qc table: missing columns {sorted(missing)}")
    palette = dict(palette) if palette is not None else cell_type_palette(quant_qc["cell_type"])
    table = _order_runs(quant_qc, palette, conditions)
    highlight = set(highlight_runs) if highlight_runs is not None else None
    x = np.arange(len(table))
    colors = [
        to_rgba(palette.get(c, _NS_COLOR), 1.0 if highlight is None or r in highlight else 0.3)
        for c, r in zip(table["cell_type"], table["run"], strict=True)
    ]
    edges = ["black" if highlight is not None and r in highlight else "none" for r in table["run"]]
    fig = Figure(figsize=(min(max(6.0, 0.32 * len(table) + 2.5), 20.0), 6.2), layout="constrained")
    ax_prot, ax_prec = fig.subplots(2, 1, sharex=True)
    for ax, column, label in (
        (ax_prot, "proteins", "proteins (protein groups)"),
        (ax_prec, "precursors", "precursors"),
    ):
        ax.bar(x, table[column].to_numpy(dtype=float), color=colors, edgecolor=edges, linewidth=1.2)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    ax_prec.set_xticks(x, table["run"].astype(str), rotation=90, fontsize=8)
    ax_prec.set_xlabel("run")
    ax_prot.set_title("Identifications per run")
    handles = [Patch(color=c, label=t) for t, c in palette.items() if t in set(table["cell_type"])]
    ax_prot.legend(handles=handles, title="cell type", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def intensity_cv_figure(
    proteins: pd.DataFrame,
    runs: pd.DataFrame,
    samples: pd.DataFrame | None = None,
    *,
    palette: Mapping[str, str] | None = None,
) -> Figure:
    """Protein log2 abundance distribution per run, and CV between the runs of each cell type and condition.

    The CV of a protein is sd/mean of its linear abundances over the runs of one cell type and
    condition where it was quantified (two runs at least); the lower panel shows its distribution.
    """
    columns = _run_columns(proteins, runs)
    matrix = proteins[columns].apply(pd.to_numeric, errors="coerce")
    meta = _run_meta(runs, samples).set_index("run").reindex(columns)
    palette = dict(palette) if palette is not None else cell_type_palette(meta["cell_type"])
    order = _order_runs(meta.reset_index(names="run"), palette, None)["run"].tolist()
    fig = Figure(figsize=(min(max(6.0, 0.32 * len(order) + 2.5), 20.0), 6.2), layout="constrained")
    ax_int, ax_cv = fig.subplots(2, 1)
    data = [matrix[r].dropna().to_numpy() for r in order]
    parts = ax_int.boxplot(data, showfliers=False, patch_artist=True, widths=0.7)
    for box, run in zip(parts["boxes"], order, strict=True):
        box.set_facecolor(palette.get(meta.loc[run, "cell_type"], _NS_COLOR))
    ax_int.set_xticks(np.arange(1, len(order) + 1), order, rotation=90, fontsize=8)
    ax_int.set_ylabel("protein log2 abundance")
    ax_int.set_title("Abundance distribution per run")
    groups, cvs, colors = [], [], []
    for (cell_type, condition), members in meta.groupby(["cell_type", "condition"], sort=True):
        linear = np.exp2(matrix[members.index])
        ok = linear.notna().sum(axis=1) >= 2
        if ok.any():
            cv = (linear[ok].std(axis=1, ddof=1) / linear[ok].mean(axis=1)).to_numpy()
            groups.append(f"{cell_type}\n{condition}")
            cvs.append(cv)
            colors.append(palette.get(cell_type, _NS_COLOR))
    if cvs:
        parts = ax_cv.boxplot(cvs, showfliers=False, patch_artist=True, widths=0.6)
        for box, color in zip(parts["boxes"], colors, strict=True):
            box.set_facecolor(color)
        ax_cv.set_xticks(np.arange(1, len(groups) + 1), groups, fontsize=8)
    ax_cv.set_ylabel("CV between replicate runs")
    ax_cv.set_title("Coefficient of variation per cell type and condition")
    return fig


def _run_columns(proteins: pd.DataFrame, runs: pd.DataFrame | None = None) -> list[str]:
    """Run columns of a protein matrix: those named in the runs sheet, else every non-annotation column."""
    columns = [c for c in proteins.columns if c not in ("protein", "genes")]
    if runs is not None and "run" in runs.columns:
        known = set(runs["run"].astype(str))
        named = [c for c in columns if c in known]
        if named:
            return named
    return columns


def _run_meta(runs: pd.DataFrame, samples: pd.DataFrame | None) -> pd.DataFrame:
    """run, sample, cell_type, condition for every run of the sheet."""
    meta = runs[["run", "sample", "cell_type"]].astype(str)
    if samples is not None and "condition" in samples.columns:
        meta = meta.merge(samples[["sample", "condition"]].astype(str), on="sample", how="left")
    else:
        meta = meta.assign(condition="NA")
    return meta.fillna({"condition": "NA"})


def missing_values_figure(
    proteins: pd.DataFrame,
    runs: pd.DataFrame,
    samples: pd.DataFrame | None = None,
    *,
    palette: Mapping[str, str] | None = None,
) -> Figure:
    """Missing values: fraction of proteins missing per run, and in how many runs each protein is seen."""
    columns = _run_columns(proteins, runs)
    matrix = proteins[columns].apply(pd.to_numeric, errors="coerce")
    meta = _run_meta(runs, samples).set_index("run").reindex(columns)
    meta = meta.fillna({"cell_type": "NA", "condition": "NA", "sample": ""})
    palette = dict(palette) if palette is not None else cell_type_palette(meta["cell_type"])
    table = pd.DataFrame(
        {
            "run": columns,
            "cell_type": meta["cell_type"].to_numpy(),
            "condition": meta["condition"].to_numpy(),
            "sample": meta["sample"].to_numpy(),
            "missing": matrix.isna().mean(axis=0).to_numpy() * 100,
        }
    )
    order = list(condition_palette(samples["condition"])) if samples is not None and "condition" in samples else None
    table = _order_runs(table, palette, order)
    fig = Figure(figsize=(min(max(9.0, 0.3 * len(columns) + 5), 20.0), 4.6), layout="constrained")
    ax_run, ax_count = fig.subplots(1, 2, gridspec_kw={"width_ratios": [max(len(columns), 4), 6]})
    ax_run.bar(np.arange(len(table)), table["missing"], color=[palette.get(c, _NS_COLOR) for c in table["cell_type"]])
    ax_run.set_xticks(np.arange(len(table)), table["run"], rotation=90, fontsize=8)
    ax_run.set_ylabel("proteins missing (%)")
    ax_run.set_xlabel("run")
    ax_run.set_title("Missing values per run")
    ax_run.grid(axis="y", alpha=0.3)
    counts = matrix.notna().sum(axis=1).value_counts().reindex(range(len(columns) + 1), fill_value=0)
    ax_count.bar(counts.index, counts.to_numpy(), color="#607d8b")
    ax_count.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_count.set_xlabel("runs in which the\nprotein is quantified")
    ax_count.set_ylabel("proteins")
    ax_count.set_title("Data completeness")
    ax_count.grid(axis="y", alpha=0.3)
    handles = [Patch(color=c, label=t) for t, c in palette.items() if t in set(table["cell_type"])]
    # proteins pile up at the right of the completeness panel, so its upper left is free for the legend
    ax_count.legend(handles=handles, title="cell type", fontsize=8, loc="upper left")
    return fig


def _pca(matrix: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int] | None:
    """PC scores of the columns (runs) on the rows (proteins) without missing values, centred per row.

    Returns scores (runs x components), % variance per component and the number of rows used, or
    ``None`` when fewer than three runs or three complete rows leave nothing to project.
    """
    complete = matrix.apply(pd.to_numeric, errors="coerce").dropna()
    if complete.shape[0] < 3 or complete.shape[1] < 3:
        return None
    values = complete.to_numpy(dtype=float).T
    values = values - values.mean(axis=0)
    u, s, _ = np.linalg.svd(values, full_matrices=False)
    total = np.sum(s**2)
    explained = s**2 / total * 100 if total > 0 else np.zeros_like(s)
    return u * s, explained, complete.shape[0]


def pca_figure(
    proteins: pd.DataFrame,
    runs: pd.DataFrame,
    samples: pd.DataFrame | None = None,
    *,
    palette: Mapping[str, str] | None = None,
) -> Figure | None:
    """PCA of all runs, and of the runs of each cell type, on the proteins quantified in all of them.

    The first panel holds every run (colour = cell type, marker = condition); cell types usually
    dominate it, so one panel per cell type follows (colour and marker = condition, labels = sample)
    where differences between conditions show. Proteins are log2 and centred; axis labels give the
    variance explained. Returns ``None`` when fewer than three runs or three complete proteins leave
    nothing to project.
    """
    columns = _run_columns(proteins, runs)
    overall = _pca(proteins[columns])
    if overall is None:
        return None
    meta = _run_meta(runs, samples).set_index("run").reindex(columns)
    meta = meta.fillna({"cell_type": "NA", "condition": "NA", "sample": ""})
    palette = dict(palette) if palette is not None else cell_type_palette(meta["cell_type"])
    conditions = condition_palette(samples["condition"] if samples is not None else meta["condition"])
    conditions.update({c: ("#7f7f7f", "o") for c in meta["condition"].unique() if c not in conditions})
    cell_types = [c for c in palette if c in set(meta["cell_type"])]
    panels = [(ct, _pca(proteins[[r for r in columns if meta.loc[r, "cell_type"] == ct]])) for ct in cell_types]
    panels = [(ct, result) for ct, result in panels if result is not None]

    ncols = min(len(panels), 3) if panels else 1
    nrows = 1 + int(np.ceil(len(panels) / ncols)) if panels else 1
    fig = Figure(figsize=(max(4.2 * ncols, 8.0), 5.2 + 3.9 * (nrows - 1)), layout="constrained")
    grid = fig.add_gridspec(nrows, ncols, height_ratios=[1.35] + [1.0] * (nrows - 1))
    ax = fig.add_subplot(grid[0, :])
    scores, explained, n_proteins = overall
    for (cell_type, condition), group in meta.groupby(["cell_type", "condition"], sort=False):
        idx = [columns.index(r) for r in group.index]
        ax.scatter(
            scores[idx, 0],
            scores[idx, 1],
            s=70,
            color=palette.get(cell_type, _NS_COLOR),
            marker=conditions[condition][1],
            edgecolors="black",
            linewidths=0.6,
        )
    ax.set_xlabel(f"PC1 ({explained[0]:.1f}% variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.1f}% variance)")
    ax.set_title(f"All {len(columns)} runs ({n_proteins} proteins quantified in every run)")
    ax.grid(alpha=0.3)
    type_handles = [Patch(color=c, label=t) for t, c in palette.items() if t in set(meta["cell_type"])]
    cond_handles = [
        Line2D([], [], marker=m, color=c, markeredgecolor="black", linestyle="", markersize=8, label=n)
        for n, (c, m) in conditions.items()
        if n in set(meta["condition"])
    ]
    legend = ax.legend(
        handles=type_handles, title="cell type", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
    ax.add_artist(legend)
    ax.legend(
        handles=[
            Line2D(
                [],
                [],
                marker=h.get_marker(),
                color="#555555",
                linestyle="",
                markersize=8,
                label=h.get_label(),
            )
            for h in cond_handles
        ],
        title="condition",
        loc="lower left",
        bbox_to_anchor=(1.01, 0.0),
        frameon=False,
    )

    for k, (cell_type, (scores, explained, n_proteins)) in enumerate(panels):
        ax = fig.add_subplot(grid[1 + k // ncols, k % ncols])
        runs_here = [r for r in columns if meta.loc[r, "cell_type"] == cell_type]
        for i, run in enumerate(runs_here):
            color, marker = conditions[meta.loc[run, "condition"]]
            ax.scatter(
                scores[i, 0],
                scores[i, 1],
                s=60,
                color=color,
                marker=marker,
                edgecolors="black",
                linewidths=0.6,
            )
            ax.annotate(
                str(meta.loc[run, "sample"]),
                (scores[i, 0], scores[i, 1]),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
        ax.set_xlabel(f"PC1 ({explained[0]:.1f}%)")
        ax.set_ylabel(f"PC2 ({explained[1]:.1f}%)")
        ax.set_title(
            f"{cell_type} ({n_proteins} proteins)",
            color=palette.get(cell_type, "black"),
            fontweight="bold",
            fontsize=10,
        )
        ax.grid(alpha=0.3)
        ax.margins(0.15)
        if k == 0:
            ax.legend(handles=cond_handles, title="condition", fontsize=8, title_fontsize=8, loc="best")
    return fig


def volcano_figure(
    table: pd.DataFrame,
    *,
    title: str = "",
    contrast: tuple[str, str] | None = None,
    fdr: float = 0.05,
    n_labels: int = 10,
) -> Figure:
    """Volcano plot of one differential table: log2 fold change against -log10 P value.

    Proteins with ``adj.P.Val < fdr`` are coloured (up red, down blue); the ``n_labels`` proteins with
    the smallest P values are labelled with their first gene name.
    """
    missing = {"logFC", "P.Value", "adj.P.Val"} - set(table.columns)
    if missing:
        raise DVPError(f"differential table: missing columns {sorted(missing)}")
    data = table.dropna(subset=["logFC", "P.Value"])
    x = data["logFC"].to_numpy(dtype=float)
    y = -np.log10(np.clip(data["P.Value"].to_numpy(dtype=float), 1e-300, 1.0))
    adj = data["adj.P.Val"].to_numpy(dtype=float)
    significant = np.nan_to_num(adj, nan=1.0) < fdr
    up, down = significant & (x > 0), significant & (x < 0)
    num, den = contrast if contrast else ("numerator", "denominator")
    fig = Figure(figsize=(5.6, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(x[~significant], y[~significant], s=8, color=_NS_COLOR, linewidths=0, label="not significant")
    ax.scatter(x[up], y[up], s=14, color=_UP_COLOR, linewidths=0, label=f"higher in {num} ({int(up.sum())})")
    ax.scatter(x[down], y[down], s=14, color=_DOWN_COLOR, linewidths=0, label=f"higher in {den} ({int(down.sum())})")
    top = float(np.nanmax(y)) * 1.08 if y.size and np.nanmax(y) > 0 else 1.0
    ax.set_ylim(0, top)
    limit = float(np.nanmax(np.abs(x))) if x.size else 0.0
    limit = limit * 1.35 if limit > 0 else 1.0  # room beside the points for the labels
    ax.set_xlim(-limit, limit)
    ax.axvline(0, color="grey", linewidth=0.6)
    if significant.any():
        line = -np.log10(np.max(data["P.Value"].to_numpy(dtype=float)[significant]))
        ax.axhline(line, color="grey", linestyle=":", linewidth=1)
        ax.text(-limit, line, f" adj.P = {fdr:g}", va="bottom", fontsize=7, color="grey")
    order = np.argsort(data["P.Value"].to_numpy(dtype=float), kind="stable")[:n_labels]
    genes = data["genes"].to_numpy() if "genes" in data.columns else np.full(len(data), None)
    proteins = data["protein"].to_numpy() if "protein" in data.columns else data.index.to_numpy()
    _label_points(ax, x[order], y[order], [_first_gene(genes[i], proteins[i]) for i in order])
    ax.set_xlabel(f"log2 fold change ({num} / {den})")
    ax.set_ylabel("-log10 P value")
    ax.set_title(title)
    fig.legend(fontsize=8, loc="outside lower center", ncol=3, frameon=False, markerscale=1.5)
    return fig


def _label_points(ax, x: np.ndarray, y: np.ndarray, names: Sequence[str], *, gap: float = 0.05) -> None:
    """Label points without overlapping labels: on each side of x = 0 the labels are stacked at
    least ``gap`` (a fraction of the y range) apart, as close to their points' heights as that allows,
    and joined to their points by thin lines."""
    y_low, y_high = ax.get_ylim()
    x_low, x_high = ax.get_xlim()
    step = gap * (y_high - y_low)
    for side in (1, -1):
        index = sorted((i for i in range(len(x)) if (x[i] >= 0) == (side > 0)), key=lambda i: y[i])
        positions: list[float] = []
        for i in index:
            positions.append(max(y[i], positions[-1] + step) if positions else y[i])
        ceiling = y_high - step / 2  # a stack that ran out of the top is pushed back down
        for k in range(len(positions) - 1, -1, -1):
            positions[k] = min(positions[k], ceiling if k == len(positions) - 1 else positions[k + 1] - step)
        shift = 0.05 * (x_high - x_low) * side
        for i, height in zip(index, positions, strict=True):
            ax.annotate(
                names[i],
                (x[i], y[i]),
                xytext=(x[i] + shift, height),
                fontsize=7,
                va="center",
                ha="left" if side > 0 else "right",
                arrowprops={"arrowstyle": "-", "color": "#777777", "linewidth": 0.5, "shrinkB": 2},
            )


def pathway_scores_long(
    pathway_scores: pd.DataFrame, runs: pd.DataFrame, samples: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``pathway_scores.tsv`` (sets x runs) as a long table: set, run, score, sample, cell_type, condition."""
    if "set" not in pathway_scores.columns:
        raise DVPError("pathway scores: expected a 'set' column")
    columns = [c for c in pathway_scores.columns if c not in ("set", "collection")]
    long = pathway_scores.melt(id_vars=["set"], value_vars=columns, var_name="run", value_name="score")
    long["score"] = pd.to_numeric(long["score"], errors="coerce")
    long = long.merge(_run_meta(runs, samples), on="run", how="left")
    return long.fillna({"sample": "NA", "cell_type": "NA", "condition": "NA"})


def pathway_score_figure(
    scores: pd.DataFrame,
    *,
    set_name: str,
    sample: str | None = None,
    palette: Mapping[str, str] | None = None,
    conditions: Mapping[str, tuple[str, str]] | None = None,
    emphasize: bool = False,
) -> Figure:
    """One gene set's score in every run: a box and points per cell type and condition.

    Parameters
    ----------
    scores
        Long table from :func:`pathway_scores_long`.
    set_name
        The gene set to draw.
    sample
        Sample whose runs are drawn as large stars.
    palette, conditions
        Cell-type colours and ``(colour, marker)`` per condition.
    emphasize
        Frame the figure in the emphasis colour (used for JAK/STAT sets).
    """
    data = scores[(scores["set"] == set_name)].dropna(subset=["score"])
    palette = dict(palette) if palette is not None else cell_type_palette(data["cell_type"])
    conditions = dict(conditions) if conditions is not None else condition_palette(data["condition"])
    cell_types = [c for c in palette if c in set(data["cell_type"])] + sorted(set(data["cell_type"]) - set(palette))
    present = [c for c in conditions if c in set(data["condition"])]
    fig = Figure(figsize=(min(max(5.6, 1.3 * len(cell_types) + 2.4), 12.0), 4.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(len(present), 1)
    rng = np.random.default_rng(0)  # fixed jitter: reruns give identical figures
    starred = False
    for i, cell_type in enumerate(cell_types):
        for j, condition in enumerate(present):
            color, marker = conditions[condition]
            group = data[(data["cell_type"] == cell_type) & (data["condition"] == condition)]
            if group.empty:
                continue
            position = i - 0.4 + width * (j + 0.5)
            values = group["score"].to_numpy(dtype=float)
            ax.boxplot(
                values,
                positions=[position],
                widths=width * 0.75,
                patch_artist=True,
                showfliers=False,
                boxprops={"facecolor": color, "alpha": 0.25, "edgecolor": color},
                medianprops={"color": color, "linewidth": 2},
                whiskerprops={"color": color},
                capprops={"color": color},
            )
            jitter = rng.uniform(-width * 0.18, width * 0.18, len(values))
            mine = (group["sample"] == sample).to_numpy() if sample is not None else np.zeros(len(values), bool)
            ax.scatter(
                position + jitter[~mine],
                values[~mine],
                s=28,
                color=color,
                marker=marker,
                edgecolors="white",
                linewidths=0.5,
                zorder=3,
            )
            if mine.any():
                ax.scatter(
                    position + jitter[mine],
                    values[mine],
                    s=260,
                    color=color,
                    marker="*",
                    edgecolors="black",
                    linewidths=1.2,
                    zorder=4,
                )
                starred = True
    ax.axhline(0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(len(cell_types)), cell_types)
    for tick, cell_type in zip(ax.get_xticklabels(), cell_types, strict=True):
        tick.set_color(palette.get(cell_type, "black"))
        tick.set_fontweight("bold")
    ax.set_xlim(-0.6, len(cell_types) - 0.4)
    ax.set_xlabel("cell type")
    ax.set_ylabel("pathway score (mean protein z-score)")
    ax.set_title(
        ("JAK/STAT: " if emphasize else "") + set_name,
        fontweight="bold" if emphasize else "normal",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    handles = [
        Line2D([], [], marker=conditions[c][1], color=conditions[c][0], linestyle="", markersize=8, label=c)
        for c in present
    ]
    if starred:
        handles.append(
            Line2D(
                [],
                [],
                marker="*",
                color="#999999",
                markeredgecolor="black",
                linestyle="",
                markersize=14,
                label=f"{sample} (this sample)",
            )
        )
    ax.legend(handles=handles, title="condition", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if emphasize:
        fig.patch.set_facecolor("#fff8e1")
        for spine in ax.spines.values():
            spine.set_edgecolor(_EMPHASIS_COLOR)
            spine.set_linewidth(2.5)
    return fig


def pathway_heatmap_figure(
    scores: pd.DataFrame,
    *,
    sets: Sequence[str],
    palette: Mapping[str, str] | None = None,
    conditions: Mapping[str, tuple[str, str]] | None = None,
) -> Figure | None:
    """Heatmap of pathway scores (rows: sets, columns: runs grouped by cell type and condition).

    ``scores`` is the long table of :func:`pathway_scores_long`. JAK/STAT rows are labelled in bold.
    Returns ``None`` when none of ``sets`` has scores.
    """
    data = scores[scores["set"].isin(list(sets))]
    if data.empty:
        return None
    palette = dict(palette) if palette is not None else cell_type_palette(data["cell_type"])
    conditions = dict(conditions) if conditions is not None else condition_palette(data["condition"])
    meta = data.drop_duplicates("run")[["run", "sample", "cell_type", "condition"]]
    type_rank = {c: i for i, c in enumerate(palette)}
    cond_rank = {c: i for i, c in enumerate(conditions)}
    meta = meta.assign(
        _t=meta["cell_type"].map(lambda c: type_rank.get(c, len(type_rank))),
        _c=meta["condition"].map(lambda c: cond_rank.get(c, len(cond_rank))),
    )
    meta = meta.sort_values(["_t", "_c", "sample", "run"], kind="stable").drop(columns=["_t", "_c"])
    rows = [s for s in sets if s in set(data["set"])]
    matrix = data.pivot_table(index="set", columns="run", values="score", aggfunc="mean").reindex(
        index=rows, columns=meta["run"]
    )
    limit = float(np.nanmax(np.abs(matrix.to_numpy()))) if np.isfinite(matrix.to_numpy()).any() else 1.0
    n_runs = matrix.shape[1]
    fig = Figure(figsize=(min(max(8.0, 0.32 * n_runs + 5.5), 22.0), 1.6 + 0.45 * len(rows) + 1.4), layout="constrained")
    ax_type, ax_cond, ax_heat = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [0.35, 0.35, max(len(rows), 1) * 0.6]}
    )
    from matplotlib.colors import to_rgb

    ax_type.imshow([[to_rgb(palette.get(c, _NS_COLOR)) for c in meta["cell_type"]]], aspect="auto")
    ax_cond.imshow([[to_rgb(conditions.get(c, ("#7f7f7f", "o"))[0]) for c in meta["condition"]]], aspect="auto")
    for ax, label in ((ax_type, "cell type"), (ax_cond, "condition")):
        ax.set_yticks([0], [label])
        ax.tick_params(axis="x", bottom=False)
    image = ax_heat.imshow(
        matrix.to_numpy(dtype=float),
        aspect="auto",
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        interpolation="nearest",
    )
    ax_heat.set_yticks(range(len(rows)), rows)
    for tick, name in zip(ax_heat.get_yticklabels(), rows, strict=True):
        if is_jak_stat(name):
            tick.set_fontweight("bold")
            tick.set_color("#8a5a00")
    ax_heat.set_xticks(range(n_runs), meta["run"], rotation=90, fontsize=8)
    ax_heat.set_xlabel("run")
    fig.colorbar(image, ax=[ax_type, ax_cond, ax_heat], label="pathway score\n(mean z-score)", aspect=12)
    handles = [Patch(color=c, label=t) for t, c in palette.items() if t in set(meta["cell_type"])]
    handles += [Patch(color=c, label=name) for name, (c, _) in conditions.items() if name in set(meta["condition"])]
    ax_type.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.05),
        ncol=min(len(handles), 6),
        frameon=False,
        fontsize=8,
    )
    ax_type.set_title("Pathway scores of the highlighted gene sets per run", pad=28)
    return fig


# --------------------------------------------------------------------------- tables for templates


# fixed decimals for the statistics columns, so a column reads at a glance
_STAT_FORMATS = {
    "logFC": "{:.2f}",
    "AveExpr": "{:.1f}",
    "P.Value": "{:.2e}",
    "adj.P.Val": "{:.2e}",
    "PValue": "{:.2e}",
    "FDR": "{:.2e}",
    "Correlation": "{:.3f}",
}


def _format_value(value) -> str:
    if value is None or _isna(value):
        return "NA"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def _sort_key(value) -> str:
    if value is None or _isna(value):
        return ""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return repr(float(value))
    return str(value)


def _tsv_data_uri(table: pd.DataFrame) -> str:
    text = table.to_csv(sep="\t", index=False, na_rep="NA", float_format="%.6g")
    return "data:text/tab-separated-values;base64," + base64.b64encode(text.encode("utf-8")).decode("ascii")


def pathway_dotplot_figure(
    table: pd.DataFrame,
    *,
    title: str = "",
    highlight: Sequence[str] = (),
    n_sets: int = 15,
    fdr: float = 0.05,
) -> Figure | None:
    """Dot plot of one pathway table: the top sets by P value plus the highlighted ones.

    x is -log10 P, signed by direction (camera's Direction, or the sign of GSEA's NES); dot size is
    the number of measured members; filled dots have FDR below ``fdr``. JAK/STAT sets in bold.
    """
    if table is None or table.empty or "PValue" not in table.columns:
        return None
    ordered = table.sort_values("PValue", kind="stable")
    shown = pd.concat([ordered.head(n_sets), ordered[ordered["set"].isin(list(highlight))]]).drop_duplicates("set")
    shown = shown.iloc[::-1]  # best at the top
    p = np.clip(shown["PValue"].to_numpy(dtype=float), 1e-300, 1.0)
    if "Direction" in shown.columns:
        sign = np.where(shown["Direction"].astype(str) == "Down", -1.0, 1.0)
    elif "NES" in shown.columns:
        sign = np.sign(shown["NES"].to_numpy(dtype=float))
    else:
        sign = np.ones(len(shown))
    x = sign * -np.log10(p)
    sizes = shown["NGenes"].to_numpy(dtype=float) if "NGenes" in shown.columns else np.full(len(shown), 20.0)
    significant = shown["FDR"].to_numpy(dtype=float) < fdr if "FDR" in shown.columns else np.zeros(len(shown), bool)
    colors = np.where(x > 0, _UP_COLOR, _DOWN_COLOR)
    fig = Figure(figsize=(7.2, 1.2 + 0.28 * len(shown)), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(shown))
    area = 15 + 120 * sizes / max(sizes.max(), 1)
    ax.scatter(x[significant], y[significant], s=area[significant], c=colors[significant], linewidths=0)
    ax.scatter(
        x[~significant], y[~significant], s=area[~significant], facecolors="none", edgecolors=colors[~significant]
    )
    ax.axvline(0, color="grey", linewidth=0.6)
    ax.set_yticks(y, [f"{n} ({int(k)})" for n, k in zip(shown["set"], sizes, strict=True)], fontsize=7)
    for tick, name in zip(ax.get_yticklabels(), shown["set"], strict=True):
        if is_jak_stat(name):
            tick.set_fontweight("bold")
            tick.set_color("#8a5a00")
    limit = max(float(np.abs(x).max()) * 1.1, 1.0)
    ax.set_xlim(-limit, limit)
    ax.set_xlabel(f"-log10 P, signed by direction (filled: FDR < {fdr:g}; size: measured members)", fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig


def set_member_heatmap_figure(
    proteins: pd.DataFrame,
    runs: pd.DataFrame,
    samples: pd.DataFrame | None,
    members: Sequence[str],
    *,
    title: str = "",
    palette: Mapping[str, str] | None = None,
    conditions: Mapping[str, tuple[str, str]] | None = None,
    max_rows: int = 60,
) -> Figure | None:
    """Heatmap of a gene set's measured proteins across runs (z-score within each cell type).

    ``proteins`` is ``proteins.tsv`` (protein, genes, one column per run); a protein counts as a
    member when any of its genes is in ``members`` (case-insensitive). Rows are the proteins with
    the most values, at most ``max_rows``.
    """
    if "genes" not in proteins.columns:
        return None
    wanted = {m.upper() for m in members}
    genes = proteins["genes"].astype(str)
    hit = genes.map(lambda g: any(x.strip().upper() in wanted for x in g.split(";")))
    run_columns = [r for r in runs["run"].astype(str) if r in proteins.columns]
    block = proteins.loc[hit.to_numpy(), run_columns].apply(pd.to_numeric, errors="coerce")
    if block.empty:
        return None
    label = genes[hit].map(lambda g: g.split(";")[0])
    block.index = [f"{lab} " if lab in set(label.iloc[:i]) else lab for i, lab in enumerate(label)]
    block = block.loc[block.notna().sum(axis=1).sort_values(ascending=False, kind="stable").index[:max_rows]]
    block = block.loc[sorted(block.index)]
    cell_type = runs.set_index(runs["run"].astype(str))["cell_type"]
    z = block.copy()
    for _, cols in cell_type.reindex(run_columns).groupby(cell_type.reindex(run_columns)).groups.items():
        part = block[list(cols)]
        sd = part.std(axis=1, ddof=1)
        z[list(cols)] = part.sub(part.mean(axis=1), axis=0).div(sd.where(sd > 0), axis=0)
    long = z.rename_axis("set").reset_index().melt(id_vars="set", var_name="run", value_name="score")
    long = long.merge(runs[["run", "sample", "cell_type"]].astype(str), on="run")
    if samples is not None and "condition" in samples.columns:
        long = long.merge(samples[["sample", "condition"]].astype(str), on="sample", how="left")
    else:
        long["condition"] = ""
    fig = pathway_heatmap_figure(long, sets=list(z.index), palette=palette, conditions=conditions)
    if fig is not None:
        fig.axes[-1].set_ylabel("protein z-score\n(within cell type)")
        fig.suptitle(title, fontsize=10)
    return fig


def _table(
    table: pd.DataFrame,
    *,
    row_classes: Sequence[str] | None = None,
    download: str | None = None,
    full: pd.DataFrame | None = None,
    formats: Mapping[str, str] | None = None,
) -> dict:
    """A table as plain data for the ``table`` macro: formatted cells, sort keys, row classes.

    ``download`` names a TSV offered as a ``data:`` link, holding ``full`` (default: ``table``);
    ``formats`` maps column names to format strings (e.g. ``"{:.1f}"``) for numbers.
    """
    formats = dict(formats or {})
    columns = [str(c) for c in table.columns]

    def text(column: str, value) -> str:
        if column in formats and isinstance(value, int | float | np.integer | np.floating) and not _isna(value):
            return formats[column].format(value)
        return _format_value(value)

    rows = [
        [{"text": text(c, v), "sort": _sort_key(v)} for c, v in zip(columns, record, strict=True)]
        for record in table.itertuples(index=False, name=None)
    ]
    return {
        "columns": columns,
        "rows": rows,
        "classes": list(row_classes) if row_classes is not None else [""] * len(rows),
        "download": _tsv_data_uri(full if full is not None else table) if download else None,
        "download_name": download,
    }


def _flatten(mapping: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    items = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items.extend(_flatten(value, name + "."))
        else:
            items.append((name, value))
    return items


def _config_table(config: Mapping | None, sections: Sequence[str]) -> dict | None:
    """The config sections a report depends on, one row per (flattened) key."""
    if not config:
        return None
    rows = []
    for section in sections:
        if section in config and isinstance(config[section], Mapping):
            rows.extend((section, key, _format_value(value)) for key, value in _flatten(config[section]))
    if not rows:
        return None
    return _table(pd.DataFrame(rows, columns=["section", "key", "value"]))


def _set_class(name: str, highlight: Sequence[str]) -> str:
    if is_jak_stat(name):
        return "hl hl-jak"
    if name in highlight or _is_interferon(name):
        return "hl"
    return ""


def _figure(
    fig: Figure | None,
    *,
    alt: str,
    caption: str = "",
    emphasize: bool = False,
    dpi: int = 100,
    wide: bool = False,
) -> dict | None:
    if fig is None:
        return None
    return {
        "png": figure_to_base64(fig, dpi=dpi),
        "alt": alt,
        "caption": caption,
        "emphasize": emphasize,
        "wide": wide,
    }


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("dvp_pipeline", "templates"),
        autoescape=True,  # every sample, condition, gene and set name comes from users or their data
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(template: str, **context) -> str:
    return _environment().get_template(template).render(**context)


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# --------------------------------------------------------------------------- the two pages


def _sample_row(samples: pd.DataFrame, sample: str) -> pd.Series:
    if "sample" not in samples.columns:
        raise DVPError("samples sheet: expected a 'sample' column")
    rows = samples[samples["sample"].astype(str) == str(sample)]
    if rows.empty:
        raise DVPError(f"samples sheet: no row for sample {sample!r}")
    return rows.iloc[0]


def _cell_type_counts(cells: pd.DataFrame, palette: Mapping[str, str]) -> pd.DataFrame:
    counts = cells["cell_type"].astype(str).value_counts()
    order = [c for c in palette if c in counts.index] + [c for c in counts.index if c not in palette]
    table = pd.DataFrame({"cell type": order, "cells": [int(counts[c]) for c in order]})
    table["percent"] = (table["cells"] / max(len(cells), 1) * 100).round(1)
    grouped = cells.assign(cell_type=cells["cell_type"].astype(str)).groupby("cell_type")
    if "confidence" in cells.columns:
        table["mean confidence"] = grouped["confidence"].mean().reindex(order).round(3).to_numpy()
    if "area_um2" in cells.columns:
        table["median area (µm²)"] = grouped["area_um2"].median().reindex(order).round(1).to_numpy()
    total = {"cell type": "all", "cells": len(cells), "percent": 100.0}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def sample_report(
    sample: str,
    *,
    samples: pd.DataFrame,
    runs: pd.DataFrame | None = None,
    cells: pd.DataFrame | None = None,
    thresholds: pd.DataFrame | None = None,
    image: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    channels: Sequence[str] | None = None,
    image_channels: Sequence[str] | None = None,
    selection: pd.DataFrame | None = None,
    preview_png: bytes | None = None,
    quant_qc: pd.DataFrame | None = None,
    pathway_scores: pd.DataFrame | None = None,
    gallery: Sequence[Mapping] | None = None,
    gallery_channels: Sequence[str] | None = None,
    highlight: Sequence[str] = DEFAULT_HIGHLIGHT,
    options: Mapping | None = None,
    config: Mapping | None = None,
    inputs: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The per-sample report as one self-contained HTML page.

    Parameters
    ----------
    sample
        Sample name (a row of ``samples``).
    samples, runs
        The samples and runs sheets.
    cells
        ``cells_classified.parquet`` of the sample (``cells.parquet`` works, without the cell-type map).
    thresholds
        ``thresholds.tsv`` of the sample.
    image, labels
        The image ``(channels, y, x)`` (full resolution or a pyramid level) and the full-resolution
        cell labels (resampled onto the thumbnail). ``image`` alone gives a thumbnail without
        outlines.
    channels
        Marker names for the histograms; default: the ``mean_<channel>`` columns of ``cells``.
    image_channels
        Channel names of ``image`` in order (for the composite colours); default: ``channels``.
    selection, preview_png
        ``lmd/selection.tsv`` and the bytes of ``lmd/preview.png``.
    quant_qc
        Cohort ``quant_qc.tsv``; the sample's runs are shown against the cohort.
    pathway_scores
        Cohort ``pathway_scores.tsv``.
    gallery, gallery_channels
        Crops of example cells (see :func:`cell_gallery_figure`; cells chosen by
        :func:`gallery_cells`) and the channel names of their pixels.
    highlight
        Gene sets to draw; JAK/STAT sets are emphasised.
    options
        The report section of the config: ``title``, ``thumbnail_px`` (800), ``dpi`` (100),
        ``preview_px`` (1400).
    config
        Config sections to list under provenance (segment, classify, select, quantify, pathways, report).
    inputs
        Table of the input files read (file, bytes, modified), listed under provenance.
    notes
        Messages shown at the top, e.g. inputs that were missing.

    Returns
    -------
    The HTML page.
    """
    options = dict(options or {})
    dpi = int(options.get("dpi", 100))
    row = _sample_row(samples, sample)
    if channels is None and cells is not None:
        channels = [c[len("mean_") :] for c in cells.columns if c.startswith("mean_")]
    pixel_size = row.get("pixel_size_um")
    pixel_size = float(pixel_size) if pixel_size is not None and not _isna(pixel_size) else None
    if pixel_size is None and cells is not None and {"area", "area_um2"} <= set(cells.columns) and len(cells):
        # the sheet's pixel size is optional; the segment stage knew it, and its areas tell it
        pixel_size = float(np.sqrt(np.median(cells["area_um2"] / cells["area"].where(cells["area"] > 0))))
    notes = list(notes)

    # one palette for the whole page: every cell type seen anywhere on it
    seen = []
    for table in (cells, selection, quant_qc, runs):
        if table is not None and "cell_type" in table.columns:
            seen.extend(table["cell_type"].dropna().astype(str))
    palette = cell_type_palette(seen)
    conditions = condition_palette(samples["condition"]) if "condition" in samples.columns else {}

    provenance = [
        ("sample", sample),
        ("condition", row.get("condition", "NA")),
        ("patient", row.get("patient", "NA")),
        ("batch", row.get("batch", "NA")),
        ("image", row.get("image", "NA")),
        ("pixel size (µm)", pixel_size if pixel_size is not None else "NA"),
        ("channels", ", ".join(channels) if channels else "NA"),
        ("dvp-pipeline version", __version__),
        ("report generated", _now()),
    ]
    summary = []
    if cells is not None:
        summary.append(("cells segmented", f"{len(cells):,}"))
        if "cell_type" in cells.columns:
            assigned = float((cells["cell_type"].astype(str) != "unassigned").mean() * 100) if len(cells) else 0.0
            summary.append(("cells with a cell type", f"{assigned:.1f}%"))
    if selection is not None:
        summary.append(("cells selected for LMD", f"{len(selection):,}"))
    sample_runs = None
    if runs is not None and "sample" in runs.columns:
        sample_runs = runs[runs["sample"].astype(str) == str(sample)]
        summary.append(("MS runs", str(len(sample_runs))))

    context: dict = {
        "title": f"{options.get('title') or 'Deep Visual Proteomics report'}: {sample}",
        "sample": sample,
        "provenance": [(k, _format_value(v)) for k, v in provenance],
        "summary": summary,
        "config": _config_table(config, ["segment", "classify", "select", "quantify", "pathways", "report"]),
        "inputs": _table(inputs) if inputs is not None and len(inputs) else None,
        "version": __version__,
        "generated": _now(),
        "notes": notes,
        "channel_legend": [],
        "image": None,
        "cell_map": None,
        "gallery": None,
        "counts": None,
        "markers": None,
        "thresholds": None,
        "preview": None,
        "selection": None,
        "qc_figure": None,
        "qc": None,
        "pathway_figures": [],
        "pathway_table": None,
        "missing_sets": [],
    }

    if image is not None:
        image = np.asarray(image)
        image_pixel = pixel_size
        if pixel_size is not None and labels is not None and np.shape(labels)[-1] != image.shape[-1]:
            # a pyramid level: its pixels are larger than the full-resolution pixels of the labels
            image_pixel = pixel_size * np.shape(labels)[-1] / image.shape[-1]
        context["image"] = _figure(
            image_figure(
                image,
                labels,
                channels=image_channels or channels,
                pixel_size_um=image_pixel,
                max_size=int(options.get("thumbnail_px", 800)),
                title=f"{sample}: channel composite",
            ),
            alt=f"image of {sample} with segmentation outlines",
            dpi=dpi,
            caption="Channel composite (each channel scaled to its 1st–99.5th percentile) with the cell "
            "outlines of the segmentation in white; downsampled for display.",
        )
    if cells is not None and "cell_type" in cells.columns:
        context["cell_map"] = _figure(
            cell_type_map_figure(cells, palette=palette, title=f"{sample}: cell types"),
            alt=f"cell-type map of {sample}",
            dpi=dpi,
        )
        context["counts"] = _table(
            _cell_type_counts(cells, palette),
            formats={"percent": "{:.1f}", "mean confidence": "{:.2f}", "median area (µm²)": "{:.1f}"},
        )
    if gallery:
        context["gallery"] = _figure(
            cell_gallery_figure(gallery, channels=gallery_channels or channels, palette=palette),
            alt=f"example cells per cell type in {sample}",
            dpi=dpi,
            wide=True,
            caption="Example cells of each type at full resolution: the most confident calls, then (red "
            "frame) the least confident. Each crop is the channel composite on one intensity scale "
            "shared by all crops (1st–99.5th percentile per channel), the cell's outline in white; "
            "titles give cell id and confidence.",
        )
    if cells is not None and channels:
        context["markers"] = _figure(
            marker_histograms_figure(cells, thresholds, channels=channels),
            alt=f"marker intensity histograms of {sample}",
            dpi=dpi,
            wide=True,
        )
    if thresholds is not None:
        context["thresholds"] = _table(thresholds)

    if preview_png is not None:
        context["preview"] = {
            "png": _png_to_base64(preview_png, max_size=int(options.get("preview_px", 1400))),
            "alt": f"shapes selected for laser microdissection in {sample}",
        }
    if selection is not None:
        if {"cell_type"} <= set(selection.columns):
            keys = ["cell_type", "well"] if "well" in selection.columns else ["cell_type"]
            grouped = selection.groupby(keys, sort=False, dropna=False)
            table = grouped.size().rename("cells").reset_index()
            if "area_um2" in selection.columns:
                table["total area (µm²)"] = grouped["area_um2"].sum().round(1).to_numpy()
                table["mean area (µm²)"] = grouped["area_um2"].mean().round(1).to_numpy()
            rank = {c: i for i, c in enumerate(palette)}
            table = table.sort_values(
                "cell_type", key=lambda s: s.map(lambda c: rank.get(c, len(rank))), kind="stable"
            ).rename(columns={"cell_type": "cell type"})
            context["selection"] = _table(
                table,
                download=f"{sample}_selection.tsv",
                full=selection,
                formats={"total area (µm²)": "{:.1f}", "mean area (µm²)": "{:.1f}"},
            )

    if quant_qc is not None and "sample" in quant_qc.columns:
        mine = quant_qc[quant_qc["sample"].astype(str) == str(sample)]
        if mine.empty:
            notes.append(f"quant_qc.tsv has no runs of sample {sample}.")
        else:
            with_condition = (
                quant_qc.merge(_run_meta(runs, samples)[["run", "condition"]], on="run", how="left")
                if runs is not None
                else quant_qc
            )
            context["qc_figure"] = _figure(
                identifications_figure(
                    with_condition, palette=palette, conditions=list(conditions), highlight_runs=mine["run"]
                ),
                alt="identifications per run, this sample highlighted",
                dpi=dpi,
                wide=True,
            )
            table = mine.copy()
            if "cell_type" in quant_qc.columns:
                medians = quant_qc.groupby("cell_type")[["proteins", "precursors"]].median()
                table["cohort median proteins (same cell type)"] = table["cell_type"].map(medians["proteins"])
                table["cohort median precursors (same cell type)"] = table["cell_type"].map(medians["precursors"])
            context["qc"] = _table(table, formats={"missing_fraction": "{:.3f}", "median_log2": "{:.2f}"})

    if pathway_scores is not None and runs is not None:
        long = pathway_scores_long(pathway_scores, runs, samples)
        present = set(long["set"])
        context["missing_sets"] = [s for s in highlight if s not in present]
        shown = sorted([s for s in highlight if s in present], key=lambda s: not is_jak_stat(s))
        for name in shown:
            emphasize = is_jak_stat(name)
            context["pathway_figures"].append(
                _figure(
                    pathway_score_figure(
                        long,
                        set_name=name,
                        sample=sample,
                        palette=palette,
                        conditions=conditions,
                        emphasize=emphasize,
                    ),
                    alt=f"scores of {name} per run",
                    emphasize=emphasize,
                    dpi=dpi,
                )
            )
        context["pathway_table"] = _sample_pathway_table(long, sample, shown, conditions, highlight)
    return _render("sample.html.j2", **context)


def _sample_pathway_table(
    long: pd.DataFrame,
    sample: str,
    sets: Sequence[str],
    conditions: Mapping[str, tuple[str, str]],
    highlight: Sequence[str],
) -> dict | None:
    """The sample's score per set and run, its rank among runs of the same cell type, condition means."""
    records = []
    for name in sets:
        data = long[long["set"] == name].dropna(subset=["score"])
        for _, run in data[data["sample"] == sample].iterrows():
            peers = data[data["cell_type"] == run["cell_type"]]
            rank = int((peers["score"] > run["score"]).sum()) + 1
            record = {
                "set": name,
                "cell type": run["cell_type"],
                "run": run["run"],
                "score": run["score"],
                "rank (1 = highest)": f"{rank} / {len(peers)}",
            }
            for condition in conditions:
                values = peers.loc[peers["condition"] == condition, "score"]
                record[f"mean {condition}"] = values.mean() if len(values) else np.nan
            records.append(record)
    if not records:
        return None
    table = pd.DataFrame(records)
    formats = {c: "{:.2f}" for c in table.columns if c == "score" or c.startswith("mean ")}
    return _table(table, row_classes=[_set_class(s, highlight) for s in table["set"]], formats=formats)


def _split_contrast(contrast: str) -> tuple[str, str]:
    num, sep, den = str(contrast).partition("_vs_")
    return (num, den) if sep else (str(contrast), "")


def cohort_report(
    *,
    samples: pd.DataFrame,
    runs: pd.DataFrame,
    quant_qc: pd.DataFrame | None = None,
    proteins: pd.DataFrame | None = None,
    differential: Mapping[tuple[str, str], pd.DataFrame] | None = None,
    pathways: Mapping[tuple[str, str], pd.DataFrame] | None = None,
    pathway_scores: pd.DataFrame | None = None,
    classifier_confusion: pd.DataFrame | None = None,
    classifier_summary: Mapping | None = None,
    highlight: Sequence[str] = DEFAULT_HIGHLIGHT,
    options: Mapping | None = None,
    config: Mapping | None = None,
    inputs: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The cohort report as one self-contained HTML page.

    Parameters
    ----------
    samples, runs
        The samples and runs sheets.
    quant_qc
        ``cohort/quant_qc.tsv``.
    proteins
        ``cohort/proteins.tsv`` (protein, genes, one log2 column per run).
    differential
        ``(cell_type, contrast) -> table`` of ``cohort/differential/{cell_type}/{contrast}.tsv``, where
        ``contrast`` is the file stem ``{num}_vs_{den}``.
    pathways
        ``(cell_type, contrast) -> table`` of ``cohort/pathways/{cell_type}/{contrast}.tsv``.
    pathway_scores
        ``cohort/pathway_scores.tsv``.
    classifier_confusion, classifier_summary
        ``cohort/classifier/confusion.tsv`` and ``summary.json`` of a supervised cell-type classifier
        (:func:`dvp_pipeline.classify.train_classifier`): its cross-validated accuracy and confusion
        matrix get a section (left out when classification used gating rules).
    highlight
        Gene sets always listed in the pathway tables and drawn in the heatmap; JAK/STAT sets are
        emphasised.
    options
        The report section of the config: ``title``, ``dpi`` (100), ``fdr`` (0.05), ``top_proteins``
        (10, labelled and listed per volcano), ``top_sets`` (15 rows per pathway table).
    config
        Config sections to list under provenance (quantify, differential, pathways, report).
    inputs
        Table of the input files read (file, bytes, modified).
    notes
        Messages shown at the top, e.g. inputs that were missing.

    Returns
    -------
    The HTML page.
    """
    options = dict(options or {})
    dpi = int(options.get("dpi", 100))
    fdr = float(options.get("fdr", 0.05))
    top_proteins = int(options.get("top_proteins", 10))
    top_sets = int(options.get("top_sets", 15))
    differential = dict(differential or {})
    pathways = dict(pathways or {})
    highlight = list(highlight)
    palette = cell_type_palette(list(runs["cell_type"].astype(str)) + [k[0] for k in (*differential, *pathways)])
    conditions = condition_palette(samples["condition"]) if "condition" in samples.columns else {}
    meta = _run_meta(runs, samples)

    design = meta.groupby(["condition", "cell_type"]).size().unstack(fill_value=0)
    design = design.reindex(columns=[c for c in palette if c in design.columns])
    design = design.reindex(
        [c for c in conditions if c in design.index] + [c for c in design.index if c not in conditions]
    )
    design.insert(
        0,
        "samples",
        samples.groupby("condition")["sample"].nunique().reindex(design.index).fillna(0).astype(int)
        if "condition" in samples.columns
        else 0,
    )
    design = design.reset_index()

    context: dict = {
        "title": f"{options.get('title') or 'Deep Visual Proteomics report'}: cohort",
        "provenance": [
            (k, _format_value(v))
            for k, v in [
                ("samples", len(samples)),
                ("runs", len(runs)),
                ("conditions", ", ".join(conditions)),
                ("cell types", ", ".join(palette)),
                ("dvp-pipeline version", __version__),
                ("report generated", _now()),
            ]
        ],
        "config": _config_table(config, ["quantify", "differential", "pathways", "report"]),
        "inputs": _table(inputs) if inputs is not None and len(inputs) else None,
        "version": __version__,
        "generated": _now(),
        "notes": list(notes),
        "fdr": fdr,
        "samples": _table(samples, download="samples.tsv"),
        "runs": _table(runs, download="runs.tsv"),
        "design": _table(design),
        "identifications": None,
        "qc": None,
        "missing": None,
        "intensity_cv": None,
        "missing_summary": None,
        "pca": None,
        "diff_summary": None,
        "key_results": None,
        "contrasts": [],
        "heatmap": None,
        "missing_sets": [],
        "member_heatmap": None,
        "classifier": None,
    }
    if classifier_confusion is not None:
        summary = dict(classifier_summary or {})
        cards = []
        if summary.get("accuracy") is not None:
            cards.append(("cross-validated accuracy", f"{float(summary['accuracy']):.3f}"))
        if summary.get("n_cells") is not None:
            cards.append(("annotated cells", f"{int(summary['n_cells']):,}"))
        if summary.get("folds") is not None:
            cards.append(("folds", str(int(summary["folds"]))))
        table = classifier_table(classifier_confusion, summary)
        context["classifier"] = {
            "cards": cards,
            "table": _table(table, formats={"recall": "{:.3f}", "precision": "{:.3f}"}),
        }

    if quant_qc is not None:
        with_condition = quant_qc.merge(meta[["run", "condition"]], on="run", how="left")
        context["identifications"] = _figure(
            identifications_figure(with_condition, palette=palette, conditions=list(conditions)),
            alt="proteins and precursors per run",
            dpi=dpi,
            wide=True,
        )
        context["qc"] = _table(
            _order_runs(with_condition, palette, list(conditions)),
            download="quant_qc.tsv",
            full=quant_qc,
            formats={"missing_fraction": "{:.3f}", "median_log2": "{:.2f}"},
        )
    if proteins is not None:
        columns = _run_columns(proteins, runs)
        matrix = proteins[columns].apply(pd.to_numeric, errors="coerce")
        context["intensity_cv"] = _figure(
            intensity_cv_figure(proteins, runs, samples, palette=palette),
            alt="abundance distribution per run and CV between replicate runs",
            dpi=dpi,
            wide=True,
        )
        context["missing"] = _figure(
            missing_values_figure(proteins, runs, samples, palette=palette),
            alt="missing values per run",
            dpi=dpi,
            wide=True,
        )
        context["missing_summary"] = [
            ("proteins", f"{len(matrix):,}"),
            ("runs", str(len(columns))),
            ("values missing", f"{float(matrix.isna().to_numpy().mean() * 100) if matrix.size else 0:.1f}%"),
            ("proteins quantified in every run", f"{int(matrix.notna().all(axis=1).sum()):,}"),
        ]
        context["pca"] = _figure(pca_figure(proteins, runs, samples, palette=palette), alt="PCA of runs", dpi=dpi)

    # one block per contrast, with a volcano and a pathway table per cell type
    keys = sorted(
        set(differential) | set(pathways),
        key=lambda k: (k[1], list(palette).index(k[0]) if k[0] in palette else len(palette), k[0]),
    )
    summary_rows, key_rows = [], []
    blocks: dict[str, dict] = {}
    for cell_type, contrast in keys:
        num, den = _split_contrast(contrast)
        block = blocks.setdefault(
            contrast,
            {"name": f"{num} vs {den}" if den else contrast, "id": _slug(contrast), "cell_types": []},
        )
        entry = {
            "cell_type": cell_type,
            "id": _slug(f"{contrast}-{cell_type}"),
            "volcano": None,
            "top": None,
            "pathways": None,
            "dotplot": None,
            "imputed": None,
            "color": palette.get(cell_type, _NS_COLOR),
        }
        table = differential.get((cell_type, contrast))
        if table is not None:
            adj = pd.to_numeric(table["adj.P.Val"], errors="coerce")
            logfc = pd.to_numeric(table["logFC"], errors="coerce")
            summary_rows.append(
                {
                    "contrast": block["name"],
                    "cell type": cell_type,
                    "proteins tested": len(table),
                    f"higher in {num}": int(((adj < fdr) & (logfc > 0)).sum()),
                    f"higher in {den}": int(((adj < fdr) & (logfc < 0)).sum()),
                }
            )
            entry["volcano"] = _figure(
                volcano_figure(
                    table,
                    title=f"{cell_type}: {num} vs {den}",
                    contrast=(num, den),
                    fdr=fdr,
                    n_labels=top_proteins,
                ),
                alt=f"volcano plot {cell_type} {contrast}",
                dpi=dpi,
            )
            imputed_columns = [c for c in table.columns if str(c).startswith("n_imputed_")]
            if imputed_columns:
                n_imputed = pd.to_numeric(table[imputed_columns].stack(), errors="coerce").fillna(0)
                if n_imputed.sum() > 0:
                    proteins_with = int((table[imputed_columns].fillna(0).to_numpy() > 0).any(axis=1).sum())
                    entry["imputed"] = (
                        f"Warning: {int(n_imputed.sum())} imputed values enter this test ({proteins_with} proteins); "
                        "their P values rest partly on invented numbers."
                    )
            top = table.sort_values("P.Value", kind="stable").head(top_proteins)
            top = top[[c for c in ("genes", "protein", "logFC", "AveExpr", "P.Value", "adj.P.Val") if c in top.columns]]
            entry["top"] = _table(
                top, download=f"differential_{cell_type}_{contrast}.tsv", full=table, formats=_STAT_FORMATS
            )
        table = pathways.get((cell_type, contrast))
        if table is not None:
            ordered = table.sort_values("PValue", kind="stable") if "PValue" in table.columns else table
            chosen = ordered.head(top_sets)
            extra = ordered[ordered["set"].isin(highlight) & ~ordered["set"].isin(chosen["set"])]
            shown = pd.concat([chosen, extra])
            shown.insert(0, "rank", [int(np.flatnonzero(ordered["set"].to_numpy() == s)[0]) + 1 for s in shown["set"]])
            columns = [
                c
                for c in (
                    "rank",
                    "set",
                    "collection",
                    "set_size",
                    "NGenes",
                    "Correlation",
                    "Direction",
                    "PValue",
                    "FDR",
                )
                if c in shown.columns
            ]
            entry["dotplot"] = _figure(
                pathway_dotplot_figure(
                    table, title=f"{cell_type}: {block['name']}", highlight=highlight, n_sets=top_sets, fdr=fdr
                ),
                alt=f"pathway dot plot {cell_type} {contrast}",
                dpi=dpi,
            )
            entry["pathways"] = _table(
                shown[columns],
                row_classes=[_set_class(s, highlight) for s in shown["set"]],
                download=f"pathways_{cell_type}_{contrast}.tsv",
                full=table,
                formats=_STAT_FORMATS,
            )
            for name in highlight:
                hit = ordered[ordered["set"] == name]
                if len(hit):
                    hit = hit.iloc[0]
                    key_rows.append(
                        {
                            "set": name,
                            "contrast": block["name"],
                            "cell type": cell_type,
                            "rank": int(np.flatnonzero(ordered["set"].to_numpy() == name)[0]) + 1,
                            "Direction": hit.get("Direction"),
                            "PValue": hit.get("PValue"),
                            "FDR": hit.get("FDR"),
                        }
                    )
        block["cell_types"].append(entry)
    context["contrasts"] = list(blocks.values())
    if summary_rows:
        context["diff_summary"] = _table(pd.DataFrame(summary_rows).fillna(0))
    if key_rows:
        key_table = pd.DataFrame(key_rows)
        key_table = key_table.sort_values(
            "set", key=lambda s: s.map(lambda n: (not is_jak_stat(n), highlight.index(n))), kind="stable"
        )
        context["key_results"] = _table(
            key_table, row_classes=[_set_class(s, highlight) for s in key_table["set"]], formats=_STAT_FORMATS
        )

    if pathway_scores is not None:
        long = pathway_scores_long(pathway_scores, runs, samples)
        present = set(long["set"])
        context["missing_sets"] = [s for s in highlight if s not in present]
        context["heatmap"] = _figure(
            pathway_heatmap_figure(long, sets=highlight, palette=palette, conditions=conditions),
            alt="heatmap of pathway scores per run",
            dpi=dpi,
            wide=True,
        )
    jak_sets = [s for s in highlight if is_jak_stat(s)]
    if proteins is not None and jak_sets:
        from dvp_pipeline.genesets import load_collection

        hallmark = load_collection("hallmark")
        members = sorted({g for name in jak_sets for g in hallmark.get(name, [])})
        if members:
            context["member_heatmap"] = _figure(
                set_member_heatmap_figure(
                    proteins,
                    runs,
                    samples,
                    members,
                    title=", ".join(jak_sets),
                    palette=palette,
                    conditions=conditions,
                ),
                alt="heatmap of JAK/STAT member proteins across runs",
                dpi=dpi,
                wide=True,
            )
    return _render("cohort.html.j2", **context)


def _slug(text: str) -> str:
    """An HTML id from any text (ids only need to be unique and safe, not readable)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "x"
