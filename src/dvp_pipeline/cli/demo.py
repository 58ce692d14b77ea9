"""``dvp demo``: write the synthetic TEN vs drug-rash skin cohort (images, truth, DIA-NN report).

Calls :func:`dvp_pipeline.simulate.write_demo`; the shipped ``data/sample/`` was made with
``dvp demo data/sample --seed 0``.
"""

from __future__ import annotations

import argparse
import logging

from dvp_pipeline.errors import DVPError
from dvp_pipeline.simulate import write_demo

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Write a small synthetic skin cohort (TEN vs drug rash, MPR) with known answers: multiplexed "
    "images, ground-truth cells and labels, and a DIA-NN report with a planted JAK/STAT and "
    "interferon signal. The same seed gives the same files."
)

EPILOG = """\
output (under OUTDIR; existing files are replaced):
  images/{sample}.ome.tif     uint16 OME-TIFF, axes CYX, channels DAPI, KRT14, CD8, CD163, 0.5 um pixels
  truth/{sample}_labels.tif   uint32 whole-cell labels (0 = background)
  truth/{sample}_cells.tsv    cell_id (= label), sample, cell_type, centroid_y, centroid_x, area, region
  diann_report.parquet        DIA-NN 2.x-style main report for the runs {sample}_{cell_type}
  truth/proteins.tsv          protein, genes, planted, log2fc_<cell type> (true TEN over MPR effect)
  truth/planted.json          planted gene sets, seed and every simulation parameter
  samples.tsv, runs.tsv       sample and run sheets for the cohort (image paths as OUTDIR/images/...)
  README.md                   what is there and how it was made

samples: TEN01.., MPR01.. (--samples-per-condition each); runs: keratinocyte, cd8_t_cell, macrophage
per sample. The default 640 x 640 images hold about 1,100-1,300 cells each; everything takes a few
seconds and about 17 MB.

example:
  dvp demo data/sample --seed 0
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="write the synthetic demo cohort (images, truth, DIA-NN report)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("outdir", metavar="OUTDIR", help="folder to write (created if needed)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--samples-per-condition",
        type=int,
        default=3,
        metavar="N",
        help="samples per condition, TEN and MPR (default 3)",
    )
    parser.add_argument(
        "--image-size", type=int, default=640, metavar="PX", help="image height and width in pixels (default 640)"
    )
    parser.add_argument(
        "--proteins", type=int, default=3000, metavar="N", help="protein groups in the report (default 3000)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args) -> None:
    """Run ``dvp demo`` with parsed arguments."""
    if args.image_size < 64:
        raise DVPError(f"--image-size: expected at least 64 pixels, got {args.image_size}")
    summary = write_demo(
        args.outdir,
        seed=args.seed,
        samples_per_condition=args.samples_per_condition,
        image_size=args.image_size,
        n_proteins=args.proteins,
    )
    cells = {sample: sum(counts.values()) for sample, counts in summary["cells"].items()}
    log.info(
        "%s: %d files in %.1f s; cells per sample %s; report %d rows, %d protein groups, %d planted proteins",
        args.outdir,
        len(summary["files"]),
        summary["seconds"],
        ", ".join(f"{s} {n}" for s, n in cells.items()),
        summary["report_rows"],
        summary["protein_groups"],
        summary["planted_proteins"],
    )
