"""Column-wise access to search-engine tables (Parquet, TSV, CSV) shared by the format readers.

Only the columns a reader asks for are read, through pyarrow, with text columns as categoricals: a
report of tens of millions of rows then costs a few bytes per row and column instead of a Python
string each. Tables compressed as ``.gz``, ``.bz2`` or ``.zip`` (one file inside) are read as they
are, and rows shorter than the header (older MaxQuant versions drop trailing empty fields) are
padded with empty values.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import warnings
import zipfile
from contextlib import contextmanager
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

#: Compression suffixes read transparently.
COMPRESSIONS = (".gz", ".bz2", ".zip")
_NULLS = ["", "NA", "NaN", "nan"]


def table_suffix(path: str | Path) -> str:
    """The suffix of the table inside any compression: ``report.tsv.gz`` -> ``.tsv``."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def run_name(path: str | Path) -> str:
    """The run a spectrum file holds: its name without ``.mzML`` (``.mzML.gz``, ``.raw``, ``.d``, ...).

    Search engines name runs this way (DIA-NN's ``Run``), and their wide tables by the file path.
    """
    name = Path(str(path).replace("\\", "/")).name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    for suffix in (".mzml", ".mzxml", ".raw", ".d", ".wiff", ".mgf", ".dia"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _delimiter(path: Path) -> str:
    return "," if table_suffix(path) == ".csv" else "\t"


@contextmanager
def open_table(path: str | Path):
    """A binary stream of the table, decompressed; a ``.zip`` must hold exactly one file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            yield fh
    elif suffix == ".bz2":
        with bz2.open(path, "rb") as fh:
            yield fh
    elif suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            # Only the member count matters: nothing is extracted, so member names are never used as paths.
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise DVPError(f"{path}: a zipped report must hold exactly one file, found {len(members)}")
            with archive.open(members[0]) as fh:
                yield fh
    else:
        with open(path, "rb") as fh:
            yield fh


def _seekable(path: Path, fh):
    """Parquet needs random access: a decompressed stream is read into memory first."""
    return pa.BufferReader(fh.read()) if path.suffix.lower() in COMPRESSIONS else fh


def columns(path: str | Path) -> list[str]:
    """The column names of a table, reading only its header (or Parquet schema)."""
    path = Path(path)
    if not path.is_file():
        raise DVPError(f"{path}: search-engine output not found")
    try:
        with open_table(path) as fh:
            if table_suffix(path) == ".parquet":
                return pq.read_schema(_seekable(path, fh)).names
            header = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace").readline().rstrip("\r\n")
    except DVPError:
        raise
    except Exception as err:  # pyarrow, gzip, zipfile raise several types for damaged files
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
        if table_suffix(path) == ".parquet":
            with open_table(path) as fh:
                source = _seekable(path, fh)
                schema = pq.read_schema(source)
                text = [c for c in wanted if pa.types.is_string(schema.field(c).type)]
                table = pq.read_table(source, columns=wanted, read_dictionary=text)
        else:
            table = _read_delimited(path, wanted)
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


def _read_delimited(path: Path, wanted: list[str]) -> pa.Table:
    """A TSV/CSV's ``wanted`` columns; rows shorter than the header are padded, longer ones refused."""
    ragged: list[tuple[str, int, int]] = []

    def on_invalid(row) -> str:
        ragged.append((row.text, row.expected_columns, row.actual_columns))
        return "skip" if row.actual_columns < row.expected_columns else "error"

    with open_table(path) as fh:
        try:
            table = pacsv.read_csv(
                fh,
                read_options=pacsv.ReadOptions(encoding="utf8"),
                parse_options=pacsv.ParseOptions(
                    delimiter=_delimiter(path), quote_char=False, invalid_row_handler=on_invalid
                ),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted,
                    auto_dict_encode=True,
                    auto_dict_max_cardinality=1 << 30,
                    null_values=_NULLS,
                    strings_can_be_null=True,
                ),
            )
        except pa.ArrowInvalid:
            row, expected, actual = ragged[-1] if ragged else ("", 0, 0)
            if actual > expected:
                raise DVPError(
                    f"{path}: the row starting {row[:60]!r} has {actual} fields but the header {expected}"
                ) from None
            raise
    if not ragged:
        return table
    # Short rows were skipped above; read again with pandas, which pads them with empty fields.
    with open_table(path) as fh:
        frame = pd.read_csv(
            fh,
            sep=_delimiter(path),
            usecols=wanted,
            dtype=str,
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_values=_NULLS,
            encoding="utf-8-sig",
        )
    return pa.Table.from_pandas(frame.astype("category"), preserve_index=False)


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


