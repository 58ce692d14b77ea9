"""Protein quantification: the ion table of any search engine to a log2 protein x run matrix.

Sits between laser microdissection and statistics. The readers (:mod:`dvp_pipeline.readers`, one
module per format) turn search-engine output into one ion table; :func:`maxlfq` is MaxLFQ exactly as
the R package iq defines it (Pham et al. 2020, Bioinformatics 36:2611), vectorised over proteins;
:func:`quantify` picks MaxLFQ, directLFQ, top-N or sum and a normalisation; :func:`quant_qc`
summarises each run; :func:`quantify_cohort` is the whole stage for the runs of a cohort.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dvp_pipeline.errors import DVPError
from dvp_pipeline.normalize import normalize_within, run_normalizer
from dvp_pipeline.options import QuantifyOptions
from dvp_pipeline.readers import Filters, read_ions
from dvp_pipeline.readers import report_runs as _report_runs

__all__ = [
    "Filters",
    "Quantification",
    "quantify_cohort",
    "read_configured_ions",
    "config_runs",
    "directlfq",
    "maxlfq",
    "maxlfq_matrix",
    "normalize",
    "quant_qc",
    "quantify",
    "read_diann",
    "read_ions",
    "report_runs",
    "sum_ions",
    "top_n",
]

log = logging.getLogger(__name__)

METHODS = ["maxlfq", "directlfq", "topn", "sum"]

# Elements of the (proteins, pairs, ions) difference array built at once: ~16 MB per buffer keeps
# peak memory flat however many proteins and runs there are.
_CHUNK_ELEMENTS = 1 << 21
# Pairwise differences are reduced to medians in blocks this size, small enough to stay in cache.
_MEDIAN_ELEMENTS = 1 << 17


def report_runs(path: str | Path, *, fmt: str = "auto") -> set[str]:
    """The run names in a search-engine output, reading only its run column."""
    return _report_runs(path, fmt=fmt)


def read_diann(path: str | Path, *, filters: Filters | None = None) -> pd.DataFrame:
    """Read a DIA-NN main report into the ion table (see :mod:`dvp_pipeline.readers.diann`)."""
    from dvp_pipeline.readers import diann
    from dvp_pipeline.readers._table import columns

    if not diann.detect(set(columns(path))):
        raise DVPError(f"{path}: not a DIA-NN report (expected columns Run, Protein.Group, Precursor.Id)")
    return diann.read(Path(path), filters)


def _encode(data: pd.DataFrame, protein: str, ion: str, sample: str, intensity: str):
    """Ion rows x samples matrix of summed log2 intensities, with the protein of each row."""
    for col in (protein, ion, sample, intensity):
        if col not in data:
            raise DVPError(f"maxlfq: input has no column '{col}' (columns: {', '.join(map(str, data.columns))})")
    col = data[sample]
    if isinstance(col.dtype, pd.CategoricalDtype):  # fast path for the readers' categoricals
        samples = pd.Index(col.cat.categories[pd.unique(col.cat.codes[col.cat.codes >= 0])])
    else:
        samples = pd.Index(pd.unique(col))
    values = pd.to_numeric(data[intensity], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(values) & (values > 0)
    s_code = pd.Index(samples).get_indexer(data[sample])[ok]
    p_code, proteins = pd.factorize(data[protein][ok], sort=True)
    i_code = pd.factorize(data[ion][ok])[0]
    # Rows sorted by protein then ion: proteins are contiguous blocks of the matrix.
    n_ions = int(i_code.max(initial=0)) + 1
    key = p_code.astype(np.int64) * n_ions + i_code
    row, keys = pd.factorize(key, sort=True)
    n_s = len(samples)
    flat = row.astype(np.int64) * n_s + s_code
    summed = np.bincount(flat, weights=values[ok], minlength=len(keys) * n_s)
    with np.errstate(divide="ignore"):
        matrix = np.where(summed > 0, np.log2(summed), np.nan).reshape(len(keys), n_s)
    row_protein = (keys // n_ions).astype(np.int64)
    return matrix, row_protein, pd.Index(proteins, name=protein), samples


def maxlfq(
    data: pd.DataFrame,
    *,
    protein: str = "protein",
    ion: str = "ion",
    sample: str = "sample",
    intensity: str = "intensity",
    threads: int | None = None,
) -> pd.DataFrame:
    """MaxLFQ protein abundances from a long table of ion intensities, as iq computes them.

    Per protein, samples fall into groups connected by shared ions. A one-sample group gets the
    median of its ions; a larger group gets the least-squares fit to the median log2 ratios of its
    connected sample pairs, with the group's mean fixed to the mean of its observed log2 values. A
    protein with one ion returns that ion. Proteins are processed in vectorised batches.

    Parameters
    ----------
    data
        One row per protein, ion and sample with linear intensities. Rows whose intensity is NaN or
        not positive are ignored; several rows of the same ion and sample are summed.
    protein, ion, sample, intensity
        Column names.
    threads
        Threads for the protein batches (``None``: the cores available, at most 8). The result does
        not depend on it.

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
    matrix, row_protein, proteins, samples = _encode(data, protein, ion, sample, intensity)
    out = maxlfq_matrix(matrix, row_protein, len(proteins), threads=threads)
    return pd.DataFrame(out, index=proteins, columns=samples)


