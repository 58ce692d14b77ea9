"""A simulated DIA-NN report for the demo cohort, with a planted JAK/STAT and interferon signal.

Part of :mod:`dvp_pipeline.simulate`: :func:`simulate_proteomics` draws one DIA-NN 2.x main report
(one row per precursor and run) for every sample x cell type run, and the protein truth that the
quantification, statistics and pathway tests check the pipeline against; :func:`write_report` saves
the report as Parquet. Protein groups carry real human gene symbols read from the shipped gene-set
collections (:func:`read_gmt_symbols`); the members of :data:`PLANTED_SETS` and every one of
:data:`CORE_GENES` may be up in TEN, the :data:`MARKER_GENES` give each cell type its profile.

:func:`simulate_proteomics` runs as a chain of steps sharing one generator (protein groups, protein
truth, precursors, run levels, detection, scores, quantities); each draws in a fixed order, so a seed
gives the same report on every machine.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.sparse.csgraph import connected_components

from dvp_pipeline.errors import DVPError
from dvp_pipeline.genesets import parse_gmt
from dvp_pipeline.io import atomic_output
from dvp_pipeline.simulate._constants import CELL_TYPES, CONDITIONS
from dvp_pipeline.simulate._peptides import random_precursors

__all__ = [
    "CORE_GENES",
    "MARKER_GENES",
    "PLANTED_SETS",
    "Proteomics",
    "read_gmt_symbols",
    "simulate_proteomics",
    "write_report",
]

#: Gene sets whose members are up in TEN (a random ``planted_fraction`` of them).
PLANTED_SETS = (
    "HALLMARK_IL6_JAK_STAT3_SIGNALING",
    "HALLMARK_INTERFERON_GAMMA_RESPONSE",
    "HALLMARK_INTERFERON_ALPHA_RESPONSE",
)
# Always planted, whatever the draw: the proteins a reader of the TEN paper looks for first.
CORE_GENES = ("STAT1", "STAT3", "JAK1", "JAK2", "IRF1", "GBP1", "MX1", "ISG15", "CXCL10", "HLA-A", "HLA-B", "HLA-C")
# Cell-type markers get a strong cell-type-specific baseline, so the runs look like their cell type.
MARKER_GENES = {
    "keratinocyte": (
        "KRT14",
        "KRT5",
        "KRT1",
        "KRT10",
        "KRT6A",
        "KRT16",
        "KRT17",
        "DSP",
        "JUP",
        "PKP1",
        "DSG1",
        "DSG3",
        "DSC3",
        "SFN",
        "PERP",
        "EVPL",
        "PPL",
    ),
    "cd8_t_cell": (
        "CD8A",
        "CD8B",
        "CD3E",
        "CD3D",
        "CD3G",
        "CD2",
        "CD247",
        "GZMB",
        "GZMA",
        "GZMK",
        "PRF1",
        "LCK",
        "ZAP70",
        "CCL5",
    ),
    "macrophage": (
        "CD163",
        "CD68",
        "LYZ",
        "CD14",
        "MRC1",
        "MSR1",
        "CTSS",
        "FCGR1A",
        "C1QA",
        "C1QB",
        "C1QC",
        "APOE",
        "CSF1R",
        "TYROBP",
        "FCER1G",
    ),
}

_GENESET_DIR = Path(__file__).parent.parent / "data" / "genesets"


class Proteomics(NamedTuple):
    """A simulated DIA-NN main ``report`` (one row per precursor and run), the ``proteins`` truth
    (one row per protein group) and the ``parameters`` that made them."""

    report: pd.DataFrame
    proteins: pd.DataFrame
    parameters: dict


# ---------------------------------------------------------------------------------------------------
# Gene symbols
# ---------------------------------------------------------------------------------------------------

_SYMBOL = re.compile(r"[A-Z][A-Z0-9]*(-[A-Z0-9]+)*")
# RNA genes and Excel-mangled legacy names that a proteomics search never reports.
_NOT_PROTEIN = re.compile(r"(MIR|LINC|LOC|SNOR|SNHG|SCARNA|RNU|RNY|RN7|MARCH|SEPT)\d")


def read_gmt_symbols(directory: str | os.PathLike = _GENESET_DIR) -> dict[str, list[str]]:
    """The gene sets of every ``*.gmt`` file in ``directory``, keeping only protein-coding-like HGNC
    symbols (no placeholders such as AC005840.1, no RNA genes, no lower-case viral names).

    Files are parsed by :func:`dvp_pipeline.genesets.parse_gmt` (in name order; a set defined again
    in a later file replaces the earlier one). Symbols must be upper case as written: lower-case
    spellings are viral, bacterial or legacy names, not human proteins.
    """
    files = sorted(Path(directory).glob("*.gmt"))
    if not files:
        raise DVPError(f"{directory}: no .gmt gene-set files found")
    sets: dict[str, list[str]] = {}
    for path in files:
        # case matters here: lower-case spellings (HIV tat, legacy C12orf66) are no human proteins
        parsed = parse_gmt(path.read_text(encoding="utf-8"), source=str(path), keep_case=True)
        for name, genes in parsed.items():
            sets[name] = [g for g in genes if _SYMBOL.fullmatch(g) and not _NOT_PROTEIN.match(g)]
    return sets


# ---------------------------------------------------------------------------------------------------
# Simulation steps, in the order simulate_proteomics calls them (and draws their random numbers)
# ---------------------------------------------------------------------------------------------------


def _check_inputs(samples: pd.DataFrame, planted_fraction: float, log2fc: tuple[float, float]) -> None:
    """Raise :class:`DVPError` for a sample sheet or options that :func:`simulate_proteomics` cannot use."""
    for col in ("sample", "condition"):
        if col not in samples:
            raise DVPError(f"samples table has no column {col!r}; expected sample and condition")
    unknown = sorted(set(samples["condition"]) - set(CONDITIONS))
    if unknown:
        raise DVPError(f"samples table: condition(s) {', '.join(map(str, unknown))} unknown; expected TEN or MPR")
    lo, hi = log2fc
    if not 0 <= planted_fraction <= 1 or not 0 <= lo <= hi:
        raise DVPError(
            f"planted_fraction must be in [0, 1] and log2fc a (low, high) range with "
            f"0 <= low <= high; got {planted_fraction} and {log2fc}"
        )


def _protein_groups(
    rng: np.random.Generator, sets: Mapping[str, Sequence[str]], n_proteins: int, planted_fraction: float
) -> tuple[list[list[str]], np.ndarray]:
    """Gene symbols of each protein group (in random order) and which groups are planted.

    Every member of the planted sets, the core genes and the markers are in; random symbols of the
    other sets fill up to ``n_proteins``; about 1.5 % of the null groups get a second gene.
    """
    members = list(dict.fromkeys(g for name in PLANTED_SETS for g in sets[name]))
    known = {g for genes in sets.values() for g in genes}
    markers = [g for kind in CELL_TYPES for g in MARKER_GENES[kind] if g in known]
    required = list(dict.fromkeys([*CORE_GENES, *members, *markers]))
    if n_proteins < len(required) + 20:
        raise DVPError(
            f"n_proteins must be at least {len(required) + 20} (the planted sets and markers "
            f"alone need {len(required)}), got {n_proteins}"
        )
    pool = sorted(known - set(required))
    n_fill, n_multi = n_proteins - len(required), int(round(0.015 * n_proteins))
    extra = rng.choice(pool, size=n_fill + n_multi, replace=False).tolist()
    groups = [[g] for g in required + extra[:n_fill]]
    for i, partner in zip(
        rng.choice(np.arange(len(required), n_proteins), size=n_multi, replace=False), extra[n_fill:], strict=True
    ):
        groups[i].append(partner)
    groups = [groups[i] for i in rng.permutation(n_proteins)]
    lead = np.array([g[0] for g in groups])
    responds = rng.random(n_proteins) < planted_fraction
    planted = np.isin(lead, CORE_GENES) | (np.isin(lead, members) & responds)
    return groups, planted


class _ProteinTruth(NamedTuple):
    """Per protein: the planted effect and the baseline, on the log2 scale."""

    effect: dict[str, np.ndarray]  # TEN over MPR per cell type (0 where not planted)
    mu: np.ndarray  # abundance
    delta: dict[str, np.ndarray]  # cell-type profile
    sd: np.ndarray  # biological sd between samples


def _protein_truth(
    rng: np.random.Generator, lead: np.ndarray, planted: np.ndarray, log2fc: tuple[float, float], biological_sd: float
) -> _ProteinTruth:
    n = len(lead)
    lo, hi = log2fc
    effect = {c: np.where(planted, rng.uniform(lo, hi, n), 0.0) for c in CELL_TYPES}
    mu = rng.normal(0, 2.3, n)
    delta = {c: rng.normal(0, 0.8, n) for c in CELL_TYPES}
    for c in CELL_TYPES:
        own = np.isin(lead, MARKER_GENES[c])
        mu[own] = np.maximum(mu[own], rng.normal(1.5, 1.0, own.sum()))  # markers are abundant
        for other in CELL_TYPES:
            delta[other][own] += 5.0 if other == c else -2.0
    sd = biological_sd * np.exp(rng.normal(0, 0.3, n))
    return _ProteinTruth(effect=effect, mu=mu, delta=delta, sd=sd)


def _run_sheet(samples: pd.DataFrame, cells_per_run: Mapping[str, int] | None) -> pd.DataFrame:
    """One row per sample x cell type: sample, condition, cell_type, run and cells pooled."""
    runs = pd.DataFrame(
        [(s, cond, c) for s, cond in zip(samples["sample"], samples["condition"], strict=True) for c in CELL_TYPES],
        columns=["sample", "condition", "cell_type"],
    )
    runs["run"] = runs["sample"] + "_" + runs["cell_type"]
    default_cells = {"keratinocyte": 300, "cd8_t_cell": 200, "macrophage": 150}
    cells_per_run = dict(cells_per_run or {})
    runs["cells"] = [
        max(1, int(cells_per_run.get(r, default_cells[c]))) for r, c in zip(runs["run"], runs["cell_type"], strict=True)
    ]
    return runs


def _run_levels(
    rng: np.random.Generator, truth: _ProteinTruth, samples: pd.DataFrame, runs: pd.DataFrame
) -> np.ndarray:
    """log2 level of every protein in every run (proteins x runs): baseline, cell-type profile,
    planted effect in TEN, a patient effect shared by a sample's runs and biological noise."""
    n = len(truth.mu)
    patient = {s: rng.normal(0, 0.1, n) for s in samples["sample"]}
    return np.column_stack(
        [
            truth.mu
            + truth.delta[r.cell_type]
            + truth.effect[r.cell_type] * (r.condition == "TEN")
            + patient[r.sample]
            + rng.normal(0, 1, n) * truth.sd
            for r in runs.itertuples()
        ]
    )