def ion_table(
    path, *, keep: np.ndarray, run, protein, genes, precursor, intensity, extra=None, read_as: str = ""
) -> pd.DataFrame:
    """Assemble the common ion table from kept rows, failing clearly when nothing is left.

    ``read_as`` (what was read: format, version, intensity column) is kept in ``attrs`` for the log.
    """
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
    out = out.reset_index(drop=True)
    out.attrs["read_as"] = read_as
    return out


def collapse_duplicates(ions: pd.DataFrame, rule: str, path) -> tuple[pd.DataFrame, int]:
    """Combine rows that report the same ion of a protein in the same run (``rule``: max, sum or error).

    Returns the table and the number of rows merged away.
    """
    keys = ["run", "protein", "precursor"]
    repeated = ions.duplicated(keys)
    n = int(repeated.sum())
    if n == 0:
        return ions, 0
    if rule == "error":
        first = ions[repeated].iloc[0]
        raise DVPError(
            f"{path}: {n} row(s) repeat an ion already reported in the same run (first: {first['precursor']} of "
            f"{first['protein']} in run {first['run']}); set quantify.duplicate_ions to max or sum to combine them"
        )
    if rule not in ("max", "sum"):
        raise DVPError(f"quantify.duplicate_ions: unknown rule {rule!r}; expected max, sum or error")
    how = {c: "first" for c in ions.columns if c not in keys}
    how["intensity"] = rule
    out = ions.groupby(keys, observed=True, sort=False).agg(how).reset_index()[list(ions.columns)]
    for name in ("run", "protein", "genes", "precursor"):
        out[name] = out[name].astype("category").cat.remove_unused_categories()
    out.attrs = dict(ions.attrs)
    return out, n


def wide_ions(
    path, raw: pd.DataFrame, run_columns: dict[str, str], *, protein: str, ion: str, genes: str | None, read_as: str
) -> pd.DataFrame:
    """The ion table of a wide table: ``run_columns`` maps each intensity column to its run."""
    ids = list(dict.fromkeys([protein, ion] + ([genes] if genes else [])))
    long = raw.melt(id_vars=ids, value_vars=list(run_columns), var_name="column", value_name="value")
    names = long[protein].astype(str)
    return ion_table(
        path,
        keep=np.ones(len(long), dtype=bool),
        run=long["column"].map(run_columns),
        protein=names,
        genes=long[genes].astype(str).replace("nan", "") if genes else names,
        precursor=long[ion].astype(str),
        intensity=np.nan_to_num(numeric(long, "value", path).to_numpy(), nan=0.0),
        read_as=read_as,
    )


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
        Regular expressions searched in the protein-group name; matching groups are dropped (after
        the engine's own decoy and contaminant flags).
    duplicate_ions
        How an ion reported more than once in one run is combined: ``max``, ``sum`` or ``error``.
    """

    precursor_q: float = _quantify_default("precursor_q")
    protein_q: float = _quantify_default("protein_q")
    match_between_runs: bool = _quantify_default("match_between_runs")
    quantity: str | None = _quantify_default("quantity")
    decoy_pattern: str = _quantify_default("decoy_pattern")
    contaminant_pattern: str = _quantify_default("contaminant_pattern")
    duplicate_ions: str = _quantify_default("duplicate_ions")

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
