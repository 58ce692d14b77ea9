"""Random tryptic precursors for the simulated DIA-NN report: sequences, charges, m/z and retention.

Private helper of :mod:`dvp_pipeline.simulate.proteomics`, which gives every simulated protein a few
of these precursors. Nothing here knows about proteins, runs or the planted signal; it only makes
peptides that look like a DIA search's (human amino-acid frequencies, fixed carbamidomethyl C,
some oxidised M, charge rising with length, retention from hydrophobicity).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["random_precursors"]

_AMINO = np.array(list("ACDEFGHILMNPQSTVWY"))  # K and R only end a tryptic peptide
_AMINO_FREQ = np.array(
    [8.3, 1.4, 5.5, 6.8, 3.9, 7.1, 2.3, 5.9, 9.7, 2.4, 4.1, 4.7, 3.9, 6.6, 5.3, 6.9, 1.1, 2.9]
)  # per cent in the human proteome
_MASS = {
    "A": 71.03711,
    "C": 103.00919,
    "D": 115.02694,
    "E": 129.04259,
    "F": 147.06841,
    "G": 57.02146,
    "H": 137.05891,
    "I": 113.08406,
    "K": 128.09496,
    "L": 113.08406,
    "M": 131.04049,
    "N": 114.04293,
    "P": 97.05276,
    "Q": 128.05858,
    "R": 156.10111,
    "S": 87.03203,
    "T": 101.04768,
    "V": 99.06841,
    "W": 186.07931,
    "Y": 163.06333,
}
_HYDROPHOBICITY = {
    "W": 11.0,
    "F": 10.5,
    "L": 9.6,
    "I": 8.4,
    "M": 5.8,
    "V": 5.0,
    "Y": 4.0,
    "C": -0.5,
    "P": 0.2,
    "A": 0.8,
    "E": 0.0,
    "T": -0.5,
    "D": -1.0,
    "Q": -0.9,
    "S": -0.8,
    "G": -0.9,
    "R": -1.3,
    "N": -1.2,
    "H": -1.3,
    "K": -2.1,
}  # retention coefficients, for RT
_WATER, _PROTON, _CARBAMIDOMETHYL, _OXIDATION = 18.010565, 1.007276, 57.021464, 15.994915


def _random_sequences(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct tryptic sequences of 7 to 25 residues, the last one K or R."""
    seen: set[str] = set()
    seqs: list[str] = []
    p = _AMINO_FREQ / _AMINO_FREQ.sum()
    while len(seqs) < n:
        lengths = np.clip(rng.poisson(6, n - len(seqs)) + 6, 6, 24)  # residues before the final K/R
        residues = rng.choice(_AMINO, size=int(lengths.sum()), p=p)
        ends = rng.choice(np.array(["K", "R"]), size=len(lengths))
        for piece, end in zip(np.split(residues, np.cumsum(lengths)[:-1]), ends, strict=True):
            seq = "".join(piece) + end
            if seq not in seen:
                seen.add(seq)
                seqs.append(seq)
    return seqs


def random_precursors(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """``n`` distinct random tryptic precursors: DIA-NN's sequence columns, charge, m/z and iRT.

    Parameters
    ----------
    rng
        Generator to draw from.
    n
        Number of precursors.

    Returns
    -------
    DataFrame with Precursor.Id, Modified.Sequence, Stripped.Sequence, Precursor.Charge,
    Precursor.Mz and iRT (minutes of a 30-minute gradient), one row per precursor.
    """
    seqs = _random_sequences(rng, n)
    length = np.array([len(s) for s in seqs])
    charge = np.where(rng.random(n) < 0.62, 2, np.where(rng.random(n) < 0.88, 3, 4))
    charge = np.where(length > 18, np.maximum(charge, 3), charge)
    oxidised = (rng.random(n) < 0.15) & np.array(["M" in s for s in seqs])
    modified, mz, hydro = [], np.empty(n), np.empty(n)
    for k, seq in enumerate(seqs):
        mod = seq.replace("C", "C(UniMod:4)")  # fixed carbamidomethylation
        mass = sum(_MASS[a] for a in seq) + _WATER + _CARBAMIDOMETHYL * seq.count("C")
        if oxidised[k]:
            mod = mod.replace("M", "M(UniMod:35)", 1)
            mass += _OXIDATION
        modified.append(mod)
        mz[k] = (mass + charge[k] * _PROTON) / charge[k]
        hydro[k] = sum(_HYDROPHOBICITY[a] for a in seq) / np.sqrt(len(seq))
    hydro = (hydro - hydro.mean()) / hydro.std()
    irt = 1.0 + 28.0 / (1 + np.exp(-1.3 * hydro)) + rng.normal(0, 0.3, n)  # minutes of a 30-min gradient
    return pd.DataFrame(
        {
            "Precursor.Id": [m + str(z) for m, z in zip(modified, charge, strict=True)],
            "Modified.Sequence": modified,
            "Stripped.Sequence": seqs,
            "Precursor.Charge": charge,
            "Precursor.Mz": mz,
            "iRT": irt,
        }
    )
