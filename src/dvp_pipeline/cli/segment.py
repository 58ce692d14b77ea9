"""``dvp segment``: segment one sample's image and measure its cells.

Opens the image lazily (:func:`dvp_pipeline.images.open_image`) and calls
:func:`dvp_pipeline.slide.segment_slide`, which segments it tile by tile, measures each tile's cells
as it goes and writes the cell and nucleus label images and the cells table, atomically, after all
the work is done. Memory is bounded by the tile size.

For a cluster the tiles can be separate jobs: ``--write-plan`` fixes the tiling (and the classical
method's whole-image threshold), ``--tile K --tile-out`` segments one tile, and ``--gather`` stitches
the tiles' results and measures the cells.
"""

from __future__ import annotations

import argparse
import logging
import time

from dvp_pipeline import io
from dvp_pipeline.cli._common import add_options_argument, load_options
from dvp_pipeline.errors import DVPError
from dvp_pipeline.images import open_image
from dvp_pipeline.slide import (
    default_workers,
    plan_slide,
    preview_tiles,
    read_plan,
    save_tile,
    segment_plan_tile,
    segment_slide,
)

__all__ = ["add_parser", "run"]

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
  --qc             optional segmentation QC (JSON): cells whose nucleus looks like merged nuclei (area
                   above a robust fence or solidity below 0.85) and nuclear-stain blobs without a
                   nucleus label (likely missed cells), with their positions; shown in the sample report

channels and pixel size:
  --channels       comma-separated names. If the image has OME channel names these select (and
                   order) channels by name; otherwise they name the image's channels in order and
                   their number must match. Default: the image's names (channel_0, channel_1 ... if none).
  --nuclear-channel  name of the nuclear stain (default: the first channel)
  --pixel-size     micrometres per pixel; default: the image's OME/ImageJ/OME-Zarr metadata. It is an
                   error if neither gives one (set pixel_size_um in samples.tsv or the config).

checking the settings first:
  --preview OUT.png [--preview-tiles N]  segment N tiles spread over the slide (default 3) and draw
                                         them: nuclear stain, nucleus (yellow) and cell (cyan)
                                         outlines, cells per tile and the median nucleus diameter
                                         against the expected one; nothing else is written

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
    parser.add_argument("--qc", metavar="OUT.json", help="segmentation QC to write (optional)")
    parser.add_argument("--channels", metavar="NAMES", help="comma-separated channel names (see below)")
    parser.add_argument("--nuclear-channel", metavar="NAME", help="nuclear stain channel (default: first)")
    parser.add_argument("--pixel-size", type=float, metavar="UM", help="micrometres per pixel")
    parser.add_argument("--write-plan", metavar="PLAN.json", help="write the tiling plan and stop")
    parser.add_argument("--plan", metavar="PLAN.json", help="a plan from --write-plan (with --tile or --gather)")
    parser.add_argument("--tile", type=int, metavar="K", help="segment only tile K of --plan into --tile-out")
    parser.add_argument("--tile-out", metavar="T.npz", help="where --tile writes its labels")
    parser.add_argument("--gather", nargs="+", metavar="T.npz", help="tiles' results to stitch, in plan order")
    parser.add_argument("--preview", metavar="OUT.png", help="segment a few tiles and draw them, nothing else")
    parser.add_argument("--preview-tiles", type=int, default=3, metavar="N", help="tiles in --preview (default 3)")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes segmenting and measuring tiles side by side (default: segment.workers, else the "
        "available cores, fewer when memory is short); the result is the same for any number",
    )
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
        log.info(
            "%s: %d channel(s) %s, %d x %d pixels at %.3g um; segmenting with %s",
            args.image,
            len(image.names),
            ",".join(image.names),
            image.shape[1],
            image.shape[2],
            pixel_size,
            options.method,
        )
        plan = _plan(args, image, options, pixel_size)
        if args.tile is not None or args.tile_out:
            if args.tile is None or not args.tile_out:
                raise DVPError("--tile K and --tile-out T.npz go together")
            tile, cells, nuclei = segment_plan_tile(image, plan, args.tile)
            save_tile(args.tile_out, tile, cells, nuclei)
            log.info("tile %d: %d cells", tile.index, int(cells.max()) if cells.size else 0)
            return
        if args.preview:
            figure, summary = preview_tiles(
                image, plan, pixel_size_um=pixel_size, n_tiles=args.preview_tiles, title=args.sample or args.image
            )
            with io.atomic_output(args.preview) as tmp:
                figure.savefig(tmp, format="png")
            for row in summary.itertuples(index=False):
                log.info(
                    "preview tile %d: %d cells, median nucleus diameter %.1f um",
                    row.tile,
                    row.cells,
                    row.median_nucleus_diameter_um,
                )
            return
        if args.write_plan:
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
        try:
            result = segment_slide(
                image,
                plan,
                sample=args.sample,
                pixel_size_um=pixel_size,
                neighbourhood_radius_um=options.neighbourhood_radius_um,
                labels=args.labels,
                nuclei=args.nuclei,
                cells=args.cells,
                tiles=args.gather,
                workers=_workers(args, options, plan),
                qc=args.qc,
            )
        except DVPError as err:
            raise DVPError(f"{args.image}: {err}") from err
    log.info("%s: %d cells in %.1f s", args.sample, result.n_cells, time.perf_counter() - started)
    qc = result.qc
    log.info(
        "%s: %d cell(s) (%.1f%%) look like merged nuclei, %d nuclear-stain blob(s) (%.1f%%) have no nucleus",
        args.sample,
        qc["suspect_merges"],
        100 * qc["suspect_merge_fraction"],
        qc["missed_blobs"],
        100 * qc["missed_fraction"],
    )


def _workers(args, options, plan: dict) -> int:
    """Worker processes: --workers, else segment.workers, else as many as the cores and memory allow."""
    workers = args.workers if args.workers is not None else options.workers
    if workers is None:
        workers = default_workers(plan)
        log.info("%d worker process(es) (--workers)", workers)
    if workers < 1:
        raise DVPError(f"--workers: expected a positive number of processes, got {workers}")
    return workers


def _plan(args, image, options, pixel_size: float) -> dict:
    """The tiling plan: read from --plan (tile jobs, gather), else made here."""
    if args.plan:
        return read_plan(args.plan, image)
    if args.tile is not None or args.gather:
        raise DVPError("--tile and --gather need --plan PLAN.json (from --write-plan)")
    return plan_slide(image, options, nuclear_channel=args.nuclear_channel, pixel_size_um=pixel_size, source=args.image)
