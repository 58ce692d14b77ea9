"""QuPath both ways: its GeoJSON annotations in, the pipeline's cells out as QuPath detections.

QuPath is where spatial biologists look at and annotate tissue, so this module sits beside the imaging
stages, on both sides of classification:

- **in**: objects drawn in QuPath and exported with *File > Export objects as GeoJSON* are read by
  :func:`read_geojson` and become training labels for the supervised classifier
  (:func:`training_labels`; ``dvp train-classifier --annotations`` and ``classify.supervised.annotations``
  accept such a file) or regions of interest (:func:`cells_in_regions`);
- **out**: a sample's segmented and classified cells become QuPath detections with their cell type
  and measurements (:func:`cells_to_geojson`, :func:`write_geojson`; ``dvp export-qupath``), to review
  the classification on the image.

Coordinates
-----------
QuPath's frame, the one :mod:`dvp_pipeline.selection` uses: full-resolution image pixels ``(x, y)``,
x to the right, y downwards, origin at the top-left *corner* of the image, so pixel ``(row, col)``
covers ``[col, col + 1] x [row, row + 1]``. The cells table's ``centroid_x``/``centroid_y`` put pixel
*centres* on integers and are shifted by half a pixel here.

Reading untrusted files
-----------------------
A GeoJSON file may come from anyone. It is parsed with :mod:`json` only (no code is run), refused when
larger than ``max_bytes``, and every feature is checked before it is used: a geometry of a supported
type (Point, MultiPoint, Polygon, MultiPolygon), positions of two or three finite numbers within
``±1e9`` pixels, polygon rings of at least three distinct points. A feature that fails a check stops
the read with one :class:`~dvp_pipeline.errors.DVPError` naming the file, the feature's index and what
was wrong. Line annotations (LineString, MultiLineString) and features without geometry label no cell
and are skipped, with a count in the log. A self-intersecting polygon (QuPath can export one after
brush edits) is repaired with :func:`shapely.make_valid`.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from dvp_pipeline.errors import DVPError

__all__ = [
    "Annotation",
    "annotations_from_geojson",
    "cells_in_regions",
    "region_polygons",
    "cells_to_geojson",
    "read_geojson",
    "read_training_labels",
    "training_labels",
    "write_geojson",
]

log = logging.getLogger(__name__)

#: Largest GeoJSON file read (bytes); a whole slide's detections with measurements fit well below it.
MAX_BYTES = 512 * 2**20
#: Largest absolute coordinate accepted, in pixels (whole slides are ~10^5 pixels across).
MAX_COORDINATE = 1e9

# QuPath before 0.3 put the object type in the feature's "id" instead of properties.objectType.
_OLD_OBJECT_TYPES = {
    "PathAnnotationObject": "annotation",
    "PathDetectionObject": "detection",
    "PathCellObject": "cell",
    "PathTileObject": "tile",
    "TMACoreObject": "tma_core",
}
_POINTS = ("Point", "MultiPoint")
_AREAS = ("Polygon", "MultiPolygon")
_SKIPPED = ("LineString", "MultiLineString")
# Namespace of the detections' UUIDs (QuPath expects UUIDs; reruns give the same file). Not the one of
# selection.to_geojson, so a cell's detection and its cutting shape never share an id in QuPath.
_DETECTION_NAMESPACE = uuid.UUID("0b9a1b8e-53c4-4d8e-9f5e-7a9e63a0c2d4")


@dataclass(frozen=True)
class Annotation:
    """One QuPath object read from GeoJSON.

    Attributes
    ----------
    geometry
        A shapely Point, MultiPoint, Polygon or MultiPolygon in the corner-origin pixel frame.
    classification
        The QuPath class name (``None`` when unclassified); a derived class keeps QuPath's
        ``"Tumor: Positive"`` form.
    object_type
        ``properties.objectType``: ``annotation``, ``detection``, ``cell``, ``tile`` ...
    name
        The object's name, if it has one.
    index
        The feature's position in the file (0-based), as error messages and logs name it.
    measurements
        ``properties.measurements`` as ``{name: value}`` (QuPath 0.4+ writes a mapping, older versions
        a list of ``{name, value}``); NaN where QuPath wrote NaN or null.
    """

    geometry: BaseGeometry
    classification: str | None
    object_type: str
    name: str | None
    index: int
    measurements: Mapping[str, float] = field(default_factory=dict)


# --- reading -----------------------------------------------------------------------------------------


def read_geojson(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> list[Annotation]:
    """Read the objects of a QuPath GeoJSON export (*File > Export objects as GeoJSON*).

    Parameters
    ----------
    path
        A FeatureCollection, a bare list of features (QuPath's export without "Export as
        FeatureCollection") or a single feature, UTF-8.
    max_bytes
        Larger files are refused before they are read.

    Returns
    -------
    One :class:`Annotation` per Point, MultiPoint, Polygon or MultiPolygon feature, in file order.

    Raises
    ------
    DVPError
        Naming the file, and the feature index, for a file that is too large, not UTF-8 JSON, not
        GeoJSON, or has a feature with a bad geometry or properties (see the module notes).
    """
    path = Path(path)
    if not path.is_file():
        raise DVPError(f"{path}: file not found")
    size = path.stat().st_size
    if size > max_bytes:
        raise DVPError(f"{path}: {size} bytes, more than the {max_bytes} a GeoJSON file may have here")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DVPError(f"{path}: not UTF-8 text ({err}); expected QuPath's GeoJSON export") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DVPError(
            f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
            "expected QuPath's GeoJSON export"
        ) from err
    except RecursionError as err:
        raise DVPError(f"{path}: JSON nested too deeply to be GeoJSON") from err
    except ValueError as err:  # e.g. an integer longer than Python's digit limit
        raise DVPError(f"{path}: not valid JSON ({err})") from err
    return annotations_from_geojson(data, source=str(path))


def annotations_from_geojson(data, *, source: str = "GeoJSON") -> list[Annotation]:
    """The objects of already-parsed GeoJSON (``json.loads`` output); see :func:`read_geojson`.

    Examples
    --------
    >>> point = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [10.5, 20.5]},
    ...          "properties": {"objectType": "annotation", "classification": {"name": "CD8", "color": [0, 0, 255]}}}
    >>> [(a.geometry.wkt, a.classification, a.object_type) for a in annotations_from_geojson([point])]
    [('POINT (10.5 20.5)', 'CD8', 'annotation')]
    """
    features = _features(data, source)
    annotations: list[Annotation] = []
    skipped: dict[str, int] = {}
    for index, feature in enumerate(features):
        where = f"{source}: feature {index}"
        if not isinstance(feature, dict):
            raise DVPError(f"{where}: expected a GeoJSON Feature object, got {_show(feature)}")
        if feature.get("type", "Feature") != "Feature":
            raise DVPError(f"{where}: type is {_show(feature.get('type'))}, expected 'Feature'")
        geometry = feature.get("geometry")
        if geometry is None:
            skipped["no geometry"] = skipped.get("no geometry", 0) + 1
            continue
        if not isinstance(geometry, dict):
            raise DVPError(f"{where}: geometry must be a GeoJSON geometry object, got {_show(geometry)}")
        kind = geometry.get("type")
        if kind in _SKIPPED:
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        properties = feature.get("properties")
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            raise DVPError(f"{where}: properties must be an object, got {_show(properties)}")
        annotations.append(
            Annotation(
                geometry=_geometry(geometry, where),
                classification=_classification(properties.get("classification"), where),
                object_type=_object_type(properties, feature.get("id"), where),
                name=_optional_text(properties.get("name"), f"{where}: properties.name"),
                index=index,
                measurements=_measurements(properties.get("measurements"), where),
            )
        )
    if skipped:
        log.warning(
            "%s: skipped %s (they label no cell)",
            source,
            ", ".join(f"{n} feature(s) of {k}" for k, n in skipped.items()),
        )
    return annotations


def _features(data, source: str) -> list:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        kind = data.get("type")
        if kind == "FeatureCollection":
            features = data.get("features")
            if not isinstance(features, list):
                raise DVPError(f"{source}: FeatureCollection without a list of features")
            return features
        if kind == "Feature":
            return [data]
    raise DVPError(
        f"{source}: expected a GeoJSON FeatureCollection or a list of features (QuPath's Export objects as "
        f"GeoJSON), got {_show(data)}"
    )


def _show(value, limit: int = 60) -> str:
    """A short description of an untrusted value for a message (never the whole of it)."""
    if isinstance(value, dict):
        keys = ", ".join(str(k) for k in list(value)[:5])
        return f"an object with keys {keys[:limit]}" if keys else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _positions(value, where: str, *, minimum: int) -> np.ndarray:
    """``(n, 2)`` float positions from a GeoJSON list of positions, checked."""
    if not isinstance(value, list) or len(value) < minimum:
        raise DVPError(f"{where}: expected a list of at least {minimum} positions [x, y], got {_show(value)}")
    try:
        array = np.array(value)
    except (ValueError, OverflowError):  # ragged, or numbers numpy cannot hold
        array = None
    if array is None or array.ndim != 2 or array.shape[1] not in (2, 3) or array.dtype.kind not in "iuf":
        bad = next(
            (p for p in value if not (isinstance(p, list) and len(p) in (2, 3) and all(_is_number(v) for v in p))),
            None,
        )
        if bad is None:  # numbers all, but integers too long for numpy
            raise DVPError(f"{where}: a coordinate is beyond ±{MAX_COORDINATE:g} pixels")
        raise DVPError(f"{where}: a position must be [x, y] with two numbers, got {_show(bad)}")
    xy = array[:, :2].astype(float)
    finite = np.isfinite(xy).all(axis=1)
    if not finite.all():
        raise DVPError(f"{where}: position {_show(value[int(np.flatnonzero(~finite)[0])])} is not finite")
    if (np.abs(xy) > MAX_COORDINATE).any():
        raise DVPError(f"{where}: coordinate {float(np.abs(xy).max()):g} is beyond ±{MAX_COORDINATE:g} pixels")
    return xy


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ring(value, where: str) -> np.ndarray:
    ring = _positions(value, where, minimum=3)
    if not np.array_equal(ring[0], ring[-1]):
        ring = np.vstack([ring, ring[:1]])  # GeoJSON rings are closed; accept an open one
    if len(np.unique(ring[:-1], axis=0)) < 3:
        raise DVPError(f"{where}: a polygon ring needs at least 3 distinct points, got {len(np.unique(ring, axis=0))}")
    return ring


def _polygon(value, where: str) -> shapely.Polygon:
    if not isinstance(value, list) or not value:
        raise DVPError(f"{where}: a polygon's coordinates must be a list of rings, got {_show(value)}")
    rings = [_ring(r, f"{where} ring {i}") for i, r in enumerate(value)]
    return shapely.Polygon(rings[0], rings[1:])


def _geometry(geometry: dict, where: str) -> BaseGeometry:
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    where = f"{where} ({kind})" if isinstance(kind, str) else where
    if kind == "Point":
        if not isinstance(coordinates, list):
            raise DVPError(f"{where}: coordinates must be a position [x, y], got {_show(coordinates)}")
        return shapely.Point(_positions([coordinates], where, minimum=1)[0])
    if kind == "MultiPoint":
        return shapely.MultiPoint(_positions(coordinates, where, minimum=1))
    if kind == "Polygon":
        return _valid_area(_polygon(coordinates, where), where)
    if kind == "MultiPolygon":
        if not isinstance(coordinates, list) or not coordinates:
            raise DVPError(f"{where}: coordinates must be a list of polygons, got {_show(coordinates)}")
        parts = [_polygon(p, f"{where} polygon {i}") for i, p in enumerate(coordinates)]
        return _valid_area(shapely.MultiPolygon(parts), where)
    raise DVPError(
        f"{where}: geometry type {_show(kind)} not supported; expected Point, MultiPoint, Polygon or MultiPolygon"
    )


def _valid_area(geometry: BaseGeometry, where: str) -> BaseGeometry:
    if not geometry.is_valid:
        repaired = shapely.make_valid(geometry)
        areas = [g for g in shapely.get_parts(repaired) if g.geom_type in _AREAS]
        geometry = shapely.union_all(areas) if areas else shapely.Polygon()
    if geometry.is_empty or geometry.area <= 0:
        raise DVPError(f"{where}: the polygon encloses no area")
    return geometry


def _classification(value, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # QuPath before 0.2 wrote the bare class name
        return value or None
    if isinstance(value, dict):
        name = value.get("name")
        if name is None and isinstance(value.get("names"), list):
            names = value["names"]
            if not all(isinstance(n, str) for n in names):
                raise DVPError(f"{where}: classification.names must be strings, got {_show(names)}")
            name = ": ".join(names)
        return _optional_text(name, f"{where}: classification.name") or None
    raise DVPError(f"{where}: classification must be an object with a name, or a string; got {_show(value)}")


def _object_type(properties: dict, feature_id, where: str) -> str:
    value = properties.get("objectType")
    if value is None:
        return _OLD_OBJECT_TYPES.get(feature_id, "annotation") if isinstance(feature_id, str) else "annotation"
    if not isinstance(value, str) or not value:
        raise DVPError(f"{where}: properties.objectType must be a string, got {_show(value)}")
    return value


def _optional_text(value, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise DVPError(f"{where}: expected a string, got {_show(value)}")


def _measurements(value, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, list):  # QuPath before 0.4: [{"name": ..., "value": ...}]
        pairs = []
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise DVPError(f"{where}: measurements must be {{name, value}} objects, got {_show(item)}")
            pairs.append((item["name"], item.get("value")))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        raise DVPError(f"{where}: measurements must be an object of name: number, got {_show(value)}")
    result = {}
    for name, number in pairs:
        if number is None:
            number = float("nan")
        if not _is_number(number):
            raise DVPError(f"{where}: measurement {_show(name)} is {_show(number)}, expected a number")
        try:
            result[str(name)] = float(number)
        except OverflowError as err:
            raise DVPError(f"{where}: measurement {_show(name)} is too large for a float") from err
    return result


# --- annotations to cells ------------------------------------------------------------------------------


def _centroids(cells: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in ("cell_id", "centroid_x", "centroid_y") if c not in cells.columns]
    if missing:
        raise DVPError(
            f"cells table: {what} needs columns cell_id, centroid_x, centroid_y; missing {', '.join(missing)}"
        )
    # Cells table centroids have pixel centres on integers; QuPath's frame has pixel corners there.
    return cells["centroid_x"].to_numpy(dtype=float) + 0.5, cells["centroid_y"].to_numpy(dtype=float) + 0.5


def _containing(areas: Sequence[BaseGeometry], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(2, k)`` pairs (area index, cell row) of each cell centroid strictly inside each area."""
    ok = np.isfinite(x) & np.isfinite(y)
    if not len(areas) or not ok.any():
        return np.zeros((2, 0), dtype=np.int64)
    rows = np.flatnonzero(ok)
    tree = shapely.STRtree(shapely.points(x[rows], y[rows]))
    pairs = tree.query(np.asarray(areas, dtype=object), predicate="contains")
    return np.vstack([pairs[0], rows[pairs[1]]])


