"""File helpers shared by the CLI of every stage.

Outputs are written to a temporary name in the destination folder and renamed when complete, so a
crashed or killed job never leaves a file that looks finished (Snakemake and users both trust that a
present file is whole).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from dvp_pipeline.errors import DVPError

__all__ = ["atomic_output", "read_table", "write_json", "write_table", "write_text"]


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds.

    The temporary name keeps the suffix, so writers that choose a format from it still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{''.join(path.suffixes[-1:])}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_table(table: pd.DataFrame, path: str | os.PathLike, *, index: bool = False) -> None:
    """Write a table atomically: Parquet for ``.parquet``, tab-separated text otherwise."""
    with atomic_output(path) as tmp:
        if str(path).endswith(".parquet"):
            table.to_parquet(tmp, index=index)
        else:
            table.to_csv(tmp, sep="\t", index=index, na_rep="NA")


def read_table(path: str | os.PathLike, **kwargs) -> pd.DataFrame:
    """Read a Parquet or tab-separated table, failing with a :class:`DVPError` that names the file."""
    path = Path(path)
    if not path.is_file():
        raise DVPError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path, **kwargs)
        return pd.read_csv(path, sep="\t", **kwargs)
    except DVPError:
        raise
    except Exception as err:  # pandas and pyarrow raise many types for unreadable files
        raise DVPError(f"{path}: cannot read table ({err})") from err


def write_json(obj, path: str | os.PathLike) -> None:
    """Write JSON atomically (sorted keys, so reruns give identical files)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write text atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
