import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.errors import DVPError
from dvp_pipeline.features import add_neighbourhood_counts, measure_cells, to_anndata


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
        "median_DAPI",
        "integrated_DAPI",
        "p90_DAPI",
        "p99_DAPI",
        "median_KRT14",
        "integrated_KRT14",
        "p90_KRT14",
        "p99_KRT14",
    ]
    assert cells["cell_id"].tolist() == [2, 7]
    assert cells["median_DAPI"].tolist() == pytest.approx([4.5, 10.0])
    assert cells["integrated_DAPI"].tolist() == pytest.approx([36.0, 160.0])
    assert cells["p90_DAPI"].iloc[0] == pytest.approx(np.percentile(np.arange(1, 9), 90))
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


def test_compartments_offset_and_percentiles_match_numpy():
    rng = np.random.default_rng(1)
    labels = np.zeros((40, 50), np.uint32)
    labels[2:20, 3:25] = 4
    labels[22:38, 10:45] = 9
    nuclei = np.where((labels == 4) & (np.arange(50) < 10), 4, 0).astype(np.uint32)  # cell 9 has none
    image = rng.integers(0, 1000, size=(2, 40, 50)).astype(np.uint16)
    cells = measure_cells(
        labels, image, channel_names=["A", "B"], pixel_size_um=0.5, nuclei=nuclei, offset=(100, 200)
    ).set_index("cell_id")
    assert cells.loc[4, "centroid_y"] == pytest.approx(10.5 + 100)
    assert cells.loc[4, "centroid_x_um"] == pytest.approx((13.5 + 200) * 0.5)
    for cell, mask in ((4, labels == 4), (9, labels == 9)):
        values = image[1][mask].astype(float)
        assert cells.loc[cell, "median_B"] == pytest.approx(np.median(values))
        assert cells.loc[cell, "p99_B"] == pytest.approx(np.percentile(values, 99))
        assert cells.loc[cell, "integrated_B"] == pytest.approx(values.sum())
    inside, outside = image[0][nuclei == 4], image[0][(labels == 4) & (nuclei == 0)]
    assert cells.loc[4, "nucleus_mean_A"] == pytest.approx(inside.mean())
    assert cells.loc[4, "nucleus_p90_A"] == pytest.approx(np.percentile(inside, 90))
    assert cells.loc[4, "cytoplasm_median_A"] == pytest.approx(np.median(outside))
    assert cells.loc[4, "nucleus_area_um2"] == pytest.approx((nuclei == 4).sum() * 0.25)
    assert np.isnan(cells.loc[9, "nucleus_mean_A"]) and np.isnan(cells.loc[9, "nucleus_area_um2"])
    assert cells.loc[9, "cytoplasm_mean_A"] == pytest.approx(cells.loc[9, "mean_A"])


def test_shape_matches_scikit_image():
    from skimage.draw import ellipse
    from skimage.measure import regionprops_table

    labels = np.zeros((80, 80), np.uint32)
    labels[ellipse(30, 30, 12, 6, rotation=0.5, shape=labels.shape)] = 1
    labels[ellipse(60, 55, 8, 15, shape=labels.shape)] = 2
    cells = measure_cells(labels, labels[None].astype(float), channel_names=["A"], pixel_size_um=1.0)
    ref = regionprops_table(labels.astype(int), properties=("centroid", "eccentricity", "solidity", "perimeter"))
    assert cells["eccentricity"].to_numpy() == pytest.approx(ref["eccentricity"])
    assert cells["centroid_y"].to_numpy() == pytest.approx(ref["centroid-0"])
    assert cells["solidity"].to_numpy() == pytest.approx(ref["solidity"])
    assert cells["perimeter_um"].to_numpy() == pytest.approx(ref["perimeter"])


def test_shapes_equal_scikit_image_exactly():
    """Perimeter and solidity are computed for all cells at once, yet equal regionprops' to the last bit."""
    from skimage.measure import regionprops_table

    rng = np.random.default_rng(3)
    for trial in range(20):
        # ragged, holed, split and single-pixel regions, touching the image border, ids with gaps
        shape = tuple(rng.integers(5, 60, 2))
        labels = (rng.random(shape) < rng.uniform(0.3, 0.9)) * rng.choice([1, 5, 300, 70_000], size=shape)
        labels = labels.astype(np.uint32)
        if not labels.any():
            continue
        cells = measure_cells(labels, labels[None] % 7, channel_names=["A"], pixel_size_um=1.0)
        ref = regionprops_table(labels.astype(int), properties=("label", "perimeter", "solidity"))
        assert cells["cell_id"].tolist() == ref["label"].tolist()
        assert np.array_equal(cells["perimeter_um"].to_numpy(), ref["perimeter"]), trial
        assert np.array_equal(cells["solidity"].to_numpy(), ref["solidity"]), trial


def test_integer_and_float_images_give_identical_statistics():
    # integer stains are sorted by a single packed key, other images by lexsort: the same numbers
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 40, size=(60, 70)).astype(np.uint32)
    nuclei = np.where(rng.random(labels.shape) < 0.5, labels, 0).astype(np.uint32)
    image = rng.integers(0, 65536, size=(2, 60, 70)).astype(np.uint16)
    kwargs = {"channel_names": ["A", "B"], "pixel_size_um": 0.5, "nuclei": nuclei}
    pd.testing.assert_frame_equal(
        measure_cells(labels, image, **kwargs), measure_cells(labels, image.astype(float), **kwargs), check_exact=True
    )


def test_neighbourhood_counts():
    cells = pd.DataFrame({"centroid_y_um": [0.0, 0.0, 0.0, 100.0], "centroid_x_um": [0.0, 10.0, 25.0, 0.0]})
    counted = add_neighbourhood_counts(cells, radius_um=15.0)
    assert counted["neighbours"].tolist() == [1, 2, 1, 0]
    with pytest.raises(DVPError, match="radius"):
        add_neighbourhood_counts(cells, radius_um=0)


def test_anndata_export(labels, image, tmp_path):
    import anndata as ad

    nuclei = np.where(labels == 7, 7, 0).astype(np.uint32)
    cells = measure_cells(labels, image, channel_names=["DAPI", "KRT14"], pixel_size_um=0.5, sample="S", nuclei=nuclei)
    cells["cell_type"] = ["keratinocyte", "unassigned"]
    cells["confidence"] = [0.9, 0.6]
    adata = to_anndata(cells)
    adata.write_h5ad(tmp_path / "cells.h5ad")
    back = ad.read_h5ad(tmp_path / "cells.h5ad")
    assert list(back.var_names) == ["DAPI", "KRT14"]
    assert np.allclose(back.X, cells[["mean_DAPI", "mean_KRT14"]].to_numpy())
    assert list(back.obs["cell_type"]) == ["keratinocyte", "unassigned"]
    assert list(back.obs_names) == ["S_2", "S_7"]
    assert np.allclose(back.obsm["spatial"], cells[["centroid_x_um", "centroid_y_um"]].to_numpy())
    assert back.layers["nucleus_mean"].shape == (2, 2)
    # samples concatenate as scverse expects: unique cell names, layers and spatial kept
    other = to_anndata(cells.assign(sample="T"))
    both = ad.concat([back, other], merge="same")
    assert both.n_obs == 4 and both.obs_names.is_unique and both.layers["nucleus_mean"].shape == (4, 2)
    assert both.obsm["spatial"].shape == (4, 2) and list(both.var_names) == ["DAPI", "KRT14"]
