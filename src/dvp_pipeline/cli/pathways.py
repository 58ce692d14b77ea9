"""``dvp pathways``: gene-set tests per cell type and contrast, and per-run set scores.

Parses the arguments, calls :func:`dvp_pipeline.pathways.pathway_analysis` and writes its tables
where the results layout (:mod:`dvp_pipeline.layout`) puts them.
"""

from __future__ import annotations

from dvp_pipeline.cli._common import add_options_argument, load_options, read_design, read_proteins
from dvp_pipeline.io import write_table
from dvp_pipeline.layout import Results
from dvp_pipeline.pathways import pathway_analysis

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """Register ``dvp pathways``."""
    layout = Results("RESULTS")
    test = ("{cell_type}", "{numerator}_vs_{denominator}")
    p = sub.add_parser(
        "pathways",
        help="gene-set tests (camera) and per-run pathway scores",
        description="Map protein groups to gene symbols (case-insensitive; a group counts for each of its genes "
        "or its first, and one protein per gene is kept by the duplicates rule), test every gene set of the "
        "configured collections with limma's camera for every test of the differential section (on "
        "proteins with values in all its runs, prepared as for the differential tests, with the test's design "
        "including differential.covariates), optionally cameraPR, over-representation (hypergeometric against the "
        "tested proteins) and preranked GSEA on the covariate-adjusted moderated t of every tested protein, and "
        "score every set in every run (mean z-score or GSVA).",
        epilog=f"outputs:\n  {layout.pathways(*test)}: set, collection, set_size, NGenes, "
        "Correlation,\n  Direction, PValue, FDR (FDR within each collection; set_size: members in the GMT, "
        "NGenes: members among the proteins without missing values)\n"
        f"  {layout.pathways(*test, method='camerapr')}: the same columns; NGenes: members among the tested "
        "proteins\n"
        f"  {layout.pathways(*test, method='ora')}: set, collection, set_size, NGenes, Overlap, Expected, "
        "OddsRatio, PValue, FDR\n"
        f"  {layout.pathways(*test, method='gsea')}: set, collection, set_size, NGenes, ES, NES, "
        "PValue ((b+1)/(n+1)), FDR\n"
        f"  {layout.pathway_scores()}: set, collection, then one score column per run",
    )
    p.add_argument("proteins", help="protein matrix from dvp quantify (proteins.tsv)")
    p.add_argument("--samples", required=True, help="samples sheet (TSV)")
    p.add_argument("--runs", required=True, help="runs sheet (TSV)")
    p.add_argument("--results", default="results", help="results folder to write into (default: results)")
    p.add_argument(
        "--differential-options",
        default="{}",
        metavar="JSON",
        help="the 'differential' section (contrasts, normalisation, valid-value filter) as JSON",
    )
    add_options_argument(p, "pathways")
    p.set_defaults(func=run)


def run(args) -> None:
    """Run ``dvp pathways`` with parsed arguments."""
    options = load_options(args, "pathways")
    differential = load_options(args, "differential", argument="differential_options")
    samples, runs = read_design(args.samples, args.runs)
    proteins, genes = read_proteins(args.proteins)
    results = pathway_analysis(proteins, genes, samples, runs, options, differential)
    layout = Results(args.results)
    for test in results.tests:
        for method, tables in results.tables.items():
            write_table(tables[test.key], layout.pathways(test.folder, test.name, method))
    write_table(results.scores, layout.pathway_scores())
