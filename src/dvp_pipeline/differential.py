"""The differential stage: every test the config asks for, prepared and run with limma's moderated t.

Sits between quantification and pathways. :func:`differential_tests` turns the runs sheet and the
``differential`` options into tests (each contrast within each cell type, then the interactions);
:func:`prepare_test` normalises each cell type's runs (:mod:`dvp_pipeline.normalize`), filters
proteins by valid values and imputes as configured; :func:`differential_analysis` runs them all with
:func:`dvp_pipeline.stats.moderated_ttest` and returns the tables the CLI writes. The pathway stage
prepares its matrices with the same functions, so both stages test the same proteins.

Examples
--------
>>> import pandas as pd
>>> from dvp_pipeline.options import DifferentialOptions
>>> samples = pd.DataFrame({"sample": ["s1", "s2"], "condition": ["TEN", "MPR"]})
>>> runs = pd.DataFrame({"run": ["r1", "r2"], "sample": ["s1", "s2"], "cell_type": ["keratinocyte"] * 2})
>>> options = DifferentialOptions.from_mapping({"contrasts": [["TEN", "MPR"]]})
>>> [t.key for t in differential_tests(samples, runs, options)]
['keratinocyte/TEN_vs_MPR']
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError
from dvp_pipeline.normalize import normalize_within, remove_batch_effect, run_normalizer
from dvp_pipeline.options import DifferentialOptions
from dvp_pipeline.stats import design_matrix, moderated_ttest

__all__ = [
    "DifferentialResults",
    "DifferentialTest",
    "PreparedTest",
    "design_covariates",
    "remove_covariates",
    "run_covariates",
    "differential_analysis",
    "average_replicates",
    "differential_tests",
    "impute_missing",
    "normalize_runs",
    "prepare_test",
    "run_test",
    "valid_value_filter",
]

log = logging.getLogger(__name__)


@dataclass
class DifferentialTest:
    """One test of the differential section: where it is written, its groups and its contrast.

    ``groups`` maps each run to its group: the condition for a contrast within a cell type,
    ``{cell_type}.{condition}`` for an interaction; ``pools`` maps each run to its sample and cell
    type (``{sample}|{cell_type}``): runs that share one are replicate pools of the same material.
    """

    folder: str
    name: str
    groups: pd.Series
    cell_types: pd.Series
    weights: dict[str, float]
    description: str
    pools: pd.Series

    @property
    def replicated(self) -> bool:
        """Whether some sample and cell type has more than one run in the test."""
        return bool(self.pools.duplicated().any())

    def subset(self, run_names) -> DifferentialTest:
        """The same test on some of its runs."""
        keep = list(run_names)
        return DifferentialTest(
            self.folder,
            self.name,
            self.groups.loc[keep],
            self.cell_types.loc[keep],
            self.weights,
            self.description,
            self.pools.loc[keep],
        )

    @property
    def key(self) -> str:
        """``{folder}/{name}``, e.g. ``keratinocyte/TEN_vs_MPR``: the test's place in the results."""
        return f"{self.folder}/{self.name}"


@dataclass
class PreparedTest:
    """A test's matrix after normalisation, filtering and imputation, with what was done to it.

    ``test`` is the test as prepared (with ``differential.replicates: average`` one run per pool);
    ``block`` maps runs to their pool when replicate pools enter the fit as a block.
    """

    matrix: pd.DataFrame
    imputed: pd.DataFrame
    covariates: pd.DataFrame | None
    methods: dict
    test: DifferentialTest
    block: pd.Series | None = None


@dataclass
class DifferentialResults:
    """The differential stage's output: one limma table per test (by key) and the methods record."""

    tests: list[DifferentialTest]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    methods: dict[str, dict] = field(default_factory=dict)


def differential_tests(
    samples: pd.DataFrame, runs: pd.DataFrame, options: DifferentialOptions
) -> list[DifferentialTest]:
    """Every test the differential options ask for: each contrast in each cell type, then the interactions."""
    condition = runs["sample"].map(samples.set_index("sample")["condition"])
    pool = pd.Series((runs["sample"].astype(str) + "|" + runs["cell_type"].astype(str)).to_numpy(), index=runs["run"])
    tests = []
    for cell_type in dict.fromkeys(runs["cell_type"]):
        for num, den in options.contrasts:
            chosen = (runs["cell_type"] == cell_type) & condition.isin([num, den])
            if not chosen.any():
                raise DVPError(f"no runs of cell type '{cell_type}' in conditions {num} or {den}")
            index = runs.loc[chosen, "run"].to_numpy()
            tests.append(
                DifferentialTest(
                    folder=cell_type,
                    name=f"{num}_vs_{den}",
                    groups=pd.Series(condition[chosen].to_numpy(), index=index),
                    cell_types=pd.Series(cell_type, index=index),
                    weights={num: 1.0, den: -1.0},
                    description=f"{num} - {den} in {cell_type}",
                    pools=pool.loc[index],
                )
            )
    for i, interaction in enumerate(options.interactions):
        tests.append(_interaction_test(i, interaction, runs, condition, pool))
    return tests


