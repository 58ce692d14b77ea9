"""``dvp plate``: put the cohort's pools onto collection plates and write the MS link.

Reads every sample's pools and drawn cells (from ``dvp select``), assigns wells
(:func:`dvp_pipeline.plates.assign_wells`: plate format, fill order, unreachable wells, blanks,
overflow onto further plates), and writes the plate map, the sample key, the mass spectrometer's
acquisition queue, the runs sheet it implies, and a picture of the plates. A hand-written runs sheet
with a well column is checked against the sample key.
"""

from __future__ import annotations

import argparse
import io as bytes_io

import pandas as pd

from dvp_pipeline import io
from dvp_pipeline.cli._common import add_options_argument, load_options
from dvp_pipeline.config import read_sheet
from dvp_pipeline.errors import DVPError
from dvp_pipeline.plates import (
    assign_wells,
    check_runs_against_key,
    ms_queue,
    plate_figure,
    plate_map_csv,
    queue_csv,
    runs_from_key,
    sample_key,
)
from dvp_pipeline.selection import type_colors

__all__ = ["add_parser", "run", "unreachable_targets"]

EPILOG = """\
inputs:
  --pools       every sample's pools.tsv (dvp select), in the order the plates are filled
  --selection   every sample's selection.tsv, same order (the cell ids of the sample key)
  --runs        optional: a hand-written runs sheet; runs with a well are checked against the key

outputs:
  --plate-map   CSV: plate, well, kind (pool/control/blank), pool_id, sample, cell_type, replicate
  --sample-key  TSV: one row per used well with the pool's cells (n_cells, area_um2, cell_ids)
  --queue       Thermo Xcalibur-style sequence CSV: one injection per well, solvent blanks between
                samples and cell types; File Name is the run name the raw file will carry
  --runs-out    the runs sheet these run names imply (run, sample, cell_type, well, plate, pool)
  --figure      PNG of every plate: wells coloured by cell type, blanks crossed, unreachable grey

Plate settings are select.plate in the config (format 96 or 384, fill order, excluded wells,
blank_fraction, run_prefix); the seed is select.seed.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp plate``."""
    parser = subparsers.add_parser(
        "plate",
        help="assign the cohort's pools to plate wells; write plate map, sample key and MS queue",
        description="Put the pools of every sample onto collection plates and write the link to the MS runs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pools", nargs="+", required=True, metavar="TSV")
    parser.add_argument("--selection", nargs="+", required=True, metavar="TSV")
    parser.add_argument("--runs", metavar="TSV", help="hand-written runs sheet to check")
    for name in ("plate-map", "sample-key", "queue", "runs-out", "figure"):
        parser.add_argument(f"--{name}", required=True, metavar="OUT")
    add_options_argument(parser, "select")
    parser.set_defaults(func=run)
    return parser


def unreachable_targets(pools: pd.DataFrame) -> None:
    """Refuse an area target that no sample reaches for some cell type: the config asks the impossible."""
    real = pools[pools["kind"] == "pool"]
    for cell_type, group in real.groupby("cell_type", sort=False):
        if not group["reached"].astype(bool).any() and group["target_um2"].notna().any():
            best = group.loc[group["area_um2"].idxmax()]
            raise DVPError(
                f"select.pool_area_um2: no sample reaches {best['target_um2']:.0f} µm² of {cell_type} cells (the "
                f"largest pool, {best['pool_id']}, has {best['area_um2']:.0f} µm² of {best['n_cells']} cells); lower "
                "the target, or allow more cells (min_area_um2, exclude_border, exclude_touching, regions)"
            )


def run(args) -> None:
    """Run ``dvp plate`` with parsed arguments."""
    options = load_options(args, "select")
    if len(args.pools) != len(args.selection):
        raise DVPError("--pools and --selection must name the same samples' files, one each")
    pools = pd.concat([io.read_table(p, dtype={"sample": str}) for p in args.pools], ignore_index=True)
    cells = pd.concat([io.read_table(p, dtype={"sample": str}) for p in args.selection], ignore_index=True)
    if pools["pool_id"].duplicated().any():
        repeated = sorted(pools.loc[pools["pool_id"].duplicated(), "pool_id"])
        raise DVPError(f"pool ids repeat across the samples' pools: {repeated[:5]}")
    unreachable_targets(pools)
    plate = options.plate
    plate_map = assign_wells(
        # empty pools (nothing left to draw) and controls without free tissue get no well
        pools[pools["n_cells"].gt(0) | (pools["kind"].eq("control") & pools["reached"].astype(bool))],
        format=plate.format,
        order=plate.fill,
        excluded=plate.excluded_wells,
        blank_fraction=plate.blank_fraction,
        seed=options.seed,
    )
    ids = cells.groupby("pool_id", sort=False)["cell_id"].agg(lambda v: ",".join(str(int(i)) for i in v))
    key = sample_key(plate_map, pools.assign(cell_ids=pools["pool_id"].map(ids).fillna("")))
    if args.runs:
        runs = read_sheet(args.runs, "runs")
        if "well" in runs.columns and runs["well"].notna().any():
            check_runs_against_key(runs, key, source=args.runs)
    io.write_text(plate_map_csv(plate_map), args.plate_map)
    io.write_table(key, args.sample_key)
    io.write_text(queue_csv(ms_queue(plate_map, run_prefix=plate.run_prefix)), args.queue)
    io.write_table(runs_from_key(key, run_prefix=plate.run_prefix), args.runs_out)
    rgb = type_colors(list(dict.fromkeys(pools["cell_type"])))
    colors = {name: "#{:02x}{:02x}{:02x}".format(*value) for name, value in rgb.items()}
    pictures = []
    for name in dict.fromkeys(plate_map["plate"]):
        buffer = bytes_io.BytesIO()
        plate_figure(plate_map, name, colors, format=plate.format, excluded=plate.excluded_wells).savefig(
            buffer, format="png"
        )
        pictures.append(buffer.getvalue())
    with io.atomic_output(args.figure) as tmp:
        tmp.write_bytes(_stacked_png(pictures))


def _stacked_png(pictures: list[bytes]) -> bytes:
    """PNG images one below the other (each plate's figure), as one PNG."""
    from PIL import Image

    images = [Image.open(bytes_io.BytesIO(p)).convert("RGB") for p in pictures]
    width = max(i.width for i in images)
    canvas = Image.new("RGB", (width, sum(i.height for i in images)), "white")
    top = 0
    for image in images:
        canvas.paste(image, (0, top))
        top += image.height
    out = bytes_io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()