def training_labels(
    cells: pd.DataFrame,
    annotations: Iterable[Annotation],
    *,
    labels: np.ndarray | None = None,
) -> pd.DataFrame:
    """Training labels for :func:`~dvp_pipeline.classify.train_classifier` from QuPath annotations.

    A classified point (Point or MultiPoint) labels the cell under it: the label of the pixel it falls
    in, read from ``labels``; without a labels image, the cell with the nearest centroid if the point
    lies within that cell's equivalent radius (``sqrt(area / pi)``). A classified polygon (Polygon or
    MultiPolygon, of any object type, so exported QuPath detections work too) labels every cell whose
    centroid lies inside it.

    Conflicts are resolved so that a point, which a person set on one cell, wins over a polygon drawn
    around a region: a keratinocyte region with a few CD8 T cells clicked inside it gives those cells
    the T-cell class. A cell that is still given two classes (two points, or two polygons and no point)
    is dropped, and the number of such cells is logged as a warning; so are unclassified annotations
    (ignored) and points on the background or outside the image.

    Parameters
    ----------
    cells
        One sample's cells table: ``cell_id``, ``centroid_x``, ``centroid_y`` (pixels, as
        :func:`dvp_pipeline.features.measure_cells` writes them), ``area`` when there is no
        ``labels``, and ``sample`` (kept in the result).
    annotations
        From :func:`read_geojson`.
    labels
        The sample's ``(y, x)`` label image (label = ``cell_id``, 0 = background).

    Returns
    -------
    DataFrame
        ``cell_id``, ``cell_type`` (and ``sample``), one row per labelled cell, sorted by ``cell_id``:
        the annotation table :func:`~dvp_pipeline.classify.train_classifier` takes. ``attrs["counts"]``
        holds ``labelled``, ``conflicts``, ``unclassified`` and ``points_missed``.
    """
    annotations = list(annotations)
    samples = cells["sample"].dropna().astype(str).unique() if "sample" in cells.columns else []
    if len(samples) > 1:
        raise DVPError(
            f"cells table: a QuPath file annotates one image, but the cells come from {len(samples)} samples "
            f"({', '.join(samples[:5])}); give one sample's cells"
        )
    x, y = _centroids(cells, "labelling cells from QuPath annotations")
    ids = cells["cell_id"].to_numpy(dtype=np.int64)
    classified = [a for a in annotations if a.classification]
    unclassified = len(annotations) - len(classified)

    point_votes: dict[int, set[str]] = {}
    area_votes: dict[int, set[str]] = {}
    points_missed = 0
    points = [a for a in classified if a.geometry.geom_type in _POINTS]
    if points:
        xy = np.vstack([shapely.get_coordinates(a.geometry) for a in points])
        owner = np.concatenate([[i] * len(shapely.get_coordinates(a.geometry)) for i, a in enumerate(points)])
        hit = _cells_at(xy, cells, ids, x, y, labels)
        points_missed = int((hit == 0).sum())
        for cell_id, i in zip(hit[hit > 0], owner[hit > 0], strict=True):
            point_votes.setdefault(int(cell_id), set()).add(points[i].classification)
    areas = [a for a in classified if a.geometry.geom_type in _AREAS]
    pairs = _containing([a.geometry for a in areas], x, y)
    for area_index, row in zip(*pairs, strict=True):
        area_votes.setdefault(int(ids[row]), set()).add(areas[area_index].classification)

    chosen: dict[int, str] = {}
    conflicts = 0
    for cell_id in sorted(set(point_votes) | set(area_votes)):
        votes = point_votes.get(cell_id) or area_votes[cell_id]
        if len(votes) == 1:
            chosen[cell_id] = next(iter(votes))
        else:
            conflicts += 1
    table = pd.DataFrame({"cell_id": np.array(list(chosen), dtype=np.int64), "cell_type": list(chosen.values())})
    if len(samples):
        table.insert(0, "sample", samples[0])
    counts = {
        "labelled": len(table),
        "conflicts": conflicts,
        "unclassified": unclassified,
        "points_missed": points_missed,
    }
    table.attrs["counts"] = counts
    if conflicts:
        log.warning("%d cell(s) given two or more classes by QuPath annotations were left out", conflicts)
    if unclassified:
        log.warning("%d unclassified QuPath annotation(s) ignored", unclassified)
    if points_missed:
        log.warning(
            "%d QuPath point(s) fell on no cell (background or outside the image) and were ignored", points_missed
        )
    log.info("QuPath annotations labelled %d cell(s)", len(table))
    return table


