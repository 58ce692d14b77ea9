"""Protein quantification: search-engine output to a log2 protein x run matrix.

Sits between laser microdissection and statistics. :func:`read_diann` streams only the needed
columns of a DIA-NN main report and applies the q-value filters; :func:`maxlfq` is MaxLFQ as the R
package iq defines it (Pham et al. 2020, Bioinformatics 36:2611); :func:`quant_qc` summarises each run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from dvp_pipeline.errors import DVPError

DIANN_REQUIRED = ["Run", "Protein.Group", "Genes", "Precursor.Id", "Q.Value", "PG.Q.Value"]


def _format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    cols = _columns(path)
    if {"Run", "Protein.Group", "Precursor.Id"} <= set(cols):
        return "diann"
    raise DVPError(
        f"{path}: cannot tell the search engine from its columns ({', '.join(cols[:8])} ...); "
        "supported: DIA-NN main report (.parquet or .tsv)"
    )


def _columns(path: Path) -> list[str]:
    if not path.is_file():
        raise DVPError(f"{path}: search-engine report not found")
    try:
        if path.suffix == ".parquet":
            return pq.read_schema(path).names
        return pd.read_csv(path, sep="\t", nrows=0).columns.tolist()
    except Exception as err:  # pyarrow/pandas raise many types for damaged files
        raise DVPError(f"{path}: cannot read the report header ({err})") from err


def _read_columns(path: Path, columns: list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in _columns(path)]
    if missing:
        raise DVPError(f"{path}: missing column(s) {', '.join(missing)} expected in a DIA-NN main report")
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path, columns=columns).to_pandas()
        return pd.read_csv(path, sep="\t", usecols=columns)
    except Exception as err:
        raise DVPError(f"{path}: cannot read columns {', '.join(columns)} ({err})") from err


def report_runs(path: str | Path, *, fmt: str = "auto") -> set[str]:
    """The run names in a search-engine report, reading only its run column."""
    path = Path(path)
    _format(path, fmt)
    return set(_read_columns(path, ["Run"])["Run"].astype(str).unique())


def read_diann(
    path: str | Path, *, quantity: str = "Precursor.Normalised", precursor_q: float = 0.01, protein_q: float = 0.01
) -> pd.DataFrame:
    """Read a DIA-NN main report into the pipeline's precursor long table.

    Keeps rows with run-specific ``Q.Value <= precursor_q`` and ``PG.Q.Value <= protein_q``, drops
    decoys (``Decoy == 1`` when the column is there) and rows without a positive quantity.

    Returns
    -------
    DataFrame with columns run, protein, genes, precursor, intensity (linear), q_value, pg_q_value.
    """
    path = Path(path)
    if _format(path, "auto") != "diann":
        raise DVPError(f"{path}: not a DIA-NN report")
    cols = DIANN_REQUIRED + [quantity] + (["Decoy"] if "Decoy" in _columns(path) else [])
    raw = _read_columns(path, list(dict.fromkeys(cols)))
    intensity = pd.to_numeric(raw[quantity], errors="coerce")
    bad = raw[quantity].notna() & intensity.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DVPError(f"{path}: column {quantity}, row {row + 1}: {raw[quantity].iloc[row]!r} is not a number")
    if (intensity < 0).any():
        row = int(np.flatnonzero((intensity < 0).to_numpy())[0])
        raise DVPError(f"{path}: column {quantity}, row {row + 1}: negative intensity {intensity.iloc[row]}")
    keep = (raw["Q.Value"] <= precursor_q) & (raw["PG.Q.Value"] <= protein_q) & (intensity > 0)
    if "Decoy" in raw:
        keep &= raw["Decoy"].fillna(0) == 0
    table = pd.DataFrame(
        {
            "run": raw["Run"].astype(str),
            "protein": raw["Protein.Group"].astype(str),
            "genes": raw["Genes"].fillna("").astype(str),
            "precursor": raw["Precursor.Id"].astype(str),
            "intensity": intensity,
            "q_value": raw["Q.Value"],
            "pg_q_value": raw["PG.Q.Value"],
        }
    )[keep.to_numpy()]
    if table.empty:
        raise DVPError(
            f"{path}: no precursor passes the filters (Q.Value <= {precursor_q}, "
            f"PG.Q.Value <= {protein_q}, {quantity} > 0)"
        )
    return table.reset_index(drop=True)


def _maxlfq_protein(x: np.ndarray) -> np.ndarray:
    """MaxLFQ of one protein: ``x`` is ions x samples of log2 intensities with NaN for missing."""
    n = x.shape[1]
    if x.shape[0] == 1:
        return x[0].copy()
    seen = ~np.isnan(x)
    # Pairwise medians of ion-wise log2 ratios; NaN where two samples share no ion.
    with np.errstate(all="ignore"):
        diffs = x[:, None, :] - x[:, :, None]  # diffs[k, i, j] = x[k, j] - x[k, i]
    shared = (seen[:, None, :] & seen[:, :, None]).any(axis=0)
    ratio = np.full((n, n), np.nan)
    if shared.any():
        ii, jj = np.nonzero(shared)
        ratio[ii, jj] = np.nanmedian(diffs[:, ii, jj], axis=0)
    estimate = np.full(n, np.nan)
    for members in _components(shared):
        if len(members) == 1:
            col = x[:, members[0]]
            estimate[members[0]] = np.median(col[~np.isnan(col)]) if (~np.isnan(col)).any() else np.nan
            continue
        estimate[members] = _solve_component(x[:, members], ratio[np.ix_(members, members)])
    return estimate


def _components(shared: np.ndarray) -> list[np.ndarray]:
    """Connected groups of samples, two samples being connected when they share an ion."""
    n = shared.shape[0]
    label = np.full(n, -1)
    groups = []
    for start in range(n):
        if label[start] >= 0:
            continue
        label[start] = len(groups)
        stack, members = [start], [start]
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(shared[i] & (label < 0)):
                label[j] = len(groups)
                stack.append(j)
                members.append(j)
        groups.append(np.sort(np.array(members)))
    return groups


def _solve_component(x: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Least-squares fit of sample log2 abundances to pairwise median ratios, as iq's maxLFQ.do.

    Minimises sum over connected pairs (w_j - w_i - r_ij)^2 subject to mean(w) = mean of all observed
    values, solved through the same bordered normal equations iq builds.
    """
    n = x.shape[1]
    iu, ju = np.triu_indices(n, k=1)
    r = ratio[iu, ju]
    ok = ~np.isnan(r)
    iu, ju, r = iu[ok], ju[ok], r[ok]
    ata = np.zeros((n, n))
    np.add.at(ata, (iu, ju), -1.0)
    np.add.at(ata, (ju, iu), -1.0)
    np.add.at(ata, (iu, iu), 1.0)
    np.add.at(ata, (ju, ju), 1.0)
    atb = np.zeros(n)
    np.add.at(atb, iu, -r)
    np.add.at(atb, ju, r)
    system = np.zeros((n + 1, n + 1))
    system[:n, :n] = 2 * ata
    system[:n, n] = 1.0
    system[n, :n] = 1.0
    rhs = np.append(2 * atb, np.nanmean(x) * n)
    return np.linalg.lstsq(system, rhs, rcond=None)[0][:n]


