"""Pathway scoring: competitive gene-set tests and per-run set scores.

:func:`camera` is limma's camera (Wu & Smyth 2012, Nucleic Acids Res 40:e133), which accounts for
inter-gene correlation and so keeps its false-positive rate on small cohorts where a plain
gene-set t-test does not. :func:`set_scores` gives each run a score per set for heatmaps and the
per-sample reports.

:func:`pathway_analysis` is the pathway stage: every configured collection tested for every test of
the differential section (:mod:`dvp_pipeline.differential` prepares the matrices, so both stages
test the same proteins), plus per-run scores.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from dvp_pipeline.differential import (
    average_replicates,
    differential_tests,
    normalize_runs,
    prepare_test,
    remove_covariates,
    run_test,
)
from dvp_pipeline.errors import DVPError
from dvp_pipeline.genesets import collection_label, load_collection, sets_to_features
from dvp_pipeline.gsva import gsva
from dvp_pipeline.options import DifferentialOptions, PathwaysOptions
from dvp_pipeline.stats import bh_adjust, contrast_weights, design_matrix, squeeze_var

__all__ = [
    "PathwayResults",
    "camera",
    "camera_pr",
    "gsea_preranked",
    "ora",
    "pathway_analysis",
    "set_scores",
]

log = logging.getLogger(__name__)

#: Result columns of each test, after ``set``, ``collection`` and ``set_size``.
RESULT_COLUMNS = {
    "camera": ["NGenes", "Correlation", "Direction", "PValue", "FDR"],
    "camerapr": ["NGenes", "Correlation", "Direction", "PValue", "FDR"],
    "ora": ["NGenes", "Overlap", "Expected", "OddsRatio", "PValue", "FDR"],
    "gsea": ["NGenes", "ES", "NES", "PValue", "FDR"],
}


def _zscore_hill(t: np.ndarray, df: float) -> np.ndarray:
    """Hill's (1970) normal approximation of t quantiles, as limma's ``zscoreT(approx=TRUE, method="hill")``."""
    df = min(df, 1e100)
    a = df - 0.5
    b = 48 * a * a
    z = a * np.log1p(t / df * t)
    z = (((((-0.4 * z - 3.3) * z - 24) * z - 85.5) / (0.8 * z * z + 100 + b) + z + 3) / b + 1) * np.sqrt(z)
    return z * np.sign(t)


def camera(
    matrix: pd.DataFrame,
    groups: pd.Series,
    gene_sets: dict[str, list[str]],
    *,
    contrast: tuple[str, str] | Mapping[str, float],
    covariates: pd.DataFrame | None = None,
    inter_gene_cor: float | None = 0.01,
) -> pd.DataFrame:
    """Competitive gene-set test accounting for inter-gene correlation (limma's ``camera``).

    Parameters
    ----------
    matrix
        Features x samples, log2, without missing values.
    groups
        Group of each sample, indexed by sample.
    gene_sets
        Set name to member feature names (members not in the matrix are ignored).
    contrast
        ``(numerator, denominator)``, or group -> coefficient as for
        :func:`~dvp_pipeline.stats.moderated_ttest`.
    covariates
        Factors of the design besides the groups (indexed by sample), as for
        :func:`~dvp_pipeline.stats.moderated_ttest`: camera is given the full design, as limma's is.
    inter_gene_cor
        Preset correlation; ``None`` estimates it per set from the residuals (limma's ``NA``).

    Returns
    -------
    One row per set (index = set name) with NGenes, Correlation, Direction, PValue, FDR, sorted by
    PValue as limma does. Sets with no measured member are left out.
    """
    y = matrix.to_numpy(dtype=float)
    if np.isnan(y).any():
        raise DVPError("camera: the matrix has missing values; keep complete rows or impute first (or use camerapr)")
    n_genes, n = y.shape
    if n_genes < 3:
        raise DVPError("camera: need at least 3 features")
    groups = groups.loc[list(matrix.columns)].astype(str)
    design = design_matrix(groups, covariates=None if covariates is None else covariates.loc[list(matrix.columns)])
    weights = contrast_weights(contrast)
    for g in weights:
        if g not in design.columns:
            raise DVPError(f"camera: contrast group '{g}' has no samples")
    x = design.to_numpy()
    p = x.shape[1]
    if np.linalg.matrix_rank(x) < p:
        raise DVPError("camera: the design is not of full rank (a covariate is confounded with the groups)")
    df_resid = n - p
    if df_resid < 1:
        raise DVPError("camera: no residual degrees of freedom (need more samples than groups and covariates)")
    c = np.array([weights.get(g, 0.0) for g in design.columns])
    # Reparametrise so the contrast is the last coefficient; only its direction matters.
    q_c = np.linalg.qr(c.reshape(-1, 1), mode="complete")[0]
    basis = np.column_stack([q_c[:, 1:], c / np.linalg.norm(c)])
    q, r = np.linalg.qr(x @ basis, mode="complete")
    effects = q.T @ y.T
    unscaled_t = effects[p - 1] * np.sign(r[p - 1, p - 1])
    resid = effects[p:]
    sigma2 = (resid**2).mean(axis=0)
    u = (resid / np.sqrt(np.maximum(sigma2, 1e-8))).T
    var_post, _, df_prior = squeeze_var(sigma2, np.full(n_genes, float(df_resid)))
    modt = unscaled_t / np.sqrt(var_post)
    stat = _zscore_hill(modt, min(df_resid + df_prior, n_genes * df_resid))
    if inter_gene_cor is None:
        return _competitive(matrix.index, stat, gene_sets, df=min(df_resid, n_genes - 2), residuals=u)
    return _competitive(matrix.index, stat, gene_sets, df=n_genes - 2, correlation=inter_gene_cor)


def camera_pr(statistic: pd.Series, gene_sets: dict[str, list[str]], *, inter_gene_cor: float = 0.01) -> pd.DataFrame:
    """limma's ``cameraPR``: camera on a precomputed statistic, here the moderated t of every tested protein.

    Unlike :func:`camera`, which needs proteins without missing values, it takes the NA-aware moderated
    t, so every protein the differential test tested counts. Same result columns as :func:`camera`.
    """
    if inter_gene_cor is None:
        raise DVPError("camerapr needs a preset inter-gene correlation (pathways.inter_gene_cor); it has no residuals")
    statistic = statistic.dropna()
    if len(statistic) < 3:
        raise DVPError("camerapr: need at least 3 proteins with a statistic")
    return _competitive(
        statistic.index, statistic.to_numpy(dtype=float), gene_sets, df=len(statistic) - 2, correlation=inter_gene_cor
    )


def _competitive(index, stat: np.ndarray, gene_sets, *, df: float, correlation=None, residuals=None) -> pd.DataFrame:
    """camera's two-sample t of each set's statistics against the rest, with the variance inflated by
    the inter-gene ``correlation`` (or one estimated from ``residuals``, features x residual df)."""
    n_genes = len(stat)
    mean_stat, var_stat = stat.mean(), stat.var(ddof=1)
    position = {f: i for i, f in enumerate(index)}
    names, sizes, means, vifs, rhos = [], [], [], [], []
    for name, members in gene_sets.items():
        idx = sorted({position[m] for m in members if m in position})
        m = len(idx)
        if m == 0 or m == n_genes:
            continue
        if correlation is not None:
            rho = correlation
            vif = 1 + (m - 1) * rho
        elif m > 1:
            vif = m * np.mean(residuals[idx].mean(axis=0) ** 2)
            rho = (vif - 1) / (m - 1)
        else:
            vif, rho = 1.0, np.nan
        names.append(name)
        sizes.append(m)
        means.append(stat[idx].mean())
        vifs.append(max(1.0, vif))
        rhos.append(rho)
    m, m2 = np.asarray(sizes, dtype=float), n_genes - np.asarray(sizes, dtype=float)
    # one vectorised pass over the sets: scipy's per-call overhead dominated the loop
    delta = n_genes / m2 * (np.asarray(means) - mean_stat)
    pooled = ((n_genes - 1) * var_stat - delta**2 * m * m2 / n_genes) / (n_genes - 2)
    t = delta / np.sqrt(pooled * (np.asarray(vifs) / m + 1 / m2))
    down, up = stats.t.cdf(t, df), stats.t.sf(t, df)
    table = pd.DataFrame(
        {
            "NGenes": np.asarray(sizes, dtype=int),
            "Correlation": np.asarray(rhos, dtype=float),
            "Direction": np.where(down < up, "Down", "Up"),
            "PValue": 2 * np.minimum(down, up),
        },
        index=pd.Index(names, dtype=object),
    )
    table["FDR"] = bh_adjust(table["PValue"].to_numpy()) if len(table) > 1 else table["PValue"]
    return table.sort_values("PValue", kind="stable")


def set_scores(
    matrix: pd.DataFrame, gene_sets: dict[str, list[str]], *, strata: pd.Series | None = None, min_size: int = 1
) -> pd.DataFrame:
    """Per-run score of each set: the mean z-score of its measured members.

    Each feature is z-scored across the runs of its stratum (e.g. the runs of one cell type, so a
    keratinocyte protein is not compared with macrophage runs); a run's score averages the z-scores
    of the members it measured. Returns sets x runs.
    """
    z = pd.DataFrame(np.nan, index=matrix.index, columns=matrix.columns)
    strata = strata if strata is not None else pd.Series("all", index=matrix.columns)
    for _, cols in strata.groupby(strata).groups.items():
        block = matrix[list(cols)]
        sd = block.std(axis=1, ddof=1)
        z[list(cols)] = block.sub(block.mean(axis=1), axis=0).div(sd.where(sd > 0), axis=0)
    position = {f: i for i, f in enumerate(matrix.index)}
    values = z.to_numpy()
    out = {}
    for name, members in gene_sets.items():
        idx = [position[m] for m in members if m in position]
        if len(idx) < min_size:
            continue
        block = values[idx]
        counts = (~np.isnan(block)).sum(axis=0)
        out[name] = np.where(counts > 0, np.nansum(block, axis=0) / np.maximum(counts, 1), np.nan)
    return pd.DataFrame.from_dict(out, orient="index", columns=matrix.columns)


def _members(gene_sets: dict[str, list[str]], universe) -> dict[str, list[str]]:
    """Each set's members that are in the universe, without duplicates, sorted (order-independent)."""
    present = set(universe)
    return {name: sorted({m for m in members if m in present}, key=str) for name, members in gene_sets.items()}


def ora(hits, universe, gene_sets: dict[str, list[str]], *, min_size: int = 1) -> pd.DataFrame:
    """Over-representation of hits in each set: one-sided hypergeometric test against the measured universe.

    Parameters
    ----------
    hits
        Features called significant (must be in ``universe``).
    universe
        All features that were tested: sets are cut to their measured members, so a set is never
        "enriched" merely for being measurable.
    gene_sets
        Set name to member features.
    min_size
        Sets with fewer measured members are left out.

    Returns
    -------
    One row per set: NGenes (measured members), Overlap, Expected, OddsRatio, PValue and FDR
    (Benjamini-Hochberg), sorted by PValue then name.
    """
    universe = list(dict.fromkeys(universe))
    hits = set(hits)
    stray = hits - set(universe)
    if stray:
        raise DVPError(f"ora: {len(stray)} hit(s) are not in the universe, e.g. {sorted(map(str, stray))[0]}")
    n_total, n_hits = len(universe), len(hits)
    rows = {}
    for name, members in _members(gene_sets, universe).items():
        m = len(members)
        if m < min_size or m == 0:
            continue
        k = len(hits.intersection(members))
        expected = m * n_hits / n_total if n_total else np.nan
        # Fisher's odds ratio from the 2x2 table, with a 0.5 correction only to avoid division by zero
        a, b, c, d = k, m - k, n_hits - k, n_total - m - n_hits + k
        odds = (a * d) / (b * c) if b * c > 0 else (a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5))
        rows[name] = (m, k, expected, odds, float(stats.hypergeom.sf(k - 1, n_total, m, n_hits)))
    table = pd.DataFrame.from_dict(
        rows, orient="index", columns=["NGenes", "Overlap", "Expected", "OddsRatio", "PValue"]
    ).astype({"NGenes": int, "Overlap": int})
    table["FDR"] = bh_adjust(table["PValue"].to_numpy())
    return table.rename_axis("set").sort_values(["PValue", "set"], kind="stable").rename_axis(None)


def _enrichment_scores(positions: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """GSEA running-sum enrichment scores for sets given as sorted 0-based rank positions (rows).

    The running sum steps up by weight/total at members and down by 1/(n - m) elsewhere; the score
    is its largest deviation from zero, reached just after a member (up) or just before one (down).
    """
    m = positions.shape[1]
    total = weights.sum(axis=1, keepdims=True)
    up = np.cumsum(weights, axis=1) / np.where(total > 0, total, 1)
    k = np.arange(m)
    after = up - (positions - k) / (n - m)
    before = np.concatenate([np.zeros((len(up), 1)), up[:, :-1]], axis=1) - (positions - k) / (n - m)
    high, low = after.max(axis=1), before.min(axis=1)
    return np.where(np.abs(high) >= np.abs(low), high, low)


def gsea_preranked(
    ranking: pd.Series,
    gene_sets: dict[str, list[str]],
    *,
    permutations: int = 1000,
    seed: int = 0,
    weight: float = 1.0,
    min_size: int = 5,
    max_size: int = 500,
) -> pd.DataFrame:
    """Preranked gene-set enrichment analysis (Subramanian et al. 2005) with gene-label permutations.

    Parameters
    ----------
    ranking
        A statistic per feature (e.g. the moderated t), higher = more up.
    gene_sets
        Set name to member features.
    permutations
        Random gene sets drawn per set size for the null distribution.
    seed
        Random seed; the permutations depend only on it and the set sizes, so results are the same
        for any order of the input rows and for any other sets tested alongside.
    weight
        Exponent of the statistic in the running sum (1: the classic weighted GSEA).

    Returns
    -------
    One row per set: NGenes, ES, NES (ES over the mean null ES of the same sign), PValue as
    (b + 1) / (n + 1) with b of the n same-signed null scores at least as extreme (never 0), and FDR
    (Benjamini-Hochberg), sorted by PValue then name.
    """
    ranking = ranking.dropna()
    if ranking.index.has_duplicates:
        raise DVPError("gsea_preranked: the ranking has duplicated feature names")
    # ties in the statistic are broken by feature name, so the input order never matters
    frame = pd.DataFrame({"stat": ranking.to_numpy(float), "name": ranking.index.astype(str)}, index=ranking.index)
    frame = frame.sort_values(["stat", "name"], ascending=[False, True], kind="stable")
    n = len(frame)
    position = {f: i for i, f in enumerate(frame.index)}
    abs_w = np.abs(frame["stat"].to_numpy()) ** weight
    members = {
        name: np.sort([position[f] for f in fs])
        for name, fs in _members(gene_sets, frame.index).items()
        if min_size <= len(fs) <= max_size and len(fs) < n
    }
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((permutations, n)), axis=1) if members else None
    null_by_size: dict[int, np.ndarray] = {}
    rows = {}
    for name, pos in members.items():
        m = len(pos)
        if m not in null_by_size:  # nested random sets: the first m of each permutation
            draws = np.sort(order[:, :m], axis=1)
            null_by_size[m] = _enrichment_scores(draws, abs_w[draws], n)
        null = null_by_size[m]
        es = float(_enrichment_scores(pos[None, :], abs_w[pos][None, :], n)[0])
        same = null[null >= 0] if es >= 0 else null[null < 0]
        extreme = (same >= es).sum() if es >= 0 else (same <= es).sum()
        pvalue = (extreme + 1) / (same.size + 1)
        nes = es / abs(same.mean()) if same.size and same.mean() != 0 else np.nan
        rows[name] = (m, es, nes, pvalue)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["NGenes", "ES", "NES", "PValue"])
    table["NGenes"] = table["NGenes"].astype(int)
    table["FDR"] = bh_adjust(table["PValue"].to_numpy())
    return table.rename_axis("set").sort_values(["PValue", "set"], kind="stable").rename_axis(None)


