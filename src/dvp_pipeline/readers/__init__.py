"""Readers of search-engine output, one module per format, all returning the same ion table.

The quantify stage calls :func:`read_ions`; the format is named in the config (``quantify.format``)
or told from the columns. Every reader returns one row per ion (precursor or fragment) and run with
columns run, protein, genes, precursor, intensity (linear), text columns as categoricals. The open
path from spectra (:mod:`dvp_pipeline.readers.mzml`) feeds the same table.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from dvp_pipeline.errors import DVPError
from dvp_pipeline.readers import alphadia, diann, diann_matrix, fragpipe, generic, spectronaut
from dvp_pipeline.readers._table import (
    HEADER_ONLY,
    ION_COLUMNS,
    ColumnsPresent,
    Filters,
    collapse_duplicates,
    columns,
    table_suffix,
)
from dvp_pipeline.readers.maxquant import Evidence, Peptides, ProteinGroups

#: Format name -> reader, in the order auto-detection tries them.
READERS = {
    "diann": diann,
    "diann_matrix": diann_matrix,
    "alphadia": alphadia,
    "alphadia_matrix": alphadia.Matrix,
    "spectronaut": spectronaut,
    "maxquant_evidence": Evidence,
    "maxquant_peptides": Peptides,
    "maxquant_proteingroups": ProteinGroups,
    "fragpipe": fragpipe,
    "generic": generic,
}
FORMATS = [*READERS, "mzml"]

log = logging.getLogger(__name__)

__all__ = [
    "FORMATS",
    "ION_COLUMNS",
    "READERS",
    "Filters",
    "check_columns",
    "detect_format",
    "read_ions",
    "report_runs",
]


def _reader_description(name: str) -> str:
    reader = READERS[name]
    return getattr(reader, "DESCRIPTION", name)


def supported() -> str:
    """One line per supported format, for error messages and --help."""
    lines = [f"{name}: {_reader_description(name)}" for name in READERS]
    lines.append("mzml: mzML spectra + mzIdentML/pepXML/mzTab identifications (quantify.spectra, .identifications)")
    return "; ".join(lines)


def detect_format(path: str | Path, fmt: str = "auto") -> str:
    """The format of a search-engine output: ``fmt`` when given, else told from its columns."""
    if fmt != "auto":
        if fmt not in FORMATS:
            raise DVPError(f"quantify.format: unknown format '{fmt}'; supported: {', '.join(FORMATS)}")
        return fmt
    path = Path(path)
    if table_suffix(path) in {".mzml", ".mzid", ".pepxml", ".mztab"} or path.name.lower().endswith(".pep.xml"):
        raise DVPError(
            f"{path}: spectra and identifications are read with quantify.format: mzml and the lists "
            "quantify.spectra and quantify.identifications, not as quantify.report"
        )
    cols = set(columns(path))
    for name, reader in READERS.items():
        if reader.detect(cols):
            return name
    shown = ", ".join(sorted(cols)[:10])
    raise DVPError(f"{path}: cannot tell the format from its columns ({shown} ...). Supported: {supported()}")


def read_ions(path: str | Path, *, fmt: str = "auto", filters: Filters | None = None) -> pd.DataFrame:
    """Read a search-engine output into the ion table, applying ``filters``; the log says what was read."""
    filters = filters or Filters()
    name = detect_format(path, fmt)
    if name == "mzml":
        raise DVPError("read_ions: the mzml format reads several files; use dvp_pipeline.readers.mzml.quantify_runs")
    ions = READERS[name].read(Path(path), filters)
    log.info("%s: read as %s", path, ions.attrs.get("read_as") or name)
    ions, merged = collapse_duplicates(ions, filters.duplicate_ions, path)
    if merged:
        log.warning(
            "%s: %d row(s) repeated an ion already reported in the same run; combined by %s (quantify.duplicate_ions)",
            path,
            merged,
            filters.duplicate_ions,
        )
    return ions


def report_runs(path: str | Path, *, fmt: str = "auto") -> set[str]:
    """The run names in a search-engine output, reading only its run column."""
    name = detect_format(path, fmt)
    if name == "mzml":
        raise DVPError("report_runs: the runs of the mzml format are the names of the mzML files")
    return READERS[name].runs(Path(path))


def check_columns(path: str | Path, *, fmt: str = "auto", filters: Filters | None = None) -> str:
    """Check, from the header alone, that a report has every column its reader will read; return the format.

    The reader itself decides which columns it wants (format, version, ``quantity``, match-between-runs),
    so the dry run checks exactly what the quantify job will read, without reading any rows.
    """
    name = detect_format(path, fmt)
    if name == "mzml":
        raise DVPError("check_columns: the mzml format has no report; its files are checked by name")
    token = HEADER_ONLY.set(True)
    try:
        READERS[name].read(Path(path), filters or Filters())
    except ColumnsPresent:
        pass
    finally:
        HEADER_ONLY.reset(token)
    return name
