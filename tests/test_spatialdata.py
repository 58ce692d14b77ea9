"""SpatialData export (dvp_pipeline.spatial, ``dvp export-spatialdata``) and label pyramids (dvp_pipeline.pyramid).

A small simulated sample goes through the real ``dvp segment``, ``dvp classify``, ``dvp select`` and
``dvp plate`` subcommands into a results folder, is exported with ``dvp export-spatialdata`` and read
back with ``spatialdata.read_zarr``: elements, coordinate transforms, the table-to-labels link, channel
names and LMD shapes are checked against the files the stages wrote.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

from dvp_pipeline import simulate
from dvp_pipeline.cli import build_parser, main
from dvp_pipeline.errors import DVPError
from dvp_pipeline.images import open_image
from dvp_pipeline.layout import Results
from dvp_pipeline.pyramid import label_levels, write_label_pyramid
from dvp_pipeline.selection import cell_outlines

pytestmark = pytest.mark.spatial

SAMPLE = "TEN01"
PIXEL = 0.5
CHANNELS = list(simulate.CHANNELS)


@pytest.fixture(scope="module")
def sd():
    return pytest.importorskip("spatialdata")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder after segment and classify (real subcommands) and select of one simulated sample."""
    root = tmp_path_factory.mktemp("project")
    tissue = simulate.simulate_tissue("TEN", seed=4, size=300)
    image = root / "data" / f"{SAMPLE}.ome.tif"
    image.parent.mkdir()
    simulate.write_ome_tiff(tissue.image, image, channels=CHANNELS, pixel_size_um=PIXEL)
    (root / "config").mkdir()
    (root / "config" / "samples.tsv").write_text(f"sample\tcondition\timage\n{SAMPLE}\tTEN\tdata/{SAMPLE}.ome.tif\n")
    results = Results(str(root / "results"))
    assert main(["segment", str(image), "--sample", SAMPLE, "--labels", results.labels(SAMPLE),
                 "--nuclei", results.nuclei(SAMPLE), "--cells", results.cells(SAMPLE)]) == 0  # fmt: skip
    assert main(["classify", results.cells(SAMPLE), "--out", results.cells_classified(SAMPLE),
                 "--thresholds", results.thresholds(SAMPLE)]) == 0  # fmt: skip
    # The select and plate stages, by their own subcommands: every pool's shapes, with its well
    lmd = os.path.dirname(results.pools(SAMPLE))
    options = json.dumps({"cell_types": ["keratinocyte", "cd8_t_cell"], "max_cells_per_pool": 20})
    outputs = {"pools": results.pools(SAMPLE), "selection": results.selection(SAMPLE)}
    outputs |= {"shapes": results.shapes_table(SAMPLE), "geojson": results.shapes(SAMPLE)}
    outputs |= {"summary": results.lmd_summary(SAMPLE), "preview": os.path.join(lmd, "preview.png")}
    assert main(["select", results.cells_classified(SAMPLE), results.labels(SAMPLE), "--sample", SAMPLE,
                 "--calibration", "10,10;290,10;10,290", "--options", options,
                 *(x for name, path in outputs.items() for x in (f"--{name}", path))]) == 0  # fmt: skip
    assert main(["plate", "--pools", results.pools(SAMPLE), "--selection", results.selection(SAMPLE),
                 "--plate-map", results.plate_map(), "--sample-key", results.sample_key(),
                 "--queue", results.ms_queue(), "--runs-out", results.generated_runs(),
                 "--figure", results.plate_figure()]) == 0  # fmt: skip
    return root, results


@pytest.fixture(scope="module")
def exported(project, sd):
    """The sample exported with ``dvp export-spatialdata`` (from the project folder) and read back."""
    root, results = project
    out = root / "results" / SAMPLE / f"{SAMPLE}.spatialdata.zarr"
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["export-spatialdata", SAMPLE, "--levels", "3"]) == 0
    finally:
        os.chdir(cwd)
    assert out.is_dir()
    return sd.read_zarr(out)


def _labels(results):
    return tifffile.imread(results.labels(SAMPLE))


