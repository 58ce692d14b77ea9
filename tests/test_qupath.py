"""QuPath GeoJSON both ways: a real QuPath export, round trips, training labels, regions, bad files."""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from dvp_pipeline import simulate
from dvp_pipeline.classify import train_classifier
from dvp_pipeline.cli import main
from dvp_pipeline.errors import DVPError
from dvp_pipeline.features import measure_cells
from dvp_pipeline.qupath import (
    annotations_from_geojson,
    cells_in_regions,
    cells_to_geojson,
    read_geojson,
    training_labels,
    write_geojson,
)
from dvp_pipeline.selection import cell_outlines

REAL = Path(__file__).parent / "data" / "real" / "qupath" / "pylmd_annotated_regions_Qupath.geojson"


@pytest.fixture(scope="module")
def sample():
    """A small simulated section: labels, measured cells and the planted cell types."""
    tissue = simulate.simulate_tissue("TEN", seed=3, size=256)
    cells = measure_cells(
        tissue.labels, tissue.image, channel_names=list(simulate.CHANNELS), pixel_size_um=0.5, sample="TEN01"
    )
    truth = tissue.cells.set_index("cell_id")["cell_type"]
    return tissue.labels, cells, truth


def _feature(geometry, cls=None, object_type="annotation", **properties):
    props = {"objectType": object_type, **properties}
    if cls is not None:
        props["classification"] = {"name": cls, "color": [255, 0, 0]}
    return {"type": "Feature", "geometry": geometry, "properties": props}


def _point(x, y, cls=None):
    return _feature({"type": "Point", "coordinates": [x, y]}, cls)


def _box(x0, y0, x1, y1, cls=None):
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return _feature({"type": "Polygon", "coordinates": [ring]}, cls)


def _inner_pixel(labels, cell_id):
    """A pixel of the cell far from its border, as a QuPath point (pixel centre, corner frame)."""
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(labels == cell_id)
    row, col = np.unravel_index(np.argmax(distance), labels.shape)
    return col + 0.5, row + 0.5


# --- the real QuPath export ------------------------------------------------------------------------------


def test_real_qupath_export_as_the_file_states_it():
    raw = json.loads(REAL.read_text())
    features = raw["features"]
    kinds = [f["geometry"]["type"] for f in features]
    names = [f["properties"].get("name") for f in features]
    classes = [f["properties"].get("classification") for f in features]

    annotations = read_geojson(REAL)
    assert len(annotations) == len(features) == 5
    assert [a.geometry.geom_type for a in annotations] == kinds == ["Polygon", "Polygon", "Point", "Point", "Point"]
    assert [a.name for a in annotations] == names
    assert [a.classification for a in annotations] == [None] * 5 == classes
    assert {a.object_type for a in annotations} == {f["properties"]["objectType"] for f in features} == {"annotation"}
    assert [a.index for a in annotations] == list(range(5))
    for annotation, feature in zip(annotations, features, strict=True):
        coordinates = feature["geometry"]["coordinates"]
        if feature["geometry"]["type"] == "Point":
            assert list(annotation.geometry.coords[0]) == coordinates
        else:
            ring = np.asarray(coordinates[0], dtype=float)
            shoelace = 0.5 * abs(np.dot(ring[:-1, 0], ring[1:, 1]) - np.dot(ring[1:, 0], ring[:-1, 1]))
            assert annotation.geometry.area == pytest.approx(shoelace)
    # the ellipse ("isEllipse" in its geometry) is the 101-vertex polygon QuPath wrote
    assert len(annotations[0].geometry.exterior.coords) == len(features[0]["geometry"]["coordinates"][0])


