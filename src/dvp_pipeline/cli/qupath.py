"""``dvp export-qupath``: one sample's cells as QuPath detections, to review segmentation and cell types.

Reads the sample's cells table (the classified one when ``dvp classify`` has run) and label image
from the results folder, traces each cell's outline and writes a GeoJSON FeatureCollection of QuPath
detections (:func:`dvp_pipeline.qupath.cells_to_geojson`), atomically.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dvp_pipeline import io
from dvp_pipeline.errors import DVPError
from dvp_pipeline.images import read_labels
from dvp_pipeline.layout import Results
from dvp_pipeline.qupath import cells_to_geojson, write_geojson

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)

DESCRIPTION = "Write one sample's cells as QuPath detections (GeoJSON): outlines, cell types and measurements."

EPILOG = """\
inputs (under --results, as `dvp run` writes them):
  SAMPLE/cells_classified.parquet   cells with cell_type and confidence (from `dvp classify`); without
                                    it SAMPLE/cells.parquet (from `dvp segment`), cells unclassified
  SAMPLE/labels.tif                 the label image the outlines are traced from

output:
  --out       GeoJSON FeatureCollection (default results/SAMPLE/SAMPLE.cells.geojson): one detection
              per cell, a polygon in full-resolution image pixels (origin at the image's top-left
              corner, as QuPath expects), classified by cell type in the report's colours, with the
              measurements cell_id, mean_<channel>, area_um2 and confidence

open it in QuPath:
  open the sample's image (the same file the pipeline segmented), then File > Import objects from
  file (QuPath 0.4 and later; older versions: drag and drop) and choose the .geojson, or drag and drop
  the file onto the image. The cells appear as detections: View > Show detections toggles them,
  Measure > Show detection measurements lists them, and the Annotations tab's class list shows and
  hides cell types. To train the pipeline's classifier from corrections made in QuPath, draw points
  or polygons of the right class, export them (File > Export objects as GeoJSON) and give the file to
  `dvp train-classifier --annotations`.

"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp export-qupath``."""
    parser = subparsers.add_parser(
        "export-qupath",
        help="write a sample's cells as QuPath detections (GeoJSON)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sample", metavar="SAMPLE", help="sample name (its folder under --results)")
    parser.add_argument("--results", default="results", metavar="DIR", help="results folder (default: results)")
    parser.add_argument(
        "--out", metavar="OUT.geojson", help="file to write (default: SAMPLE/SAMPLE.cells.geojson under --results)"
    )
    parser.add_argument(
        "--config",
        metavar="config.yaml",
        help="the project's config; its classify.cell_types order fixes the colours, as in the reports",
    )
    parser.add_argument(
        "--measurements",
        metavar="COLUMNS",
        help="comma-separated cells-table columns to export as measurements (default: mean_<channel>, "
        "area_um2, confidence)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args) -> None:
    """Run ``dvp export-qupath`` with parsed arguments."""
    results = Results(args.results)
    classified, plain = Path(results.cells_classified(args.sample)), Path(results.cells(args.sample))
    if classified.is_file():
        cells_path = classified
    elif plain.is_file():
        cells_path = plain
        log.info("%s not found: exporting unclassified cells from %s", classified, plain)
    else:
        raise DVPError(f"{classified}: file not found (nor {plain}); run the segment and classify stages first")
    cells = io.read_table(cells_path)
    labels = read_labels(results.labels(args.sample))
    order: list[str] = []
    if args.config:
        from dvp_pipeline.config import load_yaml

        if not Path(args.config).is_file():
            raise DVPError(f"--config: file {args.config} not found")
        from dvp_pipeline.report.palettes import config_cell_types

        config = load_yaml(io.read_text(args.config, what="the config.yaml"), source=args.config)
        order = config_cell_types(config if isinstance(config, dict) else {})
    measurements = [c.strip() for c in args.measurements.split(",") if c.strip()] if args.measurements else None
    try:
        geojson = cells_to_geojson(cells, labels, measurements=measurements, cell_type_order=order)
    except DVPError as err:
        raise DVPError(f"{cells_path}: {err}") from err
    out = args.out or f"{results.sample_dir(args.sample)}/{args.sample}.cells.geojson"
    write_geojson(geojson, out)
    log.info("%s: %d cells written as QuPath detections", out, len(geojson["features"]))
