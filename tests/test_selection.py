"""The select, plate and lmd stages: pools, shapes, calibration, plates and the Leica file."""

import argparse
import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
import tifffile
from matplotlib.path import Path as MplPath
from scipy import ndimage
from shapely.geometry import Polygon

from dvp_pipeline.cli import lmd as lmd_cli
from dvp_pipeline.cli import plate as plate_cli
from dvp_pipeline.cli import select as select_cli
from dvp_pipeline.errors import DVPError
from dvp_pipeline.leica import orientation_matrix, read_lmd_xml
from dvp_pipeline.options import SelectOptions
from dvp_pipeline.selection import (
    _signed_area,
    cell_outlines,
    preview,
    resolve_calibration,
    select_sample,
)

TYPES = ["keratinocyte", "cd8_t_cell", "macrophage"]
CALIBRATION = [[5.0, 5.0], [90.0, 5.0], [5.0, 60.0]]


def _labels():
    labels = np.zeros((60, 80), dtype=np.uint32)
    yy, xx = np.mgrid[:60, :80]
    labels[(yy - 30) ** 2 + (xx - 40) ** 2 <= 10**2] = 1  # disc in the middle
    labels[0:8, 70:80] = 2  # touches top and right edges
    labels[40:52, 5:12] = 3  # rectangle
    labels[45:47, 20:22] = 4  # tiny 2x2 cell
    labels[20:30, 60:62] = 5  # thin bar next to ...
    labels[20:30, 62:64] = 6  # ... a touching neighbour
    return labels


def _polygon_area(ring):
    return abs(_signed_area(ring))


@pytest.mark.parametrize("dilation", [0.0, 1.0, 2.5])
def test_outlines_are_closed_oriented_and_enclose_the_cell(dilation):
    labels = _labels()
    ids = [1, 2, 3, 4, 5, 6]
    outlines = cell_outlines(labels, ids, dilation_px=dilation, simplify_px=0.5)
    assert list(outlines) == ids
    height, width = labels.shape
    for cell_id, ring in outlines.items():
        assert ring.ndim == 2 and ring.shape[1] == 2
        assert np.array_equal(ring[0], ring[-1])
        assert len(np.unique(ring[:-1], axis=0)) >= 3
        assert _signed_area(ring) > 0
        assert ring[:, 0].min() >= 0 and ring[:, 0].max() <= width
        assert ring[:, 1].min() >= 0 and ring[:, 1].max() <= height
        rows, cols = np.nonzero(labels == cell_id)
        # pixel centres in the corner-origin frame lie inside the outline
        centres = np.column_stack([cols + 0.5, rows + 0.5])
        inside = MplPath(ring).contains_points(centres, radius=1e-9)
        assert inside.mean() >= (0.75 if len(rows) <= 4 else 0.95)
        assert MplPath(ring).contains_point((centres[:, 0].mean(), centres[:, 1].mean()))


@pytest.mark.parametrize("dilation", [0.0, 2.0])
def test_outline_area_matches_the_mask(dilation):
    labels = _labels()
    outlines = cell_outlines(labels, [1, 2, 3], dilation_px=dilation, simplify_px=0)
    for cell_id, ring in outlines.items():
        mask = labels == cell_id
        grown = ndimage.distance_transform_edt(~mask) <= dilation
        # traced along pixel edges; only the corners are cut, by 1/8 pixel each
        assert _polygon_area(ring) == pytest.approx(grown.sum(), rel=0.05)
        assert _polygon_area(ring) <= grown.sum()
    grown_disc = _polygon_area(outlines[1])
    assert grown_disc > (labels == 1).sum() + (60 if dilation else -5)


def test_simplification_reduces_vertices():
    labels = _labels()
    full = cell_outlines(labels, [1], dilation_px=0, simplify_px=0)[1]
    simple = cell_outlines(labels, [1], dilation_px=0, simplify_px=1.0)[1]
    assert len(simple) < len(full)
    assert _polygon_area(simple) == pytest.approx(_polygon_area(full), rel=0.1)


