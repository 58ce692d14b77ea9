"""Column-wise access to search-engine tables (Parquet, TSV, CSV) shared by the format readers.

Only the columns a reader asks for are read, through pyarrow, with text columns as categoricals: a
report of tens of millions of rows then costs a few bytes per row and column instead of a Python
string each.
"""

from __future__ import annotations

import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dvp_pipeline.errors import DVPError
from dvp_pipeline.options import schema_default

#: The intermediate every reader returns, one row per ion (precursor or fragment) and run.
ION_COLUMNS = ["run", "protein", "genes", "precursor", "intensity"]


def _delimiter(path: Path) -> str:
    return "," if path.suffix.lower() == ".csv" else "\t"


def columns(path: str | Path) -> list[str]:
    """The column names of a table, reading only its header (or Parquet schema)."""
    path = Path(path)
    if not path.is_file():
        raise DVPError(f"{path}: search-engine output not found")
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_schema(path).names
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            header = fh.readline().rstrip("\r\n")
    except Exception as err:  # pyarrow raises several types for damaged files
        raise DVPError(f"{path}: cannot read the header ({err}); is it a complete Parquet/TSV file?") from err
    if not header:
        raise DVPError(f"{path}: the file is empty, expected a header line")
    return header.split(_delimiter(path))


#: Set by :func:`dvp_pipeline.readers.check_columns`: readers then stop once their columns are known present.
HEADER_ONLY: ContextVar[bool] = ContextVar("header_only", default=False)


class ColumnsPresent(Exception):
    """Raised by :func:`read_columns` in header-only mode: every column the reader wants is there."""