def maxlfq(
    data: pd.DataFrame,
    *,
    protein: str = "protein",
    ion: str = "ion",
    sample: str = "sample",
    intensity: str = "intensity",
) -> pd.DataFrame:
    """MaxLFQ protein abundances from a long table of ion intensities.

    Parameters
    ----------
    data
        One row per protein, ion and sample with linear intensities. Rows whose intensity is NaN or
        not positive are ignored; several rows of the same ion and sample are summed.
    protein, ion, sample, intensity
        Column names.

    Returns
    -------
    Proteins x samples of log2 abundances (NaN where a protein was not seen), proteins sorted,
    samples in order of first appearance.

    Examples
    --------
    >>> long = pd.DataFrame({"protein": ["P"] * 4, "ion": ["a", "a", "b", "b"],
    ...                      "sample": ["s1", "s2", "s1", "s2"], "intensity": [4.0, 8.0, 16.0, 32.0]})
    >>> maxlfq(long).round(3).loc["P"].tolist()
    [3.0, 4.0]
    """
    for col in (protein, ion, sample, intensity):
        if col not in data:
            raise DVPError(f"maxlfq: input has no column '{col}' (columns: {', '.join(map(str, data.columns))})")
    values = pd.to_numeric(data[intensity], errors="coerce")
    table = data.loc[values.gt(0).to_numpy(), [protein, ion, sample]].assign(_v=values[values > 0])
    samples = pd.Index(pd.unique(data[sample]))
    if table.empty:
        return pd.DataFrame(columns=samples, dtype=float)
    summed = table.groupby([protein, ion, sample], sort=True, observed=True)["_v"].sum()
    wide = np.log2(summed.unstack(sample).reindex(columns=samples))
    proteins = wide.index.get_level_values(0)
    starts = np.flatnonzero(np.r_[True, proteins[1:] != proteins[:-1]])
    ends = np.r_[starts[1:], len(proteins)]
    matrix = wide.to_numpy()
    bounds = tqdm(
        zip(starts, ends, strict=True), total=len(starts), desc="MaxLFQ", unit=" proteins", disable=None, mininterval=2
    )  # shown on a terminal only, not in job logs
    out = np.vstack([_maxlfq_protein(matrix[s:e]) for s, e in bounds])
    return pd.DataFrame(out, index=pd.Index(proteins[starts], name=protein), columns=samples)


def quant_qc(precursors: pd.DataFrame, proteins: pd.DataFrame) -> pd.DataFrame:
    """Per-run identification and intensity summary.

    ``precursors`` is the filtered long table (run, precursor, ...), ``proteins`` the log2 protein x
    run matrix. Returns one row per run: precursors, proteins, missing_fraction, median_log2.
    """
    runs = proteins.columns
    counts = precursors.groupby("run")["precursor"].nunique().reindex(runs).fillna(0).astype(int)
    return pd.DataFrame(
        {
            "run": runs,
            "precursors": counts.to_numpy(),
            "proteins": proteins.notna().sum().to_numpy(),
            "missing_fraction": proteins.isna().mean().to_numpy().round(4),
            "median_log2": proteins.median().to_numpy().round(4),
        }
    )
