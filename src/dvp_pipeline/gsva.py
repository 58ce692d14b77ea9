"""Gene Set Variation Analysis (GSVA): per-run gene-set scores, as R's GSVA 1.46.

GSVA (Hänzelmann, Castelo & Guinney 2013, BMC Bioinformatics 14:7) turns a features x samples
matrix into a sets x samples matrix without using any sample grouping: each feature's value in a
sample is placed on that feature's kernel-estimated distribution over all samples, features are
ranked within each sample by that, and a Kolmogorov-Smirnov-like random walk over the ranking gives
each set its score. The pathway stage uses such scores for per-run heatmaps and reports.

:func:`gsva` is a port of Bioconductor GSVA 1.46.0's ``gsva(expr, gset.idx.list, method="gsva")``
(the R code of ``.filterFeatures``, ``.mapGeneSetsToFeatures``, ``filterGeneSets``, ``.gsva``,
``compute.geneset.es``, and the C functions ``matrix_density_R`` in ``kernel_estimation.c`` and
``ks_matrix_R`` in ``ks_test.c`` of the 1.46.0 release). It equals GSVA 1.46.0 to 1e-12 on the
references in ``tests/data/gsva`` (made by ``make_reference.R`` there, R 4.2.2): kcdf Gaussian and
Poisson, ``mx_diff`` on and off, ``abs_ranking``, tau 0.5 to 2, size filters, 12 and 120 samples.

What carries over from GSVA 1.46, on purpose:

- The Gaussian kernel CDF is GSVA's table, not the exact normal CDF: the standard normal CDF at
  0, 0.001, ..., 10 with the argument's absolute value truncated to that grid (0 below -10 and 1
  above 10 standard deviations), bandwidth sd/4 per feature. Only the order of the resulting
  log-odds matters, but the truncation does reorder close features, so the exact CDF would not
  reproduce GSVA. 1.46 uses the table for every sample count (there is no many-samples switch).
- The Poisson kernel (``kcdf="poisson"``, GSVA's ``rnaseq=TRUE``) is ``ppois(y, x + 0.5)``.
- Features whose standard deviation is below 1e-10 are dropped before sets are matched, so they do
  not count towards a set's size; sizes are counted after matching, duplicates included, and a
  member listed twice weighs twice in the walk's normaliser (as in ``ks_test.c``).
- Within a sample, ties in the kernel score keep the input order (R's ``order`` is stable).

Where it differs: GSVA 1.46 silently drops features with a missing (or infinite) value, reporting
them as "constant"; here they are refused, so callers pass complete rows (impute or filter first).
Counts for the Poisson kernel must be non-negative (R gives NaN and ranks those last).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special

from dvp_pipeline.errors import DVPError

__all__ = ["gsva"]

log = logging.getLogger(__name__)

# GSVA's kernel_estimation.c: bandwidth = sd / SIGMA_FACTOR, CDF table over [0, MAX_PRECOMPUTE] sd.
_SIGMA_FACTOR = 4.0
_RESOLUTION = 10000
_MAX_PRECOMPUTE = 10.0
_CDF_TABLE = special.ndtr(_MAX_PRECOMPUTE * np.arange(_RESOLUTION + 1, dtype=float) / float(_RESOLUTION))
# GSVA's .filterFeatures: rows with a smaller standard deviation count as constant
_MIN_SD = 1e-10


def gsva(
    matrix: pd.DataFrame,
    gene_sets: Mapping[str, Sequence[str]],
    *,
    kcdf: str = "gaussian",
    min_size: float = 1,
    max_size: float = math.inf,
    mx_diff: bool = True,
    tau: float = 1.0,
    abs_ranking: bool = False,
) -> pd.DataFrame:
    """GSVA enrichment scores per set and sample, equal to R GSVA 1.46's ``gsva(method="gsva")``.

    Parameters
    ----------
    matrix
        Features x samples (e.g. log2 protein intensities), complete: no missing or infinite
        values. At least two samples; features must be unique.
    gene_sets
        Set name to member feature names; members not in ``matrix`` are ignored.
    kcdf
        ``"gaussian"`` for continuous values (log intensities), ``"poisson"`` for counts.
    min_size, max_size
        Keep sets whose number of matched members (after constant features are dropped) lies in
        ``[max(1, min_size), max_size]``, as GSVA's ``min.sz`` and ``max.sz``.
    mx_diff
        ``True``: the score is the largest positive plus the largest negative deviation of the
        random walk (GSVA's default, roughly normal). ``False``: the deviation of largest size
        (the classic Kolmogorov-Smirnov-like score, bimodal).
    tau
        Exponent of the rank weights in the walk.
    abs_ranking
        With ``mx_diff``, score the largest positive minus the largest negative deviation, so that
        sets with members at both ends of the ranking score high.

    Returns
    -------
    Sets x samples, sets in the order of ``gene_sets`` (those of allowed size only), samples in
    the order of ``matrix``'s columns.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> m = pd.DataFrame(rng.normal(size=(50, 6)), index=[f"p{i}" for i in range(50)])
    >>> m.iloc[:10, :3] += 2  # the set is up in the first three samples
    >>> scores = gsva(m, {"planted": [f"p{i}" for i in range(10)]})
    >>> scores.loc["planted"].round(2).tolist()
    [0.56, 0.46, 0.62, -0.49, -0.69, -0.58]
    """
    kernel = _check_kcdf(kcdf)
    values = _check_matrix(matrix, kernel)

    sd = values.std(axis=1, ddof=1)
    constant = sd < _MIN_SD
    if constant.any():
        log.warning(
            "gsva: %d feature(s) with constant values across the samples are left out, e.g. %s",
            int(constant.sum()),
            ", ".join(map(str, matrix.index[constant][:3])),
        )
        values = values[~constant]
    features = matrix.index[~constant]
    if len(features) < 2:
        raise DVPError("gsva: fewer than two features vary across the samples; nothing to rank")

    members = _match_sets(gene_sets, features, max(1.0, float(min_size)), float(max_size))
    density = _kernel_scores(values, kernel)
    position = _rank_positions(density)
    n = len(features)
    # GSVA's rank score: distance of the rank from the middle, largest at both ends
    weight = np.abs(n - np.arange(n, dtype=float) - n / 2.0) ** float(tau)
    scores = [_walk(position, weight, idx, mx_diff=mx_diff, abs_ranking=abs_ranking) for idx in members.values()]
    return pd.DataFrame(scores, index=pd.Index(list(members), name="set"), columns=matrix.columns)


def _check_kcdf(kcdf: str) -> str:
    kernel = str(kcdf).lower()
    if kernel not in ("gaussian", "poisson"):
        raise DVPError(f"gsva: kcdf must be 'gaussian' or 'poisson', got {kcdf!r}")
    return kernel


def _check_matrix(matrix: pd.DataFrame, kernel: str) -> np.ndarray:
    if not isinstance(matrix, pd.DataFrame):
        raise DVPError(f"gsva: expected a features x samples DataFrame, got {type(matrix).__name__}")
    if matrix.shape[1] < 2:
        raise DVPError(f"gsva: need at least two samples (columns), got {matrix.shape[1]}")
    if matrix.index.has_duplicates:
        dup = matrix.index[matrix.index.duplicated()].unique()
        raise DVPError(f"gsva: feature names must be unique; repeated: {', '.join(map(str, dup[:5]))}")
    try:
        values = matrix.to_numpy(dtype=float)
    except (TypeError, ValueError) as err:
        raise DVPError(f"gsva: the matrix must be numeric ({err})") from None
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        # GSVA 1.46 would drop these rows silently (as "constant"); a caller should decide instead
        raise DVPError(
            f"gsva: {int(bad.sum())} feature(s) have missing or infinite values, e.g. "
            f"{', '.join(map(str, matrix.index[bad][:5]))}; pass complete rows (impute or filter first)"
        )
    if kernel == "poisson" and (values < 0).any():
        raise DVPError("gsva: kcdf='poisson' expects non-negative counts; use kcdf='gaussian' for log values")
    return values


def _match_sets(
    gene_sets: Mapping[str, Sequence[str]], features: pd.Index, min_size: float, max_size: float
) -> dict[str, np.ndarray]:
    """Row indices of each set's members, sets of allowed size only (GSVA's mapping and filter)."""
    if not isinstance(gene_sets, Mapping) or not gene_sets:
        raise DVPError("gsva: gene_sets must be a non-empty mapping of set name to member names")
    matched: dict[str, np.ndarray] = {}
    for name, genes in gene_sets.items():
        if isinstance(genes, str):
            raise DVPError(f"gsva: set {name!r} must be a list of member names, not the string {genes!r}")
        idx = features.get_indexer(pd.Index(list(genes), dtype=object))
        matched[name] = idx[idx >= 0]
    if not any(len(idx) for idx in matched.values()):
        raise DVPError("gsva: no member of any gene set is a feature of the matrix (are the names of the same kind?)")
    kept = {name: idx for name, idx in matched.items() if min_size <= len(idx) <= max_size}
    if not kept:
        sizes = sorted(len(idx) for idx in matched.values())
        raise DVPError(
            f"gsva: no gene set has between {min_size:g} and {max_size:g} members in the matrix "
            f"(matched sizes: {', '.join(map(str, sizes[:10]))}{' ...' if len(sizes) > 10 else ''})"
        )
    return kept


def _sd_like_gsva(values: np.ndarray) -> np.ndarray:
    """Row standard deviations the way kernel_estimation.c's sd() does it (long double, corrected mean)."""
    x = values.astype(np.longdouble)
    n = x.shape[1]
    mean = x.sum(axis=1) / n
    mean = mean + (x - mean[:, None]).sum(axis=1) / n
    return np.sqrt(((x - mean[:, None]) ** 2).sum(axis=1) / (n - 1)).astype(float)


