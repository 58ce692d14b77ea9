"""Tests for cell selection, outlines, GeoJSON and preview, and the ``dvp select`` command."""

import argparse
import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
import tifffile
from matplotlib.path import Path as MplPath
from scipy import ndimage

from dvp_pipeline.cli import select as select_cli
from dvp_pipeline.errors import DVPError
from dvp_pipeline.leica import read_lmd_xml
from dvp_pipeline.selection import (
    _signed_area,
    cell_outlines,
    default_wells,
    preview,
    select_cells,
    to_geojson,
    type_colors,
)

TYPES = ["keratinocyte", "cd8_t_cell", "macrophage"]


@pytest.fixture
def cells():
    rng = np.random.default_rng(1)
    n = 200
    return pd.DataFrame(
        {
            "cell_id": np.arange(1, n + 1),
            "cell_type": rng.choice(TYPES + ["unassigned"], size=n),
            "area_um2": rng.uniform(5, 80, size=n),
            "centroid_x": rng.uniform(0, 100, size=n),
            "centroid_y": rng.uniform(0, 100, size=n),
            "confidence": rng.uniform(0, 1, size=n),
        }
    )


def test_select_respects_max_min_area_and_wells(cells):
    chosen = select_cells(cells, cell_types=TYPES, max_cells_per_type=10, min_area_um2=20.0)
    assert (chosen["area_um2"] >= 20.0).all()
    counts = chosen["cell_type"].value_counts()
    assert set(counts.index) == set(TYPES)
    assert (counts == 10).all()
    assert dict(zip(chosen["cell_type"], chosen["well"], strict=True)) == {
        "keratinocyte": "A1",
        "cd8_t_cell": "B1",
        "macrophage": "C1",
    }
    assert list(dict.fromkeys(chosen["cell_type"])) == TYPES
    assert chosen["cell_id"].is_unique
    assert set(chosen.columns) == set(cells.columns) | {"well"}


def test_select_takes_all_when_few(cells):
    chosen = select_cells(cells, cell_types=TYPES, max_cells_per_type=1000, min_area_um2=20.0)
    eligible = cells[(cells["area_um2"] >= 20.0) & cells["cell_type"].isin(TYPES)]
    assert sorted(chosen["cell_id"]) == sorted(eligible["cell_id"])


def test_select_is_reproducible_and_independent_of_row_order(cells):
    first = select_cells(cells, cell_types=TYPES, max_cells_per_type=8, seed=3)
    again = select_cells(cells, cell_types=TYPES, max_cells_per_type=8, seed=3)
    shuffled = select_cells(cells.sample(frac=1, random_state=7), cell_types=TYPES, max_cells_per_type=8, seed=3)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, shuffled)
    other_seed = select_cells(cells, cell_types=TYPES, max_cells_per_type=8, seed=4)
    assert set(first["cell_id"]) != set(other_seed["cell_id"])
    # a type's pick does not depend on which other types are requested
    alone = select_cells(cells, cell_types=["macrophage"], max_cells_per_type=8, seed=3)
    assert list(alone["cell_id"]) == list(first.loc[first["cell_type"] == "macrophage", "cell_id"])


def test_select_custom_wells_and_errors(cells):
    chosen = select_cells(cells, cell_types=TYPES, wells={"macrophage": "H12"})
    assert set(chosen.loc[chosen["cell_type"] == "macrophage", "well"]) == {"H12"}
    assert set(chosen.loc[chosen["cell_type"] == "keratinocyte", "well"]) == {"A1"}
    with pytest.raises(DVPError, match="well"):
        select_cells(cells, cell_types=TYPES, wells={"macrophage": "Z1"})
    with pytest.raises(DVPError, match="area_um2"):
        select_cells(cells.drop(columns="area_um2"), cell_types=TYPES)
    with pytest.raises(DVPError, match="unique"):
        select_cells(pd.concat([cells, cells.head(1)]), cell_types=TYPES)
    with pytest.raises(DVPError, match="cell_types"):
        select_cells(cells, cell_types=[])


def test_default_wells_run_down_plate_columns():
    wells = default_wells([f"t{i}" for i in range(10)])
    assert list(wells.values()) == ["A1", "B1", "C1", "D1", "E1", "F1", "G1", "H1", "A2", "B2"]


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


