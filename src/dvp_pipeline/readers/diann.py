"""DIA-NN main report (``report.tsv`` of 1.7 to 1.9, ``report.parquet`` of 1.9/2.x).

The column sets differ between versions (1.7 has no ``Run``, only ``File.Name``; 2.x drops
``File.Name`` and adds ``Run.Index``, ``Decoy`` and ``Channel``; before 2.x decoys are not reported),
but the columns read here are common to all of them; without ``Run`` the run is the file name of
``File.Name`` without its extension, as later versions name it.
"""

from __future__ import annotations

import numpy as np

from dvp_pipeline.errors import DVPError
from dvp_pipeline.readers._table import Filters, columns, ion_table, numeric, read_columns, run_name, text

__all__ = ["detect", "read", "runs"]

NAME = "diann"
DESCRIPTION = "DIA-NN main report (1.8, 1.9, 2.x; .tsv or .parquet)"
REQUIRED = ["Protein.Group", "Precursor.Id", "Q.Value", "PG.Q.Value"]
DEFAULT_QUANTITY = "Precursor.Normalised"


def detect(cols: set[str]) -> bool:
    return {"Protein.Group", "Precursor.Id"} <= cols and bool({"Run", "File.Name"} & cols)


def _runs(path, present: set[str]):
    """The run column: ``Run``, else (1.7) the names of ``File.Name`` without extension."""
    if "Run" in present or "File.Name" not in present:
        return text(read_columns(path, ["Run"], what=DESCRIPTION), "Run")
    files = text(read_columns(path, ["File.Name"], what=DESCRIPTION), "File.Name")
    names = [run_name(f) for f in files.cat.categories]
    if len(set(names)) < len(names):
        raise DVPError(f"{path}: two files of File.Name have the same name without extension; runs would merge")
    return files.cat.rename_categories(names)


def runs(path) -> set[str]:
    return set(_runs(path, set(columns(path))).astype(str).unique())


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
    run = _runs(path, present)
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
        run=run,
        protein=protein,
        genes=genes,
        precursor=text(raw, "Precursor.Id"),
        intensity=np.nan_to_num(intensity.to_numpy(), nan=0.0),
        extra={"q_value": q, "pg_q_value": pg_q},
        read_as=f"DIA-NN {version(present)} main report, intensity {quantity}"
        + (", library q-values applied (match-between-runs)" if lib else ""),
    )


def version(cols: set[str]) -> str:
    """The DIA-NN version a report's columns point to (2.x added Run.Index and dropped File.Name)."""
    if "Run.Index" in cols or "File.Name" not in cols:
        return "2.x"
    return "1.8/1.9" if "Run" in cols else "1.7"
