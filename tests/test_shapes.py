"""Tests for laser cutting shapes (margins, merging, capped simplification) and the cutting order."""

import time

import numpy as np
import pytest
from shapely.geometry import LineString, Point, Polygon

from dvp_pipeline.errors import DVPError
from dvp_pipeline.selection import _signed_area, cell_outlines
from dvp_pipeline.shapes import ShapeSet, _nearest_neighbour, cut_shapes, cutting_order, path_length

PX = 0.5  # µm per pixel


def _disc(shape, centre, radius):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


@pytest.fixture(scope="module")
def labels():
    """Two touching squares (1, 2), a separate disc (3), a ring-shaped cell (4), two tiny cells (5, 6)."""
    image = np.zeros((160, 160), dtype=np.int32)
    image[10:30, 10:30] = 1
    image[10:30, 30:50] = 2
    image[_disc(image.shape, (80, 80), 12)] = 3
    image[_disc(image.shape, (30, 120), 14) & ~_disc(image.shape, (30, 120), 6)] = 4
    image[140:142, 20:22] = 5
    image[140:142, 140:142] = 6
    return image


@pytest.fixture(scope="module")
def shapes(labels):
    return cut_shapes(labels, pixel_size_um=PX)


def _ring_ok(ring):
    assert ring.ndim == 2 and ring.shape[1] == 2 and np.isfinite(ring).all()
    assert np.array_equal(ring[0], ring[-1])
    assert _signed_area(ring) > 0  # counter-clockwise in a y-up frame, like cell_outlines
    assert Polygon(ring).is_valid


def test_shapes_valid_merged_and_tiny_dropped(shapes):
    for ring in shapes.rings:
        _ring_ok(ring)
    assert shapes.cell_ids == ((1, 2), (3,), (4,))
    assert shapes.dropped == 2 and shapes.dropped_cell_ids == (5, 6)
    assert shapes.merged_shapes == 1 and shapes.merged_cells == 2
    assert (shapes.area_um2 >= 10.0).all()
    summary = shapes.summary()
    assert summary["shapes"] == 3 and summary["cells"] == 6 and summary["dropped"] == 2
    assert summary["vertices_after"] < summary["input_vertices"] / 3
    assert summary["area_change_max"] <= 0.10
    # The ring-shaped cell is cut around its outside: its hole is not a separate cut.
    assert Polygon(shapes.rings[2]).contains(Point(120, 30))
    table = shapes.table()
    assert table["cell_ids"].tolist() == ["1,2", "3", "4"]


def test_without_merge_touching_cells_stay_separate(labels):
    separate = cut_shapes(labels, pixel_size_um=PX, cell_ids=[1, 2], merge=False)
    assert separate.cell_ids == ((1,), (2,))
    # both carry the margin, so they overlap along the shared edge
    assert Polygon(separate.rings[0]).intersection(Polygon(separate.rings[1])).area > 0


def test_area_change_within_cap_on_simulated_cells():
    from dvp_pipeline.simulate import simulate_tissue

    tissue = simulate_tissue("TEN", seed=2, size=192)
    ids = tissue.cells.loc[tissue.cells["cell_type"] == "cd8_t_cell", "cell_id"].tolist()
    assert len(ids) >= 20
    traced = cell_outlines(tissue.labels, ids, dilation_px=0, simplify_px=0)
    dilation_px = 0.5 / PX
    for cap in (0.02, 0.10):
        shapes = cut_shapes(traced, pixel_size_um=PX, max_area_change=cap, merge=False, min_area_um2=0)
        assert [ids[0] for ids in shapes.cell_ids] == ids
        for (cell,), ring, change in zip(shapes.cell_ids, shapes.rings, shapes.area_change, strict=True):
            _ring_ok(ring)
            # independent reference: the exact outline grown by the margin (its arcs drawn with more
            # segments than shapes.py uses, hence the small slack)
            exact = Polygon(traced[cell]).buffer(dilation_px, join_style="round").area
            assert abs(Polygon(ring).area / exact - 1) <= cap + 1e-3
            assert Polygon(ring).area / exact - 1 == pytest.approx(change, abs=1e-3)
        assert np.abs(shapes.area_change).max() <= cap
    # Measured: 29 T cells, 2064 traced vertices -> 298 (cap 0.02) and 185 (cap 0.10, mean area
    # change 7%), tolerance <= 1 µm.
    assert shapes.vertices_after.sum() < shapes.input_vertices / 8