def test_real_export_as_regions_and_labels(caplog):
    annotations = read_geojson(REAL)
    region1 = annotations[1].geometry
    inside = region1.representative_point()
    # cells table centroids put pixel centres on integers: half a pixel less than QuPath's frame
    cells = pd.DataFrame(
        {
            "cell_id": [1, 2, 3],
            "centroid_x": [inside.x - 0.5, 302.5 - 0.5, 10.0],
            "centroid_y": [inside.y - 0.5, 1524 - 0.5, 10.0],
            "area": [50.0, 50.0, 50.0],
        }
    )
    assert cells_in_regions(cells, annotations).tolist() == [True, True, False]
    with pytest.raises(DVPError, match="no polygon of class 'tumour'; classes present: none"):
        cells_in_regions(cells, annotations, classes=["tumour"])
    # nothing in the file is classified: no training label, and the log says why
    with caplog.at_level(logging.WARNING):
        table = training_labels(cells, annotations)
    assert table.empty and table.attrs["counts"]["unclassified"] == 5
    assert "5 unclassified QuPath annotation(s) ignored" in caplog.text


# --- export and round trip -----------------------------------------------------------------------------


def test_round_trip_export_import_keeps_cells_classes_and_polygons(sample, tmp_path):
    labels, cells, truth = sample
    cells = cells.assign(cell_type=truth.reindex(cells["cell_id"]).to_numpy(), confidence=0.9)
    geojson = cells_to_geojson(cells, labels, cell_type_order=["keratinocyte", "cd8_t_cell", "macrophage"])
    write_geojson(geojson, tmp_path / "cells.geojson")
    text = (tmp_path / "cells.geojson").read_text()
    assert "NaN" not in text
    back = read_geojson(tmp_path / "cells.geojson")

    assert len(back) == len(cells)
    assert {a.object_type for a in back} == {"detection"}
    assert [int(a.measurements["cell_id"]) for a in back] == cells["cell_id"].tolist()
    assert [a.classification for a in back] == cells["cell_type"].tolist()
    first = next(f for f in geojson["features"] if f["properties"]["classification"]["name"] == "keratinocyte")
    assert first["properties"]["classification"]["color"] == [0x2C, 0xA0, 0x2C]  # the reports' first colour
    unassigned = next(f for f in geojson["features"] if f["properties"]["classification"]["name"] == "unassigned")
    assert unassigned["properties"]["classification"]["color"] == [0xB0, 0xB0, 0xB0]
    measured = back[0].measurements
    assert set(measured) == {"cell_id", "mean_DAPI", "mean_KRT14", "mean_CD8", "mean_CD163", "area_um2", "confidence"}
    assert measured["mean_KRT14"] == pytest.approx(cells["mean_KRT14"].iloc[0])

    # polygons: within a pixel of the cell's exact pixel-edge outline, and the same area to a pixel per edge
    exact = cell_outlines(labels, cells["cell_id"].tolist(), dilation_px=0.0, simplify_px=0.0)
    for annotation, cell_id, area in zip(back, cells["cell_id"], cells["area"], strict=True):
        reference = shapely.Polygon(exact[cell_id])
        assert annotation.geometry.hausdorff_distance(reference) <= 1.0
        assert abs(annotation.geometry.area - area) <= 0.5 * reference.length

    # and the detections label their own cells back
    table = training_labels(cells, back, labels=labels)
    agreed = table.set_index("cell_id")["cell_type"] == truth.reindex(table["cell_id"]).to_numpy()
    assert len(table) >= 0.97 * len(cells) and agreed.mean() >= 0.99


def test_export_qupath_cli(sample, tmp_path):
    labels, cells, truth = sample
    folder = tmp_path / "results" / "TEN01"
    folder.mkdir(parents=True)
    simulate.write_labels(labels, folder / "labels.tif")
    cells.assign(cell_type=truth.reindex(cells["cell_id"]).to_numpy()).to_parquet(folder / "cells_classified.parquet")
    assert main(["export-qupath", "TEN01", "--results", str(tmp_path / "results")]) == 0
    written = read_geojson(folder / "TEN01.cells.geojson")
    assert len(written) == len(cells)
    assert {a.classification for a in written} == set(truth)
    out = tmp_path / "only_KRT14.geojson"
    args = ["export-qupath", "TEN01", "--results", str(tmp_path / "results"), "--out", str(out)]
    assert main([*args, "--measurements", "mean_KRT14"]) == 0
    assert set(read_geojson(out)[0].measurements) == {"cell_id", "mean_KRT14"}
    assert main([*args, "--measurements", "mean_GFP"]) == 2
    assert main(["export-qupath", "NOPE", "--results", str(tmp_path / "results")]) == 2