def test_elements_present(exported):
    assert list(exported.images) == ["image"]
    assert sorted(exported.labels) == ["cells", "nuclei"]
    assert sorted(exported.shapes) == ["cell_outlines", "lmd_shapes"]
    assert list(exported.tables) == ["table"]
    assert exported.coordinate_systems == ["global"]
    assert exported.attrs["dvp"]["sample"] == SAMPLE and exported.attrs["dvp"]["pixel_size_um"] == PIXEL


def test_every_element_maps_to_micrometres_by_the_pixel_size(exported):
    from spatialdata.transformations import Scale, get_transformation

    for name in ["image", "cells", "nuclei", "cell_outlines", "lmd_shapes"]:
        transform = get_transformation(exported[name], "global")
        assert isinstance(transform, Scale), name
        scale = dict(zip(transform.axes, transform.scale, strict=True))
        assert scale.pop("c", 1.0) == 1.0 and scale == {"y": PIXEL, "x": PIXEL}, name


def test_cell_centroids_in_micrometres_are_pixel_centroids_times_pixel_size(project, exported):
    from spatialdata import get_centroids

    _, results = project
    labels = _labels(results)
    table = exported["table"]
    spatial = pd.DataFrame(table.obsm["spatial"], columns=["x", "y"], index=table.obs["cell_id"].to_numpy())
    # spatialdata's own centroids of the labels element, in the global system (µm)
    centroids = get_centroids(exported["cells"], coordinate_system="global").compute()
    assert sorted(centroids.index) == sorted(spatial.index)
    np.testing.assert_allclose(centroids.loc[spatial.index, ["x", "y"]].to_numpy(), spatial.to_numpy(), atol=1e-9)
    # and by hand: the mean pixel (pixel corners on integers, so centres at index + 0.5) times the pixel size
    for cell_id in spatial.index[:: max(1, len(spatial) // 20)]:
        rows, cols = np.nonzero(labels == cell_id)
        np.testing.assert_allclose(spatial.loc[cell_id, "x"], (cols.mean() + 0.5) * PIXEL, atol=1e-9)
        np.testing.assert_allclose(spatial.loc[cell_id, "y"], (rows.mean() + 0.5) * PIXEL, atol=1e-9)
    cells = pd.read_parquet(results.cells_classified(SAMPLE)).set_index("cell_id")
    np.testing.assert_allclose(
        spatial.to_numpy(), (cells.loc[spatial.index, ["centroid_x", "centroid_y"]].to_numpy() + 0.5) * PIXEL
    )


def test_table_annotates_the_cell_labels(project, exported):
    from spatialdata.models import get_table_keys

    _, results = project
    labels = _labels(results)
    table = exported["table"]
    assert get_table_keys(table) == ("cells", "region", "cell_id")
    ids = table.obs["cell_id"].to_numpy()
    present = set(np.unique(labels).tolist()) - {0}
    assert set(ids.tolist()) <= present and len(set(ids.tolist())) == len(ids)
    assert set(ids.tolist()) == present  # every cell of the labels has its row
    assert (table.obs["region"] == "cells").all()
    assert list(table.var_names) == CHANNELS
    cells = pd.read_parquet(results.cells_classified(SAMPLE)).set_index("cell_id")
    assert (table.obs["cell_type"].to_numpy() == cells.loc[ids, "cell_type"].to_numpy()).all()
    np.testing.assert_allclose(table.X[:, 1], cells.loc[ids, "mean_KRT14"].to_numpy(), rtol=1e-6)


def test_image_has_the_channel_names_and_levels(project, exported):
    from spatialdata.models import get_channel_names

    root, _ = project
    assert get_channel_names(exported["image"]) == CHANNELS
    scale0 = exported["image"]["scale0"]["image"]
    assert scale0.shape == (4, 300, 300) and [len(exported["image"])] == [3]
    with open_image(root / "data" / f"{SAMPLE}.ome.tif") as image:
        np.testing.assert_array_equal(scale0.data.compute(), image.read())


def test_label_levels_are_every_other_pixel(project, exported):
    _, results = project
    for name, path in [("cells", results.labels(SAMPLE)), ("nuclei", results.nuclei(SAMPLE))]:
        labels = tifffile.imread(path)
        assert len(exported[name]) == 3
        for k in range(3):
            np.testing.assert_array_equal(exported[name][f"scale{k}"]["image"].data.compute(), labels[:: 2**k, :: 2**k])


def test_lmd_shapes_are_the_pools_shapes_with_their_wells(project, exported):
    root, results = project
    shapes = exported["lmd_shapes"]
    table = pd.read_parquet(results.shapes_table(SAMPLE))
    key = pd.read_csv(results.sample_key(), sep="\t").set_index("pool_id")
    assert len(shapes) == len(table) > 0
    assert shapes["pool_id"].tolist() == table["pool_id"].tolist()
    assert shapes["cell_ids"].tolist() == table["cell_ids"].tolist()
    assert shapes["well"].tolist() == key.loc[table["pool_id"], "well"].tolist()
    assert set(shapes["cell_type"]) == {"keratinocyte", "cd8_t_cell"}
    for polygon, x, y in zip(shapes.geometry, table["x"], table["y"], strict=True):
        np.testing.assert_allclose(np.asarray(polygon.exterior.coords), np.column_stack([x, y]))


def test_cell_outlines_one_per_cell(project, exported):
    _, results = project
    labels = _labels(results)
    outlines = exported["cell_outlines"]
    ids = sorted(set(np.unique(labels).tolist()) - {0})
    assert sorted(outlines["cell_id"].tolist()) == ids
    expected = cell_outlines(labels, ids[:25], dilation_px=0.0, simplify_px=0.5)
    by_id = outlines.set_index("cell_id").geometry
    for cell_id, ring in expected.items():
        np.testing.assert_allclose(np.asarray(by_id[cell_id].exterior.coords), ring)


def test_cell_polygons_do_not_depend_on_the_tiling(project, sd):
    from dvp_pipeline.spatial import cell_polygons

    _, results = project
    labels = _labels(results)
    # a cell far larger than the halo, across several tiles
    labels = labels.copy()
    labels[200:290, 10:150] = labels.max() + 1
    whole = cell_polygons(labels, tile=4096)
    tiled = cell_polygons(labels, tile=64, halo=8)
    assert whole["cell_id"].tolist() == tiled["cell_id"].tolist() == sorted(set(np.unique(labels).tolist()) - {0})
    for a, b in zip(whole.geometry, tiled.geometry, strict=True):
        assert a.equals_exact(b, tolerance=0)
    big = tiled.set_index("cell_id").geometry[int(labels.max())]
    assert big.area == pytest.approx(90 * 140, rel=0.01)


def test_export_before_classify_and_select(project, sd, tmp_path):
    """Only segment has run: the table is cells.parquet and there are no LMD shapes."""
    from dvp_pipeline.spatial import sample_spatialdata, write_spatialdata

    root, results = project
    early = Results(str(tmp_path / "results"))
    (tmp_path / "results" / SAMPLE).mkdir(parents=True)
    for name in ("labels.tif", "cells.parquet"):
        (tmp_path / "results" / SAMPLE / name).write_bytes((root / "results" / SAMPLE / name).read_bytes())
    sdata = sample_spatialdata(early, SAMPLE, image_path=root / "data" / f"{SAMPLE}.ome.tif", levels=2)
    assert sorted(sdata.labels) == ["cells"] and sorted(sdata.shapes) == ["cell_outlines"]
    assert "cell_type" not in sdata["table"].obs
    out = tmp_path / "out.zarr"
    write_spatialdata(sdata, out)
    back = sd.read_zarr(out)
    assert len(back["table"]) == len(pd.read_parquet(results.cells(SAMPLE)))


def test_failed_write_leaves_the_earlier_export(project, sd, tmp_path, monkeypatch):
    from dvp_pipeline.spatial import sample_spatialdata, write_spatialdata

    root, results = project
    sdata = sample_spatialdata(results, SAMPLE, image_path=root / "data" / f"{SAMPLE}.ome.tif", levels=1)
    out = tmp_path / "sample.zarr"
    write_spatialdata(sdata, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def broken(self, path, **kwargs):
        (path / "partial").mkdir(parents=True)
        raise RuntimeError("killed")

    monkeypatch.setattr(type(sdata), "write", broken)
    with pytest.raises(RuntimeError, match="killed"):
        write_spatialdata(sdata, out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["sample.zarr"]  # no temporary folder left


def test_mismatched_inputs_fail_with_one_message(project, sd, tmp_path):
    from dvp_pipeline.spatial import sample_spatialdata

    root, results = project
    other = tmp_path / "other.ome.tif"
    simulate.write_ome_tiff(np.zeros((4, 200, 300), dtype=np.uint16), other, channels=CHANNELS, pixel_size_um=PIXEL)
    with pytest.raises(DVPError, match="not the image this sample was segmented on"):
        sample_spatialdata(results, SAMPLE, image_path=other)
    with pytest.raises(DVPError, match="labels.tif not found"):
        sample_spatialdata(Results(str(tmp_path)), SAMPLE, image_path=other)
    with pytest.raises(DVPError, match="KRT5"):
        sample_spatialdata(results, SAMPLE, image_path=root / "data" / f"{SAMPLE}.ome.tif", channels=["DAPI", "KRT5"])


def test_cli_unknown_sample_and_help(project, sd, capsys, monkeypatch):
    root, _ = project
    monkeypatch.chdir(root)
    code = main(["export-spatialdata", "TEN1", "--samples", str(root / "config" / "samples.tsv"),
                 "--results", str(root / "results")])  # fmt: skip
    assert code == 2 and "did you mean 'TEN01'" in capsys.readouterr().err
    helptext = build_parser()._subparsers._group_actions[0].choices["export-spatialdata"].format_help()
    assert "from napari_spatialdata import Interactive" in helptext
    assert "Interactive(sd.read_zarr(" in helptext and "import spatialdata as sd" in helptext


# label pyramids (dvp_pipeline.pyramid): need zarr only


def _random_labels(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 1000, shape).astype(np.uint32)


@pytest.mark.parametrize("shape", [(300, 300), (517, 263), (1, 5)])
def test_label_pyramid_levels_are_the_labels_subsampled(tmp_path, shape):
    labels = _random_labels(shape)
    out = tmp_path / "labels.zarr"
    shapes = write_label_pyramid(labels, out, levels=4, tile=64, chunk=32, pixel_size_um=PIXEL, name="cells")
    group = zarr.open_group(out, mode="r")
    attrs = dict(group.attrs)
    datasets = attrs["multiscales"][0]["datasets"]
    assert len(datasets) == len(shapes) == min(4, int(np.log2(min(shape))) + 1)
    assert "image-label" in attrs
    for k, dataset in enumerate(datasets):
        np.testing.assert_array_equal(group[dataset["path"]][:], labels[:: 2**k, :: 2**k])
        assert dataset["coordinateTransformations"][0]["scale"] == [PIXEL * 2**k] * 2
    # and the lazy levels the SpatialData export uses are the same
    for k, level in enumerate(label_levels(labels, levels=4, chunk=48)):
        np.testing.assert_array_equal(level.compute(), labels[:: 2**k, :: 2**k])


def test_label_pyramid_from_a_label_tiff(tmp_path):
    labels = _random_labels((700, 450), seed=1)
    path = tmp_path / "labels.tif"
    tifffile.imwrite(path, labels, tile=(128, 128), compression="zlib")
    out = tmp_path / "labels.zarr"
    write_label_pyramid(path, out, levels=3, tile=256, pixel_size_um=PIXEL)
    with open_image(out) as back:  # the pipeline's own OME-Zarr reader: level 0 and the pixel size
        assert back.pixel_size_um == PIXEL
        np.testing.assert_array_equal(back.read()[0], labels)
    np.testing.assert_array_equal(zarr.open_group(out, mode="r")["2"][:], labels[::4, ::4])
    with pytest.raises(DVPError, match="multiple of"):
        write_label_pyramid(path, tmp_path / "bad.zarr", levels=3, tile=90)
    assert not (tmp_path / "bad.zarr").exists()
    image = tmp_path / "image.tif"
    tifffile.imwrite(image, np.zeros((2, 10, 10), dtype=np.float32))
    with pytest.raises(DVPError, match="integer label image"):
        write_label_pyramid(image, tmp_path / "image.zarr")
