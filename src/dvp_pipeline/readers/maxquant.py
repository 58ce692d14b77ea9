"""MaxQuant ``evidence.txt`` (precursor level) and ``proteinGroups.txt`` (protein level, wide).

Rows flagged ``Reverse``, ``Potential contaminant`` (``Contaminant`` in old versions) or, in
proteinGroups, ``Only identified by site`` are dropped. proteinGroups has one intensity per protein
and run (``LFQ intensity <run>``, else ``Intensity <run>``): each protein becomes a single ion, so
MaxLFQ returns MaxQuant's own values and top-N/sum the same.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError
from dvp_pipeline.readers._table import Filters, columns, combine, ion_table, numeric, read_columns, text

__all__ = ["Evidence", "ProteinGroups"]

FLAGS = ["Reverse", "Potential contaminant", "Contaminant", "Only identified by site"]


class Evidence:
    NAME = "maxquant_evidence"
    DESCRIPTION = "MaxQuant evidence.txt (Raw file, Leading razor protein, Modified sequence, Charge, Intensity)"
    REQUIRED = ["Raw file", "Leading razor protein", "Modified sequence", "Charge"]

    @staticmethod
    def detect(cols: set[str]) -> bool:
        return {"Raw file", "Modified sequence", "Charge"} <= cols

    @classmethod
    def runs(cls, path) -> set[str]:
        return set(read_columns(path, ["Raw file"], what=cls.DESCRIPTION)["Raw file"].astype(str).unique())

    @classmethod
    def read(cls, path, filters: Filters | None = None):
        filters = filters or Filters()
        present = set(columns(path))
        quantity = filters.quantity or "Intensity"
        flags = [c for c in FLAGS if c in present]
        optional = [c for c in ("Gene names", "PEP") if c in present]
        raw = read_columns(path, cls.REQUIRED + [quantity] + flags + optional, what=cls.DESCRIPTION)
        keep = _unflagged(raw, flags)
        protein = text(raw, "Leading razor protein")
        keep &= filters.protein_ok(protein)
        return ion_table(
            path,
            keep=keep,
            run=text(raw, "Raw file"),
            protein=protein,
            genes=text(raw, "Gene names") if "Gene names" in raw else protein,
            precursor=combine(raw["Modified sequence"], raw["Charge"], sep="|"),
            intensity=np.nan_to_num(numeric(raw, quantity, path).to_numpy(), nan=0.0),
        )


class ProteinGroups:
    NAME = "maxquant_proteingroups"
    DESCRIPTION = "MaxQuant proteinGroups.txt (Protein IDs, Majority protein IDs, LFQ intensity <run> ...)"

    @staticmethod
    def detect(cols: set[str]) -> bool:
        return {"Protein IDs", "Majority protein IDs"} <= cols

    @staticmethod
    def _intensity_columns(path, present: list[str], prefix: str | None) -> tuple[str, list[str]]:
        for p in [prefix] if prefix else ["LFQ intensity ", "Intensity "]:
            p = p if p.endswith(" ") else p + " "
            found = [c for c in present if c.startswith(p) and len(c) > len(p)]
            if found:
                return p, found
        raise DVPError(f"{path}: no per-run intensity columns ('LFQ intensity <run>' or 'Intensity <run>')")

    @classmethod
    def runs(cls, path) -> set[str]:
        prefix, cols = cls._intensity_columns(path, columns(path), None)
        return {c[len(prefix) :] for c in cols}

    @classmethod
    def read(cls, path, filters: Filters | None = None):
        filters = filters or Filters()
        present = columns(path)
        prefix, quant = cls._intensity_columns(path, present, filters.quantity)
        flags = [c for c in FLAGS if c in present]
        genes = ["Gene names"] if "Gene names" in present else []
        raw = read_columns(path, ["Majority protein IDs"] + genes + flags + quant, what=cls.DESCRIPTION)
        raw = raw[_unflagged(raw, flags)]
        protein = text(raw, "Majority protein IDs")
        raw = raw[filters.protein_ok(protein)]
        long = raw.melt(id_vars=["Majority protein IDs"] + genes, value_vars=quant, var_name="run", value_name="v")
        intensity = numeric(long, "v", path).rename(None)
        run = long["run"].str.slice(len(prefix))
        protein = long["Majority protein IDs"].astype(str)
        return ion_table(
            path,
            keep=np.ones(len(long), dtype=bool),
            run=run,
            protein=protein,
            genes=long["Gene names"].astype(str).replace("nan", "") if genes else protein,
            precursor=protein,
            intensity=np.nan_to_num(intensity.to_numpy(), nan=0.0),
        )


def _unflagged(raw: pd.DataFrame, flags: list[str]) -> np.ndarray:
    keep = np.ones(len(raw), dtype=bool)
    for c in flags:
        keep &= raw[c].astype(str).str.strip().ne("+").to_numpy()
    return keep
