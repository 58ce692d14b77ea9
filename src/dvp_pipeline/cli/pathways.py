"""``dvp pathways``: camera gene-set tests per cell type and contrast, and per-run set scores."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from dvp_pipeline.cli._common import (
    add_options_argument,
    contrast_matrix,
    load_options,
    read_design,
    read_proteins,
)
from dvp_pipeline.config import section_options
from dvp_pipeline.genesets import collection_label, load_collection, sets_to_features
from dvp_pipeline.io import write_table
from dvp_pipeline.pathways import camera, set_scores
from dvp_pipeline.stats import median_normalize

log = logging.getLogger("dvp.pathways")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pathways",
        help="gene-set tests (camera) and per-run pathway scores",
        description="Map protein groups to gene symbols (a group counts for each of its genes, case-insensitive), "
        "test every gene set of the configured collections with limma's camera for every cell type "
        "and contrast (on proteins measured in all runs of the contrast, normalised as for the "
        "differential tests), and score every set in every run (mean z-score of its members).",
        epilog="outputs:\n  OUTDIR/{cell_type}/{numerator}_vs_{denominator}.tsv: set, collection, set_size, NGenes, "
        "Correlation,\n  Direction, PValue, FDR (FDR within each collection)\n"
        "  --scores TSV: set, collection, then one score column per run",
    )
    p.add_argument("proteins", help="protein matrix from dvp quantify (proteins.tsv)")
    p.add_argument("--samples", required=True, help="samples sheet (TSV)")
    p.add_argument("--runs", required=True, help="runs sheet (TSV)")
    p.add_argument("--outdir", required=True, help="output folder for the camera tables")
    p.add_argument("--scores", required=True, help="output: per-run set scores (TSV)")
    p.add_argument(
        "--differential-options",
        default="{}",
        metavar="JSON",
        help="the 'differential' section (contrasts, normalisation, valid-value filter) as JSON",
    )
    add_options_argument(p, "pathways")
    p.set_defaults(func=run)


def run(args) -> None:
    options = load_options(args, "pathways")
    diff = section_options(json.loads(args.differential_options), "differential", source="--differential-options")
    samples, runs = read_design(args.samples, args.runs)
    proteins, genes = read_proteins(args.proteins)
    symbols = {collection_label(c): load_collection(c) for c in options["gene_sets"]}
    collections = {label: sets_to_features(sets, genes) for label, sets in symbols.items()}
    sizes = {label: {name: len(members) for name, members in sets.items()} for label, sets in symbols.items()}
    for cell_type in dict.fromkeys(runs["cell_type"]):
        for num, den in diff["contrasts"]:
            matrix, groups = contrast_matrix(
                proteins, samples, runs, cell_type=cell_type, contrast=(num, den), options=diff
            )
            complete = matrix.dropna()
            tables = []
            for label, sets in collections.items():
                sets = {
                    n: m
                    for n, m in sets.items()
                    if options["min_set_size"] <= len(set(m) & set(complete.index)) <= options["max_set_size"]
                }
                if not sets:
                    continue
                table = camera(complete, groups, sets, contrast=(num, den), inter_gene_cor=options["inter_gene_cor"])
                table.insert(0, "set_size", [sizes[label][n] for n in table.index])
                table.insert(0, "collection", label)
                tables.append(table)
            result = (
                pd.concat(tables).rename_axis("set").reset_index()
                if tables
                else pd.DataFrame(
                    columns=["set", "collection", "set_size", "NGenes", "Correlation", "Direction", "PValue", "FDR"]
                )
            )
            write_table(
                result.sort_values(["PValue", "set"], kind="stable"),
                Path(args.outdir) / cell_type / f"{num}_vs_{den}.tsv",
            )
            log.info(
                "%s %s vs %s: %d sets tested on %d proteins, %d at FDR < 0.05",
                cell_type,
                num,
                den,
                len(result),
                len(complete),
                int((result["FDR"] < 0.05).sum()),
            )
    scores = []
    strata = runs.set_index("run")["cell_type"].reindex(proteins.columns)
    normalized = pd.concat(
        [median_normalize(proteins[list(cols)]) for _, cols in strata.groupby(strata).groups.items()], axis=1
    )[proteins.columns]
    for label, sets in collections.items():
        table = set_scores(normalized, sets, strata=strata, min_size=options["min_set_size"])
        table.insert(0, "collection", label)
        scores.append(table)
    write_table(pd.concat(scores).rename_axis("set").reset_index(), args.scores)
