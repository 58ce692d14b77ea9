"""Whole-slide segmentation in overlapping tiles, stitched into one label image.

``dvp segment`` segments a slide tile by tile so that memory is bounded by the tile, not the
slide: each tile is read with a margin of ``overlap`` pixels on every side, segmented on its own by
:func:`dvp_pipeline.segmentation.segment_cells_and_nuclei`, and keeps only the cells whose centroid
lies in its core (the part of the slide it owns). A cell crossing a tile border therefore comes,
whole, from the one tile that owns its centre: as long as the margin is wider than a cell (and the
segmentation's reach), tiles see every cell they own complete and the tiled result equals the
untiled one. The stitcher writes tiles into an output array (in memory, or a zarr array on disk for
whole slides) and numbers cells consecutively; where two tiles claim the same pixels (a cell seen
slightly differently from both sides), the first tile keeps them and a later cell that finds most of
its pixels taken is a duplicate and is dropped.

The classical method's automatic nuclear threshold is a property of the whole image; it is found
once, from all tile cores (:func:`global_threshold`), and handed to every tile as a number.

Tiles are independent, so they can also run as separate jobs (``segment.tiles_as_jobs``): a plan
(:func:`plan_tiles`) fixes the grid and the threshold, each job runs :func:`segment_tile`, and
:func:`stitch_tiles` gathers the results in tile order.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
from skimage import filters

from dvp_pipeline.errors import DVPError
from dvp_pipeline.segmentation import auto_reach, nuclear_signal, segment_cells_and_nuclei

__all__ = [
    "MIN_CONTRAST",
    "Stitcher",
    "Tile",
    "global_threshold",
    "image_shape",
    "plan_tiles",
    "read_region",
    "segment_tile",
    "segment_tiled",
    "stain_contrast",
    "stitch_tiles",
    "tile_grid",
    "tiles_of",
]

log = logging.getLogger(__name__)

#: A nuclear stain whose :func:`stain_contrast` is below this holds no nuclei: noise gives about 2.3.
MIN_CONTRAST = 4.0

# A later tile's cell is a duplicate of one already written when most of its pixels are taken.
_DUPLICATE_FRACTION = 0.5


@dataclass(frozen=True)
class Tile:
    """One tile: ``core`` is the part of the image it owns, ``region`` the core plus its margin.

    Both are ``(y0, y1, x0, x1)`` in image pixels; regions are clipped to the image.
    """

    index: int
    core: tuple[int, int, int, int]
    region: tuple[int, int, int, int]

    @property
    def region_slices(self) -> tuple[slice, slice]:
        y0, y1, x0, x1 = self.region
        return slice(y0, y1), slice(x0, x1)


def tile_grid(shape: tuple[int, int], *, tile_size: int, overlap: int) -> list[Tile]:
    """Cut an image of ``shape`` (y, x) into tiles of at most ``tile_size`` pixels plus margins.

    Parameters
    ----------
    shape
        Image height and width in pixels.
    tile_size
        Side of a tile's core; the image is cut into ``ceil(side / tile_size)`` equal cores per axis.
    overlap
        Margin in pixels read around each core (and clipped at the image border).

    Returns
    -------
    Tiles in row-major order; their cores cover the image exactly once.

    Examples
    --------
    >>> [t.core for t in tile_grid((100, 150), tile_size=100, overlap=10)]
    [(0, 100, 0, 75), (0, 100, 75, 150)]
    """
    height, width = (int(v) for v in shape)
    if not isinstance(tile_size, int | np.integer) or tile_size < 16:
        raise DVPError(f"tile_size must be an integer of at least 16 pixels, got {tile_size!r}")
    if not isinstance(overlap, int | np.integer) or overlap < 0:
        raise DVPError(f"overlap must be a non-negative number of pixels, got {overlap!r}")
    if height <= 0 or width <= 0:
        raise DVPError(f"image has shape {shape}; expected a positive height and width")

    def cuts(side: int) -> list[int]:
        n = -(-side // tile_size)
        return [round(i * side / n) for i in range(n + 1)]

    tiles = []
    ys, xs = cuts(height), cuts(width)
    for y0, y1 in zip(ys[:-1], ys[1:], strict=True):
        for x0, x1 in zip(xs[:-1], xs[1:], strict=True):
            region = (max(0, y0 - overlap), min(height, y1 + overlap), max(0, x0 - overlap), min(width, x1 + overlap))
            tiles.append(Tile(len(tiles), (y0, y1, x0, x1), region))
    return tiles


def read_region(image, tile: Tile) -> np.ndarray:
    """The (channels, y, x) pixels of a tile's region from an array or an :class:`~dvp_pipeline.images.ImageSource`."""
    ys, xs = tile.region_slices
    if hasattr(image, "read"):
        return image.read(ys, xs)
    image = np.asarray(image) if not hasattr(image, "shape") else image
    data = image[np.newaxis] if image.ndim == 2 else image
    return np.asarray(data[:, ys, xs])


