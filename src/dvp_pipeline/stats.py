"""Differential statistics: limma's moderated t-test (Smyth 2004), re-implemented without R.

Follows limma's ``lmFit -> contrasts.fit -> eBayes -> topTable(sort.by="none")`` on a log2
features x samples matrix with missing values: every feature is fitted by least squares on its
observed samples (its own residual degrees of freedom), the residual variances are squeezed towards
a common prior fitted to their log-F distribution, and the contrast is tested with the moderated t.

Replicate pools (several runs of one sample and cell type) are a block design, as limma's
``duplicateCorrelation`` -> ``lmFit(block=, correlation=)``: runs of one block share a correlation,
estimated from all features, and every feature is fitted by generalised least squares.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import linalg, special, stats

from dvp_pipeline.errors import DVPError

__all__ = [
    "bh_adjust",
    "contrast_weights",
    "design_matrix",
    "duplicate_correlation",
    "fit_f_dist",
    "fit_f_dist_robustly",
    "lowess",
    "moderated_ttest",
    "squeeze_var",
    "trigamma_inverse",
]


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


def _block_correlation_matrix(block: np.ndarray, correlation: float) -> np.ndarray:
    """limma's ``cormatrix`` for a block design: ``correlation`` between runs of one block, 1 on the diagonal."""
    same = block[:, None] == block[None, :]
    return np.where(same, correlation, 0.0) + np.eye(block.size) * (1 - correlation)


def _block_indicator(block: np.ndarray) -> np.ndarray:
    """Samples x blocks 0/1 matrix (limma's ``Z``) from integer block codes."""
    return (block[:, None] == np.arange(block.max() + 1)).astype(float)


def _normal_equations(y: np.ndarray, x: np.ndarray, *, indicator: np.ndarray | None = None, correlation: float = 0.0):
    """Least squares of every row on its observed samples at once, through the normal equations.

    With a block ``indicator`` the runs of one block correlate (limma's ``gls.series``): the correlation
    matrix is compound-symmetric within a block, so its inverse is closed-form and no row needs a
    factorisation of its own. Rows whose observed design is (nearly) rank deficient are flagged not
    ``good``; they need the pivoting QR of :func:`_fit_pattern`. Returns a dict of per-row arrays.
    """
    n_rows, p = y.shape[0], x.shape[1]
    observed = ~np.isnan(y)
    obs = observed.astype(float)
    y0 = np.where(observed, y, 0.0)
    xtx = (obs @ (x[:, :, None] * x[:, None, :]).reshape(x.shape[0], p * p)).reshape(n_rows, p, p)
    xty = y0 @ x
    fit = {"observed": observed}
    if indicator is not None:
        fit["counts"] = obs @ indicator
        fit["sums_x"] = (obs @ (indicator[:, :, None] * x[:, None, :]).reshape(x.shape[0], -1)).reshape(n_rows, -1, p)
    if correlation != 0:
        # ((1-r) I + r J)^-1 = (I - c J) / (1-r) on a block of m observed runs, c = r / (1 - r + m r)
        c = correlation / (1 - correlation + fit["counts"] * correlation)
        sums_x = fit["sums_x"]
        xtx = (xtx - np.einsum("gb,gbp,gbq->gpq", c, sums_x, sums_x)) / (1 - correlation)
        xty = (xty - np.einsum("gb,gbp->gp", c * (y0 @ indicator), sums_x)) / (1 - correlation)
    eig = np.linalg.eigvalsh(xtx)
    # cond(X)^2 below 1e4 keeps the normal equations as accurate as a QR (to ~1e-12)
    good = eig[:, 0] > 1e-4 * eig[:, -1]
    inv = np.linalg.inv(xtx[good])
    coef = np.full((n_rows, p), np.nan)
    coef[good] = np.einsum("gpq,gq->gp", inv, xty[good])
    resid = np.where(observed[good], y0[good] - coef[good] @ x.T, 0.0)
    rss = (resid**2).sum(axis=1)
    if correlation != 0:
        rss = (rss - (c[good] * (resid @ indicator) ** 2).sum(axis=1)) / (1 - correlation)
    fit.update(good=good, coef=coef, inv=inv, resid=resid, rss=rss)
    return fit


