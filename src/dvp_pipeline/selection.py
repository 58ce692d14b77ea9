"""Choose pools of cells for laser microdissection and draw the shapes the laser cuts.

The select stage sits between classification and the microscope. For one sample it takes the
classified cells (``cells_classified.parquet``) and the label image (``labels.tif``), draws pools of
cells per cell type (:func:`dvp_pipeline.pools.draw_pools`: an area target, replicates, no border or
touching cells, regions of interest), turns each pool's cells into cutting shapes
(:func:`dvp_pipeline.shapes.cut_shapes`: laser margin, capped simplification, merged neighbours) in a
short cutting order, adds negative-control pools if asked, and resolves the three calibration points.
The cohort's pools then go onto plates (:mod:`dvp_pipeline.plates`), and :func:`lmd_collection`
writes each sample's Leica file with the wells of the plate map.

Coordinates
-----------
Outlines are in image pixels ``(x, y)``, x to the right, y downwards, with the origin at the top-left
*corner* of the image: pixel ``(row, col)`` covers ``[col, col + 1] x [row, row + 1]``. This is
QuPath's convention and the one the LMD export uses, so image corners are ``(0, 0)``,
``(width, 0)``, ``(0, height)``. The cells table's ``centroid_x``/``centroid_y`` (from
scikit-image) put pixel *centres* on integers, i.e. half a pixel less than this frame. The stage
frame of the LMD is reached through :func:`dvp_pipeline.leica.orientation_matrix`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.measure import approximate_polygon, find_contours

from dvp_pipeline.errors import DVPError
from dvp_pipeline.leica import (
    Collection,
    calibration_triangle_check,
    check_calibration_points,
    orientation_matrix,
)
from dvp_pipeline.options import SelectOptions
from dvp_pipeline.pools import border_cells, draw_pools, touching_pairs
from dvp_pipeline.shapes import control_patch, cut_shapes, cutting_order

log = logging.getLogger(__name__)

__all__ = [
    "SampleSelection",
    "cell_outlines",
    "lmd_collection",
    "preview",
    "resolve_calibration",
    "select_sample",
    "shapes_geojson",
    "type_colors",
]

# Namespace for deterministic GeoJSON feature ids (QuPath expects UUIDs; reruns give the same file).
_FEATURE_NAMESPACE = uuid.UUID("5f1d6c1e-2b7e-4a43-9a0e-2d9c6b7f0d11")
#: Columns of the per-sample pools table (``lmd/pools.tsv``), the plate stage's input.
POOL_TABLE_COLUMNS = [
    "pool_id", "sample", "cell_type", "replicate", "kind", "n_cells", "area_um2", "target_um2", "reached",
]  # fmt: skip
#: Columns of the shapes table (``lmd/shapes.parquet``): one row per cutting shape, in cutting order.
SHAPE_COLUMNS = ["pool_id", "order", "cell_ids", "area_um2", "vertices", "x", "y"]


def type_colors(cell_types: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """RGB colours (0-255) per cell type by position in ``cell_types``: the reports' palette, so a cell
    type has one colour in the preview, the plate picture, QuPath and every report figure."""
    from matplotlib.colors import to_rgb

    from dvp_pipeline.report.palettes import cell_type_palette

    palette = cell_type_palette(cell_types, order=cell_types)
    return {name: tuple(int(round(255 * c)) for c in to_rgb(palette[name])) for name in cell_types}


_POINTS = re.compile(r"\s*(-?[\d.]+(?:[eE][-+]?\d+)?)\s*,\s*(-?[\d.]+(?:[eE][-+]?\d+)?)\s*")


def resolve_calibration(
    value: str | None,
    options,
    *,
    sample: str,
    image_shape: tuple[int, int],
    pixel_size_um: float,
    base: str | Path = ".",
) -> np.ndarray:
    """The three calibration points of a sample, in image pixels.

    In this order: the samples sheet's ``calibration`` value (``value``: ``"x1,y1;x2,y2;x3,y3"`` in
    pixels, or a QuPath GeoJSON file of three points, relative to ``base``), ``select.calibration.points``
    (pixels or µm), the image corners when ``select.calibration.image_corners`` says so. Without any
    of them there is no calibration the operator could find, and that is an error.
    """
    where = f"sample {sample}: calibration"
    if value is not None and str(value).strip():
        text = str(value).strip()
        parts = text.split(";")
        if len(parts) > 1 or _POINTS.fullmatch(text):
            matches = [_POINTS.fullmatch(p) for p in parts]
            if not all(matches):
                raise DVPError(f"{where}: {text!r} is not three 'x,y' pixel pairs separated by ';'")
            points = [[float(m[1]), float(m[2])] for m in matches]
        else:
            points = _geojson_points(Path(base) / text, where)
    elif options.points is not None:
        scale = 1.0 / pixel_size_um if options.units == "um" else 1.0
        points = np.asarray(options.points, dtype=float) * scale
    elif options.image_corners:
        height, width = image_shape
        points = [[0.0, 0.0], [float(width), 0.0], [0.0, float(height)]]
    else:
        raise DVPError(
            f"{where}: no calibration points. Give the samples sheet a calibration column (a QuPath GeoJSON of "
            "the three marks, or 'x1,y1;x2,y2;x3,y3' in pixels), or select.calibration.points, or set "
            "select.calibration.image_corners: true if the operator can find the image corners on the slide"
        )
    return check_calibration_points(points, what=where)


def _geojson_points(path: Path, where: str) -> list[list[float]]:
    from dvp_pipeline.qupath import read_geojson

    points = []
    for annotation in read_geojson(path):
        geometry = annotation.geometry
        if geometry.geom_type == "Point":
            points.append([geometry.x, geometry.y])
        elif geometry.geom_type == "MultiPoint":
            points.extend([p.x, p.y] for p in geometry.geoms)
    if len(points) != 3:
        raise DVPError(f"{where}: {path} holds {len(points)} point(s); expected the three calibration marks")
    return points


@dataclass
class SampleSelection:
    """What the select stage writes for one sample.

    ``pools``: :data:`POOL_TABLE_COLUMNS`, one row per pool and control; ``cells``: the drawn cells
    (cell_id, cell_type, pool_id, replicate, area_um2, centroids); ``shapes``: :data:`SHAPE_COLUMNS`,
    the cutting shapes in cutting order within each pool; ``calibration``: the three points in pixels;
    ``summary``: figures for the log and the report; ``geojson``, ``preview``: for QuPath and the eye.
    """

    pools: pd.DataFrame
    cells: pd.DataFrame
    shapes: pd.DataFrame
    calibration: np.ndarray
    summary: dict
    geojson: dict
    preview: object  # a matplotlib Figure


def pixel_size_from_cells(cells: pd.DataFrame) -> float | None:
    """The pixel size (µm) implied by a cells table's ``area_um2`` / ``area`` columns, if it has them."""
    if not {"area", "area_um2"} <= set(cells.columns) or not (cells["area"] > 0).any():
        return None
    ratio = (cells["area_um2"] / cells["area"])[cells["area"] > 0]
    return float(np.sqrt(np.median(ratio)))