def _cells_at(
    xy: np.ndarray, cells: pd.DataFrame, ids: np.ndarray, x: np.ndarray, y: np.ndarray, labels: np.ndarray | None
) -> np.ndarray:
    """The cell id under each point (0 = none)."""
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise DVPError(f"labels: expected a 2-D integer label image, got {labels.dtype} of shape {labels.shape}")
        col, row = np.floor(xy[:, 0]).astype(np.int64), np.floor(xy[:, 1]).astype(np.int64)
        inside = (row >= 0) & (row < labels.shape[0]) & (col >= 0) & (col < labels.shape[1])
        hit = np.zeros(len(xy), dtype=np.int64)
        hit[inside] = labels[row[inside], col[inside]]
        hit[~np.isin(hit, ids)] = 0  # a label the cells table lacks labels nothing
        return hit
    if "area" not in cells.columns:
        raise DVPError(
            "point annotations need the sample's labels image (labels.tif) or an 'area' column in the cells table"
        )
    from scipy.spatial import cKDTree

    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return np.zeros(len(xy), dtype=np.int64)
    rows = np.flatnonzero(ok)
    distance, nearest = cKDTree(np.column_stack([x[rows], y[rows]])).query(xy)
    radius = np.sqrt(cells["area"].to_numpy(dtype=float)[rows][nearest] / np.pi)
    return np.where(distance <= radius, ids[rows][nearest], 0)