def test_geojson_structure():
    labels = _labels()
    selection = pd.DataFrame({"cell_id": [1, 3], "cell_type": ["keratinocyte", "macrophage"], "well": ["A1", "C1"]})
    outlines = cell_outlines(labels, [1, 3])
    geojson = json.loads(json.dumps(to_geojson(outlines, selection, colors=type_colors(TYPES))))
    assert geojson["type"] == "FeatureCollection"
    assert len(geojson["features"]) == 2
    ids = set()
    for feature, (_, row) in zip(geojson["features"], selection.iterrows(), strict=True):
        assert feature["type"] == "Feature"
        ids.add(feature["id"])
        geometry = feature["geometry"]
        assert geometry["type"] == "Polygon"
        ring = geometry["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) >= 4
        assert all(len(point) == 2 for point in ring)
        props = feature["properties"]
        assert props["objectType"] == "annotation"
        assert props["classification"]["name"] == row["cell_type"]
        assert len(props["classification"]["color"]) == 3
        assert props["cell_id"] == row["cell_id"] and props["well"] == row["well"]
    assert len(ids) == 2
    assert geojson["features"][1]["properties"]["classification"]["color"] == list(type_colors(TYPES)["macrophage"])
    with pytest.raises(DVPError, match="no outline"):
        to_geojson({1: outlines[1]}, selection)


@pytest.mark.parametrize("shape", [(60, 80), (60, 80, 3), (4, 60, 80)])
def test_preview_draws_each_type(shape):
    labels = _labels()
    selection = pd.DataFrame(
        {
            "cell_id": [1, 2, 3],
            "cell_type": ["keratinocyte", "macrophage", "macrophage"],
            "well": ["A1", "C1", "C1"],
        }
    )
    outlines = cell_outlines(labels, [1, 2, 3])
    image = np.random.default_rng(0).uniform(0, 1000, size=shape).astype(np.uint16)
    fig = preview(image, outlines, selection, title="TEN01")
    ax = fig.axes[0]
    assert len(ax.collections) == 2
    labels_text = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels_text == ["keratinocyte: 1 cells, well A1", "macrophage: 2 cells, well C1"]
    assert ax.get_title() == "TEN01"


# --- dvp select, end to end ------------------------------------------------------------


def _parse(argv):
    parser = argparse.ArgumentParser(prog="dvp")
    subparsers = parser.add_subparsers(dest="command")
    select_cli.add_parser(subparsers)
    return parser.parse_args(argv)


@pytest.fixture
def sample_files(tmp_path):
    labels = np.zeros((64, 96), dtype=np.uint32)
    types, areas = {}, {}
    cell_id = 0
    for row in range(4):
        for col in range(6):
            cell_id += 1
            size = 3 if cell_id % 7 == 0 else 8  # every 7th cell is too small
            y0, x0 = 4 + row * 15, 4 + col * 15
            labels[y0 : y0 + size, x0 : x0 + size] = cell_id
            types[cell_id] = TYPES[cell_id % 3]
            areas[cell_id] = size * size
    ids = sorted(types)
    cells = pd.DataFrame(
        {
            "cell_id": ids,
            "sample": "TEN01",
            "centroid_y": [np.nonzero(labels == i)[0].mean() for i in ids],
            "centroid_x": [np.nonzero(labels == i)[1].mean() for i in ids],
            "area": [areas[i] for i in ids],
            "area_um2": [areas[i] * 0.25 for i in ids],
            "cell_type": [types[i] for i in ids],
            "confidence": 0.9,
        }
    )
    cells_path = tmp_path / "cells_classified.parquet"
    cells.to_parquet(cells_path)
    labels_path = tmp_path / "labels.tif"
    tifffile.imwrite(labels_path, labels, compression="zlib")
    image = np.random.default_rng(0).integers(0, 4000, size=(4, 64, 96), dtype=np.uint16)
    image_path = tmp_path / "image.ome.tif"
    metadata = {"axes": "CYX", "Channel": {"Name": ["DAPI", "KRT14", "CD8", "CD163"]},
                "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}  # fmt: skip
    tifffile.imwrite(image_path, image, ome=True, photometric="minisblack", metadata=metadata)
    return tmp_path, cells_path, labels_path, image_path, labels


def _outputs(out):
    return [
        "--xml", str(out / "lmd" / "TEN01.xml"),
        "--geojson", str(out / "lmd" / "shapes.geojson"),
        "--selection", str(out / "lmd" / "selection.tsv"),
        "--preview", str(out / "lmd" / "preview.png"),
    ]  # fmt: skip


def test_cli_end_to_end(sample_files):
    tmp_path, cells_path, labels_path, image_path, labels = sample_files
    options = {
        "cell_types": TYPES,
        "max_cells_per_type": 5,
        "min_area_um2": 10.0,
        "wells": {"macrophage": "D4"},
    }
    args = _parse(
        ["select", str(cells_path), str(labels_path), "--sample", "TEN01", "--image", str(image_path),
         "--pixel-size", "0.5", "--options", json.dumps(options), *_outputs(tmp_path)]
    )  # fmt: skip
    args.func(args)
    lmd = tmp_path / "lmd"

    table = pd.read_csv(lmd / "selection.tsv", sep="\t")
    assert list(table.columns[:7]) == [
        "cell_id", "cell_type", "well", "area_um2", "n_points", "centroid_x", "centroid_y"
    ]  # fmt: skip
    assert (table["area_um2"] >= 10.0).all()
    assert table.groupby("cell_type").size().max() <= 5
    assert set(table.loc[table["cell_type"] == "macrophage", "well"]) == {"D4"}
    assert set(table.loc[table["cell_type"] == "keratinocyte", "well"]) == {"A1"}
    assert not (table["cell_id"] % 7 == 0).any()

    collection = read_lmd_xml(lmd / "TEN01.xml")
    assert len(collection.shapes) == len(table)
    assert [s.well for s in collection.shapes] == list(table["well"])
    assert [len(s.points) for s in collection.shapes] == list(table["n_points"])
    # default calibration: image corners top-left, top-right, bottom-left
    assert np.allclose(collection.calibration_points, [[0, 0], [96, 0], [0, 64]])
    root = ET.parse(lmd / "TEN01.xml").getroot()
    assert root.findtext("Y_CalibrationPoint_3") == "-6400"
    for shape, cell_id in zip(collection.shapes, table["cell_id"], strict=True):
        rows, cols = np.nonzero(labels == cell_id)
        assert MplPath(shape.points).contains_point((cols.mean() + 0.5, rows.mean() + 0.5))

    geojson = json.loads((lmd / "shapes.geojson").read_text())
    assert [f["properties"]["cell_id"] for f in geojson["features"]] == list(table["cell_id"])
    assert (lmd / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in lmd.iterdir()) == [
        "TEN01.xml",
        "preview.png",
        "selection.tsv",
        "shapes.geojson",
    ]


def test_cli_without_image_derives_pixel_size_and_uses_calibration(sample_files):
    tmp_path, cells_path, labels_path, _image, _labels = sample_files
    options = {
        "calibration_points": [[10, 10], [90, 10], [10, 60]],
        "dilation_um": 1.0,
        "simplify_um": 0.0,
        "min_area_um2": 10.0,
    }
    args = _parse(
        ["select", str(cells_path), str(labels_path), "--sample", "TEN01",
         "--options", json.dumps(options), *_outputs(tmp_path)]
    )  # fmt: skip
    select_cli.run(args)
    collection = read_lmd_xml(tmp_path / "lmd" / "TEN01.xml")
    assert np.allclose(collection.calibration_points, options["calibration_points"])
    table = pd.read_csv(tmp_path / "lmd" / "selection.tsv", sep="\t")
    # cell_types null: the table's types except 'unassigned', sorted, get A1, B1, C1
    wells = dict(zip(table["cell_type"], table["well"], strict=True))
    assert wells == {"cd8_t_cell": "A1", "keratinocyte": "B1", "macrophage": "C1"}
    # pixel size 0.5 um comes from area_um2 / area, so 1 um of dilation is 2 pixels
    square = np.zeros((20, 20), dtype=bool)
    square[6:14, 6:14] = True
    expected = _polygon_area(cell_outlines(square.astype(np.uint8), [1], dilation_px=2.0, simplify_px=0)[1])
    areas = [_polygon_area(shape.points) for shape in collection.shapes]
    assert np.allclose(areas, expected)
    assert expected > 64 + 4 * 8 * 2 - 1
    assert len(table) == len(collection.shapes) > 0


def test_cli_rejects_bad_input_without_writing(sample_files):
    tmp_path, cells_path, labels_path, _image, _labels = sample_files
    bad = _parse(
        ["select", str(cells_path), str(labels_path), "--sample", "TEN01",
         "--options", json.dumps({"wells": {"keratinocyte": "X99"}}), *_outputs(tmp_path)]
    )  # fmt: skip
    with pytest.raises(DVPError, match="X99"):
        select_cli.run(bad)
    other_sample = _parse(["select", str(cells_path), str(labels_path), "--sample", "MPR01", *_outputs(tmp_path)])
    with pytest.raises(DVPError, match="other samples"):
        select_cli.run(other_sample)
    assert not (tmp_path / "lmd").exists()