def test_border_cell_follows_the_image_edge():
    labels = _labels()
    ring = cell_outlines(labels, [2], dilation_px=1.0, simplify_px=0)[2]
    # the cell fills rows 0-7, cols 70-79: its outline runs along y = 0 and x = 80
    assert ring[:, 1].min() == 0
    assert ring[:, 0].max() == 80
    assert _polygon_area(ring) == pytest.approx(11 * 9, rel=0.05)


def test_outline_errors():
    labels = _labels()
    with pytest.raises(DVPError, match="no pixels"):
        cell_outlines(labels, [1, 99])
    with pytest.raises(DVPError, match="2-D integer"):
        cell_outlines(labels.astype(float), [1])
    assert cell_outlines(labels, []) == {}


# --- calibration ---------------------------------------------------------------------------


def test_calibration_sources_and_their_order(tmp_path):
    options = SelectOptions.from_mapping({}).calibration
    where = {"sample": "S1", "image_shape": (64, 96), "pixel_size_um": 0.5, "base": tmp_path}
    assert resolve_calibration("1,2; 30,2 ;1,40", options, **where).tolist() == [[1, 2], [30, 2], [1, 40]]
    points = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": xy}, "properties": {}}
            for xy in ([3, 3], [80, 3], [3, 50])
        ],
    }
    (tmp_path / "marks.geojson").write_text(json.dumps(points))
    assert resolve_calibration("marks.geojson", options, **where).tolist() == [[3, 3], [80, 3], [3, 50]]
    in_um = SelectOptions.from_mapping({"calibration": {"points": [[1, 1], [40, 1], [1, 30]], "units": "um"}})
    assert resolve_calibration(None, in_um.calibration, **where).tolist() == [[2, 2], [80, 2], [2, 60]]
    corners = SelectOptions.from_mapping({"calibration": {"image_corners": True}}).calibration
    assert resolve_calibration(None, corners, **where).tolist() == [[0, 0], [96, 0], [0, 64]]
    with pytest.raises(DVPError, match="sample S1: calibration: no calibration points. Give the samples sheet"):
        resolve_calibration(None, options, **where)
    with pytest.raises(DVPError, match="lie on one line"):
        resolve_calibration("0,0;10,10;20,20", options, **where)
    with pytest.raises(DVPError, match="is not three 'x,y' pixel pairs"):
        resolve_calibration("0,0;10,x;20,20", options, **where)
    points["features"] = points["features"][:2]
    (tmp_path / "two.geojson").write_text(json.dumps(points))
    with pytest.raises(DVPError, match="holds 2 point\\(s\\); expected the three calibration marks"):
        resolve_calibration("two.geojson", options, **where)


# --- select_sample ---------------------------------------------------------------------------


def _grid(rows=4, cols=6, spacing=15, size=8, small_every=7):
    """Square cells on a grid (every ``small_every``-th too small), types cycling, pixel size 0.5 µm."""
    labels = np.zeros((4 + rows * spacing, 6 + cols * spacing), dtype=np.uint32)
    records = []
    cell_id = 0
    for row in range(rows):
        for col in range(cols):
            cell_id += 1
            side = 3 if cell_id % small_every == 0 else size
            y0, x0 = 4 + row * spacing, 4 + col * spacing
            labels[y0 : y0 + side, x0 : x0 + side] = cell_id
            records.append((cell_id, y0 + side / 2 - 0.5, x0 + side / 2 - 0.5, side * side, TYPES[cell_id % 3]))
    cells = pd.DataFrame(records, columns=["cell_id", "centroid_y", "centroid_x", "area", "cell_type"])
    cells["area_um2"] = cells["area"] * 0.25
    cells["sample"] = "TEN01"
    return cells, labels