def region_polygons(annotations: Iterable[Annotation], classes: str | Sequence[str] | None = None) -> list[Annotation]:
    """The polygon annotations of ``classes`` (default: every polygon); points are ignored.

    Raises :class:`DVPError` if a class in ``classes`` is on no polygon (a typo would otherwise select nothing).
    """
    areas = [a for a in annotations if a.geometry.geom_type in _AREAS]
    if classes is None:
        return areas
    wanted = [classes] if isinstance(classes, str) else list(classes)
    present = {a.classification for a in areas if a.classification}
    absent = [c for c in wanted if c not in present]
    if absent:
        raise DVPError(
            f"QuPath annotations: no polygon of class {', '.join(map(repr, absent))}; "
            f"classes present: {', '.join(sorted(present)) or 'none'}"
        )
    return [a for a in areas if a.classification in wanted]


def cells_in_regions(
    cells: pd.DataFrame,
    annotations: Iterable[Annotation],
    classes: str | Sequence[str] | None = None,
) -> np.ndarray:
    """Which cells lie in regions of interest drawn in QuPath.

    Parameters
    ----------
    cells
        Cells table with ``centroid_x`` and ``centroid_y`` (pixels).
    annotations
        From :func:`read_geojson`; polygons count, points are ignored.
    classes
        Only polygons of these QuPath classes (default: every polygon).

    Returns
    -------
    Boolean array, one per row of ``cells``: the centroid lies inside at least one of the polygons.

    Raises
    ------
    DVPError
        If a class in ``classes`` is on no polygon (a typo would otherwise select nothing).
    """
    areas = region_polygons(annotations, classes)
    x, y = _centroids(cells, "selecting cells in QuPath regions")
    mask = np.zeros(len(cells), dtype=bool)
    mask[_containing([a.geometry for a in areas], x, y)[1]] = True
    return mask


