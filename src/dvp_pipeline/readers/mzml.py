"""The open path: mzML spectra plus peptide identifications, quantified at MS1.

For pipelines without a DIA search engine's quantities. Identifications (mzIdentML, pepXML or mzTab,
read with pyteomics) are filtered to a target-decoy FDR with :func:`pyteomics.auxiliary.filter`;
each identified precursor is then quantified in its run as the area of the extracted-ion
chromatogram of its isotope envelope: intensities within ``ppm`` of the theoretical m/z of each
isotope peak (:mod:`pyteomics.mass`), summed per MS1 spectrum and integrated over ``rt_window``
minutes around the identification. The result is the same ion table the search-engine readers
return, so MaxLFQ and the rest of the stage run unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError
from dvp_pipeline.readers._table import ion_table

__all__ = ["MS1Settings", "quantify_runs", "read_identifications", "read_ms1", "run_name", "xic_areas"]

NAME = "mzml"
ID_SUFFIXES = {".mzid": "mzIdentML", ".mzidentml": "mzIdentML", ".pepxml": "pepXML", ".mztab": "mzTab"}
#: Neutron mass difference between isotope peaks (13C - 12C), Da.
ISOTOPE_SPACING = 1.0033548


@dataclass(frozen=True)
class MS1Settings:
    """How precursors are found and integrated; defaults as in the quantify section.

    Attributes
    ----------
    fdr
        PSM-level target-decoy FDR the identifications are filtered to.
    decoy_prefix
        Protein accession prefix of decoys (when the file has no explicit decoy flag).
    ppm
        Half-width of the m/z window around each isotope peak, parts per million.
    rt_window
        Half-width of the retention-time window around the identification, minutes.
    isotopes
        Isotope peaks summed (monoisotopic first).
    """

    fdr: float = 0.01
    decoy_prefix: str = "DECOY_"
    ppm: float = 10.0
    rt_window: float = 0.5
    isotopes: int = 3


def _id_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in ID_SUFFIXES.items():
        if name.endswith(suffix) or name.endswith(suffix + ".gz"):
            return fmt
    if name.endswith(".pep.xml"):
        return "pepXML"
    raise DVPError(f"{path}: unknown identification format; expected {', '.join(sorted(ID_SUFFIXES))} or .pep.xml")


def _first(value):
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def _pick(frame: pd.DataFrame, names: list[str], path: Path, what: str) -> pd.Series:
    for n in names:
        if n in frame:
            return frame[n]
    raise DVPError(f"{path}: identifications have no {what} column (looked for {', '.join(names)})")


def read_identifications(path: str | Path, settings: MS1Settings = MS1Settings()) -> pd.DataFrame:
    """PSMs of one identification file, FDR-filtered, as sequence, charge, mz, rt (min), protein, score.

    ``score`` is returned higher-is-better (lower-is-better scores are negated).

    Scores are told from the file: an e-value or q-value like column is lower-is-better, others
    (search_engine_score in mzTab, hyperscore) higher-is-better; the decoy flag is the file's own
    (``isDecoy``, mzTab's ``opt_global_cv_MS:1002217_decoy_peptide``) or the accession prefix.
    """
    from pyteomics import auxiliary, mzid, mztab, pepxml

    path = Path(path)
    if not path.is_file():
        raise DVPError(f"{path}: identification file not found")
    fmt = _id_format(path)
    try:
        if fmt == "mzIdentML":
            raw = mzid.DataFrame(str(path))
        elif fmt == "pepXML":
            raw = pepxml.DataFrame(str(path))
        else:
            raw = mztab.MzTab(str(path)).spectrum_match_table
    except Exception as err:  # pyteomics/lxml raise many types for malformed files
        raise DVPError(f"{path}: cannot read {fmt} identifications ({err})") from err
    if raw is None or len(raw) == 0:
        raise DVPError(f"{path}: no peptide-spectrum matches in the {fmt} file")
    raw = raw.reset_index(drop=True)
    seq = _pick(raw, ["PeptideSequence", "peptide", "sequence"], path, "peptide sequence").astype(str)
    charge = pd.to_numeric(_pick(raw, ["chargeState", "assumed_charge", "charge"], path, "charge"), errors="coerce")
    protein = _pick(raw, ["accession", "protein", "protein_descr"], path, "protein accession").map(_first).astype(str)
    rt = pd.to_numeric(
        _pick(
            raw, ["scan start time", "retention time", "retention_time", "retention_time_sec"], path, "retention time"
        ),
        errors="coerce",
    )
    if "retention_time_sec" in raw and "retention_time" not in raw:
        rt = rt / 60.0
    elif fmt == "mzTab":
        rt = rt.map(_first) / 60.0  # mzTab retention times are seconds
    mz = None
    for col in ("calculatedMassToCharge", "calc_mass_to_charge"):
        if col in raw:
            mz = pd.to_numeric(raw[col], errors="coerce")
    if mz is None or mz.isna().any():
        from pyteomics import mass

        calc = [mass.fast_mass(s, charge=int(z)) if z == z else np.nan for s, z in zip(seq, charge, strict=True)]
        mz = pd.Series(calc) if mz is None else mz.fillna(pd.Series(calc))
    decoy_col = next((c for c in ("isDecoy", "opt_global_cv_MS:1002217_decoy_peptide") if c in raw), None)
    if decoy_col is not None:
        decoy = raw[decoy_col].astype(str).str.lower().isin(["true", "1", "1.0"])
    else:
        decoy = protein.str.startswith(settings.decoy_prefix)
    score, higher_better = _score(raw, path)
    if not higher_better:  # one direction from here on: higher is better
        score = -score
    psms = pd.DataFrame(
        {
            "sequence": seq,
            "charge": charge,
            "mz": mz.astype(float),
            "rt": rt.astype(float),
            "protein": protein,
            "score": score,
            "decoy": decoy.to_numpy(),
        }
    ).dropna(subset=["charge", "mz", "rt", "score"])
    try:
        kept = auxiliary.filter(psms, fdr=settings.fdr, key="score", is_decoy="decoy", reverse=True, remove_decoy=True)
    except Exception as err:
        raise DVPError(f"{path}: target-decoy filtering failed ({err}); are decoys present?") from err
    return kept.assign(charge=kept["charge"].astype(int)).reset_index(drop=True)


_LOWER_BETTER = ["MS-GF:SpecEValue", "MS-GF:EValue", "expect", "Mascot:expectation value", "PEP", "q-value"]
_HIGHER_BETTER = ["search_engine_score[1]", "hyperscore", "MS-GF:RawScore", "Mascot:score", "X!Tandem:hyperscore"]


def _score(raw: pd.DataFrame, path: Path) -> tuple[pd.Series, bool]:
    for col in _LOWER_BETTER:
        if col in raw:
            return pd.to_numeric(raw[col], errors="coerce"), False
    for col in _HIGHER_BETTER:
        if col in raw:
            return pd.to_numeric(raw[col], errors="coerce"), True
    raise DVPError(f"{path}: no PSM score column (looked for {', '.join(_LOWER_BETTER + _HIGHER_BETTER)})")


def read_ms1(path: str | Path) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Retention times (min), m/z arrays and intensity arrays of the MS1 spectra of an mzML file."""
    from pyteomics import mzml

    path = Path(path)
    if not path.is_file():
        raise DVPError(f"{path}: mzML file not found")
    times, mzs, intensities = [], [], []
    try:
        with mzml.MzML(str(path), use_index=True, decode_binary=True) as reader:
            for spectrum in reader:
                if spectrum.get("ms level", 1) != 1:
                    continue
                scan = spectrum["scanList"]["scan"][0]
                rt = float(scan["scan start time"])
                unit = getattr(scan["scan start time"], "unit_info", "minute")
                times.append(rt / 60.0 if unit == "second" else rt)
                order = np.argsort(spectrum["m/z array"], kind="stable")
                mzs.append(np.asarray(spectrum["m/z array"], dtype=float)[order])
                intensities.append(np.asarray(spectrum["intensity array"], dtype=float)[order])
    except DVPError:
        raise
    except Exception as err:  # lxml/pyteomics errors for files that are not mzML
        raise DVPError(f"{path}: not a readable mzML file ({type(err).__name__}: {err})") from err
    if not times:
        raise DVPError(f"{path}: no MS1 spectra in the mzML file")
    order = np.argsort(times, kind="stable")
    return np.asarray(times)[order], [mzs[i] for i in order], [intensities[i] for i in order]


def xic_areas(
    times: np.ndarray,
    mzs: list[np.ndarray],
    intensities: list[np.ndarray],
    precursors: pd.DataFrame,
    settings: MS1Settings = MS1Settings(),
) -> np.ndarray:
    """MS1 area of each precursor (columns mz, charge, rt): its isotope envelope's XIC integrated.

    Returns one area per precursor (0 where nothing was found in the window).
    """
    areas = np.zeros(len(precursors))
    cum = [np.concatenate([[0.0], np.cumsum(i)]) for i in intensities]
    for k, (mz, z, rt) in enumerate(precursors[["mz", "charge", "rt"]].itertuples(index=False)):
        lo_s, hi_s = np.searchsorted(times, [rt - settings.rt_window, rt + settings.rt_window])
        if hi_s - lo_s < 1:
            continue
        peaks = mz + np.arange(settings.isotopes) * ISOTOPE_SPACING / z
        tol = peaks * settings.ppm * 1e-6
        xic = np.zeros(hi_s - lo_s)
        for j, s in enumerate(range(lo_s, hi_s)):
            lo = np.searchsorted(mzs[s], peaks - tol, side="left")
            hi = np.searchsorted(mzs[s], peaks + tol, side="right")
            xic[j] = (cum[s][hi] - cum[s][lo]).sum()
        t = times[lo_s:hi_s]
        areas[k] = np.trapezoid(xic, t) if len(t) > 1 else xic[0]
    return areas


def quantify_runs(
    spectra: list[str | Path], identifications: list[str | Path], settings: MS1Settings = MS1Settings()
) -> pd.DataFrame:
    """The ion table of mzML runs: one precursor (sequence/charge) per row and run, MS1 area.

    ``spectra[i]`` is quantified with the PSMs of ``identifications[i]``; the run is the mzML
    file name without extension. Several PSMs of a precursor in a run are reduced to the best-scoring
    one's retention time.
    """
    if len(spectra) != len(identifications):
        raise DVPError(
            f"quantify.spectra has {len(spectra)} file(s) but quantify.identifications {len(identifications)}; "
            "expected one identification file per mzML run"
        )
    if not spectra:
        raise DVPError("quantify.spectra: no mzML files given for format mzml")
    parts = []
    for mzml_path, id_path in zip(spectra, identifications, strict=True):
        psms = read_identifications(id_path, settings)
        if psms.empty:
            raise DVPError(f"{id_path}: no identification passes {settings.fdr:.0%} FDR")
        psms = psms.sort_values("score", ascending=False).drop_duplicates(["sequence", "charge"])
        times, mzs, intensities = read_ms1(mzml_path)
        parts.append(
            pd.DataFrame(
                {
                    "run": run_name(mzml_path),
                    "protein": psms["protein"].to_numpy(),
                    "genes": psms["protein"].to_numpy(),
                    "precursor": (psms["sequence"] + psms["charge"].astype(str)).to_numpy(),
                    "intensity": xic_areas(times, mzs, intensities, psms, settings),
                }
            )
        )
    long = pd.concat(parts, ignore_index=True)
    return ion_table(
        ", ".join(map(str, spectra[:2])) + (" ..." if len(spectra) > 2 else ""),
        keep=np.ones(len(long), dtype=bool),
        **{c: long[c] for c in ("run", "protein", "genes", "precursor", "intensity")},
    )


def run_name(path: str | Path) -> str:
    """The run an mzML file holds: its name without ``.mzML`` (or ``.mzML.gz``)."""
    name = Path(path).name
    for suffix in (".gz", ".mzml", ".mzML"):
        if name.lower().endswith(suffix.lower()):
            name = name[: -len(suffix)]
    return name
