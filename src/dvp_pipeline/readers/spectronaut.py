"""Spectronaut long-format export (normal report), precursor or fragment level.

Fragment-level report (``F.FrgIon`` present) read with a fragment quantity (``F.PeakArea``, the
default there): one ion per precursor, fragment and fragment charge; fragments Spectronaut marks
``F.ExcludedFromQuantification`` are dropped. Read with a precursor quantity (``FG.Quantity``, the
default of precursor-level reports), each precursor is one ion: a fragment-level report repeats that
quantity on every fragment row, and those repeats are read once. Decoys are Spectronaut's own
``EG.IsDecoy`` flag (when exported) and the decoy pattern. The run is ``R.FileName``, else
``R.Label``, else ``R.Condition``.
"""

from __future__ import annotations

import numpy as np

from dvp_pipeline.readers._table import Filters, columns, combine, ion_table, numeric, read_columns, text

__all__ = ["detect", "read", "runs"]

NAME = "spectronaut"
DESCRIPTION = "Spectronaut long report (PG.ProteinGroups, R.FileName, EG.ModifiedSequence, FG.Charge, ...)"
RUN_COLUMNS = ["R.FileName", "R.Label", "R.Condition"]


def detect(cols: set[str]) -> bool:
    return "PG.ProteinGroups" in cols and bool(set(RUN_COLUMNS) & cols)


def _run_column(present) -> str:
    return next((c for c in RUN_COLUMNS if c in present), "R.FileName")


def runs(path) -> set[str]:
    col = _run_column(set(columns(path)))
    return set(read_columns(path, [col], what=DESCRIPTION)[col].astype(str).unique())


def _truthy(values) -> np.ndarray:
    return values.astype(str).str.lower().isin(["true", "1", "yes"]).to_numpy()


def read(path, filters: Filters | None = None):
    filters = filters or Filters()
    present = set(columns(path))
    fragment_report = "F.FrgIon" in present
    run_col = _run_column(present)
    quantity = filters.quantity or ("F.PeakArea" if fragment_report else "FG.Quantity")
    fragment = fragment_report and quantity.startswith("F.")
    ion = ["EG.ModifiedSequence", "FG.Charge"] + (["F.FrgIon", "F.Charge"] if fragment else [])
    ion += [c for c in ("F.FrgLossType",) if fragment and c in present]
    flags = ["EG.IsDecoy"] + (["F.ExcludedFromQuantification"] if fragment else [])
    optional = [c for c in ["PG.Genes", "EG.Qvalue", "PG.Qvalue", *flags] if c in present]
    raw = read_columns(path, [run_col, "PG.ProteinGroups", quantity] + ion + optional, what=DESCRIPTION)
    intensity = numeric(raw, quantity, path)
    keep = np.ones(len(raw), dtype=bool)
    if "EG.Qvalue" in raw:
        keep &= numeric(raw, "EG.Qvalue", path).fillna(0).to_numpy() <= filters.precursor_q
    if "PG.Qvalue" in raw:
        keep &= numeric(raw, "PG.Qvalue", path).fillna(0).to_numpy() <= filters.protein_q
    for flag in flags:
        if flag in raw:
            keep &= ~_truthy(raw[flag])
    protein = text(raw, "PG.ProteinGroups")
    keep &= filters.protein_ok(protein)
    level = "fragment" if fragment else "precursor"
    ions = ion_table(
        path,
        keep=keep,
        run=text(raw, run_col),
        protein=protein,
        genes=text(raw, "PG.Genes") if "PG.Genes" in raw else protein,
        precursor=combine(*(raw[c] for c in ion), sep="|"),
        intensity=np.nan_to_num(intensity.to_numpy(), nan=0.0),
        read_as=f"Spectronaut {'fragment' if fragment_report else 'precursor'}-level report, {level} ions, "
        f"intensity {quantity}, runs from {run_col}",
    )
    if fragment_report and not fragment:  # the precursor quantity, repeated on each fragment row: read once
        ions = ions.drop_duplicates(["run", "protein", "precursor", "intensity"]).reset_index(drop=True)
    return ions