def read_training_labels(
    path: str | os.PathLike, cells: pd.DataFrame, *, labels: np.ndarray | None = None
) -> pd.DataFrame:
    """:func:`training_labels` from a QuPath GeoJSON file: what ``dvp train-classifier`` reads for a ``.geojson``."""
    try:
        return training_labels(cells, read_geojson(path), labels=labels)
    except DVPError as err:
        message = str(err)
        raise DVPError(message if message.startswith(str(path)) else f"{path}: {message}") from err


# --- cells to QuPath -----------------------------------------------------------------------------------


def _hex_to_rgb(color: str) -> list[int]:
    color = color.lstrip("#")
    return [int(color[i : i + 2], 16) for i in (0, 2, 4)]


def cells_to_geojson(
    cells: pd.DataFrame,
    outlines: Mapping[int, np.ndarray] | np.ndarray,
    *,
    cell_type_column: str = "cell_type",
    measurements: Sequence[str] | None = None,
    cell_type_order: Sequence[str] = (),
    colors: Mapping[str, Sequence[int]] | None = None,
    simplify_px: float = 0.5,
) -> dict:
    """A sample's cells as QuPath detections (GeoJSON FeatureCollection).

    Parameters
    ----------
    cells
        Cells table: ``cell_id``, and usually the cell type column and the measurement columns
        (``sample`` goes into the feature ids).
    outlines
        ``cell_id -> (N, 2)`` closed rings in the corner-origin pixel frame, or the ``(y, x)`` label
        image from which they are traced (:func:`dvp_pipeline.selection.cell_outlines`, undilated).
    cell_type_column
        Column that becomes the QuPath classification; cells with no value stay unclassified.
    measurements
        Columns written as QuPath measurements; default every ``mean_<channel>`` column, the area
        (``area_um2``, else ``area`` in pixels) and ``confidence``, where present. ``cell_id`` is
        always added, so a detection in QuPath leads back to its row.
    cell_type_order
        Cell-type order that fixes the colours (the config's rule order), as in the reports
        (:func:`dvp_pipeline.report.palettes.cell_type_palette`).
    colors
        RGB (0-255) per cell type, overriding the palette.
    simplify_px
        Douglas-Peucker tolerance when tracing from a label image.

    Returns
    -------
    dict
        ``{"type": "FeatureCollection", "features": [...]}`` in the order of ``cells``; each feature is a
        Polygon with a deterministic UUID ``id`` and properties ``objectType`` ("detection"),
        ``classification`` (``{"name", "color": [r, g, b]}``), ``measurements`` (flat
        ``{name: value}``; missing values left out) and ``cell_id``. Write it with :func:`write_geojson`.
    """
    if "cell_id" not in cells.columns:
        raise DVPError("cells table: no cell_id column")
    ids = cells["cell_id"].to_numpy(dtype=np.int64)
    if isinstance(outlines, np.ndarray):
        from dvp_pipeline.selection import cell_outlines

        outlines = cell_outlines(outlines, ids.tolist(), dilation_px=0.0, simplify_px=simplify_px)
    if measurements is None:
        measurements = [c for c in cells.columns if str(c).startswith("mean_")]
        measurements += [next((c for c in ("area_um2", "area") if c in cells.columns), None), "confidence"]
        measurements = [c for c in measurements if c is not None and c in cells.columns]
    missing = [c for c in measurements if c not in cells.columns]
    if missing:
        raise DVPError(f"cells table: no measurement column(s) {', '.join(missing)}")
    values = cells[list(measurements)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)

    types = cells[cell_type_column] if cell_type_column in cells.columns else pd.Series(None, index=cells.index)
    present = [str(t) for t in types if not pd.isna(t)]
    palette = {}
    if present:
        from dvp_pipeline.report.palettes import cell_type_palette

        palette = {
            name: _hex_to_rgb(color) for name, color in cell_type_palette(present, order=cell_type_order).items()
        }
    palette.update({str(k): [int(c) for c in v] for k, v in (colors or {}).items()})
    samples = cells["sample"].astype(str).tolist() if "sample" in cells.columns else [""] * len(cells)

    features = []
    for row, (cell_id, cell_type, sample) in enumerate(zip(ids, types, samples, strict=True)):
        cell_id = int(cell_id)
        if cell_id not in outlines:
            raise DVPError(f"no outline for cell_id {cell_id}")
        ring = np.asarray(outlines[cell_id], dtype=float)
        if not np.array_equal(ring[0], ring[-1]):
            ring = np.vstack([ring, ring[:1]])
        measured = {"cell_id": float(cell_id)}
        measured.update({name: float(v) for name, v in zip(measurements, values[row], strict=True) if np.isfinite(v)})
        properties: dict = {"objectType": "detection"}
        if not pd.isna(cell_type):
            name = str(cell_type)
            properties["classification"] = {"name": name, "color": palette.get(name, [128, 128, 128])}
        properties["measurements"] = measured
        properties["cell_id"] = cell_id
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(_DETECTION_NAMESPACE, f"{sample}/{cell_id}")),
                "geometry": {"type": "Polygon", "coordinates": [np.round(ring, 3).tolist()]},
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def write_geojson(obj, path: str | os.PathLike) -> None:
    """Write GeoJSON atomically (compact; NaN refused, as GeoJSON readers do not all accept it)."""
    from dvp_pipeline.io import atomic_output

    try:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    except ValueError as err:
        raise DVPError(f"{path}: cannot write GeoJSON ({err})") from err
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
