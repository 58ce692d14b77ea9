"""``dvp quantify``: search-engine output (or mzML + identifications) -> ions, protein matrix, QC."""

from __future__ import annotations

from dvp_pipeline.cli._common import add_options_argument, load_options, read_design
from dvp_pipeline.io import write_table
from dvp_pipeline.quant import quantify_cohort

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """Register ``dvp quantify``."""
    p = sub.add_parser(
        "quantify",
        help="MS output -> protein x run matrix (MaxLFQ, directLFQ, top-N, sum)",
        description="Read a search-engine output (DIA-NN, AlphaDIA, Spectronaut, MaxQuant evidence or "
        "proteinGroups, a generic long table; only the needed columns) or, with format mzml, quantify "
        "identified precursors at MS1 in mzML files; keep ions passing the filters and compute protein "
        "abundances (log2) for the runs of the runs sheet.",
        epilog="outputs:\n  --precursors  filtered ion table (run, protein, genes, precursor, intensity[, q-values])\n"
        "  --proteins    TSV: protein, genes, then one log2 column per run (NA = not quantified)\n"
        "  --qc          TSV: run, sample, cell_type, precursors, proteins, missing_fraction,\n"
        "                log2 quartiles, median_cv (between the runs of a cell type and condition)",
    )
    p.add_argument("report", nargs="?", help="search-engine output (not used with format mzml)")
    p.add_argument("--samples", required=True, help="samples sheet (TSV)")
    p.add_argument("--runs", required=True, help="runs sheet (TSV); only its runs are quantified, in its order")
    p.add_argument("--precursors", required=True, help="output: filtered ion table (.parquet)")
    p.add_argument("--proteins", required=True, help="output: protein matrix (.tsv)")
    p.add_argument("--qc", required=True, help="output: per-run QC table (.tsv)")
    p.add_argument("--threads", type=int, default=1, help="threads for MaxLFQ (default 1)")
    add_options_argument(p, "quantify")
    p.set_defaults(func=run)


def run(args) -> None:
    """Run ``dvp quantify`` with parsed arguments."""
    options = load_options(args, "quantify", fixed={"report": args.report or None})
    samples, runs = read_design(args.samples, args.runs)
    result = quantify_cohort(samples, runs, options, threads=args.threads)
    write_table(result.precursors, args.precursors)
    write_table(result.proteins, args.proteins)
    write_table(result.qc, args.qc)
