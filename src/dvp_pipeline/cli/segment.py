"""``dvp segment``: segment one sample's image and measure its cells.

Opens the image lazily (:func:`dvp_pipeline.images.open_image`), segments it tile by tile
(:mod:`dvp_pipeline.tiling`, which calls :func:`dvp_pipeline.segmentation.segment_cells_and_nuclei`),
measures each tile's cells as it goes (:func:`dvp_pipeline.features.measure_cells`) and writes the
cell and nucleus label images and the cells table, atomically, after all the work is done. Memory is
bounded by the tile size: whole-slide labels are assembled in a zarr array on disk and streamed into
a tiled TIFF, and each tile's cells table is streamed to a scratch Parquet file; only the centroids
of all cells stay in memory, for the neighbourhood counts, which are added as the table is copied
into place.

For a cluster the tiles can be separate jobs: ``--write-plan`` fixes the tiling (and the classical
method's whole-image threshold), ``--tile K --tile-out`` segments one tile, and ``--gather`` stitches
the tiles' results and measures the cells.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from dvp_pipeline import io
from dvp_pipeline.cli._common import add_options_argument, load_options
from dvp_pipeline.errors import DVPError
from dvp_pipeline.features import add_neighbourhood_counts, measure_cells
from dvp_pipeline.images import open_image
from dvp_pipeline.tiling import Stitcher, plan_tiles, read_region, segment_tile, tiles_of

# Below this many pixels the labels are assembled in memory; above it in a zarr array on disk.
IN_MEMORY_PIXELS = 64_000_000

log = logging.getLogger(__name__)


DESCRIPTION = "Segment cells in one sample's image and measure them (labels + cells table)."

EPILOG = """\
input:
  IMAGE            OME-TIFF (pyramids: the full-resolution level), TIFF, or OME-Zarr folder;
                   (channels, y, x) or (y, x). OME channel names and pixel sizes are used when present.
                   Read tile by tile: memory is bounded by segment.tile_size, not the slide.

outputs:
  --labels         uint32 cell label image (y, x), 0 = background, cells numbered 1..N (tiled TIFF, zlib)
  --nuclei         optional uint32 nucleus label image: the nucleus of cell k is labelled k
  --cells          cells table (.parquet or .tsv), one row per cell: cell_id (= label), sample,
                   centroid_y, centroid_x (pixels), centroid_y_um, centroid_x_um, area (pixels),
                   area_um2, perimeter_um, eccentricity, solidity, mean_<channel> for every channel,
                   then median_, integrated_, p90_, p99_<channel> (whole cell), nucleus_ shape, the
                   same statistics prefixed nucleus_ and cytoplasm_, and neighbours (cells within
                   neighbourhood_radius_um)

channels and pixel size:
  --channels       comma-separated names. If the image has OME channel names these select (and
                   order) channels by name; otherwise they name the image's channels in order and
                   their number must match. Default: the image's names (channel_0, channel_1 ... if none).
  --nuclear-channel  name of the nuclear stain (default: the first channel)
  --pixel-size     micrometres per pixel; default: the image's OME/ImageJ/OME-Zarr metadata. It is an
                   error if neither gives one (set pixel_size_um in samples.tsv or the config).

tiles as jobs (all three take IMAGE and the same channel/pixel/options arguments):
  --write-plan PLAN.json                 tiling and per-tile options; nothing is segmented
  --plan PLAN.json --tile K --tile-out T.npz   segment tile K of the plan
  --plan PLAN.json --gather T0.npz T1.npz ...  stitch the tiles (in plan order) into --labels,
                                               --nuclei, --cells

