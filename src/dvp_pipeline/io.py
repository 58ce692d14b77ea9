"""File helpers shared by the CLI of every stage.

Outputs are written to a temporary name in the destination folder and renamed when complete, so a
crashed or killed job never leaves a file that looks finished (Snakemake and users both trust that a
present file is whole).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from dvp_pipeline.errors import DVPError

__all__ = [
    "FILE_SYSTEM_ERRORS",
    "atomic_output",
    "file_system_error",
    "read_table",
    "write_json",
    "write_table",
    "write_text",
]

#: errno values meaning the file system refused a read or write: the user's to fix, not a bug. Each maps
#: to what the user is told (after the file's name).
FILE_SYSTEM_ERRORS = {
    errno.ENOSPC: "no space left on device; free some space (or write the results elsewhere) and run the stage again",
    errno.EDQUOT: "disk quota exceeded; free some space or raise the quota and run the stage again",
    errno.EFBIG: "file too large: the file-size limit (ulimit -f, or the cluster job's limit) was reached; "
    "raise it and run the stage again",
    errno.EROFS: "read-only file system; write the results to a writable folder",
    errno.EACCES: "permission denied",
    errno.EISDIR: "is a folder, expected a file",
    errno.ENOTDIR: "a file stands where a folder is expected",
}
# A write that ran out of room leaves earlier outputs as they were (see atomic_output); say so.
_WRITE_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def file_system_error(err: OSError) -> str | None:
    """The one-line message for a file-system refusal (disk full, quota, file-size limit, read-only, no
    permission), naming the file; ``None`` for any other :class:`OSError`, which is left to show as a bug.
    """
    reason = FILE_SYSTEM_ERRORS.get(err.errno)
    if reason is None:
        return None
    where = f"{err.filename}: " if err.filename is not None else ""
    kept = " (earlier outputs are unchanged and no partial file was left)" if err.errno in _WRITE_ONLY else ""
    return f"{where}{reason}{kept}"


#: The name :func:`atomic_output` writes to before the rename: ``.{stem}.tmp{pid}{suffix}``.
TEMPORARY_NAME = re.compile(r"^\..+\.tmp(\d+)(\.[^.]+)?$")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds.

    The temporary name keeps the suffix, so writers that choose a format from it still work. If the
    file system refuses the write (disk full, quota, file-size limit ...), the temporary file is removed
    and the :class:`OSError` is raised again naming ``path``, not the temporary name.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:  # a file where a folder should be: name that file
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), err.filename)
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(blocker)) from err
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{''.join(path.suffixes[-1:])}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        code = _refusal(err, tmp)
        if code is None:
            raise
        raise OSError(code, os.strerror(code), str(path)) from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _refusal(err: OSError, tmp: Path) -> int | None:
    """The errno of a file-system refusal behind ``err`` (see FILE_SYSTEM_ERRORS), else None."""
    if err.errno is not None:
        return err.errno if err.errno in FILE_SYSTEM_ERRORS else None
    # Some writers (numpy's tofile, under tifffile) report a short write without an errno: ask the file system.
    try:
        size = tmp.stat().st_size
        room = os.statvfs(tmp.parent)
    except OSError:
        return None
    try:
        import resource
    except ImportError:  # not on POSIX
        resource = None
    if resource is not None:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and size >= limit:
            return errno.EFBIG
    if room.f_bavail * room.f_frsize < 1 << 20:
        return errno.ENOSPC
    return None


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
    if path.is_dir():
        raise DVPError(f"{path}: is a folder, expected a table file")
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


def read_text(path: str | os.PathLike, *, what: str) -> str:
    """A UTF-8 text file, failing with a :class:`DVPError` naming it (``what`` it should be) when it is not text."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DVPError(f"{path}: not a text file in UTF-8 ({err}); is it {what}?") from err


def write_json(obj, path: str | os.PathLike) -> None:
    """Write JSON atomically (sorted keys, so reruns give identical files)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write text atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
