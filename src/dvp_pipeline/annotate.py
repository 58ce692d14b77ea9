"""Label cells in the browser: one self-contained HTML page per sample for annotating cells.

Sits beside the classify stage (``dvp annotate``). A person labels cells on the page and downloads a
TSV (``cell_id``, ``cell_type``, ``sample``) that ``dvp train-classifier --annotations`` reads as it
is, to train the supervised classifier that ``dvp classify --model`` applies.

The page shows small full-resolution crops of the sample's cells (channel composite in the colours of
the reports, or one channel at a time, the cell's outline drawn over it), pages through them, and
keeps the labels in the browser's ``localStorage`` under the sample and the page's build id, so a
reload or a closed tab loses nothing. Cells come in active-learning order: the least confident
calls of the current classification first (where a classifier is least sure, a label teaches it
most), or a seeded random order for cells not yet classified. The page needs no network: images are
base64 PNG, script and style are inline, and every name (sample, channel, cell type) reaches the
page escaped by Jinja2 or as JSON read with ``JSON.parse``.

:func:`annotation_order` picks and orders the cells, :func:`annotation_page` renders crops already in
memory, and :func:`build_annotation_page` reads a sample's results and does both; the crops are read
window by window with the sample report's gallery reader
(:func:`dvp_pipeline.report.inputs.gallery_crops`), so a whole slide costs no more than a small one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline import __version__, io
from dvp_pipeline.classify import UNASSIGNED
from dvp_pipeline.config import load_config, read_sheet
from dvp_pipeline.errors import DVPError
from dvp_pipeline.layout import Results
from dvp_pipeline.options import ClassifyOptions
from dvp_pipeline.report import html
from dvp_pipeline.report.figures._util import isna
from dvp_pipeline.report.figures.imaging import composite_rgb
from dvp_pipeline.report.inputs import gallery_crops, resolve_image
from dvp_pipeline.report.palettes import (
    UNASSIGNED_COLOR,
    cell_type_palette,
    channel_palette,
    config_cell_types,
    config_nuclear_channel,
)

__all__ = [
    "CELLS_PER_PAGE",
    "CROP_PX",
    "N_CELLS",
    "annotation_order",
    "annotation_page",
    "annotation_page_path",
    "build_annotation_page",
]

#: Cells on one page by default (about 1.5 MB of crops per 100 cells of a 4-channel image at 64 px).
N_CELLS = 400
#: Side of a crop in image pixels (the cell in the middle, its neighbours around it).
CROP_PX = 64
#: Crops shown at once; the rest are a page away.
CELLS_PER_PAGE = 48

_PERCENTILES = (1.0, 99.5)  # per channel over all crops together, as the report's gallery
_GREY_LEVELS = 32


def annotation_page_path(results: Results | str | os.PathLike, sample: str) -> str:
    """Where ``dvp annotate`` writes the page of ``sample`` by default: ``{results}/{sample}/annotate.html``."""
    results = results if isinstance(results, Results) else Results(str(Path(results)))
    return f"{results.sample_dir(sample)}/annotate.html"


def annotation_order(cells: pd.DataFrame, *, n_cells: int = N_CELLS, seed: int = 0) -> pd.DataFrame:
    """The cells to label, in the order the page shows them.

    Parameters
    ----------
    cells
        A cells table (``cell_id``; ``confidence`` when classified).
    n_cells
        At most this many cells are kept (the page embeds a crop per cell).
    seed
        Seed of the random order, and of the order among cells of equal confidence.

    Returns
    -------
    At most ``n_cells`` rows of ``cells``: by increasing ``confidence`` when the table has one (cells
    without a confidence first: nothing is known about them), else in a seeded random order.

    Examples
    --------
    >>> cells = pd.DataFrame({"cell_id": [1, 2, 3, 4], "confidence": [0.9, 0.55, 0.99, 0.7]})
    >>> annotation_order(cells, n_cells=3)["cell_id"].tolist()
    [2, 4, 1]
    """
    if n_cells < 1:
        raise DVPError(f"n_cells: expected at least 1 cell to label, got {n_cells}")
    if "cell_id" not in cells.columns:
        raise DVPError("cells table: expected a cell_id column")
    rng = np.random.default_rng(seed)
    shuffle = rng.permutation(len(cells))
    keyed = cells.assign(_random=np.argsort(shuffle))
    if "confidence" in cells.columns and cells["confidence"].notna().any():
        confidence = pd.to_numeric(cells["confidence"], errors="coerce").fillna(-np.inf)
        keyed = keyed.assign(_confidence=confidence.to_numpy()).sort_values(["_confidence", "_random"], kind="stable")
    else:
        keyed = keyed.sort_values("_random", kind="stable")
    return keyed.drop(columns=[c for c in ("_random", "_confidence") if c in keyed.columns]).head(n_cells)


def _png(image) -> str:
    """Base64 of a PIL image as PNG."""
    buffer = BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _composite_png(rgb: np.ndarray) -> str:
    """A composite (y, x, 3 floats in 0..1) as a 256-colour PNG: noisy microscopy compresses badly as
    true colour, and a palette (as the reports' large images use) halves it without a visible change."""
    from PIL import Image  # Pillow comes with matplotlib

    image = Image.fromarray((rgb * 255).round().astype(np.uint8))
    return _png(image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))


