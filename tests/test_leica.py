"""Tests for the Leica LMD XML object model, writer and safe reader."""

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from dvp_pipeline.errors import DVPError
from dvp_pipeline.leica import (
    Collection,
    Shape,
    calibration_triangle_check,
    check_calibration_points,
    check_well,
    orientation_matrix,
    read_lmd_xml,
)

CALIBRATION = [[0, 0], [200, 0], [0, 100]]


def _collection():
    collection = Collection(CALIBRATION)
    collection.new_shape([[10, 10], [30, 10], [30, 25.5], [10, 25.5], [10, 10]], well="A1")
    collection.new_shape([[50.25, 60], [70, 60], [60, 80.75], [50.25, 60]], well="B12")
    collection.new_shape([[1, 1], [2, 1], [2, 2], [1, 1]])
    return collection


def test_xml_has_the_leica_structure():
    root = ET.fromstring(_collection().to_xml())
    assert root.tag == "ImageData"
    tags = [child.tag for child in root]
    assert tags[:8] == [
        "GlobalCoordinates",
        "X_CalibrationPoint_1",
        "Y_CalibrationPoint_1",
        "X_CalibrationPoint_2",
        "Y_CalibrationPoint_2",
        "X_CalibrationPoint_3",
        "Y_CalibrationPoint_3",
        "ShapeCount",
    ]
    assert root.findtext("GlobalCoordinates") == "1"
    assert root.findtext("ShapeCount") == "3"
    shape = root.find("Shape_1")
    assert [c.tag for c in shape][:4] == ["PointCount", "CapID", "X_1", "Y_1"]
    assert shape.findtext("PointCount") == "5"
    assert shape.findtext("CapID") == "A1"
    assert root.find("Shape_3").find("CapID") is None
    # every coordinate is a plain integer
    for node in root.iter():
        if node.tag.startswith(("X_", "Y_")):
            assert int(node.text) == float(node.text)


def test_calibration_points_and_shapes_share_the_transform():
    collection = Collection([[10, 20], [200.5, 20], [10, 150]], scale=100)
    collection.new_shape([[10, 20], [200.5, 20], [10, 150], [10, 20]], well="C3")
    root = ET.fromstring(collection.to_xml())
    calibration = [
        (int(root.findtext(f"X_CalibrationPoint_{i}")), int(root.findtext(f"Y_CalibrationPoint_{i}")))
        for i in (1, 2, 3)
    ]
    # x scaled, y scaled and negated (Leica y points up)
    assert calibration == [(1000, -2000), (20050, -2000), (1000, -15000)]
    shape = root.find("Shape_1")
    vertices = [(int(shape.findtext(f"X_{i}")), int(shape.findtext(f"Y_{i}"))) for i in (1, 2, 3)]
    assert vertices == calibration


def test_transform_inverse_and_no_flip():
    collection = Collection(CALIBRATION, scale=50, orientation=orientation_matrix(flip_y=False))
    points = np.array([[1.5, 2.0], [3.0, -4.0]])
    assert np.allclose(collection.to_lmd(points), [[75, 100], [150, -200]])
    assert np.allclose(collection.from_lmd(collection.to_lmd(points)), points)


def test_round_trip_bytes_and_points(tmp_path):
    collection = _collection()
    xml = collection.to_xml()
    back = read_lmd_xml(xml)
    assert np.allclose(back.calibration_points, collection.calibration_points)
    assert [s.well for s in back.shapes] == [s.well for s in collection.shapes]
    for original, read in zip(collection.shapes, back.shapes, strict=True):
        assert np.allclose(read.points, original.points, atol=0.5 / collection.scale)
    assert back.to_xml() == xml
    path = tmp_path / "shapes.xml"
    path.write_bytes(xml)
    assert read_lmd_xml(path).to_xml() == xml


