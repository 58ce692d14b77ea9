"""``dvp quantify``: search-engine output (or mzML + identifications) -> ions, protein matrix, QC."""

from __future__ import annotations

import logging

import pandas as pd

from dvp_pipeline.cli._common import add_options_argument, load_options, read_design
from dvp_pipeline.errors import DVPError
from dvp_pipeline.io import write_table
from dvp_pipeline.quant import quant_qc, quantify
from dvp_pipeline.readers import Filters, read_ions
from dvp_pipeline.readers.mzml import MS1Settings, quantify_runs

log = logging.getLogger("dvp.quantify")


def add_parser(sub) -> None:
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


def read_input(options: dict) -> pd.DataFrame:
    """The ion table of the configured input, filtered."""
    if options["format"] == "mzml":
        m = options["mzml"]
        settings = MS1Settings(
            fdr=m["fdr"], decoy_prefix=m["decoy_prefix"], ppm=m["ppm"], rt_window=m["rt_window"], isotopes=m["isotopes"]
        )
        return quantify_runs(options["spectra"], options["identifications"], settings)
    filters = Filters(
        precursor_q=options["precursor_q"],
        protein_q=options["protein_q"],
        match_between_runs=options["match_between_runs"],
        quantity=options["quantity"],
        decoy_pattern=options["decoy_pattern"],
        contaminant_pattern=options["contaminant_pattern"],
    )
    return read_ions(options["report"], fmt=options["format"], filters=filters)


def run(args) -> None:
    options = load_options(args, "quantify", fixed={"report": args.report or None})
    samples, runs = read_design(args.samples, args.runs)
    precursors = read_input(options)
    wanted = list(runs["run"])
    precursors = precursors[precursors["run"].isin(wanted)]
    present = set(precursors["run"].astype(str))
    absent = [r for r in wanted if r not in present]
    if absent:
        source = options.get("report") or ", ".join(options["spectra"])
        raise DVPError(f"{source}: no precursor passes the filters in run(s) {', '.join(absent)}")
    n_prec = precursors.groupby("protein", observed=True)["precursor"].nunique()
    keep = n_prec.index[n_prec >= options["min_precursors"]]
    precursors = precursors[precursors["protein"].isin(keep)]
    if precursors.empty:
        raise DVPError(f"no protein has {options['min_precursors']} or more precursors (quantify.min_precursors)")
    log.info(
        "%d precursors of %d protein groups in %d runs pass the filters",
        precursors["precursor"].nunique(),
        len(keep),
        len(wanted),
    )
    meta = runs.merge(samples[["sample", "condition"]], on="sample", how="left").set_index("run")
    within = meta["cell_type"] if options["normalize_within"] == "cell_type" else None
    proteins = quantify(
        precursors,
        method=options["method"],
        top=options["top_n"],
        normalization=options["normalize"],
        groups=within,
        threads=args.threads,
    )
    proteins = proteins.reindex(columns=wanted)
    proteins.index = proteins.index.astype(str)
    genes = precursors.drop_duplicates("protein").set_index("protein")["genes"].astype(str)
    genes.index = genes.index.astype(str)
    table = proteins.copy()
    table.insert(0, "genes", genes.reindex(proteins.index).to_numpy())
    replicate = meta["cell_type"].astype(str) + " / " + meta["condition"].astype(str)
    qc = quant_qc(precursors, proteins, groups=replicate).merge(meta[["sample", "cell_type"]].reset_index(), on="run")
    first = ["run", "sample", "cell_type"]
    qc = qc[first + [c for c in qc.columns if c not in first]]
    # Plain strings in the Parquet file that later stages and users read.
    precursors = precursors.astype({c: str for c in ("run", "protein", "genes", "precursor")})
    write_table(precursors.reset_index(drop=True), args.precursors)
    write_table(table.reset_index(names="protein"), args.proteins)
    write_table(qc, args.qc)
