"""``dvp differential``: limma moderated t-tests per cell type and contrast."""

from __future__ import annotations

import logging
from pathlib import Path

from dvp_pipeline.cli._common import (
    add_options_argument,
    contrast_matrix,
    load_options,
    read_design,
    read_proteins,
)
from dvp_pipeline.io import write_table
from dvp_pipeline.stats import moderated_ttest

log = logging.getLogger("dvp.differential")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "differential",
        help="moderated t-tests (limma) per cell type and contrast",
        description="For every cell type of the runs sheet and every contrast [numerator, denominator] of "
        "conditions: normalise the runs, keep proteins with enough values in both groups, and test "
        "with limma's moderated t (lmFit, contrasts.fit, eBayes; Benjamini-Hochberg FDR).",
        epilog="outputs:\n  OUTDIR/{cell_type}/{numerator}_vs_{denominator}.tsv with columns protein, genes, logFC, "
        "AveExpr, t,\n  P.Value, adj.P.Val, B, n_valid_{numerator}, n_valid_{denominator}",
    )
    p.add_argument("proteins", help="protein matrix from dvp quantify (proteins.tsv)")
    p.add_argument("--samples", required=True, help="samples sheet (TSV)")
    p.add_argument("--runs", required=True, help="runs sheet (TSV)")
    p.add_argument("--outdir", required=True, help="output folder")
    add_options_argument(p, "differential")
    p.set_defaults(func=run)


def run(args) -> None:
    options = load_options(args, "differential")
    samples, runs = read_design(args.samples, args.runs)
    proteins, genes = read_proteins(args.proteins)
    for cell_type in dict.fromkeys(runs["cell_type"]):
        for num, den in options["contrasts"]:
            matrix, groups = contrast_matrix(
                proteins, samples, runs, cell_type=cell_type, contrast=(num, den), options=options
            )
            result = moderated_ttest(matrix, groups, contrast=(num, den))
            for g in (num, den):
                result[f"n_valid_{g}"] = matrix.loc[:, groups.index[groups == g]].notna().sum(axis=1)
            result.insert(0, "genes", genes.reindex(result.index))
            out = Path(args.outdir) / cell_type / f"{num}_vs_{den}.tsv"
            write_table(result.reset_index(), out)
            log.info(
                "%s %s vs %s: %d proteins tested, %d at adj.P.Val < 0.05",
                cell_type,
                num,
                den,
                len(result),
                int((result["adj.P.Val"] < 0.05).sum()),
            )
