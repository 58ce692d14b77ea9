"""Run normalisation of log2 protein matrices, within strata such as cell types.

Used twice in the pipeline: by quantification (``quantify.normalize``: each run shifted to the median
of its stratum, or directLFQ's anchoring) and by the statistics (``differential.normalize``: median
centring over shared proteins, or limma's quantile normalisation), which also prepares the matrices of
the pathway tests and per-run scores. Cell types differ in composition, not in loading, so runs are
normalised only against runs of their own cell type: :func:`normalize_within` is that one loop.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

from dvp_pipeline.errors import DVPError

__all__ = [
    "directlfq_normalize",
    "median_normalize",
    "median_to_reference",
    "normalize_within",
    "quantile_normalize",
    "remove_batch_effect",
    "run_normalizer",
]


def normalize_within(
    matrix: pd.DataFrame, strata: pd.Series | None, normalizer: Callable[[pd.DataFrame], pd.DataFrame]
) -> pd.DataFrame:
    """Apply ``normalizer`` to the runs of each stratum separately; columns keep their order.

    Parameters
    ----------
    matrix
        Proteins x runs, log2.
    strata
        Run -> stratum (e.g. cell type); runs missing from it form one stratum of their own.
        ``None``: all runs together.
    normalizer
        Takes and returns a proteins x runs block.

    Examples
    --------
    >>> m = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 5.0]})
    >>> normalize_within(m, pd.Series({"a": "x", "b": "x", "c": "y"}), lambda b: b - b.median())
         a    b    c
    0 -0.5 -0.5  0.0
    1  0.5  0.5  0.0
    """
    if strata is None:
        return normalizer(matrix)
    labels = strata.reindex(matrix.columns).fillna("")
    parts = [normalizer(matrix[list(runs)]) for _, runs in labels.groupby(labels).groups.items()]
    return pd.concat(parts, axis=1)[matrix.columns]


def run_normalizer(method: str, *, section: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The block normaliser of method ``method`` of config section ``section``.

    ``quantify``: none, median (:func:`median_to_reference`), directlfq (:func:`directlfq_normalize`);
    ``differential``: median (:func:`median_normalize`), quantile (:func:`quantile_normalize`), none.
    """
    methods = _NORMALIZERS[section]
    if method not in methods:
        raise DVPError(f"{section}.normalize: unknown method '{method}'; expected one of {', '.join(methods)}")
    return methods[method]


def median_to_reference(block: pd.DataFrame) -> pd.DataFrame:
    """Remove each run's median log2 difference to the reference (the row-wise median of the runs)."""
    if block.shape[1] < 2:
        return block
    reference = block.median(axis=1)
    shift = block.sub(reference, axis=0).median(axis=0).fillna(0.0)
    return block - shift


def directlfq_normalize(block: pd.DataFrame) -> pd.DataFrame:
    """directLFQ's pairwise anchoring of runs (needs the ``directlfq`` package)."""
    if block.shape[1] < 2:
        return block
    try:
        import directlfq.normalization as dlnorm
    except ImportError as err:
        raise DVPError("quantify.normalize: directlfq needs pip install 'dvp-pipeline[directlfq]'") from err
    manager = dlnorm.NormalizationManagerSamples(block.copy(), num_samples_quadratic=50)
    return pd.DataFrame(manager.complete_dataframe.to_numpy(), index=block.index, columns=block.columns)


def median_normalize(matrix: pd.DataFrame, *, min_shared: int = 20) -> pd.DataFrame:
    """Centre every sample on the others: subtract its median over the features all samples share.

    Falls back to all of a sample's features when fewer than ``min_shared`` are shared. The overall
    level is kept (the mean of the medians is added back), so values stay on the log2 intensity scale.
    """
    shared = matrix.dropna()
    basis = shared if len(shared) >= min_shared else matrix
    medians = basis.median()
    return matrix - medians + medians.mean()


def quantile_normalize(matrix: pd.DataFrame) -> pd.DataFrame:
    """Quantile normalisation with missing values as limma's ``normalizeQuantiles(ties=TRUE)``.

    Every run's observed values are mapped onto the average quantile function; runs with fewer
    values are compared on the same probability scale by linear interpolation, as limma does.
    """
    x = matrix.to_numpy(dtype=float)
    n_rows, n_cols = x.shape
    if n_cols < 2:
        return matrix.copy()
    grid = np.arange(n_rows) / max(n_rows - 1, 1)
    quantiles = np.zeros((n_rows, n_cols))
    nobs = (~np.isnan(x)).sum(axis=0)
    for j in range(n_cols):
        values = np.sort(x[~np.isnan(x[:, j]), j])
        if values.size == n_rows:
            quantiles[:, j] = values
        elif values.size > 1:
            quantiles[:, j] = np.interp(grid, np.arange(values.size) / (values.size - 1), values)
        else:
            quantiles[:, j] = values[0] if values.size else np.nan
    target = np.nanmean(quantiles, axis=1)
    out = np.full_like(x, np.nan)
    for j in range(n_cols):
        observed = ~np.isnan(x[:, j])
        if not observed.any():
            continue
        r = stats.rankdata(x[observed, j])  # ties share their average rank, as ties=TRUE
        out[observed, j] = np.interp((r - 1) / max(nobs[j] - 1, 1), grid, target)
    return pd.DataFrame(out, index=matrix.index, columns=matrix.columns)


def _unchanged(block: pd.DataFrame) -> pd.DataFrame:
    return block


_NORMALIZERS = {
    "quantify": {"none": _unchanged, "median": median_to_reference, "directlfq": directlfq_normalize},
    "differential": {"median": median_normalize, "quantile": quantile_normalize, "none": _unchanged},
}


def remove_batch_effect(matrix: pd.DataFrame, batches: pd.DataFrame, groups: pd.Series | None = None) -> pd.DataFrame:
    """limma's ``removeBatchEffect``: the matrix with the effects of the ``batches`` factors removed.

    Each protein is fitted (on its observed runs) with the ``groups`` design, whose effects are kept,
    plus each batch factor in sum-to-zero coding, whose fitted effects are subtracted; an effect that
    cannot be estimated counts as 0, as in limma. For plots and per-run scores only: tests take the
    factors as covariates of their design instead (``differential.covariates``).

    Parameters
    ----------
    matrix
        Proteins x runs, log2, NaN for missing values.
    batches
        One column per factor (e.g. batch, patient), indexed by run.
    groups
        Biological group of each run (e.g. condition), kept; ``None``: an intercept only.
    """
    from dvp_pipeline.stats import _fit_rows, design_matrix

    runs = list(matrix.columns)
    keep = (
        design_matrix(groups.loc[runs].astype(str))
        if groups is not None
        else pd.DataFrame({"intercept": 1.0}, index=runs)
    )
    coding = []
    for column in batches.columns:
        values = batches.loc[runs, column].astype(str)
        levels = sorted(values.unique())
        # contr.sum: level k -> unit vector k, the last level -> -1 in every column
        for level in levels[:-1]:
            coding.append((values == level).astype(float) - (values == levels[-1]).astype(float))
    if not coding:
        return matrix.copy()
    x_batch = np.column_stack([c.to_numpy() for c in coding])
    x = np.column_stack([keep.to_numpy(), x_batch])
    coef = _fit_rows(matrix.to_numpy(dtype=float), x)[0][:, keep.shape[1] :]
    return matrix - np.nan_to_num(coef) @ x_batch.T
