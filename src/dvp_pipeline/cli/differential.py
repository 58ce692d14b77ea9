"""``dvp differential``: limma moderated t-tests per cell type and contrast.

Parses the arguments, calls :func:`dvp_pipeline.differential.differential_analysis` and writes its
tables where the results layout (:mod:`dvp_pipeline.layout`) puts them.
"""

from __future__ import annotations

from dvp_pipeline.cli._common import add_options_argument, load_options, read_design, read_proteins
from dvp_pipeline.differential import differential_analysis
from dvp_pipeline.io import write_json, write_table
from dvp_pipeline.layout import Results

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """Register ``dvp differential``."""
    layout = Results("RESULTS")
    p = sub.add_parser(
        "differential",
        help="moderated t-tests (limma) per cell type and contrast",
        description="For every cell type of the runs sheet and every contrast [numerator, denominator] of "
        "conditions: normalise the runs, keep proteins with enough values in both groups, and test "
        "with limma's moderated t (lmFit, contrasts.fit, eBayes; Benjamini-Hochberg FDR).",
        epilog=f"outputs:\n  {layout.differential('{cell_type}', '{numerator}_vs_{denominator}')} with columns "
        "protein, genes, logFC,\n  AveExpr, t, P.Value, adj.P.Val, B, n_valid_{group} and n_imputed_{group} per "
        "group (s2.prior with trend,\n  df.prior with robust)\n"
        f"  {layout.differential('{a}_x_{b}', '{numerator}_vs_{denominator}')} for each interaction "
        "(groups {cell_type}.{condition})\n"
        f"  {layout.differential_methods()}: design, filter, normalisation, imputation and prior of every table",
    )
    p.add_argument("proteins", help="protein matrix from dvp quantify (proteins.tsv)")
    p.add_argument("--samples", required=True, help="samples sheet (TSV)")
    p.add_argument("--runs", required=True, help="runs sheet (TSV)")
    p.add_argument("--results", default="results", help="results folder to write into (default: results)")
    add_options_argument(p, "differential")
    p.set_defaults(func=run)


def run(args) -> None:
    """Run ``dvp differential`` with parsed arguments."""
    options = load_options(args, "differential")
    samples, runs = read_design(args.samples, args.runs)
    proteins, genes = read_proteins(args.proteins)
    results = differential_analysis(proteins, samples, runs, options, genes=genes)
    layout = Results(args.results)
    for test in results.tests:
        write_table(results.tables[test.key], layout.differential(test.folder, test.name))
    write_json(results.methods, layout.differential_methods())
