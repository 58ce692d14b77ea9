"""Segmentation benchmark: megapixels per second and peak memory against slide size.

Writes synthetic slides (``dvp_pipeline.simulate.write_big_slide``: 4 channels, uint16, tiled OME-TIFF)
of 1k, 5k and 20k pixels a side into a scratch folder, runs the whole ``dvp segment`` stage on each
(read, segment, stitch, measure, write) as a separate process, and records its wall time and peak
resident memory (``os.wait4``). Tiled runs use the default 2048-pixel tiles; "untiled" runs use one
tile as large as the slide (not attempted at 20k, whose untiled run needs tens of GB). Cellpose runs
use a tiny model trained from scratch here (no pretrained weights can be downloaded), on 1k only:
on CPU it is two orders of magnitude slower than the classical method.

Usage::

    python bench/bench_segment.py [--sizes 1000 5000 20000] [--scratch /tmp/dvp-bench]
        [--out bench/results/segment.tsv] [--cellpose]

Run on the project machine (2 cores); the table is bench/results/segment.tsv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from dvp_pipeline.simulate import write_big_slide


def _peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a running process, from /proc (Linux); NaN elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_stage(image: Path, out: Path, options: dict) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MiB) and cell count of one ``dvp segment`` process."""
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
    ]
    started = time.perf_counter()
    log = out / "segment.log"
    with open(log, "w") as stderr_file:
        process = subprocess.Popen(command, stderr=stderr_file, text=True)
        # Poll rather than block, printing the peak so far: a long whole-slide run that is stopped
        # still tells whether its memory stayed flat.
        last = started
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(1)
            if time.perf_counter() - last >= 60:
                last = time.perf_counter()
                print(f"  {image.name}: {last - started:.0f} s, peak RSS so far {_peak_rss_mib(process.pid):.0f} MiB",
                      flush=True)  # fmt: skip
    wall = time.perf_counter() - started
    stderr = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"dvp segment failed on {image}:\n{stderr}")
    cells = len(pd.read_parquet(out / "cells.parquet", columns=["cell_id"]))
    return wall, usage.ru_maxrss / 1024, cells


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
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    rows = []

    def record(method, size, tiling, options):
        image = args.scratch / f"slide_{size}.ome.tif"
        wall, rss, cells = run_stage(image, args.scratch / f"out_{method}_{size}_{tiling}", options)
        row = {
            "method": method,
            "size_px": size,
            "megapixels": size * size / 1e6,
            "tiling": tiling,
            "tile_size": options.get("tile_size"),
            "cells": cells,
            "wall_s": round(wall, 2),
            "megapixels_per_s": round(size * size / 1e6 / wall, 3),
            "peak_rss_mib": round(rss, 1),
        }
        rows.append(row)
        print(row, flush=True)
        pd.DataFrame(rows).to_csv(args.out, sep="\t", index=False)

    for size in args.sizes:
        image = args.scratch / f"slide_{size}.ome.tif"
        if not image.is_file():
            started = time.perf_counter()
            write_big_slide(image, size=size)
            print(f"wrote {image} in {time.perf_counter() - started:.0f} s", flush=True)
        record("classical", size, "tiled", {"tile_size": 2048})
        if size <= 5000:
            record("classical", size, "untiled", {"tile_size": size})
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