def test_pools_shapes_and_calibration_of_a_sample():
    cells, labels = _grid(rows=8, cols=10)
    options = SelectOptions.from_mapping(
        {"cell_types": TYPES, "pool_area_um2": 120, "pools_per_type": 2, "min_area_um2": 10.0, "exclude_border": False}
    )
    chosen = select_sample(cells, labels, options, sample="TEN01", calibration=np.array(CALIBRATION), pixel_size_um=0.5)
    pools = chosen.pools.set_index("pool_id")
    assert list(pools.index) == [f"TEN01_{t}_{r}" for t in TYPES for r in (1, 2)]
    assert pools["reached"].all() and pools["area_um2"].between(108, 132).all()
    assert set(chosen.cells["cell_id"] % 7) != {0} and (chosen.cells["area_um2"] >= 10).all()
    # every shape holds its cells' centres; shapes are valid; cutting order numbered within each pool
    by_id = cells.set_index("cell_id")
    for shape in chosen.shapes.itertuples():
        ring = np.column_stack([shape.x, shape.y])
        assert Polygon(ring).is_valid
        for cell_id in map(int, shape.cell_ids.split(",")):
            centre = (by_id.at[cell_id, "centroid_x"] + 0.5, by_id.at[cell_id, "centroid_y"] + 0.5)
            assert MplPath(ring).contains_point(centre)
    assert (chosen.shapes.groupby("pool_id")["order"].apply(lambda o: list(o) == list(range(1, len(o) + 1)))).all()
    assert chosen.summary["path_after_um"] <= chosen.summary["path_before_um"]
    assert chosen.summary["vertices_cut"] < chosen.summary["vertices_traced"]
    assert chosen.summary["calibration_px"] == CALIBRATION
    features = chosen.geojson["features"]
    marks = [f for f in features if f["properties"]["classification"]["name"] == "calibration"]
    assert [f["geometry"]["coordinates"] for f in marks] == CALIBRATION
    assert len(features) == len(chosen.shapes) + 3


def test_border_touching_and_controls():
    cells, labels = _grid(rows=6, cols=8, spacing=10, size=8)  # 2-pixel gaps: dilated shapes touch
    labels[4:12, 12:14] = labels[4, 4]  # cell 1 now touches cell 2
    options = SelectOptions.from_mapping(
        {"cell_types": TYPES, "min_area_um2": 10.0, "controls": True, "dilation_um": 0.2}
    )
    chosen = select_sample(cells, labels, options, sample="S", calibration=np.array(CALIBRATION), pixel_size_um=0.5)
    drawn = set(chosen.cells["cell_id"])
    assert not ({1, 2} <= drawn)  # touching cells are never both drawn
    controls = chosen.pools[chosen.pools["kind"] == "control"]
    assert len(controls) == 3 and controls["pool_id"].str.endswith("_control").all()
    cell_polygons = [Polygon(np.column_stack([s.x, s.y])) for s in chosen.shapes.itertuples() if s.cell_ids]
    for control in chosen.shapes[chosen.shapes["pool_id"].isin(controls["pool_id"])].itertuples():
        square = Polygon(np.column_stack([control.x, control.y]))
        assert not any(square.intersects(p) for p in cell_polygons)
    with pytest.raises(DVPError, match="no cell can be cut"):
        select_sample(cells, labels, SelectOptions.from_mapping({"cell_types": TYPES, "min_area_um2": 1e6}),
                      sample="S", calibration=np.array(CALIBRATION), pixel_size_um=0.5)  # fmt: skip


@pytest.mark.parametrize("shape", [(60, 80), (60, 80, 3), (4, 60, 80)])
def test_preview_draws_pools_calibration_and_stage_axes(shape):
    cells, labels = _grid(rows=3, cols=4)
    options = SelectOptions.from_mapping({"cell_types": TYPES, "min_area_um2": 10.0, "exclude_border": False})
    chosen = select_sample(cells, labels, options, sample="S", calibration=np.array(CALIBRATION), pixel_size_um=0.5)
    image = np.random.default_rng(0).uniform(0, 1000, size=shape).astype(np.uint16)
    fig = preview(
        image,
        chosen.shapes,
        chosen.pools,
        calibration=np.array(CALIBRATION),
        orientation=orientation_matrix(),
        title="S",
    )
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[:3] == [f"{t}: 1 pool(s), {int(n)} cells" for t, n in zip(TYPES, chosen.pools["n_cells"], strict=True)]
    assert {"1", "2", "3", "stage x", "stage y"} <= {t.get_text() for t in ax.texts}
    assert ax.get_title() == "S"


