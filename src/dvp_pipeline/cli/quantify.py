"""``dvp quantify``: search-engine report -> filtered precursors, log2 protein matrix, per-run QC."""

from __future__ import annotations

import logging

from dvp_pipeline.cli._common import add_options_argument, load_options, read_design
from dvp_pipeline.errors import DVPError
from dvp_pipeline.io import write_table
from dvp_pipeline.quant import maxlfq, quant_qc, read_diann

log = logging.getLogger("dvp.quantify")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "quantify",
        help="MS report -> protein x run matrix (MaxLFQ)",
        description="Read a DIA-NN main report (.parquet or .tsv; only the needed columns), keep precursors "
        "passing the run-specific q-value filters, and compute MaxLFQ protein abundances (log2) "
        "for the runs of the runs sheet.",
        epilog="outputs:\n  --precursors  filtered long table (run, protein, genes, precursor, intensity, q-values)\n"
        "  --proteins    TSV: protein, genes, then one log2 column per run (NA = not quantified)\n"
        "  --qc          TSV: run, sample, cell_type, precursors, proteins, missing_fraction, median_log2",
    )
    p.add_argument("report", help="search-engine output (DIA-NN main report)")
    p.add_argument("--samples", required=True, help="samples sheet (TSV)")
    p.add_argument("--runs", required=True, help="runs sheet (TSV); only its runs are quantified, in its order")
    p.add_argument("--precursors", required=True, help="output: filtered precursors (.parquet)")
    p.add_argument("--proteins", required=True, help="output: protein matrix (.tsv)")
    p.add_argument("--qc", required=True, help="output: per-run QC table (.tsv)")
    add_options_argument(p, "quantify")
    p.set_defaults(func=run)


def run(args) -> None:
    options = load_options(args, "quantify", fixed={"report": args.report})
    samples, runs = read_design(args.samples, args.runs)
    precursors = read_diann(
        options["report"],
        quantity=options["quantity"],
        precursor_q=options["precursor_q"],
        protein_q=options["protein_q"],
    )
    wanted = list(runs["run"])
    precursors = precursors[precursors["run"].isin(wanted)]
    absent = [r for r in wanted if r not in set(precursors["run"])]
    if absent:
        raise DVPError(f"{options['report']}: no precursor passes the filters in run(s) {', '.join(absent)}")
    n_prec = precursors.groupby("protein")["precursor"].nunique()
    keep = n_prec.index[n_prec >= options["min_precursors"]]
    precursors = precursors[precursors["protein"].isin(keep)]
    log.info(
        "%d precursors of %d protein groups in %d runs pass the filters",
        precursors["precursor"].nunique(),
        len(keep),
        len(wanted),
    )
    proteins = maxlfq(precursors, protein="protein", ion="precursor", sample="run", intensity="intensity")
    proteins = proteins.reindex(columns=wanted)
    genes = precursors.drop_duplicates("protein").set_index("protein")["genes"]
    table = proteins.copy()
    table.insert(0, "genes", genes.reindex(proteins.index).to_numpy())
    qc = quant_qc(precursors, proteins).merge(runs[["run", "sample", "cell_type"]], on="run")
    qc = qc[["run", "sample", "cell_type", "precursors", "proteins", "missing_fraction", "median_log2"]]
    write_table(precursors, args.precursors)
    write_table(table.reset_index(), args.proteins)
    write_table(qc, args.qc)
