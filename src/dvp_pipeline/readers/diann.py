"""DIA-NN main report (``report.tsv`` of 1.8/1.9, ``report.parquet`` of 1.9/2.x).

The column sets differ between versions (2.x drops ``File.Name`` and adds ``Run.Index``, ``Decoy``
and ``Channel``; 1.8 has no ``Decoy``), but the columns read here are common to all of them.
"""

from __future__ import annotations

import numpy as np

from dvp_pipeline.readers._table import Filters, columns, ion_table, numeric, read_columns, text

__all__ = ["detect", "read", "runs"]

NAME = "diann"
DESCRIPTION = "DIA-NN main report (1.8, 1.9, 2.x; .tsv or .parquet)"
REQUIRED = ["Run", "Protein.Group", "Precursor.Id", "Q.Value", "PG.Q.Value"]
DEFAULT_QUANTITY = "Precursor.Normalised"


def detect(cols: set[str]) -> bool:
    return {"Run", "Protein.Group", "Precursor.Id"} <= cols


def runs(path) -> set[str]:
    return set(read_columns(path, ["Run"], what=DESCRIPTION)["Run"].astype(str).unique())


def read(path, filters: Filters | None = None):
    """Precursor rows passing the run-specific (and with MBR the library) q-value filters.

    Returns the common ion table (run, protein, genes, precursor, intensity) plus q_value and
    pg_q_value.
    """
    filters = filters or Filters()
    present = set(columns(path))
    quantity = filters.quantity or DEFAULT_QUANTITY
    lib = ["Lib.Q.Value", "Lib.PG.Q.Value"] if filters.match_between_runs else []
    optional = [c for c in ("Genes", "Decoy") if c in present]
    raw = read_columns(path, REQUIRED + [quantity] + lib + optional, what=DESCRIPTION)
    intensity = numeric(raw, quantity, path)
    q = numeric(raw, "Q.Value", path).to_numpy()
    pg_q = numeric(raw, "PG.Q.Value", path).to_numpy()
    keep = (q <= filters.precursor_q) & (pg_q <= filters.protein_q)
    if lib:
        keep &= numeric(raw, "Lib.Q.Value", path).to_numpy() <= filters.precursor_q
        keep &= numeric(raw, "Lib.PG.Q.Value", path).to_numpy() <= filters.protein_q
    if "Decoy" in raw:
        keep &= numeric(raw, "Decoy", path).fillna(0).to_numpy() == 0
    protein = text(raw, "Protein.Group")
    keep &= filters.protein_ok(protein)
    genes = text(raw, "Genes") if "Genes" in raw else protein
    return ion_table(
        path,
        keep=keep,
        run=text(raw, "Run"),
        protein=protein,
        genes=genes,
        precursor=text(raw, "Precursor.Id"),
        intensity=np.nan_to_num(intensity.to_numpy(), nan=0.0),
        extra={"q_value": q, "pg_q_value": pg_q},
    )
