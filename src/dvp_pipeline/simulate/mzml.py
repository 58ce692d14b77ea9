"""Two small synthetic mzML runs with identifications: the demo of the open (non-DIA-NN) quantification path.

Part of :mod:`dvp_pipeline.simulate`: :func:`simulate_mzml_runs` draws the MS1 spectra of two runs in
which five proteins change by known ratios, and peptide-spectrum matches (targets and poorly scored
decoys) for each; :func:`write_mzml_demo` writes them as indexed mzML (:func:`write_mzml`) and minimal
mzTab 1.0 (:func:`write_mztab`), the inputs of :mod:`dvp_pipeline.readers.mzml`, whose tests check
that the ratios come back. pyteomics and psims are imported only when these run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline.io import atomic_output, write_text

__all__ = ["MZML_PROTEINS", "simulate_mzml_runs", "write_mzml", "write_mzml_demo", "write_mztab"]

#: Tryptic peptides of the synthetic mzML runs, three per protein, and run2/run1 abundance ratios.
MZML_PROTEINS = {
    "P04637": (["LGFLHSGTAK", "TCPVQLWVDSTPPPGTR", "MAIYKQSQHMTEVVR"], 1.0),
    "P42224": (["FIVEGTVQEPK", "LLGPGVNYSGCQITWAK", "ELSAVTFPDIIR"], 2.0),
    "P40763": (["YLEQLHQLYSDSFPMELR", "VVENLQDDFDFNYK", "QFLQPWIEAQR"], 4.0),
    "P23458": (["LLEIHGESPTSR", "GQSGSEVLWSDYK", "AIETDKEYYTVK"], 0.5),
    "P01579": (["QDPYVKEAENLK", "KYFNAGHSDVADNGTLFLGILK", "TGKRKR"], 0.25),
}


def simulate_mzml_runs(*, seed: int = 7) -> dict:
    """Two synthetic MS1 runs and their identifications, with known protein ratios.

    Each peptide elutes as a Gaussian (sd 0.1 min) at a fixed retention time in both runs, with its
    isotope envelope (averagine-like decreasing ratios) at charge 2; run2's abundance is run1's
    times the protein's ratio in :data:`MZML_PROTEINS`, plus 5 % noise. Identifications include
    decoy PSMs with poor scores so that the target-decoy filter has something to remove.

    Returns
    -------
    {"runs": {run: (times, mz arrays, intensity arrays)}, "psms": {run: DataFrame}, "ratios": {protein: ratio}}
    """
    from pyteomics import mass

    rng = np.random.default_rng(seed)
    peptides = [(p, s, r) for p, (seqs, r) in MZML_PROTEINS.items() for s in seqs]
    rts = np.linspace(12, 28, len(peptides)) + rng.uniform(-0.2, 0.2, len(peptides))
    base = 10 ** rng.uniform(6, 7.5, len(peptides))
    times = np.arange(10.0, 30.0, 0.02)
    runs, psms = {}, {}
    for r, run in enumerate(["mzml_run1", "mzml_run2"]):
        peaks_mz, peaks_int = [], []
        rows = []
        for k, (prot, seq, ratio) in enumerate(peptides):
            mz = mass.fast_mass(seq, charge=2)
            amount = base[k] * (ratio if r == 1 else 1.0) * rng.lognormal(0, 0.05)
            profile = amount * np.exp(-0.5 * ((times - rts[k]) / 0.1) ** 2)
            for i, share in enumerate([1.0, 0.6, 0.25]):
                peaks_mz.append(np.full(len(times), mz + i * 1.0033548 / 2))
                peaks_int.append(profile * share)
            rows.append((seq, 2, mz, rts[k] + rng.normal(0, 0.02), prot, rng.uniform(60, 120), False))
        for j in range(40):  # decoys: poor scores, random places
            seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 10)) + "K"
            rows.append(
                (seq, 2, mass.fast_mass(seq, charge=2), rng.uniform(11, 29), f"DECOY_X{j}", rng.uniform(5, 40), True)
            )
        mz_all = np.stack(peaks_mz, axis=1)  # times x peaks
        int_all = np.stack(peaks_int, axis=1)
        spectra_mz, spectra_int = [], []
        for t in range(len(times)):
            noise_mz = rng.uniform(400, 1400, 30)
            m = np.concatenate([mz_all[t], noise_mz])
            i = np.concatenate([int_all[t], rng.exponential(1e3, 30)])
            keep = i > 1.0
            order = np.argsort(m[keep])
            spectra_mz.append(m[keep][order])
            spectra_int.append(i[keep][order])
        runs[run] = (times, spectra_mz, spectra_int)
        psms[run] = pd.DataFrame(rows, columns=["sequence", "charge", "mz", "rt", "protein", "score", "decoy"])
    return {"runs": runs, "psms": psms, "ratios": {p: r for p, (_, r) in MZML_PROTEINS.items()}}


def write_mzml(
    times: Sequence[float], mzs: Sequence[np.ndarray], intensities: Sequence[np.ndarray], path: str | os.PathLike
) -> None:
    """Write MS1 spectra (retention times in minutes, one m/z and one intensity array per spectrum) as an
    indexed mzML file (psims), atomically."""
    from psims.mzml.writer import MzMLWriter

    with atomic_output(path) as tmp:
        with MzMLWriter(open(tmp, "wb"), close=True) as out:
            out.controlled_vocabularies()
            out.file_description(["MS1 spectrum"])
            out.software_list([{"id": "dvp_pipeline", "version": "0.1", "params": ["custom unreleased software tool"]}])
            out.instrument_configuration_list(
                [out.InstrumentConfiguration(id="IC1", component_list=[], params=["Q Exactive"])]
            )
            out.data_processing_list(
                [out.DataProcessing([out.ProcessingMethod(order=0, software_reference="dvp_pipeline")], id="DP1")]
            )
            with out.run(id=Path(path).stem, instrument_configuration="IC1"):
                with out.spectrum_list(count=len(times)):
                    for k, (t, mz, inten) in enumerate(zip(times, mzs, intensities, strict=True)):
                        out.write_spectrum(
                            mz,
                            inten,
                            id=f"scan={k + 1}",
                            params=["MS1 spectrum", {"ms level": 1}, {"total ion current": float(inten.sum())}],
                            scan_start_time=float(t),
                        )


def write_mztab(psms: pd.DataFrame, path: str | os.PathLike, *, run: str, times: Sequence[float]) -> None:
    """Write PSMs (sequence, charge, mz, rt in minutes, protein, score, decoy) as a minimal mzTab 1.0.

    Each PSM references the spectrum of ``times`` (the run's, minutes) nearest its retention time, as
    a real PSM references the spectrum it identifies.
    """
    times = np.asarray(times, dtype=float)
    header = [
        "MTD\tmzTab-version\t1.0.0",
        "MTD\tmzTab-mode\tSummary",
        "MTD\tmzTab-type\tIdentification",
        "MTD\tdescription\tdvp-pipeline synthetic identifications",
        f"MTD\tms_run[1]-location\tfile://{run}.mzML",
        "MTD\tpsm_search_engine_score[1]\t[MS, MS:1001331, X!Tandem:hyperscore, ]",
        "",
    ]
    cols = ["sequence", "PSM_ID", "accession", "unique", "database", "database_version", "search_engine",
            "search_engine_score[1]", "modifications", "retention_time", "charge", "exp_mass_to_charge",
            "calc_mass_to_charge", "spectra_ref", "pre", "post", "start", "end",
            "opt_global_cv_MS:1002217_decoy_peptide"]  # fmt: skip
    lines = ["PSH\t" + "\t".join(cols)]
    for k, p in enumerate(psms.itertuples(index=False)):
        values = [p.sequence, k + 1, p.protein, "null", "null", "null", "[MS, MS:1001476, X!Tandem, ]",
                  f"{p.score:.4f}", "null", f"{p.rt * 60:.3f}", p.charge, f"{p.mz:.5f}", f"{p.mz:.5f}",
                  f"ms_run[1]:scan={int(np.argmin(np.abs(times - p.rt))) + 1}", "K", "-", "null", "null",
                  int(p.decoy)]  # fmt: skip
        lines.append("PSM\t" + "\t".join(map(str, values)))
    write_text("\n".join(header + lines) + "\n", path)


def write_mzml_demo(out: str | os.PathLike, *, seed: int = 7) -> dict:
    """Write the two synthetic mzML runs and their mzTab identifications into ``out``.

    Returns {"spectra": [paths], "identifications": [paths], "ratios": {protein: run2/run1}}.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate_mzml_runs(seed=seed)
    spectra, ids = [], []
    for run, (times, mzs, intensities) in sim["runs"].items():
        write_mzml(times, mzs, intensities, out / f"{run}.mzML")
        write_mztab(sim["psms"][run], out / f"{run}.mzTab", run=run, times=sim["runs"][run][0])
        spectra.append(str(out / f"{run}.mzML"))
        ids.append(str(out / f"{run}.mzTab"))
    return {"spectra": spectra, "identifications": ids, "ratios": sim["ratios"]}
