import json
import os
import re

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage.draw import disk

from dvp_pipeline import slide as slide_stage
from dvp_pipeline.cli import main
from dvp_pipeline.errors import DVPError
from dvp_pipeline.segmentation import match_labels, segment_cells_and_nuclei
from dvp_pipeline.simulate import big_slide_tile, write_big_slide
from dvp_pipeline.tiling import segment_tiled, tile_grid


def test_tile_cores_cover_the_image_once():
    tiles = tile_grid((1000, 700), tile_size=256, overlap=30)
    cover = np.zeros((1000, 700), int)
    for t in tiles:
        y0, y1, x0, x1 = t.core
        cover[y0:y1, x0:x1] += 1
        ry0, ry1, rx0, rx1 = t.region
        assert ry0 == max(0, y0 - 30) and ry1 == min(1000, y1 + 30)
        assert rx0 == max(0, x0 - 30) and rx1 == min(700, x1 + 30)
    assert (cover == 1).all()
    assert len(tiles) == 4 * 3


def test_tile_grid_rejects_bad_sizes():
    with pytest.raises(DVPError, match="tile_size"):
        tile_grid((100, 100), tile_size=4, overlap=2)
    with pytest.raises(DVPError, match="overlap"):
        tile_grid((100, 100), tile_size=64, overlap=-1)


@pytest.fixture(scope="module")
def slide():
    """A 1,200 x 1,200 synthetic slide region (about 5,000 nuclei) with its untiled segmentation."""
    image = big_slide_tile(0, 0, 1200, 1200, seed=3)
    cells, nuclei = segment_cells_and_nuclei(image, pixel_size_um=0.5)
    return image, cells, nuclei


@pytest.mark.parametrize("tile_size", [256, 500])
def test_tiled_matches_untiled(slide, tile_size):
    image, cells, nuclei = slide
    tiled_cells, tiled_nuclei = segment_tiled(image, tile_size=tile_size, overlap=60, pixel_size_um=0.5)
    assert int(tiled_cells.max()) == len(np.unique(tiled_cells)) - 1  # numbered 1..N
    for tiled, untiled in ((tiled_cells, cells), (tiled_nuclei, nuclei)):
        match = match_labels(tiled, untiled, iou_threshold=0.9)
        assert match["recall"] >= 0.99
        assert match["precision"] >= 0.99
    # The nucleus of cell k is labelled k.
    inside = tiled_nuclei > 0
    assert (tiled_nuclei[inside] == tiled_cells[inside]).all()


def test_cells_across_borders_and_corners_are_whole_and_single():
    # Cells straddling a vertical border, a horizontal border and the corner where four tiles meet.
    image = np.full((1, 400, 400), 10.0)
    centres = [(100, 200), (200, 100), (200, 200), (300, 199), (199, 300), (50, 50)]
    for cy, cx in centres:
        rr, cc = disk((cy, cx), 9, shape=image.shape[1:])
        image[0, rr, cc] = 1000.0
    untiled, _ = segment_cells_and_nuclei(image, pixel_size_um=0.5)
    tiled, _ = segment_tiled(image, tile_size=200, overlap=40, pixel_size_um=0.5)
    assert int(tiled.max()) == len(centres)
    for cy, cx in centres:
        label = tiled[cy, cx]
        assert label > 0
        a, b = tiled == label, untiled == untiled[cy, cx]
        assert (a & b).sum() / (a | b).sum() == 1.0


@pytest.fixture(scope="module")
def slide_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("slide") / "slide.ome.tif"
    write_big_slide(path, size=700, tile=256, seed=1)
    return path


def _segment(path, out, *extra):
    return main(
        [
            "segment",
            str(path),
            "--sample",
            "S",
            "--labels",
            str(out / "labels.tif"),
            "--nuclei",
            str(out / "nuclei.tif"),
            "--cells",
            str(out / "cells.parquet"),
            *extra,
        ]
    )