# --- training labels from points and polygons ------------------------------------------------------------


def test_points_label_the_cell_under_them(sample):
    labels, cells, truth = sample
    chosen = cells["cell_id"].iloc[[0, 5, 40, 90]].tolist()
    features = [_point(*_inner_pixel(labels, c), truth[c]) for c in chosen]
    table = training_labels(cells, annotations_from_geojson(features), labels=labels)
    assert table["cell_id"].tolist() == sorted(chosen)
    assert table["cell_type"].tolist() == truth[sorted(chosen)].tolist()
    assert set(table["sample"]) == {"TEN01"}
    # without the labels image, a point within a cell's equivalent radius of its centroid finds it too
    at_centroids = [_point(cells.loc[i, "centroid_x"] + 0.5, cells.loc[i, "centroid_y"] + 0.5, "x") for i in (0, 5)]
    table = training_labels(cells, annotations_from_geojson(at_centroids))
    assert table["cell_id"].tolist() == cells["cell_id"].iloc[[0, 5]].tolist()


def test_polygons_points_conflicts_and_what_is_ignored(sample, caplog):
    labels, cells, truth = sample
    centre_x, centre_y = cells["centroid_x"] + 0.5, cells["centroid_y"] + 0.5
    in_box = (centre_x > 0) & (centre_x < 128) & (centre_y > 128) & (centre_y < 256)
    point_cell, conflict_cell = cells.loc[in_box, "cell_id"].iloc[:2]
    other_cell = cells.loc[~in_box, "cell_id"].iloc[0]
    features = [
        _box(0, 128, 128, 256, "dermis"),
        _point(*_inner_pixel(labels, point_cell), "cd8_t_cell"),  # a point wins over the region around it
        _point(*_inner_pixel(labels, conflict_cell), "macrophage"),
        _point(*_inner_pixel(labels, conflict_cell), "keratinocyte"),  # two points, two classes: dropped
        _point(*_inner_pixel(labels, other_cell), None),  # unclassified: ignored
        _point(-5, -5, "keratinocyte"),  # outside the image
        _box(300, 300, 310, 310, "nowhere"),  # contains no cell
    ]
    with caplog.at_level(logging.WARNING):
        table = training_labels(cells, annotations_from_geojson(features), labels=labels)
    expected = set(cells.loc[in_box, "cell_id"]) - {conflict_cell}
    assert set(table["cell_id"]) == expected
    types = table.set_index("cell_id")["cell_type"]
    assert types[point_cell] == "cd8_t_cell"
    assert (types.drop(point_cell) == "dermis").all()
    assert table.attrs["counts"] == {"labelled": len(expected), "conflicts": 1, "unclassified": 1, "points_missed": 1}
    assert "1 cell(s) given two or more classes" in caplog.text
    assert "1 QuPath point(s) fell on no cell" in caplog.text

    two_samples = pd.concat([cells, cells.assign(sample="MPR01")])
    with pytest.raises(DVPError, match="one image"):
        training_labels(two_samples, annotations_from_geojson(features), labels=labels)
    with pytest.raises(DVPError, match="labels image"):
        training_labels(cells.drop(columns="area"), annotations_from_geojson(features))


def test_a_classifier_trains_on_qupath_annotations(sample):
    labels, cells, truth = sample
    rng = np.random.default_rng(0)
    features = []
    for cell_type in ("keratinocyte", "cd8_t_cell", "macrophage"):
        ids = truth.index[truth == cell_type].to_numpy()
        for cell_id in rng.choice(ids, size=min(15, len(ids)), replace=False):
            features.append(_point(*_inner_pixel(labels, cell_id), cell_type))
    multipoint = {"type": "MultiPoint", "coordinates": [list(_inner_pixel(labels, c)) for c in truth.index[:3]]}
    features.append(_feature(multipoint, "keratinocyte"))  # QuPath's multi-point tool
    table = training_labels(cells, annotations_from_geojson(features), labels=labels)
    assert len(table) >= 45
    model, evaluation = train_classifier(cells, table, n_estimators=25, cv_folds=3)
    assert evaluation["n_cells"] == len(table)
    assert evaluation["accuracy"] > 0.8
    assert set(model["classes"]) == {"keratinocyte", "cd8_t_cell", "macrophage"}


