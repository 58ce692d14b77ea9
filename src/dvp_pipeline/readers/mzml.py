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

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError
from dvp_pipeline.options import schema_default
from dvp_pipeline.readers._table import ion_table, run_name

__all__ = [
    "MS1Settings",
    "Spectra",
    "quantify_runs",
    "read_identifications",
    "read_ms1",
    "read_spectra",
    "run_name",
    "xic_areas",
]

log = logging.getLogger(__name__)

NAME = "mzml"
ID_SUFFIXES = {".mzid": "mzIdentML", ".mzidentml": "mzIdentML", ".pepxml": "pepXML", ".mztab": "mzTab"}
#: Neutron mass difference between isotope peaks (13C - 12C), Da.
ISOTOPE_SPACING = 1.0033548


@dataclass(frozen=True)
class MS1Settings:
    """How identifications are filtered and precursors found and integrated; defaults as in the config.

    Attributes
    ----------
    fdr
        PSM-level FDR: a q-value score is cut at it, any other score is target-decoy filtered to it.
    score
        The PSM score column (``None``: the first known score in the file).
    higher_is_better
        Direction of the score (``None``: told from the file; an unknown score is refused).
    decoy_pattern, contaminant_pattern
        Regular expressions on protein accessions, as in the other formats: decoys (when the file
        has no decoy flag) and contaminants (dropped after FDR filtering).
    ppm
        Half-width of the m/z window around each isotope peak, parts per million.
    rt_window
        Half-width of the retention-time window around the identification, minutes.
    isotopes
        Isotope peaks summed (monoisotopic first).
    """

    fdr: float = 0.01
    score: str | None = None
    higher_is_better: bool | None = None
    decoy_pattern: str = field(default_factory=lambda: schema_default("quantify", "decoy_pattern"))
    contaminant_pattern: str = field(default_factory=lambda: schema_default("quantify", "contaminant_pattern"))
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


def _pick(frame: pd.DataFrame, names: list[str], path: Path, what: str) -> pd.Series:
    for n in names:
        if n in frame:
            return frame[n]
    raise DVPError(f"{path}: identifications have no {what} column (looked for {', '.join(names)})")


def _scalar(value):
    """pyteomics gives some fields as one-element lists; the first element stands for them."""
    return value[0] if isinstance(value, (list, tuple)) and value else value


def _accessions(value) -> list[str]:
    """Protein accessions of a PSM as pyteomics gives them (list or text), without mzTab's quotes."""
    values = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        for a in re.split(r"[,;]", str(v)):  # quantms lists a shared PSM's proteins comma-separated
            a = a.strip().strip('"').strip()
            if a and a.lower() != "null":
                out.append(a)
    return out


