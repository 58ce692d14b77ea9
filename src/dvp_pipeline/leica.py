"""Leica LMD cutting files: a small object model and a safe XML reader/writer.

The select stage turns chosen cells into outlines (:mod:`dvp_pipeline.selection`) and hands them to
this module, which writes the XML file the Leica LMD6/LMD7 software imports ("ImageData" format, as
also written by py-lmd). Everything here works on image coordinates; the transform to the file's
frame happens only in :meth:`Collection.to_xml` and is undone by :func:`read_lmd_xml`.

What the file contains
----------------------
::

    <?xml version='1.0' encoding='utf-8'?>
    <ImageData>
      <GlobalCoordinates>1</GlobalCoordinates>
      <X_CalibrationPoint_1>0</X_CalibrationPoint_1>      three calibration points, X/Y each
      <Y_CalibrationPoint_1>0</Y_CalibrationPoint_1>
      ... _2, _3
      <ShapeCount>2</ShapeCount>
      <Shape_1>
        <PointCount>5</PointCount>
        <CapID>A1</CapID>                                 collection well/cap (optional)
        <X_1>1050</X_1>  <Y_1>-2050</Y_1>  ... X_5/Y_5      vertices, closed ring (last == first)
      </Shape_1>
      ...
    </ImageData>

Coordinate convention
---------------------
Points are given in image pixels as ``(x, y)``: x to the right, y downwards, origin at the top-left
corner of the image, pixel ``(row, col)`` covering ``[col, col + 1] x [row, row + 1]`` (the QuPath
convention). The Leica frame has y pointing *up* (py-lmd docs, "Different Coordinate Systems";
py-lmd's QuPath example uses ``orientation_transform = [[1, 0], [0, -1]]`` for (x, y) image
coordinates). Every number in the file, calibration points and shape vertices alike, is therefore::

    X = round(scale * x)        Y = round(-scale * y)         (the default orientation)

Set-ups whose stage axes are rotated or mirrored against the camera take another ``orientation``:
a 2 x 2 matrix applied to ``(x, y)`` before scaling (:func:`orientation_matrix` builds it from a
rotation and flips), as py-lmd's ``orientation_transform``.

as integers, ``scale`` file units per pixel (default 100, py-lmd's default: the LMD reads integers,
so scaling keeps 1/100 pixel precision). The unit is otherwise arbitrary: after import the operator
marks the three calibration points on the slide and the LMD software fits the map from the file's
calibration values to those stage positions, so shapes land where they are in the image as long as
calibration points and shapes share one frame (they do: both go through the same map). The
calibration points must therefore be features the operator can find at the microscope (marks on the
membrane slide, visible in the image), given in image pixels, in the order they will be clicked.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dvp_pipeline.errors import DVPError

__all__ = [
    "ORIENTATIONS",
    "Collection",
    "Shape",
    "calibration_triangle_check",
    "check_calibration_points",
    "check_well",
    "orientation_matrix",
    "read_lmd_xml",
]

#: Image (x right, y down) to stage frame: y flipped, the usual Leica LMD6/7 set-up (py-lmd's default).
DEFAULT_ORIENTATION = np.array([[1.0, 0.0], [0.0, -1.0]])
ORIENTATIONS = (0, 90, 180, 270)


def orientation_matrix(*, rotate: int = 0, flip_x: bool = False, flip_y: bool = True) -> np.ndarray:
    """The 2 x 2 map from image ``(x, y)`` to the stage frame: flips first, then a counter-clockwise
    rotation by ``rotate`` degrees (in the y-up stage frame).

    >>> orientation_matrix().tolist()
    [[1.0, 0.0], [0.0, -1.0]]
    >>> orientation_matrix(rotate=90, flip_y=True).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    if rotate not in ORIENTATIONS:
        raise DVPError(f"orientation.rotate: expected one of {ORIENTATIONS} degrees, got {rotate!r}")
    flips = np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0])
    turn = {0: [[1, 0], [0, 1]], 90: [[0, -1], [1, 0]], 180: [[-1, 0], [0, -1]], 270: [[0, 1], [-1, 0]]}[rotate]
    return np.asarray(turn, dtype=float) @ flips + 0.0


