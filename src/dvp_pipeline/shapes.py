"""Laser-microdissection cutting shapes: margins, merging, capped simplification and cutting order.

Part of the select stage, between tracing the chosen cells (:func:`dvp_pipeline.selection.cell_outlines`)
and writing the Leica file (:mod:`dvp_pipeline.leica`). The caller passes the cells of one pool
(one well) at a time; :func:`cut_shapes` turns their exact traced outlines into the polygons the
laser cuts, and :func:`cutting_order` sorts them to shorten stage travel.

What :func:`cut_shapes` does, in order
--------------------------------------
1. Each outline becomes a valid shapely polygon (``make_valid``; of a ring that falls apart, the
   largest piece is kept, as :func:`~dvp_pipeline.selection.cell_outlines` does).
2. Erosion, then dilation (the laser margin), by ``shapely.buffer`` in pixels (µm / pixel size)
   with *round* joins: a round-joined offset is the Euclidean offset (Minkowski sum with a disc),
   the same growth as the distance-transform dilation of ``cell_outlines``, so the cut stays the
   margin away from the membrane everywhere. Mitre joins would throw spikes out of sharp corners and
   bevel joins would cut corners closer than the margin; the extra vertices of the arcs are removed
   again by step 5. Erosion then dilation is a morphological opening: protrusions thinner than twice
   the erosion go.
3. With ``merge``, overlapping or touching shapes are united (``unary_union``); two cells closer
   than twice the dilation therefore share one shape, which lists both cell ids. The laser would
   otherwise cut twice through the same tissue, and the second cut finds nothing to drop.
4. Holes are filled. The Leica file holds one closed line per shape and the LMD cuts that outer
   ring, so whatever lies in a hole falls into the well with the shape; the filled area is reported
   (``filled_hole_area_um2``). With ``merge``, a shape lying inside another's filled hole is
   absorbed by it (its cells fall with the outer shape anyway).
5. Douglas-Peucker simplification (``shapely.simplify``, ``preserve_topology=True``) with a cap on
   the area change: per shape, bisection on the tolerance finds a large tolerance whose polygon is
   valid and changes the area by at most ``max_area_change`` (relative). The area change is not
   monotonic in the tolerance, so this is a large admissible tolerance, not provably the largest;
   the result always satisfies the cap. The tolerance is also bounded (``max_tolerance_um``), because
   a relative cap on a large merged shape would let the cut run through cells. With ``merge``, two
   simplified shapes that would overlap keep their unsimplified outlines (disjoint by construction).
6. Shapes smaller than ``min_area_um2`` (too small for the laser to cut and drop cleanly) are
   dropped and counted.

Coordinates are those of :mod:`dvp_pipeline.selection`: image pixels ``(x, y)``, x right, y down,
origin at the top-left image corner. Output rings are closed ``(N, 2)`` float arrays with positive
shoelace area in x/y numbers (counter-clockwise in a y-up frame), like ``cell_outlines``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from dvp_pipeline.errors import DVPError

log = logging.getLogger(__name__)

__all__ = ["ShapeSet", "control_patch", "cut_shapes", "cutting_order", "path_length"]

# Polygon parts below this area (pixels²) are numerical slivers of make_valid/union, not tissue.
_SLIVER_PX2 = 1e-3
# Segments per quarter circle of the round buffer joins; simplification removes most of them again.
_QUAD_SEGS = 8
# Bisection stops when the tolerance is known to this many pixels (or after _MAX_BISECTIONS steps).
_TOLERANCE_RESOLUTION_PX = 1e-3
_MAX_BISECTIONS = 30
_METHODS = ("nearest", "hilbert", "none")


@dataclass(frozen=True)
class ShapeSet:
    """Cutting shapes of one pool, in the pixel frame of the label image, with what was done to them.

    Attributes
    ----------
    rings
        One closed ``(N, 2)`` float array of ``(x, y)`` pixels per shape (last vertex == first),
        counter-clockwise in a y-up frame. The LMD starts and ends each cut at the first vertex.
    cell_ids
        The cells each shape contains, in input order (several when cells were merged).
    pixel_size_um
        Micrometres per pixel.
    area_um2
        Area of each shape as cut.
    area_change
        Signed relative area change of each shape by simplification (negative: area lost).
    vertices_before, vertices_after
        Distinct vertices of each shape before and after simplification.
    input_vertices
        Distinct vertices of all input outlines together (the traced rings).
    n_cells
        Cells given.
    dropped_cell_ids
        Cells in no shape: eroded away, or in a shape below ``min_area_um2``.
    dropped
        Shapes dropped (below ``min_area_um2``, or a cell eroded away entirely).
    filled_hole_area_um2
        Area added by filling holes, over all shapes (tissue that is not the selected cells' but falls
        into the well with them).
    """

    rings: tuple[np.ndarray, ...]
    cell_ids: tuple[tuple[int, ...], ...]
    pixel_size_um: float
    area_um2: np.ndarray
    area_change: np.ndarray
    vertices_before: np.ndarray
    vertices_after: np.ndarray
    input_vertices: int
    n_cells: int
    dropped_cell_ids: tuple[int, ...]
    dropped: int
    filled_hole_area_um2: float

    def __len__(self) -> int:
        return len(self.rings)

    @property
    def merged_shapes(self) -> int:
        """Shapes that hold more than one cell."""
        return sum(len(ids) > 1 for ids in self.cell_ids)

    @property
    def merged_cells(self) -> int:
        """Cells that share their shape with another cell."""
        return sum(len(ids) for ids in self.cell_ids if len(ids) > 1)

    def take(self, order: Sequence[int]) -> ShapeSet:
        """The same shapes in the given order (e.g. from :func:`cutting_order`)."""
        order = np.asarray(order, dtype=int).reshape(-1)
        if sorted(order.tolist()) != list(range(len(self))):
            raise DVPError(f"order: expected a permutation of 0..{len(self) - 1}, got {order.tolist()[:10]}")
        return replace(
            self,
            rings=tuple(self.rings[i] for i in order),
            cell_ids=tuple(self.cell_ids[i] for i in order),
            area_um2=self.area_um2[order],
            area_change=self.area_change[order],
            vertices_before=self.vertices_before[order],
            vertices_after=self.vertices_after[order],
        )

    def summary(self) -> dict:
        """Counts and figures for logs and the report: vertices, area change, dropped and merged shapes."""
        change = np.abs(self.area_change)
        return {
            "cells": self.n_cells,
            "shapes": len(self),
            "input_vertices": self.input_vertices,
            "vertices_before_simplification": int(self.vertices_before.sum()),
            "vertices_after": int(self.vertices_after.sum()),
            "area_change_max": float(change.max()) if len(change) else 0.0,
            "area_change_mean": float(change.mean()) if len(change) else 0.0,
            "area_um2": float(self.area_um2.sum()),
            "dropped": self.dropped,
            "dropped_cells": len(self.dropped_cell_ids),
            "merged_shapes": self.merged_shapes,
            "merged_cells": self.merged_cells,
            "filled_hole_area_um2": self.filled_hole_area_um2,
        }

    def table(self) -> pd.DataFrame:
        """One row per shape: ``shape`` (1-based, cutting order), ``cell_ids`` (comma-separated), area, vertices."""
        return pd.DataFrame(
            {
                "shape": np.arange(1, len(self) + 1),
                "cell_ids": [",".join(map(str, ids)) for ids in self.cell_ids],
                "n_cells": [len(ids) for ids in self.cell_ids],
                "area_um2": self.area_um2,
                "area_change": self.area_change,
                "n_points": self.vertices_after,
            }
        )


def _check_number(name: str, value, *, low: float, open_low: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or number < low or (open_low and number == low):
        bound = f"> {low:g}" if open_low else f">= {low:g}"
        raise DVPError(f"{name}: expected a finite number {bound}, got {value!r}")
    return number


def _polygon_parts(geometry) -> list[Polygon]:
    """The polygons of a (made valid) geometry, slivers and lower-dimensional parts dropped."""
    if geometry is None or geometry.is_empty:
        return []
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    parts = shapely.get_parts(geometry)
    polygons = []
    for part in parts:
        if part.geom_type == "Polygon":
            polygons.append(part)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            polygons.extend(_polygon_parts(part))
    return [p for p in polygons if p.area > _SLIVER_PX2]


def _largest_part(geometry) -> Polygon | None:
    parts = _polygon_parts(geometry)
    return max(parts, key=lambda p: p.area) if parts else None


def _filled(polygon: Polygon) -> Polygon:
    return Polygon(polygon.exterior) if polygon.interiors else polygon


def _as_polygon(cell_id: int, outline) -> tuple[Polygon | None, int]:
    """A valid polygon for one input outline and its count of distinct vertices."""
    if isinstance(outline, Polygon):
        ring = np.asarray(outline.exterior.coords, dtype=float)
        polygon = outline
    else:
        ring = np.asarray(outline, dtype=float)
        if ring.ndim != 2 or ring.shape[1] != 2:
            raise DVPError(f"outline of cell {cell_id}: expected an (N, 2) array of (x, y) pixels, got {ring.shape}")
        if not np.isfinite(ring).all():
            raise DVPError(f"outline of cell {cell_id}: contains NaN or infinite coordinates")
        if len(np.unique(ring, axis=0)) < 3:
            raise DVPError(f"outline of cell {cell_id}: needs at least 3 distinct vertices, got {len(ring)} points")
        polygon = Polygon(ring)
    closed = len(ring) > 1 and np.array_equal(ring[0], ring[-1])
    return _largest_part(polygon), len(ring) - int(closed)


def _read_outlines(outlines, cell_ids) -> dict[int, object]:
    if isinstance(outlines, Mapping):
        if cell_ids is not None:
            raise DVPError("cell_ids: only used with a label image; outlines are already one per cell")
        try:
            return {int(k): v for k, v in outlines.items()}
        except (TypeError, ValueError) as error:
            raise DVPError(f"outlines: keys must be integer cell ids ({error})") from None
    labels = np.asarray(outlines)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DVPError(
            "outlines: expected a mapping cell_id -> (N, 2) ring or a 2-D integer label image, "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    from dvp_pipeline.selection import cell_outlines

    ids = np.unique(labels[labels > 0]).tolist() if cell_ids is None else [int(i) for i in cell_ids]
    # Exact traced outlines: simplification and margins are this module's job.
    return cell_outlines(labels, ids, dilation_px=0.0, simplify_px=0.0)


def _merge(polygons: list[Polygon]) -> list[Polygon]:
    """Union, fill holes, and repeat: a filled shape may now contain or touch another one."""
    parts = [_filled(p) for p in polygons]
    while True:
        united = [_filled(p) for p in _polygon_parts(shapely.unary_union(parts))]
        if len(united) == len(parts):
            return united
        parts = united


def _simplify_capped(polygons: np.ndarray, cap: float, max_tolerance_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Per polygon, the simplification with a large tolerance that stays valid and within the area cap.

    Vectorised bisection over all polygons at once. Returns the simplified polygons and their signed
    relative area change.
    """
    areas = shapely.area(polygons)
    low, high = np.zeros(len(polygons)), np.zeros(len(polygons))
    x0, y0, x1, y1 = shapely.bounds(polygons).T
    # Beyond the bounding-box diagonal every tolerance gives the same (collapsed) polygon.
    high[:] = np.minimum(np.hypot(x1 - x0, y1 - y0), max_tolerance_px)
    best, change = polygons.copy(), np.zeros(len(polygons))

    def admissible(index: np.ndarray, tolerance: np.ndarray):
        simplified = shapely.simplify(polygons[index], tolerance, preserve_topology=True)
        relative = (shapely.area(simplified) - areas[index]) / areas[index]
        good = (
            shapely.is_valid(simplified)
            & (shapely.get_type_id(simplified) == shapely.GeometryType.POLYGON)
            & (np.abs(relative) <= cap)
        )
        return good, simplified, relative

    everything = np.flatnonzero(high > 0)
    good, simplified, relative = admissible(everything, high[everything])
    best[everything[good]], change[everything[good]] = simplified[good], relative[good]
    active = everything[~good]
    for _ in range(_MAX_BISECTIONS):
        active = active[high[active] - low[active] > _TOLERANCE_RESOLUTION_PX]
        if not len(active):
            break
        middle = 0.5 * (low[active] + high[active])
        good, simplified, relative = admissible(active, middle)
        best[active[good]], change[active[good]] = simplified[good], relative[good]
        low[active[good]] = middle[good]
        high[active[~good]] = middle[~good]
    return best, change


