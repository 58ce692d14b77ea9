#!/usr/bin/env python3
"""Trim real search-engine output files (fetched public GitHub snapshots) into
small test fixtures.  Deterministic: reads blobs with ``git show COMMIT:PATH``
from the bare mirrors under /work/.mirror and writes next to this script.

Tab-separated rows are copied byte-exactly (never re-serialised), so ragged
MaxQuant rows (trailing empty fields dropped) stay ragged.  See SOURCES.md.

Usage:  python trim.py [--mirror /work/.mirror]
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent

PROTEOBENCH = ("Proteobench+ProteoBench", "1cfddcb496d2cd32b2ee00ba44558468435473f2")
ALPHAPEPTSTATS = ("MannLabs+alphapeptstats", "2ba79d2dd13d8864cd4086b1ec7991027e4d8e2d")
OPENMS = ("OpenMS+OpenMS", "2f566776511606d2c2d579adf02d50f31adc05da")


def blob(mirror: Path, repo: tuple[str, str], path: str) -> bytes:
    gitdir = mirror / repo[0] / "repo"
    return subprocess.run(
        ["git", "--git-dir", str(gitdir), "show", f"{repo[1]}:{path}"],
        check=True,
        capture_output=True,
    ).stdout


def lines_of(data: bytes) -> list[bytes]:
    """Split into lines keeping the terminator (only b'\\n' splits)."""
    parts = data.split(b"\n")
    out = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def fields(line: bytes) -> list[str]:
    return line.rstrip(b"\r\n").decode("utf-8").split("\t")


def write(name: str, data: bytes) -> None:
    (HERE / name).write_bytes(data)
    print(f"{name}: {len(data)} bytes")


# --------------------------------------------------------------------------- MaxQuant
def subset_by_leading_razor(data: bytes, n_other: int) -> bytes:
    """Keep header + every row whose 'Leading razor protein' is in S, where S =
    the leading razor proteins of all flagged rows (Reverse, Potential
    contaminant or Contaminant == '+', or leading razor protein starting with
    CON__/REV__) plus the first ``n_other`` distinct other leading razor
    proteins in file order."""
    ls = lines_of(data)
    head = fields(ls[0])
    col = head.index("Leading razor protein")
    flag_cols = [head.index(n) for n in ("Reverse", "Potential contaminant", "Contaminant") if n in head]
    keep_ids: list[str] = []
    for ln in ls[1:]:
        f = fields(ln)
        lrp = f[col] if col < len(f) else ""
        flagged = any(c < len(f) and f[c] == "+" for c in flag_cols)
        if flagged or lrp.startswith(("CON__", "REV__")):
            if lrp not in keep_ids:
                keep_ids.append(lrp)
    others: list[str] = []
    for ln in ls[1:]:
        f = fields(ln)
        lrp = f[col] if col < len(f) else ""
        if lrp not in keep_ids and lrp not in others:
            others.append(lrp)
    s = set(keep_ids) | set(others[:n_other])
    out = [ls[0]]
    for ln in ls[1:]:
        f = fields(ln)
        if (f[col] if col < len(f) else "") in s:
            out.append(ln)
    return b"".join(out)


def subset_protein_groups(data: bytes, n_other: int) -> bytes:
    """Keep header + every row whose 'Protein IDs' contains REV__ or CON__ +
    the first ``n_other`` other rows in file order (file order preserved)."""
    ls = lines_of(data)
    col = fields(ls[0]).index("Protein IDs")
    out = [ls[0]]
    n = 0
    for ln in ls[1:]:
        pid = fields(ln)[col]
        if "REV__" in pid or "CON__" in pid:
            out.append(ln)
        elif n < n_other:
            out.append(ln)
            n += 1
    return b"".join(out)


# --------------------------------------------------------------------------- mzML
def trim_mzml_to_pepxml(mzml: bytes, pepxml: bytes) -> bytes:
    """Keep only whole <spectrum> elements whose id 'scan=N' has N equal to a
    start_scan of a pepXML <spectrum_query>; drop the others (with their
    leading whitespace), renumber index= consecutively from 0 and fix
    <spectrumList count=...>.  Everything else is kept byte-exactly.  The
    source mzML is not an <indexedmzML>, so no offset index has to be fixed."""
    scans = {int(s) for s in re.findall(rb'<spectrum_query [^>]*start_scan="(\d+)"', pepxml)}
    pat = re.compile(rb'([ \t]*)<spectrum [^>]*?id="([^"]*)".*?</spectrum>[ \t]*\r?\n', re.S)
    kept = 0
    out = []
    pos = 0
    for m in pat.finditer(mzml):
        out.append(mzml[pos : m.start()])
        pos = m.end()
        sid = m.group(2).decode()
        if sid.startswith("scan=") and int(sid[5:]) in scans:
            index = str(kept).encode()
            block = re.sub(
                rb'(<spectrum [^>]*?\bindex=")\d+(")',
                lambda mm, index=index: mm.group(1) + index + mm.group(2),
                m.group(0),
                count=1,
            )
            out.append(block)
            kept += 1
    out.append(mzml[pos:])
    res = b"".join(out)
    count = str(kept).encode()
    res = re.sub(rb'(<spectrumList count=")\d+(")', lambda mm: mm.group(1) + count + mm.group(2), res, count=1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirror", default="/work/.mirror", type=Path)
    mirror = ap.parse_args().mirror

    # 1. MaxQuant (ragged, 'Potential contaminant') evidence from ProteoBench
    write(
        "maxquant_ragged_evidence.txt",
        subset_by_leading_razor(
            blob(mirror, PROTEOBENCH, "test/data/quant/quant_lfq_ion_DDA_QExactive/MaxQuant_evidence_sample.txt"), 30
        ),
    )
    # 2. MaxQuant 2.5.1 evidence from ProteoBench (not ragged)
    write(
        "maxquant_2_5_1_evidence.txt",
        subset_by_leading_razor(
            blob(mirror, PROTEOBENCH, "test/data/quant/quant_lfq_ion_DDA_QExactive/MaxQuant_2_5_1_evidence_sample.txt"),
            30,
        ),
    )
    # 3. MaxQuant proteinGroups (ragged) from alphapeptstats
    write(
        "maxquant_ragged_proteinGroups.txt",
        subset_protein_groups(blob(mirror, ALPHAPEPTSTATS, "testfiles/maxquant_go/proteinGroups.txt"), 40),
    )
    # (4. and 5., an LGPL MaxQuant 1.4 peptides.txt and a quantms mzTab of unclear licence, are not kept.)
    # 6. OpenMS ProteomicsLFQ (MS-GF+) mzTab, 6 runs, whole file
    write("openms_proteomicslfq_msgf.mzTab", blob(mirror, OPENMS, "src/tests/topp/ProteomicsLFQ_6_out.mzTab"))
    # 7. mzML + mzIdentML pair (MS-GF+ run by OpenMS MSGFPlusAdapter), whole files
    write("openms_msgf_spectra.mzML", blob(mirror, OPENMS, "src/tests/topp/THIRDPARTY/spectra.mzML"))
    write("openms_msgf_spectra.mzid", blob(mirror, OPENMS, "src/tests/topp/THIRDPARTY/MSGFPlusAdapter_1_out.mzid"))
    # 8. mzML + pepXML pair (X! Tandem), mzML trimmed to the spectra the pepXML references
    pep = blob(mirror, OPENMS, "src/tests/topp/PepXMLFile_test.pepxml")
    write("openms_xtandem.pepxml", pep)
    write("openms_xtandem.mzML", trim_mzml_to_pepxml(blob(mirror, OPENMS, "src/tests/topp/PepXMLFile_test.mzML"), pep))


if __name__ == "__main__":
    main()