def _interaction_test(
    i: int, interaction: list[str], runs: pd.DataFrame, condition: pd.Series, pool: pd.Series
) -> DifferentialTest:
    num, den, type_a, type_b = interaction
    for cell_type in (type_a, type_b):
        if cell_type not in set(runs["cell_type"]):
            raise DVPError(
                f"differential.interactions[{i}]: cell type '{cell_type}' is not in the runs sheet "
                f"(cell types: {', '.join(dict.fromkeys(runs['cell_type']))})"
            )
    if type_a == type_b or num == den:
        raise DVPError(f"differential.interactions[{i}]: needs two different conditions and two cell types")
    chosen = runs["cell_type"].isin([type_a, type_b]) & condition.isin([num, den])
    index = runs.loc[chosen, "run"].to_numpy()
    labels = runs.loc[chosen, "cell_type"].to_numpy() + "." + condition[chosen].to_numpy()
    weights = {f"{type_a}.{num}": 1.0, f"{type_a}.{den}": -1.0, f"{type_b}.{num}": -1.0, f"{type_b}.{den}": 1.0}
    absent = sorted(set(weights) - set(labels))
    if absent:
        raise DVPError(f"differential.interactions[{i}]: no runs for {', '.join(absent)}")
    return DifferentialTest(
        folder=f"{type_a}_x_{type_b}",
        name=f"{num}_vs_{den}",
        groups=pd.Series(labels, index=index),
        cell_types=pd.Series(runs.loc[chosen, "cell_type"].to_numpy(), index=index),
        weights=weights,
        description=f"({num} - {den} in {type_a}) - ({num} - {den} in {type_b})",
        pools=pool.loc[index],
    )


def normalize_runs(matrix: pd.DataFrame, cell_types: pd.Series, options: DifferentialOptions) -> pd.DataFrame:
    """The matrix normalised as ``differential.normalize`` says, each cell type's runs on their own."""
    return normalize_within(matrix, cell_types, run_normalizer(options.normalize, section="differential"))


def prepare_test(
    proteins: pd.DataFrame,
    samples: pd.DataFrame,
    runs: pd.DataFrame,
    test: DifferentialTest,
    options: DifferentialOptions,
) -> PreparedTest:
    """The protein matrix of one test: normalised per cell type, replicate pools averaged or kept as a
    block, filtered, imputed as the options say."""
    missing = [r for r in test.groups.index if r not in proteins.columns]
    if missing:
        raise DVPError(f"runs {', '.join(missing)} are in the runs sheet but not in the protein matrix")
    matrix = proteins[list(test.groups.index)]
    matrix = matrix[matrix.notna().any(axis=1)]
    if matrix.empty:
        raise DVPError(
            f"{test.key} ({test.description}): the protein matrix has no values in runs {', '.join(test.groups.index)}"
        )
    matrix = normalize_runs(matrix, test.cell_types, options)
    block, replicates = None, None
    if test.replicated and options.replicates == "average":
        n_runs = len(test.groups)
        matrix, test = average_replicates(matrix, test)
        replicates = (
            f"{n_runs} runs of {len(test.groups)} replicate pools averaged (mean log2 per sample and cell type)"
        )
    elif test.replicated:
        block = test.pools
    n_before = len(matrix)
    filtered = valid_value_filter(
        matrix,
        test.groups,
        min_per_group=options.min_valid_per_group,
        min_fraction=options.min_valid_fraction,
        require=options.valid_in,
    )
    if filtered.empty:
        raise DVPError(_nothing_passes(test, options, matrix))
    matrix = filtered
    matrix, imputed = impute_missing(
        matrix, method=options.impute, width=options.impute_width, shift=options.impute_shift, seed=options.seed
    )
    covariates = design_covariates(samples, runs, test, options) if options.covariates else None
    _check_residual_df(test, covariates)
    methods = _methods_record(test, options, len(matrix), n_before, imputed)
    if replicates:
        methods["replicates"] = replicates
    return PreparedTest(matrix, imputed, covariates, methods, test, block)