def test_train_classifier_cli_reads_a_qupath_file(sample, tmp_path):
    labels, cells, truth = sample
    cells.to_parquet(tmp_path / "cells.parquet")
    simulate.write_labels(labels, tmp_path / "labels.tif")
    features = []
    for cell_type in ("keratinocyte", "cd8_t_cell", "macrophage"):
        for cell_id in truth.index[truth == cell_type][:10]:
            features.append(_point(*_inner_pixel(labels, cell_id), cell_type))
    (tmp_path / "labels.geojson").write_text(json.dumps(features))  # a bare list, as QuPath can export
    out = [
        "--model",
        str(tmp_path / "model.json"),
        "--confusion",
        str(tmp_path / "confusion.tsv"),
        "--options",
        '{"supervised": {"n_estimators": 10, "cv_folds": 3}}',
    ]
    code = main(
        ["train-classifier", str(tmp_path / "cells.parquet"), "--annotations", str(tmp_path / "labels.geojson"), *out]
    )
    assert code == 0
    confusion = pd.read_csv(tmp_path / "confusion.tsv", sep="\t", index_col=0)
    assert confusion.to_numpy().sum() == 30
    (tmp_path / "bad.json").write_text('{"type": "FeatureCollection", "features": [1]}')
    code = main(
        ["train-classifier", str(tmp_path / "cells.parquet"), "--annotations", str(tmp_path / "bad.json"), *out]
    )
    assert code == 2


def test_cells_in_named_regions(sample):
    _, cells, _ = sample
    features = [_box(0, 0, 128, 128, "tumour"), _box(128, 0, 256, 128, "stroma"), _point(200, 200, "tumour")]
    annotations = annotations_from_geojson({"type": "FeatureCollection", "features": features})
    x, y = cells["centroid_x"] + 0.5, cells["centroid_y"] + 0.5
    top = (y > 0) & (y < 128)
    assert (cells_in_regions(cells, annotations) == (top & (x > 0) & (x < 256) & (x != 128))).all()
    assert (cells_in_regions(cells, annotations, "tumour") == (top & (x < 128))).all()
    assert (cells_in_regions(cells, annotations, ["stroma"]) == (top & (x > 128))).all()
    with pytest.raises(DVPError, match="'tumor'.*classes present: stroma, tumour"):
        cells_in_regions(cells, annotations, "tumor")


