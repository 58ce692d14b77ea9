#!/usr/bin/env python3
"""Deterministically build the fixtures in this folder from stored git snapshots.

Rows are copied byte-exactly (split on b"\\n", line terminators incl. any "\\r" kept);
the header line is copied unchanged. Nothing is re-serialised.
Rerun: python trim.py   (needs the mirrors under /work/.mirror)
"""

import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIRROR = Path("/work/.mirror")

SOURCES = {
    "directlfq": ("MannLabs+directlfq/repo", "97aaa2f725e424a31038ffd79329a9c38079194a"),
    "volcanoplotr": ("quantixed+VolcanoPlotR/repo", "f8a8136f954fe5a31190b563dc9821732159c4f1"),
}


def git_show(key, path):
    gitdir, commit = SOURCES[key]
    return subprocess.run(
        ["git", "--git-dir", str(MIRROR / gitdir), "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
    ).stdout


def split_lines(data):
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [ln + b"\n" for ln in lines]


def field(line, idx):
    parts = line.rstrip(b"\r\n").split(b"\t")
    return parts[idx] if idx < len(parts) else b""


def col_index(header, name):
    cols = header.rstrip(b"\r\n").split(b"\t")
    return cols.index(name.encode())


def subset_by_leading_razor(data, n_other):
    """peptides.txt: keep every row whose `Leading razor protein` is in S.
    S = leading razor proteins of rows flagged '+' in Reverse / Potential contaminant /
    Contaminant (or starting with REV__/CON__) + the first n_other other ones in file order."""
    lines = split_lines(data)
    header, rows = lines[0], lines[1:]
    lrp = col_index(header, "Leading razor protein")
    flags = [
        col_index(header, c)
        for c in ("Reverse", "Potential contaminant", "Contaminant")
        if c.encode() in header.rstrip(b"\r\n").split(b"\t")
    ]
    flagged, others = set(), []
    for r in rows:
        p = field(r, lrp)
        if any(field(r, i) == b"+" for i in flags) or p.startswith((b"REV__", b"CON__")):
            flagged.add(p)
    for r in rows:
        p = field(r, lrp)
        if p not in flagged and p not in others and len(others) < n_other:
            others.append(p)
    keep = flagged | set(others)
    return b"".join([header] + [r for r in rows if field(r, lrp) in keep])


def subset_protein_groups(data, n_other):
    """proteinGroups.txt: keep every row flagged '+' in Reverse / Potential contaminant /
    Contaminant or whose `Protein IDs` contains REV__/CON__, plus the first n_other other rows."""
    lines = split_lines(data)
    header, rows = lines[0], lines[1:]
    pid = col_index(header, "Protein IDs")
    hcols = header.rstrip(b"\r\n").split(b"\t")
    flags = [
        hcols.index(c.encode()) for c in ("Reverse", "Potential contaminant", "Contaminant") if c.encode() in hcols
    ]
    out, n = [header], 0
    for r in rows:
        ids = field(r, pid)
        flagged = any(field(r, i) == b"+" for i in flags) or b"REV__" in ids or b"CON__" in ids
        if flagged:
            out.append(r)
        elif n < n_other:
            out.append(r)
            n += 1
    return b"".join(out)


def main():
    pep = git_show("directlfq", "test_data/unit_tests/input_table_formats/mq_peptides.txt")
    (HERE / "maxquant_1_6_boxcar_peptides.txt").write_bytes(subset_by_leading_razor(pep, 250))

    pg = git_show("volcanoplotr", "inst/extdata/proteinGroups.txt")
    (HERE / "maxquant_2x_volcanoplotr_proteinGroups.txt").write_bytes(subset_protein_groups(pg, 25))


if __name__ == "__main__":
    main()
