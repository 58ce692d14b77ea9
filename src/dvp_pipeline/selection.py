"""Choose cells for laser microdissection and turn them into cutting outlines.

The select stage sits between classification and the microscope: it takes the classified cells table
(``cells_classified.parquet``) and the label image (``labels.tif``) of one sample, picks up to N cells
per requested cell type (:func:`select_cells`), traces each chosen cell's outline from the labels
(:func:`cell_outlines`), and exports them for QuPath (:func:`to_geojson`), for the eye
(:func:`preview`) and, through :mod:`dvp_pipeline.leica`, for the Leica LMD.

Coordinates
-----------
Outlines are in image pixels ``(x, y)``, x to the right, y downwards, with the origin at the top-left
*corner* of the image: pixel ``(row, col)`` covers ``[col, col + 1] x [row, row + 1]``. This is
QuPath's convention and the one the LMD export uses, so image corners are ``(0, 0)``,
``(width, 0)``, ``(0, height)``. The cells table's ``centroid_x``/``centroid_y`` (from
scikit-image) put pixel *centres* on integers, i.e. half a pixel less than this frame.
"""

from __future__ import annotations

import logging
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.measure import approximate_polygon, find_contours

from dvp_pipeline.errors import DVPError
from dvp_pipeline.leica import Collection, check_well
from dvp_pipeline.options import SelectOptions

log = logging.getLogger(__name__)

__all__ = ["cell_outlines", "default_wells", "preview", "select_cells", "to_geojson", "type_colors"]

_PLATE_ROWS = "ABCDEFGH"
# Namespace for deterministic GeoJSON feature ids (QuPath expects UUIDs; reruns give the same file).
_FEATURE_NAMESPACE = uuid.UUID("5f1d6c1e-2b7e-4a43-9a0e-2d9c6b7f0d11")


def default_wells(cell_types: Sequence[str]) -> dict[str, str]:
    """One well per cell type in the given order, down the columns of a 96-well plate: A1, B1, ... H1, A2."""
    if len(cell_types) > 96:
        raise DVPError(f"cell_types: at most 96 types fit one plate, got {len(cell_types)}")
    return {name: f"{_PLATE_ROWS[i % 8]}{i // 8 + 1}" for i, name in enumerate(cell_types)}


def type_colors(cell_types: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Stable, distinguishable RGB colours (0-255) per cell type, by position in ``cell_types``."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    return {
        name: tuple(int(round(255 * c)) for c in palette[i % len(palette)][:3]) for i, name in enumerate(cell_types)
    }