def test_reads_a_py_lmd_style_file():
    text = b"""<?xml version='1.0' encoding='UTF-8'?>
    <ImageData>
      <GlobalCoordinates>1</GlobalCoordinates>
      <X_CalibrationPoint_1>0</X_CalibrationPoint_1><Y_CalibrationPoint_1>0</Y_CalibrationPoint_1>
      <X_CalibrationPoint_2>0</X_CalibrationPoint_2><Y_CalibrationPoint_2>-10000</Y_CalibrationPoint_2>
      <X_CalibrationPoint_3>5000</X_CalibrationPoint_3><Y_CalibrationPoint_3>-5000</Y_CalibrationPoint_3>
      <ShapeCount>1</ShapeCount>
      <Shape_1><PointCount>3</PointCount><CapID>A</CapID><TransferID>x</TransferID>
        <X_1>1000</X_1><Y_1>-1000</Y_1><X_2>4000</X_2><Y_2>-1000</Y_2><X_3>4000</X_3><Y_3>-4000</Y_3>
      </Shape_1>
    </ImageData>"""
    collection = read_lmd_xml(text)
    assert np.allclose(collection.calibration_points, [[0, 0], [0, 100], [50, 50]])
    assert collection.shapes[0].well == "A"
    assert np.allclose(collection.shapes[0].points, [[10, 10], [40, 10], [40, 40]])


@pytest.mark.parametrize(
    "payload",
    [
        b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<ImageData><GlobalCoordinates>&lol2;</GlobalCoordinates></ImageData>""",
        b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><ImageData>&xxe;</ImageData>""",
        b"""<?xml version="1.0"?><!DOCTYPE ImageData><ImageData/>""",
    ],
    ids=["entity-expansion", "external-entity", "doctype"],
)
def test_reader_rejects_doctype_and_entities(payload):
    with pytest.raises(DVPError, match="DOCTYPE"):
        read_lmd_xml(payload)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"<ImageData><X_CalibrationPoint_1>0</X_CalibrationPoint_1>", "well-formed"),
        (b"<Other/>", "root element"),
        (b"<ImageData><GlobalCoordinates>1</GlobalCoordinates></ImageData>", "X_CalibrationPoint_1"),
        (b"<ImageData>&undefined;</ImageData>", "well-formed"),
    ],
)
def test_reader_explains_broken_files(text, message):
    with pytest.raises(DVPError, match=message):
        read_lmd_xml(text)


def test_reader_checks_counts():
    xml = _collection().to_xml()
    with pytest.raises(DVPError, match="ShapeCount"):
        read_lmd_xml(xml.replace(b"<ShapeCount>3<", b"<ShapeCount>4<"))
    with pytest.raises(DVPError, match="missing <X_6>"):
        read_lmd_xml(xml.replace(b"<PointCount>5<", b"<PointCount>6<", 1))
    with pytest.raises(DVPError, match="more vertices"):
        read_lmd_xml(xml.replace(b"<PointCount>5<", b"<PointCount>4<", 1))


def test_missing_file_is_dvperror(tmp_path):
    with pytest.raises(DVPError, match="not found"):
        read_lmd_xml(tmp_path / "absent.xml")


@pytest.mark.parametrize("well", ["A1", "H12", "P24", "B7", "A", "H"])
def test_valid_wells(well):
    assert check_well(well) == well


@pytest.mark.parametrize("well", ["a1", "A0", "A25", "Q1", "I", "A1 ", "", "1A", None, 3])
def test_invalid_wells(well):
    with pytest.raises(DVPError, match="well"):
        check_well(well)


def test_shape_and_collection_validation():
    with pytest.raises(DVPError, match="well"):
        check_well("Z9")  # what the pipeline writes is a plate well
    with pytest.raises(DVPError, match="is not a plain name"):
        Shape([[0, 0], [1, 0], [1, 1]], well="A1<script>")
    with pytest.raises(DVPError, match=r"\(N, 2\)"):
        Shape([1, 2, 3])
    with pytest.raises(DVPError, match="at least 2"):
        Shape([[0, 0]])
    with pytest.raises(DVPError, match="NaN"):
        Shape([[0, 0], [np.nan, 1]])
    with pytest.raises(DVPError, match="one line"):
        Collection([[0, 0], [1, 1], [2, 2]])
    with pytest.raises(DVPError, match="3 finite"):
        Collection([[0, 0], [1, 1]])
    with pytest.raises(DVPError, match="scale"):
        Collection(CALIBRATION, scale=0)


