"""``dvp lmd``: write one sample's Leica LMD file from its cutting shapes and the plate map."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from dvp_pipeline import io
from dvp_pipeline.cli._common import add_options_argument, load_options
from dvp_pipeline.errors import DVPError
from dvp_pipeline.leica import orientation_matrix
from dvp_pipeline.selection import lmd_collection

__all__ = ["add_parser", "run"]

EPILOG = """\
inputs:
  --shapes     the sample's shapes.parquet (dvp select): shapes in cutting order per pool
  --summary    the sample's summary.json (dvp select): its three calibration points
  --plate-map  the cohort's plate_map.csv (dvp plate): the well of each pool

output:
  --xml        Leica LMD XML ("ImageData"): the three calibration points, then the shapes well by
               well in the plate's fill order, each well's shapes in cutting order, CapID = well.
               Values are integers: 100 file units per pixel, mapped by select.orientation (by
               default y negated: the Leica y axis points up). py-lmd reads the file back.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp lmd``."""
    parser = subparsers.add_parser(
        "lmd",
        help="write a sample's Leica LMD XML from its shapes and the plate map",
        description="Write one sample's Leica LMD cutting file with the wells of the plate map.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sample", required=True)
    parser.add_argument("--shapes", required=True, metavar="PARQUET")
    parser.add_argument("--summary", required=True, metavar="JSON")
    parser.add_argument("--plate-map", required=True, metavar="CSV")
    parser.add_argument("--xml", required=True, metavar="OUT.xml")
    add_options_argument(parser, "select")
    parser.set_defaults(func=run)
    return parser


def run(args) -> None:
    """Run ``dvp lmd`` with parsed arguments."""
    options = load_options(args, "select")
    shapes = io.read_table(args.shapes)
    summary = json.loads(io.read_text(args.summary, what="select summary"))
    if "calibration_px" not in summary:
        raise DVPError(f"{args.summary}: no calibration_px (written by dvp select)")
    try:
        plate_map = pd.read_csv(args.plate_map, dtype=str)
    except (OSError, ValueError) as err:
        raise DVPError(f"{args.plate_map}: cannot read the plate map ({err})") from err
    collection = lmd_collection(
        shapes,
        plate_map,
        sample=args.sample,
        calibration=np.asarray(summary["calibration_px"], dtype=float),
        orientation=orientation_matrix(**vars(options.orientation)),
    )
    with io.atomic_output(args.xml) as tmp:
        tmp.write_bytes(collection.to_xml())
