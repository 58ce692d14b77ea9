"""Every reader on real files that search engines wrote, taken from public repositories.

The files, where they come from and their licences: tests/data/real/{dia,dda,extra}/SOURCES.md. The
numbers asserted here were counted from the files with plain pandas or the csv module, not with this
project's code (the EXPECTED.md beside each SOURCES.md gives each count with its expression), or are
computed here the same independent way. MaxLFQ references: iq's own reader and fast_MaxLFQ on the
same files (tests/data/real/make_iq_references.R).
"""

import bz2
import csv
import gzip
import logging
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvp_pipeline.errors import DVPError
from dvp_pipeline.options import schema_default
from dvp_pipeline.quant import maxlfq
from dvp_pipeline.readers import Filters, check_columns, detect_format, read_ions, report_runs
from dvp_pipeline.readers.mzml import MS1Settings, quantify_runs, read_identifications, read_spectra

REAL = Path(__file__).parent / "data" / "real"
DECOY = re.compile(schema_default("quantify", "decoy_pattern"))
CONTAMINANT = re.compile(schema_default("quantify", "contaminant_pattern"))

# file, format, rows kept, runs, protein groups kept, what the log says was read
FACTS = [
    # 1449 rows; PG.Q.Value > 0.01 drops 65 (all 48 rows without a protein group among them); 149 -> 146 groups
    ("dia/diann17_report.tsv.gz", "diann", 1384, 3, 146, "DIA-NN 1.7"),
    ("dia/diann19beta_report.tsv", "diann", 311, 6, 60, "DIA-NN 1.8/1.9"),
    ("dia/diann2_report_subset.parquet", "diann", 71, 3, 71, "DIA-NN 2.x"),
    ("dia/fragpipe_diann_report.tsv", "diann", 221, 6, 40, "DIA-NN 1.8/1.9"),
    # 299 groups, 45 Cont_; values are DIA-NN's own protein quantities
    ("dia/diann_report.pg_matrix.tsv", "diann_matrix", None, 18, 254, "DIA-NN protein matrix"),
    # 177 fragment rows of 30 precursors, 86 excluded from quantification by Spectronaut
    ("dia/spectronaut_fragment_report.tsv", "spectronaut", 91, 1, 15, "fragment ions"),
    # 206 rows, 76 of 50 Cont_ groups; intensity is the protein group's: one value per group and run
    ("dia/alphadia172_precursors.tsv", "alphadia", 110, 6, 70, "AlphaDIA 1.x"),
    ("dia/alphadia192_pg.matrix.tsv", "alphadia_matrix", None, 18, 796, "AlphaDIA protein matrix"),
    ("dia/fragpipe_combined_ion.tsv", "fragpipe", None, 6, None, "FragPipe"),
    ("dda/maxquant_ragged_evidence.txt", "maxquant_evidence", None, 6, None, "runs named by Raw file"),
    ("dda/maxquant_2_5_1_evidence.txt", "maxquant_evidence", None, 6, None, "runs named by Raw file"),
    ("dda/maxquant_ragged_proteinGroups.txt", "maxquant_proteingroups", None, 10, None, "runs named by Experiment"),
    ("extra/maxquant_1_6_boxcar_peptides.txt", "maxquant_peptides", None, 12, None, "runs named by Experiment"),
    ("extra/maxquant_2x_volcanoplotr_proteinGroups.txt", "maxquant_proteingroups", None, 9, None, "Experiment"),
]


def _is_decoy_or_contaminant(name: str) -> bool:
    return bool(DECOY.search(name) or CONTAMINANT.search(name))


