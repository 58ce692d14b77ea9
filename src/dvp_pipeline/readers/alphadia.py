"""AlphaDIA precursor table (``precursors.parquet`` or ``precursors.tsv``)."""

from __future__ import annotations

import numpy as np

from dvp_pipeline.readers._table import Filters, columns, combine, ion_table, numeric, read_columns, text

__all__ = ["detect", "read", "runs"]

NAME = "alphadia"
DESCRIPTION = "AlphaDIA precursors table (run, pg, intensity, qval, precursor id)"
REQUIRED = ["run", "pg", "qval"]


def detect(cols: set[str]) -> bool:
    return {"run", "pg", "qval"} <= cols and bool({"precursor_idx", "mod_seq_charge_hash", "sequence"} & cols)


def runs(path) -> set[str]:
    return set(read_columns(path, ["run"], what=DESCRIPTION)["run"].astype(str).unique())


def _ion_columns(present: set[str]) -> list[str]:
    for choice in (["mod_seq_charge_hash"], ["sequence", "mods", "charge"], ["precursor_idx"]):
        if set(choice) <= present:
            return choice
    return ["precursor_idx"]  # reported as missing by read_columns


def read(path, filters: Filters | None = None):
    filters = filters or Filters()
    present = set(columns(path))
    quantity = filters.quantity or "intensity"
    ion = _ion_columns(present)
    optional = [c for c in ("genes", "pg_qval", "decoy") if c in present]
    raw = read_columns(path, REQUIRED + [quantity] + ion + optional, what=DESCRIPTION)
    intensity = numeric(raw, quantity, path)
    q = numeric(raw, "qval", path).to_numpy()
    keep = q <= filters.precursor_q
    if "pg_qval" in raw:
        keep &= numeric(raw, "pg_qval", path).to_numpy() <= filters.protein_q
    if "decoy" in raw:
        keep &= numeric(raw, "decoy", path).fillna(0).to_numpy() == 0
    protein = text(raw, "pg")
    keep &= filters.protein_ok(protein)
    return ion_table(
        path,
        keep=keep,
        run=text(raw, "run"),
        protein=protein,
        genes=text(raw, "genes") if "genes" in raw else protein,
        precursor=combine(*(raw[c] for c in ion), sep="|"),
        intensity=np.nan_to_num(intensity.to_numpy(), nan=0.0),
        extra={"q_value": q},
    )
