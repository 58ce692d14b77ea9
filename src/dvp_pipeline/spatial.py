"""One sample as a SpatialData object, to open in napari-spatialdata and the scverse tools.

Sits after the select stage, beside the reports: it gathers what the imaging and laser-microdissection
stages wrote for one sample (``labels.tif``, ``nuclei.tif``, ``cells_classified.parquet`` or
``cells.parquet``, ``lmd/shapes.parquet`` and ``lmd/pools.tsv``, the cohort's sample key) and the sample's image into a
:class:`spatialdata.SpatialData` (``dvp export-spatialdata``):

========================  ==========  =====================================================================
element                   kind        content
========================  ==========  =====================================================================
``image``                 image       the sample's image, multiscale, channel names as ``c`` coordinates
``cells``                 labels      the cell labels, multiscale (level k = ``labels[::2**k, ::2**k]``)
``nuclei``                labels      the nucleus labels (nucleus k belongs to cell k), multiscale
``cell_outlines``         shapes      one polygon per cell traced from the labels, index and ``cell_id``
``lmd_shapes``            shapes      the select stage's cutting shapes with ``pool_id``, ``order``,
                                      ``cell_ids``, ``cell_type``, ``kind`` and the ``plate``/``well``
``table``                 table       the cells table as AnnData annotating ``cells``: ``region`` /
                                      ``cell_id`` link each row to its label
========================  ==========  =====================================================================

Coordinates
-----------
One coordinate system, ``global``, in micrometres: every element maps to it by ``Scale(pixel size)``
from its pixels. SpatialData puts pixel *corners* on integers (pixel ``(row, col)`` covers
``[col, col + 1] x [row, row + 1]``), the frame of the LMD and QuPath outlines
(:mod:`dvp_pipeline.selection`); the cells table's ``centroid_x`` / ``centroid_y`` put pixel *centres*
on integers, so the table's ``obsm["spatial"]`` here is ``(centroid + 0.5) * pixel size``: the cells'
centres fall on their labels and outlines in every viewer.

Memory
------
The image and the labels are read lazily, region by region (:func:`dvp_pipeline.images.open_image`,
:mod:`dvp_pipeline.pyramid`), and written by :func:`write_spatialdata` chunk by chunk, so a whole slide is
never in memory; the outlines are traced tile by tile. What grows with the slide is what grows with its
cells: the table and the polygons.
"""

from __future__ import annotations

import logging
import os
import warnings
import weakref
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline import io
from dvp_pipeline.errors import DVPError
from dvp_pipeline.layout import Results
from dvp_pipeline.pyramid import _n_levels, atomic_folder, label_levels, open_labels

__all__ = [
    "cell_polygons",
    "cells_table",
    "lmd_shapes",
    "sample_spatialdata",
    "spatialdata_path",
    "write_spatialdata",
]

log = logging.getLogger(__name__)

#: The one coordinate system of the export, in micrometres.
COORDINATE_SYSTEM = "global"

#: Element names (the same for every sample, so a script written for one opens all).
IMAGE, CELLS, NUCLEI, OUTLINES, LMD_SHAPES, TABLE = "image", "cells", "nuclei", "cell_outlines", "lmd_shapes", "table"


def spatialdata_path(results: Results | str | os.PathLike, sample: str) -> str:
    """Where ``dvp export-spatialdata`` writes a sample by default: ``{results}/{sample}/{sample}.spatialdata.zarr``."""
    results = results if isinstance(results, Results) else Results(str(Path(results)))
    return f"{results.sample_dir(sample)}/{sample}.spatialdata.zarr"


def _scale(pixel_size_um: float):
    from spatialdata.transformations import Scale

    return Scale([pixel_size_um, pixel_size_um], axes=("y", "x"))


class _ImageRegions:
    """An :class:`~dvp_pipeline.images.ImageSource` as a (channels, y, x) array-like for dask."""

    def __init__(self, source):
        self._source = source
        self.shape = tuple(source.shape)
        self.dtype = source.dtype
        self.ndim = 3

    def __getitem__(self, index) -> np.ndarray:
        c, y, x = index
        return self._source.read(y, x)[c]


