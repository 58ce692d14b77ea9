"""FragPipe (IonQuant) ``combined_ion.tsv``: one row per ion (modified sequence and charge), one
``<sample> Intensity`` column per sample (``<sample> MaxLFQ Intensity`` with ``quantity: MaxLFQ
Intensity``). FragPipe writes it FDR-filtered; contaminants (``contam_``) and decoys (``rev_``) are
found by the patterns in the ``Protein`` column. The protein is ``Protein ID`` (the accession).
FragPipe's DIA workflow writes a DIA-NN report, read as format diann.
"""

from __future__ import annotations

from dvp_pipeline.errors import DVPError
from dvp_pipeline.readers._table import Filters, columns, combine, read_columns, text, wide_ions

__all__ = ["detect", "read", "runs"]

NAME = "fragpipe"
DESCRIPTION = "FragPipe combined_ion.tsv (Modified Sequence, Charge, Protein, Protein ID, <sample> Intensity)"
REQUIRED = ["Modified Sequence", "Charge", "Protein", "Protein ID"]


def detect(cols: set[str]) -> bool:
    return set(REQUIRED) <= cols and any(c.endswith(" Intensity") for c in cols)


def _run_columns(path, present: list[str], quantity: str | None) -> dict[str, str]:
    suffix = " " + (quantity or "Intensity")
    found = {c: c[: -len(suffix)] for c in present if c.endswith(suffix) and len(c) > len(suffix)}
    if quantity is None:  # "<sample> MaxLFQ Intensity" also ends in " Intensity"
        found = {c: run for c, run in found.items() if not run.endswith(" MaxLFQ")}
    if not found:
        raise DVPError(f"{path}: no '<sample>{suffix}' columns")
    return found


def runs(path) -> set[str]:
    return set(_run_columns(path, columns(path), None).values())


def read(path, filters: Filters | None = None):
    filters = filters or Filters()
    present = columns(path)
    run_columns = _run_columns(path, present, filters.quantity)
    genes = ["Gene"] if "Gene" in present else []
    raw = read_columns(path, REQUIRED + genes + list(run_columns), what=DESCRIPTION)
    raw = raw[filters.protein_ok(text(raw, "Protein"))]
    raw = raw.assign(ion=combine(raw["Modified Sequence"], raw["Charge"], sep="|"))
    return wide_ions(
        path,
        raw,
        run_columns,
        protein="Protein ID",
        ion="ion",
        genes=genes[0] if genes else None,
        read_as=f"FragPipe combined_ion.tsv, intensity '<sample> {filters.quantity or 'Intensity'}'",
    )