def read_columns(path: str | Path, wanted: list[str], *, what: str) -> pd.DataFrame:
    """Read ``wanted`` columns of a table; text columns come back as categoricals.

    ``what`` names the expected format in the message when a column is missing.
    """
    path = Path(path)
    wanted = list(dict.fromkeys(wanted))
    present = columns(path)
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DVPError(f"{path}: missing column(s) {', '.join(missing)} expected in {what}")
    if HEADER_ONLY.get():
        raise ColumnsPresent
    try:
        if path.suffix.lower() == ".parquet":
            schema = pq.read_schema(path)
            text = [c for c in wanted if pa.types.is_string(schema.field(c).type)]
            table = pq.read_table(path, columns=wanted, read_dictionary=text)
        else:
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(encoding="utf8"),
                parse_options=pacsv.ParseOptions(delimiter=_delimiter(path), quote_char=False),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted,
                    auto_dict_encode=True,
                    auto_dict_max_cardinality=1 << 30,
                    null_values=["", "NA", "NaN", "nan"],
                    strings_can_be_null=True,
                ),
            )
        nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
        if nested:
            raise DVPError(f"{path}: column(s) {', '.join(nested)} hold lists or records, expected text or numbers")
        # pyarrow reads a text column whose bytes are not UTF-8 as binary, which pandas cannot decode.
        binary = [
            f.name
            for f in table.schema
            if pa.types.is_binary(f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
        ]
        if binary:
            raise DVPError(f"{path}: column(s) {', '.join(binary)} are not UTF-8 text; export the report as UTF-8")
        return table.to_pandas()  # inside the try: damaged pandas metadata in a Parquet file fails here
    except DVPError:
        raise
    except Exception as err:
        raise DVPError(f"{path}: cannot read columns {', '.join(wanted)} ({err})") from err


def numeric(frame: pd.DataFrame, column: str, path: str | Path, *, allow_negative: bool = False) -> pd.Series:
    """A column as float, failing on text that is not a number (naming the row) and on negatives."""
    raw = frame[column]
    if isinstance(raw.dtype, pd.CategoricalDtype) or raw.dtype == object:
        values = pd.to_numeric(raw.astype(str).where(raw.notna()), errors="coerce")
    else:
        values = raw.astype(float)
    bad = raw.notna().to_numpy() & values.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DVPError(f"{path}: column {column}, row {row + 1}: {raw.iloc[row]!r} is not a number")
    if not allow_negative:
        neg = (values < 0).to_numpy()
        if neg.any():
            row = int(np.flatnonzero(neg)[0])
            raise DVPError(f"{path}: column {column}, row {row + 1}: negative intensity {values.iloc[row]}")
    return values


def text(frame: pd.DataFrame, column: str) -> pd.Series:
    """A text column as a categorical of strings (missing values as '')."""
    col = frame[column]
    if not isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype("category")
    if not pd.api.types.is_string_dtype(col.cat.categories) or col.isna().any():
        col = col.cat.rename_categories(col.cat.categories.astype(str))
        if col.isna().any():
            col = col.cat.add_categories([""]).fillna("") if "" not in col.cat.categories else col.fillna("")
    return col.cat.remove_unused_categories()


def ion_table(path, *, keep: np.ndarray, run, protein, genes, precursor, intensity, extra=None) -> pd.DataFrame:
    """Assemble the common ion table from kept rows, failing clearly when nothing is left."""
    keep = np.asarray(keep, dtype=bool) & (np.asarray(intensity) > 0)
    if not keep.any():
        raise DVPError(
            f"{path}: no precursor passes the filters (q-value cut-offs, decoys, contaminants, intensity > 0)"
        )
    out = pd.DataFrame(
        {
            "run": pd.Series(run)[keep],
            "protein": pd.Series(protein)[keep],
            "genes": pd.Series(genes)[keep],
            "precursor": pd.Series(precursor)[keep],
            "intensity": np.asarray(intensity, dtype=float)[keep],
        }
    )
    for name, values in (extra or {}).items():
        out[name] = np.asarray(values)[keep]
    for name in ("run", "protein", "genes", "precursor"):
        out[name] = out[name].astype("category").cat.remove_unused_categories()
    return out.reset_index(drop=True)


def combine(*parts: pd.Series, sep: str = "") -> pd.Series:
    """Join text columns row-wise into one categorical (e.g. sequence + charge -> precursor id)."""
    out = parts[0].astype(str)
    for p in parts[1:]:
        out = out + sep + p.astype(str)
    return out.astype("category")


def _quantify_default(key: str):
    return field(default_factory=lambda: schema_default("quantify", key))


@dataclass(frozen=True)
class Filters:
    """What the readers keep; the defaults are the quantify section's, read from the config schema.

    Attributes
    ----------
    precursor_q, protein_q
        Run-specific precursor and protein-group q-value cut-offs.
    match_between_runs
        DIA-NN run with match-between-runs: also require ``Lib.Q.Value`` and ``Lib.PG.Q.Value``
        below the same cut-offs, as DIA-NN's documentation recommends.
    quantity
        Intensity column where a format has several (``None``: the format's default).
    decoy_pattern, contaminant_pattern
        Regular expressions searched in the protein-group name; matching groups are dropped.
    """

    precursor_q: float = _quantify_default("precursor_q")
    protein_q: float = _quantify_default("protein_q")
    match_between_runs: bool = _quantify_default("match_between_runs")
    quantity: str | None = _quantify_default("quantity")
    decoy_pattern: str = _quantify_default("decoy_pattern")
    contaminant_pattern: str = _quantify_default("contaminant_pattern")

    @classmethod
    def from_options(cls, options) -> Filters:
        """The filters of a :class:`~dvp_pipeline.options.QuantifyOptions`."""
        return cls(**{name: getattr(options, name) for name in cls.__dataclass_fields__})

    def protein_ok(self, protein: pd.Series) -> np.ndarray:
        """Rows whose protein group is neither a decoy nor a contaminant (regex run per category)."""
        col = protein if isinstance(protein.dtype, pd.CategoricalDtype) else protein.astype("category")
        names = pd.Series(col.cat.categories.astype(str))
        bad = np.zeros(len(names), dtype=bool)
        with warnings.catch_warnings():  # a user's pattern may have capturing groups; only matching counts
            warnings.simplefilter("ignore", UserWarning)
            for pattern in (self.decoy_pattern, self.contaminant_pattern):
                if pattern:
                    bad |= names.str.contains(pattern, regex=True).to_numpy()
        codes = col.cat.codes.to_numpy()
        return (codes >= 0) & ~bad[np.maximum(codes, 0)]