def _image_element(source, *, pixel_size_um: float, levels: int, chunk: int):
    """The image as a multiscale SpatialData image read region by region from ``source``."""
    import dask.array as da
    from spatialdata.models import Image2DModel

    regions = _ImageRegions(source)
    weakref.finalize(regions, source.close)  # the file stays open as long as the dask graph needs it
    n_channels = regions.shape[0]
    # read all channels of a region at once (one read of the file), store them channel by channel (viewers
    # load one channel at a time)
    data = da.from_array(
        regions, chunks=(n_channels, chunk, chunk), lock=True, name=f"dvp-image-{id(regions):x}", asarray=True
    )
    data = data.rechunk((1, chunk, chunk))
    n = _n_levels(regions.shape[1:], levels)
    return Image2DModel.parse(
        data,
        dims=("c", "y", "x"),
        c_coords=list(source.names),
        scale_factors=[2] * (n - 1) or None,
        transformations={COORDINATE_SYSTEM: _scale(pixel_size_um)},
    )


def _labels_element(labels, *, pixel_size_um: float, levels: int, chunk: int):
    """Labels as a multiscale SpatialData labels element whose levels are :func:`~dvp_pipeline.pyramid.label_levels`."""
    from spatialdata.models import Labels2DModel
    from spatialdata.transformations import set_transformation
    from xarray import DataArray, Dataset, DataTree

    arrays = label_levels(labels, levels=levels, chunk=chunk)
    height, width = arrays[0].shape
    scales = {}
    for k, array in enumerate(arrays):
        ny, nx = array.shape
        # pixel centres of level k in level-0 pixels, as spatialdata places them (corners on integers)
        coords = {
            "y": np.linspace(0, height, ny + 1)[:-1] + height / ny / 2,
            "x": np.linspace(0, width, nx + 1)[:-1] + width / nx / 2,
        }
        scales[f"scale{k}"] = Dataset({"image": DataArray(array, dims=("y", "x"), coords=coords)})
    if len(arrays) == 1:
        element = scales["scale0"]["image"]
    else:
        element = DataTree.from_dict(scales)
    set_transformation(element, {COORDINATE_SYSTEM: _scale(pixel_size_um)}, set_all=True)
    Labels2DModel().validate(element)
    return element


def _bounding_boxes(labels, tile: int) -> np.ndarray:
    """Every label's bounding box (top, left, bottom, right; row -1 for absent labels), from one pass of tiles."""
    from scipy import ndimage

    height, width = (int(n) for n in labels.shape)
    boxes = np.full((1, 4), -1, dtype=np.int64)
    for ty in range(0, height, tile):
        for tx in range(0, width, tile):
            found = ndimage.find_objects(np.asarray(labels[ty : ty + tile, tx : tx + tile]))
            ids = np.array([i + 1 for i, box in enumerate(found) if box is not None], dtype=np.int64)
            if not len(ids):
                continue
            if ids[-1] >= len(boxes):
                boxes = np.vstack([boxes, np.full((ids[-1] + 1 - len(boxes), 4), -1, dtype=np.int64)])
            here = np.array(
                [(b[0].start + ty, b[1].start + tx, b[0].stop + ty, b[1].stop + tx) for b in found if b is not None]
            )
            old = boxes[ids]
            seen = old[:, 0] >= 0
            here[seen, :2] = np.minimum(here[seen, :2], old[seen, :2])
            here[seen, 2:] = np.maximum(here[seen, 2:], old[seen, 2:])
            boxes[ids] = here
    return boxes