def read_identifications(
    path: str | Path, settings: MS1Settings = MS1Settings(), *, run: str | None = None
) -> pd.DataFrame:
    """PSMs of one identification file, FDR-filtered, as sequence, charge, mz, rt (min), protein, score.

    ``score`` is returned higher-is-better (lower-is-better scores are negated). The score and its
    direction come from the file (mzTab's ``psm_search_engine_score`` metadata, mzIdentML and pepXML
    score names); a score of unknown direction is refused unless ``settings`` names it. A q-value
    score is cut at ``settings.fdr``; other scores are target-decoy filtered. Decoys are the file's
    own flag (mzIdentML ``isDecoy``, mzTab ``opt_global_cv_MS:1002217_decoy_peptide``), else proteins
    matching ``decoy_pattern``; contaminants are dropped after filtering. A PSM of several proteins
    has them as one group (``A;B``). ``run`` (the mzML run) selects that run's PSMs of a multi-run
    mzTab and must be one of its ``ms_run`` locations.
    """
    from pyteomics import auxiliary, mzid, mztab, pepxml

    path = Path(path)
    if not path.is_file():
        raise DVPError(f"{path}: identification file not found")
    fmt = _id_format(path)
    metadata: dict = {}
    try:
        if fmt == "mzIdentML":
            raw = mzid.DataFrame(str(path))
        elif fmt == "pepXML":
            raw = pepxml.DataFrame(str(path))
        else:
            table = mztab.MzTab(str(path))
            raw, metadata = table.spectrum_match_table, dict(table.metadata)
    except Exception as err:  # pyteomics/lxml raise many types for malformed files
        raise DVPError(f"{path}: cannot read {fmt} identifications ({err})") from err
    if raw is None or len(raw) == 0:
        raise DVPError(f"{path}: no peptide-spectrum matches in the {fmt} file")
    raw = raw.reset_index(drop=True)
    if fmt == "mzTab":
        raw = _mztab_run(raw, metadata, path, run)
    seq = _pick(raw, ["PeptideSequence", "peptide", "sequence"], path, "peptide sequence").astype(str)
    charge = pd.to_numeric(_pick(raw, ["chargeState", "assumed_charge", "charge"], path, "charge"), errors="coerce")
    accessions = _pick(raw, ["accession", "protein"], path, "protein accession").map(_accessions)
    rt = _pick(
        raw, ["scan start time", "retention time", "retention_time", "retention_time_sec"], path, "retention time"
    )
    rt = pd.to_numeric(rt.map(_scalar), errors="coerce")
    if fmt == "mzTab" or ("retention_time_sec" in raw and "retention_time" not in raw):
        rt = rt / 60.0  # mzTab and pepXML retention times are seconds
    mz = None
    for col in ("calculatedMassToCharge", "calc_mass_to_charge"):
        if col in raw:
            mz = pd.to_numeric(raw[col], errors="coerce")
    if mz is None or mz.isna().any():
        from pyteomics import mass

        calc = [mass.fast_mass(s, charge=int(z)) if z == z else np.nan for s, z in zip(seq, charge, strict=True)]
        mz = pd.Series(calc) if mz is None else mz.fillna(pd.Series(calc))
    ref = _references(raw, fmt)
    decoy_col = next((c for c in ("isDecoy", "opt_global_cv_MS:1002217_decoy_peptide") if c in raw), None)
    if decoy_col is not None:
        decoy = raw[decoy_col].astype(str).str.strip().str.lower().isin(["true", "1", "1.0"]).to_numpy()
    elif settings.decoy_pattern:
        decoy = accessions.map(lambda a: bool(a) and all(re.search(settings.decoy_pattern, x) for x in a)).to_numpy()
    else:
        decoy = np.zeros(len(raw), dtype=bool)
    name, score, higher = _score(raw, metadata, settings, path)
    psms = pd.DataFrame(
        {
            "id": raw["PSM_ID"].astype(str) if "PSM_ID" in raw else pd.RangeIndex(len(raw)).astype(str),
            "sequence": seq,
            "charge": charge,
            "mz": mz.astype(float),
            "rt": rt.astype(float),
            "protein": accessions,
            "score": score if higher else -score,  # one direction from here on: higher is better
            "decoy": decoy,
            "ref": ref,
        }
    ).dropna(subset=["charge", "mz", "score"])
    psms = _group_proteins(psms)
    if _is_q_value(name):
        kept = psms[(-psms["score"] <= settings.fdr) & ~psms["decoy"]]
    else:
        try:
            kept = auxiliary.filter(
                psms, fdr=settings.fdr, key="score", is_decoy="decoy", reverse=True, remove_decoy=True
            )
        except Exception as err:
            raise DVPError(f"{path}: target-decoy filtering on {name} failed ({err}); are decoys present?") from err
    if settings.contaminant_pattern:
        kept = kept[~kept["protein"].str.contains(settings.contaminant_pattern, regex=True)]
    log.info(
        "%s: %s, score %s (%s is better, %s), %d of %d PSMs kept",
        path,
        fmt,
        name,
        "higher" if higher else "lower",
        "q-value cut" if _is_q_value(name) else "target-decoy FDR",
        len(kept),
        len(psms),
    )
    kept = kept.drop(columns=[c for c in ("id", "q") if c in kept])
    return kept.assign(charge=kept["charge"].astype(int)).reset_index(drop=True)


def _references(raw: pd.DataFrame, fmt: str) -> pd.Series:
    """The spectrum each PSM identifies, as a key of :attr:`Spectra.rt_by_ref` (None where not given)."""
    if fmt == "mzIdentML" and "spectrumID" in raw:
        return raw["spectrumID"].astype(str)
    if fmt == "mzTab" and "spectra_ref" in raw:  # ms_run[1]:index=5 -> index=5
        return raw["spectra_ref"].astype(str).str.split(":", n=1).str[-1]
    if fmt == "pepXML" and "start_scan" in raw:
        return "scan=" + pd.to_numeric(raw["start_scan"], errors="coerce").astype("Int64").astype(str)
    return pd.Series([None] * len(raw), dtype=object)