def _overlapping(polygons: np.ndarray) -> np.ndarray:
    """Indices of polygons whose interiors overlap another polygon's."""
    tree = shapely.STRtree(polygons)
    left, right = tree.query(polygons, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if not len(left):
        return np.zeros(0, dtype=int)
    shared = shapely.area(shapely.intersection(polygons[left], polygons[right]))
    hit = shared > _SLIVER_PX2
    return np.unique(np.concatenate([left[hit], right[hit]]))


def cut_shapes(
    outlines: Mapping[int, np.ndarray | Polygon] | np.ndarray,
    *,
    pixel_size_um: float,
    cell_ids: Sequence[int] | None = None,
    dilation_um: float = 0.5,
    erosion_um: float = 0.0,
    max_area_change: float = 0.10,
    min_area_um2: float = 10.0,
    max_tolerance_um: float | None = 1.0,
    merge: bool = True,
) -> ShapeSet:
    """Turn the traced outlines of one pool's cells into valid, simplified laser cutting shapes.

    The steps (margins, merging, hole filling, capped simplification, dropping small shapes) and
    their choices are described in the module docstring.

    Parameters
    ----------
    outlines
        ``cell_id -> (N, 2)`` rings of ``(x, y)`` pixels (or shapely Polygons), the *unsimplified*
        outlines, as from ``cell_outlines(labels, ids, dilation_px=0, simplify_px=0)``; or a 2-D
        integer label image, which is traced that way here.
    pixel_size_um
        Micrometres per pixel.
    cell_ids
        With a label image: the cells to cut (default every label). Not used with outlines.
    dilation_um
        Laser margin: outward growth of every cell so the cut runs outside the membrane.
    erosion_um
        Inward shrinking before the dilation (removes thin protrusions and cuts through necks).
    max_area_change
        Largest relative area change that simplification may cause, in (0, 1).
    min_area_um2
        Shapes smaller than this after all steps are dropped: too small to cut and collect.
    max_tolerance_um
        Upper bound on the simplification tolerance, i.e. on how far the cut may move from the grown
        outline; ``None``: the area cap alone. The cap is relative, so on a large merged shape it
        alone would allow cuts through whole cells (a pool of 150 touching keratinocytes becomes a
        quadrilateral within 6% of its area); 1 µm keeps the cut within 1 µm of the margin and costs
        little vertex reduction on single cells.
    merge
        Unite overlapping or touching shapes (the caller passes one pool at a time). Without it,
        shapes may overlap and the laser cuts each.

    Returns
    -------
    ShapeSet
        Shapes ordered by the input position of their first cell, with cell ids, areas and the
        report (:meth:`ShapeSet.summary`).

    Raises
    ------
    DVPError
        For no outlines, a malformed ring, a non-positive pixel size, negative margins or a cap
        outside (0, 1).

    Examples
    --------
    >>> square = np.array([[0, 0], [20, 0], [20, 20], [0, 20], [0, 0]], dtype=float)
    >>> shapes = cut_shapes({1: square, 2: square + [20, 0]}, pixel_size_um=0.5)
    >>> shapes.cell_ids
    ((1, 2),)
    """
    pixel = _check_number("pixel_size_um", pixel_size_um, low=0.0, open_low=True)
    dilation = _check_number("dilation_um", dilation_um, low=0.0) / pixel
    erosion = _check_number("erosion_um", erosion_um, low=0.0) / pixel
    min_area = _check_number("min_area_um2", min_area_um2, low=0.0)
    cap = _check_number("max_area_change", max_area_change, low=0.0, open_low=True)
    if cap >= 1:
        raise DVPError(f"max_area_change: expected a fraction in (0, 1), got {max_area_change!r}")
    max_tolerance = (
        np.inf if max_tolerance_um is None else _check_number("max_tolerance_um", max_tolerance_um, low=0.0) / pixel
    )
    sources = _read_outlines(outlines, cell_ids)
    if not sources:
        raise DVPError("outlines: no cells given (expected at least one outline or cell id)")

    ids, cells, input_vertices, dropped_ids = [], [], 0, []
    for cell_id, outline in sources.items():
        polygon, vertices = _as_polygon(cell_id, outline)
        input_vertices += vertices
        if polygon is not None and erosion > 0:
            polygon = _largest_part(polygon.buffer(-erosion, quad_segs=_QUAD_SEGS, join_style="round"))
        if polygon is not None and dilation > 0:
            polygon = _largest_part(polygon.buffer(dilation, quad_segs=_QUAD_SEGS, join_style="round"))
        if polygon is None:
            dropped_ids.append(cell_id)  # eroded away (or a degenerate ring)
            continue
        ids.append(cell_id)
        cells.append(polygon)
    eroded_away = len(dropped_ids)

    if merge and cells:
        parts = _merge(cells)
        tree = shapely.STRtree(parts)
        # An interior point of each cell lies in exactly one merged part (parts have disjoint interiors).
        inside = shapely.point_on_surface(np.array(cells, dtype=object))
        cell_index, part_index = tree.query(inside, predicate="within")
        part_of = np.full(len(cells), -1)
        part_of[cell_index] = part_index
        lost = np.flatnonzero(part_of < 0)
        if len(lost):
            part_of[lost] = tree.nearest(inside[lost])
        members = [[ids[i] for i in np.flatnonzero(part_of == p)] for p in range(len(parts))]
        first = [int(np.flatnonzero(part_of == p).min()) for p in range(len(parts))]
        keep = np.argsort(first, kind="stable")
        parts, members = [parts[i] for i in keep], [members[i] for i in keep]
        hole_area = sum(p.area for p in parts) - shapely.area(shapely.unary_union(cells))
    else:
        parts = [_filled(p) for p in cells]
        members = [[i] for i in ids]
        hole_area = sum(f.area - c.area for f, c in zip(parts, cells, strict=True))

    if not parts:
        log.warning("cut_shapes: all %d cells were eroded away", len(sources))
        empty = np.zeros(0)
        return ShapeSet(
            rings=(),
            cell_ids=(),
            pixel_size_um=pixel,
            area_um2=empty,
            area_change=empty,
            vertices_before=empty.astype(int),
            vertices_after=empty.astype(int),
            input_vertices=int(input_vertices),
            n_cells=len(sources),
            dropped_cell_ids=tuple(dropped_ids),
            dropped=eroded_away,
            filled_hole_area_um2=0.0,
        )

    exact = np.array(parts, dtype=object)
    simplified, change = _simplify_capped(exact, cap, max_tolerance)
    if merge:
        # Simplification may move neighbouring shapes into each other; those keep their exact outlines.
        while len(clash := [i for i in _overlapping(simplified) if simplified[i] is not exact[i]]):
            simplified[clash], change[clash] = exact[clash], 0.0

    area_um2 = shapely.area(simplified) * pixel**2
    small = area_um2 < min_area
    for i in np.flatnonzero(small):
        dropped_ids.extend(members[i])
    keep = np.flatnonzero(~small)
    rings = tuple(np.ascontiguousarray(orient(simplified[i], sign=1.0).exterior.coords, dtype=float) for i in keep)
    before = shapely.get_num_coordinates(exact[keep]) - 1
    shapes = ShapeSet(
        rings=rings,
        cell_ids=tuple(tuple(members[i]) for i in keep),
        pixel_size_um=pixel,
        area_um2=area_um2[keep],
        area_change=change[keep],
        vertices_before=np.asarray(before, dtype=int),
        vertices_after=np.array([len(r) - 1 for r in rings], dtype=int),
        input_vertices=int(input_vertices),
        n_cells=len(sources),
        dropped_cell_ids=tuple(dropped_ids),
        dropped=eroded_away + int(small.sum()),
        filled_hole_area_um2=float(hole_area * pixel**2),
    )
    log.info(
        "cut_shapes: %(cells)d cells -> %(shapes)d shapes (%(merged_shapes)d merged, %(dropped)d dropped), "
        "%(input_vertices)d -> %(vertices_after)d vertices, area change max %(area_change_max).3f",
        shapes.summary(),
    )
    return shapes


# --- cutting order ---------------------------------------------------------------------------------


def _start_points(shapes, pixel_size_um) -> tuple[np.ndarray, float]:
    if isinstance(shapes, ShapeSet):
        rings, size = shapes.rings, shapes.pixel_size_um if pixel_size_um is None else pixel_size_um
    else:
        rings, size = list(shapes), pixel_size_um
    if size is None:
        raise DVPError("pixel_size_um: needed to measure travel in µm when the shapes are plain rings")
    size = _check_number("pixel_size_um", size, low=0.0, open_low=True)
    points = np.zeros((len(rings), 2))
    for i, ring in enumerate(rings):
        ring = np.asarray(ring, dtype=float)
        if ring.ndim != 2 or ring.shape[1] != 2 or not len(ring) or not np.isfinite(ring).all():
            raise DVPError(f"shape {i}: expected an (N, 2) array of finite (x, y) pixels, got shape {ring.shape}")
        points[i] = ring[0]
    return points, size


def path_length(points: np.ndarray, order: Sequence[int], start=(0.0, 0.0)) -> float:
    """Length of the open path from ``start`` through ``points[order]`` (in the points' unit)."""
    path = np.vstack([np.asarray(start, dtype=float).reshape(1, 2), np.asarray(points, dtype=float)[order]])
    return float(np.hypot(*np.diff(path, axis=0).T).sum())


def _nearest_neighbour(points: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Greedy tour: always travel to the closest shape not cut yet (O(n²), vectorised per step)."""
    n = len(points)
    visited = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=int)
    current = start
    for step in range(n):
        distance = np.einsum("ij,ij->i", points - current, points - current)
        distance[visited] = np.inf
        order[step] = nxt = int(np.argmin(distance))
        visited[nxt] = True
        current = points[nxt]
    return order


def _two_opt(
    points: np.ndarray, order: np.ndarray, start: np.ndarray, *, neighbours: int = 10, max_iterations: int = 2000
) -> np.ndarray:
    """Improve an open path from a fixed start by 2-opt moves (segment reversals).

    Only moves that create an edge between near neighbours (k-d tree, ``neighbours`` each) are
    tried, plus every reversal of the tail (the path is open, its end is free); each iteration
    evaluates them all at once and applies the best improving moves that do not interfere. With
    fewer points than ``neighbours`` every move is tried, so the result has no crossing edges.
    """
    n = len(order)
    if n < 3:
        return order
    nodes = np.vstack([start.reshape(1, 2), points])  # node 0 is the fixed start
    tour = np.concatenate([[0], np.asarray(order) + 1])
    k = min(neighbours + 1, n + 1)
    _, near = cKDTree(nodes).query(nodes, k=k)
    u, v = np.repeat(np.arange(n + 1), k), near.reshape(-1)
    pairs = u != v
    u, v = u[pairs], v[pairs]
    scale = float(np.ptp(nodes, axis=0).max()) or 1.0

    def dist(a, b):
        return np.hypot(*(nodes[a] - nodes[b]).T)

    for _ in range(max_iterations):
        position = np.empty(n + 1, dtype=int)
        position[tour] = np.arange(n + 1)
        a, b = np.minimum(position[u], position[v]), np.maximum(position[u], position[v])
        # Reversing tour[i..j] swaps edges (i-1, i), (j, j+1) for (i-1, j), (i, j+1); j == n has no
        # (j, j+1) edge. A neighbour pair at positions a < b is the new edge (i-1, j) = (a, b) or
        # (i, j+1) = (a, b); the tail reversals (j = n) are all added.
        i = np.concatenate([a + 1, a, np.arange(1, n)])
        j = np.concatenate([b, b - 1, np.full(n - 1, n)])
        valid = (i >= 1) & (j > i)
        i, j = i[valid], j[valid]
        nxt = np.minimum(j + 1, n)
        has_next = j < n
        delta = (
            dist(tour[i - 1], tour[j])
            - dist(tour[i - 1], tour[i])
            + np.where(has_next, dist(tour[i], tour[nxt]) - dist(tour[j], tour[nxt]), 0.0)
        )
        improving = np.flatnonzero(delta < -1e-9 * scale)
        if not len(improving):
            break
        taken = np.zeros(n + 2, dtype=bool)
        for m in improving[np.argsort(delta[improving])][:256]:
            lo, hi = i[m] - 1, j[m] + 1
            if taken[lo : hi + 1].any():
                continue  # overlapping moves change each other's gain
            taken[lo : hi + 1] = True
            tour[i[m] : j[m] + 1] = tour[i[m] : j[m] + 1][::-1].copy()
    return tour[1:] - 1


def _hilbert_index(points: np.ndarray, bits: int = 16) -> np.ndarray:
    """Position of each point along a Hilbert curve over the points' bounding box (2^bits cells a side)."""
    low = points.min(axis=0)
    extent = float(np.ptp(points, axis=0).max()) or 1.0
    side = (1 << bits) - 1
    x, y = (np.floor((points - low) / extent * side).astype(np.int64)).T
    index = np.zeros(len(points), dtype=np.int64)
    s = 1 << (bits - 1)
    while s > 0:
        rx, ry = (x & s) > 0, (y & s) > 0
        index += s * s * ((3 * rx.astype(np.int64)) ^ ry.astype(np.int64))
        # Rotate the quadrant so the sub-curve is in standard orientation (Wikipedia "Hilbert curve", xy2d).
        flip = ~ry & rx
        x[flip], y[flip] = side - x[flip], side - y[flip]
        swap = ~ry
        x[swap], y[swap] = y[swap], x[swap].copy()
        s >>= 1
    return index


def cutting_order(
    shapes: ShapeSet | Sequence[np.ndarray],
    *,
    method: str = "nearest",
    start: Sequence[float] = (0.0, 0.0),
    pixel_size_um: float | None = None,
    max_iterations: int = 2000,
) -> tuple[np.ndarray, float, float]:
    """An order to cut the shapes in that shortens the stage travel between them.

    The LMD starts each cut at the ring's first vertex and ends it there, so the stage travels from
    ``start`` to the first vertex of the first shape, then from first vertex to first vertex; this
    open path is what is measured and minimised (rings are not rotated).

    Parameters
    ----------
    shapes
        A :class:`ShapeSet` or closed ``(N, 2)`` rings in pixels.
    method
        ``"nearest"``: greedy nearest neighbour from ``start``, then 2-opt (segment reversals between
        near neighbours, vectorised, at most ``max_iterations`` rounds; a few thousand shapes take
        well under a second). ``"hilbert"``: along a Hilbert curve over the shapes' bounding box,
        run in the direction that is shorter from ``start`` (fast; on random layouts about 20%
        longer than ``"nearest"``). ``"none"``: the input order.
    start
        Stage position before the first cut, ``(x, y)`` pixels.
    pixel_size_um
        Micrometres per pixel; taken from a ShapeSet, needed for plain rings.
    max_iterations
        Bound on the 2-opt rounds.

    Returns
    -------
    order
        Indices into ``shapes``, a permutation; apply with :meth:`ShapeSet.take`.
    length_before, length_after
        Travel in µm in the input order and in ``order``. The input order is kept when the
        method would not shorten it, so ``length_after <= length_before``.
    """
    if method not in _METHODS:
        raise DVPError(f"method: expected one of {', '.join(_METHODS)}, got {method!r}")
    points, size = _start_points(shapes, pixel_size_um)
    start = np.asarray(start, dtype=float).reshape(-1)
    if start.shape != (2,) or not np.isfinite(start).all():
        raise DVPError(f"start: expected a finite (x, y) pixel position, got {start.tolist()}")
    if int(max_iterations) < 0:
        raise DVPError(f"max_iterations: expected a non-negative integer, got {max_iterations}")
    identity = np.arange(len(points))
    before = path_length(points, identity, start) * size
    if method == "none" or len(points) < 2:
        return identity, before, before
    if method == "nearest":
        order = _two_opt(points, _nearest_neighbour(points, start), start, max_iterations=int(max_iterations))
    else:
        order = np.argsort(_hilbert_index(points), kind="stable")
        if path_length(points, order[::-1], start) < path_length(points, order, start):
            order = order[::-1].copy()
    after = path_length(points, order, start) * size
    if after >= before:
        return identity, before, before
    return order, before, after


def control_patch(
    pool: Sequence[np.ndarray],
    avoid: Sequence[np.ndarray],
    *,
    pixel_size_um: float,
    target_area_um2: float,
    bounds: tuple[float, float, float, float],
    gap_um: float = 2.0,
    max_distance_um: float = 500.0,
) -> np.ndarray | None:
    """A negative control next to, not on, a pool: a square of tissue of the pool's area beside it.

    The LMD drops everything inside the line it cuts, so a control cannot surround the pool; it is a
    square of ``target_area_um2`` as close to the pool's centre as it fits without coming within
    ``gap_um`` of any cut shape (``avoid``: all of the sample's shapes), inside ``bounds`` (x0, y0,
    x1, y1 pixels). Candidate centres lie on circles around the pool, 12 per circle, widening by
    half the square's side, up to ``max_distance_um``. Returns the closed ring (pixels, counter-
    clockwise in a y-up frame), or ``None`` when no place is free.
    """
    if not pool:
        return None
    size = _check_number("pixel_size_um", pixel_size_um, low=0.0, open_low=True)
    gap = _check_number("gap_um", gap_um, low=0.0) / size
    side = np.sqrt(_check_number("target_area_um2", target_area_um2, low=0.0, open_low=True)) / size
    keep_out = shapely.unary_union([Polygon(r) for r in [*avoid, *pool]]).buffer(gap, quad_segs=_QUAD_SEGS)
    centre = np.asarray(shapely.unary_union([Polygon(r) for r in pool]).centroid.coords[0])
    x0, y0, x1, y1 = bounds
    for radius in np.arange(side / 2, max_distance_um / size + side, side / 2):
        for angle in np.linspace(0, 2 * np.pi, 12, endpoint=False):
            cx, cy = centre + radius * np.array([np.cos(angle), np.sin(angle)])
            square = shapely.box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
            if x0 <= cx - side / 2 and cx + side / 2 <= x1 and y0 <= cy - side / 2 and cy + side / 2 <= y1:
                if not square.intersects(keep_out):
                    return np.asarray(orient(square, sign=1.0).exterior.coords, dtype=float)
    return None
