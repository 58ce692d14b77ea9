"""Bad inputs and faults: each is refused with one DVPError (``dvp``: one line, exit status 2) that names
the file and what was expected, and nothing is left behind.

Table-driven: every case builds its bad input in ``tmp_path`` and names the words the user must see.
``docs/bad-inputs.md`` lists these cases together with the probes that live next to their modules
(``tests/test_config.py``, ``test_images.py``, ``test_readers.py`` ...).
"""

import errno
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tifffile

from dvp_pipeline.classify import MODEL_FORMAT, load_model, predict_cell_types
from dvp_pipeline.cli import main
from dvp_pipeline.config import load_config, read_sheet
from dvp_pipeline.errors import DVPError
from dvp_pipeline.genesets import load_collection, parse_gmt
from dvp_pipeline.images import check_image_size, open_image, read_labels
from dvp_pipeline.leica import read_lmd_xml
from dvp_pipeline.options import SelectOptions
from dvp_pipeline.plates import reachable_wells
from dvp_pipeline.readers import read_ions
from dvp_pipeline.selection import resolve_calibration

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
CALIBRATION = SelectOptions.from_mapping({}).calibration  # no points, no image corners
CHANNELS = ["DAPI", "CD8"]


@dataclass(frozen=True)
class Bad:
    """A bad input: ``make`` builds it under a folder and returns the call that must refuse it."""

    make: Callable[[Path], Callable[[], object]]
    says: str  # regular expression the message must match


def files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def temporary_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*tmp*")]


# --- builders ----------------------------------------------------------------------------------


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def sheet(text: str) -> Callable[[Path], Callable[[], object]]:
    return lambda d: partial(read_sheet, write(d / "samples.tsv", text), "samples")


def config(text: str | bytes) -> Callable[[Path], Callable[[], object]]:
    return lambda d: partial(load_config, write(d / "config.yaml", text))


def ome_tiff(path: Path, description: str | None = None, **kwargs) -> Path:
    stack = np.random.default_rng(0).integers(0, 4000, size=(2, 40, 48), dtype=np.uint16)
    if description is None:
        metadata = {"axes": "CYX", "Channel": {"Name": CHANNELS}, "PhysicalSizeX": 0.5}
        tifffile.imwrite(path, stack, ome=True, metadata=metadata, **kwargs)
    else:
        tifffile.imwrite(path, stack, description=description, metadata=None, **kwargs)
    return path