def average_replicates(matrix: pd.DataFrame, test: DifferentialTest) -> tuple[pd.DataFrame, DifferentialTest]:
    """One value per pool (sample and cell type): the mean of its runs' observed log2 values, in the
    column of its first run; and the test restricted to those runs."""
    pools = test.pools.loc[list(matrix.columns)]
    firsts = list(pools.index[~pools.duplicated()])
    first_of = dict(zip(pools.loc[firsts], firsts, strict=True))
    means = matrix.T.groupby(pools.to_numpy(), sort=False).mean().T  # NaN skipped; an empty pool stays NaN
    means.columns = [first_of[p] for p in means.columns]
    return means[firsts], test.subset(firsts)


def _runs_per_group(test: DifferentialTest) -> str:
    sizes = test.groups.value_counts()
    return ", ".join(f"{g} {sizes.get(g, 0)} run{'' if sizes.get(g, 0) == 1 else 's'}" for g in test.weights)


def _nothing_passes(test: DifferentialTest, options: DifferentialOptions, matrix: pd.DataFrame) -> str:
    """Why no protein of a test passed the valid-value filter, and what to change.

    ``matrix`` is the test's matrix before the filter.
    """
    sizes = test.groups.value_counts()
    if options.min_valid_fraction is not None:
        rule = f"{options.min_valid_fraction:.0%} of its runs observed (differential.min_valid_fraction)"
        needed = {g: int(np.ceil(options.min_valid_fraction * n - 1e-9)) for g, n in sizes.items()}
    else:
        rule = f"at least {options.min_valid_per_group} value(s) (differential.min_valid_per_group)"
        needed = dict.fromkeys(sizes.index, options.min_valid_per_group)
    # The most values any one protein has in each group: a group where even that falls short empties the matrix.
    best = matrix.notna().T.groupby(test.groups.loc[matrix.columns]).sum().max(axis=1)
    which = "each group" if options.valid_in == "each" else "at least one group"
    reasons = []
    for g in test.weights:
        n, most = int(sizes.get(g, 0)), int(best.get(g, 0))
        if most >= needed.get(g, 0):
            continue
        runs = ", ".join(map(str, test.groups.index[test.groups == g]))
        if n < needed[g]:
            reasons.append(
                f"group {g} has {n} run(s) ({runs}), fewer than the filter asks: add runs, or lower "
                f"differential.min_valid_per_group to {max(n, 1)}"
            )
        elif most == 0:
            reasons.append(
                f"group {g}'s run(s) {runs} have no values in the protein matrix: check them in the QC table"
            )
        else:
            reasons.append(
                f"in group {g} ({n} runs) no protein has more than {most} value(s): lower "
                "differential.min_valid_per_group or min_valid_fraction"
            )
    if options.valid_in == "each" and len(reasons) < len(test.weights):
        reasons.append("or set valid_in: any with imputation, to test proteins seen in one group only")
    advice = "; ".join(reasons)
    return (
        f"{test.key} ({test.description}): no protein passes the valid-value filter, which asks {which} for "
        f"{rule}; 0 of {len(matrix)} proteins kept. {advice[:1].upper()}{advice[1:]}"
    )


def _check_residual_df(test: DifferentialTest, covariates: pd.DataFrame | None) -> None:
    """Refuse a test whose design leaves no residual degrees of freedom: limma could estimate no variance."""
    design = design_matrix(test.groups.astype(str), covariates=covariates).to_numpy()
    rank = np.linalg.matrix_rank(design)
    if rank < design.shape[1]:
        return  # confounded covariates: moderated_ttest names that
    if len(design) - rank <= 0:
        extra = f" and {len(design.T) - test.groups.nunique()} covariate level(s)" if covariates is not None else ""
        raise DVPError(
            f"{test.key} ({test.description}): {len(design)} runs for {test.groups.nunique()} groups{extra} leave "
            f"no residual degrees of freedom, so no variance can be estimated (runs: {_runs_per_group(test)}); "
            "a group needs a second run" + (", or drop a covariate" if covariates is not None else "")
        )


def design_covariates(
    samples: pd.DataFrame, runs: pd.DataFrame, test: DifferentialTest, options: DifferentialOptions
) -> pd.DataFrame:
    """The design covariates of a test's runs, one factor column per samples-sheet column."""
    return run_covariates(samples, runs, list(test.groups.index), options.covariates, what=test.key)


