"""AlphaDIA output: the precursor table (1.x ``precursors.tsv``, 2.x ``precursors.parquet``) and the
protein matrix (``pg.matrix.tsv`` / ``.parquet``).

2.x renamed the columns (``run`` -> ``raw.name``, ``pg`` -> ``pg.name``, ``qval`` ->
``precursor.qval``, ...; alphaDIA's breaking-changes notes for 2.0.0); both sets are read. In 1.x the
precursor table's ``intensity`` is the *protein group's* intensity repeated on each of its precursors
(2.x calls it ``pg.intensity`` and adds ``precursor.intensity``). Read with such a protein-level
quantity, each protein group is one ion holding alphaDIA's own protein quantity, kept as it is; with
a precursor quantity (2.x's default ``precursor.intensity``), precursors go through the quantify method.
"""

from __future__ import annotations

import numpy as np

from dvp_pipeline.errors import DVPError
from dvp_pipeline.readers._table import Filters, columns, combine, ion_table, numeric, read_columns, text, wide_ions

__all__ = ["Matrix", "detect", "read", "runs"]

NAME = "alphadia"
DESCRIPTION = "AlphaDIA precursors table (1.x run, pg, qval, intensity; 2.x raw.name, pg.name, precursor.qval, ...)"

_V1 = {
    "run": "run",
    "pg": "pg",
    "qval": "qval",
    "pg_qval": "pg_qval",
    "decoy": "decoy",
    "genes": "genes",
    "intensity": "intensity",
    "ions": [["mod_seq_charge_hash"], ["sequence", "mods", "charge"], ["precursor_idx"]],
}
_V2 = {
    "run": "raw.name",
    "pg": "pg.name",
    "qval": "precursor.qval",
    "pg_qval": "pg.qval",
    "decoy": "precursor.decoy",
    "genes": "pg.genes",
    "intensity": "precursor.intensity",
    "ions": [
        ["precursor.mod_seq_charge_hash"],
        ["precursor.sequence", "precursor.mods", "precursor.charge"],
        ["precursor.idx"],
    ],
}
#: Quantities that hold the protein group's intensity, the same on each of its precursors.
PROTEIN_LEVEL = {"intensity", "pg.intensity"}


def _names(cols: set[str]) -> dict | None:
    for names in (_V2, _V1):
        if {names["run"], names["pg"], names["qval"]} <= cols and any(set(i) <= cols for i in names["ions"]):
            return names
    return None


def detect(cols: set[str]) -> bool:
    return _names(cols) is not None


def _version(names: dict) -> str:
    return "2.x" if names is _V2 else "1.x"


def runs(path) -> set[str]:
    names = _names(set(columns(path))) or _V1
    return set(text(read_columns(path, [names["run"]], what=DESCRIPTION), names["run"]).astype(str).unique())


def read(path, filters: Filters | None = None):
    filters = filters or Filters()
    present = set(columns(path))
    names = _names(present) or _V1  # a forced format with neither set: read_columns names what is missing
    quantity = filters.quantity or names["intensity"]
    protein_level = quantity in PROTEIN_LEVEL
    ion = next((i for i in names["ions"] if set(i) <= present), names["ions"][-1])
    optional = [names[k] for k in ("genes", "pg_qval", "decoy") if names[k] in present]
    raw = read_columns(path, [names["run"], names["pg"], names["qval"], quantity] + ion + optional, what=DESCRIPTION)
    q = numeric(raw, names["qval"], path).to_numpy()
    keep = q <= filters.precursor_q
    if names["pg_qval"] in raw:
        keep &= numeric(raw, names["pg_qval"], path).to_numpy() <= filters.protein_q
    if names["decoy"] in raw:
        keep &= numeric(raw, names["decoy"], path).fillna(0).to_numpy() == 0
    protein = text(raw, names["pg"])
    keep &= filters.protein_ok(protein)
    ions = ion_table(
        path,
        keep=keep,
        run=text(raw, names["run"]),
        protein=protein,
        genes=text(raw, names["genes"]) if names["genes"] in raw else protein,
        precursor=protein if protein_level else combine(*(raw[c] for c in ion), sep="|"),
        intensity=np.nan_to_num(numeric(raw, quantity, path).to_numpy(), nan=0.0),
        extra={"q_value": q},
        read_as=f"AlphaDIA {_version(names)} precursor table, intensity {quantity}"
        + (" (the protein group's, kept as alphaDIA quantified it)" if protein_level else ""),
    )
    if protein_level:  # one value per protein group and run, repeated on its precursors: read once
        ions = ions.drop_duplicates(["run", "protein", "intensity"]).reset_index(drop=True)
        ions.attrs["quantified"] = True
    return ions


class Matrix:
    """AlphaDIA's protein matrix: ``pg`` (2.x ``pg.name``), then one column per run; 0 is not measured."""

    NAME = "alphadia_matrix"
    DESCRIPTION = "AlphaDIA pg.matrix.tsv or pg.matrix.parquet (pg, then one column per run)"

    @staticmethod
    def _protein(cols) -> str | None:
        return next((c for c in ("pg.name", "pg") if c in cols), None)

    @classmethod
    def detect(cls, cols: set[str]) -> bool:
        # The protein column first and every other column a run: nothing else distinguishes this matrix.
        return cls._protein(cols) is not None and len(cols) > 1 and not {"qval", "precursor.qval", "run"} & cols

    @classmethod
    def runs(cls, path) -> set[str]:
        present = columns(path)
        return {c for c in present if c != cls._protein(present)}

    @classmethod
    def read(cls, path, filters: Filters | None = None):
        filters = filters or Filters()
        present = columns(path)
        protein = cls._protein(present)
        if protein is None or filters.quantity:
            raise DVPError(f"{path}: expected {cls.DESCRIPTION}, with quantify.quantity null")
        run_columns = {c: c for c in present if c != protein}
        raw = read_columns(path, [protein, *run_columns], what=cls.DESCRIPTION)
        raw = raw[filters.protein_ok(text(raw, protein))]
        ions = wide_ions(
            path,
            raw,
            run_columns,
            protein=protein,
            ion=protein,
            genes=None,
            read_as=f"AlphaDIA protein matrix, {len(run_columns)} runs (quantified by alphaDIA: kept as it is)",
        )
        ions.attrs["quantified"] = True
        return ions