def ome_xml_with(declaration: str, reference: str) -> str:
    """An OME-XML document with ``declaration`` before its root and ``reference`` as the first channel's name."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"{declaration}"
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" '
        'DimensionOrder="XYCZT" Type="uint16" SizeX="48" SizeY="40" SizeC="2" SizeZ="1" SizeT="1" '
        'PhysicalSizeX="0.5"><Channel ID="Channel:0:0" Name="' + reference + '" SamplesPerPixel="1"/>'
        '<Channel ID="Channel:0:1" Name="CD8" SamplesPerPixel="1"/><TiffData IFD="0" PlaneCount="2"/>'
        "</Pixels></Image></OME>"
    )


def image_with_xml(declaration: str, reference: str) -> Callable[[Path], Callable[[], object]]:
    return lambda d: partial(open_image, ome_tiff(d / "crafted.ome.tif", ome_xml_with(declaration, reference)))


def tiff_with_tag(tag: str, value: int, **kwargs) -> Callable[[Path], Callable[[], object]]:
    """A TIFF whose header tag ``tag`` was overwritten (a damaged copy)."""

    def make(d: Path):
        path = ome_tiff(d / "damaged.tif", description="", **kwargs)
        with tifffile.TiffFile(path, mode="r+b") as tif:
            for page in tif.pages:
                page.tags[tag].overwrite(value)
        return lambda: open_image(path)

    return make


def report(name: str, content: Callable[[Path], None]) -> Callable[[Path], Callable[[], object]]:
    def make(d: Path):
        path = d / name
        content(path)
        return lambda: read_ions(path)

    return make


def diann_table() -> pd.DataFrame:
    return pd.read_parquet(DATA / "readers" / "diann2_report.parquet")


def non_utf8_tsv(path: Path) -> None:
    diann_table().to_csv(path, sep="\t", index=False)
    path.write_bytes(path.read_bytes().replace(b"\tP1\tP1\t", b"\tP1\tP\xff1\t"))  # Protein.Group


def list_column(path: Path) -> None:
    table = diann_table()
    table["Run"] = [[1]] * len(table)
    table.to_parquet(path)


def broken_pandas_metadata(path: Path) -> None:
    table = pa.Table.from_pandas(diann_table())
    pq.write_table(table.replace_schema_metadata({b"pandas": b"{not json"}), path)


def lmd(content: bytes) -> Callable[[Path], Callable[[], object]]:
    return lambda d: partial(read_lmd_xml, write(d / "shapes.xml", content))


LMD_HEAD = (
    b"<ImageData><X_CalibrationPoint_1>0</X_CalibrationPoint_1><Y_CalibrationPoint_1>0</Y_CalibrationPoint_1>"
    b"<X_CalibrationPoint_2>100</X_CalibrationPoint_2><Y_CalibrationPoint_2>0</Y_CalibrationPoint_2>"
    b"<X_CalibrationPoint_3>0</X_CalibrationPoint_3><Y_CalibrationPoint_3>-100</Y_CalibrationPoint_3>"
)


def shape(number: int, x1: bytes = b"10") -> bytes:
    return (
        f"<Shape_{number}><PointCount>3</PointCount><X_1>".encode()
        + x1
        + b"</X_1><Y_1>-10</Y_1><X_2>20</X_2><Y_2>-10</Y_2><X_3>20</X_3><Y_3>-20</Y_3>"
        + f"</Shape_{number}>".encode()
    )


def model(change: Callable[[dict], object], *, apply: bool = True) -> Callable[[Path], Callable[[], object]]:
    """A saved classifier model, changed by ``change``, loaded and (with ``apply``) applied to two cells."""

    def make(_d: Path):
        tree = {"left": [1, -1, -1], "right": [2, -1, -1], "feature": [0, -2, -2], "threshold": [0.5, -2, -2]}
        saved = {
            "format": MODEL_FORMAT,
            "features": ["mean_CD8"],
            "classes": ["a", "b"],
            "trees": [{**tree, "value": [[0.5, 0.5], [1, 0], [0, 1]]}],
        }
        saved = change(saved) or saved
        cells = pd.DataFrame({"mean_CD8": [0.1, 0.9]})
        if not apply:  # a model that would make predict_cell_types loop forever
            return lambda: load_model(json.dumps(saved), source="model.json")
        return lambda: predict_cell_types(cells, load_model(json.dumps(saved), source="model.json"))

    return make


def gmt(content: str | bytes, name: str = "sets.gmt") -> Callable[[Path], Callable[[], object]]:
    return lambda d: partial(load_collection, str(write(d / name, content)))


LIBRARY = {
    # config (dvp run --dry-run reads it through load_config)
    "config-not-yaml": Bad(config("samples: [unclosed\n"), r"config\.yaml: not valid YAML"),
    "config-a-list": Bad(config("- samples\n- runs\n"), r"config\.yaml: expected a mapping"),
    "config-empty": Bad(config(""), r"config\.yaml: expected a mapping"),
    "config-a-folder": Bad(lambda d: lambda: load_config(d), "config file not found"),
    "config-binary": Bad(config(b"\x89PNG\r\n\x1a\n\x00\xff"), r"config\.yaml: .*UTF-8"),
    "config-missing-required": Bad(config("samples: s.tsv\n"), r"'runs' is a required property"),
    # samples and runs sheets
    "sheet-empty": Bad(sheet(""), r"samples\.tsv: cannot read samples sheet"),
    "sheet-header-only": Bad(sheet("sample\tcondition\timage\n"), "the samples sheet has no rows"),
    "sheet-binary": Bad(sheet(b"\x89PNG\r\n\x1a\n\x00\xff\xfe"), r"samples\.tsv: cannot read samples sheet .*utf-8"),
    "sheet-open-quote": Bad(sheet('sample\tcondition\timage\n"S1\tTEN\ta.tif\n'), "EOF inside string"),
    "sheet-a-folder": Bad(lambda d: lambda: read_sheet(d, "samples"), "samples sheet not found"),
    "sheet-pixel-size-text": Bad(
        sheet("sample\tcondition\timage\tpixel_size_um\nS1\tTEN\ta.tif\tsmall\n"), r"'small' is not of type 'number'"
    ),
    "sheet-pixel-size-zero": Bad(
        sheet("sample\tcondition\timage\tpixel_size_um\nS1\tTEN\ta.tif\t0\n"), r"pixel_size_um: 0.0 is less than"
    ),
    "sheet-pixel-size-nan": Bad(
        sheet("sample\tcondition\timage\tpixel_size_um\nS1\tTEN\ta.tif\tnan\n"), "pixel_size_um"
    ),
    "sheet-row-longer-than-header": Bad(
        sheet("sample\tcondition\timage\nS1\tTEN\ta.tif\textra\n"), "more values than the header"
    ),
    "sheet-later-row-longer": Bad(
        sheet("sample\tcondition\timage\nS1\tTEN\ta.tif\nS2\tTEN\tb.tif\textra\n"), "Expected 3 fields in line 3"
    ),
    "sheet-column-twice": Bad(
        sheet("sample\tcondition\timage\tsample\nS1\tTEN\ta.tif\tS2\n"),
        r"column\(s\) 'sample' appear more than once",
    ),
    # images
    "image-external-entity": Bad(
        image_with_xml('<!DOCTYPE OME [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "&x;"),
        r"crafted\.ome\.tif: OME-XML contains a DTD/entity declaration; refused for safety",
    ),
    "image-entity-expansion": Bad(
        image_with_xml('<!DOCTYPE OME [<!ENTITY a "DAPI"><!ENTITY b "&a;&a;&a;&a;">]>', "&b;"),
        "OME-XML contains a DTD/entity declaration",
    ),
    "image-doctype": Bad(image_with_xml("<!DOCTYPE OME>", "DAPI"), "OME-XML contains a DTD/entity declaration"),
    "image-size-beyond-its-tiles": Bad(
        tiff_with_tag("ImageLength", 4_000_000, tile=(16, 16), compression="zlib"),
        r"damaged\.tif: damaged TIFF \(the header's image size 4000000x48 needs 750000 strips or tiles",
    ),
    "image-uncompressed-data-short": Bad(
        tiff_with_tag("StripByteCounts", 100), r"damaged TIFF \(uncompressed image of 3840 bytes, the file holds 100"
    ),
    "image-smaller-than-a-nucleus": Bad(
        lambda d: lambda: check_image_size((2, 6, 6), pixel_size_um=0.5, nucleus_diameter_um=7.0, source="tiny.tif"),
        r"tiny\.tif: the image is 6 x 6 pixels .* smaller than one nucleus \(7 um = 14 pixels\)",
    ),
    "labels-not-integer": Bad(
        lambda d: partial(read_labels, _tiff(d / "labels.tif", np.zeros((8, 8), np.float32))),
        r"labels\.tif: expected a 2-D integer label image, got float32",
    ),
    "labels-not-a-tiff": Bad(
        lambda d: partial(read_labels, write(d / "labels.tif", "cell_id\n1\n")), r"labels\.tif: cannot read label"
    ),
    "image-a-folder-not-zarr": Bad(lambda d: lambda: open_image(d), "not a readable OME-Zarr image"),
    # search-engine reports
    "report-binary": Bad(report("report.tsv", lambda p: write(p, b"\x00\x01\x02")), "cannot tell the format"),
    "report-a-folder": Bad(lambda d: lambda: read_ions(d), "search-engine output not found"),
    "report-csv-named-parquet": Bad(
        report("report.parquet", lambda p: write(p, "Run,Protein.Group\n")), r"cannot read the header .*Parquet"
    ),
    "report-not-utf8": Bad(report("report.tsv", non_utf8_tsv), "not UTF-8"),
    "report-list-column": Bad(report("report.parquet", list_column), "lists"),
    "report-damaged-pandas-metadata": Bad(report("report.parquet", broken_pandas_metadata), "cannot read columns"),
    # gene sets
    "gmt-set-twice": Bad(gmt("S\td\tA\nS\td\tB\n"), r"sets\.gmt, line 2: set 'S' is defined twice"),
    "gmt-empty": Bad(gmt(""), r"sets\.gmt: no gene sets found"),
    "gmt-comments-only": Bad(gmt("# sets\n\n"), "no gene sets found"),
    "gmt-binary": Bad(gmt(b"\x89PNG\r\n\x1a\n\x00\x00"), r"line 1: expected name, description and at least one"),
    "gmt-a-folder": Bad(lambda d: lambda: load_collection(str(d)), "nor an existing GMT file"),
    "gmt-no-members": Bad(lambda d: lambda: parse_gmt("S\tdescription\n"), "found 2 field"),
    # LMD XML and calibration points
    "lmd-unknown-encoding": Bad(
        lmd(b"<?xml version='1.0' encoding='utf-99'?><ImageData/>"), "cannot decode the XML .*utf-99"
    ),
    "lmd-empty": Bad(lmd(b""), "not well-formed XML"),
    "lmd-truncated": Bad(lmd(LMD_HEAD + shape(1)[:40]), "not well-formed XML"),
    "lmd-vertex-not-a-number": Bad(lmd(LMD_HEAD + shape(1, b"ten") + b"</ImageData>"), "<X_1> in <Shape_1> must be"),
    "lmd-vertex-infinite": Bad(lmd(LMD_HEAD + shape(1, b"1e400") + b"</ImageData>"), "must be finite"),
    "lmd-shapes-skip-a-number": Bad(
        lmd(LMD_HEAD + shape(1) + shape(3) + b"</ImageData>"), r"shapes must be numbered Shape_1..Shape_2"
    ),
    "lmd-a-folder": Bad(lambda d: lambda: read_lmd_xml(d), "file not found"),
    "calibration-two-points": Bad(
        lambda d: lambda: resolve_calibration("0,0;1,1", CALIBRATION, sample="S", image_shape=(9, 9), pixel_size_um=1),
        "expected exactly 3 finite",
    ),
    "calibration-collinear": Bad(
        lambda d: (
            lambda: resolve_calibration("0,0;5,5;9,9", CALIBRATION, sample="S", image_shape=(9, 9), pixel_size_um=1)
        ),
        "lie on one line",
    ),
    "calibration-none": Bad(
        lambda d: lambda: resolve_calibration(None, CALIBRATION, sample="S", image_shape=(9, 9), pixel_size_um=1),
        "no calibration points",
    ),
    "plate-well-outside": Bad(lambda d: lambda: reachable_wells(96, ["H13"]), "'H13' is not on a 96-well plate"),
    # trained classifier models
    "model-not-json": Bad(lambda d: lambda: load_model("\x80\x04 pickle"), "not a JSON classifier model"),
    "model-no-features": Bad(model(lambda m: m.update(features=[])), "model has no features"),
    "model-tree-not-a-mapping": Bad(model(lambda m: m.update(trees=[1])), "tree 0 is malformed"),
    "model-child-out-of-range": Bad(model(lambda m: m["trees"][0].update(left=[7, -1, -1])), "tree 0 is malformed"),
    "model-feature-out-of-range": Bad(
        model(lambda m: m["trees"][0].update(feature=[3, -2, -2])), "tree 0 is malformed"
    ),
    "model-tree-loops": Bad(
        model(lambda m: m["trees"][0].update(left=[0, -1, -1]), apply=False), "tree 0 is malformed"
    ),
}


def _tiff(path: Path, array: np.ndarray) -> Path:
    tifffile.imwrite(path, array)
    return path


@pytest.mark.parametrize("case", LIBRARY.values(), ids=LIBRARY.keys())
def test_reader_refuses_with_a_message_that_names_it(tmp_path, case):
    call = case.make(tmp_path)
    before = files(tmp_path)
    with pytest.raises(DVPError, match=case.says):
        call()
    assert files(tmp_path) == before, "a refused input must not leave files behind"


# --- through the command line: one line on stderr, exit status 2, no output ---------------------


def assert_one_line(err: str, stage: str, says: str) -> None:
    """stderr ends with one ``dvp STAGE: error: ...`` message matching ``says``, and has no traceback.

    Log lines may come before it; the message itself may go on over a few lines (a list of problems).
    """
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("dvp ")]
    assert len(starts) == 1, err
    assert lines[starts[0]].startswith(f"dvp {stage}: error: "), err
    message = "\n".join(lines[starts[0] :])
    assert re.search(says, message), message


def cohort(
    d: Path, *, conditions=("TEN", "TEN", "TEN", "MPR"), n_proteins=50, results: Path | None = None
) -> list[str]:
    """Files for ``dvp differential``: a protein matrix, samples and runs sheets; returns the arguments."""
    names = [f"S{i + 1}" for i in range(len(conditions))]
    pd.DataFrame({"sample": names, "condition": conditions, "image": "x.tif"}).to_csv(
        d / "samples.tsv", sep="\t", index=False
    )
    runs = [f"r{i + 1}" for i in range(len(conditions))]
    pd.DataFrame({"run": runs, "sample": names, "cell_type": "keratinocyte"}).to_csv(
        d / "runs.tsv", sep="\t", index=False
    )
    values = np.random.default_rng(1).normal(20, 1, size=(n_proteins, len(runs)))
    proteins = pd.DataFrame(values, columns=runs)
    proteins.insert(0, "genes", [f"G{i}" for i in range(n_proteins)])
    proteins.insert(0, "protein", [f"P{i}" for i in range(n_proteins)])
    proteins.to_csv(d / "proteins.tsv", sep="\t", index=False)
    return [
        "differential",
        str(d / "proteins.tsv"),
        "--samples",
        str(d / "samples.tsv"),
        "--runs",
        str(d / "runs.tsv"),
        "--results",
        str(results or d / "results"),
        "--options",
        '{"contrasts": [["TEN", "MPR"]]}',
    ]


def dry_run(config_text: str | bytes | None) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        if config_text is not None:
            write(d / "config" / "config.yaml", config_text)
        return ["run", "--dry-run", "--directory", str(d)]

    return make


def project(d: Path, damage: Callable[[Path], object] | None = None) -> list[str]:
    """A copy of the starter project with small stand-in images and report; ``damage`` spoils its first image.

    Returns the arguments of ``dvp run --dry-run``, which validates everything before any job.
    """
    from dvp_pipeline.simulate import write_ome_tiff

    shutil.copytree(ROOT / "config", d / "config", ignore=shutil.ignore_patterns("README.md"))
    samples = pd.read_csv(d / "config" / "samples.tsv", sep="\t")
    for image in samples["image"]:
        (d / image).parent.mkdir(parents=True, exist_ok=True)
        write_ome_tiff(np.zeros((4, 32, 32), np.uint16), d / image, channels=["DAPI", "KRT14", "CD8", "CD163"])
    runs = pd.read_csv(d / "config" / "runs.tsv", sep="\t")
    numbers = dict.fromkeys(["Q.Value", "PG.Q.Value", "Precursor.Normalised"], 0.0)
    pd.DataFrame({"Run": runs["run"], "Protein.Group": "P1", "Precursor.Id": "AK2", **numbers}).to_parquet(
        d / "data" / "sample" / "diann_report.parquet"
    )
    if damage is not None:
        damage(d / samples["image"].iloc[0])
    return ["run", "--dry-run", "--directory", str(d)]


def xxe_image(path: Path) -> None:
    ome_tiff(path, ome_xml_with('<!DOCTYPE OME [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "&x;"))


def image_size_beyond_its_tiles(path: Path) -> None:
    tiff_with_tag("ImageLength", 4_000_000, tile=(16, 16))(path.parent)
    (path.parent / "damaged.tif").replace(path)


def with_options(text: str) -> Callable[[Path], list[str]]:
    return lambda d: [*cohort(d)[:-1], text]


def classify_with_model(content: bytes | None) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        pd.DataFrame({"cell_id": [1, 2], "mean_DAPI": [1.0, 2.0]}).to_parquet(d / "cells.parquet")
        if content is not None:
            write(d / "model.json", content)
        out = ["--out", str(d / "out" / "classified.parquet"), "--thresholds", str(d / "out" / "thresholds.tsv")]
        return ["classify", str(d / "cells.parquet"), *out, "--model", str(d / "model.json")]

    return make


def results_blocked_by_a_file(d: Path) -> list[str]:
    argv = cohort(d, conditions=("TEN", "TEN", "MPR", "MPR"))
    write(d / "results", "not a folder")
    return argv


def output_is_a_folder(d: Path) -> list[str]:
    pd.DataFrame({"cell_id": [1, 2], "mean_DAPI": [1.0, 2.0]}).to_parquet(d / "cells.parquet")
    (d / "classified.parquet").mkdir()
    options = '{"cell_types": [{"name": "x", "positive": ["DAPI"]}]}'
    return ["classify", str(d / "cells.parquet"), "--out", str(d / "classified.parquet")] + [
        "--thresholds",
        str(d / "thresholds.tsv"),
        "--options",
        options,
    ]


def region_class_misspelt(d: Path) -> list[str]:
    """Regions drawn as class 'tumour', selected as 'tumor': refused by the dry run, not after segmentation."""
    argv = project(d)
    square = {"type": "Polygon", "coordinates": [[[0, 0], [16, 0], [16, 16], [0, 16], [0, 0]]]}
    feature = {"type": "Feature", "geometry": square, "properties": {"classification": {"name": "tumour"}}}
    write(d / "regions.geojson", json.dumps({"type": "FeatureCollection", "features": [feature]}))
    samples = pd.read_csv(d / "config" / "samples.tsv", sep="\t").assign(regions="regions.geojson")
    samples.to_csv(d / "config" / "samples.tsv", sep="\t", index=False)
    config = d / "config" / "config.yaml"
    config.write_text(config.read_text().replace("region_classes: null", "region_classes: [tumor]"))
    return argv


CLI = {
    "config-not-found": Bad(dry_run(None), r"dvp run: error: .*config\.yaml: config file not found"),
    "dry-run-image-with-entity": Bad(
        lambda d: project(d, xxe_image),
        r"dvp run: error: .*samples\.tsv, row 2 \(sample TEN01\): .*TEN01\.ome\.tif: OME-XML contains a DTD",
    ),
    "dry-run-image-size-beyond-its-tiles": Bad(
        lambda d: project(d, image_size_beyond_its_tiles), r"dvp run: error: .*TEN01\.ome\.tif: damaged TIFF"
    ),
    "dry-run-region-class-misspelt": Bad(
        region_class_misspelt,
        r"dvp run: error: .*samples\.tsv, row 2: sample TEN01: regions: QuPath annotations: no polygon of class "
        r"'tumor'; classes present: tumour",
    ),
    "config-not-yaml": Bad(dry_run("samples: [unclosed\n"), r"dvp run: error: .*config\.yaml: not valid YAML"),
    "config-binary": Bad(dry_run(b"\x89PNG\r\n\x1a\n\x00\xff"), r"dvp run: error: .*UTF-8"),
    "options-not-json-or-yaml": Bad(with_options("{contrasts: [[TEN"), r"--options: .*not valid"),
    "options-file-missing": Bad(with_options("@absent.yaml"), r"--options: file absent\.yaml not found"),
    "options-a-list": Bad(with_options("[1, 2]"), "--options: expected a mapping of option names"),
    "options-unknown-key": Bad(with_options('{"contrast": [["TEN", "MPR"]]}'), "unknown key 'contrast'"),
    "one-run-in-a-group": Bad(
        cohort,
        r"dvp differential: error: keratinocyte/TEN_vs_MPR \(TEN - MPR in keratinocyte\): no protein passes the "
        r"valid-value filter, .* Group MPR has 1 run\(s\) \(r4\), fewer than the filter asks: add runs, or lower "
        r"differential.min_valid_per_group to 1",
    ),
    "one-run-per-group": Bad(
        lambda d: [
            *cohort(d, conditions=("TEN", "MPR"))[:-1],
            '{"contrasts": [["TEN", "MPR"]], "min_valid_per_group": 1}',
        ],
        r"2 runs for 2 groups leave no residual degrees of freedom.*TEN 1 run, MPR 1 run.*a group needs a second run",
    ),
    "proteins-a-folder": Bad(
        lambda d: [*cohort(d)[:1], str(d), *cohort(d)[2:]],
        r"dvp differential: error: .*: is a folder, expected a table",
    ),
    "model-missing": Bad(classify_with_model(None), r"--model: file .*model\.json not found"),
    "model-binary": Bad(classify_with_model(b"\x80\x04\x95 pickle \xff"), "model.json"),
    "results-folder-is-a-file": Bad(
        results_blocked_by_a_file, r"dvp differential: error: \S*/results: a file stands where a folder is expected"
    ),
    "output-is-a-folder": Bad(output_is_a_folder, r"dvp classify: error: .*classified\.parquet: is a folder"),
}


@pytest.mark.parametrize("case", CLI.values(), ids=CLI.keys())
def test_dvp_refuses_in_one_line_with_exit_status_2(tmp_path, capsys, case):
    argv = case.make(tmp_path)
    before = files(tmp_path)
    assert main(argv) == 2
    assert_one_line(capsys.readouterr().err, argv[0], case.says)
    assert files(tmp_path) == before, "a refused run must not write or leave files"


# --- faults of the file system while a stage writes --------------------------------------------


def _differential(d: Path, results: Path | None = None) -> tuple[list[str], dict[Path, bytes]]:
    """A differential run that succeeds, and its outputs (path -> bytes)."""
    results = results or d / "results"
    argv = cohort(d, conditions=("TEN", "TEN", "MPR", "MPR"), n_proteins=300, results=results)
    assert main(argv) == 0
    return argv, {p: p.read_bytes() for p in files(results)}


def test_disk_full_while_writing_gives_one_line_and_keeps_earlier_outputs(tmp_path, capsys, monkeypatch):
    argv, earlier = _differential(tmp_path)
    capsys.readouterr()
    original = pd.DataFrame.to_csv

    def fill_the_disk(self, path, *args, **kwargs):
        original(self.head(3), path, *args, **kwargs)  # part of the file reaches the disk, then it is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_csv", fill_the_disk)
    assert main(argv) == 2
    table = tmp_path / "results" / "cohort" / "differential" / "keratinocyte" / "TEN_vs_MPR.tsv"
    assert_one_line(
        capsys.readouterr().err,
        "differential",
        rf"^dvp differential: error: {table}: no space left on device; .*earlier outputs are unchanged",
    )
    assert {p: p.read_bytes() for p in files(tmp_path / "results")} == earlier
    assert temporary_files(tmp_path) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs mounted in tmp_path (needs root, as CI runs); skipped where mounting is refused
    (a failure in CI, where tests/conftest.py turns every skip into one)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here; the monkeypatched test covers ENOSPC")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); the monkeypatched test covers ENOSPC")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_disk_gives_one_line_and_no_partial_file(tmp_path, tiny_disk, capsys):
    argv, earlier = _differential(tmp_path, tiny_disk / "results")
    filler = os.open(tiny_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # take every block that is left
        while True:
            os.write(filler, b"\0" * 4096)
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(filler)
    capsys.readouterr()
    assert main(argv) == 2
    assert_one_line(capsys.readouterr().err, "differential", r": no space left on device; free some space")
    assert {p: p.read_bytes() for p in files(tiny_disk / "results")} == earlier
    assert temporary_files(tiny_disk) == []


def test_read_only_file_system_gives_one_line(tmp_path, tiny_disk, capsys):
    argv, earlier = _differential(tmp_path, tiny_disk / "results")
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    capsys.readouterr()
    assert main(argv) == 2
    assert_one_line(capsys.readouterr().err, "differential", r": read-only file system; write the results")
    assert {p: p.read_bytes() for p in files(tiny_disk / "results")} == earlier


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_file_size_limit_gives_one_line_and_keeps_earlier_outputs(tmp_path):
    argv, earlier = _differential(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "dvp_pipeline", *argv],
        preexec_fn=_limit_file_size(4096),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    table = tmp_path / "results" / "cohort" / "differential" / "keratinocyte" / "TEN_vs_MPR.tsv"
    assert_one_line(
        done.stderr, "differential", rf"^dvp differential: error: {table}: file too large: the file-size limit"
    )
    assert {p: p.read_bytes() for p in files(tmp_path / "results")} == earlier
    assert temporary_files(tmp_path) == []


def test_file_size_limit_on_a_tiff_writer_without_errno(tmp_path):
    # numpy's tofile (under tifffile) reports a short write with no errno; atomic_output still names the cause.
    from dvp_pipeline.simulate import write_labels

    script = (
        "import sys, numpy as np\n"
        "from dvp_pipeline.simulate import write_labels\n"
        "labels = np.random.default_rng(0).integers(0, 2**31, size=(512, 512)).astype(np.uint32)\n"
        f"write_labels(labels, {str(tmp_path / 'labels.tif')!r})\n"
    )
    write_labels(np.ones((4, 4), np.uint32), tmp_path / "labels.tif")
    earlier = (tmp_path / "labels.tif").read_bytes()
    done = subprocess.run(
        [sys.executable, "-c", script], preexec_fn=_limit_file_size(64 * 1024), capture_output=True, text=True
    )
    assert done.returncode != 0
    assert f"[Errno {errno.EFBIG}]" in done.stderr and "labels.tif" in done.stderr, done.stderr
    assert (tmp_path / "labels.tif").read_bytes() == earlier
    assert temporary_files(tmp_path) == []


def test_permission_denied_gives_one_line(tmp_path, capsys, monkeypatch):
    config = write(tmp_path / "config" / "config.yaml", "samples: s.tsv\n")
    original = Path.read_text

    def forbidden(self, *args, **kwargs):
        if self == config:  # what the kernel answers for a file without read permission (root reads all)
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", forbidden)
    assert main(["run", "--dry-run", "--directory", str(tmp_path)]) == 2
    assert_one_line(capsys.readouterr().err, "run", rf"^dvp run: error: {config}: permission denied$")


def test_other_os_errors_still_show_a_traceback(tmp_path, monkeypatch):
    # Only refusals of the file system are the user's to fix; any other OSError is a bug and must stay visible.
    import dvp_pipeline.cli.differential as stage

    def broken(*_args, **_kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(stage, "differential_analysis", broken)
    with pytest.raises(OSError, match="Input/output error"):
        main(cohort(tmp_path))


def test_disk_full_is_reported_for_every_writer_of_atomic_output(tmp_path):
    from dvp_pipeline import io

    (tmp_path / "kept.json").write_text("{}\n")
    with pytest.raises(OSError) as raised, io.atomic_output(tmp_path / "kept.json") as tmp:
        tmp.write_text('{"half": ')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "kept.json")
    assert (tmp_path / "kept.json").read_text() == "{}\n"
    assert temporary_files(tmp_path) == []
    assert io.file_system_error(raised.value).startswith(f"{tmp_path / 'kept.json'}: no space left on device")
