"""``dvp pyramid``: a sample's cell labels and cell-type map as OME-Zarr pyramids, for viewers."""

from __future__ import annotations

import argparse

from dvp_pipeline import io
from dvp_pipeline.cli._common import add_options_argument, load_options
from dvp_pipeline.pyramid import write_cell_type_pyramid, write_label_pyramid

__all__ = ["add_parser", "run"]

EPILOG = """\
inputs:
  LABELS        the sample's labels.tif (dvp segment), read tile by tile
  CELLS         the classified cells table (dvp classify): cell_id, cell_type

outputs (OME-Zarr multiscale label images, NGFF 0.4; level k is every 2**k-th pixel, as label
pyramids are made; memory stays a few tiles whatever the slide's size):
  --labels-out  the cell labels
  --types-out   the cell-type map: 1, 2 ... in classify.cell_types order, then unassigned; 0 is
                background; the names are the image-label properties, so napari and QuPath show them

Open in napari:  napari --plugin napari-ome-zarr results/SAMPLE/cell_types.ome.zarr
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp pyramid``."""
    parser = subparsers.add_parser(
        "pyramid",
        help="write a sample's labels and cell-type map as OME-Zarr pyramids",
        description="Write a sample's cell labels and classified cell-type map as multiscale OME-Zarr label images.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("labels", metavar="LABELS")
    parser.add_argument("cells", metavar="CELLS")
    parser.add_argument("--labels-out", required=True, metavar="OUT.ome.zarr")
    parser.add_argument("--types-out", required=True, metavar="OUT.ome.zarr")
    parser.add_argument("--pixel-size", type=float, metavar="UM", help="micrometres per pixel (the levels' scale)")
    parser.add_argument("--levels", type=int, default=4, help="pyramid levels, full resolution included (default 4)")
    add_options_argument(parser, "classify")
    parser.set_defaults(func=run)
    return parser


def run(args) -> None:
    """Run ``dvp pyramid`` with parsed arguments."""
    options = load_options(args, "classify")
    cells = io.read_table(args.cells, columns=["cell_id", "cell_type"])
    write_label_pyramid(args.labels, args.labels_out, levels=args.levels, pixel_size_um=args.pixel_size, name="cells")
    write_cell_type_pyramid(
        args.labels,
        cells,
        args.types_out,
        cell_types=[rule["name"] for rule in options.cell_types],
        levels=args.levels,
        pixel_size_um=args.pixel_size,
    )
