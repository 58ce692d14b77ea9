#!/usr/bin/env python3
"""Rebuild the real search-engine fixtures in this folder from public repositories.

The originals are read with ``git show <commit>:<path>`` from bare mirrors of the
source repositories (see SOURCES.md for repository, path, commit and licence).
Set ``MIRROR_ROOT`` (default ``/work/.mirror``) to the folder holding
``<owner>+<name>/repo`` bare git directories.

Trimming keeps the original header line and the original data lines byte for byte
(lines are selected, never re-serialised), so number formatting, empty fields and
column order stay exactly as the tool wrote them.  Rows are selected by whole
protein groups: every row of a selected group is kept, all runs are kept.
The procedure is deterministic (sorted group names, fixed counts).
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
from pathlib import Path

import pandas as pd

MIRROR_ROOT = Path(os.environ.get("MIRROR_ROOT", "/work/.mirror"))
OUT = Path(__file__).resolve().parent

PROTEOBENCH = "Proteobench+ProteoBench"
PB_HEAD = "1cfddcb496d2cd32b2ee00ba44558468435473f2"
PB_ALPHADIA172 = "80544976088f5d089abaa3f1e5285ecf2de59a56"
PB_PGMATRIX = "6d2060a747c24b3512c8c35401294cf70d30d959"
PB_ALPHADIA_PG = "85ed4b742be16ebb712ab12b31b4293caf659afb"
DIANN_RPKG = "vdemichev+diann-rpackage"
DIANN_RPKG_COMMIT = "af538f6e2cd5ab715e1381632e17cb8f234ebf53"
APSTATS = "MannLabs+alphapeptstats"
APSTATS_COMMIT = "2ba79d2dd13d8864cd4086b1ec7991027e4d8e2d"


def git_show(repo: str, commit: str, path: str) -> bytes:
    gitdir = MIRROR_ROOT / repo / "repo"
    return subprocess.run(
        ["git", f"--git-dir={gitdir}", "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
    ).stdout


def select_lines(raw: bytes, keep_mask) -> bytes:
    """Return header + the data lines whose mask entry is True (original bytes)."""
    lines = raw.splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    # drop a possible empty trailing line
    while body and body[-1].strip() == b"":
        body = body[:-1]
    assert len(body) == len(keep_mask), (len(body), len(keep_mask))
    return header + b"".join(ln for ln, k in zip(body, keep_mask, strict=True) if k)


def trim_by_group(raw: bytes, group_col: str, n_first: int, extra_prefixes=(), sep="\t") -> bytes:
    """Keep all rows of the first `n_first` distinct groups (sorted as strings)
    plus all rows of any group containing one of `extra_prefixes`."""
    df = pd.read_csv(io.BytesIO(raw), sep=sep, dtype=str, keep_default_na=False)
    groups = sorted(df[group_col].unique())
    chosen = set(groups[:n_first])
    for g in groups:
        if any(p in g for p in extra_prefixes):
            chosen.add(g)
    mask = df[group_col].isin(chosen).tolist()
    return select_lines(raw, mask)


def write(name: str, data: bytes, gz: bool = False) -> None:
    path = OUT / name
    if gz:
        # mtime=0 and no file name in the header -> deterministic bytes
        with open(path, "wb") as fh:
            with gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as g:
                g.write(data)
    else:
        path.write_bytes(data)
    print(f"{name}: {path.stat().st_size} bytes")


CONTAM = ("Cont_", "CON__", "CONTAMINANT", "contam_", "REV_", "rev_", "DECOY", "Decoy_")


def main() -> None:
    # 1. DIA-NN 1.7.x main report (no Run column yet), diann R package sample.
    raw = git_show(DIANN_RPKG, DIANN_RPKG_COMMIT, "diann_report.tsv")
    write("diann17_report.tsv.gz", trim_by_group(raw, "Protein.Group", 150, CONTAM), gz=True)

    # 2. DIA-NN 1.9 beta main report (ProteoBench DIA AIF module sample).
    raw = git_show(PROTEOBENCH, PB_HEAD, "test/data/quant/quant_lfq_ion_DIA_AIF/DIANN_1.9_beta_sample_report.tsv")
    write("diann19beta_report.tsv", trim_by_group(raw, "Protein.Group", 60, CONTAM))

    # 3. DIA-NN 2.x report.parquet (ProteoBench entrapment test subset); already
    #    100 rows -> copied unchanged (byte-identical).
    raw = git_show(PROTEOBENCH, PB_HEAD, "test/data/entrapment/entrapment_test_subset.parquet")
    write("diann2_report_subset.parquet", raw)

    # 4. DIA-NN protein matrix (pg_matrix) - copied unchanged.
    raw = git_show(
        PROTEOBENCH,
        PB_PGMATRIX,
        "test/data/subcellprofile_domlfq_protein_DIA_EXPL/DIA-NN_example_domlfq_report.pg_matrix.tsv",
    )
    write("diann_report.pg_matrix.tsv", raw)

    # 5. Spectronaut fragment-level long report (alphapeptstats test file).
    raw = git_show(APSTATS, APSTATS_COMMIT, "testfiles/spectronaut/results_non_european_comma.tsv")
    write("spectronaut_fragment_report.tsv", trim_by_group(raw, "PG.ProteinGroups", 15, CONTAM))

    # 6a. alphaDIA 1.7.2 precursors.tsv (ProteoBench sample).
    raw = git_show(PROTEOBENCH, PB_ALPHADIA172, "test/data/dia_quant/AlphaDIA_1.7.2_sample.tsv")
    write("alphadia172_precursors.tsv", trim_by_group(raw, "pg", 120, CONTAM))

    # 6b. alphaDIA 1.9.2 pg.matrix.tsv - copied unchanged.
    raw = git_show(PROTEOBENCH, PB_ALPHADIA_PG, "test/data/subcellprofile/pg.matrix.tsv")
    write("alphadia192_pg.matrix.tsv", raw)

    # 7a. FragPipe (IonQuant) combined_ion.tsv (ProteoBench DIA AIF sample).
    raw = git_show(PROTEOBENCH, PB_HEAD, "test/data/quant/quant_lfq_ion_DIA_AIF/Fragpipe_combined_ion.tsv")
    write("fragpipe_combined_ion.tsv", trim_by_group(raw, "Protein", 400, CONTAM))

    # 7b. FragPipe-DIA: DIA-NN report produced inside FragPipe (ProteoBench sample).
    raw = git_show(PROTEOBENCH, PB_HEAD, "test/data/quant/quant_lfq_ion_DIA_AIF/MSFraggerDIA_sample_test.tsv")
    write("fragpipe_diann_report.tsv", trim_by_group(raw, "Protein.Group", 40, CONTAM))


if __name__ == "__main__":
    main()
