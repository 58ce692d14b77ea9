"""``dvp classify``: assign cell types to one sample's cells by marker gating.

Reads the cells table written by ``dvp segment``, applies the config's gating rules
(:func:`dvp_pipeline.classify.classify_cells`) and writes the classified table and the thresholds
that were used. Both outputs are written atomically, after the work is done.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dvp_pipeline import io
from dvp_pipeline.classify import classify_sample, load_model
from dvp_pipeline.cli._common import add_options_argument, load_options
from dvp_pipeline.errors import DVPError

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)


DESCRIPTION = "Assign a cell type to every cell by per-sample marker thresholds and ordered gating rules."

EPILOG = """\
input:
  CELLS          cells table from `dvp segment` (.parquet or .tsv) with mean_<marker> columns and
                 sample (thresholds are found per sample)

outputs:
  --out          the cells table plus cell_type (rule name or 'unassigned') and confidence (0.5..1:
                 logistic of the cell's distance from the deciding thresholds, in standard
                 deviations of its side's population; see dvp_pipeline.classify)
  --thresholds   TSV, one row per sample and marker: sample, marker, threshold (raw intensity),
                 method (otsu | gmm | fixed), transform, cofactor, positive_fraction
  --anndata      optional AnnData (.h5ad) of the classified cells: X = mean intensity per channel,
                 obs = cell metadata with cell_type and confidence, obsm['spatial'] = centroids (um)

supervised:
  --model        a model from `dvp train-classifier` (JSON; loading it runs no code). Cell types
                 and confidence (the forest's probability) then come from the model; the gating
                 thresholds are still computed and written, for the report's marker plots.

"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp classify``."""
    parser = subparsers.add_parser(
        "classify",
        help="assign cell types by marker gating",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("cells", metavar="CELLS", help="cells table (.parquet or .tsv)")
    parser.add_argument("--out", required=True, metavar="OUT.parquet", help="classified cells table to write")
    parser.add_argument("--thresholds", required=True, metavar="OUT.tsv", help="thresholds table to write")
    parser.add_argument("--anndata", metavar="OUT.h5ad", help="also write the classified cells as AnnData")
    parser.add_argument("--model", metavar="MODEL.json", help="trained classifier (from dvp train-classifier)")
    add_options_argument(parser, "classify")
    parser.set_defaults(func=run)
    return parser


def run(args) -> None:
    """Run ``dvp classify`` with parsed arguments."""
    options = load_options(args, "classify")
    cells = io.read_table(args.cells)
    model = None
    if args.model:
        path = Path(args.model)
        if not path.is_file():
            raise DVPError(f"--model: file {path} not found")
        model = load_model(io.read_text(path, what="a JSON classifier model"), source=str(path))
    try:
        classified, thresholds = classify_sample(cells, options, model=model)
    except DVPError as err:
        raise DVPError(f"{args.cells}: {err}") from err
    io.write_table(classified, args.out)
    io.write_table(thresholds, args.thresholds)
    if args.anndata:
        from dvp_pipeline.features import to_anndata

        adata = to_anndata(classified)
        with io.atomic_output(args.anndata) as tmp:
            adata.write_h5ad(tmp)
    counts = classified["cell_type"].value_counts()
    log.info("%s: %s", args.cells, ", ".join(f"{name} {n}" for name, n in counts.items()))
