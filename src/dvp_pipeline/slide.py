"""The segment stage on a whole slide: tiles segmented, stitched and measured, memory bounded by the tile.

The first stage of the pipeline, behind ``dvp segment``. :func:`plan_slide` fixes the tiling (and the
classical method's whole-image threshold); :func:`segment_slide` runs the one tile loop
(:func:`dvp_pipeline.tiling.stitch_tiles`), measuring each tile's cells as it goes
(:func:`dvp_pipeline.features.measure_cells`). Whole-slide labels are assembled in a zarr array on
disk and streamed into a tiled TIFF, and each tile's cells table is streamed to a scratch Parquet
file; only the centroids of all cells stay in memory, for the neighbourhood counts, which are added
as the table is copied into place. Small images are held in memory, and without output paths the
result is returned in memory (a notebook's path), through the same loop.

For a cluster the tiles can be separate jobs: :func:`segment_plan_tile` segments one tile of a plan
(saved with :func:`save_tile`), and :func:`segment_slide` with ``tiles=`` stitches the saved tiles.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from dvp_pipeline import io
from dvp_pipeline.errors import DVPError
from dvp_pipeline.features import add_neighbourhood_counts, measure_cells
from dvp_pipeline.images import check_image_size
from dvp_pipeline.options import SegmentOptions
from dvp_pipeline.seg_metrics import SegmentQC
from dvp_pipeline.tiling import MIN_CONTRAST, Tile, plan_tiles, read_region, segment_tile, stitch_tiles, tiles_of

__all__ = [
    "SegmentedSlide",
    "default_workers",
    "load_tile",
    "method_options",
    "plan_slide",
    "read_plan",
    "save_tile",
    "segment_plan_tile",
    "segment_slide",
    "write_labels",
]

# Below this many pixels the labels are assembled in memory; above it in a zarr array on disk.
IN_MEMORY_PIXELS = 64_000_000

# Peak memory of one worker process per pixel of its tile region (4-channel uint16 slides, classical
# method, measured: about 0.4 GB for a 2208 x 2208 region); default_workers leaves room for this.
WORKER_BYTES_PER_PIXEL = 100


def method_options(
    options: SegmentOptions, names: Sequence[str], *, nuclear_channel: str | None, pixel_size_um: float, source: str
) -> tuple[str, dict]:
    """The method and its options for :func:`dvp_pipeline.segmentation.segment`, channel names as indices."""

    def channel_index(name: str, what: str) -> int:
        if name not in names:
            raise DVPError(f"{source}: {what} {name!r} is not a channel; channels are {', '.join(names)}")
        return list(names).index(name)

    method = options.method
    settings = options.method_options.to_dict()
    for key in ("cytoplasm_channel", "membrane_channel"):
        if settings.get(key) is not None:
            settings[key] = channel_index(settings[key], f"segment.{method}.{key}")
    settings["nuclear_channel"] = channel_index(nuclear_channel, "nuclear channel") if nuclear_channel else 0
    settings["pixel_size_um"] = pixel_size_um
    return method, settings


def plan_slide(
    image, options: SegmentOptions, *, nuclear_channel: str | None, pixel_size_um: float, source: str = "image"
) -> dict:
    """The tiling plan of an image (JSON-ready): tiles, per-tile options and the channel names."""
    diameter = options.classical.nucleus_diameter_um
    check_image_size(image.shape, pixel_size_um=pixel_size_um, nucleus_diameter_um=diameter, source=source)
    names = list(image.names)
    method, settings = method_options(
        options, names, nuclear_channel=nuclear_channel, pixel_size_um=pixel_size_um, source=source
    )
    overlap = int(np.ceil(options.overlap_um / pixel_size_um))
    plan = plan_tiles(image, method=method, tile_size=options.tile_size, overlap=overlap, options=settings)
    plan["channels"] = names
    plan["nucleus_diameter_um"] = diameter  # the scale of the QC's missed-nucleus search
    nuclear = names[settings["nuclear_channel"]]
    if plan["blank"]:
        raise DVPError(f"{source}: the nuclear channel {nuclear!r} is uniform (one value everywhere): no cells to find")
    if plan["contrast"] is not None and plan["contrast"] < MIN_CONTRAST:
        raise DVPError(
            f"{source}: the nuclear channel {nuclear!r} shows no nuclei: its brightest part stands only "
            f"{plan['contrast']:.1f} noise SDs above its background (noise alone gives about 2.3, nuclear stains 8 "
            f"and more; below {MIN_CONTRAST:g} nothing is segmented). Is it the right channel "
            "(nuclear_channel), or was nothing acquired? A fixed segment.classical.threshold skips this check."
        )
    return plan


def read_plan(path: str | os.PathLike, image) -> dict:
    """A plan written by ``dvp segment --write-plan``, checked against the image it is used on."""
    try:
        plan = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DVPError(f"{path}: not a readable tiling plan ({err})") from err
    if list(plan.get("shape", [])) != list(image.shape) or plan.get("channels") != list(image.names):
        raise DVPError(
            f"{path}: plan is for an image of shape {plan.get('shape')} with channels {plan.get('channels')}, "
            f"not {list(image.shape)} with {image.names}; write the plan again"
        )
    return plan


def segment_plan_tile(image, plan: dict, index: int) -> tuple[Tile, np.ndarray, np.ndarray]:
    """Segment tile ``index`` of a plan (a tile job): the tile and its cell and nucleus labels."""
    tiles = tiles_of(plan)
    if not 0 <= index < len(tiles):
        raise DVPError(f"tile {index}: the plan has tiles 0..{len(tiles) - 1}")
    cells, nuclei = segment_tile(image, tiles[index], plan=plan)
    return tiles[index], cells, nuclei


def preview_tiles(image, plan: dict, *, pixel_size_um: float, n_tiles: int = 3, title: str = ""):
    """Segment a few tiles of a plan and draw them, to check the settings before a whole-slide run.

    The tiles are spread over the plan (first, middle, last ...); each panel shows the nuclear stain
    with the nucleus (yellow) and cell (cyan) outlines, and its title the cell count and the median
    nucleus diameter against ``segment.classical.nucleus_diameter_um``. Returns the figure and one
    summary row per tile (tile, cells, median nucleus diameter in µm).
    """
    from matplotlib.figure import Figure
    from skimage.segmentation import find_boundaries

    tiles = tiles_of(plan)
    if n_tiles < 1:
        raise DVPError(f"--preview-tiles: expected a positive number of tiles, got {n_tiles}")
    chosen = sorted({int(round(i)) for i in np.linspace(0, len(tiles) - 1, min(n_tiles, len(tiles)))})
    nuclear = plan["options"]["nuclear_channel"]
    expected = plan["options"].get("nucleus_diameter_um")
    fig = Figure(figsize=(5 * len(chosen), 5.4), dpi=120, layout="constrained")
    rows = []
    for k, index in enumerate(chosen):
        tile = tiles[index]
        cells, nuclei = segment_tile(image, tile, plan=plan)
        stain = read_region(image, tile)[nuclear].astype(np.float32)
        # the tile's own part: its margin is segmented by the neighbouring tiles
        (cy0, cy1, cx0, cx1), (ry0, _, rx0, _) = tile.core, tile.region
        core = (slice(cy0 - ry0, cy1 - ry0), slice(cx0 - rx0, cx1 - rx0))
        cells, nuclei, stain = cells[core], nuclei[core], stain[core]
        low, high = np.percentile(stain, [1, 99.5])
        gray = np.clip((stain - low) / max(high - low, 1e-9), 0, 1)
        rgb = np.repeat(gray[..., None], 3, axis=2)
        rgb[find_boundaries(cells, mode="inner")] = (0.0, 0.9, 0.9)
        rgb[find_boundaries(nuclei, mode="inner")] = (1.0, 0.85, 0.0)
        areas = np.bincount(nuclei.ravel())[1:]
        diameter = float(2 * np.sqrt(np.median(areas[areas > 0]) / np.pi) * pixel_size_um) if (areas > 0).any() else 0.0
        n_cells = len(np.unique(cells)) - (1 if (cells == 0).any() else 0)
        rows.append((index, n_cells, diameter))
        ax = fig.add_subplot(1, len(chosen), k + 1)
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(
            f"tile {index} (y {cy0}, x {cx0}): {n_cells} cells\nnucleus {diameter:.1f} µm"
            + (f" (expected {expected:g})" if expected else ""),
            fontsize="small",
        )
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig, pd.DataFrame(rows, columns=["tile", "cells", "median_nucleus_diameter_um"])


def save_tile(path: str | os.PathLike, tile: Tile, cells: np.ndarray, nuclei: np.ndarray) -> None:
    """Write a tile job's labels (compressed NumPy archive, no pickles), atomically."""
    with io.atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, index=tile.index, cells=cells, nuclei=nuclei)