@dataclass
class PathwayResults:
    """The pathway stage's output: per method (camera, ora, gsea) one table per test key, and the scores."""

    tests: list = field(default_factory=list)
    tables: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    scores: pd.DataFrame | None = None


def pathway_analysis(
    proteins: pd.DataFrame,
    genes: pd.Series,
    samples: pd.DataFrame,
    runs: pd.DataFrame,
    options: PathwaysOptions,
    differential: DifferentialOptions,
) -> PathwayResults:
    """Test every gene set of the configured collections for every differential test, and score every run.

    The library function behind ``dvp pathways``. Protein groups map to gene symbols (case-insensitive;
    a group counts for each of its genes or its first, one protein per gene by the duplicates rule).
    camera runs on the proteins with values in all runs of the test, with the test's design (groups
    and covariates); cameraPR, ORA (hits at ``ora_fdr``) and preranked GSEA on the covariate-adjusted
    moderated t of every protein the test tested.

    Returns
    -------
    ``tables[method][key]``: columns set, collection, set_size (members in the GMT), then
    :data:`RESULT_COLUMNS` (``NGenes``: the set's members in the proteins the method used: for camera
    those without missing values, for the others those tested), sorted by p-value; ``scores``: set,
    collection, then one column per run.
    """
    symbols = {collection_label(c): load_collection(c) for c in options.gene_sets}
    collections = {
        label: sets_to_features(
            sets, genes, group_genes=options.group_genes, duplicates=options.duplicates, values=proteins
        )
        for label, sets in symbols.items()
    }
    sizes = {label: {name: len(members) for name, members in sets.items()} for label, sets in symbols.items()}
    # camera's tables are always written (empty when not asked for): the reports read them
    results = PathwayResults(
        tests=differential_tests(samples, runs, differential),
        tables={method: {} for method in ("camera", *options.methods)},
    )
    for test in results.tests:
        prepared = prepare_test(proteins, samples, runs, test, differential)
        tested = None
        if {"ora", "gsea", "camerapr"} & set(options.methods):
            tested = run_test(prepared, differential).dropna(subset=["t"])
        found = _test_sets(prepared, tested, test, collections, options)
        for method, tables in found.items():
            for table, label in tables:
                table.insert(0, "set_size", [sizes[label][n] for n in table.index])
                table.insert(0, "collection", label)
            results.tables[method][test.key] = _collected([t for t, _ in tables], RESULT_COLUMNS[method])
        log.info(
            "%s: camera on the %d proteins without missing values%s",
            test.description,
            len(prepared.matrix.dropna()),
            f", the other tests on the {len(tested)} proteins tested" if tested is not None else "",
        )
    results.scores = _run_scores(proteins, samples, runs, collections, options, differential)
    return results