def _channel_png(scaled: np.ndarray) -> str:
    """One channel (y, x floats in 0..1) as a grey PNG of :data:`_GREY_LEVELS` levels (enough to judge a
    stain by eye, and less than half the size of 256 levels on noisy images)."""
    from PIL import Image

    steps = np.round(scaled * (_GREY_LEVELS - 1)) * (255 / (_GREY_LEVELS - 1))
    return _png(Image.fromarray(steps.round().astype(np.uint8)))


def _outline(own: np.ndarray) -> list[list[float]]:
    """The cell's boundary as polygons of ``x, y, x, y ...`` in crop pixels (pixel centres at +0.5)."""
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(own.astype(np.uint8), 1)  # closes the contour of a cell cut by the crop's edge
    polygons = []
    for contour in find_contours(padded, 0.5):
        contour = approximate_polygon(contour, tolerance=0.3)
        if len(contour) < 3:
            continue
        # padding shifts by one pixel; a pixel's centre sits at +0.5 in SVG coordinates
        points = np.clip(contour[:, ::-1] - 1 + 0.5, 0, [own.shape[1], own.shape[0]])
        polygons.append([round(float(v), 1) for v in points.ravel()])
    return polygons


def _channel_ranges(crops: Sequence[Mapping], n_channels: int) -> list[tuple[float, float]]:
    """Per channel, the intensity range shown as dark to bright, shared by every crop (so brightness
    compares between cells; a crop scaled on its own makes every cell look positive)."""
    ranges = []
    for i in range(n_channels):
        values = np.concatenate([np.asarray(c["pixels"])[i].ravel() for c in crops]).astype(np.float64)
        ranges.append(tuple(float(v) for v in np.percentile(values, _PERCENTILES)))
    return ranges