def _group_proteins(psms: pd.DataFrame) -> pd.DataFrame:
    """One row per PSM with its proteins joined (mzTab repeats a shared PSM once per protein)."""
    proteins = psms.groupby("id", sort=False)["protein"].agg(lambda v: sorted({a for lst in v for a in lst}))
    decoy = psms.groupby("id", sort=False)["decoy"].all()
    out = psms.drop_duplicates("id").set_index("id")
    out["protein"] = proteins.map(";".join)
    out["decoy"] = decoy
    return out[out["protein"] != ""].reset_index()


def _mztab_run(raw: pd.DataFrame, metadata: dict, path: Path, run: str | None) -> pd.DataFrame:
    """The PSMs of ``run``: those whose spectra_ref names an ms_run whose location is that run."""
    runs = {
        key[: -len("-location")]: run_name(str(value))
        for key, value in metadata.items()
        if key.startswith("ms_run[") and key.endswith("-location")
    }
    if run is None or not runs:
        return raw
    wanted = [k for k, v in runs.items() if v == run]
    if not wanted:
        raise DVPError(
            f"{path}: none of its ms_run locations ({', '.join(sorted(set(runs.values())))}) is the run {run}; "
            "each mzML file needs the identifications of that run"
        )
    if len(runs) == 1:
        return raw
    refs = _pick(raw, ["spectra_ref"], path, "spectra_ref").astype(str)
    mine = refs.str.split(":", n=1).str[0].isin(wanted)
    return raw[mine.to_numpy()].reset_index(drop=True)


# PSM score names by direction; matched case-insensitively in the score's name.
_LOWER_BETTER = re.compile(r"q[ _.-]?value|e[ _.-]?value|expect|\bpep\b|posterior error|\bfdr\b", re.I)
_HIGHER_BETTER = re.compile(r"hyperscore|xcorr|raw ?score|probability|score", re.I)
_Q_VALUE = re.compile(r"q[ _.-]?value|\bfdr\b", re.I)
#: Score columns tried in order when the config names none.
KNOWN_SCORES = [
    "search_engine_score[1]",
    "MS-GF:SpecEValue",
    "MS-GF:EValue",
    "Comet:expectation value",
    "X!Tandem:expect",
    "Mascot:expectation value",
    "expect",
    "percolator:Q value",
    "q-value",
    "PEP",
    "hyperscore",
    "X!Tandem:hyperscore",
    "MS-GF:RawScore",
    "Mascot:score",
    "Comet:xcorr",
    "xcorr",
    "peptideprophet_probability",
]


def _is_q_value(name: str) -> bool:
    return bool(_Q_VALUE.search(name))


def _score(raw: pd.DataFrame, metadata: dict, settings: MS1Settings, path: Path) -> tuple[str, pd.Series, bool]:
    """The score's name (as the file defines it), values and whether higher is better."""
    if settings.score is not None:
        if settings.score not in raw:
            raise DVPError(f"{path}: quantify.mzml.score {settings.score!r} is not a column of the identifications")
        column = settings.score
    else:
        column = next((c for c in KNOWN_SCORES if c in raw), None)
        if column is None:
            raise DVPError(
                f"{path}: no known PSM score (looked for {', '.join(KNOWN_SCORES)}); "
                "name one with quantify.mzml.score and quantify.mzml.higher_is_better"
            )
    name = column
    if column.startswith("search_engine_score["):
        # mzTab's score columns are numbered; what they are is declared in the metadata as a CV term.
        term = metadata.get("psm_" + column)
        if term is None:
            if settings.higher_is_better is None:
                raise DVPError(
                    f"{path}: {column} has no psm_{column} declaration in the metadata, so its direction "
                    "is unknown; set quantify.mzml.higher_is_better"
                )
        else:
            parts = [p.strip() for p in str(term).strip().strip("[]").split(",")]
            name = parts[2] if len(parts) >= 3 and parts[2] else str(term)
    higher = settings.higher_is_better
    if higher is None:
        if _LOWER_BETTER.search(name):
            higher = False
        elif _HIGHER_BETTER.search(name) and not name.startswith("search_engine_score["):
            higher = True
        else:
            raise DVPError(
                f"{path}: cannot tell whether a higher or a lower {name!r} is better; "
                "set quantify.mzml.higher_is_better"
            )
    values = pd.to_numeric(raw[column].map(_scalar), errors="coerce")
    return name, values, higher


