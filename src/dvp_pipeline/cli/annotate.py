"""``dvp annotate``: write a self-contained HTML page for labelling one sample's cells in a browser.

Parses the arguments, calls :func:`dvp_pipeline.annotate.build_annotation_page` (which reads the
sample's cells, labels and image) and writes the page atomically. The labels a person downloads from
the page are the ``--annotations`` table of ``dvp train-classifier``.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from dvp_pipeline import io
from dvp_pipeline.annotate import CELLS_PER_PAGE, CROP_PX, N_CELLS, annotation_page_path, build_annotation_page
from dvp_pipeline.errors import DVPError

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)

DESCRIPTION = "Write an offline HTML page for labelling a sample's cells in the browser (training data)."

_DEFAULT_CONFIG = "config/config.yaml"

EPILOG = f"""\
workflow:
  1. dvp annotate TEN01                 writes results/TEN01/annotate.html (one file, no network)
  2. open it in a browser               cells come least confident first (random before `dvp classify`)
  3. label cells                        click a cell, then a type button or its number key (1..n in the
                                        order of classify.cell_types; 0 = unassigned, a cell of none of
                                        them; Backspace removes a label); arrows move, PageDown/PageUp
                                        (or n/p) turn pages; c/v switch composite and single channels,
                                        o the outline; filter by called type and confidence. Labels
                                        stay in the browser (localStorage) until downloaded, across
                                        reloads of the same page.
  4. Download labels                    a TSV with cell_id, cell_type, sample (TEN01_labels.tsv)
  5. dvp train-classifier results/TEN01/cells.parquet --annotations TEN01_labels.tsv \\
         --model model.json --confusion confusion.tsv --summary summary.json
     then `dvp classify --model model.json`, or set classify.method: supervised and
     classify.supervised.annotations in config.yaml. Labels of several samples: concatenate their
     TSVs (one header) and give every sample's cells table.

inputs:
  {{results}}/{{sample}}/cells_classified.parquet   dvp classify (before it: cells.parquet, dvp segment)
  {{results}}/{{sample}}/labels.tif                 dvp segment
  the image named in the samples sheet          (only the crops' windows are read)

The cell types to label are the config's classify.cell_types rules (--config, default
{_DEFAULT_CONFIG} when it exists), or --cell-types; the config's nuclear channel is drawn blue.
The page embeds one small crop per cell, so keep --cells moderate (about 1.5 MB per 100 cells).
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp annotate``."""
    parser = subparsers.add_parser(
        "annotate",
        help="write an HTML page to label cells in the browser (for train-classifier)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sample", metavar="SAMPLE", help="sample name (a row of the samples sheet)")
    parser.add_argument("--results", default="results", help="results folder of the workflow (default: results)")
    parser.add_argument("--samples", default="config/samples.tsv", help="samples sheet (default: config/samples.tsv)")
    parser.add_argument(
        "--config",
        default=None,
        metavar="CONFIG.yaml",
        help=f"config: its classify.cell_types are the types to label (default: {_DEFAULT_CONFIG} if present)",
    )
    parser.add_argument(
        "--out", default=None, metavar="OUT.html", help="page to write (default: RESULTS/SAMPLE/annotate.html)"
    )
    parser.add_argument(
        "--cells", type=int, default=N_CELLS, metavar="N", help=f"cells on the page, at most (default: {N_CELLS})"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random order (default: 0)")
    parser.add_argument(
        "--crop-px", type=int, default=CROP_PX, metavar="PX", help=f"crop side in image pixels (default: {CROP_PX})"
    )
    parser.add_argument(
        "--per-page",
        type=int,
        default=CELLS_PER_PAGE,
        metavar="N",
        help=f"cells shown at once (default: {CELLS_PER_PAGE})",
    )
    parser.add_argument(
        "--cell-types",
        nargs="+",
        default=None,
        metavar="TYPE",
        help="types to label, in key order (default: the config's classify.cell_types)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args) -> None:
    """Run ``dvp annotate`` with parsed arguments."""
    config = args.config
    if config is None and Path(_DEFAULT_CONFIG).is_file():
        config = _DEFAULT_CONFIG
    if args.crop_px < 8:
        raise DVPError(f"--crop-px: expected at least 8 pixels, got {args.crop_px}")
    page = build_annotation_page(
        args.results,
        args.sample,
        samples_path=args.samples,
        config=config,
        n_cells=args.cells,
        seed=args.seed,
        crop_px=args.crop_px,
        cells_per_page=args.per_page,
        cell_types=args.cell_types,
    )
    out = args.out or annotation_page_path(args.results, args.sample)
    with io.atomic_output(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("wrote %s (%.1f MB); open it in a browser to label cells", out, os.path.getsize(out) / 1e6)