def select_sample(
    cells: pd.DataFrame,
    labels: np.ndarray,
    options: SelectOptions,
    *,
    sample: str,
    calibration: np.ndarray,
    pixel_size_um: float | None = None,
    image: np.ndarray | None = None,
    regions: Sequence | None = None,
) -> SampleSelection:
    """Draw one sample's pools and their cutting shapes: the library function behind ``dvp select``.

    Parameters
    ----------
    cells
        The classified cells table (cell_id, cell_type, area_um2, centroids).
    labels
        The (y, x) label image the cells were measured on.
    options
        The ``select`` section.
    sample
        Sample name (pool ids, preview title, GeoJSON ids).
    calibration
        The three calibration points in pixels (:func:`resolve_calibration`).
    pixel_size_um
        Micrometres per pixel; ``None``: derived from the cells table's areas.
    image
        The sample's image (channels, y, x), drawn under the shapes in the preview; ``None`` shows
        the cell masks.
    regions
        QuPath annotations (:func:`dvp_pipeline.qupath.read_geojson`) of the regions of interest:
        only cells inside their polygons (of ``select.region_classes``) are drawn.
    """
    size = pixel_size_um if pixel_size_um is not None else pixel_size_from_cells(cells)
    if size is None:
        raise DVPError("cannot tell the pixel size (none given, no area and area_um2 columns in the cells table)")
    if not (np.isfinite(size) and size > 0):
        raise DVPError(f"pixel size: expected a positive number of micrometres, got {size}")
    if "cell_type" not in cells.columns:
        raise DVPError("missing column cell_type (run dvp classify first)")
    cell_types = options.cell_types
    if cell_types is None:
        # pool order follows this list, so the workflow passes classify's cell type names
        cell_types = sorted(set(cells["cell_type"].astype(str)) - {"unassigned"})
        log.warning("select.cell_types is null: using the types in the cells table: %s", cell_types)
    cell_types = list(cell_types)
    if not cell_types:
        raise DVPError(f"sample {sample}: no cell type to cut (the cells table has only unassigned cells)")
    calibration = check_calibration_points(calibration, what=f"sample {sample}: calibration")

    allowed = np.ones(len(cells), dtype=bool)
    if options.exclude_border:
        allowed &= ~cells["cell_id"].astype(int).isin(border_cells(labels)).to_numpy()
    if regions is not None:
        from dvp_pipeline.qupath import cells_in_regions

        allowed &= np.asarray(cells_in_regions(cells, regions, classes=options.region_classes), dtype=bool)
    drawn = draw_pools(
        cells,
        cell_types=cell_types,
        target_area_um2=options.pool_area_um2,
        tolerance=options.pool_tolerance,
        pools_per_type=options.pools_per_type,
        max_cells=options.max_cells_per_pool,
        min_area_um2=options.min_area_um2,
        seed=options.seed,
        allowed=allowed,
        neighbours=touching_pairs(labels) if options.exclude_touching else None,
        sample=sample,
    )
    unknown = sorted(set(drawn.cells["cell_id"].astype(int)) - set(np.unique(labels).tolist()))
    if unknown:
        raise DVPError(f"cell_id(s) {unknown[:10]} are not labels of the label image")
    if drawn.cells.empty:
        raise DVPError(
            f"sample {sample}: no cell can be cut ({_excluded_text(drawn.excluded)}); check select.min_area_um2, "
            "the regions of interest and select.cell_types"
        )

    shapes, summary = _pool_shapes(drawn, labels, options, size)
    pools = drawn.pools.assign(sample=sample, kind="pool")
    if options.controls:
        controls, control_shapes = _controls(pools, shapes, labels.shape, size)
        pools = pd.concat([pools, controls], ignore_index=True)
        shapes = pd.concat([shapes, control_shapes], ignore_index=True)
    pools = pools[POOL_TABLE_COLUMNS]
    for row in pools[(pools["kind"] == "pool") & ~pools["reached"]].itertuples():
        log.warning(
            "%s: pool %s reached %.0f of its %s µm² (%d cells): too few eligible %s cells",
            sample,
            row.pool_id,
            row.area_um2,
            "-" if pd.isna(row.target_um2) else f"{row.target_um2:.0f}",
            row.n_cells,
            row.cell_type,
        )
    vertices = np.concatenate([np.column_stack([x, y]) for x, y in zip(shapes["x"], shapes["y"], strict=True)])
    far = calibration_triangle_check(calibration, vertices)
    if far > 0.1:
        log.warning(
            "%s: %.0f%% of the shape vertices lie far outside the triangle of the calibration points, where the "
            "LMD extrapolates its calibration; choose marks that surround the tissue",
            sample,
            100 * far,
        )
    summary.update({"calibration_px": calibration.tolist(), "excluded": drawn.excluded, "far_outside": far})
    colors = type_colors(cell_types)
    geojson = shapes_geojson(shapes, pools, sample=sample, calibration=calibration, colors=colors)
    backdrop = image if image is not None else (labels > 0).astype(np.float32)
    figure = preview(
        backdrop,
        shapes,
        pools,
        calibration=calibration,
        orientation=orientation_matrix(**vars(options.orientation)),
        colors=colors,
        title=f"{sample}: pools for laser microdissection",
    )
    kept = [c for c in ("cell_id", "cell_type", "pool_id", "replicate", "area_um2") if c in drawn.cells]
    cells_out = drawn.cells.reindex(columns=[*kept, "centroid_x", "centroid_y"]).assign(sample=sample)
    return SampleSelection(pools, cells_out, shapes, calibration, summary, geojson, figure)