def test_classification_and_object_type_of_every_qupath_version():
    features = [
        _point(1, 1, "A"),
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [1, 1]},
            "properties": {"classification": "B"},
        },
        {
            "type": "Feature",
            "id": "PathDetectionObject",  # QuPath 0.2
            "geometry": {"type": "Point", "coordinates": [1, 1]},
            "properties": {
                "classification": {"name": "C", "colorRGB": -3670016},
                "isLocked": False,
                "measurements": [{"name": "Area", "value": 3.5}, {"name": "Missing", "value": None}],
            },
        },
        _feature(
            {"type": "Point", "coordinates": [1, 1, 0]}, object_type="cell", classification={"names": ["T", "Pos"]}
        ),
        _feature({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "line"),  # skipped
        {"type": "Feature", "geometry": None, "properties": {}},  # skipped
    ]
    annotations = annotations_from_geojson(features)
    assert [a.classification for a in annotations] == ["A", "B", "C", "T: Pos"]
    assert [a.object_type for a in annotations] == ["annotation", "annotation", "detection", "cell"]
    assert annotations[2].measurements["Area"] == 3.5 and np.isnan(annotations[2].measurements["Missing"])
    # a self-intersecting "bow tie" is repaired into its two triangles
    bow_tie = _feature({"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}, "x")
    (repaired,) = annotations_from_geojson([bow_tie])
    assert repaired.geometry.is_valid and repaired.geometry.area == pytest.approx(2.0)


# --- bad files: one DVPError each, naming the feature ----------------------------------------------------

_GOOD = _point(1, 1, "A")
_BAD_FEATURES = {
    "wrong feature type": ({"type": "Point", "coordinates": [1, 1]}, "type is 'Point', expected 'Feature'"),
    "feature not an object": ([1, 2], "expected a GeoJSON Feature object"),
    "unknown geometry": (_feature({"type": "Circle", "coordinates": [1, 1]}), "'Circle' not supported"),
    "geometry not an object": (_feature([1, 2]), "geometry must be a GeoJSON geometry object"),
    "polygon with too few points": (
        _feature({"type": "Polygon", "coordinates": [[[0, 0], [5, 5], [0, 0]]]}),
        "at least 3 distinct points",
    ),
    "polygon with a flat ring": (
        _feature({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}),
        "encloses no area",
    ),
    "polygon without rings": (_feature({"type": "Polygon", "coordinates": []}), "list of rings"),
    "NaN coordinate": (_feature({"type": "Point", "coordinates": [float("nan"), 1]}), "not finite"),
    "infinite coordinate": (_feature({"type": "Point", "coordinates": [1, float("inf")]}), "not finite"),
    "huge coordinate": (_feature({"type": "Point", "coordinates": [1e300, 1]}), "beyond"),
    "huge integer": (_feature({"type": "MultiPoint", "coordinates": [[10**40, 1]]}), "beyond"),
    "string coordinate": (_feature({"type": "Point", "coordinates": ["1", 2]}), "two numbers"),
    "nested point": (_feature({"type": "Point", "coordinates": [[1, 2]]}), "two numbers"),
    "boolean coordinate": (_feature({"type": "Point", "coordinates": [True, "x"]}), "two numbers"),
    "classification a number": (_feature({"type": "Point", "coordinates": [1, 1]}, classification=7), "classification"),
    "objectType a list": (_feature({"type": "Point", "coordinates": [1, 1]}, objectType=["x"]), "objectType"),
    "name a number": (_feature({"type": "Point", "coordinates": [1, 1]}, name=5), "properties.name"),
    "measurement a string": (
        _feature({"type": "Point", "coordinates": [1, 1]}, measurements={"Area": "big"}),
        "measurement 'Area'",
    ),
    "properties a list": (
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 1]}, "properties": []},
        "properties",
    ),
}


@pytest.mark.parametrize("case", list(_BAD_FEATURES))
def test_bad_feature_gives_one_error_naming_it(case, tmp_path):
    feature, message = _BAD_FEATURES[case]
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [_GOOD, feature]}))
    with pytest.raises(DVPError, match="feature 1") as error:
        read_geojson(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"Polygon ((0 0, 1 0, 1 1, 0 0))", "not valid JSON (line 1, column 1"),
        (b'{"type": "FeatureCollection", "features": [', "not valid JSON"),
        (b"42", "expected a GeoJSON FeatureCollection"),
        (b'{"type": "Topology"}', "expected a GeoJSON FeatureCollection"),
        (b'{"type": "FeatureCollection", "features": {}}', "without a list of features"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1' + b"0" * 5000 + b", 1]}}]", "JSON"),
    ],
)
def test_bad_file_gives_one_error(content, message, tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(DVPError, match="bad.json") as error:
        read_geojson(path)
    assert message in str(error.value)


def test_too_large_and_missing_files(tmp_path):
    path = tmp_path / "big.geojson"
    path.write_text(json.dumps([_GOOD] * 100))
    with pytest.raises(DVPError, match="more than the 1000"):
        read_geojson(path, max_bytes=1000)
    assert len(read_geojson(path)) == 100
    with pytest.raises(DVPError, match="not found"):
        read_geojson(tmp_path / "absent.geojson")
    with pytest.raises(DVPError, match="cannot write GeoJSON"):
        write_geojson({"x": float("nan")}, tmp_path / "nan.geojson")
    assert not (tmp_path / "nan.geojson").exists()