"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp segment``."""
    parser = subparsers.add_parser(
        "segment",
        help="segment cells in an image and measure them",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", metavar="IMAGE", help="image (OME-TIFF, TIFF or OME-Zarr folder)")
    parser.add_argument("--sample", help="sample name, written to the cells table")
    parser.add_argument("--labels", metavar="OUT.tif", help="cell label image to write")
    parser.add_argument("--nuclei", metavar="OUT.tif", help="nucleus label image to write (optional)")
    parser.add_argument("--cells", metavar="OUT.parquet", help="cells table to write")
    parser.add_argument("--channels", metavar="NAMES", help="comma-separated channel names (see below)")
    parser.add_argument("--nuclear-channel", metavar="NAME", help="nuclear stain channel (default: first)")
    parser.add_argument("--pixel-size", type=float, metavar="UM", help="micrometres per pixel")
    parser.add_argument("--write-plan", metavar="PLAN.json", help="write the tiling plan and stop")
    parser.add_argument("--plan", metavar="PLAN.json", help="a plan from --write-plan (with --tile or --gather)")
    parser.add_argument("--tile", type=int, metavar="K", help="segment only tile K of --plan into --tile-out")
    parser.add_argument("--tile-out", metavar="T.npz", help="where --tile writes its labels")
    parser.add_argument("--gather", nargs="+", metavar="T.npz", help="tiles' results to stitch, in plan order")
    add_options_argument(parser, "segment")
    parser.set_defaults(func=run)
    return parser


def run(args) -> None:
    """Run ``dvp segment`` with parsed arguments."""
    options = load_options(args, "segment")
    started = time.perf_counter()
    channels = [c.strip() for c in args.channels.split(",")] if args.channels else None
    with open_image(args.image, channels=channels) as image:
        pixel_size = args.pixel_size if args.pixel_size is not None else image.pixel_size_um
        if pixel_size is None:
            raise DVPError(
                f"{args.image}: no pixel size in the image metadata; pass --pixel-size "
                "(pixel_size_um in samples.tsv or the config)"
            )
        if not pixel_size > 0:
            raise DVPError(f"--pixel-size: expected a positive number of micrometres, got {pixel_size}")
        method, method_options = _method_options(args, options, image.names, pixel_size)
        log.info(
            "%s: %d channel(s) %s, %d x %d pixels at %.3g um; segmenting with %s",
            args.image,
            len(image.names),
            ",".join(image.names),
            image.shape[1],
            image.shape[2],
            pixel_size,
            method,
        )
        if args.tile is not None or args.tile_out:
            _run_tile(args, image)
            return
        if args.write_plan:
            plan = _plan(image, options, method, method_options, pixel_size)
            io.write_json(plan, args.write_plan)
            log.info("%s: %d tile(s) planned", args.image, len(plan["tiles"]))
            return
        missing = [
            flag
            for flag, value in [("--sample", args.sample), ("--labels", args.labels), ("--cells", args.cells)]
            if not value
        ]
        if missing:
            raise DVPError(f"dvp segment needs {', '.join(missing)} (or --write-plan, or --tile with --plan)")
        if args.gather:
            plan = _read_plan(args.plan, image)
        else:
            plan = _plan(image, options, method, method_options, pixel_size)
        n_cells = _segment_and_measure(args, image, plan, pixel_size, options["neighbourhood_radius_um"])
    log.info("%s: %d cells in %.1f s", args.sample, n_cells, time.perf_counter() - started)


def _method_options(args, options: dict, names: list[str], pixel_size: float) -> tuple[str, dict]:
    """The method and its options with channel names turned into indices."""

    def channel_index(name: str, what: str) -> int:
        if name not in names:
            raise DVPError(f"{args.image}: {what} {name!r} is not a channel; channels are {', '.join(names)}")
        return names.index(name)

    method = options["method"]
    if method not in ("classical", "cellpose"):
        raise DVPError(f"segment.method: {method!r} unknown; expected classical or cellpose")
    method_options = dict(options[method])
    for key in ("cytoplasm_channel", "membrane_channel"):
        if method_options.get(key) is not None:
            method_options[key] = channel_index(method_options[key], f"segment.{method}.{key}")
    method_options["nuclear_channel"] = (
        channel_index(args.nuclear_channel, "nuclear channel") if args.nuclear_channel else 0
    )
    method_options["pixel_size_um"] = pixel_size
    return method, method_options


def _plan(image, options: dict, method: str, method_options: dict, pixel_size: float) -> dict:
    overlap = int(np.ceil(options["overlap_um"] / pixel_size))
    plan = plan_tiles(image, method=method, tile_size=options["tile_size"], overlap=overlap, options=method_options)
    plan["channels"] = list(image.names)
    return plan


def _read_plan(path: str | None, image) -> dict:
    if not path:
        raise DVPError("--tile and --gather need --plan PLAN.json (from --write-plan)")
    try:
        plan = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DVPError(f"{path}: not a readable tiling plan ({err})") from err
    if list(plan.get("shape", [])) != list(image.shape) or plan.get("channels") != list(image.names):
        raise DVPError(
            f"{path}: plan is for an image of shape {plan.get('shape')} with channels {plan.get('channels')}, "
            f"not {list(image.shape)} with {image.names}; write the plan again"
        )
    return plan


def _run_tile(args, image) -> None:
    plan = _read_plan(args.plan, image)
    tiles = tiles_of(plan)
    if args.tile is None or not args.tile_out:
        raise DVPError("--tile K and --tile-out T.npz go together")
    if not 0 <= args.tile < len(tiles):
        raise DVPError(f"--tile {args.tile}: the plan {args.plan} has tiles 0..{len(tiles) - 1}")
    tile = tiles[args.tile]
    cells, nuclei = segment_tile(image, tile, plan=plan)
    with io.atomic_output(args.tile_out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, index=tile.index, cells=cells, nuclei=nuclei)
    log.info("tile %d: %d cells", tile.index, int(cells.max()) if cells.size else 0)


def _load_tile(path: str, expected: int):
    try:
        with np.load(path, allow_pickle=False) as data:
            index, cells, nuclei = int(data["index"]), data["cells"], data["nuclei"]
    except (OSError, ValueError, KeyError) as err:
        raise DVPError(f"{path}: not a tile result of dvp segment --tile ({err})") from err
    if index != expected:
        raise DVPError(f"{path}: holds tile {index}, expected tile {expected} (give tiles in plan order)")
    return cells, nuclei


class _TileTables:
    """Tiles' cells tables streamed to a scratch Parquet file, keeping only centroids in memory.

    Whole-slide tables (77 columns for 4 channels, a million cells) would otherwise dominate the
    memory of the segment stage; the neighbourhood counts need nothing but the centroids.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = None
        self.schema = None
        self.centroids: list[np.ndarray] = []

    def append(self, table: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            self.schema = arrow.schema
            self.writer = pq.ParquetWriter(self.path, self.schema)
        else:
            # every tile's table comes from measure_cells with the same columns and types
            arrow = pa.Table.from_pandas(table, schema=self.schema, preserve_index=False)
        self.writer.write_table(arrow)
        self.centroids.append(table[["centroid_y_um", "centroid_x_um"]].to_numpy(dtype=float))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def write(self, out: str, *, radius_um: float) -> int:
        """Write the cells table with ``neighbours`` to ``out`` (atomically); return the number of cells."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.close()
        points = np.concatenate(self.centroids) if self.centroids else np.zeros((0, 2))
        neighbours = add_neighbourhood_counts(
            pd.DataFrame(points, columns=["centroid_y_um", "centroid_x_um"]), radius_um=radius_um
        )["neighbours"].to_numpy()
        with io.atomic_output(out) as tmp:
            if not str(out).endswith(".parquet"):
                with open(tmp, "w", encoding="utf-8", newline="") as text:
                    for k, table in enumerate(self._read_back(neighbours)):
                        table.to_csv(text, sep="\t", index=False, na_rep="NA", header=k == 0)
                return len(neighbours)
            writer = None
            try:
                for table in self._read_back(neighbours):
                    arrow = pa.Table.from_pandas(table, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, arrow.schema)
                    writer.write_table(arrow)
            finally:
                if writer is not None:
                    writer.close()
        return len(neighbours)

    def _read_back(self, neighbours: np.ndarray):
        """The scratch table one tile (row group) at a time, with its cells' ``neighbours``."""
        import pyarrow.parquet as pq

        source = pq.ParquetFile(self.path)
        if source.num_row_groups == 0:  # a table without cells has no row groups
            yield source.schema_arrow.empty_table().to_pandas().assign(neighbours=neighbours)
            return
        start = 0
        for group in range(source.num_row_groups):
            table = source.read_row_group(group).to_pandas()
            table["neighbours"] = neighbours[start : start + len(table)]
            start += len(table)
            yield table


def _segment_and_measure(args, image, plan: dict, pixel_size: float, radius_um: float) -> int:
    shape = tuple(image.shape[1:])
    tiles = tiles_of(plan)
    if args.gather and len(args.gather) != len(tiles):
        raise DVPError(f"--gather: {len(args.gather)} tile file(s) given, the plan {args.plan} has {len(tiles)}")
    scratch = None
    if shape[0] * shape[1] <= IN_MEMORY_PIXELS:
        cells_out = np.zeros(shape, dtype=np.uint32)
        nuclei_out = np.zeros(shape, dtype=np.uint32)
    else:
        import zarr

        scratch = Path(args.labels).with_name(f".{Path(args.labels).name}.scratch.zarr")
        shutil.rmtree(scratch, ignore_errors=True)
        chunks = (1024, 1024)
        cells_out = zarr.open_array(scratch / "cells", mode="w", shape=shape, dtype=np.uint32, chunks=chunks)
        nuclei_out = zarr.open_array(scratch / "nuclei", mode="w", shape=shape, dtype=np.uint32, chunks=chunks)
    cells_path = Path(args.cells)
    tables = _TileTables(cells_path.with_name(f".{cells_path.name}.tiles.tmp{os.getpid()}.parquet"))
    try:
        stitcher = Stitcher(cells_out, nuclei_out)
        channel_max = np.zeros(image.shape[0])
        for tile in tiles:
            pixels = read_region(image, tile)
            channel_max = np.maximum(channel_max, pixels.reshape(pixels.shape[0], -1).max(axis=1))
            if args.gather:
                cells, nuclei = _load_tile(args.gather[tile.index], tile.index)
                if cells.shape != pixels.shape[1:]:
                    raise DVPError(f"{args.gather[tile.index]}: labels {cells.shape} do not fit tile {tile.index}")
            else:
                cells, nuclei = segment_tile(image, tile, plan=plan, pixels=pixels)
            final_cells, final_nuclei, ids = stitcher.add(tile, cells, nuclei)
            if len(ids):
                tables.append(
                    measure_cells(
                        final_cells,
                        pixels,
                        channel_names=image.names,
                        pixel_size_um=pixel_size,
                        sample=args.sample,
                        nuclei=final_nuclei,
                        offset=(tile.region[0], tile.region[2]),
                    )
                )
            log.debug("tile %d/%d: %d cells", tile.index + 1, len(tiles), len(ids))
        empty = [name for name, peak in zip(image.names, channel_max, strict=True) if peak == 0]
        if empty:
            raise DVPError(
                f"{args.image}: channel(s) {', '.join(empty)} are all zero (nothing was acquired); "
                "drop them with --channels / the config's channels"
            )
        if stitcher.duplicates:
            log.info("%d cell(s) seen by two tiles were kept once", stitcher.duplicates)
        if tables.writer is None:
            # no cells at all: still a table with every column, and no rows
            tables.append(
                measure_cells(
                    np.zeros((1, 1), np.uint32),
                    np.zeros((len(image.names), 1, 1)),
                    channel_names=image.names,
                    pixel_size_um=pixel_size,
                    sample=args.sample,
                    nuclei=np.zeros((1, 1), np.uint32),
                )
            )
        _write_labels(cells_out, args.labels)
        if args.nuclei:
            _write_labels(nuclei_out, args.nuclei)
        n_cells = tables.write(args.cells, radius_um=radius_um)
    finally:
        tables.close()
        tables.path.unlink(missing_ok=True)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return n_cells


def _write_labels(labels, path: str) -> None:
    """Write labels as a zlib-compressed tiled TIFF, streaming tiles from a zarr array when on disk."""
    tile = 512
    with io.atomic_output(path) as tmp:
        if isinstance(labels, np.ndarray):
            tifffile.imwrite(tmp, labels, compression="zlib", tile=(tile, tile) if labels.shape[0] > tile else None)
            return
        height, width = labels.shape

        def tiles():
            for y in range(0, height, tile):
                for x in range(0, width, tile):
                    block = np.zeros((tile, tile), dtype=np.uint32)
                    part = np.asarray(labels[y : y + tile, x : x + tile])
                    block[: part.shape[0], : part.shape[1]] = part
                    yield block

        tifffile.imwrite(tmp, tiles(), shape=(height, width), dtype=np.uint32, tile=(tile, tile), compression="zlib")
