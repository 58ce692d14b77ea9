"""Zeiss CZI, Leica LIF and Nikon ND2 through open_image, on real files from public repositories.

The files and where they come from are listed in tests/data/real/images/SOURCES.md. Expected shapes,
channel names and pixel sizes were read with each format's own library (pylibCZIrw's XML metadata and
bounding boxes, the nd2 package, liffile), not with bioio, which open_image uses.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dvp_pipeline.images as images
from dvp_pipeline.checks import check_channels
from dvp_pipeline.errors import DVPError
from dvp_pipeline.images import open_image, read_image

IMAGES = Path(__file__).parent / "data" / "real" / "images"
CZI = IMAGES / "s_1_t_1_c_1_z_1.czi"
CZI_2C = IMAGES / "testCziFile.czi"
ND2 = IMAGES / "example-multichannel.nd2"
LIF_STACK = IMAGES / "PR2729_frameOrderCombinedScanTypes.lif"

pytestmark = pytest.mark.formats  # CI installs the extra and requires these to pass (tests/conftest.py)


@pytest.fixture(autouse=True)
def formats_extra():
    pytest.importorskip("bioio")
    for plugin in ("bioio_czi", "bioio_lif", "bioio_nd2"):
        pytest.importorskip(plugin)


# (file, shape, channel names, pixel size in um) as the files' own libraries state them:
# s_1_t_1_c_1_z_1.czi: pylibCZIrw total bounding box X 39856..40331, Y 39272..39597 (475 x 325), C 1,
#   Information/Image/Dimensions/Channels Bright, Scaling/Distance X = 1.0833333333333333E-06 m;
# testCziFile.czi: pylibCZIrw bounding box X 0..2, Y 0..3, C 2, channels EGFP and DAPI,
#   Scaling/Distance X = 9.08E-07 m;
# example-multichannel.nd2: nd2 sizes C 4, Y 256, X 256, channels Mono, DAPI, FITC BP, TRITC BP,
#   voxel_size x = 0.323390342594048 um.
REAL = [
    (CZI, (1, 325, 475), ["Bright"], 1.0833333333333333),
    (CZI_2C, (2, 3, 2), ["EGFP", "DAPI"], 0.908),
    (ND2, (4, 256, 256), ["Mono", "DAPI", "FITC BP", "TRITC BP"], 0.323390342594048),
]


@pytest.mark.parametrize(("path", "shape", "names", "pixel_size"), REAL, ids=lambda v: getattr(v, "name", None))
def test_metadata_from_the_file(path, shape, names, pixel_size):
    with open_image(path) as image:
        assert image.shape == shape
        assert image.names == names
        assert image.pixel_size_um == pytest.approx(pixel_size, rel=1e-9)


@pytest.mark.parametrize("path", [CZI, ND2], ids=lambda p: p.name)
def test_region_equals_the_same_region_of_a_whole_read(path):
    with open_image(path) as image:
        whole = image.read()
        region = image.read(slice(100, 230), slice(40, 250))
        edge = image.read(slice(200, None), slice(None, 17))
    np.testing.assert_array_equal(region, whole[:, 100:230, 40:250])
    np.testing.assert_array_equal(edge, whole[:, 200:, :17])


@pytest.mark.parametrize("path", [CZI, CZI_2C], ids=lambda p: p.name)
def test_czi_pixels_equal_libczi_over_the_bounding_box(path):
    # pylibCZIrw composes each channel over the file's total bounding box (which for
    # s_1_t_1_c_1_z_1.czi starts at X 39856, Y 39272, not at 0).
    pyczi = pytest.importorskip("pylibCZIrw.czi")
    image, _, _ = read_image(path)
    with pyczi.open_czi(str(path)) as czi:
        box = czi.total_bounding_box
        roi = (box["X"][0], box["Y"][0], box["X"][1] - box["X"][0], box["Y"][1] - box["Y"][0])
        planes = range(*box["C"])
        expected = np.stack([czi.read(plane={"C": c, "T": 0, "Z": 0}, roi=roi)[..., 0] for c in planes])
    assert image.dtype == np.uint16  # Gray16 in both files
    np.testing.assert_array_equal(image, expected)


def test_czi_is_read_lazily_one_channel_plane_at_a_time():
    # Each channel of testCziFile.czi is one subblock; the dask chunks follow them, so a region
    # reads only the planes under it. (No permissively licensed mosaic CZI was found, so the check that
    # a region of a mosaic reads only its tiles went with tiles.czi.)
    with open_image(CZI_2C) as image:
        assert image._array._dask.chunks == ((1, 1), (3,), (2,))


def test_nd2_pixels_equal_the_nd2_library():
    nd2 = pytest.importorskip("nd2")
    image, _, _ = read_image(ND2, channels=["DAPI", "TRITC BP"])
    np.testing.assert_array_equal(image, nd2.imread(ND2)[[1, 3]])


def test_lif_stack_is_refused_naming_its_planes():
    # liffile: TileScan_001 has T 2, M 4 (tiles), Z 3, C 2, Y 64, X 64.
    with pytest.raises(DVPError, match=r"PR2729_frameOrderCombinedScanTypes\.lif: .*3 z-planes, 2 time points"):
        open_image(LIF_STACK)


def test_lif_axis_only_liffile_reports_is_refused(monkeypatch):
    # bioio-lif keeps only T, C, Z, Y, X and tiles, so open_image also asks liffile for the LIF's axes.
    # No permissively licensed LIF with such an axis (a spectral λ scan) was found to store here, so
    # liffile's real answer for this file gets a 20-plane λ axis added; the refusal must name it.
    real = images._lif_sizes
    assert real(LIF_STACK) == {"T": 2, "M": 4, "Z": 3, "C": 2, "Y": 64, "X": 64}
    monkeypatch.setattr(images, "_lif_sizes", lambda path: {"λ": 20, **real(path)})
    with pytest.raises(DVPError, match=r"CombinedScanTypes\.lif: .*3 z-planes, 2 time points, λ = 20;"):
        open_image(LIF_STACK)


def test_configured_channels_select_by_the_files_names():
    with open_image(ND2, channels=["DAPI", "FITC BP"]) as image:
        assert image.shape == (2, 256, 256)
        assert image.names == ["DAPI", "FITC BP"]
    with pytest.raises(DVPError, match=r"example-multichannel\.nd2: channel\(s\) CD8 not in the image; it has Mono"):
        open_image(ND2, channels=["DAPI", "CD8"])


def _config(channels):
    return {
        "channels": channels,
        "pixel_size_um": None,
        "nuclear_channel": "DAPI",
        "segment": {"method": "classical", "classical": {"nucleus_diameter_um": 7.0}, "cellpose": {}},
        "classify": {"method": "gating", "cell_types": [{"name": "T", "positive": ["FITC BP"]}], "thresholds": {}},
    }


def test_checks_accept_an_nd2_sample_by_its_channel_names():
    samples = pd.DataFrame({"sample": ["s1"], "condition": ["TEN"], "image": [ND2.name]})
    where = dict(base=IMAGES, source="config.yaml", samples_path=IMAGES / "samples.tsv")
    check_channels(_config(["DAPI", "FITC BP"]), samples, **where)
    with pytest.raises(DVPError, match=r"channel 'FITC BP' is not a channel of example-multichannel\.nd2"):
        check_channels(_config(["DAPI", "TRITC BP"]), samples, **where)


@pytest.mark.parametrize(("module", "suffix", "fmt"), [("bioio_czi", ".czi", "CZI"), ("bioio", ".nd2", "ND2")])
def test_missing_extra_is_one_clear_sentence(monkeypatch, tmp_path, module, suffix, fmt):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    path = tmp_path / f"x{suffix}"
    path.write_bytes(b"")
    with pytest.raises(DVPError) as err:
        open_image(path)
    assert str(err.value) == f"{path}: reading {fmt} needs the formats extra: pip install 'dvp-pipeline[formats]'"


def test_damaged_file_names_file_and_format(tmp_path):
    path = tmp_path / "broken.czi"
    path.write_bytes(CZI.read_bytes()[:4000])
    with pytest.raises(DVPError, match=r"broken\.czi: not a readable CZI image"):
        with open_image(path) as image:
            image.read()