def test_merged_pool_of_touching_cells_is_one_valid_shape():
    from dvp_pipeline.simulate import simulate_tissue

    tissue = simulate_tissue("TEN", seed=2, size=192)
    ids = tissue.cells.loc[tissue.cells["cell_type"] == "keratinocyte", "cell_id"].tolist()
    shapes = cut_shapes(tissue.labels, pixel_size_um=PX, cell_ids=ids)
    assert sorted(i for group in shapes.cell_ids for i in group) + list(shapes.dropped_cell_ids) == sorted(ids)
    for ring in shapes.rings:
        _ring_ok(ring)
    polygons = [Polygon(r) for r in shapes.rings]
    for a in range(len(polygons)):
        for b in range(a + 1, len(polygons)):
            assert polygons[a].intersection(polygons[b]).area < 1e-6
    assert np.abs(shapes.area_change).max() <= 0.10


def test_dilation_grows_area_by_perimeter_times_margin(labels):
    ring = cell_outlines(labels, [3], dilation_px=0, simplify_px=0)[3]
    exact = Polygon(ring)
    margin_um = 1.0
    shapes = cut_shapes({3: ring}, pixel_size_um=PX, dilation_um=margin_um, max_area_change=0.002)
    d = margin_um / PX
    expected = exact.area + exact.length * d + np.pi * d**2  # Steiner formula (convex outline)
    assert shapes.area_um2[0] / PX**2 == pytest.approx(expected, rel=0.01)
    assert shapes.area_um2[0] / PX**2 > exact.area + 0.9 * exact.length * d


def test_erosion_removes_thin_protrusions_and_small_cells():
    square = Polygon([(0, 0), (30, 0), (30, 30), (0, 30)])
    tail = Polygon([(30, 14), (60, 14), (60, 16), (30, 16)])  # 2 px wide
    sliver_cell = Polygon([(100, 0), (140, 0), (140, 2), (100, 2)])
    outlines = {1: square.union(tail), 2: sliver_cell}
    shapes = cut_shapes(outlines, pixel_size_um=PX, erosion_um=1.0, dilation_um=1.0, max_area_change=0.01)
    assert shapes.cell_ids == ((1,),)
    assert shapes.dropped == 1 and shapes.dropped_cell_ids == (2,)
    assert Polygon(shapes.rings[0]).bounds[2] < 33  # the tail is gone


def test_holes_are_filled_and_enclosed_shapes_absorbed():
    # four cells around a gap, a fifth inside the gap, and one cell with a hole of its own
    frame = {
        1: Polygon([(0, 0), (60, 0), (60, 10), (0, 10)]),
        2: Polygon([(0, 50), (60, 50), (60, 60), (0, 60)]),
        3: Polygon([(0, 10), (10, 10), (10, 50), (0, 50)]),
        4: Polygon([(50, 10), (60, 10), (60, 50), (50, 50)]),
        5: Polygon([(25, 25), (35, 25), (35, 35), (25, 35)]),
        6: Polygon([(100, 0), (140, 0), (140, 40), (100, 40)], [[(110, 10), (130, 10), (130, 30), (110, 30)]]),
    }
    shapes = cut_shapes(frame, pixel_size_um=PX, dilation_um=0.0)
    assert shapes.cell_ids == ((1, 2, 3, 4, 5), (6,))
    for ring in shapes.rings:
        _ring_ok(ring)
    assert Polygon(shapes.rings[0]).area == pytest.approx(3600, rel=0.001)
    assert Polygon(shapes.rings[1]).area == pytest.approx(1600, rel=0.001)
    # the gap of the frame minus cell 5, and the hole of cell 6
    assert shapes.filled_hole_area_um2 == pytest.approx((1600 - 100 + 400) * PX**2, rel=0.001)


