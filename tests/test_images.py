import warnings

import numpy as np
import pytest
import tifffile

from dvp_pipeline.errors import DVPError
from dvp_pipeline.images import open_image, read_image, write_ome_zarr


@pytest.fixture
def stack():
    return np.random.default_rng(0).integers(0, 4000, size=(4, 24, 32), dtype=np.uint16)


@pytest.fixture
def ome_file(tmp_path, stack):
    path = tmp_path / "sample.ome.tif"
    tifffile.imwrite(
        path,
        stack,
        ome=True,
        metadata={
            "axes": "CYX",
            "Channel": {"Name": ["DAPI", "KRT14", "CD8", "CD163"]},
            "PhysicalSizeX": 0.5,
            "PhysicalSizeY": 0.5,
        },
    )
    return path


def test_ome_round_trip(ome_file, stack):
    image, names, pixel_size = read_image(ome_file)
    assert names == ["DAPI", "KRT14", "CD8", "CD163"]
    assert pixel_size == pytest.approx(0.5)
    assert image.shape == (4, 24, 32)
    np.testing.assert_array_equal(image, stack)


def test_ome_pixel_size_unit_converted(tmp_path, stack):
    path = tmp_path / "nm.ome.tif"
    tifffile.imwrite(path, stack, ome=True, metadata={"axes": "CYX", "PhysicalSizeX": 325.0, "PhysicalSizeXUnit": "nm"})
    assert read_image(path)[2] == pytest.approx(0.325)


def test_ome_channels_select_and_reorder_by_name(ome_file, stack):
    image, names, _ = read_image(ome_file, channels=["CD8", "DAPI"])
    assert names == ["CD8", "DAPI"]
    np.testing.assert_array_equal(image, stack[[2, 0]])


def test_requested_channel_missing_names_file_and_channels(ome_file):
    with pytest.raises(DVPError, match=r"sample\.ome\.tif.*CD4.*DAPI, KRT14, CD8, CD163"):
        read_image(ome_file, channels=["DAPI", "CD4"])


def test_plain_2d_tiff_is_one_channel(tmp_path, stack):
    path = tmp_path / "dapi.tif"
    tifffile.imwrite(path, stack[0])
    image, names, pixel_size = read_image(path)
    assert image.shape == (1, 24, 32)
    assert names == ["channel_0"]
    assert pixel_size is None
    assert read_image(path, channels=["DAPI"])[1] == ["DAPI"]


def test_plain_tiff_channel_names_from_config(tmp_path, stack):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    image, names, _ = read_image(path, channels=["DAPI", "KRT14", "CD8", "CD163"])
    assert names == ["DAPI", "KRT14", "CD8", "CD163"]
    np.testing.assert_array_equal(image, stack)


def test_channel_count_mismatch(tmp_path, stack):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    with pytest.raises(DVPError, match=r"plain\.tif: 3 channel names .* 4 channel"):
        read_image(path, channels=["DAPI", "KRT14", "CD8"])


def test_imagej_pixel_size(tmp_path, stack):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path, stack[np.newaxis], imagej=True, resolution=(4.0, 4.0), metadata={"axes": "ZCYX", "unit": "um"}
    )
    image, _, pixel_size = read_image(path)
    assert image.shape == (4, 24, 32)
    assert pixel_size == pytest.approx(0.25)


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9, 0.99])
def test_truncated_file(tmp_path, ome_file, fraction):
    data = ome_file.read_bytes()
    path = tmp_path / "truncated.ome.tif"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(DVPError, match="truncated.ome.tif"):
        read_image(path)


def test_not_a_tiff(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("hello")
    with pytest.raises(DVPError, match=r"notes\.tif: not a readable TIFF"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(DVPError, match="absent.tif: image file not found"):
        read_image(tmp_path / "absent.tif")


def test_empty_image(tmp_path):
    path = tmp_path / "empty.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile warns that a zero-size TIFF is nonconformant
        tifffile.imwrite(path, np.zeros((0, 5), np.uint16))
    with pytest.raises(DVPError, match=r"empty\.tif: image is empty"):
        read_image(path)


def test_z_stack_is_rejected(tmp_path, stack):
    path = tmp_path / "zstack.ome.tif"
    tifffile.imwrite(path, stack[:, np.newaxis].repeat(3, axis=1), ome=True, metadata={"axes": "CZYX"})
    with pytest.raises(DVPError, match=r"zstack\.ome\.tif: image has axes 'CZYX'"):
        read_image(path)


def test_open_image_reads_regions_lazily(ome_file, stack):
    with open_image(ome_file, channels=["CD8", "DAPI"]) as image:
        assert image.shape == (2, 24, 32)
        assert image.names == ["CD8", "DAPI"]
        assert image.pixel_size_um == pytest.approx(0.5)
        region = image.read(slice(3, 10), slice(20, 32))
    assert (region == stack[[2, 0], 3:10, 20:32]).all()


def test_pyramidal_ome_tiff_reads_full_resolution(tmp_path):
    full = np.random.default_rng(1).integers(0, 4000, size=(2, 300, 260), dtype=np.uint16)
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        meta = {"axes": "CYX", "Channel": {"Name": ["DAPI", "CD8"]}, "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25}
        tif.write(full, subifds=1, tile=(128, 128), metadata=meta)
        tif.write(full[:, ::2, ::2], subfiletype=1, tile=(128, 128))
    with open_image(path) as image:
        assert image.shape == (2, 300, 260)
        assert (image.read() == full).all()
        assert image.pixel_size_um == pytest.approx(0.25)
    image, names, _ = read_image(path)
    assert image.shape == (2, 300, 260) and names == ["DAPI", "CD8"]


def test_ome_zarr(tmp_path, stack):
    path = tmp_path / "sample.ome.zarr"
    write_ome_zarr(path, stack, channel_names=["DAPI", "KRT14", "CD8", "CD163"], pixel_size_um=0.65, chunk=16)
    with open_image(path, channels=["KRT14"]) as image:
        assert image.shape == (1, 24, 32)
        assert image.pixel_size_um == pytest.approx(0.65)
        assert (image.read(slice(5, 20), slice(0, 17)) == stack[1:2, 5:20, 0:17]).all()
    whole, names, _ = read_image(path)
    assert (whole == stack).all() and names == ["DAPI", "KRT14", "CD8", "CD163"]
    with pytest.raises(DVPError, match="PanCK"):
        open_image(path, channels=["DAPI", "PanCK"])


def test_folder_that_is_not_ome_zarr(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(DVPError, match="OME-Zarr"):
        open_image(tmp_path / "empty.zarr")


def test_plain_tiff_stack_lazily(tmp_path, stack):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    with open_image(path, channels=["A", "B", "C", "D"]) as image:
        assert image.shape == (4, 24, 32)
        assert (image.read(slice(0, 4), slice(0, 4)) == stack[:, :4, :4]).all()
        assert image.pixel_size_um is None
    with pytest.raises(DVPError, match="3 channel names configured"):
        open_image(path, channels=["A", "B", "C"])


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_file_lazily(tmp_path, ome_file, fraction):
    data = ome_file.read_bytes()
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(DVPError, match="cut.ome.tif"):
        with open_image(cut) as image:
            image.read()