# --- dvp select -> dvp plate -> dvp lmd, end to end -------------------------------------------


def _parse(module, argv):
    parser = argparse.ArgumentParser(prog="dvp")
    module.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture
def sample_files(tmp_path):
    cells, labels = _grid()
    cells_path = tmp_path / "cells_classified.parquet"
    cells.to_parquet(cells_path)
    labels_path = tmp_path / "labels.tif"
    tifffile.imwrite(labels_path, labels, compression="zlib")
    image = np.random.default_rng(0).integers(0, 4000, size=(4, *labels.shape), dtype=np.uint16)
    image_path = tmp_path / "image.ome.tif"
    metadata = {"axes": "CYX", "Channel": {"Name": ["DAPI", "KRT14", "CD8", "CD163"]},
                "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}  # fmt: skip
    tifffile.imwrite(image_path, image, ome=True, photometric="minisblack", metadata=metadata)
    return tmp_path, cells_path, labels_path, image_path, labels


def _select(tmp_path, cells_path, labels_path, options, *extra, sample="TEN01"):
    out = tmp_path / sample
    files = {"pools": "pools.tsv", "selection": "selection.tsv", "shapes": "shapes.parquet"}
    files |= {"geojson": "shapes.geojson", "summary": "summary.json", "preview": "preview.png"}
    outputs = [x for name, file in files.items() for x in (f"--{name}", str(out / file))]
    argv = ["select", str(cells_path), str(labels_path), "--sample", sample, "--options", json.dumps(options)]
    args = _parse(select_cli, [*argv, *extra, *outputs])
    args.func(args)
    return out


def _plate(tmp_path, outs, options, *extra):
    cohort = tmp_path / "cohort"
    files = {"plate-map": "plate_map.csv", "sample-key": "sample_key.tsv", "queue": "queue.csv"}
    files |= {"runs-out": "runs.tsv", "figure": "plates.png"}
    argv = ["plate", "--pools", *(str(o / "pools.tsv") for o in outs)]
    argv += ["--selection", *(str(o / "selection.tsv") for o in outs), "--options", json.dumps(options)]
    argv += [x for name, file in files.items() for x in (f"--{name}", str(cohort / file))]
    args = _parse(plate_cli, [*argv, *extra])
    args.func(args)
    return cohort


def test_select_plate_and_lmd_end_to_end(sample_files):
    tmp_path, cells_path, labels_path, image_path, labels = sample_files
    options = {"cell_types": TYPES, "min_area_um2": 10.0, "exclude_border": False, "pools_per_type": 2,
               "max_cells_per_pool": 3, "plate": {"format": 96, "blank_fraction": 0.2},
               "orientation": {"rotate": 90}}  # fmt: skip
    out = _select(tmp_path, cells_path, labels_path, options, "--image", str(image_path), "--pixel-size", "0.5",
                  "--calibration", "5,5;90,5;5,60")  # fmt: skip
    pools = pd.read_csv(out / "pools.tsv", sep="\t")
    assert list(pools.columns) == [
        "pool_id", "sample", "cell_type", "replicate", "kind", "n_cells", "area_um2", "target_um2", "reached"
    ]  # fmt: skip
    assert (pools["n_cells"] == 3).all() and len(pools) == 6
    selection = pd.read_csv(out / "selection.tsv", sep="\t")
    assert not (selection["cell_id"] % 7 == 0).any() and set(selection["pool_id"]) == set(pools["pool_id"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["calibration_px"] == CALIBRATION
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    cohort = _plate(tmp_path, [out], options)
    plate_map = pd.read_csv(cohort / "plate_map.csv")
    assert (plate_map["kind"] == "blank").sum() == 2 and (plate_map["kind"] == "pool").sum() == 6
    key = pd.read_csv(cohort / "sample_key.tsv", sep="\t")
    generated = pd.read_csv(cohort / "runs.tsv", sep="\t")
    assert len(generated) == 6 and generated["run"].str.match(r"^plate1_[A-H]\d+_TEN01_").all()
    queue = (cohort / "queue.csv").read_text().splitlines()
    assert queue[0] == "Bracket Type=4," and sum(line.startswith("Unknown,") for line in queue) == 6

    xml = tmp_path / "TEN01.xml"
    args = _parse(lmd_cli, ["lmd", "--sample", "TEN01", "--shapes", str(out / "shapes.parquet"), "--summary",
                            str(out / "summary.json"), "--plate-map", str(cohort / "plate_map.csv"),
                            "--xml", str(xml), "--options", json.dumps(options)])  # fmt: skip
    args.func(args)
    rotated = orientation_matrix(rotate=90)
    collection = read_lmd_xml(xml, orientation=rotated)
    np.testing.assert_allclose(collection.calibration_points, CALIBRATION)
    wells = dict(zip(key["pool_id"], key["well"], strict=False))
    shapes = pd.read_parquet(out / "shapes.parquet")
    expected = [
        wells[p]
        for p in plate_map.loc[plate_map["kind"] == "pool", "pool_id"]
        for _ in range((shapes["pool_id"] == p).sum())
    ]
    assert [s.well for s in collection.shapes] == expected
    # the first calibration point (5, 5) in the rotated stage frame: x' = y, y' = x (times 100)
    root = ET.parse(xml).getroot()
    assert (root.findtext("X_CalibrationPoint_1"), root.findtext("Y_CalibrationPoint_1")) == ("500", "500")
    lib = pytest.importorskip("lmd.lib")
    theirs = lib.Collection()
    theirs.load(str(xml))
    assert len(theirs.shapes) == len(collection.shapes) and [s.well for s in theirs.shapes] == expected


def test_plate_refuses_an_unreachable_target_and_a_runs_sheet_with_a_wrong_well(sample_files):
    tmp_path, cells_path, labels_path, _image, _labels = sample_files
    options = {"cell_types": TYPES, "min_area_um2": 10.0, "exclude_border": False, "pool_area_um2": 1e5,
               "calibration": {"image_corners": True}}  # fmt: skip
    out = _select(tmp_path, cells_path, labels_path, options)
    with pytest.raises(DVPError, match="select.pool_area_um2: no sample reaches 100000 µm² of keratinocyte cells"):
        _plate(tmp_path, [out], options)

    options.pop("pool_area_um2")
    out = _select(tmp_path, cells_path, labels_path, options)
    cohort = _plate(tmp_path, [out], options)
    plate_map = pd.read_csv(cohort / "plate_map.csv")
    first, second = plate_map.iloc[0], plate_map.iloc[1]
    runs = tmp_path / "runs.tsv"
    runs.write_text(f"run\tsample\tcell_type\twell\nr1\tTEN01\t{first['cell_type']}\t{second['well']}\n")
    with pytest.raises(DVPError, match=rf"runs.tsv.*row 2.*r1.*{second['well']}"):
        _plate(tmp_path, [out], options, "--runs", str(runs))


def test_select_cli_rejects_bad_input_without_writing(sample_files):
    tmp_path, cells_path, labels_path, _image, _labels = sample_files
    with pytest.raises(DVPError, match="no calibration points"):
        _select(tmp_path, cells_path, labels_path, {"cell_types": TYPES})
    with pytest.raises(DVPError, match="other samples"):
        _select(tmp_path, cells_path, labels_path, {"calibration": {"image_corners": True}}, sample="MPR01")
    assert not (tmp_path / "TEN01").exists() and not (tmp_path / "MPR01").exists()
