import numpy as np
import pytest

from dvp_pipeline.errors import DVPError
from dvp_pipeline.features import measure_cells


@pytest.fixture
def labels():
    labels = np.zeros((10, 12), np.uint32)
    labels[1:3, 1:5] = 2  # 2 x 4 rectangle, centroid (1.5, 2.5)
    labels[5:9, 6:10] = 7  # 4 x 4 square, centroid (6.5, 7.5)
    return labels


@pytest.fixture
def image(labels):
    dapi = np.full(labels.shape, 10.0)
    dapi[1:3, 1:5] = [[1, 2, 3, 4], [5, 6, 7, 8]]
    krt14 = np.where(labels == 7, 100.0, 0.0)
    return np.stack([dapi, krt14])


def test_columns_and_values(labels, image):
    cells = measure_cells(labels, image, channel_names=["DAPI", "KRT14"], pixel_size_um=0.5, sample="TEN01")
    assert cells.columns.tolist() == [
        "cell_id",
        "sample",
        "centroid_y",
        "centroid_x",
        "centroid_y_um",
        "centroid_x_um",
        "area",
        "area_um2",
        "perimeter_um",
        "eccentricity",
        "solidity",
        "mean_DAPI",
        "mean_KRT14",
    ]
    assert cells["cell_id"].tolist() == [2, 7]
    assert cells["cell_id"].dtype == np.int64
    assert cells["sample"].tolist() == ["TEN01", "TEN01"]
    assert cells["area"].tolist() == [8, 16]
    assert cells["area_um2"].tolist() == pytest.approx([2.0, 4.0])
    assert cells["centroid_y"].tolist() == pytest.approx([1.5, 6.5])
    assert cells["centroid_x"].tolist() == pytest.approx([2.5, 7.5])
    assert cells["centroid_x_um"].tolist() == pytest.approx([1.25, 3.75])
    assert cells["mean_DAPI"].tolist() == pytest.approx([4.5, 10.0])
    assert cells["mean_KRT14"].tolist() == pytest.approx([0.0, 100.0])
    assert cells["solidity"].tolist() == pytest.approx([1.0, 1.0])
    assert cells["eccentricity"].iloc[1] == pytest.approx(0.0)  # a square's second moments are isotropic
    assert 0 < cells["eccentricity"].iloc[0] < 1
    assert (cells["perimeter_um"] > 0).all()


def test_single_channel_2d_image(labels, image):
    cells = measure_cells(labels, image[0], channel_names=["DAPI"], pixel_size_um=1.0)
    assert cells["mean_DAPI"].tolist() == pytest.approx([4.5, 10.0])
    assert cells["area_um2"].tolist() == pytest.approx([8.0, 16.0])


def test_no_cells_gives_empty_table_with_columns(image):
    cells = measure_cells(np.zeros((10, 12), np.uint32), image, channel_names=["DAPI", "KRT14"], pixel_size_um=0.5)
    assert len(cells) == 0
    assert "mean_KRT14" in cells.columns and "area_um2" in cells.columns


def test_mismatches_are_errors(labels, image):
    with pytest.raises(DVPError, match="1 channel names"):
        measure_cells(labels, image, channel_names=["DAPI"], pixel_size_um=0.5)
    with pytest.raises(DVPError, match="do not match"):
        measure_cells(labels[:5], image, channel_names=["DAPI", "KRT14"], pixel_size_um=0.5)
    with pytest.raises(DVPError, match="unique"):
        measure_cells(labels, image, channel_names=["DAPI", "DAPI"], pixel_size_um=0.5)
