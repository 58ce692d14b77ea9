"""Differential statistics: limma's moderated t-test (Smyth 2004), re-implemented without R.

Follows limma's ``lmFit -> contrasts.fit -> eBayes -> topTable(sort.by="none")`` on a log2
features x samples matrix with missing values: every feature is fitted by least squares on its
observed samples (its own residual degrees of freedom), the residual variances are squeezed towards
a common prior fitted to their log-F distribution, and the contrast is tested with the moderated t.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import special, stats

from dvp_pipeline.errors import DVPError


def design_matrix(groups: pd.Series, *, covariates: pd.DataFrame | None = None) -> pd.DataFrame:
    """``~0 + group (+ covariates as factors)`` as limma's ``model.matrix`` builds it."""
    levels = sorted(groups.unique())
    design = pd.DataFrame({g: (groups == g).astype(float) for g in levels}, index=groups.index)
    if covariates is not None:
        for col in covariates.columns:
            values = covariates.loc[groups.index, col].astype(str)
            for level in sorted(values.unique())[1:]:  # treatment coding, first level is the reference
                design[f"{col}{level}"] = (values == level).astype(float)
    return design


def _fit_rows(y: np.ndarray, x: np.ndarray):
    """Per-row least squares like limma's ``lm.series``: coefficients, unscaled sd, sigma, residual df."""
    n_rows, p = y.shape[0], x.shape[1]
    coef = np.full((n_rows, p), np.nan)
    stdev = np.full((n_rows, p), np.nan)
    sigma = np.full(n_rows, np.nan)
    df = np.zeros(n_rows)
    observed = ~np.isnan(y)
    # Rows share a fit whenever they share the pattern of observed samples.
    patterns, which = np.unique(observed, axis=0, return_inverse=True)
    for k, pattern in enumerate(patterns):
        rows = np.flatnonzero(which.ravel() == k)
        xs = x[pattern]
        if xs.shape[0] == 0:
            continue
        estimable = _estimable_columns(xs)
        if not estimable.any():
            continue
        xe = xs[:, estimable]
        q, r = np.linalg.qr(xe)
        ys = y[np.ix_(rows, np.flatnonzero(pattern))]
        beta = np.linalg.solve(r, q.T @ ys.T).T
        coef[np.ix_(rows, np.flatnonzero(estimable))] = beta
        rinv = np.linalg.inv(r)
        stdev[np.ix_(rows, np.flatnonzero(estimable))] = np.sqrt((rinv**2).sum(axis=1))
        dfr = xs.shape[0] - xe.shape[1]
        df[rows] = dfr
        if dfr > 0:
            resid = ys - beta @ xe.T
            sigma[rows] = np.sqrt((resid**2).sum(axis=1) / dfr)
    return coef, stdev, sigma, df


def _estimable_columns(x: np.ndarray) -> np.ndarray:
    """Columns kept by a pivoting QR as R's lm.fit would: drop those linearly dependent on earlier ones."""
    keep = np.zeros(x.shape[1], dtype=bool)
    for j in range(x.shape[1]):
        trial = keep.copy()
        trial[j] = True
        if np.linalg.matrix_rank(x[:, trial], tol=1e-7 * max(1.0, np.abs(x).max())) == trial.sum():
            keep = trial
    return keep


def trigamma_inverse(x: np.ndarray) -> np.ndarray:
    """Solve trigamma(y) = x by Newton's method, as limma's ``trigammaInverse``."""
    x = np.asarray(x, dtype=float)
    y = 0.5 + 1.0 / x
    for _ in range(50):
        tri = special.polygamma(1, y)
        dif = tri * (1 - tri / x) / special.polygamma(2, y)
        y = y + dif
        if np.max(-dif / y) < 1e-8:
            break
    return y