def check_calibration_points(points, *, what: str = "calibration_points") -> np.ndarray:
    """Three finite, non-collinear ``(x, y)`` points (the LMD fits an affine map from exactly three)."""
    array = np.asarray(points, dtype=float) if np.ndim(points) == 2 else np.empty((0, 2))
    if array.shape != (3, 2) or not np.isfinite(array).all():
        got = np.asarray(points, dtype=object).tolist() if points is not None else None
        raise DVPError(f"{what}: expected exactly 3 finite [x, y] points, got {got}")
    edge1, edge2 = array[1] - array[0], array[2] - array[0]
    # relative to the spread of the points, so that the test does not depend on the unit
    spread = max(float(np.abs(array - array.mean(axis=0)).max()), 1e-300)
    if abs(edge1[0] * edge2[1] - edge1[1] * edge2[0]) < 1e-6 * spread**2:
        raise DVPError(f"{what}: the three points {array.tolist()} lie on one line; the LMD cannot calibrate on them")
    return array


def calibration_triangle_check(calibration: np.ndarray, points: np.ndarray, *, far: float = 1.0) -> float:
    """The fraction of ``points`` far outside the calibration triangle: some barycentric coordinate
    below ``-far`` (beyond the triangle by more than its own size), where the affine fit extrapolates."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    if not len(points):
        return 0.0
    a, b, c = np.asarray(calibration, dtype=float)
    basis = np.column_stack([b - a, c - a])
    uv = np.linalg.solve(basis, (points - a).T).T
    bary = np.column_stack([1 - uv.sum(axis=1), uv])
    return float((bary < -far).any(axis=1).mean())


# Plate wells up to 384-well layout (rows A-P, columns 1-24; covers 96-well A1-H12) and the single
# letters A-H the LMD collectors use for tube caps and 8-strips.
_WELL = re.compile(r"(?:[A-P](?:[1-9]|1[0-9]|2[0-4])|[A-H])")
_CAP_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def check_well(well: str) -> str:
    """Return ``well`` if it is a collection cap/well name the LMD accepts, else raise DVPError.

    Accepted: plate wells ``A1`` to ``P24`` (96- and 384-well plates) and cap letters ``A`` to ``H``.
    """
    if not isinstance(well, str) or not _WELL.fullmatch(well):
        raise DVPError(
            f"invalid LMD well/cap {well!r}: expected a plate well A1..P24 (e.g. A1, B12, H12) or a cap letter A..H"
        )
    return well


@dataclass
class Shape:
    """One cutting shape: vertices in image pixels ``(x, y)`` and the well it is collected in.

    Parameters
    ----------
    points
        ``(N, 2)`` vertices, x then y, in image pixels. Closed outlines repeat the first vertex at the
        end (the LMD cuts the vertices in order); two points make a cut line.
    well
        Collection cap/well (``CapID``), e.g. ``"A1"``; ``None`` writes no CapID.
    name
        Free label kept in Python only (e.g. the cell id); not written to the file.
    """

    points: np.ndarray
    well: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=float)
        label = f"shape {self.name!r}" if self.name is not None else "shape"
        if points.ndim != 2 or points.shape[1] != 2:
            raise DVPError(f"{label}: points must have shape (N, 2), got {points.shape}")
        if len(points) < 2:
            raise DVPError(f"{label}: needs at least 2 points, got {len(points)}")
        if not np.isfinite(points).all():
            raise DVPError(f"{label}: points contain NaN or infinite values")
        self.points = points
        # What the pipeline writes is a plate well (check_well); files from elsewhere may name other
        # collectors (py-lmd's examples use "well1"), which are kept when they are a plain short token.
        if self.well is not None and not _CAP_ID.fullmatch(str(self.well)):
            raise DVPError(f"{label}: collector/cap id {self.well!r} is not a plain name (letters, digits, _ -)")


@dataclass
class Collection:
    """Calibration points and shapes for one LMD cutting file.

    Parameters
    ----------
    calibration_points
        ``(3, 2)`` image pixels ``(x, y)`` of the three calibration marks, in the order the operator
        will mark them at the microscope. They must not lie on one line.
    shapes
        The shapes, cut in list order.
    scale
        File units per image pixel (the file holds integers).
    orientation
        2 x 2 map from image ``(x, y)`` to the stage frame (:func:`orientation_matrix`); the default
        negates y, because the Leica y axis points up while image y points down.

    Examples
    --------
    >>> c = Collection([[0, 0], [100, 0], [0, 100]])
    >>> c.shapes.append(Shape([[10, 10], [20, 10], [20, 20], [10, 10]], well="A1"))
    >>> xml = c.to_xml()
    >>> read_lmd_xml(xml).shapes[0].well
    'A1'
    """

    calibration_points: np.ndarray
    shapes: list[Shape] = field(default_factory=list)
    scale: float = 100.0
    orientation: np.ndarray = field(default_factory=lambda: DEFAULT_ORIENTATION.copy())

    def __post_init__(self) -> None:
        self.calibration_points = check_calibration_points(self.calibration_points)
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise DVPError(f"scale: expected a positive number, got {self.scale}")
        self.orientation = _check_orientation(self.orientation)

    def new_shape(self, points, well: str | None = None, name: str | None = None) -> Shape:
        """Create a :class:`Shape`, append it, and return it."""
        shape = Shape(points, well=well, name=name)
        self.shapes.append(shape)
        return shape

    def to_lmd(self, points) -> np.ndarray:
        """Map image pixels ``(x, y)`` to the file frame (before rounding to integers)."""
        return _to_lmd(points, self.scale, self.orientation)

    def from_lmd(self, values) -> np.ndarray:
        """Map file values back to image pixels ``(x, y)`` (inverse of :meth:`to_lmd`)."""
        return _from_lmd(values, self.scale, self.orientation)

    def to_xml(self) -> bytes:
        """Return the Leica LMD XML document (UTF-8 bytes, with declaration, indented)."""
        root = ET.Element("ImageData")
        ET.SubElement(root, "GlobalCoordinates").text = "1"
        for i, (x, y) in enumerate(_as_int(self.to_lmd(self.calibration_points)), start=1):
            ET.SubElement(root, f"X_CalibrationPoint_{i}").text = str(x)
            ET.SubElement(root, f"Y_CalibrationPoint_{i}").text = str(y)
        ET.SubElement(root, "ShapeCount").text = str(len(self.shapes))
        for n, shape in enumerate(self.shapes, start=1):
            node = ET.SubElement(root, f"Shape_{n}")
            ET.SubElement(node, "PointCount").text = str(len(shape.points))
            if shape.well is not None:
                ET.SubElement(node, "CapID").text = shape.well
            for i, (x, y) in enumerate(_as_int(self.to_lmd(shape.points)), start=1):
                ET.SubElement(node, f"X_{i}").text = str(x)
                ET.SubElement(node, f"Y_{i}").text = str(y)
        ET.indent(root)
        return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _check_orientation(matrix) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=float)
    # rotations and flips only: the stage frame keeps the image's scale and right angles
    if matrix.shape != (2, 2) or not np.allclose(matrix @ matrix.T, np.eye(2)):
        raise DVPError(f"orientation: expected a 2 x 2 rotation/flip matrix, got {matrix.tolist()}")
    return matrix


def _to_lmd(points, scale: float, orientation: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=float) @ orientation.T * scale + 0.0


def _from_lmd(values, scale: float, orientation: np.ndarray) -> np.ndarray:
    # the inverse of a rotation/flip is its transpose; + 0.0 turns -0.0 into 0.0
    return np.asarray(values, dtype=float) / scale @ orientation + 0.0


def _as_int(values: np.ndarray) -> list[tuple[int, int]]:
    # Round half away from zero so a value and its negation round symmetrically (y is negated),
    # and convert to Python ints so "-0" is never written.
    rounded = np.sign(values) * np.floor(np.abs(values) + 0.5)
    return [(int(x), int(y)) for x, y in rounded]


def _parse_safely(data: bytes, where: str) -> ET.Element:
    """Parse XML with expat, refusing DOCTYPE and entity declarations (billion laughs, XXE)."""

    def refuse(*_args):
        raise DVPError(f"{where}: DOCTYPE/entity declarations are not allowed in an LMD XML file")

    builder = ET.TreeBuilder()
    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as err:
        raise DVPError(f"{where}: not well-formed XML ({err})") from err
    except (LookupError, UnicodeError) as err:  # the XML declaration names an unknown or wrong encoding
        raise DVPError(f"{where}: cannot decode the XML ({err}); expected UTF-8 as the LMD writes it") from err
    return builder.close()


def _number(texts: dict[str, str | None], tag: str, parent: str, where: str) -> float:
    """The numeric text of child ``tag`` (``texts`` maps child tags of ``parent`` to their text)."""
    text = texts.get(tag)
    if text is None:
        raise DVPError(f"{where}: missing <{tag}> in <{parent}>")
    try:
        value = float(text.strip())
    except ValueError:
        raise DVPError(f"{where}: <{tag}> in <{parent}> must be a number, got {text!r}") from None
    if not np.isfinite(value):
        raise DVPError(f"{where}: <{tag}> in <{parent}> must be finite, got {text!r}")
    return value


def _texts(node: ET.Element) -> dict[str, str | None]:
    # One lookup table per element keeps reading linear in the number of vertices.
    return {child.tag: child.text for child in node}


def read_lmd_xml(
    source: bytes | str | os.PathLike, *, scale: float = 100.0, orientation: np.ndarray | None = None
) -> Collection:
    """Read a Leica LMD XML file into a :class:`Collection` in image pixel coordinates.

    Parameters
    ----------
    source
        The XML document as bytes, or a path to it.
    scale, orientation
        The transform the file was written with (see the module docstring; ``None``: the default
        orientation); values are mapped back with its inverse.

    Returns
    -------
    Collection
        Calibration points and shapes (in ``Shape_N`` order), wells from ``CapID``.

    Raises
    ------
    DVPError
        If the file is missing, not well-formed, contains a DOCTYPE or entity declarations, or
        lacks the calibration points, or a shape's ``PointCount``/``ShapeCount`` does not match
        its content.
    """
    if isinstance(source, bytes | bytearray):
        data, where = bytes(source), "LMD XML"
    else:
        path = Path(source)
        if not path.is_file():
            raise DVPError(f"{path}: file not found")
        data, where = path.read_bytes(), str(path)
    root = _parse_safely(data, where)
    if root.tag != "ImageData":
        raise DVPError(f"{where}: root element must be <ImageData>, got <{root.tag}>")

    top = _texts(root)
    raw_calibration = [
        (
            _number(top, f"X_CalibrationPoint_{i}", root.tag, where),
            _number(top, f"Y_CalibrationPoint_{i}", root.tag, where),
        )
        for i in (1, 2, 3)
    ]
    orientation = _check_orientation(DEFAULT_ORIENTATION if orientation is None else orientation)
    collection = Collection(_from_lmd(raw_calibration, scale, orientation), scale=scale, orientation=orientation)

    shape_nodes = [node for node in root if re.fullmatch(r"Shape_\d+", node.tag)]
    shape_nodes.sort(key=lambda node: int(node.tag.split("_")[1]))
    numbers = [int(node.tag.split("_")[1]) for node in shape_nodes]
    if numbers != list(range(1, len(numbers) + 1)):
        raise DVPError(f"{where}: shapes must be numbered Shape_1..Shape_{len(numbers)}, got {numbers}")
    if "ShapeCount" in top and int(_number(top, "ShapeCount", root.tag, where)) != len(shape_nodes):
        raise DVPError(
            f"{where}: <ShapeCount> says {top['ShapeCount'].strip()}, but the file has {len(shape_nodes)} shapes"
        )

    for node in shape_nodes:
        texts = _texts(node)
        n_points = int(_number(texts, "PointCount", node.tag, where))
        raw = [
            (_number(texts, f"X_{i}", node.tag, where), _number(texts, f"Y_{i}", node.tag, where))
            for i in range(1, n_points + 1)
        ]
        if f"X_{n_points + 1}" in texts:
            raise DVPError(f"{where}: <{node.tag}> has more vertices than its <PointCount> {n_points}")
        well = (texts.get("CapID") or "").strip() or None
        try:
            collection.new_shape(collection.from_lmd(np.reshape(raw, (-1, 2))), well=well, name=node.tag)
        except DVPError as err:
            raise DVPError(f"{where}: <{node.tag}>: {err}") from None
    return collection