def image_shape(image) -> tuple[int, int, int]:
    """(channels, y, x) of an array or image source."""
    shape = tuple(image.shape)
    return (1, *shape) if len(shape) == 2 else shape


def stain_contrast(values: np.ndarray, level: float) -> float:
    """How clearly a nuclear stain separates from its background at ``level``, in noise units.

    The median of the foreground (``values`` above ``level``) minus the median of the background,
    over the background's robust standard deviation (1.4826 x its median absolute deviation).
    Pure noise of any distribution gives about 2.3, because an automatic threshold then cuts a single
    peak near its middle; nuclear stains, dim and noisy ones included, give far more (see
    :data:`MIN_CONTRAST`).
    """
    fg, bg = values[values > level], values[values <= level]
    if not fg.size or not bg.size:
        return 0.0
    centre = float(np.median(bg))
    spread = 1.4826 * float(np.median(np.abs(bg - centre)))
    if spread == 0:  # a background of one value (e.g. zeros): fall back to its standard deviation
        spread = float(bg.std())
    return (float(np.median(fg)) - centre) / spread if spread > 0 else float("inf")


def _sample_stride(tiles: list[Tile], budget: int = 4_000_000) -> int:
    """Every how many rows and columns a pixel is sampled so that a slide gives at most ``budget`` values."""
    pixels = sum((t.core[1] - t.core[0]) * (t.core[3] - t.core[2]) for t in tiles)
    return max(2, int(np.ceil(np.sqrt(pixels / budget))))


