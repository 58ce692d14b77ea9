"""``dvp select``: draw one sample's pools of cells and their laser-microdissection shapes.

Reads the classified cells table, the label image and (for the preview) the image, resolves the
calibration points and regions of interest, calls :func:`dvp_pipeline.selection.select_sample`, and
writes the pools, the drawn cells, the cutting shapes (a table and a QuPath GeoJSON), a summary and
a preview. Wells come later, from the cohort's plate map (``dvp plate``), and the Leica file after
that (``dvp lmd``). Every output is written atomically, after every input has been read and checked.
"""

from __future__ import annotations

import argparse
import json

from dvp_pipeline import io
from dvp_pipeline.cli._common import add_options_argument, load_options
from dvp_pipeline.errors import DVPError
from dvp_pipeline.images import read_image, read_labels
from dvp_pipeline.selection import resolve_calibration, select_sample

__all__ = ["add_parser", "run"]

DESCRIPTION = "Draw pools of cells per type for laser microdissection and their cutting shapes."

EPILOG = """\
inputs:
  CELLS          classified cells table (cells_classified.parquet): cell_id, cell_type, area_um2,
                 centroid_x, centroid_y; area (pixels) lets the pixel size be derived
  LABELS         uint32 label image (labels.tif), 0 = background, label = cell_id
  --image        the sample's image, drawn under the shapes in the preview
  --calibration  the samples sheet's calibration value: a QuPath GeoJSON of the three marks the
                 operator finds on the slide, or 'x1,y1;x2,y2;x3,y3' in pixels (else the config's
                 select.calibration)
  --regions      QuPath GeoJSON of regions of interest (polygons): only cells inside are drawn

outputs:
  --pools        TSV: pool_id, sample, cell_type, replicate, kind (pool/control), n_cells,
                 area_um2, target_um2, reached (false: fewer eligible cells than the target asks)
  --selection    TSV: the drawn cells with their pool_id
  --shapes       Parquet: one row per cutting shape in cutting order (pool_id, order, cell_ids,
                 area_um2, vertices, x, y in pixels)
  --geojson      the shapes and the three calibration points for QuPath (pixel coordinates)
  --summary      JSON: calibration points, cells left out and why, vertices before and after
                 simplification, cutting path length before and after ordering
  --preview      PNG: the shapes over the image, calibration points numbered, stage axes drawn

examples:
  dvp select results/S1/cells_classified.parquet results/S1/labels.tif --sample S1 \\
      --calibration calib/S1.geojson --pools pools.tsv --selection selection.tsv \\
      --shapes shapes.parquet --geojson shapes.geojson --summary summary.json --preview preview.png
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp select``."""
    parser = subparsers.add_parser(
        "select",
        help="draw pools of cells and their cutting shapes",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("cells", metavar="CELLS", help="classified cells table (.parquet or .tsv)")
    parser.add_argument("labels", metavar="LABELS", help="label image (.tif)")
    parser.add_argument("--sample", required=True, help="sample name (pool ids, preview title, GeoJSON ids)")
    for name, what in (
        ("pools", "pools table (TSV)"),
        ("selection", "drawn cells (TSV)"),
        ("shapes", "cutting shapes (Parquet)"),
        ("geojson", "QuPath GeoJSON"),
        ("summary", "summary (JSON)"),
        ("preview", "preview (PNG)"),
    ):
        parser.add_argument(f"--{name}", required=True, metavar="OUT", help=f"{what} to write")
    parser.add_argument("--image", metavar="IMAGE", help="sample image for the preview backdrop")
    parser.add_argument("--calibration", metavar="VALUE", help="calibration points (see below)")
    parser.add_argument("--regions", metavar="GEOJSON", help="regions of interest (QuPath GeoJSON)")
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
    from dvp_pipeline.selection import pixel_size_from_cells

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
    pixel_size = pixel_size if pixel_size is not None else pixel_size_from_cells(cells)
    if pixel_size is None:
        raise DVPError(f"{args.cells}: cannot tell the pixel size (give --pixel-size, or an image with it)")
    calibration = resolve_calibration(
        args.calibration,
        options.calibration,
        sample=args.sample,
        image_shape=labels.shape,
        pixel_size_um=pixel_size,
    )
    regions = None
    if args.regions:
        from dvp_pipeline.qupath import read_geojson

        regions = read_geojson(args.regions)
    try:
        chosen = select_sample(
            cells,
            labels,
            options,
            sample=args.sample,
            calibration=calibration,
            pixel_size_um=pixel_size,
            image=image,
            regions=regions,
        )
    except DVPError as err:
        raise DVPError(f"{args.cells}: {err}") from err
    io.write_table(chosen.pools, args.pools)
    io.write_table(chosen.cells, args.selection)
    io.write_table(chosen.shapes, args.shapes)
    io.write_text(json.dumps(chosen.geojson, separators=(",", ":")) + "\n", args.geojson)
    io.write_text(json.dumps(chosen.summary, indent=1, default=float) + "\n", args.summary)
    with io.atomic_output(args.preview) as tmp:
        chosen.preview.savefig(tmp, format="png")
