"""``dvp pathways``: camera gene-set tests per cell type and contrast, and per-run set scores."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from dvp_pipeline.cli._common import (
    add_options_argument,
    differential_tests,
    load_options,
    moderated_test,
    prepare_matrix,
    read_design,
    read_proteins,
)
from dvp_pipeline.config import section_options
from dvp_pipeline.errors import DVPError
from dvp_pipeline.genesets import collection_label, load_collection, sets_to_features
from dvp_pipeline.io import write_table
from dvp_pipeline.pathways import camera, gsea_preranked, gsva_scores, ora, set_scores
from dvp_pipeline.stats import median_normalize, quantile_normalize

log = logging.getLogger("dvp.pathways")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pathways",
        help="gene-set tests (camera) and per-run pathway scores",
        description="Map protein groups to gene symbols (case-insensitive; a group counts for each of its genes "
        "or its first, and one protein per gene is kept by the duplicates rule), test every gene set of the "
        "configured collections with limma's camera for every test of the differential section (on "
        "proteins with values in all its runs, prepared as for the differential tests), optionally "
        "over-representation (hypergeometric against the tested proteins) and preranked GSEA on the "
        "moderated t, and score every set in every run (mean z-score or GSVA-style).",
        epilog="outputs:\n  OUTDIR/{cell_type}/{numerator}_vs_{denominator}.tsv: set, collection, set_size, NGenes, "
        "Correlation,\n  Direction, PValue, FDR (FDR within each collection; set_size: members in the GMT, "
        "NGenes: measured and tested)\n"
        "  ORA_OUTDIR/...: set, collection, set_size, NGenes, Overlap, Expected, OddsRatio, PValue, FDR\n"
        "  GSEA_OUTDIR/...: set, collection, set_size, NGenes, ES, NES, PValue ((b+1)/(n+1)), FDR\n"
        "  --scores TSV: set, collection, then one score column per run",
    )
    p.add_argument("proteins", help="protein matrix from dvp quantify (proteins.tsv)")
    p.add_argument("--samples", required=True, help="samples sheet (TSV)")
    p.add_argument("--runs", required=True, help="runs sheet (TSV)")
    p.add_argument("--outdir", required=True, help="output folder for the camera tables")
    p.add_argument("--scores", required=True, help="output: per-run set scores (TSV)")
    p.add_argument("--ora-outdir", help="output folder for over-representation tables (methods: ora)")
    p.add_argument("--gsea-outdir", help="output folder for preranked GSEA tables (methods: gsea)")
    p.add_argument(
        "--differential-options",
        default="{}",
        metavar="JSON",
        help="the 'differential' section (contrasts, normalisation, valid-value filter) as JSON",
    )
    add_options_argument(p, "pathways")
    p.set_defaults(func=run)


def _sized(sets: dict[str, list[str]], universe, options: dict) -> dict[str, list[str]]:
    present = set(universe)
    return {
        n: m for n, m in sets.items() if options["min_set_size"] <= len(set(m) & present) <= options["max_set_size"]
    }


def _collected(tables: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not tables:
        return pd.DataFrame(columns=["set", "collection", "set_size", *columns])
    return pd.concat(tables).rename_axis("set").reset_index().sort_values(["PValue", "set"], kind="stable")


def run(args) -> None:
    options = load_options(args, "pathways")
    diff = section_options(json.loads(args.differential_options), "differential", source="--differential-options")
    samples, runs = read_design(args.samples, args.runs)
    proteins, genes = read_proteins(args.proteins)
    symbols = {collection_label(c): load_collection(c) for c in options["gene_sets"]}
    collections = {
        label: sets_to_features(
            sets, genes, group_genes=options["group_genes"], duplicates=options["duplicates"], values=proteins
        )
        for label, sets in symbols.items()
    }
    sizes = {label: {name: len(members) for name, members in sets.items()} for label, sets in symbols.items()}
    methods = set(options["methods"])
    for extra, folder in (("ora", args.ora_outdir), ("gsea", args.gsea_outdir)):
        if extra in methods and not folder:
            raise DVPError(f"pathways.methods includes {extra}: --{extra}-outdir is required")
    for test in differential_tests(samples, runs, diff):
        matrix, _, covariates, _ = prepare_matrix(proteins, samples, runs, test, diff)
        complete = matrix.dropna()
        camera_tables, ora_tables, gsea_tables = [], [], []
        result = None
        if methods & {"ora", "gsea"}:
            result = moderated_test(matrix, test, covariates, diff)
            tested = result.dropna(subset=["t"])
        for label, sets in collections.items():
            if "camera" in methods:
                sized = _sized(sets, complete.index, options)
                if sized:
                    table = camera(
                        complete, test.groups, sized, contrast=test.weights, inter_gene_cor=options["inter_gene_cor"]
                    )
                    table.insert(0, "set_size", [sizes[label][n] for n in table.index])
                    table.insert(0, "collection", label)
                    camera_tables.append(table)
            if result is not None:
                sized = _sized(sets, tested.index, options)
                if "ora" in methods and sized:
                    hits = tested.index[tested["adj.P.Val"] < options["ora_fdr"]]
                    table = ora(hits, tested.index, sized, min_size=options["min_set_size"])
                    table.insert(0, "set_size", [sizes[label][n] for n in table.index])
                    table.insert(0, "collection", label)
                    ora_tables.append(table)
                if "gsea" in methods and sized:
                    table = gsea_preranked(
                        tested["t"],
                        sized,
                        permutations=options["gsea_permutations"],
                        seed=options["seed"],
                        min_size=options["min_set_size"],
                        max_size=options["max_set_size"],
                    )
                    table.insert(0, "set_size", [sizes[label][n] for n in table.index])
                    table.insert(0, "collection", label)
                    gsea_tables.append(table)
        camera_result = _collected(camera_tables, ["NGenes", "Correlation", "Direction", "PValue", "FDR"])
        write_table(camera_result, Path(args.outdir) / test.folder / f"{test.name}.tsv")
        if "ora" in methods:
            write_table(
                _collected(ora_tables, ["NGenes", "Overlap", "Expected", "OddsRatio", "PValue", "FDR"]),
                Path(args.ora_outdir) / test.folder / f"{test.name}.tsv",
            )
        if "gsea" in methods:
            write_table(
                _collected(gsea_tables, ["NGenes", "ES", "NES", "PValue", "FDR"]),
                Path(args.gsea_outdir) / test.folder / f"{test.name}.tsv",
            )
        log.info(
            "%s: %d sets tested with camera on %d complete proteins, %d at FDR < 0.05",
            test.description,
            len(camera_result),
            len(complete),
            int((camera_result["FDR"] < 0.05).sum()),
        )
    scores = []
    strata = runs.set_index("run")["cell_type"].reindex(proteins.columns)
    normalizer = quantile_normalize if diff["normalize"] == "quantile" else median_normalize
    if diff["normalize"] == "none":
        normalized = proteins
    else:
        normalized = pd.concat(
            [normalizer(proteins[list(cols)]) for _, cols in strata.groupby(strata).groups.items()], axis=1
        )[proteins.columns]
    for label, sets in collections.items():
        if options["scores"] == "gsva":
            parts = [
                gsva_scores(normalized[list(cols)], sets, min_size=options["min_set_size"])
                for _, cols in strata.groupby(strata).groups.items()
            ]
            table = pd.concat(parts, axis=1)[proteins.columns]
        else:
            table = set_scores(normalized, sets, strata=strata, min_size=options["min_set_size"])
        table.insert(0, "collection", label)
        scores.append(table)
    write_table(pd.concat(scores).rename_axis("set").reset_index(), args.scores)