def _kernel_scores(values: np.ndarray, kernel: str, *, block: int = 1024) -> np.ndarray:
    """Log-odds of each value's kernel CDF over its feature's samples (GSVA's matrix_density_R).

    The sum over density samples runs in the same order as the C loop, one sample at a time, so
    ties and near-ties between features resolve as in GSVA. Features go in blocks that stay in
    cache, with the buffers reused.
    """
    n = values.shape[1]
    bandwidth = _sd_like_gsva(values) / _SIGMA_FACTOR
    scores = np.empty_like(values)
    for start in range(0, values.shape[0], block):
        x = values[start : start + block]
        left_tail = np.zeros_like(x)
        if kernel == "gaussian":
            bw = bandwidth[start : start + block, None]
            v, scaled, cdf = np.empty_like(x), np.empty_like(x), np.empty_like(x)
            grid, negative = np.empty(x.shape, dtype=np.intp), np.empty(x.shape, dtype=bool)
            for i in range(n):
                np.subtract(x, x[:, i : i + 1], out=v)
                np.divide(v, bw, out=v)
                # GSVA truncates |v| onto the table's grid (same operations, same rounding); the
                # last entry, the CDF at 10 sd, is exactly 1.0 in double precision, so clipping
                # there gives GSVA's 1 (or 0) beyond 10 sd
                np.abs(v, out=scaled)
                scaled /= _MAX_PRECOMPUTE
                scaled *= _RESOLUTION
                np.minimum(scaled, _RESOLUTION, out=scaled)
                grid[...] = scaled
                np.take(_CDF_TABLE, grid, out=cdf)
                np.less(v, 0.0, out=negative)
                np.subtract(1.0, cdf, out=cdf, where=negative)
                left_tail += cdf
        else:
            # R's ppois(q, lambda) floors q + 1e-7; the bandwidth 0.5 is added to the mean
            q = np.floor(x + 1e-7)
            for i in range(n):
                left_tail += special.pdtr(q, x[:, i : i + 1] + 0.5)
        left_tail /= n
        with np.errstate(divide="ignore"):
            scores[start : start + block] = -1.0 * np.log((1.0 - left_tail) / left_tail)
    return scores