def load_tile(path: str | os.PathLike, expected: int) -> tuple[np.ndarray, np.ndarray]:
    """A tile job's labels, checked to be tile ``expected`` of the plan."""
    try:
        with np.load(path, allow_pickle=False) as data:
            index, cells, nuclei = int(data["index"]), data["cells"], data["nuclei"]
    except (OSError, ValueError, KeyError) as err:
        raise DVPError(f"{path}: not a tile result of dvp segment --tile ({err})") from err
    if index != expected:
        raise DVPError(f"{path}: holds tile {index}, expected tile {expected} (give tiles in plan order)")
    return cells, nuclei


class _TileTables:
    """Tiles' cells tables streamed to a scratch Parquet file, keeping only centroids in memory.

    Whole-slide tables (77 columns for 4 channels, a million cells) would otherwise dominate the
    memory of the segment stage; the neighbourhood counts need nothing but the centroids.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = None
        self.schema = None
        self.centroids: list[np.ndarray] = []

    def append(self, table: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            self.schema = arrow.schema
            self.writer = pq.ParquetWriter(self.path, self.schema)
        else:
            # every tile's table comes from measure_cells with the same columns and types
            arrow = pa.Table.from_pandas(table, schema=self.schema, preserve_index=False)
        self.writer.write_table(arrow)
        self.centroids.append(table[["centroid_y_um", "centroid_x_um"]].to_numpy(dtype=float))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def neighbours(self, radius_um: float) -> np.ndarray:
        points = np.concatenate(self.centroids) if self.centroids else np.zeros((0, 2))
        table = pd.DataFrame(points, columns=["centroid_y_um", "centroid_x_um"])
        return add_neighbourhood_counts(table, radius_um=radius_um)["neighbours"].to_numpy()

    def write(self, out: str | os.PathLike, neighbours: np.ndarray) -> None:
        """Write the cells table with ``neighbours`` to ``out`` (Parquet or TSV), atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.close()
        with io.atomic_output(out) as tmp:
            if not str(out).endswith(".parquet"):
                with open(tmp, "w", encoding="utf-8", newline="") as text:
                    for k, table in enumerate(self.read_back(neighbours)):
                        table.to_csv(text, sep="\t", index=False, na_rep="NA", header=k == 0)
                return
            writer = None
            try:
                for table in self.read_back(neighbours):
                    arrow = pa.Table.from_pandas(table, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, arrow.schema)
                    writer.write_table(arrow)
            finally:
                if writer is not None:
                    writer.close()

    def read_back(self, neighbours: np.ndarray):
        """The scratch table one tile (row group) at a time, with its cells' ``neighbours``."""
        import pyarrow.parquet as pq

        self.close()
        source = pq.ParquetFile(self.path)
        if source.num_row_groups == 0:  # a table without cells has no row groups
            yield source.schema_arrow.empty_table().to_pandas().assign(neighbours=neighbours)
            return
        start = 0
        for group in range(source.num_row_groups):
            table = source.read_row_group(group).to_pandas()
            table["neighbours"] = neighbours[start : start + len(table)]
            start += len(table)
            yield table


