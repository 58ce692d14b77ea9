"""Compare two results folders of the workflow: are the outputs of a refactor the same as before?

Usage: python bench/compare_results.py OLD_RESULTS NEW_RESULTS

Every file under the folders except the reports is compared byte for byte; the HTML reports are
compared after blanking what legitimately changes between runs (embedded PNG payloads and ISO 8601
timestamps: generation time, input files' modification times). Prints each difference and a summary
line; exits 1 when anything differs. Issue 8's redesign was checked this way on the demo and on a
second config (tiles as jobs, ORA and GSEA, an interaction, GSVA scores, imputation).
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

PNG = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2}|Z)?")


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _html(path: Path) -> list[str]:
    return TIME.sub("<TIME>", PNG.sub("<PNG>", path.read_text(encoding="utf-8"))).splitlines()


def compare(old: Path, new: Path) -> int:
    """Print the differences between two results folders; return how many files differ."""
    a, b = _files(old), _files(new)
    differ = 0
    for name in sorted(a ^ b):
        print(f"only in {'old' if name in a else 'new'}: {name}")
        differ += 1
    for name in sorted(a & b):
        if name.endswith(".html"):
            diff = list(difflib.unified_diff(_html(old / name), _html(new / name), lineterm="", n=0))
            if diff:
                differ += 1
                print(f"DIFFERENT {name}:\n" + "\n".join(line[:200] for line in diff[2:22]))
        elif (old / name).read_bytes() != (new / name).read_bytes():
            differ += 1
            print(f"DIFFERENT {name}")
    print(f"{len(a & b)} files compared, {differ} differ")
    return differ


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(1 if compare(Path(sys.argv[1]), Path(sys.argv[2])) else 0)