def _cell_record(
    crop: Mapping,
    ranges: Sequence[tuple[float, float]],
    *,
    channels: Sequence[str],
    nuclear_channel: str | None,
) -> dict:
    pixels = np.asarray(crop["pixels"])
    rgb, _ = composite_rgb(pixels, channels=channels, nuclear_channel=nuclear_channel, ranges=ranges)
    singles = []
    for plane, (lo, hi) in zip(pixels, ranges, strict=True):
        scaled = np.clip((plane.astype(np.float32) - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros(plane.shape)
        singles.append(_channel_png(scaled))
    cell_id = int(crop["cell_id"])
    predicted = crop.get("cell_type")
    confidence = crop.get("confidence")
    return {
        "id": cell_id,
        "predicted": None if predicted is None or isna(predicted) else str(predicted),
        "confidence": None if confidence is None or isna(confidence) else round(float(confidence), 4),
        "w": int(pixels.shape[2]),
        "h": int(pixels.shape[1]),
        "composite": _composite_png(rgb),
        "channels": singles,
        "outline": _outline(np.asarray(crop["labels"]) == cell_id),
    }


def _build_id(sample: str, crops: Sequence[Mapping], channels: Sequence[str], cell_types: Sequence[str]) -> str:
    """A fingerprint of what the page shows: rebuilding the same page keeps the labels made in the
    browser, a page of other cells (a new segmentation reuses cell ids) starts empty."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(sample), [str(c) for c in channels], [str(t) for t in cell_types]]).encode())
    for crop in crops:
        digest.update(str(int(crop["cell_id"])).encode())
        digest.update(np.ascontiguousarray(crop["labels"]).tobytes())
        digest.update(np.ascontiguousarray(crop["pixels"]).tobytes())
    return digest.hexdigest()[:16]


def annotation_page(
    sample: str,
    crops: Sequence[Mapping],
    *,
    channels: Sequence[str],
    cell_types: Sequence[str],
    nuclear_channel: str | None = None,
    cells_per_page: int = CELLS_PER_PAGE,
    order: str = "",
    notes: Sequence[str] = (),
) -> str:
    """The annotation page of one sample as a self-contained HTML page.

    Parameters
    ----------
    sample
        The sample; written into every row of the downloaded labels.
    crops
        One mapping per cell, in the order the page shows them: ``cell_id``, ``pixels``
        ``(channels, y, x)`` and ``labels`` ``(y, x)`` (the crop's cell labels), and the current call
        as ``cell_type`` and ``confidence`` (either may be missing or NaN).
    channels
        Channel names of the crops' pixels, in order.
    cell_types
        The types to label, in the order of their number keys (1, 2, ...); ``unassigned`` (key 0, a
        cell of none of these types) is always offered.
    nuclear_channel
        The nuclear stain, blue in the composite (default: the first channel).
    cells_per_page
        Crops shown at once.
    order
        How the cells were ordered, in words, shown on the page.
    notes
        Messages shown at the top.

    Returns
    -------
    The HTML page.
    """
    if not crops:
        raise DVPError(f"sample {sample}: no cells to label")
    if cells_per_page < 1:
        raise DVPError(f"cells_per_page: expected at least 1, got {cells_per_page}")
    channels = [str(c) for c in channels]
    n_channels = np.asarray(crops[0]["pixels"]).shape[0]
    if len(channels) != n_channels:
        raise DVPError(f"channels: {len(channels)} names given for crops of {n_channels} channels")
    types = list(dict.fromkeys(str(t) for t in cell_types if str(t) != UNASSIGNED))
    predicted = [c.get("cell_type") for c in crops]
    palette = cell_type_palette(
        [*types, UNASSIGNED, *(str(p) for p in predicted if p is not None and not isna(p))], order=types
    )
    composite = channel_palette(channels, nuclear=nuclear_channel)
    ranges = _channel_ranges(crops, n_channels)
    cells = [_cell_record(c, ranges, channels=channels, nuclear_channel=nuclear_channel) for c in crops]
    data = {
        "sample": str(sample),
        "build": _build_id(sample, crops, channels, types),
        "download": f"{html.slug(sample)}_labels.tsv",
        "types": [{"name": t, "color": palette[t], "key": str(i + 1) if i < 9 else ""} for i, t in enumerate(types)]
        + [{"name": UNASSIGNED, "color": UNASSIGNED_COLOR, "key": "0"}],
        "palette": palette,
        "channels": [
            {"name": name, "color": _hex(composite[name]) if name in composite else None} for name in channels
        ],
        "perPage": int(cells_per_page),
        "cells": cells,
    }
    has_confidence = any(c["confidence"] is not None for c in cells)
    return html.render(
        "annotate.html.j2",
        title=f"Label cells: {sample}",
        sample=str(sample),
        n_cells=len(cells),
        order=order or ("least confident first" if has_confidence else "as given"),
        types=data["types"],
        channels=data["channels"],
        has_confidence=has_confidence,
        download=data["download"],
        data=data,
        version=__version__,
        generated=html.now(),
        notes=list(notes),
    )


def _hex(color: Sequence[float]) -> str:
    return "#" + "".join(f"{round(255 * float(v)):02x}" for v in color)


def _cells_table(results: Results, sample: str, notes: list[str]) -> pd.DataFrame:
    """``cells_classified.parquet``, else the unclassified ``cells.parquet`` (a note says so)."""
    classified, measured = Path(results.cells_classified(sample)), Path(results.cells(sample))
    if classified.is_file():
        return io.read_table(classified)
    if measured.is_file():
        notes.append(f"{classified} not found: the cells are not classified yet, so they come in random order.")
        return io.read_table(measured)
    raise DVPError(
        f"{classified} not found (nor {measured}): the page needs the sample's cells; "
        "`dvp segment` writes cells.parquet and `dvp classify` cells_classified.parquet"
    )


def build_annotation_page(
    results: Results | str | os.PathLike,
    sample: str,
    *,
    samples_path: str | os.PathLike,
    config: Mapping | str | os.PathLike | None = None,
    n_cells: int = N_CELLS,
    seed: int = 0,
    crop_px: int = CROP_PX,
    cells_per_page: int = CELLS_PER_PAGE,
    cell_types: Sequence[str] | None = None,
) -> str:
    """Read one sample's cells, labels and image and return its annotation page.

    Parameters
    ----------
    results
        The results layout, or its folder: ``{sample}/cells_classified.parquet`` (or, before
        ``dvp classify``, ``cells.parquet``) and ``{sample}/labels.tif`` are read.
    sample
        A sample of the samples sheet.
    samples_path
        The samples sheet (for the sample's image).
    config
        The config (a mapping, or ``config.yaml`` to read): its ``classify.cell_types`` rules are the
        types to label, in rule order, and its nuclear channel is drawn blue.
    n_cells
        At most this many cells on the page (see :func:`annotation_order`).
    seed
        Seed of the order (random without a confidence; among equal confidences otherwise).
    crop_px
        Side of each crop in image pixels.
    cells_per_page
        Crops shown at once.
    cell_types
        The types to label (default: the config's rules; without a config, the types the cells were
        called, else the schema's default rules).

    Raises
    ------
    DVPError
        When the sample, its cells, labels or image are missing.

    Examples
    --------
    In a project folder after ``dvp run``::

        page = build_annotation_page("results", "TEN01", samples_path="config/samples.tsv",
                                     config="config/config.yaml")
    """
    results = results if isinstance(results, Results) else Results(str(Path(results)))
    config = load_config(config) if isinstance(config, str | os.PathLike) else config
    sample = str(sample)
    samples = read_sheet(samples_path, "samples")
    rows = samples[samples["sample"].astype(str) == sample]
    if rows.empty:
        raise DVPError(f"{samples_path}: no row for sample {sample!r}")
    image_path = resolve_image(str(rows.iloc[0]["image"]), samples_path)
    if image_path is None:
        raise DVPError(
            f"{samples_path}: image {rows.iloc[0]['image']!r} of sample {sample} not found (looked relative to "
            "the working directory, the sheet's folder and its parent)"
        )
    labels_path = Path(results.labels(sample))
    if not labels_path.is_file():
        raise DVPError(f"{labels_path} not found: the page draws the cells' outlines from it; `dvp segment` writes it")
    notes: list[str] = []
    cells = _cells_table(results, sample, notes)
    if not {"cell_id", "centroid_y", "centroid_x"} <= set(cells.columns):
        raise DVPError(f"{results.cells(sample)}: expected columns cell_id, centroid_y, centroid_x (pixels)")
    chosen = annotation_order(cells, n_cells=n_cells, seed=seed)
    if len(cells) > len(chosen):
        notes.append(f"{len(chosen)} of the sample's {len(cells):,} cells are on this page (n_cells = {n_cells}).")
    has_confidence = "confidence" in chosen.columns and chosen["confidence"].notna().any()
    order = "least confident first" if has_confidence else f"random order (seed {seed})"

    # the gallery reader wants a cell type per cell; cells not yet classified get a placeholder
    reading = chosen if "cell_type" in chosen.columns else chosen.assign(cell_type=UNASSIGNED)
    crops, channels = gallery_crops(
        reading, image_path, labels_path, per_type=max(len(reading), 1), crop_px=crop_px, order=()
    )
    by_id = {crop["cell_id"]: crop for crop in crops}
    ordered = []
    for row in chosen.itertuples(index=False):
        crop = dict(by_id[int(row.cell_id)])
        crop["cell_type"] = getattr(row, "cell_type", None)
        crop["confidence"] = getattr(row, "confidence", None)
        ordered.append(crop)

    if cell_types is None:
        cell_types = config_cell_types(config)
    if not cell_types:
        # without a config: the types the cells were called, in the default rules' order where they
        # are among them, else the default rules themselves
        defaults = ClassifyOptions.from_mapping({}, source="classify defaults").type_names
        called = cells["cell_type"].dropna().astype(str) if "cell_type" in cells.columns else []
        cell_types = [t for t in cell_type_palette(called, order=defaults) if t != UNASSIGNED] or defaults
    return annotation_page(
        sample,
        ordered,
        channels=channels,
        cell_types=cell_types,
        nuclear_channel=config_nuclear_channel(config),
        cells_per_page=cells_per_page,
        order=order,
        notes=notes,
    )
