"""MaxQuant ``evidence.txt`` (precursor level), ``peptides.txt`` and ``proteinGroups.txt`` (wide).

Rows flagged ``Reverse``, ``Potential contaminant`` (``Contaminant`` in old versions) or, in
proteinGroups, ``Only identified by site`` are dropped, then the decoy and contaminant patterns
apply as in every format. Rows of older versions that drop trailing empty fields are read padded.

Runs: evidence.txt has one row per feature and *raw file*, so its runs are the ``Raw file`` names;
peptides.txt and proteinGroups.txt have one column per *experiment* (``Intensity <experiment>``),
so theirs are the ``Experiment`` names. They differ when an experiment has several raw files
(fractions) or was named in MaxQuant. peptides.txt gives one ion per peptide sequence;
proteinGroups.txt has one intensity per protein and experiment (``LFQ intensity <experiment>``,
else ``Intensity <experiment>``): each protein becomes a single ion, so MaxLFQ returns MaxQuant's
own values and top-N/sum the same.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError
from dvp_pipeline.readers._table import Filters, columns, combine, ion_table, numeric, read_columns, text, wide_ions

__all__ = ["Evidence", "Peptides", "ProteinGroups"]

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
        optional = [c for c in ("Gene names",) if c in present]
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
            read_as=f"MaxQuant evidence.txt ({_version(present)}), intensity {quantity}, runs named by Raw file",
        )


class _Wide:
    """A MaxQuant table with one intensity column per experiment (``<prefix><experiment>``)."""

    NAME = DESCRIPTION = ""
    PROTEIN = ION = ""
    FLAGS = FLAGS

    @staticmethod
    def _intensity_columns(path, present: list[str], prefix: str | None) -> tuple[str, list[str]]:
        for p in [prefix] if prefix else ["LFQ intensity ", "Intensity "]:
            p = p if p.endswith(" ") else p + " "
            found = [c for c in present if c.startswith(p) and len(c) > len(p)]
            if found:
                return p, found
        wanted = f"'{prefix} <experiment>'" if prefix else "'LFQ intensity <experiment>' or 'Intensity <experiment>'"
        raise DVPError(f"{path}: no per-experiment intensity columns ({wanted})")

    @classmethod
    def runs(cls, path) -> set[str]:
        prefix, cols = cls._intensity_columns(path, columns(path), None)
        return {c[len(prefix) :] for c in cols}

    @classmethod
    def read(cls, path, filters: Filters | None = None):
        filters = filters or Filters()
        present = columns(path)
        prefix, quant = cls._intensity_columns(path, present, filters.quantity)
        flags = [c for c in cls.FLAGS if c in present]
        genes = ["Gene names"] if "Gene names" in present else []
        ids = list(dict.fromkeys([cls.PROTEIN, cls.ION]))
        raw = read_columns(path, ids + genes + flags + quant, what=cls.DESCRIPTION)
        raw = raw[_unflagged(raw, flags)]
        raw = raw[filters.protein_ok(text(raw, cls.PROTEIN))]
        ions = wide_ions(
            path,
            raw,
            {c: c[len(prefix) :] for c in quant},
            protein=cls.PROTEIN,
            ion=cls.ION,
            genes=genes[0] if genes else None,
            read_as=f"{cls.DESCRIPTION.split(' (')[0]} ({_version(set(present))}), intensity '{prefix.strip()} "
            "<experiment>', runs named by Experiment",
        )
        ions.attrs["quantified"] = cls.PROTEIN == cls.ION  # proteinGroups: MaxQuant's protein quantities
        return ions


class Peptides(_Wide):
    NAME = "maxquant_peptides"
    DESCRIPTION = "MaxQuant peptides.txt (Sequence, Leading razor protein, Intensity <experiment> ...)"
    PROTEIN, ION = "Leading razor protein", "Sequence"
    FLAGS = [f for f in FLAGS if f != "Only identified by site"]

    @staticmethod
    def detect(cols: set[str]) -> bool:
        return {"Sequence", "Leading razor protein"} <= cols and "Raw file" not in cols


class ProteinGroups(_Wide):
    NAME = "maxquant_proteingroups"
    DESCRIPTION = "MaxQuant proteinGroups.txt (Protein IDs, Majority protein IDs, LFQ intensity <experiment> ...)"
    PROTEIN = ION = "Majority protein IDs"

    @staticmethod
    def detect(cols: set[str]) -> bool:
        return {"Protein IDs", "Majority protein IDs"} <= cols


def _version(cols: set[str]) -> str:
    return "MaxQuant before 1.6, flag Contaminant" if "Contaminant" in cols else "MaxQuant 1.6 or later"


def _unflagged(raw: pd.DataFrame, flags: list[str]) -> np.ndarray:
    keep = np.ones(len(raw), dtype=bool)
    for c in flags:
        keep &= raw[c].astype(str).str.strip().ne("+").to_numpy()
    return keep
