"""DIA-NN's wide matrices: ``report.pg_matrix.tsv`` (proteins) and ``report.pr_matrix.tsv`` (precursors).

One row per protein group (or precursor), one column per run, named by the run's file path; the run
is the file name without its extension, as in the main report's ``Run`` column. DIA-NN writes them
already filtered (1% global q-values) and, for the protein matrix, already quantified (MaxLFQ):
its values are taken as they are (``quantified``), so the quantify method is not applied again; the
precursor matrix goes through it like any ion table. Decoy and contaminant patterns apply.
"""

from __future__ import annotations

from dvp_pipeline.errors import DVPError
from dvp_pipeline.readers._table import Filters, columns, read_columns, run_name, text, wide_ions

__all__ = ["detect", "read", "runs"]

NAME = "diann_matrix"
DESCRIPTION = "DIA-NN report.pg_matrix.tsv or report.pr_matrix.tsv (Protein.Group, Genes, ..., one column per run)"
#: Annotation columns DIA-NN writes before the runs (1.8 to 2.x); every other column is a run.
ANNOTATION = {
    "Protein.Group",
    "Protein.Ids",
    "Protein.Names",
    "Genes",
    "First.Protein.Description",
    "N.Sequences",
    "N.Proteotypic.Sequences",
    "Proteotypic",
    "Stripped.Sequence",
    "Modified.Sequence",
    "Precursor.Charge",
    "Precursor.Id",
}


def detect(cols: set[str]) -> bool:
    return "Protein.Group" in cols and not {"Run", "File.Name"} & cols and bool(cols - ANNOTATION)


def _run_columns(path, present: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for column in (c for c in present if c not in ANNOTATION):
        run = run_name(column)
        if run in out.values():
            raise DVPError(f"{path}: two run columns name the run '{run}' (file names without extension)")
        out[column] = run
    if not out:
        raise DVPError(f"{path}: no run columns after the annotation columns")
    return out


def runs(path) -> set[str]:
    return set(_run_columns(path, columns(path)).values())


def read(path, filters: Filters | None = None):
    filters = filters or Filters()
    present = columns(path)
    if filters.quantity:
        raise DVPError(f"{path}: a DIA-NN matrix has one value per run; quantify.quantity must be null")
    run_columns = _run_columns(path, present)
    ion = "Precursor.Id" if "Precursor.Id" in present else "Protein.Group"
    genes = ["Genes"] if "Genes" in present else []
    raw = read_columns(path, list(dict.fromkeys(["Protein.Group", ion, *genes, *run_columns])), what=DESCRIPTION)
    raw = raw[filters.protein_ok(text(raw, "Protein.Group"))]
    kind = "protein" if ion == "Protein.Group" else "precursor"
    ions = wide_ions(
        path,
        raw,
        run_columns,
        protein="Protein.Group",
        ion=ion,
        genes=genes[0] if genes else None,
        read_as=f"DIA-NN {kind} matrix, {len(run_columns)} runs"
        + (" (quantified by DIA-NN: the quantify method is not applied)" if kind == "protein" else ""),
    )
    ions.attrs["quantified"] = kind == "protein"
    return ions