def _sized(sets: dict[str, list[str]], universe, options: PathwaysOptions) -> dict[str, list[str]]:
    present = set(universe)
    return {n: m for n, m in sets.items() if options.min_set_size <= len(set(m) & present) <= options.max_set_size}


def _test_sets(prepared, tested, test, collections, options: PathwaysOptions) -> dict[str, list]:
    """Each method's (table, collection) pairs for one differential test.

    camera takes the test's full design (groups and covariates) on the proteins without missing
    values, replicate pools averaged (it has no block design); camerapr, ORA and GSEA take the
    moderated t of every tested protein, adjusted for the covariates and the pools' block.
    """
    matrix, camera_test = prepared.matrix, prepared.test
    if prepared.block is not None:  # camera has no block design: replicate pools enter it averaged
        matrix, camera_test = average_replicates(matrix, camera_test)
    complete = matrix.dropna()
    covariates = None if prepared.covariates is None else prepared.covariates.loc[list(camera_test.groups.index)]
    found = {method: [] for method in ("camera", *options.methods)}
    for label, sets in collections.items():
        if "camera" in options.methods and (sized := _sized(sets, complete.index, options)):
            table = camera(
                complete,
                camera_test.groups,
                sized,
                contrast=camera_test.weights,
                covariates=covariates,
                inter_gene_cor=options.inter_gene_cor,
            )
            found["camera"].append((table, label))
        if tested is None or not (sized := _sized(sets, tested.index, options)):
            continue
        if "camerapr" in found:
            found["camerapr"].append((camera_pr(tested["t"], sized, inter_gene_cor=options.inter_gene_cor), label))
        if "ora" in found:
            hits = tested.index[tested["adj.P.Val"] < options.ora_fdr]
            found["ora"].append((ora(hits, tested.index, sized, min_size=options.min_set_size), label))
        if "gsea" in found:
            table = gsea_preranked(
                tested["t"],
                sized,
                permutations=options.gsea_permutations,
                seed=options.seed,
                min_size=options.min_set_size,
                max_size=options.max_set_size,
            )
            found["gsea"].append((table, label))
    return found