def _maxquant_rows(path: Path) -> tuple[list[str], list[dict]]:
    """A MaxQuant table read with the csv module, short rows padded: the independent count."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0]
    return header, [dict(zip(header, r + [""] * (len(header) - len(r)), strict=True)) for r in rows[1:] if r]


def _number(text: str) -> float:
    return float(text) if text not in ("", "NaN") else 0.0


def _kept_by_flags(row: dict, protein: str) -> bool:
    flags = ("Reverse", "Potential contaminant", "Contaminant", "Only identified by site")
    return all(row.get(f, "").strip() != "+" for f in flags) and not _is_decoy_or_contaminant(row[protein])


@pytest.mark.parametrize("name, fmt, rows, runs, proteins, read_as", FACTS, ids=[f[0] for f in FACTS])
def test_real_file_reads_as_counted(name, fmt, rows, runs, proteins, read_as, caplog):
    path = REAL / name
    assert detect_format(path) == fmt
    assert check_columns(path) == fmt  # the dry run's header-only check agrees
    with caplog.at_level(logging.INFO, logger="dvp_pipeline.readers"):
        ions = read_ions(path)
    assert read_as in caplog.text  # the log names format, version and intensity column
    if rows is not None:
        assert len(ions) == rows
    assert ions["run"].nunique() == runs == len(report_runs(path))
    assert set(ions["run"].astype(str)) <= report_runs(path)
    if proteins is not None:
        assert ions["protein"].nunique() == proteins
    assert not ions["protein"].astype(str).map(_is_decoy_or_contaminant).any()
    assert (ions["intensity"] > 0).all() and not ions.duplicated(["run", "protein", "precursor"]).any()


@pytest.mark.parametrize(
    "name, protein",
    [
        ("dda/maxquant_ragged_evidence.txt", "Leading razor protein"),
        ("dda/maxquant_2_5_1_evidence.txt", "Leading razor protein"),
        ("dda/maxquant_ragged_proteinGroups.txt", "Majority protein IDs"),
        ("extra/maxquant_1_6_boxcar_peptides.txt", "Leading razor protein"),
        ("extra/maxquant_2x_volcanoplotr_proteinGroups.txt", "Majority protein IDs"),
    ],
)
def test_maxquant_flags_patterns_and_ragged_rows(name, protein):
    """Ragged rows (older MaxQuant drops trailing empty fields) are read padded; Reverse, contaminant and
    only-by-site rows go, and so do groups with a REV__/CON__ member that MaxQuant did not flag."""
    path = REAL / name
    header, rows = _maxquant_rows(path)
    kept = {r[protein] for r in rows if _kept_by_flags(r, protein)}
    ions = read_ions(path)
    # the intensity columns read: evidence's Intensity; the wide tables' LFQ intensity <x>, else Intensity <x>
    wide = [c for c in header if c.startswith("LFQ intensity ")] or [c for c in header if c.startswith("Intensity ")]
    quantities = ["Intensity"] if "Raw file" in header else wide
    # a protein without any positive intensity has no ion row
    positive = {r[protein] for r in rows if r[protein] in kept and any(_number(r[c]) > 0 for c in quantities)}
    assert set(ions["protein"].astype(str)) == positive


def test_ragged_file_equals_its_padded_copy(tmp_path):
    path = REAL / "dda/maxquant_ragged_proteinGroups.txt"
    header, rows = _maxquant_rows(path)
    assert sum(1 for line in path.read_text().splitlines()[1:] if line.count("\t") + 1 < len(header)) == 94
    padded = tmp_path / "proteinGroups.txt"
    lines = ["\t".join(header)] + ["\t".join(r[c] for c in header) for r in rows]
    padded.write_text("\n".join(lines) + "\n")
    pd.testing.assert_frame_equal(read_ions(path), read_ions(padded))


def test_a_row_longer_than_the_header_is_named(tmp_path):
    path = tmp_path / "evidence.txt"
    lines = (REAL / "dda/maxquant_2_5_1_evidence.txt").read_text().splitlines()
    path.write_text("\n".join(lines[:5] + [lines[5] + "\textra"] + lines[6:]) + "\n")
    with pytest.raises(DVPError, match=r"evidence.txt: the row starting .* has 64 fields but the header 63"):
        read_ions(path)


IQ = [
    ("dia/diann17_report.tsv.gz", "diann17_report"),
    ("dia/diann19beta_report.tsv", "diann19beta_report"),
    ("dia/fragpipe_diann_report.tsv", "fragpipe_diann_report"),
    ("dda/maxquant_2_5_1_evidence.txt", "maxquant_2_5_1_evidence"),
    ("dda/maxquant_ragged_evidence.txt", "maxquant_ragged_evidence"),
]


@pytest.mark.parametrize("name, reference", IQ, ids=[r for _, r in IQ])
def test_reader_and_maxlfq_equal_iq_on_real_files(name, reference):
    """iq 2.0.0 reading and filtering the file itself (fast_read) and fast_MaxLFQ: the same proteins,
    runs and values to 1e-9 in log2 (make_iq_references.R)."""
    ours = maxlfq(read_ions(REAL / name), ion="precursor", sample="run").stack().rename("ours")
    ours.index.names = ["protein", "sample"]
    iq = pd.read_csv(REAL / "iq" / f"{reference}.tsv", sep="\t").set_index(["protein", "sample"])["maxlfq"]
    assert set(ours.index) == set(iq.index)
    np.testing.assert_allclose(ours.reindex(iq.index).to_numpy(), iq.to_numpy(), rtol=0, atol=1e-9)


def test_compressed_reports_read_as_they_are(tmp_path):
    raw = gzip.decompress((REAL / "dia/diann17_report.tsv.gz").read_bytes())
    (tmp_path / "report.tsv").write_bytes(raw)
    (tmp_path / "report.tsv.bz2").write_bytes(bz2.compress(raw))
    with zipfile.ZipFile(tmp_path / "report.zip", "w") as archive:
        archive.writestr("report.tsv", raw)
    plain = read_ions(tmp_path / "report.tsv")
    for name in ("report.tsv.bz2", "report.zip"):
        pd.testing.assert_frame_equal(read_ions(tmp_path / name), plain)
    pd.testing.assert_frame_equal(read_ions(REAL / "dia/diann17_report.tsv.gz"), plain)
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("a.tsv", raw)
        archive.writestr("b.tsv", raw)
    with pytest.raises(DVPError, match="two.zip: a zipped report must hold exactly one file, found 2"):
        read_ions(tmp_path / "two.zip")


def test_diann17_runs_are_file_names_without_extension():
    assert report_runs(REAL / "dia/diann17_report.tsv.gz") == {f"KL_Try_001_{x}.mzML" for x in "abc"}


def test_spectronaut_decoy_flag_and_precursor_quantity(tmp_path):
    """EG.IsDecoy is Spectronaut's decoy flag; a precursor quantity on a fragment-level report is read once
    per precursor, not once per fragment (which inflated sums)."""
    path = REAL / "dia/spectronaut_fragment_report.tsv"
    d = pd.read_csv(path, sep="\t")
    precursor = read_ions(path, filters=Filters(quantity="FG.Quantity"))
    assert len(precursor) == 30 == (d["EG.ModifiedSequence"] + d["FG.Charge"].astype(str)).nunique()
    fg = d.drop_duplicates(["EG.ModifiedSequence", "FG.Charge"]).groupby("PG.ProteinGroups")["FG.Quantity"].sum()
    ours = precursor.groupby("protein", observed=True)["intensity"].sum()
    np.testing.assert_allclose(ours.reindex(fg.index), fg)
    flagged = d.copy()
    first = d["PG.ProteinGroups"].iloc[0]
    flagged.loc[flagged["PG.ProteinGroups"] == first, "EG.IsDecoy"] = True
    flagged.to_csv(tmp_path / "report.tsv", sep="\t", index=False)
    assert first not in set(read_ions(tmp_path / "report.tsv")["protein"].astype(str))


def test_alphadia_2x_names(tmp_path):
    """The 1.x file with its columns renamed as alphaDIA 2.0.0's breaking-changes notes list (intensity,
    the group's, becomes pg.intensity; a per-precursor column stands in for the new precursor.intensity)
    reads as 2.x and gives the same table."""
    d = pd.read_csv(REAL / "dia/alphadia172_precursors.tsv", sep="\t")
    renamed = {"run": "raw.name", "pg": "pg.name", "genes": "pg.genes", "pg_qval": "pg.qval", "qval": "precursor.qval"}
    renamed |= {"decoy": "precursor.decoy", "mod_seq_charge_hash": "precursor.mod_seq_charge_hash"}
    renamed |= {"intensity": "pg.intensity", "sum_y_ion_intensity": "precursor.intensity"}
    v2 = d.rename(columns=renamed)[list(renamed.values())]
    v2.to_parquet(tmp_path / "precursors.parquet")
    protein_level = read_ions(tmp_path / "precursors.parquet", filters=Filters(quantity="pg.intensity"))
    v1 = read_ions(REAL / "dia/alphadia172_precursors.tsv")
    assert protein_level.attrs["quantified"] and v1.attrs["quantified"]
    np.testing.assert_allclose(np.sort(protein_level["intensity"]), np.sort(v1["intensity"]))
    precursor_level = read_ions(tmp_path / "precursors.parquet")  # default precursor.intensity: one ion each
    assert not precursor_level.attrs.get("quantified") and len(precursor_level) == 130


def test_protein_matrices_are_kept_as_the_engine_quantified_them():
    from dvp_pipeline.options import QuantifyOptions
    from dvp_pipeline.quant import quantify_cohort

    path = REAL / "dia/diann_report.pg_matrix.tsv"
    wide = pd.read_csv(path, sep="\t")
    runs = sorted(report_runs(path))[:4]
    options = QuantifyOptions.from_mapping({"report": str(path), "method": "topn", "top_n": 1}, source="test")
    sheet = pd.DataFrame({"run": runs, "sample": ["s1", "s1", "s2", "s2"], "cell_type": ["a", "b", "a", "b"]})
    samples = pd.DataFrame({"sample": ["s1", "s2"], "condition": ["x", "y"]})
    result = quantify_cohort(samples, sheet, options).proteins.set_index("protein")
    column = next(c for c in wide.columns if runs[0] in c)
    expected = np.log2(wide.set_index("Protein.Group")[column].dropna())
    expected = expected[~expected.index.map(_is_decoy_or_contaminant)]
    got = result[runs[0]].dropna()
    np.testing.assert_allclose(got.reindex(expected.index), expected, rtol=0, atol=1e-12)


def test_duplicate_ion_rule(tmp_path, caplog):
    path = REAL / "dda/maxquant_2_5_1_evidence.txt"
    header, rows = _maxquant_rows(path)
    keys = [
        (r["Raw file"], r["Leading razor protein"], r["Modified sequence"], r["Charge"])
        for r in rows
        if _kept_by_flags(r, "Leading razor protein")
        and r["Intensity"] not in ("", "NaN")
        and float(r["Intensity"]) > 0
    ]
    assert len(keys) - len(set(keys)) == 1  # one ion reported twice in one run
    with caplog.at_level(logging.WARNING, logger="dvp_pipeline.readers"):
        top = read_ions(path)
    assert "1 row(s) repeated an ion" in caplog.text and "max" in caplog.text
    total = read_ions(path, filters=Filters(duplicate_ions="sum"))
    assert total["intensity"].sum() > top["intensity"].sum() and len(total) == len(top) == len(set(keys))
    with pytest.raises(DVPError, match=r"1 row\(s\) repeat an ion already reported in the same run"):
        read_ions(path, filters=Filters(duplicate_ions="error"))


# --- identifications (mzTab, mzIdentML, pepXML) with their mzML -------------------------------------


def test_mztab_q_value_score_is_lower_is_better():
    """OpenMS ProteomicsLFQ's psm_search_engine_score[1] is 'OpenMS:Target-decoy PSM q-value': 104 of its
    199 PSMs have q <= 0.01, and those are the ones kept (higher-is-better kept the worst)."""
    psms = read_identifications(REAL / "dda/openms_proteomicslfq_msgf.mzTab")
    assert len(psms) == 104 and (-psms["score"] <= 0.01).all()


def test_multi_run_mztab_is_split_by_ms_run(tmp_path):
    path = REAL / "dda/openms_proteomicslfq_msgf.mzTab"
    per_run = {run: len(read_identifications(path, run=run)) for run in ("BSA1_F1", "BSA2_F1", "BSA3_F2")}
    assert all(n > 0 for n in per_run.values()) and sum(per_run.values()) < 104
    with pytest.raises(DVPError, match=r"none of its ms_run locations \(BSA1_F1, .*\) is the run elsewhere"):
        read_identifications(path, run="elsewhere")


def test_quantms_contaminants_and_quoting(tmp_path):
    """quantms writes contaminants as sp|CONTAMINANT_P12345|... and may quote accessions."""
    text = (REAL / "dda/openms_proteomicslfq_msgf.mzTab").read_text()
    lines = text.splitlines()
    header = next(line.split("\t") for line in lines if line.startswith("PSH"))
    col = header.index("accession")
    first = next(line.split("\t")[col] for line in lines if line.startswith("PSM"))
    edited = []
    for line in lines:
        fields = line.split("\t")
        if line.startswith("PSM") and fields[col] == first:
            fields[col] = '"sp|CONTAMINANT_' + first + '"'
        elif line.startswith("PSM"):
            fields[col] = '"' + fields[col] + '"'
        edited.append("\t".join(fields))
    (tmp_path / "quantms.mzTab").write_text("\n".join(edited) + "\n")
    psms = read_identifications(tmp_path / "quantms.mzTab")
    assert not psms["protein"].str.contains('CONTAMINANT_|"').any()
    assert (
        len(psms)
        == 104 - (read_identifications(REAL / "dda/openms_proteomicslfq_msgf.mzTab")["protein"] == first).sum()
    )


def test_score_of_unknown_direction_is_refused(tmp_path):
    text = (REAL / "dda/openms_proteomicslfq_msgf.mzTab").read_text()
    bare = "\n".join(line for line in text.splitlines() if "psm_search_engine_score" not in line) + "\n"
    (tmp_path / "bare.mzTab").write_text(bare)
    with pytest.raises(DVPError, match="its direction is unknown; set quantify.mzml.higher_is_better"):
        read_identifications(tmp_path / "bare.mzTab")
    told = read_identifications(tmp_path / "bare.mzTab", MS1Settings(higher_is_better=False))
    assert len(told) > 0


def test_mzid_retention_time_comes_from_the_mzml_spectrum():
    """MS-GF+'s mzIdentML gives scan start time in seconds (4587.7); the spectrum it references
    (spectrum=1) in the mzML is at 76.46 minutes, which is the time used."""
    psms = read_identifications(REAL / "dda/openms_msgf_spectra.mzid")
    assert list(psms["ref"]) == ["spectrum=1", "spectrum=2"]
    spectra = read_spectra(REAL / "dda/openms_msgf_spectra.mzML")
    assert spectra.rt_by_ref["spectrum=1"] == pytest.approx(4587.669 / 60, abs=1e-3)
    with pytest.raises(DVPError, match="no MS1 spectra in the mzML file; MS1 quantification needs them"):
        quantify_runs([REAL / "dda/openms_msgf_spectra.mzML"], [REAL / "dda/openms_msgf_spectra.mzid"])


def test_identifications_of_another_run_are_refused(tmp_path):
    shutil.copy(REAL / "dda/openms_xtandem.mzML", tmp_path / "openms_msgf_spectra.mzML")
    with pytest.raises(DVPError, match=r"none of its PSMs' spectra \(spectrum=1, spectrum=2 ...\) is a spectrum"):
        quantify_runs([tmp_path / "openms_msgf_spectra.mzML"], [REAL / "dda/openms_msgf_spectra.mzid"])


def test_pepxml_references_scans_of_its_mzml():
    psms = read_identifications(REAL / "dda/openms_xtandem.pepxml")
    spectra = read_spectra(REAL / "dda/openms_xtandem.mzML")
    assert psms["ref"].isin(list(spectra.rt_by_ref)).all()