def _binned(plane: np.ndarray, factor: int = 4) -> np.ndarray:
    """Means of ``factor`` x ``factor`` blocks of a plane (edge rows and columns that do not fill a block
    dropped), flattened; a plane smaller than a block is kept whole."""
    h, w = (plane.shape[0] // factor) * factor, (plane.shape[1] // factor) * factor
    if h == 0 or w == 0:
        return np.asarray(plane, dtype=np.float64).ravel()
    blocks = np.asarray(plane[:h, :w], dtype=np.float64).reshape(h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(1, 3)).ravel()


def global_threshold(
    image,
    tiles: list[Tile],
    *,
    nuclear_channel: int = 0,
    pixel_size_um: float = 0.5,
    smoothing_sigma_um: float = 0.5,
    threshold: str | float = "auto",
    background_radius_um: float | None = None,
    **_ignored,
) -> tuple[float | None, float | None]:
    """The classical method's nuclear threshold for the whole image, found from tile cores, and its contrast.

    Reproduces :func:`dvp_pipeline.segmentation.segment_nuclei` on the whole image: Otsu from the
    same 256-bin histogram of the smoothed nuclear stain (two passes over the tiles: range, then
    histogram); Li and triangle from every 4th pixel of every 4th row. Returns ``(threshold, None)``
    when it is a number (a user's choice is not second-guessed), ``(None, 0.0)`` for a uniform image,
    and otherwise the level and the stain's :func:`stain_contrast` at it. With
    ``background_radius_um`` the level is found on the background-subtracted stain
    (:func:`~dvp_pipeline.segmentation.nuclear_signal`, per tile region, then its core). For
    ``threshold="local"`` or ``"auto"`` the tiles find their own levels and the one returned is only
    for the blank and contrast checks: Otsu's on 4 x 4 block means of the cores, in one pass.
    """
    if not isinstance(threshold, str):
        return float(threshold), None
    if threshold in ("local", "auto"):
        # Only the blank and contrast checks: 4 x 4 means of each core (about as smooth as the
        # segmentation's blur) stand in for the smoothed stain, a sixteenth of the values, no margins.
        sample = np.concatenate(
            [_binned(read_region(image, Tile(t.index, t.core, t.core))[nuclear_channel]) for t in tiles]
        )
        if sample.min() == sample.max():
            return None, 0.0
        level = float(filters.threshold_otsu(sample))
        return level, stain_contrast(sample, level)

    def smoothed_cores():
        for tile in tiles:
            region = nuclear_signal(
                read_region(image, tile)[nuclear_channel],
                pixel_size_um=pixel_size_um,
                smoothing_sigma_um=smoothing_sigma_um,
                background_radius_um=background_radius_um,
            )
            y0, y1, x0, x1 = tile.core
            ry, rx = tile.region[0], tile.region[2]
            yield region[y0 - ry : y1 - ry, x0 - rx : x1 - rx]

    if threshold == "otsu":
        low, high = np.inf, -np.inf
        for core in smoothed_cores():
            low, high = min(low, float(core.min())), max(high, float(core.max()))
        if low == high:
            return None, 0.0
        counts = np.zeros(256, dtype=np.int64)
        # the contrast needs finer values than the 256 bins: a regular subsample, collected on the way
        stride = _sample_stride(tiles)
        samples = []
        for core in smoothed_cores():
            counts += np.histogram(core, bins=256, range=(low, high))[0]
            samples.append(core[::stride, ::stride].ravel())
        edges = np.linspace(low, high, 257)
        centers = (edges[:-1] + edges[1:]) / 2
        level = float(filters.threshold_otsu(hist=(counts, centers)))
        sample = np.concatenate(samples)
        return level, stain_contrast(sample, level)
    functions = {"li": filters.threshold_li, "triangle": filters.threshold_triangle}
    if threshold not in functions:
        raise DVPError(f"threshold {threshold!r} unknown; expected auto, otsu, li, triangle, local or a number")
    sample = np.concatenate([core[::4, ::4].ravel() for core in smoothed_cores()])
    if sample.min() == sample.max():
        return None, 0.0
    level = float(functions[threshold](sample))
    return level, stain_contrast(sample, level)


def plan_tiles(
    image,
    *,
    method: str = "classical",
    tile_size: int = 2048,
    overlap: int = 80,
    options: dict | None = None,
) -> dict:
    """The tiling of an image and the per-tile segmentation options, as JSON-ready data.

    Parameters
    ----------
    image
        Array (channels, y, x) or image source.
    method, options
        As in :func:`dvp_pipeline.segmentation.segment`.
    tile_size, overlap
        As in :func:`tile_grid`.

    Returns
    -------
    dict with ``shape``, ``method``, ``tiles`` (list of ``{index, core, region}``) and ``options``
    (the method's options with a classical automatic threshold replaced by its whole-image value;
    ``blank`` is true when the nuclear stain is uniform, and then no tile has cells), and for the
    classical method's automatic thresholds ``contrast``, the nuclear stain's :func:`stain_contrast`.
    """
    options = dict(options or {})
    shape = image_shape(image)
    tiles = tile_grid(shape[1:], tile_size=tile_size, overlap=overlap)
    blank, contrast = False, None
    if method == "classical":
        level, contrast = global_threshold(image, tiles, **options)
        blank = level is None
        _check_reach(options, overlap)
        local = options.get("threshold", "auto") in ("local", "auto")  # tiles find their levels; this one checks
        if level is not None and len(tiles) > 1 and not local:  # one tile finds the same level itself
            options["threshold"] = level
    return {
        "shape": list(shape),
        "method": method,
        "tiles": [{"index": t.index, "core": list(t.core), "region": list(t.region)} for t in tiles],
        "options": options,
        "blank": blank,
        "contrast": contrast,
    }


def _check_reach(options: dict, overlap: int) -> None:
    """Warn when the margin is narrower than the classical method's opt-in neighbourhood filters look.

    The background opening (``background_radius_um``) sees 2 radii away (3 with the smoothing of
    ``threshold="auto"``), the local threshold about 0.7 of its two-diameter window and the noise
    estimate of ``auto`` half its window; beyond the margin a tile's values differ from the whole
    image's, and cells near tile borders may then differ from an untiled segmentation.
    """
    pixel_size = options.get("pixel_size_um", 0.5)
    radius = options.get("nucleus_diameter_um", 7.0) / pixel_size / 2
    threshold = options.get("threshold", "auto")
    reach = 0.0
    if options.get("background_radius_um") is not None:
        reach = max(reach, (3 if threshold == "auto" else 2) * options["background_radius_um"] / pixel_size)
    if threshold == "local":
        reach = max(reach, 0.7 * 4 * radius)
    if threshold == "auto":
        reach = max(reach, auto_reach(radius))
    if reach > overlap:
        log.warning(
            "segment.overlap_um (%d px) is narrower than the background/local-threshold reach (%.0f px): "
            "cells near tile borders may differ from an untiled segmentation",
            overlap,
            reach,
        )


def tiles_of(plan: dict) -> list[Tile]:
    """The :class:`Tile` objects of a plan from :func:`plan_tiles`."""
    return [Tile(int(t["index"]), tuple(t["core"]), tuple(t["region"])) for t in plan["tiles"]]


def segment_tile(image, tile: Tile, *, plan: dict, pixels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Segment one tile's region and keep the cells it owns.

    Parameters
    ----------
    image
        Array (channels, y, x) or image source (read only when ``pixels`` is not given).
    tile
        The tile, from the plan.
    plan
        From :func:`plan_tiles`.
    pixels
        The tile region's pixels if already read.

    Returns
    -------
    cells, nuclei
        Labels over the tile's region (uint32, 1..k) of the cells whose centroid lies in the core,
        and their nuclei; everything else is 0.
    """
    if pixels is None:
        pixels = read_region(image, tile)
    height, width = pixels.shape[1:]
    if plan.get("blank"):
        empty = np.zeros((height, width), dtype=np.uint32)
        return empty, empty.copy()
    cells, nuclei = segment_cells_and_nuclei(pixels, method=plan["method"], **plan["options"])
    n = int(cells.max())
    if n == 0:
        return cells, nuclei
    flat = cells.ravel()
    index = np.flatnonzero(flat)
    ids = flat[index]
    count = np.bincount(ids, minlength=n + 1)
    cy = np.bincount(ids, weights=index // width, minlength=n + 1) / np.maximum(count, 1)
    cx = np.bincount(ids, weights=index % width, minlength=n + 1) / np.maximum(count, 1)
    y0, y1, x0, x1 = tile.core
    ry, rx = tile.region[0], tile.region[2]
    # Half-open core in the region's coordinates; centroids are compared after rounding down, so a
    # centre exactly on a core border belongs to exactly one tile.
    owned = (
        (count > 0)
        & (np.floor(cy) >= y0 - ry)
        & (np.floor(cy) < y1 - ry)
        & (np.floor(cx) >= x0 - rx)
        & (np.floor(cx) < x1 - rx)
    )
    owned[0] = False
    new_id = np.zeros(n + 1, dtype=np.uint32)
    new_id[owned] = np.arange(1, int(owned.sum()) + 1, dtype=np.uint32)
    return new_id[cells], new_id[nuclei]


class Stitcher:
    """Writes tiles' cells into whole-image label arrays, numbering cells 1..N across tiles.

    Parameters
    ----------
    cells_out, nuclei_out
        Zero-filled (y, x) arrays (numpy, or zarr for whole slides) supporting slice reads and writes.
    """

    def __init__(self, cells_out, nuclei_out) -> None:
        self.cells_out = cells_out
        self.nuclei_out = nuclei_out
        self.n_cells = 0
        self.duplicates = 0

    def add(self, tile: Tile, cells: np.ndarray, nuclei: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Write one tile's owned cells (from :func:`segment_tile`); return what was written.

        Returns
        -------
        cells, nuclei
            The tile region's final labels restricted to the cells this tile added (others 0).
        ids
            The global labels this tile added, ascending.
        """
        ys, xs = tile.region_slices
        written = np.asarray(self.cells_out[ys, xs])
        n = int(cells.max()) if cells.size else 0
        if n == 0:
            empty = np.zeros(cells.shape, dtype=np.uint32)
            return empty, empty.copy(), np.zeros(0, dtype=np.int64)
        free = written == 0
        total = np.bincount(cells.ravel(), minlength=n + 1)
        available = np.bincount(cells[free].ravel(), minlength=n + 1)
        keep = available >= _DUPLICATE_FRACTION * total
        keep[0] = False
        self.duplicates += int(np.count_nonzero(~keep[1:] & (total[1:] > 0)))
        mapping = np.zeros(n + 1, dtype=np.uint32)
        mapping[keep] = np.arange(self.n_cells + 1, self.n_cells + 1 + int(keep.sum()), dtype=np.uint32)
        new_cells = np.where(free, mapping[cells], 0).astype(np.uint32)
        new_nuclei = np.where(new_cells > 0, mapping[nuclei], 0).astype(np.uint32)
        new_nuclei[new_nuclei != new_cells] = 0
        ids = np.arange(self.n_cells + 1, self.n_cells + 1 + int(keep.sum()), dtype=np.int64)
        self.n_cells += int(keep.sum())
        if ids.size:
            self.cells_out[ys, xs] = np.where(new_cells > 0, new_cells, written)
            nuclei_written = np.asarray(self.nuclei_out[ys, xs])
            self.nuclei_out[ys, xs] = np.where(new_nuclei > 0, new_nuclei, nuclei_written)
        return new_cells, new_nuclei, ids


def stitch_tiles(
    image,
    plan: dict,
    *,
    cells_out,
    nuclei_out,
    tile_labels: Callable[[Tile, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    on_tile: Callable[[Tile, np.ndarray, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    executor: Executor | None = None,
    ahead: int = 2,
) -> Stitcher:
    """Segment (or take) every tile of a plan and stitch them into ``cells_out`` and ``nuclei_out``.

    The one tile loop of the pipeline, used by :func:`segment_tiled` and by the segment stage
    (:func:`dvp_pipeline.slide.segment_slide`).

    Parameters
    ----------
    image
        Array (channels, y, x) or (y, x), or an :class:`~dvp_pipeline.images.ImageSource`.
    plan
        From :func:`plan_tiles`.
    cells_out, nuclei_out
        Zero-filled (y, x) uint32 arrays to write into (in memory, or zarr arrays on disk).
    tile_labels
        ``tile_labels(tile, pixels) -> (cells, nuclei)`` gives a tile's labels instead of
        segmenting it (tiles segmented as separate jobs); default :func:`segment_tile`.
    on_tile
        Called after each tile as ``on_tile(tile, pixels, cells, nuclei, ids)`` with the tile
        region's pixels, its final labels restricted to the tile's cells, and their labels; used to
        measure cells tile by tile without reading the slide again.
    executor, ahead
        A process pool to segment tiles in, up to ``ahead`` tiles ahead of the stitching (its worker
        count keeps it busy); the stitching itself stays in tile order here, so the result does not
        depend on the pool.
    """
    stitcher = Stitcher(cells_out, nuclei_out)
    tiles = tiles_of(plan)
    for tile, pixels, (cells, nuclei) in _labelled_tiles(image, plan, tiles, tile_labels, executor, ahead):
        final_cells, final_nuclei, ids = stitcher.add(tile, cells, nuclei)
        if on_tile is not None:
            on_tile(tile, pixels, final_cells, final_nuclei, ids)
        log.debug("tile %d/%d: %d cells", tile.index + 1, len(tiles), len(ids))
    if stitcher.duplicates:
        log.info("%d cell(s) seen by two tiles were kept once", stitcher.duplicates)
    return stitcher


def _labelled_tiles(image, plan: dict, tiles: list[Tile], tile_labels, executor: Executor | None, ahead: int):
    """Each tile with its pixels and its (cells, nuclei) labels, in tile order.

    With an executor, tiles are read here and segmented in the pool, at most ``ahead`` besides the
    one being stitched: the pool stays busy while memory holds only a few tiles.
    """
    if executor is None or tile_labels is not None:
        for tile in tiles:
            pixels = read_region(image, tile)
            if tile_labels is None:
                yield tile, pixels, segment_tile(image, tile, plan=plan, pixels=pixels)
            else:
                yield tile, pixels, tile_labels(tile, pixels)
        return
    queue: deque = deque()
    for tile in tiles:
        pixels = read_region(image, tile)
        queue.append((tile, pixels, executor.submit(segment_tile, None, tile, plan=plan, pixels=pixels)))
        if len(queue) > max(1, ahead):
            done, pixels_done, future = queue.popleft()
            yield done, pixels_done, future.result()
    while queue:
        done, pixels_done, future = queue.popleft()
        yield done, pixels_done, future.result()


def segment_tiled(
    image,
    *,
    method: str = "classical",
    tile_size: int = 2048,
    overlap: int = 80,
    cells_out=None,
    nuclei_out=None,
    on_tile: Callable[[Tile, np.ndarray, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    **options,
) -> tuple[np.ndarray, np.ndarray]:
    """Segment an image tile by tile and stitch the tiles into whole-image labels.

    Parameters
    ----------
    image
        Array (channels, y, x) or (y, x), or an :class:`~dvp_pipeline.images.ImageSource`.
    method, **options
        As in :func:`dvp_pipeline.segmentation.segment`.
    tile_size
        Side of a tile's core in pixels.
    overlap
        Margin in pixels read around each tile; must exceed the largest cell's diameter.
    cells_out, nuclei_out, on_tile
        As in :func:`stitch_tiles`; new in-memory arrays when ``None``.

    Returns
    -------
    cells, nuclei
        ``cells_out`` and ``nuclei_out``: cells numbered 1..N, the nucleus of cell ``k`` labelled ``k``.

    Examples
    --------
    >>> from dvp_pipeline.simulate import simulate_tissue
    >>> image = simulate_tissue("TEN", seed=1, size=200).image
    >>> cells, nuclei = segment_tiled(image, tile_size=128, overlap=40, pixel_size_um=0.5)
    >>> cells.shape, int(cells.max()) > 10
    ((200, 200), True)
    """
    shape = image_shape(image)
    if cells_out is None:
        cells_out = np.zeros(shape[1:], dtype=np.uint32)
    if nuclei_out is None:
        nuclei_out = np.zeros(shape[1:], dtype=np.uint32)
    plan = plan_tiles(image, method=method, tile_size=tile_size, overlap=overlap, options=options)
    stitch_tiles(image, plan, cells_out=cells_out, nuclei_out=nuclei_out, on_tile=on_tile)
    return cells_out, nuclei_out