@dataclass
class SegmentedSlide:
    """The segment stage's result; in memory unless output paths were given to :func:`segment_slide`.

    ``labels`` and ``nuclei`` are (y, x) uint32 arrays (cells 1..N, nucleus k of cell k) and ``cells``
    the cells table, or ``None`` when they were written to files; ``n_cells`` is always set, and so is
    ``qc``, the truth-free segmentation QC (:func:`dvp_pipeline.seg_metrics.segment_qc`).
    """

    n_cells: int
    labels: np.ndarray | None = None
    nuclei: np.ndarray | None = None
    cells: pd.DataFrame | None = None
    qc: dict | None = None


def segment_slide(
    image,
    plan: dict,
    *,
    sample: str,
    pixel_size_um: float,
    neighbourhood_radius_um: float,
    labels: str | os.PathLike | None = None,
    nuclei: str | os.PathLike | None = None,
    cells: str | os.PathLike | None = None,
    tiles: Sequence[str | os.PathLike] | None = None,
    qc: str | os.PathLike | None = None,
    workers: int = 1,
) -> SegmentedSlide:
    """Segment and measure a slide tile by tile: the library function behind ``dvp segment``.

    Parameters
    ----------
    image
        An :class:`~dvp_pipeline.images.ImageSource` (read lazily) or anything with ``read``,
        ``shape`` and ``names``.
    plan
        From :func:`plan_slide` (or :func:`read_plan`).
    sample
        Written to the cells table.
    pixel_size_um, neighbourhood_radius_um
        For the µm columns and the ``neighbours`` count.
    labels, nuclei, cells
        Output files (labels as tiled TIFF, the table as Parquet or TSV), written atomically after
        all the work is done; all ``None`` returns the results in memory instead.
    tiles
        Saved tile-job results (:func:`save_tile`), in plan order, to stitch instead of segmenting.
    qc
        Where to write the segmentation QC (``segment_qc.json``: likely merged and missed cells, see
        :func:`dvp_pipeline.seg_metrics.segment_qc`), gathered tile by tile; always in the result.
    workers
        Processes that segment and measure tiles side by side (:func:`default_workers`); the
        stitching and the tables stay in tile order, so the result is the same for any number. They
        start as fresh processes (forkserver): a script calling this with more than one needs the
        usual ``if __name__ == "__main__":`` guard.

    Examples
    --------
    >>> from dvp_pipeline.images import open_image
    >>> options = SegmentOptions.from_mapping({"tile_size": 256})
    >>> with open_image(image_path) as image:
    ...     plan = plan_slide(image, options, nuclear_channel="DAPI", pixel_size_um=0.5)
    ...     result = segment_slide(image, plan, sample="TEN01", pixel_size_um=0.5, neighbourhood_radius_um=30)
    >>> len(plan["tiles"]), result.n_cells == len(result.cells) == int(result.labels.max())
    (4, True)
    """
    in_memory = labels is None and cells is None
    if not in_memory and (labels is None or cells is None):
        raise DVPError("segment_slide: give both the labels and the cells output, or neither")
    plan_tiles_ = tiles_of(plan)
    if tiles is not None and len(tiles) != len(plan_tiles_):
        raise DVPError(f"{len(tiles)} tile file(s) given, the plan has {len(plan_tiles_)}")
    if not in_memory:
        Path(cells).parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".dvp-segment-", dir=None if in_memory else Path(cells).parent))
    try:
        cells_out, nuclei_out = _label_arrays(tuple(image.shape[1:]), scratch)
        tables = _TileTables(scratch / "cells.parquet")
        channel_max = np.zeros(image.shape[0])
        options = plan["options"]
        checks = SegmentQC(
            nuclear_channel=options.get("nuclear_channel", 0),
            pixel_size_um=pixel_size_um,
            nucleus_diameter_um=plan.get("nucleus_diameter_um") or options.get("nucleus_diameter_um") or 7.0,
        )

        workers = max(1, min(int(workers), len(plan_tiles_)))  # one tile gains nothing from a pool
        pending: deque = deque()  # tiles being measured (in the pool), in tile order

        def finish(tile, pixels, final_nuclei, table):
            table = table.result() if isinstance(table, Future) else table
            if table is not None:
                tables.append(table)
            checks.add_tile(tile, pixels, final_nuclei, table)

        def measure(tile, pixels, final_cells, final_nuclei, ids):
            channel_max[:] = np.maximum(channel_max, pixels.reshape(pixels.shape[0], -1).max(axis=1))
            table = None
            if len(ids):
                arguments = {
                    "channel_names": list(image.names),
                    "pixel_size_um": pixel_size_um,
                    "sample": sample,
                    "nuclei": final_nuclei,
                    "offset": (tile.region[0], tile.region[2]),
                }
                if executor is None:
                    table = measure_cells(final_cells, pixels, **arguments)
                else:
                    table = executor.submit(measure_cells, final_cells, pixels, **arguments)
            pending.append((tile, pixels, final_nuclei, table))
            # at most one tile measured per worker at a time: memory stays bounded by a few tiles
            while len(pending) > (0 if executor is None else workers):
                finish(*pending.popleft())

        def saved_tile(tile, pixels):
            cell_labels, nucleus_labels = load_tile(tiles[tile.index], tile.index)
            if cell_labels.shape != pixels.shape[1:]:
                raise DVPError(f"{tiles[tile.index]}: labels {cell_labels.shape} do not fit tile {tile.index}")
            return cell_labels, nucleus_labels

        with _tile_pool(workers) as executor:
            stitch_tiles(
                image,
                plan,
                cells_out=cells_out,
                nuclei_out=nuclei_out,
                tile_labels=None if tiles is None else saved_tile,
                on_tile=measure,
                executor=executor,
                ahead=workers,
            )
            while pending:
                finish(*pending.popleft())
        empty = [name for name, peak in zip(image.names, channel_max, strict=True) if peak == 0]
        if empty:
            raise DVPError(
                f"channel(s) {', '.join(empty)} are all zero (nothing was acquired); "
                "drop them with --channels / the config's channels"
            )
        if tables.writer is None:
            # no cells at all: still a table with every column, and no rows
            tables.append(
                measure_cells(
                    np.zeros((1, 1), np.uint32),
                    np.zeros((len(image.names), 1, 1)),
                    channel_names=image.names,
                    pixel_size_um=pixel_size_um,
                    sample=sample,
                    nuclei=np.zeros((1, 1), np.uint32),
                )
            )
        neighbours = tables.neighbours(neighbourhood_radius_um)
        summary = checks.summary(nuclei_out, cells_out)
        if in_memory:
            table = pd.concat(list(tables.read_back(neighbours)), ignore_index=True)
            return SegmentedSlide(len(neighbours), np.asarray(cells_out), np.asarray(nuclei_out), table, summary)
        write_labels(cells_out, labels)
        if nuclei is not None:
            write_labels(nuclei_out, nuclei)
        tables.write(cells, neighbours)
        if qc is not None:
            io.write_json(summary, qc)
        return SegmentedSlide(len(neighbours), qc=summary)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def default_workers(plan: dict) -> int:
    """Worker processes for :func:`segment_slide`: the available cores, fewer if their tiles would not fit in memory."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    region = max(
        ((t["region"][1] - t["region"][0]) * (t["region"][3] - t["region"][2]) for t in plan["tiles"]), default=1
    )
    try:
        meminfo = Path("/proc/meminfo").read_text()
        available = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemAvailable:")))
    except (OSError, StopIteration, ValueError):  # no /proc (not Linux): trust the cores
        return cores
    # the main process holds a tile of its own while the workers work
    return max(1, min(cores, available * 1024 // (WORKER_BYTES_PER_PIXEL * region) - 1))


def _tile_pool(workers: int):
    """A pool of ``workers`` processes for tiles, or ``nullcontext()`` (no pool) for one."""
    if workers <= 1:
        return contextlib.nullcontext()
    import multiprocessing

    # forkserver: workers start from a clean process that imported the tile functions once, not as
    # forks of this one, whose threads (zarr, pyarrow) a plain fork would copy in an unknown state
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["dvp_pipeline.tiling", "dvp_pipeline.features"])
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context)


def _label_arrays(shape: tuple[int, int], scratch: Path):
    """Zero-filled cell and nucleus label arrays: in memory, or zarr arrays in ``scratch`` for whole slides."""
    if shape[0] * shape[1] <= IN_MEMORY_PIXELS:
        return np.zeros(shape, dtype=np.uint32), np.zeros(shape, dtype=np.uint32)
    import zarr

    chunks = (1024, 1024)
    return tuple(
        zarr.open_array(scratch / name, mode="w", shape=shape, dtype=np.uint32, chunks=chunks)
        for name in ("cells", "nuclei")
    )


def write_labels(labels, path: str | os.PathLike) -> None:
    """Write labels as a zlib-compressed tiled TIFF, streaming tiles from a zarr array when on disk."""
    tile = 512
    with io.atomic_output(path) as tmp:
        if isinstance(labels, np.ndarray):
            tifffile.imwrite(tmp, labels, compression="zlib", tile=(tile, tile) if labels.shape[0] > tile else None)
            return
        height, width = labels.shape

        def tiles():
            for y in range(0, height, tile):
                for x in range(0, width, tile):
                    block = np.zeros((tile, tile), dtype=np.uint32)
                    part = np.asarray(labels[y : y + tile, x : x + tile])
                    block[: part.shape[0], : part.shape[1]] = part
                    yield block

        tifffile.imwrite(tmp, tiles(), shape=(height, width), dtype=np.uint32, tile=(tile, tile), compression="zlib")