def _collected(tables: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not tables:
        return pd.DataFrame(columns=["set", "collection", "set_size", *columns])
    return pd.concat(tables).rename_axis("set").reset_index().sort_values(["PValue", "set"], kind="stable")


def _run_scores(proteins, samples, runs, collections, options: PathwaysOptions, differential: DifferentialOptions):
    """Per-run set scores on the matrix normalised as for the differential tests (and, if asked, with the
    covariates' effects removed)."""
    strata = runs.set_index("run")["cell_type"].reindex(proteins.columns)
    normalized = normalize_runs(proteins, strata, differential)
    if options.scores_remove_covariates:
        normalized = remove_covariates(normalized, samples, runs, differential.covariates)
    scores = []
    for label, sets in collections.items():
        if options.scores == "gsva":
            parts = [
                _gsva_stratum(normalized[list(cols)], sets, options)
                for _, cols in strata.groupby(strata).groups.items()
            ]
            table = pd.concat(parts, axis=1).reindex(index=list(sets), columns=proteins.columns)
        else:
            table = set_scores(normalized, sets, strata=strata, min_size=options.min_set_size)
        table.insert(0, "collection", label)
        scores.append(table)
    return pd.concat(scores).rename_axis("set").reset_index()


def _gsva_stratum(block: pd.DataFrame, sets: dict[str, list[str]], options: PathwaysOptions) -> pd.DataFrame:
    """GSVA scores of one cell type's runs, on its proteins without missing values (GSVA takes no NA);
    no scores (an empty table) when no set has enough of them."""
    complete = block.dropna()
    complete = complete[complete.std(axis=1) > 1e-10] if complete.shape[1] > 1 else complete.iloc[:0]
    if not _sized(sets, complete.index, options):
        return pd.DataFrame(columns=block.columns, dtype=float)
    return gsva(complete, sets, min_size=options.min_set_size, max_size=options.max_set_size)
