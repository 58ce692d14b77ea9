"""``dvp differential``: limma moderated t-tests per cell type and contrast."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dvp_pipeline.cli._common import (
    add_options_argument,
    differential_tests,
    load_options,
    moderated_test,
    prepare_matrix,
    read_design,
    read_proteins,
)
from dvp_pipeline.io import write_json, write_table

log = logging.getLogger("dvp.differential")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "differential",
        help="moderated t-tests (limma) per cell type and contrast",
        description="For every cell type of the runs sheet and every contrast [numerator, denominator] of "
        "conditions: normalise the runs, keep proteins with enough values in both groups, and test "
        "with limma's moderated t (lmFit, contrasts.fit, eBayes; Benjamini-Hochberg FDR).",
        epilog="outputs:\n  OUTDIR/{cell_type}/{numerator}_vs_{denominator}.tsv with columns protein, genes, logFC, "
        "AveExpr, t,\n  P.Value, adj.P.Val, B, n_valid_{group} and n_imputed_{group} per group (s2.prior with trend, "
        "df.prior with robust)\n  OUTDIR/{a}_x_{b}/{numerator}_vs_{denominator}.tsv for each interaction "
        "(groups {cell_type}.{condition})\n  OUTDIR/methods.json: design, filter, normalisation, imputation and "
        "prior of every table",
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
    methods = {}
    for test in differential_tests(samples, runs, options):
        matrix, imputed, covariates, record = prepare_matrix(proteins, samples, runs, test, options)
        result = moderated_test(matrix, test, covariates, options)
        for key in ("s2.prior", "df.prior"):  # medians when trend / robust make them per protein
            value = float(np.median(result.attrs[key]))
            record[key] = value if np.isfinite(value) else str(value)  # JSON has no Infinity
        methods[test.key] = record
        for g in test.weights:
            runs_of_g = test.groups.index[test.groups == g]
            result[f"n_valid_{g}"] = matrix.loc[:, runs_of_g].notna().sum(axis=1) - imputed.loc[:, runs_of_g].sum(
                axis=1
            )
            result[f"n_imputed_{g}"] = imputed.loc[:, runs_of_g].sum(axis=1)
        result.insert(0, "genes", genes.reindex(result.index))
        write_table(result.reset_index(), Path(args.outdir) / test.folder / f"{test.name}.tsv")
        log.info(
            "%s: %d proteins tested, %d at adj.P.Val < 0.05, %d imputed values",
            test.description,
            len(result),
            int((result["adj.P.Val"] < 0.05).sum()),
            record["imputed_values"],
        )
        if record["imputed_values"]:
            log.warning("%s: %d imputed values enter the test", test.key, record["imputed_values"])
    write_json(methods, Path(args.outdir) / "methods.json")
