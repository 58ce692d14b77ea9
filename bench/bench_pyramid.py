"""Label-pyramid benchmark: wall time and peak memory of ``write_label_pyramid`` on a whole slide.

Writes a synthetic 20,000 x 20,000 uint32 label image (about 1.8 million square cells of 14 pixels
with one-pixel gaps; 1.6 GB uncompressed) tile by tile into a tiled, zlib-compressed TIFF like the one
``dvp segment`` writes, without ever holding it in memory, then runs
:func:`dvp_pipeline.pyramid.write_label_pyramid` on it in a separate process and records its wall time
and peak resident memory (``os.wait4``). The levels written are checked against the labels they
should hold (``labels[::2**k, ::2**k]``, computed from the cells' formula) on random windows.

Usage::

    python bench/bench_pyramid.py [--size 20000] [--levels 4] [--tile 4096] [--scratch /tmp/dvp-bench-pyramid]
        [--out bench/results/pyramid.md]

Run on the project machine (2 cores); the result is bench/results/pyramid.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

CELL = 15  # pixels per cell period: a 14-pixel cell and a one-pixel gap
TIFF_TILE = 512


def labels_at(rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """The synthetic labels at the given (broadcast) pixel rows and columns: square cells numbered row-wise."""
    per_row = -(-size // CELL)
    labels = (rows // CELL) * per_row + cols // CELL + 1
    gap = (rows % CELL == CELL - 1) | (cols % CELL == CELL - 1)
    return np.where(gap, 0, labels).astype(np.uint32)


def write_labels(path: Path, size: int) -> None:
    """The label image as a tiled TIFF, one 512 x 512 tile at a time."""

    def tiles():
        for y in range(0, size, TIFF_TILE):
            for x in range(0, size, TIFF_TILE):
                rows = np.arange(y, y + TIFF_TILE)[:, None]
                cols = np.arange(x, x + TIFF_TILE)[None, :]
                yield labels_at(rows, cols, size)

    tifffile.imwrite(
        path, tiles(), shape=(size, size), dtype=np.uint32, tile=(TIFF_TILE, TIFF_TILE), compression="zlib"
    )


def run_pyramid(labels: Path, out: Path, *, levels: int, tile: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process writing the pyramid."""
    code = (
        "import sys; from dvp_pipeline.pyramid import write_label_pyramid; "
        f"write_label_pyramid(sys.argv[1], sys.argv[2], levels={levels}, tile={tile}, pixel_size_um=0.5, name='cells')"
    )
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code, str(labels), str(out)])
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"write_label_pyramid failed with status {status}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def run_export(labels: Path, out: Path, *, levels: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process writing the labels as the SpatialData export does."""
    code = (
        "import sys, spatialdata as sd; from dvp_pipeline.pyramid import open_labels; "
        "from dvp_pipeline.spatial import _labels_element, write_spatialdata; "
        f"el = _labels_element(open_labels(sys.argv[1])[0], pixel_size_um=0.5, levels={levels}, chunk=1024); "
        "write_spatialdata(sd.SpatialData(labels={'cells': el}), sys.argv[2])"
    )
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code, str(labels), str(out)])
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the SpatialData labels export failed with status {status}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def check(out: Path, size: int, levels: int, *, windows: int = 20, seed: int = 0) -> int:
    """Compare random windows of every level with labels[::2**k, ::2**k]; the number of windows checked."""
    import zarr

    group = zarr.open_group(out, mode="r")
    rng = np.random.default_rng(seed)
    checked = 0
    for k in range(levels):
        level = group[str(k)]
        step = 2**k
        assert level.shape == (-(-size // step),) * 2, (k, level.shape)
        for _ in range(windows):
            y, x = (int(v) for v in rng.integers(0, max(1, level.shape[0] - 256), 2))
            rows = (np.arange(y, min(y + 256, level.shape[0])) * step)[:, None]
            cols = (np.arange(x, min(x + 256, level.shape[1])) * step)[None, :]
            np.testing.assert_array_equal(level[y : y + 256, x : x + 256], labels_at(rows, cols, size))
            checked += 1
    return checked


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--tile", type=int, default=4096)
    parser.add_argument("--scratch", default="/tmp/dvp-bench-pyramid")
    parser.add_argument("--out", default="bench/results/pyramid.md")
    args = parser.parse_args()

    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    labels = scratch / f"labels_{args.size}.tif"
    if not labels.is_file():
        started = time.perf_counter()
        write_labels(labels, args.size)
        print(f"wrote {labels} ({labels.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s")
    out = scratch / "labels.zarr"
    shutil.rmtree(out, ignore_errors=True)
    wall, peak = run_pyramid(labels, out, levels=args.levels, tile=args.tile)
    windows = check(out, args.size, args.levels)
    megapixels = args.size**2 / 1e6
    exported = scratch / "labels.spatialdata.zarr"
    shutil.rmtree(exported, ignore_errors=True)
    export_wall, export_peak = run_export(labels, exported, levels=args.levels)
    print(f"SpatialData labels element: {export_wall:.1f} s, peak RSS {export_peak:.0f} MiB")
    print(f"{args.size} x {args.size}: {wall:.1f} s, peak RSS {peak:.0f} MiB; {windows} windows checked")

    raw_gb = args.size**2 * 4 / 1e9
    store_mb = folder_size(out) / 1e6
    cells = [f"{args.size:,}", args.levels, args.tile, f"{wall:.1f}", f"{megapixels / wall:.1f}", f"{peak:,.0f}"]
    row = "| " + " | ".join(str(c) for c in [*cells, f"{store_mb:,.0f}"]) + " |"
    text = f"""# Label pyramid benchmark (bench/bench_pyramid.py)

Machine: the project machine, {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}.
`dvp_pipeline.pyramid.write_label_pyramid` in its own process (peak RSS from `os.wait4`), on a synthetic
{args.size:,} x {args.size:,} uint32 label image ({megapixels:,.0f} megapixels, {raw_gb:.1f} GB uncompressed,
{(-(-args.size // CELL)) ** 2:,} square cells) stored as a 512-pixel tiled, zlib-compressed TIFF
({labels.stat().st_size / 1e6:,.0f} MB) like the `labels.tif` of `dvp segment`; the TIFF itself is
generated tile by tile, never whole.

Command: `python bench/bench_pyramid.py --size {args.size} --levels {args.levels} --tile {args.tile}`

| size | levels | read tile | wall s | MP/s | peak RSS MiB | store MB |
|---|---|---|---|---|---|---|
{row}

The same labels as the `cells` element of `dvp export-spatialdata` (lazy levels of
`dvp_pipeline.pyramid.label_levels`, 1024-pixel dask chunks, written by `SpatialData.write` through
`dvp_pipeline.spatial.write_spatialdata`): {export_wall:.1f} s, peak RSS {export_peak:,.0f} MiB.

Peak memory is {peak / 1024:.2f} GiB against a target of 2 GiB: the pyramid is written in one pass over
{args.tile} x {args.tile} regions (64 MiB of uint32 each), each region going to every level (level k
gets its every 2**k-th pixel), so memory is a few regions and the imports, whatever the slide's size.
All {windows} random 256 x 256 windows of the {args.levels} levels equal `labels[::2**k, ::2**k]` computed
from the cells' formula.

Caveat: the synthetic cells are a regular grid, so the TIFF and the store compress far better than a
real segmentation's; on a real `labels.tif` the wall time grows with (de)compression, the peak memory
does not (it is set by the read tile, not by the data).
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