def test_simplified_shapes_do_not_overlap_when_merged():
    # cell 2 sits in a slot of cell 1; closing the slot (+4% area) is within the cap
    slotted = Polygon([(0, 0), (100, 0), (100, 45), (60, 45), (60, 55), (100, 55), (100, 100), (0, 100)])
    inner = Polygon([(70, 47), (90, 47), (90, 53), (70, 53)])
    options = dict(pixel_size_um=PX, dilation_um=0, max_tolerance_um=None, min_area_um2=0, max_area_change=0.05)
    apart = cut_shapes({1: slotted, 2: inner}, merge=False, **options)
    assert Polygon(apart.rings[0]).intersection(Polygon(apart.rings[1])).area > 0
    merged = cut_shapes({1: slotted, 2: inner}, **options)
    assert merged.cell_ids == ((1,), (2,))
    assert Polygon(merged.rings[0]).intersection(Polygon(merged.rings[1])).area == 0
    assert Polygon(merged.rings[0]).equals(slotted) and merged.area_change[0] == 0


def test_all_cells_eroded_away_gives_an_empty_set():
    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]], dtype=float)
    shapes = cut_shapes({1: square, 2: square + 10}, pixel_size_um=PX, erosion_um=2.0)
    assert len(shapes) == 0 and shapes.dropped == 2 and shapes.dropped_cell_ids == (1, 2)
    assert shapes.summary()["area_change_max"] == 0.0
    assert cutting_order(shapes)[0].tolist() == []


def test_max_tolerance_bounds_simplification_of_large_shapes():
    rng = np.random.default_rng(0)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 400))
    radius = 100 + rng.normal(0, 0.3, 400)
    ring = np.c_[200 + radius * np.cos(angles), 200 + radius * np.sin(angles)]
    loose = cut_shapes({1: ring}, pixel_size_um=PX, dilation_um=0, max_tolerance_um=None)
    tight = cut_shapes({1: ring}, pixel_size_um=PX, dilation_um=0, max_tolerance_um=0.5)
    assert loose.vertices_after[0] < tight.vertices_after[0]
    exact = Polygon(ring)
    assert Polygon(tight.rings[0]).hausdorff_distance(exact) <= 1.0 + 1e-6  # 0.5 µm = 1 px


def test_bad_inputs(labels):
    ring = np.array([[0, 0], [10, 0], [10, 10], [0, 0]], dtype=float)
    with pytest.raises(DVPError, match="dilation_um"):
        cut_shapes({1: ring}, pixel_size_um=PX, dilation_um=-0.5)
    with pytest.raises(DVPError, match="erosion_um"):
        cut_shapes({1: ring}, pixel_size_um=PX, erosion_um=-1)
    for cap in (0, 1, -0.1, 1.5, float("nan")):
        with pytest.raises(DVPError, match="max_area_change"):
            cut_shapes({1: ring}, pixel_size_um=PX, max_area_change=cap)
    with pytest.raises(DVPError, match="pixel_size_um"):
        cut_shapes({1: ring}, pixel_size_um=0)
    with pytest.raises(DVPError, match="no cells"):
        cut_shapes({}, pixel_size_um=PX)
    with pytest.raises(DVPError, match="no cells"):
        cut_shapes(labels, pixel_size_um=PX, cell_ids=[])
    with pytest.raises(DVPError, match="cell 7"):
        cut_shapes({7: np.zeros((4, 3))}, pixel_size_um=PX)
    with pytest.raises(DVPError, match="3 distinct"):
        cut_shapes({7: np.zeros((4, 2))}, pixel_size_um=PX)
    with pytest.raises(DVPError, match="no pixels"):
        cut_shapes(labels, pixel_size_um=PX, cell_ids=[99])
    with pytest.raises(DVPError, match="label image"):
        cut_shapes(np.zeros((5, 5)), pixel_size_um=PX)
    with pytest.raises(DVPError, match="method"):
        cutting_order([ring], method="tsp", pixel_size_um=PX)
    with pytest.raises(DVPError, match="pixel_size_um"):
        cutting_order([ring])


# --- cutting order ---------------------------------------------------------------------------------


def _squares(points):
    return [np.array([p, p + [4, 0], p + [4, 4], p + [0, 4], p], dtype=float) for p in np.asarray(points, float)]


def _is_permutation(order, n):
    return sorted(np.asarray(order).tolist()) == list(range(n))