def _rank_positions(density: np.ndarray) -> np.ndarray:
    """0-based position of each feature in each sample's decreasing order (ties in input order)."""
    order = np.argsort(-density, axis=0, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(density.shape[0])[:, None], axis=0)
    return position


def _walk(position: np.ndarray, weight: np.ndarray, idx: np.ndarray, *, mx_diff: bool, abs_ranking: bool) -> np.ndarray:
    """One set's score in every sample: the extremes of GSVA's random walk (ks_test.c's ks_sample).

    The walk steps up by a member's weight share and down by 1 / (non-members) at every other
    feature; its extremes sit at member positions (maxima) or just before them and at the end
    (minima), so only the members' positions are visited instead of the whole ranking.
    """
    n = position.shape[0]
    total = weight[position[idx]].sum(axis=0)  # duplicates count, as in ks_sample's sum_gset
    pos = np.sort(position[np.unique(idx)], axis=0)
    # Degenerate sets as in C: every feature a member makes dec infinite but unused (0 * inf
    # must stay 0), a lone member on the middle rank (weight 0) makes its step 0/0.
    with np.errstate(divide="ignore", invalid="ignore"):
        dec = np.float64(1.0) / (n - len(idx))
        step = weight[pos] / total
        climbed = np.cumsum(step, axis=0)
        # non-members passed before each member, and after the last one
        passed = pos - np.arange(pos.shape[0])[:, None]
        down = np.where(passed > 0, passed * dec, 0.0)
        after = climbed - down
        before = np.vstack([np.zeros((1, pos.shape[1])), climbed[:-1]]) - down
        tail = n - 1 - pos[-1]
        end = after[-1] - np.where(tail > 0, tail * dec, 0.0)
    # After a 0/0 step the C walk is NaN and its comparisons fail: ignoring NaN does the same
    mx_pos = np.fmax(np.fmax.reduce(after, axis=0), 0.0)
    mx_neg = np.fmin(np.fmin(np.fmin.reduce(before, axis=0), end), 0.0)
    if mx_diff:
        return mx_pos - mx_neg if abs_ranking else mx_pos + mx_neg
    return np.where(mx_pos > np.abs(mx_neg), mx_pos, mx_neg)
