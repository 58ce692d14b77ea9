"""``dvp train-classifier``: train a supervised cell-type classifier from annotated cells.

Reads the cells tables of one or more samples (from ``dvp segment``) and an annotation table of
cells a person labelled (``sample``, ``cell_id``, ``cell_type``; e.g. exported from QuPath), trains
:func:`dvp_pipeline.classify.train_classifier`, and writes the model as JSON (loading it runs no
code), the cross-validated confusion matrix and a summary. ``dvp classify --model`` applies it.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dvp_pipeline import io
from dvp_pipeline.classify import save_model, train_classifier
from dvp_pipeline.cli._common import add_options_argument, load_options
from dvp_pipeline.errors import DVPError

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)

DESCRIPTION = "Train a random-forest cell-type classifier on annotated cells, with cross-validation."

EPILOG = """\
inputs:
  CELLS ...        cells tables (.parquet or .tsv) of the annotated samples
  --annotations    TSV or CSV with cell_id, cell_type and sample (needed when several samples are
                   given): the cells a person labelled; or QuPath's GeoJSON export (.geojson, .json;
                   File > Export objects as GeoJSON) of one sample's image with a CELLS table of that
                   sample: a classified point labels the cell under it (labels.tif beside CELLS), a
                   classified polygon every cell whose centroid it contains

outputs:
  --model          the trained forest as JSON (features, classes, trees)
  --confusion      TSV: cross-validated confusion matrix, true type rows x predicted type columns
  --summary        JSON: accuracy (cross-validated), n_cells, folds, per-class precision and recall

"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp train-classifier``."""
    parser = subparsers.add_parser(
        "train-classifier",
        help="train a supervised cell-type classifier from annotated cells",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("cells", nargs="+", metavar="CELLS", help="cells tables (.parquet or .tsv)")
    parser.add_argument("--annotations", required=True, metavar="TABLE", help="annotated cells (TSV or CSV)")
    parser.add_argument("--model", required=True, metavar="OUT.json", help="model to write")
    parser.add_argument("--confusion", required=True, metavar="OUT.tsv", help="confusion matrix to write")
    parser.add_argument("--summary", metavar="OUT.json", help="accuracy and per-class scores to write")
    add_options_argument(parser, "classify")
    parser.set_defaults(func=run)
    return parser


def read_annotations(path: str, cells: pd.DataFrame | None = None, cells_paths: Sequence[str] = ()) -> pd.DataFrame:
    """An annotation table; comma- or tab-separated (QuPath exports either), or QuPath's GeoJSON export
    (``.geojson``/``.json``) of classified points and polygons on one sample's image, turned into a table
    by :func:`dvp_pipeline.qupath.read_training_labels` with the ``labels.tif`` beside its cells table."""
    if str(path).lower().endswith((".geojson", ".json")):
        from dvp_pipeline.images import read_labels
        from dvp_pipeline.qupath import read_training_labels

        beside = Path(cells_paths[0]).with_name("labels.tif") if len(cells_paths) == 1 else None
        labels = read_labels(beside) if beside is not None and beside.is_file() else None
        return read_training_labels(path, cells if cells is not None else pd.DataFrame(), labels=labels)
    sep = "," if str(path).lower().endswith(".csv") else "\t"
    try:
        return pd.read_csv(path, sep=sep, dtype={"sample": str})
    except (OSError, ValueError) as err:
        raise DVPError(f"{path}: cannot read the annotation table ({err})") from err


def run(args) -> None:
    """Run ``dvp train-classifier`` with parsed arguments."""
    options = load_options(args, "classify").supervised
    cells = pd.concat([io.read_table(path) for path in args.cells], ignore_index=True)
    annotations = read_annotations(args.annotations, cells, args.cells)
    try:
        model, evaluation = train_classifier(
            cells,
            annotations,
            features=options.features,
            n_estimators=options.n_estimators,
            cv_folds=options.cv_folds,
            seed=options.seed,
        )
    except DVPError as err:
        raise DVPError(f"{args.annotations}: {err}") from err
    io.write_text(save_model(model), args.model)
    io.write_table(evaluation["confusion"].reset_index(), args.confusion)
    if args.summary:
        per_class = evaluation["per_class"].reset_index(names="cell_type").to_dict(orient="records")
        io.write_json(
            {k: evaluation[k] for k in ("accuracy", "n_cells", "folds")} | {"per_class": per_class}, args.summary
        )
    log.info("%d annotated cells, cross-validated accuracy %.3f", evaluation["n_cells"], evaluation["accuracy"])