def select_cells(
    cells: pd.DataFrame,
    *,
    cell_types: Sequence[str],
    max_cells_per_type: int = 300,
    min_area_um2: float = 20.0,
    seed: int = 0,
    wells: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Pick up to ``max_cells_per_type`` cells of each requested type, at random but reproducibly.

    Parameters
    ----------
    cells
        Classified cells table with at least ``cell_id``, ``cell_type`` and ``area_um2``.
    cell_types
        Types to collect, in the order their wells are assigned.
    max_cells_per_type
        Upper bound per type; types with fewer eligible cells contribute all of them.
    min_area_um2
        Cells smaller than this (debris, fragments) are never picked.
    seed
        Random seed. Each type draws from its own stream derived from the seed and the type's name,
        and candidates are ordered by ``cell_id`` first, so the result does not depend on the row
        order of ``cells`` nor on which other types are requested.
    wells
        Collection well per cell type; missing types get :func:`default_wells` of ``cell_types``.

    Returns
    -------
    pandas.DataFrame
        The chosen rows (all input columns) plus ``well``, grouped by type in ``cell_types`` order and
        sorted by ``cell_id`` within a type, with a fresh index.

    Examples
    --------
    >>> cells = pd.DataFrame({"cell_id": [1, 2, 3], "cell_type": ["a", "a", "b"], "area_um2": [50, 5, 40]})
    >>> select_cells(cells, cell_types=["a", "b"])[["cell_id", "well"]].values.tolist()
    [[1, 'A1'], [3, 'B1']]
    """
    missing = [c for c in ("cell_id", "cell_type", "area_um2") if c not in cells.columns]
    if missing:
        raise DVPError(f"cells table: missing column(s) {missing}; expected cell_id, cell_type, area_um2")
    if isinstance(cell_types, str) or len(cell_types) == 0:
        raise DVPError(f"cell_types: expected a non-empty list of cell type names, got {cell_types!r}")
    if len(set(cell_types)) != len(cell_types):
        raise DVPError(f"cell_types: names must be unique, got {list(cell_types)}")
    if int(max_cells_per_type) < 1:
        raise DVPError(f"max_cells_per_type: expected a positive integer, got {max_cells_per_type}")
    duplicated = cells["cell_id"][cells["cell_id"].duplicated()]
    if len(duplicated):
        raise DVPError(f"cells table: cell_id must be unique, repeated: {sorted(duplicated.unique())[:10]}")

    well_of = default_wells(cell_types)
    well_of.update(dict(wells or {}))
    for name in cell_types:
        check_well(well_of[name])

    ordered = cells.sort_values("cell_id", kind="stable")
    # NaN areas compare False, so unmeasurable cells are excluded with the small ones.
    eligible = ordered[ordered["area_um2"] >= min_area_um2]
    chosen = []
    for name in cell_types:
        candidates = eligible[eligible["cell_type"] == name]
        if len(candidates) > max_cells_per_type:
            rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
            keep = np.sort(rng.choice(len(candidates), size=int(max_cells_per_type), replace=False))
            candidates = candidates.iloc[keep]
        chosen.append(candidates.assign(well=well_of[name]))
    return pd.concat(chosen, ignore_index=True)


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def cell_outlines(
    labels: np.ndarray,
    cell_ids: Sequence[int],
    *,
    dilation_px: float = 1.0,
    simplify_px: float = 0.5,
) -> dict[int, np.ndarray]:
    """Trace a closed cutting outline around each cell of a label image.

    Each cell's mask is grown by ``dilation_px`` (Euclidean distance, so the laser cuts just outside
    the membrane rather than through the cell), traced at the pixel boundary, and simplified.

    Parameters
    ----------
    labels
        ``(y, x)`` integer labels, 0 = background.
    cell_ids
        Labels to trace.
    dilation_px
        Outward growth of the mask in pixels (0 = the cell's own pixels).
    simplify_px
        Douglas-Peucker tolerance in pixels (0 = keep every boundary vertex). The outline moves by
        at most this much, inwards too, so keep it below ``dilation_px``. Cells too small to
        survive simplification keep their unsimplified outline.

    Returns
    -------
    dict
        ``cell_id -> (N, 2)`` float array of ``(x, y)`` vertices in the corner-origin pixel frame
        described in the module docstring, closed (last vertex == first), at least 3 distinct
        vertices, with positive signed (shoelace) area in x/y numbers, i.e. counter-clockwise in a
        y-up frame. For a cell whose dilated mask falls apart, the largest piece is traced. Cells on
        the image border are clipped to the image.

    Raises
    ------
    DVPError
        If ``labels`` is not a 2-D integer array or an id has no pixels.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DVPError(f"labels: expected a 2-D integer label image, got {labels.dtype} of shape {labels.shape}")
    if dilation_px < 0 or simplify_px < 0:
        raise DVPError(f"dilation_px and simplify_px must be >= 0, got {dilation_px} and {simplify_px}")
    ids = [int(i) for i in cell_ids]
    if not ids:
        return {}
    if min(ids) < 1:
        raise DVPError(f"cell ids must be positive labels, got {min(ids)}")
    boxes = ndimage.find_objects(labels, max_label=max(ids))
    absent = [i for i in ids if boxes[i - 1] is None]
    if absent:
        raise DVPError(f"labels: cell id(s) {absent[:10]} have no pixels in the label image")

    margin = int(np.ceil(dilation_px)) + 1
    height, width = labels.shape
    outlines = {}
    for cell_id in ids:
        rows, cols = boxes[cell_id - 1]
        r0, c0 = max(rows.start - margin, 0), max(cols.start - margin, 0)
        r1, c1 = min(rows.stop + margin, height), min(cols.stop + margin, width)
        mask = labels[r0:r1, c0:c1] == cell_id
        if dilation_px > 0:
            mask = ndimage.distance_transform_edt(~mask) <= dilation_px
        # A background frame closes contours of cells touching the image edge.
        padded = np.pad(mask, 1).astype(np.float32)
        contours = find_contours(padded, 0.5)
        contour = max(contours, key=lambda c: abs(_signed_area(c)))
        # find_contours gives (row, col) with pixel centres on integers: shift to the corner frame.
        ring = contour[:, ::-1] + [c0 - 1 + 0.5, r0 - 1 + 0.5]
        simplified = approximate_polygon(ring, tolerance=simplify_px) if simplify_px > 0 else ring
        if len(np.unique(simplified[:-1], axis=0)) >= 3:
            ring = simplified
        if not np.array_equal(ring[0], ring[-1]):
            ring = np.vstack([ring, ring[:1]])
        if _signed_area(ring) < 0:
            ring = ring[::-1]
        outlines[cell_id] = np.ascontiguousarray(ring, dtype=float)
    return outlines


def to_geojson(
    outlines: Mapping[int, np.ndarray],
    selection: pd.DataFrame,
    *,
    colors: Mapping[str, Sequence[int]] | None = None,
) -> dict:
    """Outlines as a GeoJSON FeatureCollection that QuPath imports as classified annotations.

    Parameters
    ----------
    outlines
        ``cell_id -> (N, 2)`` closed rings in image pixels, as from :func:`cell_outlines`.
    selection
        The selected cells (``cell_id``, ``cell_type``, ``well``; ``sample`` if present), as from
        :func:`select_cells`; features follow its row order.
    colors
        RGB (0-255) per cell type; default :func:`type_colors` in order of appearance.

    Returns
    -------
    dict
        ``{"type": "FeatureCollection", "features": [...]}``; each feature is a Polygon in pixel
        coordinates with properties ``objectType`` ("annotation"), ``name``, ``classification``
        (``{"name": cell_type, "color": [r, g, b]}``), ``cell_id`` and ``well``, and a deterministic
        UUID ``id``.
    """
    missing = [c for c in ("cell_id", "cell_type", "well") if c not in selection.columns]
    if missing:
        raise DVPError(f"selection: missing column(s) {missing}")
    colors = dict(colors) if colors is not None else type_colors(list(dict.fromkeys(selection["cell_type"])))
    samples = selection["sample"] if "sample" in selection.columns else pd.Series("", index=selection.index)
    features = []
    for (_, row), sample in zip(selection.iterrows(), samples, strict=True):
        cell_id = int(row["cell_id"])
        if cell_id not in outlines:
            raise DVPError(f"selection: no outline for cell_id {cell_id}")
        ring = np.asarray(outlines[cell_id], dtype=float)
        if not np.array_equal(ring[0], ring[-1]):
            ring = np.vstack([ring, ring[:1]])
        cell_type = str(row["cell_type"])
        color = colors.get(cell_type, (128, 128, 128))
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(_FEATURE_NAMESPACE, f"{sample}/{cell_id}")),
                "geometry": {"type": "Polygon", "coordinates": [np.round(ring, 3).tolist()]},
                "properties": {
                    "objectType": "annotation",
                    "name": f"{cell_type} {cell_id}",
                    "classification": {"name": cell_type, "color": [int(c) for c in color]},
                    "cell_id": cell_id,
                    "well": str(row["well"]),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _stretch(channel: np.ndarray) -> np.ndarray:
    """Scale a channel to [0, 1] between its 1st and 99.5th percentile (estimated on a subsample)."""
    channel = np.asarray(channel, dtype=np.float32)
    sample = channel[:: max(1, channel.shape[0] // 512), :: max(1, channel.shape[1] // 512)]
    low, high = np.percentile(sample, [1, 99.5])
    if high <= low:
        return np.zeros_like(channel)
    return np.clip((channel - low) / (high - low), 0, 1)


def preview(
    image: np.ndarray,
    outlines: Mapping[int, np.ndarray],
    selection: pd.DataFrame,
    *,
    colors: Mapping[str, Sequence[int]] | None = None,
    title: str | None = None,
    max_size: int = 2000,
):
    """Draw the selected outlines, coloured per cell type, over the image.

    Parameters
    ----------
    image
        ``(y, x)`` one channel, ``(y, x, 3)`` RGB, or ``(channels, y, x)``; multi-channel images are
        shown in gray as the per-pixel maximum of the contrast-stretched channels.
    outlines, selection
        As for :func:`to_geojson`.
    colors
        RGB (0-255) per cell type; default :func:`type_colors` in order of appearance.
    title
        Figure title (e.g. the sample name).
    max_size
        Larger images are shown subsampled to at most this many pixels per side (outlines are not).

    Returns
    -------
    matplotlib.figure.Figure
        Save it with ``fig.savefig(path)``; it is not registered with pyplot.
    """
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    image = np.asarray(image)
    if image.ndim not in (2, 3) or 0 in image.shape:
        raise DVPError(f"preview: expected an image of shape (y, x), (y, x, 3) or (c, y, x), got {image.shape}")
    rgb = image.ndim == 3 and image.shape[-1] == 3
    height, width = image.shape[:2] if rgb else image.shape[-2:]
    step = max(1, int(np.ceil(max(height, width) / max_size)))
    if rgb:
        backdrop = image[::step, ::step]
        if backdrop.dtype != np.uint8:
            backdrop = np.stack([_stretch(backdrop[..., i]) for i in range(3)], axis=-1)
    else:
        channels = image[None] if image.ndim == 2 else image
        backdrop = np.max([_stretch(channel[::step, ::step]) for channel in channels], axis=0)

    colors = dict(colors) if colors is not None else type_colors(list(dict.fromkeys(selection["cell_type"])))
    aspect = height / width
    fig = Figure(figsize=(8, max(3.0, 8 * aspect) + 0.6), dpi=150)
    ax = fig.add_subplot()
    # extent puts pixel corners on integers, the frame the outlines use.
    # vmax above 1 dims the backdrop so the coloured outlines stand out
    gray = {} if rgb else {"cmap": "gray", "vmin": 0.0, "vmax": 1.4}
    ax.imshow(backdrop, extent=(0, width, height, 0), interpolation="nearest", **gray)
    handles = []
    for cell_type, group in selection.groupby("cell_type", sort=False):
        rgb_color = np.asarray(colors.get(cell_type, (128, 128, 128)), dtype=float) / 255
        rings = [outlines[int(i)] for i in group["cell_id"] if int(i) in outlines]
        ax.add_collection(PolyCollection(rings, closed=True, facecolors="none", edgecolors=[rgb_color], linewidths=0.8))
        wells = ", ".join(dict.fromkeys(group["well"].astype(str)))
        handles.append(Line2D([], [], color=rgb_color, lw=2, label=f"{cell_type}: {len(group)} cells, well {wells}"))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    if handles:
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.08),
            ncol=min(3, len(handles)),
            fontsize="small",
            frameon=False,
        )
    else:
        ax.text(0.5, 0.5, "no cells selected", transform=ax.transAxes, ha="center", va="center", color="red")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


@dataclass
class LMDExport:
    """What the select stage writes for one sample: the Leica collection, QuPath GeoJSON, table and preview."""

    collection: Collection
    geojson: dict
    selection: pd.DataFrame
    preview: object  # a matplotlib Figure


def pixel_size_from_cells(cells: pd.DataFrame) -> float | None:
    """The pixel size (µm) implied by a cells table's ``area_um2`` / ``area`` columns, if it has them."""
    if not {"area", "area_um2"} <= set(cells.columns) or not (cells["area"] > 0).any():
        return None
    ratio = (cells["area_um2"] / cells["area"])[cells["area"] > 0]
    return float(np.sqrt(np.median(ratio)))


def calibration_points(value, shape: tuple[int, int]) -> np.ndarray:
    """The three calibration points (x, y pixels) of ``select.calibration_points``; null = image corners."""
    height, width = shape
    if value is None:
        return np.array([[0.0, 0.0], [width, 0.0], [0.0, height]])
    points = np.asarray(value, dtype=float) if isinstance(value, list | tuple) else None
    if points is None or points.shape != (3, 2):
        raise DVPError(f"select.calibration_points: expected 3 [x, y] pixel pairs or null, got {value!r}")
    return points


def select_sample(
    cells: pd.DataFrame,
    labels: np.ndarray,
    options: SelectOptions,
    *,
    sample: str,
    pixel_size_um: float | None = None,
    image: np.ndarray | None = None,
) -> LMDExport:
    """Choose one sample's cells and draw their shapes: the library function behind ``dvp select``.

    Parameters
    ----------
    cells
        The classified cells table (cell_id, cell_type, area_um2, centroids).
    labels
        The (y, x) label image the cells were measured on.
    options
        The ``select`` section.
    sample
        Sample name (preview title, GeoJSON ids).
    pixel_size_um
        Micrometres per pixel; ``None``: derived from the cells table's areas.
    image
        The sample's image (channels, y, x), drawn under the outlines in the preview; ``None``
        shows the cell masks.
    """
    size = pixel_size_um if pixel_size_um is not None else pixel_size_from_cells(cells)
    if size is None:
        raise DVPError("cannot tell the pixel size (none given, no area and area_um2 columns in the cells table)")
    if not (np.isfinite(size) and size > 0):
        raise DVPError(f"pixel size: expected a positive number of micrometres, got {size}")
    cell_types = options.cell_types
    if cell_types is None:
        # Wells follow this order, so the workflow passes classify's cell type names; from the
        # table alone, a sample lacking a type would shift the wells of the others.
        if "cell_type" not in cells.columns:
            raise DVPError("missing column cell_type (run dvp classify first)")
        cell_types = sorted(set(cells["cell_type"].astype(str)) - {"unassigned"})
        log.warning("select.cell_types is null: using the types in the cells table: %s", cell_types)
    cell_types = list(cell_types)
    chosen = select_cells(
        cells,
        cell_types=cell_types,
        max_cells_per_type=options.max_cells_per_type,
        min_area_um2=options.min_area_um2,
        seed=options.seed,
        wells=options.wells,
    )
    for name in sorted(set(cell_types) - set(chosen["cell_type"])):
        log.warning("%s: no %s cell to cut (none passes the selection rules)", sample, name)
    unknown = sorted(set(chosen["cell_id"].astype(int)) - set(np.unique(labels).tolist()))
    if unknown:
        raise DVPError(f"cell_id(s) {unknown[:10]} are not labels of the label image")
    outlines = cell_outlines(
        labels,
        chosen["cell_id"].astype(int).tolist(),
        dilation_px=options.dilation_um / size,
        simplify_px=options.simplify_um / size,
    )
    collection = Collection(calibration_points(options.calibration_points, labels.shape))
    for cell_id, well in zip(chosen["cell_id"].astype(int), chosen["well"], strict=True):
        collection.new_shape(outlines[cell_id], well=well, name=str(cell_id))
    table = pd.DataFrame(
        {
            "cell_id": chosen["cell_id"].astype("int64"),
            "cell_type": chosen["cell_type"].astype(str),
            "well": chosen["well"],
            "area_um2": chosen["area_um2"],
            "n_points": [len(outlines[int(i)]) for i in chosen["cell_id"]],
            "centroid_x": chosen["centroid_x"] if "centroid_x" in chosen else np.nan,
            "centroid_y": chosen["centroid_y"] if "centroid_y" in chosen else np.nan,
            "shape": np.arange(1, len(chosen) + 1),
        }
    )
    colors = type_colors(cell_types)
    backdrop = image if image is not None else (labels > 0).astype(np.float32)
    return LMDExport(
        collection=collection,
        geojson=to_geojson(outlines, chosen.assign(sample=sample), colors=colors),
        selection=table,
        preview=preview(backdrop, outlines, chosen, colors=colors, title=f"{sample}: cells selected for LMD"),
    )