def maxlfq_matrix(
    matrix: np.ndarray, row_protein: np.ndarray, n_proteins: int, *, threads: int | None = None
) -> np.ndarray:
    """MaxLFQ on an ions x samples log2 matrix whose rows are grouped by ``row_protein`` (sorted).

    Returns proteins x samples. Proteins are batched by ion count so that the pairwise medians and
    the linear systems of a whole batch are single numpy calls; batches run on ``threads`` threads
    (numpy releases the GIL in them; ``None``: the cores this process may use, at most 8).
    """
    n_s = matrix.shape[1]
    out = np.full((n_proteins, n_s), np.nan)
    if matrix.shape[0] == 0:
        return out
    starts = np.searchsorted(row_protein, np.arange(n_proteins))
    counts = np.diff(np.r_[starts, len(row_protein)])
    single = np.flatnonzero(counts == 1)
    out[single] = matrix[starts[single]]
    multi = np.flatnonzero(counts > 1)
    if n_s == 1:
        for p in multi:  # one sample: a group of one, the median of the ions
            out[p, 0] = _nanmedian(matrix[starts[p] : starts[p] + counts[p], 0])
        return out
    iu, ju = np.triu_indices(n_s, k=1)
    order = multi[np.argsort(counts[multi], kind="stable")]
    chunks, pos = [], 0
    while pos < len(order):
        # Widen the batch's ion count to its largest member (padded with NaN, which medians ignore).
        chunk = order[pos : pos + max(1, _CHUNK_ELEMENTS // (len(iu) * counts[order[pos]]))]
        chunk = chunk[: max(1, _CHUNK_ELEMENTS // (len(iu) * counts[chunk[-1]]))]
        chunks.append(chunk)
        pos += len(chunk)

    def run(chunk: np.ndarray) -> None:
        k = counts[chunk[-1]]
        rows = starts[chunk][:, None] + np.arange(k)[None, :]
        valid = np.arange(k)[None, :] < counts[chunk][:, None]
        x = np.where(valid[:, :, None], matrix[np.minimum(rows, len(matrix) - 1)], np.nan)
        out[chunk] = _maxlfq_batch(x, iu, ju)

    threads = threads or min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    if threads <= 1 or len(chunks) == 1:
        for chunk in chunks:
            run(chunk)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(run, chunks))  # each chunk writes its own rows of out
    return out


def _nanmedian(v: np.ndarray) -> float:
    v = v[~np.isnan(v)]
    return float(np.median(v)) if len(v) else np.nan


def _median_last_axis(values: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN (NaN where none), as R's median(na.rm = TRUE).

    ``values`` is overwritten. Rows are short (one value per ion) and contiguous, where numpy's
    sort is fastest; missing values become +inf so that they sort last.
    """
    k = values.shape[-1]
    missing = np.isnan(values)
    n = k - missing.sum(axis=-1)
    if k == 2:  # the commonest case: the mean of what is there
        a, b = values[..., 0], values[..., 1]
        return np.where(np.isnan(a), b, np.where(np.isnan(b), a, (a + b) / 2))
    values[missing] = np.inf
    values.sort(axis=-1)
    lo = np.take_along_axis(values, np.maximum((n - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(values, np.maximum(n // 2, 0)[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, (lo + hi) / 2, np.nan)


def _maxlfq_batch(x: np.ndarray, iu: np.ndarray, ju: np.ndarray) -> np.ndarray:
    """MaxLFQ of a batch: ``x`` is proteins x ions x samples (log2, NaN missing)."""
    b, _, n = x.shape
    xt = np.ascontiguousarray(x.transpose(0, 2, 1))  # (b, samples, ions): a pair's ions contiguous
    ratio = np.empty((b, len(iu)))
    # Pairs in blocks that stay in the CPU cache (and bound memory for proteins with many ions).
    step = max(1, _MEDIAN_ELEMENTS // (xt.shape[2] * b))
    with np.errstate(invalid="ignore"):
        for s in range(0, len(iu), step):
            pairs = slice(s, s + step)
            ratio[:, pairs] = _median_last_axis(xt[:, ju[pairs], :] - xt[:, iu[pairs], :])
    linked = ~np.isnan(ratio)
    # Connected groups of samples, all proteins of the batch at once as one block-diagonal graph.
    pb, pk = np.nonzero(linked)
    offset = pb * n
    graph = coo_matrix((np.ones(len(pb)), (offset + iu[pk], offset + ju[pk])), shape=(b * n, b * n))
    _, label = connected_components(graph, directed=False)
    label = label.reshape(b, n)
    seen = ~np.isnan(x)
    col_sum = np.where(seen, x, 0.0).sum(axis=1)
    col_cnt = seen.sum(axis=1)
    size = np.bincount(label.ravel(), minlength=b * n)
    comp_mean = np.bincount(label.ravel(), weights=col_sum.ravel(), minlength=b * n)
    with np.errstate(invalid="ignore", divide="ignore"):
        comp_mean = comp_mean / np.bincount(label.ravel(), weights=col_cnt.ravel(), minlength=b * n)
    # Graph Laplacian and A'b of iq's normal equations.
    r = np.where(linked, ratio, 0.0)
    w = linked.astype(float)
    lap = np.zeros((b, n, n))
    lap[:, iu, ju] = -w
    lap[:, ju, iu] = -w
    lap[:, np.arange(n), np.arange(n)] = -lap.sum(axis=2)
    anti = np.zeros((b, n, n))
    anti[:, iu, ju] = r
    anti[:, ju, iu] = -r
    atb = anti.sum(axis=1)
    # iq solves [2L 1; 1' 0][w; l] = [2A'b; N m] per group; with l = 0 this is L w = A'b with
    # mean(w) = m, i.e. (L + J/N) w = A'b + m, which stays non-singular for every group at once.
    same = label[:, :, None] == label[:, None, :]
    system = lap + same / size[label][:, :, None]
    rhs = atb + comp_mean[label]
    alone = size[label] == 1
    if alone.any():  # one-sample groups: iq takes the median of the sample's ions
        pa, sa = np.nonzero(alone)
        rhs[pa, sa] = _median_last_axis(x[pa, :, sa].copy())
    missing = np.isnan(rhs)
    rhs[missing] = 0.0
    est = np.linalg.solve(system, rhs[..., None])[..., 0]
    est[missing | (col_cnt == 0)] = np.nan
    return est


def top_n(
    data: pd.DataFrame,
    *,
    n: int = 3,
    protein: str = "protein",
    ion: str = "ion",
    sample: str = "sample",
    intensity: str = "intensity",
) -> pd.DataFrame:
    """Top-N as iq's ``topN``: the mean log2 of a protein's ``n`` most intense ions.

    Ions are ranked per protein by their mean log2 intensity over the samples where they are seen,
    so the same ions are used in every sample; a sample where none of them is seen is NaN.
    """
    matrix, row_protein, proteins, samples = _encode(data, protein, ion, sample, intensity)
    with np.errstate(invalid="ignore"):
        score = np.nanmean(matrix, axis=1) if matrix.size else np.zeros(0)
    order = np.lexsort((-score, row_protein))
    starts = np.searchsorted(row_protein[order], row_protein[order])
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - starts
    keep = rank < n
    frame = pd.DataFrame(matrix[keep]).groupby(row_protein[keep]).mean()
    out = np.full((len(proteins), len(samples)), np.nan)
    out[frame.index.to_numpy()] = frame.to_numpy()
    return pd.DataFrame(out, index=proteins, columns=samples)


def sum_ions(
    data: pd.DataFrame,
    *,
    protein: str = "protein",
    ion: str = "ion",
    sample: str = "sample",
    intensity: str = "intensity",
) -> pd.DataFrame:
    """log2 of the summed intensity of a protein's ions in each sample."""
    matrix, row_protein, proteins, samples = _encode(data, protein, ion, sample, intensity)
    linear = np.where(np.isnan(matrix), 0.0, 2.0**matrix)
    total = np.zeros((len(proteins), len(samples)))
    np.add.at(total, row_protein, linear)
    with np.errstate(divide="ignore"):
        return pd.DataFrame(np.where(total > 0, np.log2(total), np.nan), index=proteins, columns=samples)


def directlfq(
    data: pd.DataFrame,
    *,
    protein: str = "protein",
    ion: str = "ion",
    sample: str = "sample",
    intensity: str = "intensity",
    normalize: bool = True,
    num_cores: int = 1,
) -> pd.DataFrame:
    """Protein abundances from the ``directlfq`` package (Ammar et al. 2023), log2.

    Needs the optional extra ``dvp-pipeline[directlfq]``. ``normalize`` runs directLFQ's own
    between-sample normalisation first.
    """
    try:
        import directlfq.config as dlconfig
        import directlfq.normalization as dlnorm
        import directlfq.protein_intensity_estimation as dlprot
    except ImportError as err:
        raise DVPError(
            "quantify.method: directlfq needs the directlfq package: pip install 'dvp-pipeline[directlfq]'"
        ) from err
    matrix, row_protein, proteins, samples = _encode(data, protein, ion, sample, intensity)
    dlconfig.set_global_protein_and_ion_id(protein_id="protein", quant_id="ion")
    dlconfig.set_log_processed_proteins(log_processed_proteins=False)
    dlconfig.set_compile_normalized_ion_table(compile_normalized_ion_table=False)
    dlconfig.check_wether_to_copy_numpy_arrays_derived_from_pandas()
    index = pd.MultiIndex.from_arrays(
        [proteins.astype(str)[row_protein], np.arange(len(row_protein)).astype(str)], names=["protein", "ion"]
    )
    ions = pd.DataFrame(matrix, index=index, columns=[str(s) for s in samples]).dropna(how="all")
    if normalize:
        ions = dlnorm.NormalizationManagerSamplesOnSelectedProteins(ions, num_samples_quadratic=50).complete_dataframe
    result, _ = dlprot.estimate_protein_intensities(ions, min_nonan=1, num_samples_quadratic=10, num_cores=num_cores)
    result = result.set_index("protein")
    with np.errstate(divide="ignore"):
        out = np.log2(result.replace(0, np.nan))
    out = out[[str(s) for s in samples]].set_axis(samples, axis=1)
    return out.reindex(proteins.astype(str)).set_axis(proteins, axis=0)


def normalize(matrix: pd.DataFrame, *, method: str = "median", groups: pd.Series | None = None) -> pd.DataFrame:
    """Shift each run (column) of a log2 protein matrix so that runs compare.

    Parameters
    ----------
    matrix
        Proteins x runs, log2.
    method
        ``none``; ``median``: each run's median log2 difference to the group's reference (the
        row-wise median of the group's runs) over the proteins it shares with it is removed;
        ``directlfq``: directLFQ's pairwise anchoring of runs (needs the ``directlfq`` package).
    groups
        Run -> group (e.g. cell type); runs are normalised within their group only. ``None``: all
        runs together.
    """
    normalizer = run_normalizer(method, section="quantify")
    if method == "none" or matrix.shape[1] < 2:
        return matrix
    return normalize_within(matrix, groups, normalizer)


def quantify(
    ions: pd.DataFrame,
    *,
    method: str = "maxlfq",
    top: int = 3,
    normalization: str = "none",
    groups: pd.Series | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Protein x run log2 matrix from the ion table (columns run, protein, precursor, intensity).

    ``method`` is one of :data:`METHODS`, ``normalization`` one of :func:`normalize`'s methods (applied
    within ``groups``, run -> group, or across all runs); ``threads`` is passed to :func:`maxlfq`.
    """
    cols = {"protein": "protein", "ion": "precursor", "sample": "run", "intensity": "intensity"}
    if method == "maxlfq":
        matrix = maxlfq(ions, threads=threads, **cols)
    elif method == "topn":
        matrix = top_n(ions, n=top, **cols)
    elif method == "sum":
        matrix = sum_ions(ions, **cols)
    elif method == "directlfq":
        matrix = directlfq(ions, normalize=False, **cols)
    else:
        raise DVPError(f"quantify.method: unknown method '{method}'; expected one of {', '.join(METHODS)}")
    return normalize(matrix, method=normalization, groups=groups)


def quant_qc(precursors: pd.DataFrame, proteins: pd.DataFrame, groups: pd.Series | None = None) -> pd.DataFrame:
    """Per-run identification and intensity summary.

    Parameters
    ----------
    precursors
        The filtered ion table (run, precursor, ...).
    proteins
        The log2 protein x run matrix.
    groups
        Run -> replicate group (e.g. cell type and condition). When given, ``median_cv`` is the
        median over proteins of the coefficient of variation (linear scale) between the runs of the
        run's group, over proteins quantified in at least two of them.

    Returns
    -------
    One row per run: precursors, proteins, missing_fraction, log2 quartiles (q25_log2,
    median_log2, q75_log2) and, with ``groups``, median_cv.
    """
    runs = proteins.columns
    counts = precursors.groupby("run", observed=True)["precursor"].nunique().reindex(runs).fillna(0).astype(int)
    qc = pd.DataFrame(
        {
            "run": runs,
            "precursors": counts.to_numpy(),
            "proteins": proteins.notna().sum().to_numpy(),
            "missing_fraction": proteins.isna().mean().to_numpy().round(4),
            "q25_log2": proteins.quantile(0.25).to_numpy().round(4),
            "median_log2": proteins.median().to_numpy().round(4),
            "q75_log2": proteins.quantile(0.75).to_numpy().round(4),
        }
    )
    if groups is not None:
        labels = groups.reindex(runs)
        cv = {}
        for _, members in labels.groupby(labels, sort=False):
            linear = 2.0 ** proteins[members.index]
            ok = linear.notna().sum(axis=1) >= 2
            per_protein = linear[ok].std(axis=1, ddof=1) / linear[ok].mean(axis=1)
            value = round(float(per_protein.median()), 4) if ok.any() else np.nan
            cv.update(dict.fromkeys(members.index, value))
        qc["median_cv"] = [cv.get(r, np.nan) for r in runs]
    return qc


def config_runs(options: QuantifyOptions, *, base: str | Path = ".") -> set[str]:
    """The runs the configured input holds: the report's, or the mzML files' names.

    Paths in ``options`` are relative to ``base``; missing mzML or identification files fail here.
    """
    from dvp_pipeline.readers.mzml import run_name

    base = Path(base)
    if options.format == "mzml":
        spectra, identifications = options.spectra or [], options.identifications or []
        for key, files in (("spectra", spectra), ("identifications", identifications)):
            for f in files:
                if not (base / f).is_file():
                    raise DVPError(f"quantify.{key}: file {base / f} not found")
        if len(spectra) != len(identifications):
            raise DVPError("quantify.spectra and quantify.identifications must list the same number of files")
        return {run_name(f) for f in spectra}
    return report_runs(base / options.report, fmt=options.format)


def read_configured_ions(options: QuantifyOptions) -> pd.DataFrame:
    """The ion table of the configured input (a search-engine report, or mzML + identifications), filtered."""
    if options.format == "mzml":
        from dvp_pipeline.readers.mzml import MS1Settings, quantify_runs

        m = options.mzml
        settings = MS1Settings(
            fdr=m.fdr,
            score=m.score,
            higher_is_better=m.higher_is_better,
            decoy_pattern=options.decoy_pattern,
            contaminant_pattern=options.contaminant_pattern,
            ppm=m.ppm,
            rt_window=m.rt_window,
            isotopes=m.isotopes,
        )
        return quantify_runs(options.spectra, options.identifications, settings)
    return read_ions(options.report, fmt=options.format, filters=Filters.from_options(options))


@dataclass
class Quantification:
    """The quantify stage's output.

    ``precursors``: the filtered ion table; ``proteins``: protein, genes, then one log2 column per run
    (NaN = not quantified); ``qc``: one row per run (identifications, missing values, intensity
    quartiles, CV within its cell type and condition).
    """

    precursors: pd.DataFrame
    proteins: pd.DataFrame
    qc: pd.DataFrame


def quantify_cohort(
    samples: pd.DataFrame, runs: pd.DataFrame, options: QuantifyOptions, *, threads: int = 1
) -> Quantification:
    """Quantify the runs of the runs sheet (in its order): the library function behind ``dvp quantify``."""
    precursors = read_configured_ions(options)
    # A protein-level input (DIA-NN's pg_matrix, MaxQuant's proteinGroups) holds the engine's own protein
    # quantities, one "ion" per protein: they are kept as they are.
    quantified = bool(precursors.attrs.get("quantified"))
    wanted = list(runs["run"])
    precursors = precursors[precursors["run"].isin(wanted)]
    present = set(precursors["run"].astype(str))
    absent = [r for r in wanted if r not in present]
    if absent:
        raise DVPError(f"{options.source}: no precursor passes the filters in run(s) {', '.join(absent)}")
    n_prec = precursors.groupby("protein", observed=True)["precursor"].nunique()
    keep = n_prec.index[n_prec >= (1 if quantified else options.min_precursors)]
    precursors = precursors[precursors["protein"].isin(keep)]
    if precursors.empty:
        raise DVPError(f"no protein has {options.min_precursors} or more precursors (quantify.min_precursors)")
    log.info(
        "%d precursors of %d protein groups in %d runs pass the filters",
        precursors["precursor"].nunique(),
        len(keep),
        len(wanted),
    )
    meta = runs.merge(samples[["sample", "condition"]], on="sample", how="left").set_index("run")
    within = meta["cell_type"] if options.normalize_within == "cell_type" else None
    if quantified:
        log.info("%s holds protein quantities: quantify.method %s is not applied", options.source, options.method)
    proteins = quantify(
        precursors,
        method="sum" if quantified else options.method,  # the sum of a protein's one value is that value
        top=options.top_n,
        normalization=options.normalize,
        groups=within,
        threads=threads,
    )
    proteins = proteins.reindex(columns=wanted)
    proteins.index = proteins.index.astype(str)
    genes = precursors.drop_duplicates("protein").set_index("protein")["genes"].astype(str)
    genes.index = genes.index.astype(str)
    table = proteins.copy()
    table.insert(0, "genes", genes.reindex(proteins.index).to_numpy())
    replicate = meta["cell_type"].astype(str) + " / " + meta["condition"].astype(str)
    qc = quant_qc(precursors, proteins, groups=replicate).merge(meta[["sample", "cell_type"]].reset_index(), on="run")
    first = ["run", "sample", "cell_type"]
    qc = qc[first + [c for c in qc.columns if c not in first]]
    # Plain strings in the Parquet file that later stages and users read.
    precursors = precursors.astype({c: str for c in ("run", "protein", "genes", "precursor")})
    return Quantification(
        precursors=precursors.reset_index(drop=True), proteins=table.reset_index(names="protein"), qc=qc
    )
