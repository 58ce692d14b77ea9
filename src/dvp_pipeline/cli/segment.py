"""``dvp segment``: segment one sample's image and measure its cells.

Reads the image (:func:`dvp_pipeline.images.read_image`), segments cells
(:func:`dvp_pipeline.segmentation.segment`), measures them
(:func:`dvp_pipeline.features.measure_cells`) and writes the label image and the cells table. Both
outputs are written atomically, after all the work is done.
"""

from __future__ import annotations

import argparse
import logging
import time

import tifffile

from dvp_pipeline import io
from dvp_pipeline.cli._common import add_options_argument, load_options
from dvp_pipeline.errors import DVPError
from dvp_pipeline.features import measure_cells
from dvp_pipeline.images import read_image
from dvp_pipeline.segmentation import segment

log = logging.getLogger(__name__)


DESCRIPTION = "Segment cells in one sample's image and measure them (labels + cells table)."

EPILOG = """\
input:
  IMAGE            OME-TIFF or TIFF, (channels, y, x) or (y, x). OME channel names and PhysicalSizeX are
                   used when present.

outputs:
  --labels         uint32 label image (y, x), 0 = background, cells numbered 1..N (TIFF, zlib)
  --cells          cells table (.parquet or .tsv), one row per cell: cell_id (= label), sample,
                   centroid_y, centroid_x (pixels), centroid_y_um, centroid_x_um, area (pixels),
                   area_um2, perimeter_um, eccentricity, solidity, mean_<channel> for every channel

channels and pixel size:
  --channels       comma-separated names. If the image has OME channel names these select (and
                   order) channels by name; otherwise they name the image's channels in order and
                   their number must match. Default: the image's names (channel_0, channel_1 ... if none).
  --nuclear-channel  name of the nuclear stain (default: the first channel)
  --pixel-size     micrometres per pixel; default: the image's OME/ImageJ metadata. It is an error if
                   neither gives one (set pixel_size_um in samples.tsv or the config).

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
    parser.add_argument("image", metavar="IMAGE", help="image file (OME-TIFF or TIFF)")
    parser.add_argument("--sample", required=True, help="sample name, written to the cells table")
    parser.add_argument("--labels", required=True, metavar="OUT.tif", help="label image to write")
    parser.add_argument("--cells", required=True, metavar="OUT.parquet", help="cells table to write")
    parser.add_argument("--channels", metavar="NAMES", help="comma-separated channel names (see below)")
    parser.add_argument("--nuclear-channel", metavar="NAME", help="nuclear stain channel (default: first)")
    parser.add_argument("--pixel-size", type=float, metavar="UM", help="micrometres per pixel")
    add_options_argument(parser, "segment")
    parser.set_defaults(func=run)
    return parser


def run(args) -> None:
    """Run ``dvp segment`` with parsed arguments."""
    options = load_options(args, "segment")
    started = time.perf_counter()
    channels = [c.strip() for c in args.channels.split(",")] if args.channels else None
    image, names, image_pixel_size = read_image(args.image, channels=channels)

    pixel_size = args.pixel_size if args.pixel_size is not None else image_pixel_size
    if pixel_size is None:
        raise DVPError(
            f"{args.image}: no pixel size in the image metadata; pass --pixel-size "
            "(pixel_size_um in samples.tsv or the config)"
        )
    if not pixel_size > 0:
        raise DVPError(f"--pixel-size: expected a positive number of micrometres, got {pixel_size}")

    def channel_index(name: str, what: str) -> int:
        if name not in names:
            raise DVPError(f"{args.image}: {what} {name!r} is not a channel; channels are {', '.join(names)}")
        return names.index(name)

    nuclear = channel_index(args.nuclear_channel, "nuclear channel") if args.nuclear_channel else 0
    method = options["method"]
    if method not in ("classical", "cellpose"):
        raise DVPError(f"segment.method: {method!r} unknown; expected classical or cellpose")
    method_options = dict(options[method])
    if method == "cellpose":
        if method_options.get("cytoplasm_channel") is not None:
            method_options["cytoplasm_channel"] = channel_index(
                method_options["cytoplasm_channel"], "cytoplasm_channel"
            )
    log.info(
        "%s: %d channel(s) %s, %d x %d pixels at %.3g um; segmenting with %s",
        args.image,
        len(names),
        ",".join(names),
        image.shape[1],
        image.shape[2],
        pixel_size,
        method,
    )

    labels = segment(image, method=method, pixel_size_um=pixel_size, nuclear_channel=nuclear, **method_options)
    cells = measure_cells(labels, image, channel_names=names, pixel_size_um=pixel_size, sample=args.sample)

    with io.atomic_output(args.labels) as tmp:
        tifffile.imwrite(tmp, labels, compression="zlib")
    io.write_table(cells, args.cells)
    log.info("%s: %d cells in %.1f s", args.sample, len(cells), time.perf_counter() - started)