class _Rows(NamedTuple):
    """The report's rows (detected or spurious precursor x run pairs) and what was observed."""

    precursor: np.ndarray  # precursor index of each row
    run: np.ndarray  # run index of each row
    spurious: np.ndarray  # bool, per row: a false identification
    observed: np.ndarray  # log2 quantity, precursors x runs
    limit: np.ndarray  # detection limit of each run, log2 quantity


def _detect(rng: np.random.Generator, expected: np.ndarray) -> _Rows:
    """Measurement of ``expected`` (precursors x runs, log2): noise, detection missing not at random
    (plus 2 % at random) and about 2.5 % spurious low-level rows."""
    n_runs = expected.shape[1]
    limit = 15.8 + rng.normal(0, 0.15, n_runs)
    noise_sd = 0.12 + 0.35 / (1 + np.exp(expected - limit - 1.5))
    observed = expected + rng.normal(0, 1, expected.shape) * noise_sd
    detected = rng.random(expected.shape) < 1 / (1 + np.exp(-(expected - limit) / 0.5))
    detected &= rng.random(expected.shape) >= 0.02
    undetected = np.flatnonzero(~detected.ravel())
    spurious = np.zeros(expected.size, bool)
    n_spurious = min(len(undetected), int(0.025 * detected.sum()))
    spurious[rng.choice(undetected, size=n_spurious, replace=False)] = True
    spurious = spurious.reshape(expected.shape)
    observed = np.where(spurious, limit - 0.5 + rng.normal(0, 1.0, expected.shape), observed)
    pi, ri = np.nonzero(detected | spurious)
    return _Rows(precursor=pi, run=ri, spurious=spurious[pi, ri], observed=observed, limit=limit)


