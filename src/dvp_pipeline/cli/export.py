"""``dvp export-spatialdata``: one sample's results as a SpatialData zarr store, for napari and scverse.

Reads the sample's row of the samples sheet (image, pixel size) and the config (channel names, pixel
size), calls :func:`dvp_pipeline.spatial.sample_spatialdata` and writes the store with
:func:`dvp_pipeline.spatial.write_spatialdata`: under a temporary name, renamed when complete.
"""

from __future__ import annotations

import argparse
import difflib
import logging
from pathlib import Path

from dvp_pipeline.config import load_config, read_sheet
from dvp_pipeline.errors import DVPError

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)

DESCRIPTION = "Write one sample's image, labels, outlines, LMD shapes and cells as a SpatialData zarr store."

_DEFAULT_CONFIG = "config/config.yaml"

EPILOG = f"""\
inputs (under --results, as `dvp run` writes them):
  {{sample}}/labels.tif                 cell labels (dvp segment)
  {{sample}}/nuclei.tif                 nucleus labels, if present
  {{sample}}/cells_classified.parquet   the cells table (dvp classify; else cells.parquet of dvp segment)
  {{sample}}/lmd/shapes.parquet, pools.tsv   the LMD pools' cutting shapes (dvp select), if present;
  cohort/lmd/sample_key.tsv          their wells (dvp plate), if present
  the image named in the samples sheet (read region by region, never whole)

output (--out, default RESULTS/SAMPLE/SAMPLE.spatialdata.zarr), one coordinate system 'global' in
micrometres (every element carries Scale(pixel size) from its pixels):
  images/image          the image, multiscale, channel names as 'c' coordinates
  labels/cells, nuclei  the labels, multiscale: level k = labels[::2**k, ::2**k]
  shapes/cell_outlines  one polygon per cell (index = cell_id)
  shapes/lmd_shapes     the LMD cutting shapes: pool_id, order, cell_ids, cell_type, kind, plate, well
  tables/table          the cells as AnnData annotating labels/cells (region 'cells', instance key
                        cell_id = label): X = mean intensity per marker (var_names), obs = the other
                        columns, obsm['spatial'] = centre in micrometres

pixel size: the samples sheet's pixel_size_um, else the config's, else what the cells table was
measured at, else the image metadata. Channel names: the config's `channels` (--config, default
{_DEFAULT_CONFIG} when it exists), else the image's.

open it in napari (pip install napari-spatialdata):
  from napari_spatialdata import Interactive
  import spatialdata as sd
  Interactive(sd.read_zarr("results/TEN01/TEN01.spatialdata.zarr"))
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dvp export-spatialdata``."""
    parser = subparsers.add_parser(
        "export-spatialdata",
        help="write a sample as a SpatialData zarr store (napari-spatialdata, scverse)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sample", metavar="SAMPLE", help="sample name (a row of the samples sheet)")
    parser.add_argument("--results", default="results", help="results folder of the workflow (default: results)")
    parser.add_argument(
        "--samples",
        default=None,
        metavar="SAMPLES.tsv",
        help="samples sheet (default: the config's `samples`, else config/samples.tsv)",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="CONFIG.yaml",
        help=f"config: channel names and pixel size (default: {_DEFAULT_CONFIG} if present)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="OUT.zarr",
        help="store to write (default: RESULTS/SAMPLE/SAMPLE.spatialdata.zarr)",
    )
    parser.add_argument(
        "--levels", type=int, default=4, metavar="N", help="pyramid levels, full resolution included (default: 4)"
    )
    parser.set_defaults(func=run)
    return parser


def _image_path(image: str, samples_path: Path) -> Path:
    """The sheet's image: as given (relative to the working directory, as the workflow reads it), else
    relative to the sheet's folder or its parent (the project)."""
    candidates = [Path(image)]
    if not Path(image).is_absolute():
        candidates += [samples_path.resolve().parent / image, samples_path.resolve().parent.parent / image]
    found = next((p for p in candidates if p.exists()), None)
    if found is None:
        raise DVPError(f"{samples_path}: image {image!r} not found (looked relative to the working directory, the "
                       "sheet's folder and its parent)")  # fmt: skip
    return found


def run(args) -> None:
    """Run ``dvp export-spatialdata`` with parsed arguments."""
    from dvp_pipeline.spatial import sample_spatialdata, spatialdata_path, write_spatialdata

    config_path = args.config or (_DEFAULT_CONFIG if Path(_DEFAULT_CONFIG).is_file() else None)
    config = load_config(config_path) if config_path else {}
    samples_path = Path(args.samples or config.get("samples") or "config/samples.tsv")
    samples = read_sheet(samples_path, "samples")
    names = samples["sample"].astype(str).tolist()
    if args.sample not in names:
        close = difflib.get_close_matches(args.sample, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (it has {', '.join(names[:10])})"
        raise DVPError(f"{samples_path}: no sample {args.sample!r}{hint}")
    row = samples[samples["sample"].astype(str) == args.sample].iloc[0]
    pixel_size = row.get("pixel_size_um") if "pixel_size_um" in samples.columns else None
    if pixel_size is None or pixel_size != pixel_size:  # absent or NaN: the config's
        pixel_size = config.get("pixel_size_um")
    try:
        import spatialdata  # noqa: F401
    except ImportError:
        raise DVPError("export-spatialdata needs the spatial extra: pip install 'dvp-pipeline[spatial]'") from None
    sdata = sample_spatialdata(
        args.results,
        args.sample,
        image_path=_image_path(str(row["image"]), samples_path),
        channels=config.get("channels") or None,
        pixel_size_um=None if pixel_size is None else float(pixel_size),
        levels=args.levels,
    )
    out = args.out or spatialdata_path(args.results, args.sample)
    write_spatialdata(sdata, out)
    log.info("wrote %s: %s", out, ", ".join(sdata.elements_paths_in_memory()))