def test_cutting_order_on_shuffled_grid():
    rng = np.random.default_rng(3)
    grid = np.array([(x, y) for y in range(10) for x in range(20)], dtype=float) * 40 + 10
    points = grid[rng.permutation(len(grid))]
    rings = _squares(points)
    for method in ("nearest", "hilbert", "none"):
        order, before, after = cutting_order(rings, method=method, pixel_size_um=PX)
        assert _is_permutation(order, 200)
        assert after <= before
        assert after == pytest.approx(path_length(points, order) * PX)
    order, before, after = cutting_order(rings, pixel_size_um=PX)
    # Measured: 31.0 mm shuffled -> 4.16 mm with nearest + 2-opt (7.4x shorter), 4.53 mm along the
    # Hilbert curve; the best open path is 199 steps of 20 µm plus 7 µm from the start, 3.99 mm.
    assert after < before / 5
    assert after < 1.1 * (199 * 40 + np.hypot(10, 10)) * PX
    hilbert = cutting_order(rings, method="hilbert", pixel_size_um=PX)[2]
    assert after < before / 5 and hilbert < before / 5


def test_cutting_order_keeps_a_good_input_order():
    points = np.c_[np.arange(50) * 10.0 + 5, np.full(50, 5.0)]  # a row, visited left to right
    for method in ("nearest", "hilbert"):
        order, before, after = cutting_order(_squares(points), method=method, pixel_size_um=1.0)
        assert after <= before
        assert after == pytest.approx(before)


def test_hilbert_order_visits_neighbouring_grid_cells():
    rng = np.random.default_rng(4)
    spacing = 20.0
    grid = np.array([(x, y) for y in range(16) for x in range(16)], dtype=float) * spacing + 10
    points = grid[rng.permutation(len(grid))]
    shapes = ShapeSet(
        rings=tuple(_squares(points)),
        cell_ids=tuple((i + 1,) for i in range(len(points))),
        pixel_size_um=PX,
        area_um2=np.full(len(points), 4.0),
        area_change=np.zeros(len(points)),
        vertices_before=np.full(len(points), 4),
        vertices_after=np.full(len(points), 4),
        input_vertices=4 * len(points),
        n_cells=len(points),
        dropped_cell_ids=(),
        dropped=0,
        filled_hole_area_um2=0.0,
    )
    order, before, after = cutting_order(shapes, method="hilbert")
    # A 16 x 16 grid along the Hilbert curve: every step goes to an adjacent cell, from the corner at the start.
    steps = np.hypot(*np.diff(points[order], axis=0).T)
    np.testing.assert_allclose(steps, spacing)
    assert after == pytest.approx((255 * spacing + np.hypot(10, 10)) * PX)
    reordered = shapes.take(order)
    assert reordered.cell_ids[0] == shapes.cell_ids[order[0]]
    np.testing.assert_array_equal(reordered.rings[1], shapes.rings[order[1]])


def test_two_opt_removes_crossing_of_nearest_neighbour_path():
    # A known layout where greedy nearest neighbour from (0, 0) crosses its own path:
    # (6,3) -> (9,3) -> (9,1) -> (8,6) crosses the first step.
    points = np.array([[6, 3], [9, 1], [8, 6], [3, 7], [4, 8], [9, 3]], dtype=float)
    start = np.zeros(2)
    greedy = _nearest_neighbour(points, start)
    assert not LineString(np.vstack([start, points[greedy]])).is_simple
    order, before, after = cutting_order(_squares(points), pixel_size_um=1.0)
    assert _is_permutation(order, 6)
    assert LineString(np.vstack([start, points[order]])).is_simple
    assert after < path_length(points, greedy) - 1.0


def test_cutting_order_is_fast_for_thousands_of_shapes():
    rng = np.random.default_rng(5)
    points = rng.uniform(0, 20000, (2000, 2))
    rings = _squares(points)
    begin = time.perf_counter()
    order, before, after = cutting_order(rings, pixel_size_um=PX)
    elapsed = time.perf_counter() - begin
    assert _is_permutation(order, 2000)
    # 2-opt shortens the greedy path (measured about 13% on uniform random points)
    assert after < 0.95 * path_length(points, _nearest_neighbour(points, np.zeros(2))) * PX
    assert elapsed < 5.0  # about 0.3 s on one core


def test_cutting_order_small_inputs():
    assert cutting_order([], pixel_size_um=1.0)[0].tolist() == []
    order, before, after = cutting_order(_squares([[3, 4]]), pixel_size_um=2.0)
    assert order.tolist() == [0] and before == after == pytest.approx(10.0)
