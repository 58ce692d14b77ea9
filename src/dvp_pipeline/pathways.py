"""Pathway scoring: competitive gene-set tests and per-run set scores.

:func:`camera` is limma's camera (Wu & Smyth 2012, Nucleic Acids Res 40:e133), which accounts for
inter-gene correlation and so keeps its false-positive rate on small cohorts where a plain
gene-set t-test does not. :func:`set_scores` gives each run a score per set for heatmaps and the
per-sample reports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from dvp_pipeline.errors import DVPError
from dvp_pipeline.stats import bh_adjust, design_matrix, squeeze_var


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
    contrast: tuple[str, str],
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
        ``(numerator, denominator)``.
    inter_gene_cor
        Preset correlation; ``None`` estimates it per set from the residuals (limma's ``NA``).

    Returns
    -------
    One row per set (index = set name) with NGenes, Correlation, Direction, PValue, FDR, sorted by
    PValue as limma does. Sets with no measured member are left out.
    """
    y = matrix.to_numpy(dtype=float)
    if np.isnan(y).any():
        raise DVPError("camera: the matrix has missing values; keep complete rows or impute first")
    n_genes, n = y.shape
    if n_genes < 3:
        raise DVPError("camera: need at least 3 features")
    groups = groups.loc[list(matrix.columns)].astype(str)
    design = design_matrix(groups)
    num, den = contrast
    for g in (num, den):
        if g not in design.columns:
            raise DVPError(f"camera: contrast group '{g}' has no samples")
    x = design.to_numpy()
    p = x.shape[1]
    df_resid = n - p
    if df_resid < 1:
        raise DVPError("camera: no residual degrees of freedom (need more samples than groups)")
    c = np.array([1.0 if g == num else -1.0 if g == den else 0.0 for g in design.columns])
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
    mean_stat, var_stat = stat.mean(), stat.var(ddof=1)
    fixed = inter_gene_cor is not None
    df_camera = n_genes - 2 if fixed else min(df_resid, n_genes - 2)
    position = {f: i for i, f in enumerate(matrix.index)}
    rows = {}
    for name, members in gene_sets.items():
        idx = sorted({position[m] for m in members if m in position})
        m = len(idx)
        if m == 0 or m == n_genes:
            continue
        m2 = n_genes - m
        if fixed:
            correlation = inter_gene_cor
            vif = 1 + (m - 1) * correlation
        elif m > 1:
            vif = m * np.mean(u[idx].mean(axis=0) ** 2)
            correlation = (vif - 1) / (m - 1)
        else:
            vif, correlation = 1.0, np.nan
        vif = max(1.0, vif)
        delta = n_genes / m2 * (stat[idx].mean() - mean_stat)
        pooled = ((n_genes - 1) * var_stat - delta**2 * m * m2 / n_genes) / (n_genes - 2)
        t = delta / np.sqrt(pooled * (vif / m + 1 / m2))
        down, up = stats.t.cdf(t, df_camera), stats.t.sf(t, df_camera)
        rows[name] = (m, correlation, "Down" if down < up else "Up", 2 * min(down, up))
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["NGenes", "Correlation", "Direction", "PValue"])
    table["NGenes"] = table["NGenes"].astype(int)
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