def remove_covariates(
    matrix: pd.DataFrame, samples: pd.DataFrame, runs: pd.DataFrame, covariates: Sequence[str]
) -> pd.DataFrame:
    """The matrix with the effects of ``covariates`` (samples-sheet columns) removed within each cell type,
    the conditions kept (limma's removeBatchEffect): for per-run scores and plots, not for tests."""
    if not covariates:
        return matrix
    meta = runs.set_index("run").loc[list(matrix.columns)]
    condition = meta["sample"].map(samples.set_index("sample")["condition"])
    out = matrix.copy()
    for _, members in meta.groupby("cell_type", sort=False).groups.items():
        cols = list(members)
        factors = run_covariates(samples, runs, cols, list(covariates))
        out[cols] = remove_batch_effect(matrix[cols], factors, condition[cols])
    return out


def run_covariates(
    samples: pd.DataFrame, runs: pd.DataFrame, run_names: list[str], columns: list[str], *, what: str = "the runs"
) -> pd.DataFrame:
    """Samples-sheet ``columns`` (or ``sample`` itself) for each of ``run_names``, as text factors."""
    sheet = samples.set_index("sample")
    run_sample = runs.set_index("run")["sample"].loc[run_names]
    out = {}
    for column in columns:
        if column != "sample" and column not in sheet.columns:
            raise DVPError(
                f"differential.covariates: '{column}' is not a column of the samples sheet "
                f"(columns: {', '.join(['sample', *sheet.columns])})"
            )
        values = run_sample if column == "sample" else run_sample.map(sheet[column])
        if values.isna().any():
            raise DVPError(f"differential.covariates: '{column}' is empty for some samples of {what}")
        out[column] = values.astype(str).to_numpy()
    return pd.DataFrame(out, index=run_names)


def _methods_record(
    test: DifferentialTest, options: DifferentialOptions, n_kept: int, n_before: int, imputed: pd.DataFrame
) -> dict:
    """What was done to a test's matrix, for ``methods.json``."""
    valid = (
        f"at least {options.min_valid_fraction:.0%} of the runs"
        if options.min_valid_fraction is not None
        else f"at least {options.min_valid_per_group} values"
    )
    if options.impute == "perseus":
        impute = (
            f"perseus (down-shift {options.impute_shift} sd, width {options.impute_width} sd, "
            f"per run, seed {options.seed})"
        )
    else:
        impute = "none" if options.impute == "none" else f"{options.impute} (run minimum)"
    return {
        "test": test.description,
        "groups": {g: int(n) for g, n in test.groups.value_counts().sort_index().items()},
        "design": "~0 + group" + "".join(f" + {c}" for c in options.covariates),
        "normalize": options.normalize + " (per cell type)",
        "valid_value_filter": f"{valid} in {options.valid_in} group; {n_kept} of {n_before} proteins kept",
        "impute": impute,
        "imputed_values": int(imputed.to_numpy().sum()),
        "eBayes": f"trend={options.trend}, robust={options.robust}",
    }


def run_test(prepared: PreparedTest, options: DifferentialOptions) -> pd.DataFrame:
    """limma's moderated t of one prepared test, with the differential options' trend and robust, and
    replicate pools as a block (limma's duplicateCorrelation) when they are kept apart."""
    return moderated_ttest(
        prepared.matrix,
        prepared.test.groups,
        contrast=prepared.test.weights,
        covariates=prepared.covariates,
        trend=options.trend,
        robust=options.robust,
        block=prepared.block,
    )


