"""A generic long table: protein, ion, run, intensity (optional genes), TSV, CSV or Parquet."""

from __future__ import annotations

import numpy as np

from dvp_pipeline.readers._table import Filters, columns, ion_table, numeric, read_columns, text

__all__ = ["detect", "read", "runs"]

NAME = "generic"
DESCRIPTION = "generic long table with columns protein, ion, run, intensity (optional genes)"
REQUIRED = ["protein", "ion", "run", "intensity"]


def detect(cols: set[str]) -> bool:
    return set(REQUIRED) <= cols


def runs(path) -> set[str]:
    return set(read_columns(path, ["run"], what=DESCRIPTION)["run"].astype(str).unique())


def read(path, filters: Filters | None = None):
    filters = filters or Filters()
    present = set(columns(path))
    raw = read_columns(path, REQUIRED + (["genes"] if "genes" in present else []), what=DESCRIPTION)
    intensity = numeric(raw, filters.quantity or "intensity", path)
    protein = text(raw, "protein")
    return ion_table(
        path,
        keep=filters.protein_ok(protein),
        run=text(raw, "run"),
        protein=protein,
        genes=text(raw, "genes") if "genes" in raw else protein,
        precursor=text(raw, "ion"),
        intensity=np.nan_to_num(intensity.to_numpy(), nan=0.0),
    )