def fit_f_dist(s2: np.ndarray, df: np.ndarray) -> tuple[float, float]:
    """Prior variance and degrees of freedom from the residual variances (limma's legacy ``fitFDist``)."""
    ok = np.isfinite(s2) & np.isfinite(df) & (s2 > -1e-15) & (df > 1e-15)
    x, d = np.maximum(s2[ok], 0), df[ok]
    if x.size == 0:
        return np.nan, np.nan
    if x.size == 1:
        return float(x[0]), 0.0
    m = np.median(x)
    if m == 0:
        m = 1.0
    x = np.maximum(x, 1e-5 * m)
    e = np.log(x) - special.digamma(d / 2) + np.log(d / 2)
    emean = e.mean()
    evar = ((e - emean) ** 2).sum() / (x.size - 1) - special.polygamma(1, d / 2).mean()
    if evar > 0:
        df2 = 2 * float(trigamma_inverse(evar))
        s20 = float(np.exp(emean + special.digamma(df2 / 2) - np.log(df2 / 2)))
    else:
        df2, s20 = np.inf, float(x.mean())
    return s20, df2


def squeeze_var(s2: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Empirical-Bayes posterior variances (limma's ``squeezeVar``): (var_post, var_prior, df_prior)."""
    var_prior, df_prior = fit_f_dist(s2, df)
    if np.isinf(df_prior):
        return np.full_like(s2, var_prior), var_prior, df_prior
    with np.errstate(invalid="ignore"):
        var_post = np.where(df > 0, (df * np.nan_to_num(s2) + df_prior * var_prior) / (df + df_prior), var_prior)
    return var_post, var_prior, df_prior


def _tmixture(t: np.ndarray, stdev: np.ndarray, df: np.ndarray, proportion: float, lim: tuple[float, float]) -> float:
    """Prior variance of the non-null coefficients (limma's ``tmixture.vector``)."""
    ok = ~np.isnan(t)
    t, stdev, df = np.abs(t[ok]), stdev[ok], df[ok]
    n = t.size
    ntarget = int(np.ceil(proportion / 2 * n))
    if ntarget < 1:
        return np.nan
    p = max(ntarget / n, proportion)
    max_df = df.max()
    low = df < max_df
    if low.any():
        tail = stats.t.logsf(t[low], df[low])
        t[low] = stats.t.isf(np.exp(tail), max_df)
    order = np.argsort(-t, kind="stable")[:ntarget]
    t, v1 = t[order], stdev[order] ** 2
    p0 = 2 * stats.t.sf(t, max_df)
    ptarget = ((np.arange(1, ntarget + 1) - 0.5) / n - (1 - p) * p0) / p
    v0 = np.zeros(ntarget)
    pos = ptarget > p0
    if pos.any():
        qtarget = -stats.t.ppf(ptarget[pos] / 2, max_df)
        v0[pos] = v1[pos] * ((t[pos] / qtarget) ** 2 - 1)
    return float(np.clip(v0, *lim).mean())


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (R's ``p.adjust(method="BH")``); NaN stays NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    n = q.size
    if n == 0:
        return out
    order = np.argsort(q)[::-1]
    adjusted = np.minimum.accumulate(q[order] * n / np.arange(n, 0, -1))
    res = np.empty(n)
    res[order] = np.minimum(adjusted, 1.0)
    out[ok] = res
    return out


def moderated_ttest(
    matrix: pd.DataFrame,
    groups: pd.Series,
    *,
    contrast: tuple[str, str],
    covariates: pd.DataFrame | None = None,
    proportion: float = 0.01,
) -> pd.DataFrame:
    """limma's moderated t-test of one contrast between two groups.

    Parameters
    ----------
    matrix
        Features x samples, log2, NaN for missing values.
    groups
        Group of each sample, indexed by sample (the matrix's columns must all be in it).
    contrast
        ``(numerator, denominator)`` groups; logFC is numerator minus denominator.
    covariates
        Optional DataFrame indexed by sample; each column enters the design as a factor
        (e.g. ``patient`` for a paired design).
    proportion
        Assumed proportion of differentially expressed features, for the B statistic.

    Returns
    -------
    One row per feature, in input order: logFC, AveExpr, t, P.Value, adj.P.Val, B. The prior
    (``s2.prior``, ``df.prior``) is in ``result.attrs``.
    """
    num, den = contrast
    samples = list(matrix.columns)
    missing = [s for s in samples if s not in groups.index]
    if missing:
        raise DVPError(f"moderated_ttest: no group for sample(s) {', '.join(map(str, missing))}")
    groups = groups.loc[samples].astype(str)
    for g in (num, den):
        if g not in set(groups):
            raise DVPError(
                f"moderated_ttest: contrast group '{g}' has no samples (groups: {', '.join(sorted(set(groups)))})"
            )
    design = design_matrix(groups, covariates=covariates)
    x = design.to_numpy()
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise DVPError("moderated_ttest: the design is not of full rank (a covariate is confounded with the groups)")
    y = matrix.to_numpy(dtype=float)
    coef, stdev, sigma, df = _fit_rows(y, x)
    cvec = np.array([1.0 if c == num else -1.0 if c == den else 0.0 for c in design.columns])
    used = cvec != 0
    # contrasts.fit: limma combines the unscaled sds through the correlation of the full design's coefficients.
    cov = np.linalg.inv(x.T @ x)
    sd = np.sqrt(np.diag(cov))
    cor = cov / np.outer(sd, sd)
    coef_c = np.where(np.isnan(coef[:, used]).any(axis=1), np.nan, np.nan_to_num(coef) @ cvec)
    scaled = np.nan_to_num(stdev) * cvec
    var_c = np.einsum("ij,jk,ik->i", scaled, cor, scaled)
    stdev_c = np.where(np.isnan(coef_c), np.nan, np.sqrt(var_c))

    s2 = sigma**2
    var_post, var_prior, df_prior = squeeze_var(s2, df)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = coef_c / stdev_c / np.sqrt(var_post)
        df_total = np.minimum(df + df_prior, df.sum())
        pval = 2 * stats.t.sf(np.abs(t), df_total)
    ok = ~np.isnan(t)
    b = np.full_like(t, np.nan)
    if ok.any():
        lim = (0.1**2 / var_prior, 4.0**2 / var_prior)  # limma's stdev.coef.lim = c(0.1, 4)
        v0 = _tmixture(t, stdev_c, df_total, proportion, lim)
        v0 = 1 / var_prior if np.isnan(v0) else v0
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (stdev_c**2 + v0) / stdev_c**2
            t2 = t**2
            if df_prior > 1e6:
                kernel = t2 * (1 - 1 / r) / 2
            else:
                kernel = (1 + df_total) / 2 * np.log((t2 + df_total) / (t2 / r + df_total))
            b = np.log(proportion / (1 - proportion)) - np.log(r) / 2 + kernel
    with warnings.catch_warnings():  # an all-missing row has no mean, as in limma
        warnings.simplefilter("ignore", RuntimeWarning)
        ave = np.nanmean(y, axis=1)
    result = pd.DataFrame(
        {"logFC": coef_c, "AveExpr": ave, "t": t, "P.Value": pval, "adj.P.Val": bh_adjust(pval), "B": b},
        index=matrix.index,
    )
    result.attrs.update({"s2.prior": var_prior, "df.prior": df_prior})
    return result


def median_normalize(matrix: pd.DataFrame, *, min_shared: int = 20) -> pd.DataFrame:
    """Centre every sample on the others: subtract its median over the features all samples share.

    Falls back to all of a sample's features when fewer than ``min_shared`` are shared. The overall
    level is kept (the mean of the medians is added back), so values stay on the log2 intensity scale.
    """
    shared = matrix.dropna()
    basis = shared if len(shared) >= min_shared else matrix
    medians = basis.median()
    return matrix - medians + medians.mean()


def valid_value_filter(matrix: pd.DataFrame, groups: pd.Series, *, min_per_group: int = 2) -> pd.DataFrame:
    """Keep features with at least ``min_per_group`` observed values in every group."""
    counts = matrix.notna().T.groupby(groups.loc[matrix.columns]).sum().T
    return matrix[(counts >= min_per_group).all(axis=1)]