# A known image point (x right, y down) and where each set-up puts it on the stage (x right, y up).
ORIENTED = [
    ({}, (30.0, -20.0)),  # the default: y flipped
    ({"flip_y": False}, (30.0, 20.0)),
    ({"rotate": 90}, (20.0, 30.0)),
    ({"rotate": 180}, (-30.0, 20.0)),
    ({"rotate": 270}, (-20.0, -30.0)),
    ({"flip_x": True}, (-30.0, -20.0)),
]


@pytest.mark.parametrize(("setup", "expected"), ORIENTED, ids=[str(s) for s, _ in ORIENTED])
def test_a_known_point_lands_where_each_orientation_puts_it(setup, expected):
    collection = Collection(CALIBRATION, scale=1, orientation=orientation_matrix(**setup))
    assert collection.to_lmd([[30.0, 20.0]]).tolist() == [list(expected)]
    shape = collection.new_shape([[30, 20], [40, 20], [40, 30], [30, 20]], well="B2")
    back = read_lmd_xml(collection.to_xml(), scale=1, orientation=collection.orientation)
    np.testing.assert_allclose(back.shapes[0].points, shape.points)


def test_bad_orientations_and_calibration_points():
    with pytest.raises(DVPError, match=r"orientation.rotate: expected one of \(0, 90, 180, 270\)"):
        orientation_matrix(rotate=45)
    with pytest.raises(DVPError, match="expected a 2 x 2 rotation/flip matrix"):
        Collection(CALIBRATION, orientation=[[2, 0], [0, 1]])
    with pytest.raises(DVPError, match="expected exactly 3 finite"):
        check_calibration_points([[0, 0], [1, 1]])
    with pytest.raises(DVPError, match="lie on one line"):
        check_calibration_points([[0, 0], [1000, 1000], [2000, 2000.001]])
    assert calibration_triangle_check([[0, 0], [100, 0], [0, 100]], [[10, 10], [500, 500], [-300, 50]]) == 2 / 3


def test_py_lmd_reads_our_file_and_we_read_its_file(tmp_path):
    """MannLabs py-lmd (the library DVP labs use) reads our XML to the same numbers, and we read its."""
    lib = pytest.importorskip("lmd.lib")
    ours = _collection()
    ours.orientation = orientation_matrix(rotate=90)
    path = tmp_path / "ours.xml"
    path.write_bytes(ours.to_xml())
    theirs = lib.Collection()
    theirs.load(str(path))
    np.testing.assert_array_equal(theirs.calibration_points, np.rint(ours.to_lmd(ours.calibration_points)))
    assert [s.well for s in theirs.shapes] == [s.well for s in ours.shapes]
    for mine, read in zip(ours.shapes, theirs.shapes, strict=True):
        np.testing.assert_array_equal(read.points, np.rint(ours.to_lmd(mine.points)))

    written = lib.Collection(calibration_points=np.array(CALIBRATION, dtype=float), scale=100)
    written.new_shape(np.array([[10.0, 10.0], [20.0, 10.0], [20.0, 20.0], [10.0, 10.0]]), well="C3")
    written.save(str(tmp_path / "theirs.xml"))
    back = read_lmd_xml(tmp_path / "theirs.xml", orientation=written.orientation_transform)
    np.testing.assert_allclose(back.calibration_points, CALIBRATION, atol=0.01)
    np.testing.assert_allclose(back.shapes[0].points, [[10, 10], [20, 10], [20, 20], [10, 10]], atol=0.01)
    assert back.shapes[0].well == "C3"


REAL = Path(__file__).parent / "data" / "real" / "lmd"


@pytest.mark.parametrize(
    ("name", "shapes", "wells"),
    [("pylmd_cellculture_shapes_2.xml", 2, {"well1"}), ("pylmd_xml_excision.xml", 7, {None})],
)
def test_real_py_lmd_files_are_read(name, shapes, wells):
    """py-lmd's own example files (MannLabs/py-lmd, Apache-2.0; tests/data/real/lmd/SOURCES.md)."""
    collection = read_lmd_xml(REAL / name)
    assert len(collection.shapes) == shapes and {s.well for s in collection.shapes} == wells
    assert all(len(s.points) >= 3 for s in collection.shapes)
    again = read_lmd_xml(collection.to_xml())
    for a, b in zip(collection.shapes, again.shapes, strict=True):
        np.testing.assert_allclose(a.points, b.points)