def _excluded_text(excluded: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {why}" for why, n in excluded.items() if n) or "no eligible cells"


def _pool_shapes(drawn, labels: np.ndarray, options: SelectOptions, size: float) -> tuple[pd.DataFrame, dict]:
    """Each pool's cutting shapes in cutting order, and the figures of the whole sample."""
    rows = []
    totals = dict.fromkeys(
        ("vertices_traced", "vertices_cut", "path_before_um", "path_after_um", "dropped", "merged_cells"), 0.0
    )
    max_change = 0.0
    # every drawn cell traced once (one scan of the label image), then cut pool by pool
    traced = cell_outlines(labels, drawn.cells["cell_id"].astype(int).tolist(), dilation_px=0.0, simplify_px=0.0)
    for pool_id, members in drawn.cells.groupby("pool_id", sort=False):
        shape_set = cut_shapes(
            {int(i): traced[int(i)] for i in members["cell_id"]},
            pixel_size_um=size,
            dilation_um=options.dilation_um,
            erosion_um=options.erosion_um,
            max_area_change=options.max_area_change,
            min_area_um2=options.min_shape_area_um2,
            # the cut may move inwards by the tolerance: no further than the margin the laser keeps
            max_tolerance_um=max(options.dilation_um, size),
        )
        if not len(shape_set):
            log.warning("pool %s: every shape is smaller than select.min_shape_area_um2", pool_id)
            continue
        order, before, after = cutting_order(shape_set, method=options.cutting_order, pixel_size_um=size)
        shape_set = shape_set.take(order)
        stats = shape_set.summary()
        totals["vertices_traced"] += stats["input_vertices"]
        totals["vertices_cut"] += stats["vertices_after"]
        totals["path_before_um"] += before
        totals["path_after_um"] += after
        totals["dropped"] += shape_set.dropped
        totals["merged_cells"] += shape_set.merged_cells
        max_change = max(max_change, float(np.max(np.abs(shape_set.area_change), initial=0.0)))
        for k, (ring, ids, area) in enumerate(
            zip(shape_set.rings, shape_set.cell_ids, shape_set.area_um2, strict=True)
        ):
            rows.append((pool_id, k + 1, ",".join(map(str, ids)), float(area), len(ring), ring[:, 0], ring[:, 1]))
    shapes = pd.DataFrame(rows, columns=SHAPE_COLUMNS)
    if shapes.empty:
        raise DVPError("no shape is left to cut: every shape is smaller than select.min_shape_area_um2")
    summary = {
        k: (int(v) if k in ("vertices_traced", "vertices_cut", "dropped", "merged_cells") else v)
        for k, v in totals.items()
    }
    summary["max_area_change"] = max_change
    log.info(
        "%d shapes (%d cells merged into shared shapes, %d too small dropped); %d traced vertices simplified to %d "
        "(area change at most %.1f%%); cutting path %.0f µm in drawing order, %.0f µm ordered (%s)",
        len(shapes),
        summary["merged_cells"],
        summary["dropped"],
        summary["vertices_traced"],
        summary["vertices_cut"],
        100 * max_change,
        totals["path_before_um"],
        totals["path_after_um"],
        options.cutting_order,
    )
    return shapes, summary


def _controls(pools: pd.DataFrame, shapes: pd.DataFrame, shape: tuple[int, int], size: float):
    """A negative-control pool per pool: a square of its area in tissue beside it, on no cut shape."""
    height, width = shape
    rings = [np.column_stack([x, y]) for x, y in zip(shapes["x"], shapes["y"], strict=True)]
    control_rows, control_shapes = [], []
    for pool in pools.itertuples():
        mine = [r for r, p in zip(rings, shapes["pool_id"], strict=True) if p == pool.pool_id]
        target = pool.area_um2 if pool.area_um2 > 0 else None
        ring = (
            control_patch(mine, rings, pixel_size_um=size, target_area_um2=target, bounds=(0, 0, width, height))
            if mine and target
            else None
        )
        pool_id = f"{pool.pool_id}_control"
        found = ring is not None
        if not found:
            log.warning("pool %s: no free tissue beside it for a negative control", pool.pool_id)
        area = float(pool.area_um2) if found else 0.0
        control_rows.append(
            (pool_id, pool.sample, pool.cell_type, pool.replicate, "control", 0, area, pool.area_um2, found)
        )
        if found:
            control_shapes.append((pool_id, 1, "", area, len(ring), ring[:, 0], ring[:, 1]))
    return (
        pd.DataFrame(control_rows, columns=POOL_TABLE_COLUMNS),
        pd.DataFrame(control_shapes, columns=SHAPE_COLUMNS),
    )


def shapes_geojson(
    shapes: pd.DataFrame,
    pools: pd.DataFrame,
    *,
    sample: str,
    calibration: np.ndarray,
    colors: Mapping[str, Sequence[int]] | None = None,
) -> dict:
    """The cutting shapes and calibration points as a GeoJSON FeatureCollection for QuPath.

    Each shape is a classified annotation (class = its pool's cell type, or ``control``) with
    properties ``pool_id``, ``order`` (cutting order within the pool) and ``cell_ids``; the calibration
    points are point annotations of class ``calibration`` named 1 to 3, in the order the operator marks
    them. Coordinates are image pixels (QuPath's frame); ids are deterministic UUIDs.
    """
    pool_of = pools.set_index("pool_id")
    colors = dict(colors or {})
    features = []
    for row in shapes.itertuples(index=False):
        pool = pool_of.loc[row.pool_id]
        name = "control" if pool["kind"] == "control" else str(pool["cell_type"])
        ring = np.column_stack([row.x, row.y])
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(_FEATURE_NAMESPACE, f"{sample}/{row.pool_id}/{row.order}")),
                "geometry": {"type": "Polygon", "coordinates": [np.round(ring, 3).tolist()]},
                "properties": {
                    "objectType": "annotation",
                    "name": f"{row.pool_id} #{row.order}",
                    "classification": {"name": name, "color": [int(c) for c in colors.get(name, (128, 128, 128))]},
                    "pool_id": str(row.pool_id),
                    "order": int(row.order),
                    "cell_ids": str(row.cell_ids),
                },
            }
        )
    for k, (x, y) in enumerate(np.asarray(calibration, dtype=float), start=1):
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(_FEATURE_NAMESPACE, f"{sample}/calibration/{k}")),
                "geometry": {"type": "Point", "coordinates": [round(float(x), 3), round(float(y), 3)]},
                "properties": {
                    "objectType": "annotation",
                    "name": str(k),
                    "classification": {"name": "calibration", "color": [255, 255, 0]},
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def lmd_collection(
    shapes: pd.DataFrame,
    plate_map: pd.DataFrame,
    *,
    sample: str,
    calibration: np.ndarray,
    orientation: np.ndarray,
) -> Collection:
    """One sample's Leica LMD collection: its shapes, well by well in the plate map's order, each
    well's shapes in cutting order, ``CapID`` = the well."""
    mine = plate_map[(plate_map["sample"].astype(str) == sample) & plate_map["pool_id"].notna()]
    missing = sorted(set(shapes["pool_id"]) - set(mine["pool_id"]))
    if missing:
        raise DVPError(f"sample {sample}: pool(s) {', '.join(missing[:5])} have no well in the plate map")
    plates = list(dict.fromkeys(mine["plate"]))
    if len(plates) > 1:
        log.warning(
            "sample %s: its pools span plates %s; the file lists them plate by plate: change the plate when the "
            "wells of %s are done",
            sample,
            ", ".join(plates),
            plates[0],
        )
    collection = Collection(calibration, orientation=orientation)
    for well_row in mine.itertuples(index=False):
        for shape in shapes[shapes["pool_id"] == well_row.pool_id].sort_values("order").itertuples(index=False):
            collection.new_shape(
                np.column_stack([shape.x, shape.y]), well=str(well_row.well), name=f"{well_row.pool_id}#{shape.order}"
            )
    return collection


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
    shapes: pd.DataFrame,
    pools: pd.DataFrame,
    *,
    calibration: np.ndarray | None = None,
    orientation: np.ndarray | None = None,
    colors: Mapping[str, Sequence[int]] | None = None,
    title: str | None = None,
    max_size: int = 2000,
):
    """Draw the cutting shapes, coloured per cell type, over the image, with the calibration points
    (numbered in marking order) and the LMD stage's x and y axes as the orientation maps them.

    Parameters
    ----------
    image
        ``(y, x)`` one channel, ``(y, x, 3)`` RGB, or ``(channels, y, x)``; multi-channel images are
        shown in gray as the per-pixel maximum of the contrast-stretched channels.
    shapes, pools
        The shapes and pools tables of :class:`SampleSelection`; controls are drawn dashed.
    calibration, orientation
        The three calibration points (pixels) and the image-to-stage matrix, drawn when given.
    colors
        RGB (0-255) per cell type; default :func:`type_colors` in order of appearance.
    title
        Figure title (e.g. the sample name).
    max_size
        Larger images are shown subsampled to at most this many pixels per side (shapes are not).

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

    colors = dict(colors) if colors is not None else type_colors(list(dict.fromkeys(pools["cell_type"])))
    fig = Figure(figsize=(8, max(3.0, 8 * height / width) + 0.8), dpi=150)
    ax = fig.add_subplot()
    # extent puts pixel corners on integers, the frame the shapes use; vmax above 1 dims the backdrop
    gray = {} if rgb else {"cmap": "gray", "vmin": 0.0, "vmax": 1.4}
    ax.imshow(backdrop, extent=(0, width, height, 0), interpolation="nearest", **gray)
    kinds = pools.set_index("pool_id")
    handles = []
    for cell_type, group in pools.groupby("cell_type", sort=False):
        color = np.asarray(colors.get(cell_type, (128, 128, 128)), dtype=float) / 255
        for kind, style in (("pool", "solid"), ("control", "dashed")):
            ids = group.loc[group["kind"] == kind, "pool_id"]
            mine = shapes[shapes["pool_id"].isin(ids)]
            if mine.empty:
                continue
            rings = [np.column_stack([x, y]) for x, y in zip(mine["x"], mine["y"], strict=True)]
            ax.add_collection(
                PolyCollection(
                    rings, closed=True, facecolors="none", edgecolors=[color], linewidths=0.8, linestyles=style
                )
            )
            n_cells = int(kinds.loc[list(ids), "n_cells"].sum())
            label = f"{cell_type}: {len(ids)} pool(s), {n_cells} cells" if kind == "pool" else f"{cell_type} controls"
            handles.append(Line2D([], [], color=color, lw=2, linestyle=style, label=label))
    if calibration is not None:
        points = np.asarray(calibration, dtype=float)
        ax.plot(points[:, 0], points[:, 1], "+", color="yellow", markersize=14, markeredgewidth=2, clip_on=False)
        for k, (x, y) in enumerate(points, start=1):
            ax.annotate(str(k), (x, y), xytext=(6, 6), textcoords="offset points", color="yellow", fontweight="bold")
        handles.append(Line2D([], [], marker="+", color="yellow", linestyle="", markersize=10, label="calibration 1-3"))
    if orientation is not None:
        # the image directions of the stage's +x and +y (the inverse of a rotation/flip is its transpose)
        origin, length = np.array([0.12 * width, 0.12 * height]), 0.08 * max(width, height)
        for axis, name in ((0, "stage x"), (1, "stage y")):
            tip = origin + np.asarray(orientation, dtype=float).T[:, axis] * length
            ax.annotate("", xy=tip, xytext=origin, arrowprops={"arrowstyle": "->", "color": "cyan", "lw": 1.5})
            ax.text(*tip, name, color="cyan", fontsize="small", ha="center", va="center")
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
    if shapes.empty:
        ax.text(0.5, 0.5, "no cells selected", transform=ax.transAxes, ha="center", va="center", color="red")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