def test_cli_tiles_as_jobs_equal_one_job(slide_file, tmp_path):
    options = ["--options", json.dumps({"tile_size": 256})]
    assert _segment(slide_file, tmp_path / "one", *options) == 0
    plan = tmp_path / "plan.json"
    assert main(["segment", str(slide_file), "--write-plan", str(plan), *options]) == 0
    n = len(json.loads(plan.read_text())["tiles"])
    assert n == 9
    tiles = [str(tmp_path / f"t{k}.npz") for k in range(n)]
    for k in range(n):
        args = ["segment", str(slide_file), "--plan", str(plan), "--tile", str(k), "--tile-out", tiles[k]]
        assert main([*args, *options]) == 0
    assert _segment(slide_file, tmp_path / "jobs", "--plan", str(plan), "--gather", *tiles, *options) == 0
    for name in ("labels.tif", "nuclei.tif"):
        assert (tifffile.imread(tmp_path / "one" / name) == tifffile.imread(tmp_path / "jobs" / name)).all()
    one = pd.read_parquet(tmp_path / "one" / "cells.parquet")
    jobs = pd.read_parquet(tmp_path / "jobs" / "cells.parquet")
    pd.testing.assert_frame_equal(one, jobs)
    # Gathering tiles in the wrong order is an error.
    assert _segment(slide_file, tmp_path / "bad", "--plan", str(plan), "--gather", *tiles[::-1], *options) == 2


def test_cli_result_does_not_depend_on_the_worker_count(slide_file, tmp_path, capsys):
    options = ["--options", json.dumps({"tile_size": 256})]
    assert _segment(slide_file, tmp_path / "one", "--workers", "1", *options) == 0
    # two processes segment and measure the 9 tiles; the config key works like --workers
    assert _segment(slide_file, tmp_path / "two", "--options", json.dumps({"tile_size": 256, "workers": 2})) == 0
    for name in ("labels.tif", "nuclei.tif"):
        assert (tifffile.imread(tmp_path / "one" / name) == tifffile.imread(tmp_path / "two" / name)).all()
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "one" / "cells.parquet"),
        pd.read_parquet(tmp_path / "two" / "cells.parquet"),
        check_exact=True,
    )
    assert _segment(slide_file, tmp_path / "bad", "--workers", "0", *options) == 2
    assert "--workers: expected a positive number of processes, got 0" in capsys.readouterr().err


def test_default_workers_are_the_cores_or_fewer():
    plan = {"tiles": [{"region": [0, 2208, 0, 2208]}]}
    assert 1 <= slide_stage.default_workers(plan) <= len(os.sched_getaffinity(0))


def test_cli_preview_segments_a_few_tiles_and_writes_nothing_else(slide_file, tmp_path, caplog):
    options = ["--options", json.dumps({"tile_size": 256})]
    out = tmp_path / "preview.png"
    with caplog.at_level("INFO"):
        assert main(["segment", str(slide_file), "--preview", str(out), "--preview-tiles", "2", *options]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "preview.png"
    ]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("preview tile")]
    assert [line.split(":")[0] for line in lines] == ["preview tile 0", "preview tile 8"]
    assert all(int(line.split(": ")[1].split(" cells")[0]) > 10 for line in lines)
    assert main(["segment", str(slide_file), "--preview", str(out), "--preview-tiles", "0", *options]) == 2


def test_cli_on_disk_labels_equal_in_memory(slide_file, tmp_path, monkeypatch):
    options = ["--options", json.dumps({"tile_size": 256})]
    assert _segment(slide_file, tmp_path / "memory", *options) == 0
    monkeypatch.setattr(slide_stage, "IN_MEMORY_PIXELS", 0)  # force the zarr scratch array
    assert _segment(slide_file, tmp_path / "disk", *options) == 0
    assert (
        tifffile.imread(tmp_path / "memory" / "labels.tif") == tifffile.imread(tmp_path / "disk" / "labels.tif")
    ).all()
    assert not list((tmp_path / "disk").glob("*.zarr"))  # scratch removed
    cells = pd.read_parquet(tmp_path / "disk" / "cells.parquet")
    assert cells["cell_id"].tolist() == list(range(1, len(cells) + 1))
    assert {"centroid_x_um", "nucleus_mean_DAPI", "cytoplasm_p99_KRT14", "neighbours"} <= set(cells.columns)