def _precursor_scores(rng: np.random.Generator, rows: _Rows) -> tuple[np.ndarray, np.ndarray]:
    """Q.Value and PEP per row: q-values rise towards the detection limit; spurious and borderline
    rows fail 0.01."""
    pi, ri, fake = rows.precursor, rows.run, rows.spurious
    n_rows = len(pi)
    margin = rows.observed[pi, ri] - rows.limit[ri]
    q = np.minimum(10.0 ** (-4.3 + 1.5 / (1 + np.exp(margin - 1.0)) + rng.normal(0, 0.4, n_rows)), 0.0095)
    borderline = ~fake & (margin < 1.0) & (rng.random(n_rows) < 0.02)
    q[borderline] = rng.uniform(0.0101, 0.03, borderline.sum())
    q[fake] = rng.uniform(0.0101, 0.06, fake.sum())
    pep = _round_sig(np.clip(q * np.exp(rng.normal(1.5, 0.6, n_rows)), 0, 1))
    return _round_sig(q), pep


def _protein_group_q(rng: np.random.Generator, rows: _Rows, prow: np.ndarray, n_runs: int) -> np.ndarray:
    """PG.Q.Value per row. Protein groups seen in a run only through spurious rows, or (4 %) through
    one real precursor, fail the 1 % protein FDR."""
    _, pg_index = np.unique(prow * n_runs + rows.run, return_inverse=True)
    real = np.bincount(pg_index, weights=~rows.spurious)
    pg_q = np.minimum(10.0 ** rng.normal(-3.8, 0.5, len(real)) / np.sqrt(np.maximum(real, 1)), 0.009)
    weak = (real == 0) | ((real == 1) & (rng.random(len(real)) < 0.04))
    pg_q[weak] = rng.uniform(0.0105, 0.08, weak.sum())
    return _round_sig(pg_q)[pg_index]