def _fit_rows(y: np.ndarray, x: np.ndarray, *, block: np.ndarray | None = None, correlation: float = 0.0):
    """Per-row least squares like limma's ``lm.series``, or generalised least squares like its ``gls.series``
    when runs of one ``block`` (integer codes) correlate: coefficients, unscaled sd, sigma, residual df."""
    n_rows, p = y.shape[0], x.shape[1]
    blocks = correlation != 0 and block is not None
    fit = _normal_equations(y, x, indicator=_block_indicator(block) if blocks else None, correlation=correlation)
    good, coef = fit["good"], fit["coef"]
    stdev = np.full((n_rows, p), np.nan)
    stdev[good] = np.sqrt(np.diagonal(fit["inv"], axis1=1, axis2=2))
    df = np.where(good, fit["observed"].sum(axis=1) - p, 0).astype(float)
    sigma = np.full(n_rows, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma[good] = np.where(df[good] > 0, np.sqrt(fit["rss"] / df[good]), np.nan)
    cor = _block_correlation_matrix(block, correlation) if blocks else None
    for pattern, rows in _patterns(fit["observed"], np.flatnonzero(~good)):
        _fit_pattern(y, x, pattern, rows, cor, coef, stdev, sigma, df)
    return coef, stdev, sigma, df


def _patterns(observed: np.ndarray, rows: np.ndarray):
    """(pattern of observed samples, its rows) for the given rows, each pattern once."""
    if rows.size == 0:
        return []
    patterns, which = np.unique(observed[rows], axis=0, return_inverse=True)
    which = which.ravel()
    order = np.argsort(which, kind="stable")
    return zip(patterns, np.split(rows[order], np.cumsum(np.bincount(which))[:-1]), strict=True)


def _fit_pattern(y, x, pattern, rows, cor, coef, stdev, sigma, df) -> None:
    """Least squares for rows sharing one pattern of observed samples, with R's ``lm.fit`` pivoting."""
    xs = x[pattern]
    ys = y[np.ix_(rows, np.flatnonzero(pattern))]
    if xs.shape[0] == 0:
        return
    if cor is not None:  # whiten with the Cholesky factor of the observed runs' correlation, as gls.series
        chol = np.linalg.cholesky(cor[np.ix_(pattern, pattern)])
        xs = linalg.solve_triangular(chol, xs, lower=True)
        ys = linalg.solve_triangular(chol, ys.T, lower=True).T
    estimable = _estimable_columns(xs)
    if not estimable.any():
        return
    cols = np.flatnonzero(estimable)
    xe = xs[:, estimable]
    q, r = np.linalg.qr(xe)
    beta = np.linalg.solve(r, q.T @ ys.T).T
    coef[np.ix_(rows, cols)] = beta
    stdev[np.ix_(rows, cols)] = np.sqrt((np.linalg.inv(r) ** 2).sum(axis=1))
    dfr = xs.shape[0] - xe.shape[1]
    df[rows] = dfr
    if dfr > 0:
        sigma[rows] = np.sqrt(((ys - beta @ xe.T) ** 2).sum(axis=1) / dfr)


def _estimable_columns(x: np.ndarray) -> np.ndarray:
    """Columns kept by a pivoting QR as R's lm.fit would: drop those linearly dependent on earlier ones."""
    tol = 1e-7 * max(1.0, np.abs(x).max())
    if np.linalg.matrix_rank(x, tol=tol) == x.shape[1]:
        return np.ones(x.shape[1], dtype=bool)
    keep = np.zeros(x.shape[1], dtype=bool)
    for j in range(x.shape[1]):
        trial = keep.copy()
        trial[j] = True
        if np.linalg.matrix_rank(x[:, trial], tol=tol) == trial.sum():
            keep = trial
    return keep


def _block_codes(block, samples: list, who: str) -> np.ndarray:
    """Integer block codes (sorted levels, as R's ``factor``) of the samples, from a Series indexed by sample."""
    if not isinstance(block, pd.Series):
        raise DVPError(f"{who}: block must be a Series mapping each sample to its block (e.g. the biopsy)")
    missing = [s for s in samples if s not in block.index or pd.isna(block.get(s))]
    if missing:
        raise DVPError(f"{who}: no block for sample(s) {', '.join(map(str, missing))}")
    return pd.factorize(block.loc[samples].astype(str), sort=True)[0]


def duplicate_correlation(
    matrix: pd.DataFrame, design: pd.DataFrame | np.ndarray, block: pd.Series, *, trim: float = 0.15
) -> tuple[float, pd.Series]:
    """Correlation between runs of one block, as limma 3.54's ``duplicateCorrelation(block=)``.

    Replicate pools of one sample and cell type share the sample's biology, so their runs are not
    independent. For every feature, a two-level mixed model (statmod's ``mixedModel2Fit``: REML
    variance components from the residual space, a damped gamma GLM) gives the within-block
    correlation; the consensus is the trimmed mean of the Fisher-transformed (atanh) values.

    Parameters
    ----------
    matrix
        Features x samples, log2, NaN for missing values.
    design
        Design matrix, one row per sample in the matrix's column order (a DataFrame indexed by sample
        is aligned to the columns).
    block
        Block of each sample (e.g. the biopsy whose pools were run), indexed by sample.
    trim
        Fraction trimmed from each end before averaging the atanh correlations.

    Returns
    -------
    The consensus correlation (NaN when no feature has observations in enough blocks) and the
    per-feature atanh correlations (NaN where not estimable), indexed like ``matrix``.
    """
    samples = list(matrix.columns)
    if isinstance(design, pd.DataFrame):
        missing = [s for s in samples if s not in design.index]
        if missing:
            raise DVPError(f"duplicate_correlation: no design row for sample(s) {', '.join(map(str, missing))}")
        design = design.loc[samples]
    x = np.asarray(design, dtype=float)
    if x.ndim != 2 or x.shape[0] != len(samples):
        raise DVPError(f"duplicate_correlation: the design needs one row per sample ({len(samples)})")
    codes = _block_codes(block, samples, "duplicate_correlation")
    consensus, arho = _duplicate_correlation(matrix.to_numpy(dtype=float), x, codes, trim=trim)
    return consensus, pd.Series(arho, index=matrix.index, name="atanh.correlation")


def _duplicate_correlation(y: np.ndarray, x: np.ndarray, block: np.ndarray, *, trim: float = 0.15):
    n_rows, p = y.shape[0], x.shape[1]
    indicator = _block_indicator(block)
    zeros = np.zeros(n_rows)
    max_size = int(indicator.sum(axis=0).max())
    if max_size == 1:
        warnings.warn("duplicate_correlation: blocks all of size 1, setting the correlation to zero", stacklevel=3)
        return 0.0, zeros
    others = indicator[:, 1:]
    if np.abs(others - x @ np.linalg.lstsq(x, others, rcond=None)[0]).max() < 1e-8:
        warnings.warn(
            "duplicate_correlation: the block is already in the design, setting the correlation to zero", stacklevel=3
        )
        return 0.0, zeros
    observed = ~np.isnan(y)
    n_obs = observed.sum(axis=1)
    n_blocks = ((observed.astype(float) @ indicator) > 0).sum(axis=1)
    eligible = np.flatnonzero((n_obs > p + 2) & (n_blocks > 1) & (n_blocks < n_obs - 1))
    rho = np.full(n_rows, np.nan)
    if eligible.size:
        d, dy, residual_ss, residual_df = _block_spectrum(y[eligible], x, indicator)
        varcomp = _varcomp_reml(d, dy, residual_ss, residual_df)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho[eligible] = varcomp[:, 1] / varcomp.sum(axis=1)
        # When every observed block lies in the design (one sample per group, say), limma regresses on
        # singular values that are rounding noise; the block component then dwarfs the residual one and
        # the correlation lands on the upper clamp.
        rho[eligible[np.isnan(d).all(axis=1)]] = 1.0
    rho_min = 1 / (1 - max_size) + 0.01
    arho = np.arctanh(np.clip(rho, rho_min, 0.99))
    finite = arho[~np.isnan(arho)]
    consensus = float(np.tanh(stats.trim_mean(finite, trim))) if finite.size else np.nan
    return consensus, arho


def _block_spectrum(y: np.ndarray, x: np.ndarray, indicator: np.ndarray):
    """What statmod's ``mixedModel2Fit`` sees of each row: the squared singular values ``d`` of the block
    design projected on the residual space of the row's observed samples, the squared projections ``dy``
    of the row's residuals on the matching singular vectors (NaN padding), the residual sum of squares and
    the residual df.

    The singular values are the eigenvalues of Z'PZ, built from block sums. Directions with zero singular
    value are left out: they are rows ``(1, 0)`` of the REML regression, which only sees their number and
    the sum of their ``dy`` (what the residual sum of squares leaves over).
    """
    n_rows, p = y.shape[0], x.shape[1]
    fit = _normal_equations(y, x, indicator=indicator)
    good = fit["good"]
    n_blocks = indicator.shape[1]
    lam = np.zeros((n_rows, n_blocks))
    proj = np.zeros((n_rows, n_blocks))
    residual_ss = np.zeros(n_rows)
    residual_df = fit["observed"].sum(axis=1) - p
    good_rows = np.flatnonzero(good)
    residual_ss[good_rows] = fit["rss"]
    chunk = max(1, 2**22 // n_blocks**2)  # keeps the blocks x blocks matrices of a chunk near 32 MB
    for start in range(0, good_rows.size, chunk):
        part, at = slice(start, start + chunk), good_rows[start : start + chunk]
        sums_x = fit["sums_x"][at]
        gram = fit["counts"][at][:, :, None] * np.eye(n_blocks) - sums_x @ fit["inv"][part] @ sums_x.transpose(0, 2, 1)
        lam[at], vectors = np.linalg.eigh(gram)
        proj[at] = np.einsum("gb,gbk->gk", fit["resid"][part] @ indicator, vectors)
    for pattern, rows in _patterns(fit["observed"], np.flatnonzero(~good)):
        xs = x[pattern]
        xe = xs[:, _estimable_columns(xs)]
        q = np.linalg.qr(xe, mode="complete")[0][:, xe.shape[1] :]
        u, sv, _ = np.linalg.svd(q.T @ indicator[pattern], full_matrices=False)
        effects = y[np.ix_(rows, np.flatnonzero(pattern))] @ q
        lam[rows, : sv.size] = sv**2
        proj[rows, : sv.size] = effects @ (u * sv)  # scaled as Z'Pe = V S U'Q'e for the division below
        residual_ss[rows] = (effects**2).sum(axis=1)
        residual_df[rows] = q.shape[1]
    # d is at most the largest block size; what is below 1e-10 of it is rounding of a zero
    nonzero = lam > 1e-10 * indicator.sum(axis=0).max()
    with np.errstate(invalid="ignore", divide="ignore"):
        dy = np.where(nonzero, proj**2 / lam, np.nan)
    return np.where(nonzero, lam, np.nan), dy, residual_ss, residual_df


def _varcomp_reml(d: np.ndarray, dy: np.ndarray, residual_ss: np.ndarray, residual_df: np.ndarray) -> np.ndarray:
    """Residual and block variance components per row (the tail of statmod 1.5's ``mixedModel2Fit``).

    ``dy`` has expectation ``residual + block * d``; the components are a least-squares start refined by
    a gamma GLM with identity link (``glmgam.fit``, tol 1e-6, at most 20 iterations, as limma calls it).
    The directions with ``d = 0`` enter as one more column of weight their number (NaN in ``d`` is padding).
    """
    used = ~np.isnan(d)
    n_zero = residual_df - used.sum(axis=1)
    rest = residual_ss - np.where(used, dy, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.column_stack([np.where(used, d, 0.0), np.zeros(len(d))])
        dy = np.column_stack([np.where(used, dy, 0.0), np.where(n_zero > 0, rest / n_zero, 0.0)])
    w = np.column_stack([used, n_zero]).astype(float)
    m = w.sum(axis=1)
    d_mean = (w * d).sum(axis=1) / m
    ss_d = (w * (d - d_mean[:, None]) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (w * (d - d_mean[:, None]) * dy).sum(axis=1) / ss_d
    start = np.column_stack([(w * dy).sum(axis=1) / m - slope * d_mean, slope])
    # lm.fit drops d when it is constant: the block component is then not estimable
    start[ss_d < (1e-7) ** 2 * (w * d**2).sum(axis=1), 1] = np.nan
    glm = (used & (d[:, :-1] > 1e-15)).sum(axis=1) > 1
    glm &= ss_d / (m - 1) > 1e-15
    varcomp = start.copy()
    if glm.any():
        s = start[glm]
        fitted = s[:, :1] + s[:, 1:] * d[glm]
        negative = ((fitted < 0) & (w[glm] > 0)).any(axis=1)
        s[negative] = np.column_stack(
            [(w * dy)[glm][negative].sum(axis=1) / m[glm][negative], np.zeros(negative.sum())]
        )
        varcomp[glm] = _glmgam_identity(d[glm], dy[glm], w[glm], s)
    return varcomp


def _gamma_deviance(y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = w * ((y - mu) / mu - np.log(y / mu))
    dev = 2 * np.where((w > 0) & ~((y < 1e-15) & (mu < 1e-15)), unit, 0.0).sum(axis=1)
    dev[((mu < 0) & (w > 0)).any(axis=1)] = np.inf
    return dev


def _glmgam_identity(d, y, w, start, *, tol: float = 1e-6, maxit: int = 20) -> np.ndarray:
    """statmod's ``glmgam.fit`` for the design ``[1, d]`` with prior weights ``w``, one row per feature,
    all rows iterated together.

    Levenberg-damped Fisher scoring; every row follows R's own sequence of steps, damping and stopping
    rules, so a fit that stops before full convergence stops at the same place as in R.
    """
    used = w > 0
    beta = start.copy()
    mu = beta[:, :1] + beta[:, 1:] * d
    dev = _gamma_deviance(y, mu, w)
    lam = np.zeros(len(beta))
    failed = ~np.isfinite(beta).all(axis=1)
    zero = np.where(used, y, -np.inf).max(axis=1) == 0
    beta[zero] = 0.0
    active = ~(failed | zero)
    iteration = 0
    while active.any():
        iteration += 1
        a = np.flatnonzero(active)
        da, ya, wa, ua, mua = d[a], y[a], w[a], used[a], mu[a]
        v = mua**2
        v = np.maximum(v, np.where(ua, v, -np.inf).max(axis=1, keepdims=True) / 1e3)
        wv = wa / v
        i11, i12, i22 = wv.sum(axis=1), (wv * da).sum(axis=1), (wv * da * da).sum(axis=1)
        max_info = np.maximum(i11, i22)
        if iteration == 1:
            lam[a] = np.abs((i11 + i22) / 2) / 2
        score = wv * (ya - mua)
        g1, g2 = score.sum(axis=1), (score * da).sum(axis=1)
        la = lam[a]
        old_beta, old_dev = beta[a], dev[a]
        new_beta, new_mu, new_dev = old_beta.copy(), mua.copy(), old_dev.copy()
        step = np.zeros_like(old_beta)
        levels = np.zeros(a.size, dtype=int)
        trying = np.ones(a.size, dtype=bool)
        bad = np.zeros(a.size, dtype=bool)
        while trying.any():
            k = np.flatnonzero(trying)
            levels[k] += 1
            # chol(XVX + lambda I) and two triangular solves, written out for 2 x 2
            with np.errstate(invalid="ignore"):
                r11 = np.sqrt(i11[k] + la[k])
                r12 = i12[k] / r11
                r22 = np.sqrt(i22[k] + la[k] - r12**2)
            s2 = (g2[k] - r12 * g1[k] / r11) / r22 / r22
            s1 = (g1[k] / r11 - r12 * s2) / r11
            step[k] = np.column_stack([s1, s2])
            b = old_beta[k] + step[k]
            mu_k = b[:, :1] + b[:, 1:] * da[k]
            dev_k = _gamma_deviance(ya[k], mu_k, wa[k])
            new_beta[k], new_mu[k], new_dev[k] = b, mu_k, dev_k
            with np.errstate(invalid="ignore", divide="ignore"):
                accept = (dev_k <= old_dev[k]) | (dev_k / np.where(ua[k], mu_k, -np.inf).max(axis=1) < 1e-15)
            broken = np.isnan(dev_k) | np.isnan(r22)  # R stops with an error: no estimate
            damped = ~accept & ~broken & (la[k] / max_info[k] > 1e15)
            new_beta[k[damped]] = old_beta[k[damped]]
            la[k[~(accept | damped | broken)]] *= 2
            bad[k[broken]] = True
            trying[k[accept | damped | broken]] = False
        stop = bad | (la / max_info > 1e15)
        la = np.where(levels == 1, la / 10, la)
        with np.errstate(invalid="ignore", divide="ignore"):
            stop |= (g1 * step[:, 0] + g2 * step[:, 1] < tol) | (
                new_dev / np.where(ua, new_mu, -np.inf).max(axis=1) < 1e-15
            )
        stop |= iteration > maxit
        beta[a], mu[a], dev[a], lam[a] = new_beta, new_mu, new_dev, la
        failed[a[bad]] = True
        active[a[stop]] = False
    beta[failed] = np.nan
    return beta


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


def _natural_spline_basis(x: np.ndarray, knots: np.ndarray, boundary: tuple[float, float]):
    """A basis of the natural cubic splines with these knots, as a function of x.

    Spans the same space as R's ``splines::ns(intercept=TRUE)`` (the truncated-power form of
    Hastie, Tibshirani & Friedman, eq. 5.4-5.5), so least-squares fits and their fitted values agree;
    beyond the boundary knots the splines are linear, as ``predict.ns`` extrapolates.
    """
    lo, hi = boundary
    scale = hi - lo if hi > lo else 1.0
    xi = (np.concatenate([[lo], np.sort(knots), [hi]]) - lo) / scale  # scaling keeps the cubes well conditioned
    u = (np.asarray(x, dtype=float) - lo) / scale
    cols = [np.ones_like(u), u]

    def d(k):
        return (np.maximum(u - xi[k], 0) ** 3 - np.maximum(u - xi[-1], 0) ** 3) / (xi[-1] - xi[k])

    for k in range(len(xi) - 2):
        cols.append(d(k) - d(len(xi) - 2))
    return np.column_stack(cols)


def fit_f_dist(s2: np.ndarray, df: np.ndarray, covariate: np.ndarray | None = None):
    """Prior variance and degrees of freedom from the residual variances (limma 3.54's ``fitFDist``).

    With a ``covariate`` (the average log-expression for ``eBayes(trend=TRUE)``) the prior variance
    follows a natural cubic spline in it with 1 to 4 degrees of freedom, as limma's; it is then an
    array with one value per feature.
    """
    s2 = np.asarray(s2, dtype=float)
    df = np.broadcast_to(np.asarray(df, dtype=float), s2.shape)
    n = s2.size
    ok = np.isfinite(s2) & np.isfinite(df) & (s2 > -1e-15) & (df > 1e-15)
    if covariate is not None:
        covariate = np.asarray(covariate, dtype=float)
        ok &= np.isfinite(covariate)  # limma stops on missing covariates; such rows get no prior here
    nok = int(ok.sum())
    if nok == 0:
        return np.nan, np.nan
    if nok == 1:
        return (float(s2[ok][0]) if covariate is None else np.where(ok, s2, np.nan)), 0.0
    splinedf = 1
    if covariate is not None:
        splinedf = min(1 + (nok >= 3) + (nok >= 6) + (nok >= 30), len(np.unique(covariate[ok])))
        if splinedf < 2:
            scale, df2 = fit_f_dist(s2[ok], df[ok])
            return np.full(n, scale), df2
    x, d = np.maximum(s2[ok], 0), df[ok]
    m = np.median(x)
    if m == 0:
        m = 1.0
    x = np.maximum(x, 1e-5 * m)
    e = np.log(x) - special.digamma(d / 2) + np.log(d / 2)
    if covariate is None:
        emean = e.mean()
        evar = ((e - emean) ** 2).sum() / (nok - 1)
    else:
        cov_ok = covariate[ok]
        probs = np.linspace(0, 1, splinedf)[1:-1]
        knots = np.quantile(cov_ok, probs)
        boundary = (cov_ok.min(), cov_ok.max())
        basis = _natural_spline_basis(cov_ok, knots, boundary)
        beta, _, rank, _ = np.linalg.lstsq(basis, e, rcond=None)
        fitted = basis @ beta
        evar = ((e - fitted) ** 2).sum() / (nok - rank)
        emean = np.full(n, np.nan)
        emean[ok] = fitted
        others = ~ok & np.isfinite(covariate)
        if others.any():
            emean[others] = _natural_spline_basis(covariate[others], knots, boundary) @ beta
    evar -= special.polygamma(1, d / 2).mean()
    if evar > 0:
        df2 = 2 * float(trigamma_inverse(evar))
        s20 = np.exp(emean + special.digamma(df2 / 2) - np.log(df2 / 2))
    else:
        df2 = np.inf
        s20 = x.mean() if covariate is None else np.exp(emean)
    return (float(s20) if covariate is None else s20), df2


def _f_ppf(p, df1, df2, *, upper=False):
    """R's ``qf`` including ``df2 = Inf`` (a scaled chi-square)."""
    if np.isinf(df2):
        q = stats.chi2.isf(p, df1) if upper else stats.chi2.ppf(p, df1)
        return q / df1
    return stats.f.isf(p, df1, df2) if upper else stats.f.ppf(p, df1, df2)


def _f_pdf(x, df1, df2):
    if np.isinf(df2):
        return stats.chi2.pdf(x * df1, df1) * df1
    return stats.f.pdf(x, df1, df2)


def _zeroin(f, ax: float, bx: float, fa: float, fb: float, tol: float, maxit: int = 1000) -> float:
    """Brent's root finder exactly as R's ``uniroot`` (``R_zeroin2``), so the iterates agree with limma's."""
    eps = np.finfo(float).eps
    a, b, c, fc = ax, bx, ax, fa
    if fa == 0:
        return a
    if fb == 0:
        return b
    for _ in range(maxit + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * eps * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q, t1, t2 = fa / fc, fb / fc, fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


def lowess(x: np.ndarray, y: np.ndarray, *, f: float = 2 / 3, iterations: int = 3) -> np.ndarray:
    """Cleveland's robust locally linear smoother exactly as R's ``lowess`` (its C ``clowess``).

    Returns the fitted values in the order of ``x`` (R returns them sorted by ``x``).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    order = np.argsort(x, kind="stable")
    xs, ys_in = x[order], y[order]
    n = xs.size
    fitted = np.empty(n)
    if n < 2:
        return y.copy()
    delta = 0.01 * (xs[-1] - xs[0])
    ns = max(2, min(n, int(f * n + 1e-7)))
    span_range = xs[-1] - xs[0]
    rw = np.ones(n)
    res = np.zeros(n)
    for it in range(1, iterations + 2):
        nleft, nright, last, i = 0, ns - 1, -1, 0
        while True:
            if nright < n - 1:
                if xs[i] - xs[nleft] > xs[nright + 1] - xs[i]:
                    nleft += 1
                    nright += 1
                    continue
            # local fit at xs[i] (clowess's lowest)
            h = max(xs[i] - xs[nleft], xs[nright] - xs[i])
            h9, h1 = 0.999 * h, 0.001 * h
            r = np.abs(xs[nleft:] - xs[i])
            inside = r <= h9
            # the neighbourhood ends at the first point beyond h9 to the right of xs[i]
            beyond = np.flatnonzero(~inside & (xs[nleft:] > xs[i]))
            stop = beyond[0] if beyond.size else n - nleft
            r, inside = r[:stop], inside[:stop]
            w = np.where(inside, np.where(r <= h1, 1.0, (1 - (r / h) ** 3) ** 3), 0.0)
            if it > 1:
                w = w * rw[nleft : nleft + stop]
            a = w.sum()
            if a <= 0:
                fitted[i] = ys_in[i]
            else:
                w = w / a
                xw = xs[nleft : nleft + stop]
                if h > 0:
                    centre = (w * xw).sum()
                    b = xs[i] - centre
                    c = (w * (xw - centre) ** 2).sum()
                    if np.sqrt(c) > 0.001 * span_range:
                        w = w * (b / c * (xw - centre) + 1.0)
                fitted[i] = (w * ys_in[nleft : nleft + stop]).sum()
            if last < i - 1:
                denom = xs[i] - xs[last]
                alpha = (xs[last + 1 : i] - xs[last]) / denom
                fitted[last + 1 : i] = alpha * fitted[i] + (1 - alpha) * fitted[last]
            last = i
            cut = xs[last] + delta
            i = last + 1
            while i < n:
                if xs[i] > cut:
                    break
                if xs[i] == xs[last]:
                    fitted[i] = fitted[last]
                    last = i
                i += 1
            i = max(last + 1, i - 1)
            if last >= n - 1:
                break
        res = ys_in - fitted
        sc = np.abs(res).mean()
        if it > iterations:
            break
        cmad = 6 * np.median(np.abs(res))
        if cmad < 1e-7 * sc:
            break
        r = np.abs(res)
        rw = np.where(r <= 0.001 * cmad, 1.0, np.where(r <= 0.999 * cmad, (1 - (r / cmad) ** 2) ** 2, 0.0))
    out = np.empty(n)
    out[order] = fitted
    return out


def _winsorized_moments(df1: float, df2: float, tail: tuple[float, float], nodes, weights):
    """Mean and variance of the Winsorized log-F distribution by Gauss quadrature, as limma's."""
    fq = np.array([_f_ppf(tail[0], df1, df2), _f_ppf(tail[1], df1, df2, upper=True)])
    zq = np.log(fq)
    q = fq / (1 + fq)
    qn = q[0] + (q[1] - q[0]) * nodes
    fn = qn / (1 - qn)
    zn = np.log(fn)
    dens = _f_pdf(fn, df1, df2) / (1 - qn) ** 2
    q21 = q[1] - q[0]
    tails = np.asarray(tail)
    mean = q21 * np.sum(weights * dens * zn) + np.sum(zq * tails)
    var = q21 * np.sum(weights * dens * (zn - mean) ** 2) + np.sum((zq - mean) ** 2 * tails)
    return mean, var


def fit_f_dist_robustly(
    x: np.ndarray,
    df1: np.ndarray,
    covariate: np.ndarray | None = None,
    *,
    winsor_tail_p: tuple[float, float] = (0.05, 0.1),
):
    """limma 3.54's ``fitFDistRobustly`` (Phipson et al. 2016): (scale, df2, df2_shrunk per feature).

    Outlying variances (hypervariable proteins) get fewer prior degrees of freedom instead of
    pulling the common prior towards them.
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    df1 = np.broadcast_to(np.asarray(df1, dtype=float), x.shape).copy()
    if n < 2:
        return np.nan, np.nan, np.full(n, np.nan)
    if n == 2:
        scale, df2 = fit_f_dist(x, df1, covariate)
        return scale, df2, np.full(n, df2)
    ok = ~np.isnan(x) & np.isfinite(df1) & (df1 > 1e-6)
    if covariate is not None:
        covariate = np.asarray(covariate, dtype=float)
        ok &= np.isfinite(covariate)
    if not ok.all():
        scale, df2, shrunk = fit_f_dist_robustly(
            x[ok], df1[ok], None if covariate is None else covariate[ok], winsor_tail_p=winsor_tail_p
        )
        df2_shrunk = np.full(n, df2)
        df2_shrunk[ok] = shrunk
        if covariate is not None:
            full = np.full(n, np.nan)
            full[ok] = scale
            known = ~ok & np.isfinite(covariate)
            if known.any():  # R's approx(rule = 2, ties = mean) on the log scale
                ux, inv = np.unique(covariate[ok], return_inverse=True)
                ly = np.bincount(inv, weights=np.log(scale)) / np.bincount(inv)
                full[known] = np.exp(np.interp(covariate[known], ux, ly))
            scale = full
        return scale, df2, df2_shrunk
    m = np.median(x)
    if m <= 0:
        raise DVPError("robust eBayes: the residual variances are mostly <= 0")
    x = np.maximum(x, m * 1e-12)
    nonrobust_scale, nonrobust_df2 = fit_f_dist(x, df1, covariate)
    tail = (winsor_tail_p[0], winsor_tail_p[1])
    if all(p < 1 / n for p in tail):
        return nonrobust_scale, nonrobust_df2, np.full(n, nonrobust_df2)
    df1max = df1.max()
    low = df1 < df1max - 1e-14
    if low.any():
        s = nonrobust_scale if covariate is None else nonrobust_scale[low]
        f = x[low] / s
        d2 = nonrobust_df2
        if np.isinf(d2):
            pupper = stats.chi2.logsf(f * df1[low], df1[low])
            plower = stats.chi2.logcdf(f * df1[low], df1[low])
        else:
            pupper = stats.f.logsf(f, df1[low], d2)
            plower = stats.f.logcdf(f, df1[low], d2)
        up = pupper < plower
        f = np.where(
            up,
            _f_ppf(np.exp(pupper), df1max, d2, upper=True),
            _f_ppf(np.exp(plower), df1max, d2),
        )
        x = x.copy()
        x[low] = f * s
    df1 = float(df1max)
    z = np.log(x)
    if covariate is None:
        ztrend = stats.trim_mean(z, tail[1])
    else:
        ztrend = lowess(covariate, z, f=0.4, iterations=3)
    zresid = z - ztrend
    zrq = np.quantile(zresid, [tail[0], 1 - tail[1]])
    zwins = np.clip(zresid, zrq[0], zrq[1])
    zwmean = zwins.mean()
    zwvar = np.mean((zwins - zwmean) ** 2) * n / (n - 1)
    leg_x, leg_w = np.polynomial.legendre.leggauss(128)
    nodes, weights = (leg_x + 1) / 2, leg_w / 2  # statmod's gauss.quad.prob(128, "uniform")

    def moments(d2):
        return _winsorized_moments(df1, d2, tail, nodes, weights)

    mean_inf, var_inf = moments(np.inf)
    funval_inf = np.log(zwvar / var_inf)
    if funval_inf <= 0:
        corrected = ztrend + zwmean - mean_inf
        s20 = np.exp(corrected)
        fstat = np.exp(z - corrected)
        tail_p = stats.chi2.sf(fstat * df1, df1)
        r = stats.rankdata(fstat)
        not_outlier = np.minimum(tail_p / ((n - r + 0.5) / n), 1)
        shrunk = np.full(n, np.inf)
        outlier = not_outlier < 1
        if outlier.any():
            shrunk[outlier] = not_outlier[outlier] * n * df1
            o = np.argsort(tail_p, kind="stable")
            shrunk[o] = np.maximum.accumulate(shrunk[o])
        return s20, np.inf, shrunk
    if np.isinf(nonrobust_df2):
        return nonrobust_scale, nonrobust_df2, np.full(n, nonrobust_df2)

    def fun(v):
        return np.log(zwvar / moments(v / (1 - v))[1])

    rbx = nonrobust_df2 / (1 + nonrobust_df2)
    funval_low = fun(rbx)
    if funval_low >= 0:
        df2 = nonrobust_df2
    else:
        root = _zeroin(fun, rbx, 1.0, funval_low, funval_inf, tol=1e-8)
        df2 = root / (1 - root)
    mean2, _ = moments(df2)
    corrected = ztrend + zwmean - mean2
    s20 = np.exp(corrected)
    fstat = np.exp(z - corrected)
    log_tail = stats.f.logsf(fstat, df1, df2)
    r = stats.rankdata(fstat)
    log_not = np.minimum(log_tail - (np.log(n - r + 0.5) - np.log(n)), 0)
    p_not, p_out = np.exp(log_not), -np.expm1(log_not)
    if (log_not < 0).any():
        min_log = log_tail.min()
        if min_log == -np.inf:
            shrunk = p_not * df2
        else:
            df2_out = np.log(0.5) / min_log * df2
            new_log = stats.f.logsf(fstat.max(), df1, df2_out)
            df2_out = np.log(0.5) / new_log * df2_out
            shrunk = p_not * df2 + p_out * df2_out
        o = np.argsort(log_tail, kind="stable")
        ordered = shrunk[o]
        means = np.cumsum(ordered) / np.arange(1, n + 1)
        imin = int(np.argmin(means))
        ordered[: imin + 1] = means[imin]
        shrunk = np.empty(n)
        shrunk[o] = np.maximum.accumulate(ordered)
    else:
        shrunk = np.full(n, df2)
    return s20, df2, shrunk


def squeeze_var(
    s2: np.ndarray,
    df: np.ndarray,
    *,
    covariate: np.ndarray | None = None,
    robust: bool = False,
    winsor_tail_p: tuple[float, float] = (0.05, 0.1),
):
    """Empirical-Bayes posterior variances (limma's ``squeezeVar``): (var_post, var_prior, df_prior).

    ``var_prior`` is an array with a ``covariate`` (trend), ``df_prior`` an array when ``robust``.
    """
    s2 = np.asarray(s2, dtype=float)
    df = np.broadcast_to(np.asarray(df, dtype=float), s2.shape)
    s2 = np.where(df == 0, 0.0, s2)  # limma: var[df == 0] <- 0
    if robust:
        var_prior, _, df_prior = fit_f_dist_robustly(s2, df, covariate, winsor_tail_p=winsor_tail_p)
    else:
        var_prior, df_prior = fit_f_dist(s2, df, covariate)
    if np.any(np.isnan(df_prior)):
        raise DVPError("eBayes: could not estimate the prior degrees of freedom (too few features with residual df)")
    dp = np.broadcast_to(df_prior, s2.shape)
    vp = np.broadcast_to(var_prior, s2.shape)
    with np.errstate(invalid="ignore"):
        var_post = np.where(np.isfinite(dp), (df * s2 + dp * vp) / (df + dp), vp)
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


def contrast_weights(contrast: tuple[str, str] | Mapping[str, float]) -> dict[str, float]:
    """A contrast as group -> coefficient: ``(a, b)`` is ``{a: 1, b: -1}``."""
    if isinstance(contrast, Mapping):
        weights = {str(k): float(v) for k, v in contrast.items() if v != 0}
    else:
        num, den = contrast
        if num == den:
            raise DVPError(f"contrast compares '{num}' with itself")
        weights = {str(num): 1.0, str(den): -1.0}
    if not weights or abs(sum(weights.values())) > 1e-12:
        raise DVPError(f"contrast {dict(weights)}: coefficients must be non-zero and sum to zero")
    return weights


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
    contrast: tuple[str, str] | Mapping[str, float],
    covariates: pd.DataFrame | None = None,
    block: pd.Series | None = None,
    correlation: float | None = None,
    trend: bool = False,
    robust: bool = False,
    winsor_tail_p: tuple[float, float] = (0.05, 0.1),
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
        ``(numerator, denominator)`` groups (logFC is numerator minus denominator), or a mapping of
        group to coefficient for other contrasts, e.g. the interaction
        ``{"A.treated": 1, "A.control": -1, "B.treated": -1, "B.control": 1}``.
    covariates
        Optional DataFrame indexed by sample; each column enters the design as a factor
        (e.g. ``patient`` for a paired design).
    block
        Optional block of each sample, indexed by sample: runs of one block (replicate pools of one
        biopsy and cell type) are correlated, and the fit is limma's ``lmFit(block=, correlation=)``.
    correlation
        The within-block correlation; ``None`` estimates it with :func:`duplicate_correlation`
        (its consensus is in ``result.attrs["correlation"]``).
    trend
        Let the prior variance depend on the average log-intensity (limma's ``eBayes(trend=TRUE)``);
        proteomics variances fall with intensity.
    robust
        Robust hyperparameters (``eBayes(robust=TRUE)``): hypervariable proteins get less
        prior information instead of inflating everyone's prior variance.
    winsor_tail_p
        Tail proportions Winsorized by the robust fit, as limma's.
    proportion
        Assumed proportion of differentially expressed features, for the B statistic.

    Returns
    -------
    One row per feature, in input order: logFC, AveExpr, t, P.Value, adj.P.Val, B. The prior
    (``s2.prior``, ``df.prior``) is in ``result.attrs``.
    """
    weights = contrast_weights(contrast)
    samples = list(matrix.columns)
    missing = [s for s in samples if s not in groups.index]
    if missing:
        raise DVPError(f"moderated_ttest: no group for sample(s) {', '.join(map(str, missing))}")
    groups = groups.loc[samples].astype(str)
    for g in weights:
        if g not in set(groups):
            raise DVPError(
                f"moderated_ttest: contrast group '{g}' has no samples (groups: {', '.join(sorted(set(groups)))})"
            )
    design = design_matrix(groups, covariates=covariates)
    x = design.to_numpy()
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise DVPError("moderated_ttest: the design is not of full rank (a covariate is confounded with the groups)")
    y = matrix.to_numpy(dtype=float)
    codes = None
    if block is None:
        if correlation is not None:
            raise DVPError("moderated_ttest: a correlation needs a block (which samples' runs correlate)")
        correlation = 0.0
    else:
        codes = _block_codes(block, samples, "moderated_ttest")
        if correlation is None:
            correlation = _duplicate_correlation(y, x, codes)[0]
            if np.isnan(correlation):
                raise DVPError(
                    "moderated_ttest: the within-block correlation cannot be estimated (no feature has "
                    "observations in enough blocks); give correlation= or drop block="
                )
        if not abs(correlation) < 1:
            raise DVPError(f"moderated_ttest: correlation must be between -1 and 1, not {correlation}")
    coef, stdev, sigma, df = _fit_rows(y, x, block=codes, correlation=correlation)
    cvec = np.array([weights.get(c, 0.0) for c in design.columns])
    used = cvec != 0
    # contrasts.fit: limma combines the unscaled sds through the correlation of the full design's coefficients
    # (from the generalised least squares of the whole design when there are blocks).
    cov = np.linalg.inv(
        x.T @ (x if codes is None else np.linalg.solve(_block_correlation_matrix(codes, correlation), x))
    )
    sd = np.sqrt(np.diag(cov))
    cor = cov / np.outer(sd, sd)
    coef_c = np.where(np.isnan(coef[:, used]).any(axis=1), np.nan, np.nan_to_num(coef) @ cvec)
    scaled = np.nan_to_num(stdev) * cvec
    var_c = np.einsum("ij,jk,ik->i", scaled, cor, scaled)
    stdev_c = np.where(np.isnan(coef_c), np.nan, np.sqrt(var_c))

    s2 = sigma**2
    with warnings.catch_warnings():  # an all-missing row has no mean, as in limma
        warnings.simplefilter("ignore", RuntimeWarning)
        ave = np.nanmean(y, axis=1)
    if np.nanmax(df, initial=0) == 0:
        raise DVPError("moderated_ttest: no residual degrees of freedom (need more runs than groups and covariates)")
    var_post, var_prior, df_prior = squeeze_var(
        s2, df, covariate=ave if trend else None, robust=robust, winsor_tail_p=winsor_tail_p
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        t = coef_c / stdev_c / np.sqrt(var_post)
        df_total = np.minimum(df + df_prior, df.sum())
        pval = 2 * stats.t.sf(np.abs(t), df_total)
    ok = ~np.isnan(t)
    b = np.full_like(t, np.nan)
    if ok.any():
        prior_mid = float(np.nanmedian(var_prior))
        lim = (0.1**2 / prior_mid, 4.0**2 / prior_mid)  # limma's stdev.coef.lim = c(0.1, 4)
        v0 = _tmixture(t, stdev_c, df_total, proportion, lim)
        v0 = 1 / var_prior if np.isnan(v0) else v0
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (stdev_c**2 + v0) / stdev_c**2
            t2 = t**2
            infinite = np.broadcast_to(np.asarray(df_prior) > 1e6, t.shape)
            kernel = np.where(
                infinite,
                t2 * (1 - 1 / r) / 2,
                (1 + df_total) / 2 * np.log((t2 + df_total) / (t2 / r + df_total)),
            )
            b = np.log(proportion / (1 - proportion)) - np.log(r) / 2 + kernel
    result = pd.DataFrame(
        {"logFC": coef_c, "AveExpr": ave, "t": t, "P.Value": pval, "adj.P.Val": bh_adjust(pval), "B": b},
        index=matrix.index,
    )
    result.attrs.update({"s2.prior": var_prior, "df.prior": df_prior})
    if codes is not None:
        result.attrs["correlation"] = correlation
    if trend:
        result["s2.prior"] = var_prior
    if robust:
        result["df.prior"] = df_prior

    return result