def test_cli_streams_cells_table_per_tile(slide_file, tmp_path):
    import pyarrow.parquet as pq

    from dvp_pipeline.features import add_neighbourhood_counts

    options = ["--options", json.dumps({"tile_size": 256})]
    assert _segment(slide_file, tmp_path, *options) == 0
    assert main(["segment", str(slide_file), "--sample", "S", "--labels", str(tmp_path / "l.tif"),
                 "--cells", str(tmp_path / "cells.tsv"), *options]) == 0  # fmt: skip
    # streamed tile by tile (one row group each), never concatenated in memory: a whole slide's
    # table is what made memory grow with the slide
    assert pq.ParquetFile(tmp_path / "cells.parquet").num_row_groups == 9
    cells = pd.read_parquet(tmp_path / "cells.parquet")
    assert cells["cell_id"].tolist() == list(range(1, len(cells) + 1))
    assert cells.columns[-1] == "neighbours"
    # neighbours counted over the whole slide, across tile borders, from the centroids alone
    expected = add_neighbourhood_counts(cells.drop(columns="neighbours"), radius_um=30.0)
    assert (cells["neighbours"] == expected["neighbours"]).all() and cells["neighbours"].max() > 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "cells.tsv", sep="\t"), cells, check_exact=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cells.parquet",
        "cells.tsv",
        "l.tif",
        "labels.tif",
        "nuclei.tif",
    ]


def test_cli_all_zero_channel_is_one_clear_error(tmp_path, capsys):
    image = big_slide_tile(0, 0, 200, 200)
    image[2] = 0
    path = tmp_path / "zero.tif"
    tifffile.imwrite(path, image)
    code = _segment(path, tmp_path, "--channels", "DAPI,KRT14,CD8,CD163", "--pixel-size", "0.5")
    assert code == 2
    err = capsys.readouterr().err
    assert "CD8 are all zero" in err
    assert not (tmp_path / "labels.tif").exists()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("uniform noise", r"shows no nuclei: its brightest part stands only 2\.\d noise SDs"),
        ("gaussian noise", r"shows no nuclei: its brightest part stands only 2\.\d noise SDs"),
        ("poisson noise", r"shows no nuclei"),
        ("constant", r"is uniform \(one value everywhere\)"),
    ],
)
@pytest.mark.parametrize("tile_size", [2048, 256])
def test_images_without_nuclei_are_refused_not_segmented(tmp_path, capsys, kind, message, tile_size):
    """Otsu always splits: pure noise once gave 480 'cells' and a 402-shape cutting file."""
    rng = np.random.default_rng(7)
    image = {
        "uniform noise": lambda: rng.integers(0, 4000, (2, 500, 500)),
        "gaussian noise": lambda: rng.normal(800, 60, (2, 500, 500)).clip(0),
        "poisson noise": lambda: rng.poisson(4, (2, 500, 500)),
        "constant": lambda: np.full((2, 500, 500), 300),
    }[kind]().astype(np.uint16)
    image[1] = 100 + np.arange(500, dtype=np.uint16)  # a second channel with something in it
    path = tmp_path / "noise.tif"
    tifffile.imwrite(path, image, photometric="minisblack")
    options = ["--options", json.dumps({"tile_size": tile_size})]
    code = _segment(path, tmp_path, "--channels", "DAPI,CD8", "--pixel-size", "0.5", *options)
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "labels.tif").exists() and not (tmp_path / "cells.parquet").exists()


def test_real_stains_pass_the_contrast_check(slide):
    from dvp_pipeline.tiling import MIN_CONTRAST, plan_tiles

    image = big_slide_tile(0, 0, 600, 600, seed=3)
    plan = plan_tiles(image, tile_size=256, overlap=40, options={"pixel_size_um": 0.5})
    assert plan["contrast"] > 5 * MIN_CONTRAST and not plan["blank"]


def test_a_margin_narrower_than_what_auto_looks_at_is_warned_about(caplog):
    from dvp_pipeline.tiling import plan_tiles

    image = np.random.default_rng(0).normal(100, 5, (1, 300, 300)).astype(np.float32)
    image[0, 100:114, 100:114] += 400
    with caplog.at_level("WARNING", logger="dvp_pipeline.tiling"):
        plan_tiles(image, tile_size=128, overlap=80, options={"pixel_size_um": 0.5})
        assert not caplog.records  # 8 nucleus radii = 56 px at the defaults
        plan_tiles(image, tile_size=128, overlap=30, options={"pixel_size_um": 0.5})
    assert "narrower than the background/local-threshold reach (56 px)" in caplog.text