class _Quantities(NamedTuple):
    """Per row, except ``factor`` (per run)."""

    quantity: np.ndarray  # Precursor.Quantity
    factor: np.ndarray  # Normalisation.Factor of each run
    normalised: np.ndarray  # Precursor.Normalised
    ms1: np.ndarray  # Ms1.Area
    rt: np.ndarray  # RT, minutes


def _quantities(rng: np.random.Generator, rows: _Rows, load: np.ndarray, irt: np.ndarray) -> _Quantities:
    """Quantities, normalisation and retention times; DIA-NN's normalisation factor undoes the
    loading (with a small error)."""
    pi, ri = rows.precursor, rows.run
    n_rows, n_runs = len(pi), len(load)
    quantity = 2.0 ** rows.observed[pi, ri]
    factor = 2.0 ** (-(load - np.median(load)) + rng.normal(0, 0.03, n_runs))
    normalised = quantity * factor[ri]
    ms1 = quantity * 2.0 ** rng.normal(0.8, 0.5, n_rows)
    ms1[rng.random(n_rows) < 0.03] = 0.0  # no usable MS1 signal
    rt = irt[pi] + rng.normal(0, 0.15, n_runs)[ri] + rng.normal(0, 0.04, n_rows)
    return _Quantities(quantity=quantity, factor=factor, normalised=normalised, ms1=ms1, rt=rt)


def _round_sig(values: np.ndarray, digits: int = 3) -> np.ndarray:
    # Scores need no more digits than this, and repeated values keep the Parquet file small.
    values = np.asarray(values, dtype=float)
    scale = 10.0 ** (np.floor(np.log10(np.where(values > 0, values, 1.0))) - digits + 1)
    return np.round(values / scale) * scale


def _coarsen(values: np.ndarray, bits: int = 12) -> np.ndarray:
    """float32 values rounded to ``bits`` mantissa bits (relative precision 1e-4, far below the
    measurement noise), which halves the size of the quantity columns in Parquet."""
    values = np.asarray(values, dtype=np.float32)
    drop = np.uint32(23 - bits)
    raw = values.view(np.uint32)
    rounded = (((raw + (np.uint32(1) << (drop - np.uint32(1)))) >> drop) << drop).view(np.float32)
    return np.where(np.isfinite(values), rounded, values)


