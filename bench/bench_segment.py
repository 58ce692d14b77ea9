"""Segmentation benchmark: megapixels per second and peak memory against slide size.

Writes synthetic slides (``dvp_pipeline.simulate.write_big_slide``: 4 channels, uint16, tiled OME-TIFF)
of 1k, 5k and 20k pixels a side into a scratch folder, runs the whole ``dvp segment`` stage on each
(read, segment, stitch, measure, write) as a separate process, and records its wall time and peak
resident memory (``os.wait4``). Tiled runs use the default 2048-pixel tiles; "untiled" runs use one
tile as large as the slide (not attempted at 20k, whose untiled run needs tens of GB). Cellpose runs
use a tiny model trained from scratch here (no pretrained weights can be downloaded), on 1k only:
on CPU it is two orders of magnitude slower than the classical method.

Each classical run is made twice, side by side: by the working tree and by a baseline revision
(``--baseline REV``, default 881490b, the last commit before the stage was made faster), checked out
with ``git worktree`` into the scratch folder and run with its own ``src`` on ``PYTHONPATH``; the
table gets a ``version`` column and the speed-up of the working tree over the baseline is printed.
Peak memory is that of the ``dvp segment`` process itself (``os.wait4``) and, sampled twice a second,
of it together with its worker processes (``peak_rss_tree_mib``).

Usage::

    python bench/bench_segment.py [--sizes 1000 5000 20000] [--scratch /tmp/dvp-bench]
        [--out bench/results/segment.tsv] [--cellpose] [--baseline REV | --baseline none] [--workers N]

Run on the project machine (2 cores); the table is bench/results/segment.tsv.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from dvp_pipeline.simulate import write_big_slide

REPO = Path(__file__).resolve().parent.parent
# the last commit before the segment stage was made faster (vectorised measurements, worker processes)
DEFAULT_BASELINE = "881490b"


def _peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a running process, from /proc (Linux); NaN elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (e.g. worker processes), from /proc (Linux)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, grew = {pid}, True
    while grew:
        children = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    total = 0
    for member in tree:
        try:
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total / 2**20


def run_stage(
    image: Path, out: Path, options: dict, *, src: Path, extra: tuple[str, ...] = ()
) -> tuple[float, float, float, int]:
    """Wall seconds, peak RSS (MiB) of the process and of its process tree, and cell count of one ``dvp segment``.

    ``src`` is the ``src`` folder of the version to run (put first on ``PYTHONPATH``).
    """
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "dvp_pipeline",
        "segment",
        str(image),
        "--sample",
        "bench",
        "--labels",
        str(out / "labels.tif"),
        "--cells",
        str(out / "cells.parquet"),
        "--options",
        json.dumps(options),
        *extra,
    ]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    log = out / "segment.log"
    tree_peak = 0.0
    with open(log, "w") as stderr_file:
        process = subprocess.Popen(command, stderr=stderr_file, text=True, env=environment)
        # Poll rather than block, printing the peak so far: a long whole-slide run that is stopped
        # still tells whether its memory stayed flat.
        last = started
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            tree_peak = max(tree_peak, _tree_rss_mib(process.pid))
            time.sleep(0.5)
            if time.perf_counter() - last >= 60:
                last = time.perf_counter()
                print(f"  {image.name}: {last - started:.0f} s, peak RSS so far {_peak_rss_mib(process.pid):.0f} MiB",
                      flush=True)  # fmt: skip
    wall = time.perf_counter() - started
    stderr = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"dvp segment failed on {image}:\n{stderr}")
    cells = len(pd.read_parquet(out / "cells.parquet", columns=["cell_id"]))
    return wall, usage.ru_maxrss / 1024, max(tree_peak, usage.ru_maxrss / 1024), cells


@contextlib.contextmanager
def baseline_src(revision: str | None, scratch: Path):
    """The ``src`` folder of ``revision`` in a temporary ``git worktree`` (removed afterwards); ``None`` for none."""
    if revision is None:
        yield None
        return
    folder = scratch / f"baseline-{revision}"
    git = ["git", "-C", str(REPO)]
    subprocess.run([*git, "worktree", "prune"], check=True)
    if folder.exists():  # left by an interrupted run
        subprocess.run([*git, "worktree", "remove", "--force", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([*git, "worktree", "add", "--detach", "--quiet", str(folder), revision], check=True)
    try:
        yield folder / "src"
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(folder)], check=False)


def train_tiny_cellpose(folder: Path) -> Path:
    """A small Cellpose 3 model trained from scratch on synthetic nuclei (as in the tests)."""
    import numpy as np
    import torch
    from cellpose import models, train

    from dvp_pipeline.simulate import big_slide_tile

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = [], []
    from scipy import ndimage as ndi

    for k in range(8):
        tile = big_slide_tile(128 * k, 0, 128, 128)[0].astype(np.float32)
        label, _ = ndi.label(tile > 600)
        images.append(tile)
        labels.append(label)
    net = models.CellposeModel(gpu=False, pretrained_model=False, diam_mean=10.0)
    path, _, _ = train.train_seg(
        net.net,
        train_data=images,
        train_labels=labels,
        channels=[0, 0],
        n_epochs=40,
        learning_rate=0.1,
        SGD=True,
        batch_size=8,
        save_path=str(folder),
        model_name="tiny",
        rescale=False,
        bsize=128,
        min_train_masks=1,
    )
    return Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/dvp-bench"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "segment.tsv")
    parser.add_argument("--cellpose", action="store_true", help="also time Cellpose (tiny model) at 1k")
    parser.add_argument(
        "--baseline",
        default=DEFAULT_BASELINE,
        metavar="REV",
        help=f"git revision to time side by side with the working tree (default {DEFAULT_BASELINE}); none: skip",
    )
    parser.add_argument("--workers", type=int, help="--workers of the working tree's runs (default: its own)")
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    baseline = None if args.baseline.lower() == "none" else args.baseline
    extra = () if args.workers is None else ("--workers", str(args.workers))
    rows = []

    def record(method, size, tiling, options, old_src=None):
        image = args.scratch / f"slide_{size}.ome.tif"
        versions = [("current", REPO / "src", extra)]
        if old_src is not None:
            versions.append((f"baseline {baseline}", old_src, ()))
        walls = {}
        for version, src, flags in versions:
            out = args.scratch / f"out_{method}_{size}_{tiling}_{version.split()[0]}"
            wall, rss, tree_rss, cells = run_stage(image, out, options, src=src, extra=flags)
            walls[version] = wall
            row = {
                "method": method,
                "version": version,
                "size_px": size,
                "megapixels": size * size / 1e6,
                "tiling": tiling,
                "tile_size": options.get("tile_size"),
                "cells": cells,
                "wall_s": round(wall, 2),
                "megapixels_per_s": round(size * size / 1e6 / wall, 3),
                "peak_rss_mib": round(rss, 1),
                "peak_rss_tree_mib": round(tree_rss, 1),
            }
            rows.append(row)
            print(row, flush=True)
            pd.DataFrame(rows).to_csv(args.out, sep="\t", index=False)
        if len(walls) == 2:
            print(f"{size} px {tiling}: current is {walls[versions[1][0]] / walls['current']:.2f}x the baseline",
                  flush=True)  # fmt: skip

    with baseline_src(baseline, args.scratch) as old_src:
        for size in args.sizes:
            image = args.scratch / f"slide_{size}.ome.tif"
            if not image.is_file():
                started = time.perf_counter()
                write_big_slide(image, size=size)
                print(f"wrote {image} in {time.perf_counter() - started:.0f} s", flush=True)
            record("classical", size, "tiled", {"tile_size": 2048}, old_src)
            if size <= 5000:
                record("classical", size, "untiled", {"tile_size": size}, old_src)
    if args.cellpose:
        model = train_tiny_cellpose(args.scratch / "cellpose")
        size = min(args.sizes)
        options = {"method": "cellpose", "cellpose": {"model": str(model)}}
        record("cellpose", size, "tiled", {**options, "tile_size": 512})
        record("cellpose", size, "untiled", {**options, "tile_size": size})
    args.out.with_suffix(".machine.txt").write_text(
        f"{platform.platform()}; {os.cpu_count()} cores; python {platform.python_version()}\n"
    )


if __name__ == "__main__":
    main()