@dataclass
class Spectra:
    """An mzML run: MS1 retention times (min, sorted), m/z and intensity arrays, and the retention
    time (min) of every spectrum by each reference an identification file may use for it (native id,
    ``index=<i>``, ``scan=<n>``)."""

    times: np.ndarray
    mzs: list[np.ndarray]
    intensities: list[np.ndarray]
    rt_by_ref: dict[str, float]

    def ms1(self, path) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """The MS1 times, m/z and intensity arrays, refusing a run without MS1 spectra."""
        if not len(self.times):
            raise DVPError(f"{path}: no MS1 spectra in the mzML file; MS1 quantification needs them")
        return self.times, self.mzs, self.intensities


def read_spectra(path: str | Path) -> Spectra:
    """Read an mzML file's MS1 spectra and the retention times of all its spectra."""
    from pyteomics import mzml

    path = Path(path)
    if not path.is_file():
        raise DVPError(f"{path}: mzML file not found")
    times, mzs, intensities, rt_by_ref = [], [], [], {}
    try:
        with mzml.MzML(str(path), use_index=True, decode_binary=True) as reader:
            for index, spectrum in enumerate(reader):
                scan = spectrum["scanList"]["scan"][0]
                rt = float(scan["scan start time"])
                if getattr(scan["scan start time"], "unit_info", "minute") == "second":
                    rt /= 60.0
                native = str(spectrum.get("id", ""))
                rt_by_ref[native] = rt_by_ref[f"index={index}"] = rt
                number = re.search(r"\bscan=(\d+)", native)
                if number:
                    rt_by_ref[f"scan={int(number[1])}"] = rt
                if spectrum.get("ms level", 1) != 1:
                    continue
                times.append(rt)
                order = np.argsort(spectrum["m/z array"], kind="stable")
                mzs.append(np.asarray(spectrum["m/z array"], dtype=float)[order])
                intensities.append(np.asarray(spectrum["intensity array"], dtype=float)[order])
    except DVPError:
        raise
    except Exception as err:  # lxml/pyteomics errors for files that are not mzML
        raise DVPError(f"{path}: not a readable mzML file ({type(err).__name__}: {err})") from err
    order = np.argsort(times, kind="stable")
    return Spectra(np.asarray(times)[order], [mzs[i] for i in order], [intensities[i] for i in order], rt_by_ref)


def read_ms1(path: str | Path) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Retention times (min), m/z arrays and intensity arrays of the MS1 spectra of an mzML file."""
    return read_spectra(path).ms1(path)


def _spectrum_rt(psms: pd.DataFrame, spectra: Spectra, id_path, mzml_path) -> pd.Series:
    """Each PSM's retention time from the mzML spectrum it references (the identification's own
    time where it references none), refusing identifications that reference none of this run's spectra."""
    refs = psms["ref"]
    rt = refs.map(spectra.rt_by_ref)
    given = refs.notna() & (refs != "")
    if given.any() and not rt.notna().any():
        shown = ", ".join(refs[given].astype(str).head(3))
        raise DVPError(
            f"{id_path}: none of its PSMs' spectra ({shown} ...) is a spectrum of {mzml_path}; "
            "are the identifications of this run?"
        )
    missing = int((given & rt.isna()).sum())
    if missing:
        log.warning(
            "%s: %d PSM(s) reference spectra not in %s; their own retention times are used", id_path, missing, mzml_path
        )
    return rt.fillna(psms["rt"]).astype(float)


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
        psms = read_identifications(id_path, settings, run=run_name(mzml_path))
        if psms.empty:
            raise DVPError(f"{id_path}: no identification passes {settings.fdr:.0%} FDR")
        run = read_spectra(mzml_path)
        psms = psms.assign(rt=_spectrum_rt(psms, run, id_path, mzml_path))
        psms = psms.sort_values("score", ascending=False).drop_duplicates(["sequence", "charge"])
        times, mzs, intensities = run.ms1(mzml_path)
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