# Kept independent of dvp_pipeline.quant.maxlfq on purpose: this fills the report's PG.MaxLFQ column,
# which stands in for DIA-NN's own output, and the tests compare our MaxLFQ against such reports, so
# the code under test must not compute it. It also differs by design: like DIA-NN it scales each
# connected group of runs to its summed intensity, where quant.maxlfq (iq) uses the mean of log2 values.
def _maxlfq(x: np.ndarray) -> np.ndarray:
    """MaxLFQ of one protein (precursors x runs, log2, NaN missing): median pairwise log-ratios,
    least squares per connected group of runs, each group scaled to its summed intensity."""
    seen = ~np.isnan(x)
    out = np.full(x.shape[1], np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pairs: runs that share no precursor
        ratio = np.nanmedian(x[:, :, None] - x[:, None, :], axis=0)  # ratio[i, j] ~ r_i - r_j
        totals = np.log2(np.nansum(np.where(seen, 2.0**x, 0.0), axis=0))
    linked = ~np.isnan(ratio)
    np.fill_diagonal(linked, False)
    _, component = connected_components(linked, directed=False)
    for c in np.unique(component):
        runs = np.flatnonzero((component == c) & seen.any(0))
        if len(runs) <= 1:
            out[runs] = totals[runs]
            continue
        link = linked[np.ix_(runs, runs)]
        # Normal equations of sum over linked pairs (r_i - r_j - ratio_ij)^2, plus sum(r) = 0.
        a = np.vstack([np.diag(link.sum(1)) - link, np.ones(len(runs))])
        b = np.append(np.where(link, ratio[np.ix_(runs, runs)], 0.0).sum(1), 0.0)
        solution = np.linalg.lstsq(a, b, rcond=None)[0]
        out[runs] = solution - solution.mean() + totals[runs].mean()
    return out


def _maxlfq_rows(
    rows: _Rows, q: np.ndarray, normalised: np.ndarray, n_precursors: np.ndarray, prow: np.ndarray
) -> np.ndarray:
    """PG.MaxLFQ per row (linear): MaxLFQ over each protein's precursors passing the run-wise FDR, as
    DIA-NN computes it."""
    pi, ri = rows.precursor, rows.run
    usable = q <= 0.01
    x = np.full(rows.observed.shape, np.nan)
    x[pi[usable], ri[usable]] = np.log2(normalised[usable])
    starts = np.concatenate([[0], np.cumsum(n_precursors)])
    lfq = np.full((len(n_precursors), x.shape[1]), np.nan)
    for p in range(len(n_precursors)):
        block = x[starts[p] : starts[p + 1]]
        if not np.isnan(block).all():
            lfq[p] = _maxlfq(block)
    return 2.0 ** lfq[prow, ri]


def _group_names(groups: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per protein group: Protein.Group (``DVP00001``-style ids, one per protein), Genes,
    Protein.Names and whether it holds a single protein (proteotypic)."""
    group_id, next_id = [], 1
    for genes in groups:
        group_id.append(";".join(f"DVP{next_id + j:05d}" for j in range(len(genes))))
        next_id += len(genes)
    gene_names = np.array([";".join(g) for g in groups])
    protein_names = np.array([";".join(f"{g}_HUMAN" for g in genes) for genes in groups])
    single = np.array([len(g) == 1 for g in groups])
    return np.array(group_id), gene_names, protein_names, single


def _report_frame(
    rows: _Rows,
    prow: np.ndarray,
    *,
    groups: Sequence[Sequence[str]],
    runs: pd.DataFrame,
    library: pd.DataFrame,
    scores: tuple[np.ndarray, np.ndarray, np.ndarray],
    quantities: _Quantities,
    lfq: np.ndarray,
) -> pd.DataFrame:
    """The DIA-NN main report, sorted by run, protein group and precursor."""
    pi, ri = rows.precursor, rows.run
    q, pep, pg_q = scores
    group_id, gene_names, protein_names, single = _group_names(groups)
    global_q = pd.Series(q).groupby(pi).transform("min").to_numpy()
    global_pg = pd.Series(pg_q).groupby(prow).transform("min").to_numpy()

    def f32(a: np.ndarray) -> np.ndarray:  # DIA-NN writes single precision
        return np.asarray(a, dtype=np.float32)

    report = pd.DataFrame(
        {
            "Run.Index": ri.astype(np.int64),
            "Run": runs["run"].to_numpy()[ri],
            "Channel": "",
            **{c: library[c].to_numpy()[pi] for c in ("Precursor.Id", "Modified.Sequence", "Stripped.Sequence")},
            "Precursor.Charge": library["Precursor.Charge"].to_numpy()[pi].astype(np.int64),
            "Precursor.Mz": f32(library["Precursor.Mz"].to_numpy()[pi]),
            "Decoy": np.zeros(len(pi), dtype=np.int64),
            "Proteotypic": single[prow].astype(np.int64),
            "Protein.Group": group_id[prow],
            "Protein.Ids": group_id[prow],
            "Protein.Names": protein_names[prow],
            "Genes": gene_names[prow],
            "RT": f32(np.round(quantities.rt, 2)),
            "Q.Value": f32(q),
            "PEP": f32(pep),
            "Global.Q.Value": f32(global_q),
            "Lib.Q.Value": f32(global_q),
            "PG.Q.Value": f32(pg_q),
            "Global.PG.Q.Value": f32(global_pg),
            "Lib.PG.Q.Value": f32(global_pg),
            "GG.Q.Value": f32(pg_q),
            "Precursor.Quantity": _coarsen(quantities.quantity),
            "Precursor.Normalised": _coarsen(quantities.normalised),
            "Ms1.Area": _coarsen(quantities.ms1),
            "Normalisation.Factor": f32(quantities.factor[ri]),
            "PG.MaxLFQ": _coarsen(lfq),
            "Genes.MaxLFQ": _coarsen(lfq),
        }
    )
    return report.sort_values(["Run.Index", "Protein.Group", "Precursor.Id"], kind="stable").reset_index(drop=True)


def _protein_table(
    groups: Sequence[Sequence[str]], planted: np.ndarray, truth: _ProteinTruth, n_precursors: np.ndarray
) -> pd.DataFrame:
    """The protein truth: protein, genes, planted, log2fc_<cell type>, n_precursors (sorted by protein)."""
    group_id, gene_names, _, _ = _group_names(groups)
    proteins = pd.DataFrame(
        {
            "protein": group_id,
            "genes": gene_names,
            "planted": planted,
            **{f"log2fc_{c}": truth.effect[c] for c in CELL_TYPES},
            "n_precursors": n_precursors,
        }
    )
    return proteins.sort_values("protein").reset_index(drop=True)


def simulate_proteomics(
    samples: pd.DataFrame,
    *,
    seed: int | np.random.Generator = 0,
    n_proteins: int = 3000,
    cells_per_run: Mapping[str, int] | None = None,
    planted_fraction: float = 0.5,
    log2fc: tuple[float, float] = (1.0, 2.0),
    biological_sd: float = 0.25,
    gene_sets: Mapping[str, Sequence[str]] | None = None,
) -> Proteomics:
    """Simulate a DIA-NN 2.x main report for every sample x cell type run, with a planted signal.

    On the log2 scale, precursor k of protein p in the run r of sample s and cell type c has
    ``17 + mu_p + delta_pc + beta_pc [s is TEN] + patient_ps + bio_psc + rho_k + load_r + noise``:
    protein abundance ``mu`` (sd 2.3, about 5 orders of magnitude), a cell-type profile ``delta`` (sd
    0.8; +5 for the type's own markers, -2 for other types' markers), the planted effect ``beta``
    (uniform in ``log2fc``, per protein and cell type; 0 for every other protein), a patient effect
    shared by a sample's runs (sd 0.1), biological noise (sd ``biological_sd`` times a per-protein
    factor), a precursor response factor ``rho`` (sd 1), the run's loading (log2 of its pooled cells /
    300, plus sd 0.25) and technical noise growing at low intensity. A precursor is reported (has a
    row) with a probability that falls steeply below the run's detection limit, less 2 % at random.
    About 2.5 % of rows are spurious low-level identifications (precursor q-values 0.01-0.06,
    quantities unrelated to the truth), some borderline rows and protein groups have q-values just
    above 0.01: a q-value filter must remove them.

    Parameters
    ----------
    samples
        Sample sheet with columns sample and condition (TEN or MPR), e.g. :func:`~dvp_pipeline.simulate.demo_samples`.
    seed
        Seed or generator.
    n_proteins
        Number of protein groups (about 1.5 % hold two proteins).
    cells_per_run
        Cells pooled per run (``{sample}_{cell_type}``); sets each run's loading. Default: 300
        keratinocytes, 200 CD8 T cells, 150 macrophages.
    planted_fraction
        Fraction of the members of :data:`PLANTED_SETS` that respond (all :data:`CORE_GENES` do).
    log2fc
        Range of the planted log2 fold changes, TEN over MPR.
    biological_sd
        Typical sd of a protein between samples (log2).
    gene_sets
        Gene sets to draw symbols from; default :func:`read_gmt_symbols` (Hallmark and Reactome).

    Returns
    -------
    :class:`Proteomics`: ``report`` with DIA-NN's columns (Run.Index, Run, Channel, Precursor.Id,
    Modified.Sequence, Stripped.Sequence, Precursor.Charge, Precursor.Mz, Decoy, Proteotypic,
    Protein.Group, Protein.Ids, Protein.Names, Genes, RT, Q.Value, PEP, Global.Q.Value, Lib.Q.Value,
    PG.Q.Value, Global.PG.Q.Value, Lib.PG.Q.Value, GG.Q.Value, Precursor.Quantity,
    Precursor.Normalised, Ms1.Area, Normalisation.Factor, PG.MaxLFQ, Genes.MaxLFQ); ``proteins``
    (protein, genes, planted, log2fc_<cell type>, n_precursors); ``parameters`` (JSON-ready).

    Examples
    --------
    >>> from dvp_pipeline.simulate import demo_samples
    >>> sim = simulate_proteomics(demo_samples(), seed=0)
    >>> sim.report["Run"].nunique(), int(sim.proteins["planted"].sum()) > 100
    (18, True)
    """
    _check_inputs(samples, planted_fraction, log2fc)
    rng = np.random.default_rng(seed)
    sets = dict(gene_sets) if gene_sets is not None else read_gmt_symbols()
    lacking = [name for name in PLANTED_SETS if name not in sets]
    if lacking:
        raise DVPError(f"gene sets lack {', '.join(lacking)}, the sets the demo plants its signal in")

    groups, planted = _protein_groups(rng, sets, n_proteins, planted_fraction)
    lead = np.array([g[0] for g in groups])
    truth = _protein_truth(rng, lead, planted, log2fc, biological_sd)
    n_precursors = 1 + rng.binomial(9, 0.65 / (1 + np.exp(-(truth.mu - 0.5) / 1.5)))  # abundant: more peptides
    protein_of = np.repeat(np.arange(n_proteins), n_precursors)
    library = random_precursors(rng, len(protein_of))
    rho = rng.normal(0, 1.0, len(protein_of))
    runs = _run_sheet(samples, cells_per_run)
    load = np.log2(runs["cells"].to_numpy() / 300) + rng.normal(0, 0.25, len(runs))
    level = _run_levels(rng, truth, samples, runs)

    rows = _detect(rng, 17.0 + level[protein_of] + rho[:, None] + load[None, :])
    prow = protein_of[rows.precursor]
    q, pep = _precursor_scores(rng, rows)
    pg_q = _protein_group_q(rng, rows, prow, len(runs))
    quantities = _quantities(rng, rows, load, library["iRT"].to_numpy())
    lfq = _maxlfq_rows(rows, q, quantities.normalised, n_precursors, prow)
    report = _report_frame(
        rows, prow, groups=groups, runs=runs, library=library, scores=(q, pep, pg_q), quantities=quantities, lfq=lfq
    )

    lo, hi = log2fc
    parameters = {
        "planted_sets": list(PLANTED_SETS),
        "core_genes": list(CORE_GENES),
        "planted_fraction": planted_fraction,
        "log2fc_range": [lo, hi],
        "biological_sd": biological_sd,
        "n_proteins": n_proteins,
        "n_planted": int(planted.sum()),
        "planted_per_set": {name: int(np.isin(lead[planted], sets[name]).sum()) for name in PLANTED_SETS},
        "members_per_set": {name: int(np.isin(lead, sets[name]).sum()) for name in PLANTED_SETS},
        "runs": runs[["run", "sample", "condition", "cell_type", "cells"]].to_dict("records"),
    }
    proteins = _protein_table(groups, planted, truth, n_precursors)
    return Proteomics(report=report, proteins=proteins, parameters=parameters)


def write_report(report: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a simulated DIA-NN report as Parquet, atomically, packed small (zstd; the per-row floats
    byte-stream-split instead of dictionary-encoded)."""
    floats = [c for c in report.columns if report[c].dtype == np.float32 and report[c].nunique() > 10_000]
    table = pa.Table.from_pandas(report, preserve_index=False)
    with atomic_output(path) as tmp:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            compression_level=19,
            use_byte_stream_split=floats,
            use_dictionary=[c for c in report.columns if c not in floats],
        )