def differential_analysis(
    proteins: pd.DataFrame,
    samples: pd.DataFrame,
    runs: pd.DataFrame,
    options: DifferentialOptions,
    *,
    genes: pd.Series | None = None,
) -> DifferentialResults:
    """Run every test of the differential section: the library function behind ``dvp differential``.

    Parameters
    ----------
    proteins
        Proteins x runs, log2 (NaN = not quantified), as ``dvp quantify`` writes it.
    samples, runs
        The samples and runs sheets.
    options
        The ``differential`` section.
    genes
        Gene names per protein, written as the tables' ``genes`` column.

    Returns
    -------
    One table per test (keyed ``{folder}/{name}``) with limma's columns plus ``n_valid_{group}`` and
    ``n_imputed_{group}``, and per test a record of the design, filter, normalisation, imputation and
    eBayes priors (medians when trend or robust make them per protein).
    """
    results = DifferentialResults(tests=differential_tests(samples, runs, options))
    for test in results.tests:
        prepared = prepare_test(proteins, samples, runs, test, options)
        table = run_test(prepared, options)
        record = prepared.methods
        if prepared.block is not None:
            record["replicates"] = (
                f"replicate pools as a block (limma duplicateCorrelation, consensus correlation "
                f"{table.attrs['correlation']:.3f})"
            )
        test = prepared.test
        for key in ("s2.prior", "df.prior"):
            value = float(np.median(table.attrs[key]))
            record[key] = value if np.isfinite(value) else str(value)  # JSON has no Infinity
        for g in test.weights:
            runs_of_g = test.groups.index[test.groups == g]
            imputed = prepared.imputed.loc[:, runs_of_g].sum(axis=1)
            table[f"n_valid_{g}"] = prepared.matrix.loc[:, runs_of_g].notna().sum(axis=1) - imputed
            table[f"n_imputed_{g}"] = imputed
        table.insert(0, "genes", genes.reindex(table.index) if genes is not None else np.nan)
        results.tables[test.key] = table.reset_index()
        results.methods[test.key] = record
        log.info(
            "%s: %d proteins tested, %d at adj.P.Val < 0.05, %d imputed values",
            test.description,
            len(table),
            int((table["adj.P.Val"] < 0.05).sum()),
            record["imputed_values"],
        )
        if record["imputed_values"]:
            log.warning("%s: %d imputed values enter the test", test.key, record["imputed_values"])
    return results


def valid_value_filter(
    matrix: pd.DataFrame,
    groups: pd.Series,
    *,
    min_per_group: int = 2,
    min_fraction: float | None = None,
    require: str = "each",
) -> pd.DataFrame:
    """Keep features with enough observed values per group.

    Parameters
    ----------
    matrix
        Features x samples, NaN for missing values.
    groups
        Group of each sample.
    min_per_group
        Least number of observed values a group needs.
    min_fraction
        If given, a group instead needs this fraction of its samples observed (rounded up).
    require
        ``"each"``: every group must pass (the default, safe without imputation); ``"any"``: at least
        one group (Perseus' "in at least one group", for on/off proteins, usually with imputation).
    """
    if require not in ("each", "any"):
        raise DVPError(f"valid_value_filter: require must be 'each' or 'any', not '{require}'")
    g = groups.loc[matrix.columns]
    counts = matrix.notna().T.groupby(g).sum().T
    if min_fraction is not None:
        sizes = g.value_counts().reindex(counts.columns)
        needed = np.ceil(min_fraction * sizes.to_numpy() - 1e-9)
    else:
        needed = np.full(counts.shape[1], float(min_per_group))
    passing = counts.to_numpy() >= needed
    keep = passing.all(axis=1) if require == "each" else passing.any(axis=1)
    return matrix[keep]


def impute_missing(
    matrix: pd.DataFrame,
    *,
    method: str = "perseus",
    width: float = 0.3,
    shift: float = 1.8,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replace missing values, assuming they are below the detection limit.

    Parameters
    ----------
    matrix
        Features x runs, log2.
    method
        ``"perseus"``: draws per run from a normal distribution down-shifted by ``shift`` standard
        deviations of the run's values and ``width`` times as wide (Perseus' defaults 1.8 and 0.3);
        ``"minimum"``: the run's smallest observed value; ``"none"``: unchanged.
    seed
        Random seed. Each run draws from its own stream, seeded by ``seed`` and the run's name, in
        the order of the sorted feature names, so the values do not depend on row or column order.

    Returns
    -------
    The imputed matrix and a boolean mask of the imputed cells.
    """
    mask = matrix.isna()
    if method == "none":
        return matrix.copy(), mask & False
    if method not in ("perseus", "minimum"):
        raise DVPError(f"impute: method must be none, perseus or minimum, not '{method}'")
    out = matrix.copy()
    order = np.argsort(matrix.index.astype(str).to_numpy(), kind="stable")
    for run in matrix.columns:
        column = matrix[run].to_numpy(dtype=float, copy=True)
        missing = np.isnan(column)
        if not missing.any():
            continue
        observed = column[~missing]
        if observed.size < 2:
            raise DVPError(f"impute: run '{run}' has fewer than 2 values; cannot estimate its distribution")
        if method == "minimum":
            column[missing] = observed.min()
        else:
            rng = np.random.default_rng([seed, zlib.crc32(str(run).encode())])
            sd = observed.std(ddof=1)
            draws = rng.normal(observed.mean() - shift * sd, width * sd, size=column.size)
            filled = np.empty(column.size)
            filled[order] = draws  # one draw per feature in sorted-name order
            column[missing] = filled[missing]
        out[run] = column
    return out, mask
