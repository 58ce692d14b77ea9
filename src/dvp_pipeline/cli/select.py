"""``dvp select``: choose cells of one sample and write the laser-microdissection files.

Reads the classified cells table and the label image, picks cells per type
(:func:`dvp_pipeline.selection.select_cells`), traces their outlines, and writes the Leica LMD XML,
the QuPath GeoJSON, the selection table and a preview image. All four outputs are written
atomically, and only after every input has been read and checked.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from dvp_pipeline import io
from dvp_pipeline.cli._common import add_options_argument, load_options
from dvp_pipeline.errors import DVPError
from dvp_pipeline.leica import Collection
from dvp_pipeline.selection import cell_outlines, preview, select_cells, to_geojson, type_colors

log = logging.getLogger(__name__)

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


def _pixel_size(args, cells: pd.DataFrame, image_pixel_size: float | None) -> float:
    if args.pixel_size is not None:
        size = args.pixel_size
    elif image_pixel_size is not None:
        size = image_pixel_size
    elif {"area", "area_um2"} <= set(cells.columns) and (cells["area"] > 0).any():
        ratio = (cells["area_um2"] / cells["area"])[cells["area"] > 0]
        size = float(np.sqrt(np.median(ratio)))
    else:
        raise DVPError(
            f"{args.cells}: cannot tell the pixel size "
            "(no --pixel-size, no pixel size in the image, no area and area_um2 columns)"
        )
    if not (np.isfinite(size) and size > 0):
        raise DVPError(f"pixel size: expected a positive number of micrometres, got {size}")
    return float(size)


def _calibration_points(value, shape: tuple[int, int]) -> np.ndarray:
    height, width = shape
    if value is None:
        return np.array([[0.0, 0.0], [width, 0.0], [0.0, height]])
    points = np.asarray(value, dtype=float) if isinstance(value, list | tuple) else None
    if points is None or points.shape != (3, 2):
        raise DVPError(f"select.calibration_points: expected 3 [x, y] pixel pairs or null, got {value!r}")
    return points


def run(args) -> None:
    """Run ``dvp select`` with parsed arguments."""
    options = load_options(args, "select")
    cells = io.read_table(args.cells)
    if "sample" in cells.columns:
        others = sorted(set(cells["sample"].astype(str)) - {args.sample})
        if others:
            raise DVPError(f"{args.cells}: rows of other samples {others[:5]} in the table for sample {args.sample}")

    labels_path = Path(args.labels)
    if not labels_path.is_file():
        raise DVPError(f"{labels_path}: file not found")
    try:
        labels = tifffile.imread(labels_path)
    except Exception as err:  # tifffile raises several types for unreadable files
        raise DVPError(f"{labels_path}: cannot read label image ({err})") from err
    labels = np.squeeze(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DVPError(f"{labels_path}: expected a 2-D integer label image, got {labels.dtype} {labels.shape}")

    image, image_pixel_size = None, None
    if args.image:
        from dvp_pipeline.images import read_image

        image, _names, image_pixel_size = read_image(args.image)
        if image.shape[-2:] != labels.shape:
            raise DVPError(f"{args.image}: image is {image.shape[-2:]} (y, x) but {labels_path} is {labels.shape}")
    pixel_size = _pixel_size(args, cells, image_pixel_size)

    cell_types = options.get("cell_types")
    if cell_types is None:
        # Wells follow this order, so the workflow should pass classify's cell type names; from the
        # table alone, a sample lacking a type would shift the wells of the others.
        if "cell_type" not in cells.columns:
            raise DVPError(f"{args.cells}: missing column cell_type (run dvp classify first)")
        cell_types = sorted(set(cells["cell_type"].astype(str)) - {"unassigned"})
        log.warning("select.cell_types is null: using the types in %s: %s", args.cells, cell_types)
    cell_types = list(cell_types)
    chosen = select_cells(
        cells,
        cell_types=cell_types,
        max_cells_per_type=int(options["max_cells_per_type"]),
        min_area_um2=float(options["min_area_um2"]),
        seed=int(options["seed"]),
        wells=options.get("wells"),
    )
    unknown = sorted(set(chosen["cell_id"].astype(int)) - set(np.unique(labels).tolist()))
    if unknown:
        raise DVPError(f"{args.cells}: cell_id(s) {unknown[:10]} are not labels in {labels_path}")
    outlines = cell_outlines(
        labels,
        chosen["cell_id"].astype(int).tolist(),
        dilation_px=float(options["dilation_um"]) / pixel_size,
        simplify_px=float(options["simplify_um"]) / pixel_size,
    )

    collection = Collection(_calibration_points(options.get("calibration_points"), labels.shape))
    for cell_id, well in zip(chosen["cell_id"].astype(int), chosen["well"], strict=True):
        collection.new_shape(outlines[cell_id], well=well, name=str(cell_id))

    table = pd.DataFrame(
        {
            "cell_id": chosen["cell_id"].astype("int64"),
            "cell_type": chosen["cell_type"].astype(str),
            "well": chosen["well"],
            "area_um2": chosen["area_um2"],
            "n_points": [len(outlines[int(i)]) for i in chosen["cell_id"]],
            "centroid_x": chosen["centroid_x"] if "centroid_x" in chosen else np.nan,
            "centroid_y": chosen["centroid_y"] if "centroid_y" in chosen else np.nan,
            "shape": np.arange(1, len(chosen) + 1),
        }
    )
    colors = type_colors(cell_types)
    geojson = to_geojson(outlines, chosen.assign(sample=args.sample), colors=colors)
    backdrop = image if image is not None else (labels > 0).astype(np.float32)
    figure = preview(backdrop, outlines, chosen, colors=colors, title=f"{args.sample}: cells selected for LMD")

    with io.atomic_output(args.xml) as tmp:
        tmp.write_bytes(collection.to_xml())
    io.write_text(json.dumps(geojson, separators=(",", ":")) + "\n", args.geojson)
    io.write_table(table, args.selection)
    with io.atomic_output(args.preview) as tmp:
        figure.savefig(tmp, format="png")
