"""``dvp select``: choose cells of one sample and write the laser-microdissection files.

Reads the classified cells table, the label image and (for the preview) the image, calls
:func:`dvp_pipeline.selection.select_sample` (cells per type, their outlines), and writes the Leica LMD XML,
the QuPath GeoJSON, the selection table and a preview image. All four outputs are written
atomically, and only after every input has been read and checked.
"""

from __future__ import annotations

import argparse
import json

from dvp_pipeline import io
from dvp_pipeline.cli._common import add_options_argument, load_options
from dvp_pipeline.errors import DVPError
from dvp_pipeline.images import read_image, read_labels
from dvp_pipeline.selection import select_sample

__all__ = ["add_parser", "run"]

DESCRIPTION = "Choose cells per type for laser microdissection and write Leica LMD, QuPath and preview files."

EPILOG = """\
inputs:
  CELLS     classified cells table (cells_classified.parquet): cell_id, cell_type, area_um2,
            centroid_x, centroid_y; area (pixels) lets the pixel size be derived
  LABELS    uint32 label image (labels.tif), 0 = background, label = cell_id
  --image   the sample's image, only drawn under the outlines in the preview
            (without it the preview shows the cell masks)

outputs:
  --xml        Leica LMD XML: 3 calibration points, one closed shape per selected cell, CapID = well.
               Values are integers: X = 100 * x_px, Y = -100 * y_px (Leica y points up); the LMD
               software maps them to the stage through the calibration points the operator marks.
  --geojson    FeatureCollection of classified annotations for QuPath (pixel coordinates)
  --selection  TSV: cell_id, cell_type, well, area_um2, n_points, centroid_x, centroid_y, shape
               (shape = the Shape_N number in the XML)
  --preview    PNG of the image with the chosen outlines coloured per cell type

"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp select``."""
    parser = subparsers.add_parser(
        "select",
        help="choose cells and write LMD XML, GeoJSON, selection table and preview",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("cells", metavar="CELLS", help="classified cells table (.parquet or .tsv)")
    parser.add_argument("labels", metavar="LABELS", help="label image (.tif)")
    parser.add_argument("--sample", required=True, help="sample name (preview title, GeoJSON ids)")
    parser.add_argument("--xml", required=True, metavar="OUT.xml", help="Leica LMD XML to write")
    parser.add_argument("--geojson", required=True, metavar="OUT.geojson", help="QuPath GeoJSON to write")
    parser.add_argument("--selection", required=True, metavar="OUT.tsv", help="selection table to write")
    parser.add_argument("--preview", required=True, metavar="OUT.png", help="preview PNG to write")
    parser.add_argument("--image", metavar="IMAGE", help="sample image for the preview backdrop")
    parser.add_argument(
        "--pixel-size",
        type=float,
        metavar="UM",
        help="micrometres per pixel (default: the image's metadata, else area_um2/area of the cells table)",
    )
    add_options_argument(parser, "select")
    parser.set_defaults(func=run)
    return parser


def run(args) -> None:
    """Run ``dvp select`` with parsed arguments."""
    options = load_options(args, "select")
    cells = io.read_table(args.cells)
    if "sample" in cells.columns:
        others = sorted(set(cells["sample"].astype(str)) - {args.sample})
        if others:
            raise DVPError(f"{args.cells}: rows of other samples {others[:5]} in the table for sample {args.sample}")
    labels = read_labels(args.labels)
    image, pixel_size = None, args.pixel_size
    if args.image:
        image, _names, image_pixel_size = read_image(args.image)
        if image.shape[-2:] != labels.shape:
            raise DVPError(f"{args.image}: image is {image.shape[-2:]} (y, x) but {args.labels} is {labels.shape}")
        pixel_size = pixel_size if pixel_size is not None else image_pixel_size
    try:
        export = select_sample(cells, labels, options, sample=args.sample, pixel_size_um=pixel_size, image=image)
    except DVPError as err:
        raise DVPError(f"{args.cells}: {err}") from err
    with io.atomic_output(args.xml) as tmp:
        tmp.write_bytes(export.collection.to_xml())
    io.write_text(json.dumps(export.geojson, separators=(",", ":")) + "\n", args.geojson)
    io.write_table(export.selection, args.selection)
    with io.atomic_output(args.preview) as tmp:
        export.preview.savefig(tmp, format="png")