def cell_polygons(labels, *, tile: int = 2048, halo: int = 256, simplify_px: float = 0.5):
    """Every cell's outline as a shapely polygon, traced from the labels tile by tile.

    Each outline is the one :func:`dvp_pipeline.selection.cell_outlines` draws without dilation (the
    cell's pixels traced at their boundary, in the corner-origin pixel frame, simplified by
    ``simplify_px``; the largest piece of a cell in pieces). The labels are read twice, a tile at a
    time: once for every cell's bounding box, then to trace each cell in the tile that holds its box's
    top-left corner, from a window reaching ``halo`` pixels past the tile (a cell larger than that is
    read on its own). The result does not depend on the tiling, and memory is one window, not the slide.

    Parameters
    ----------
    labels
        A (y, x) integer label array-like read region by region (a NumPy or zarr array, or the first
        value of :func:`dvp_pipeline.pyramid.open_labels`).
    tile, halo
        Side of the tiles, and how far past a tile its window reaches, in pixels.
    simplify_px
        Douglas-Peucker tolerance in pixels (0 = every boundary vertex).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per label, in label order: index and ``cell_id`` column = the label, ``geometry`` the
        polygon in pixels.
    """
    import geopandas as gpd
    import shapely
    from skimage.measure import approximate_polygon

    from dvp_pipeline.selection import cell_outlines

    height, width = (int(n) for n in labels.shape)
    boxes = _bounding_boxes(labels, tile)
    ids = np.flatnonzero(boxes[:, 0] >= 0)
    rings: dict[int, np.ndarray] = {}

    def trace(crop: np.ndarray, top: int, left: int, cell_id: int) -> None:
        # other cells' pixels are background in the mask, so the crop needs no margin: cell_outlines pads it
        mask = (crop == cell_id).view(np.uint8)
        ring = cell_outlines(mask, [1], dilation_px=0.0, simplify_px=0.0)[1] + [left, top]
        # simplified in image pixels, as cell_outlines does: Douglas-Peucker meets exact ties on these
        # half-pixel vertices, and where it breaks them depends on the frame's rounding
        simplified = approximate_polygon(ring, tolerance=simplify_px) if simplify_px > 0 else ring
        if len(np.unique(simplified[:-1], axis=0)) >= 3:
            ring = simplified
        if not np.array_equal(ring[0], ring[-1]):
            ring = np.vstack([ring, ring[:1]])
        x, y = ring[:, 0], ring[:, 1]
        if np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]) < 0:
            ring = ring[::-1]
        rings[cell_id] = ring

    owner = (boxes[ids, 0] // tile) * (-(-width // tile)) + boxes[ids, 1] // tile
    order = np.argsort(owner, kind="stable")
    for group in np.split(ids[order], np.flatnonzero(np.diff(owner[order])) + 1):
        if not len(group):
            continue
        ty, tx = boxes[group[0], 0] // tile * tile, boxes[group[0], 1] // tile * tile
        y1, x1 = min(ty + tile + halo, height), min(tx + tile + halo, width)
        window = None
        for cell_id in group:
            top, left, bottom, right = (int(v) for v in boxes[cell_id])
            if bottom <= y1 and right <= x1:
                if window is None:
                    window = np.asarray(labels[ty:y1, tx:x1])
                trace(window[top - ty : bottom - ty, left - tx : right - tx], top, left, int(cell_id))
            else:  # larger than the halo: read on its own
                trace(np.asarray(labels[top:bottom, left:right]), top, left, int(cell_id))
    index = pd.Index(ids, dtype=np.int64)
    polygons = [shapely.Polygon(rings[int(i)]) for i in ids]
    return gpd.GeoDataFrame({"cell_id": ids}, geometry=gpd.GeoSeries(polygons, index=index), index=index)


def lmd_shapes(shapes: pd.DataFrame, pools: pd.DataFrame, key: pd.DataFrame | None = None, *, source: str = ""):
    """The select stage's cutting shapes as a GeoDataFrame with their pool, cell type, cells and well.

    Parameters
    ----------
    shapes
        ``lmd/shapes.parquet`` (``dvp select``): one row per shape in cutting order, ``pool_id``,
        ``order``, ``cell_ids``, ``area_um2`` and the vertices ``x``, ``y`` in pixels (corner origin).
    pools
        ``lmd/pools.tsv``: each pool's cell type, replicate and kind (pool or control).
    key
        The cohort's ``lmd/sample_key.tsv`` (``dvp plate``), for each pool's plate and well; ``None``
        (not plated yet) leaves them empty.
    source
        Named in error messages.
    """
    import geopandas as gpd
    import shapely

    for table, columns, what in ((shapes, ("pool_id", "x", "y"), "shapes"), (pools, ("pool_id", "cell_type"), "pools")):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise DVPError(f"{source}: the {what} table lacks {', '.join(missing)} (written by dvp select?)")
    info = pools.set_index("pool_id")[[c for c in ("cell_type", "replicate", "kind") if c in pools.columns]]
    unknown = sorted(set(shapes["pool_id"]) - set(info.index))
    if unknown:
        raise DVPError(f"{source}: shapes of pools {unknown[:5]} that pools.tsv does not list")
    table = shapes.drop(columns=["x", "y"]).join(info, on="pool_id")
    if key is not None:
        table = table.join(key.set_index("pool_id")[["plate", "well"]], on="pool_id")
    geometry = [shapely.Polygon(np.column_stack([x, y])) for x, y in zip(shapes["x"], shapes["y"], strict=True)]
    return gpd.GeoDataFrame(table.reset_index(drop=True), geometry=geometry)


def cells_table(cells: pd.DataFrame, *, pixel_size_um: float, region: str = CELLS):
    """The cells table as a SpatialData table annotating the labels element ``region``.

    The AnnData of ``cells.h5ad`` (:func:`dvp_pipeline.features.to_anndata`: ``X`` = mean intensity
    per channel, marker names in ``var_names``, every other column in ``obs``) plus ``obs["region"]``
    and the instance key ``obs["cell_id"]`` (= the cell's label), with ``obsm["spatial"]`` the cell's
    centre in micrometres in the ``global`` coordinate system and ``obsm["spatial_px"]`` in the labels'
    pixels (both pixel-corner frame, see the module docstring).
    """
    from spatialdata.models import TableModel

    from dvp_pipeline.features import to_anndata

    if "cell_id" not in cells.columns:
        raise DVPError("cells table: no cell_id column")
    if not {"centroid_x", "centroid_y"} <= set(cells.columns):
        raise DVPError("cells table: expected centroid_x and centroid_y columns (pixels)")
    adata = to_anndata(cells)
    adata.obs["cell_id"] = cells["cell_id"].to_numpy(dtype=np.int64)
    adata.obs["region"] = pd.Categorical([region] * len(cells))
    centre = cells[["centroid_x", "centroid_y"]].to_numpy(dtype=float) + 0.5
    adata.obsm["spatial_px"] = centre
    adata.obsm["spatial"] = centre * pixel_size_um
    adata.uns["dvp"] = {
        **adata.uns.get("dvp", {}),
        "pixel_size_um": float(pixel_size_um),
        "spatial": f"x, y in micrometres in the '{COORDINATE_SYSTEM}' coordinate system (pixel corners on "
        "integers: the cells table's centroid + 0.5 pixel, times the pixel size)",
    }
    return TableModel.parse(adata, region=region, region_key="region", instance_key="cell_id")


def _cells(results: Results, sample: str) -> tuple[pd.DataFrame, str]:
    """``cells_classified.parquet``, else ``cells.parquet`` (before ``dvp classify``), and its path."""
    for path in (results.cells_classified(sample), results.cells(sample)):
        if Path(path).is_file():
            return io.read_table(path), path
    raise DVPError(
        f"{results.cells_classified(sample)} not found (nor {results.cells(sample)}): `dvp segment` writes "
        "cells.parquet and `dvp classify` cells_classified.parquet"
    )


def _pixel_size(cells: pd.DataFrame, given: float | None, image_size: float | None, cells_path: str) -> float:
    """The pixel size: as given (samples sheet or config), else what the cells table was measured at,
    else the image's metadata."""
    from dvp_pipeline.selection import pixel_size_from_cells

    measured = pixel_size_from_cells(cells)
    size = next((s for s in (given, measured, image_size) if s is not None), None)
    if size is None:
        raise DVPError(
            f"{cells_path}: cannot tell the pixel size (none given, no area/area_um2 in the cells table, none in "
            "the image metadata); set pixel_size_um in samples.tsv or the config"
        )
    if not (np.isfinite(size) and size > 0):
        raise DVPError(f"pixel size: expected a positive number of micrometres, got {size}")
    if measured is not None and abs(measured - size) > 1e-6 * size:
        log.warning(
            "%s was measured at %.6g um per pixel, the export uses %.6g: the table's _um columns do not match the "
            "image (segment again?)",
            cells_path,
            measured,
            size,
        )
    return float(size)


def sample_spatialdata(
    results: Results | str | os.PathLike,
    sample: str,
    *,
    image_path: str | os.PathLike,
    channels: list[str] | None = None,
    pixel_size_um: float | None = None,
    levels: int = 4,
    chunk: int = 1024,
):
    """One sample's image, labels, outlines, LMD shapes and cells table as a :class:`spatialdata.SpatialData`.

    Parameters
    ----------
    results
        The results layout, or its folder: ``{sample}/labels.tif`` and ``cells_classified.parquet`` (or,
        before ``dvp classify``, ``cells.parquet``) are needed; ``nuclei.tif`` and the select stage's
        ``lmd/shapes.parquet`` and ``lmd/pools.tsv`` (with wells from the cohort's sample key) are
        added when present.
    sample
        The sample's name.
    image_path
        The sample's image (OME-TIFF, TIFF, OME-Zarr, CZI, LIF, ND2), read lazily.
    channels
        Channel names as in the config (``channels``): they select and order a named image's channels
        or name an unnamed image's; ``None`` keeps the file's.
    pixel_size_um
        Micrometres per pixel (samples sheet, then config); ``None``: what the cells table was measured
        at, else the image's metadata.
    levels
        Pyramid levels of the image and labels, the full resolution included (fewer for small images).
    chunk
        Side of the chunks the rasters are read and written in.

    Returns
    -------
    spatialdata.SpatialData
        Elements as listed in the module docstring, all in the ``global`` coordinate system (µm); the
        rasters are lazy (dask) until written with :func:`write_spatialdata`. ``attrs["dvp"]`` records
        the sample, pixel size, image, channel names and cells table it was made from.

    Examples
    --------
    In a project folder after ``dvp run``::

        sdata = sample_spatialdata("results", "TEN01", image_path="data/sample/TEN01.ome.tif")
        write_spatialdata(sdata, "results/TEN01/TEN01.spatialdata.zarr")
    """
    import spatialdata as sd
    from spatialdata.models import ShapesModel

    from dvp_pipeline import __version__
    from dvp_pipeline.images import open_image

    results = results if isinstance(results, Results) else Results(str(Path(results)))
    sample = str(sample)
    labels_path = Path(results.labels(sample))
    if not labels_path.is_file():
        raise DVPError(f"{labels_path} not found: `dvp segment` writes the sample's cell labels there")
    cells, cells_path = _cells(results, sample)

    image = open_image(image_path, channels=channels)
    labels, close_labels = open_labels(labels_path)
    weakref.finalize(labels, close_labels)
    try:
        if tuple(image.shape[1:]) != tuple(labels.shape):
            raise DVPError(
                f"{image_path}: the image is {image.shape[1]} x {image.shape[2]} pixels (y, x) but {labels_path} is "
                f"{labels.shape[0]} x {labels.shape[1]}: not the image this sample was segmented on"
            )
        size = _pixel_size(cells, pixel_size_um, image.pixel_size_um, cells_path)
        scale = _scale(size)
        elements: dict = {"images": {}, "labels": {}, "shapes": {}, "tables": {}}
        elements["images"][IMAGE] = _image_element(image, pixel_size_um=size, levels=levels, chunk=chunk)
    except BaseException:
        image.close()
        raise
    elements["labels"][CELLS] = _labels_element(labels, pixel_size_um=size, levels=levels, chunk=chunk)
    nuclei_path = Path(results.nuclei(sample))
    if nuclei_path.is_file():
        nuclei, close_nuclei = open_labels(nuclei_path)
        weakref.finalize(nuclei, close_nuclei)
        if tuple(nuclei.shape) != tuple(labels.shape):
            raise DVPError(f"{nuclei_path}: {nuclei.shape} pixels, but {labels_path} has {labels.shape}")
        elements["labels"][NUCLEI] = _labels_element(nuclei, pixel_size_um=size, levels=levels, chunk=chunk)
    else:
        log.info("%s not found: the export has no nuclei", nuclei_path)

    present = set(np.unique(cells["cell_id"].to_numpy(dtype=np.int64)))
    outlines = cell_polygons(labels)
    strays = sorted(present - set(outlines["cell_id"].tolist()))
    if strays:
        raise DVPError(f"{cells_path}: cell_id(s) {strays[:10]} are not labels of {labels_path}")
    elements["shapes"][OUTLINES] = ShapesModel.parse(outlines, transformations={COORDINATE_SYSTEM: scale})

    shapes_path, pools_path = Path(results.shapes_table(sample)), Path(results.pools(sample))
    if shapes_path.is_file() and pools_path.is_file():
        key_path = Path(results.sample_key())
        key = io.read_table(key_path, dtype={"sample": str}) if key_path.is_file() else None
        chosen = lmd_shapes(io.read_table(shapes_path), io.read_table(pools_path), key, source=str(shapes_path))
        elements["shapes"][LMD_SHAPES] = ShapesModel.parse(chosen, transformations={COORDINATE_SYSTEM: scale})
    else:
        log.info("%s not found: the export has no LMD shapes (run dvp select first)", shapes_path)

    elements["tables"][TABLE] = cells_table(cells, pixel_size_um=size, region=CELLS)
    attrs = {
        "dvp": {
            "sample": sample,
            "pixel_size_um": size,
            "coordinate_system": COORDINATE_SYSTEM,
            "units": "micrometer",
            "image": str(image_path),
            "channels": list(image.names),
            "cells_table": str(cells_path),
            "version": __version__,
        }
    }
    return sd.SpatialData(**elements, attrs=attrs)


def write_spatialdata(sdata, out: str | os.PathLike) -> None:
    """Write a SpatialData object to a zarr store, atomically.

    The store is written to a temporary folder next to ``out`` and renamed to ``out`` when complete
    (replacing an earlier export), so a failed or killed write leaves no half-written store. Lazy
    rasters are read and written chunk by chunk.
    """
    out = Path(out)
    with atomic_folder(out) as tmp, warnings.catch_warnings():
        # zarr announces a future default once per array; nothing a user of the export can act on
        warnings.filterwarnings("ignore", message=".*autosharding", category=UserWarning)
        sdata.write(tmp, overwrite=False)
    sdata.path = out
