"""Label pyramids for whole slides: the cell labels at 1/2, 1/4, 1/8 ... resolution, for viewers.

Sits after ``dvp segment``: a viewer (napari, QuPath, the SpatialData export of
:mod:`dvp_pipeline.spatial`) shows a 40,000-pixel slide's labels at every zoom only if coarser copies
exist. Level ``k`` of a label pyramid is ``labels[::2**k, ::2**k]``: every ``2**k``-th pixel, never an
average (a mean of two cell ids is a third, unrelated id), which is what OME-Zarr label pyramids use.

:func:`label_levels` defines the levels lazily (dask arrays read region by region from the label
image), :func:`write_label_pyramid` writes them as an OME-Zarr multiscale label image in one pass over
the slide, tile by tile, so memory is bounded by the tile, not the slide; :func:`write_cell_type_pyramid`
does the same for the classified cell-type map (``dvp pyramid``, a per-sample workflow output).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError
from dvp_pipeline.io import FILE_SYSTEM_ERRORS

__all__ = ["atomic_folder", "label_levels", "open_labels", "write_cell_type_pyramid", "write_label_pyramid"]


class _Regions:
    """One channel of an :class:`~dvp_pipeline.images.ImageSource` as a (y, x) array-like read on demand.

    Made for :func:`dask.array.from_array`, which reads it one chunk at a time.
    """

    def __init__(self, source, channel: int = 0):
        self._source = source
        self._channel = channel
        self.shape = tuple(source.shape[1:])
        self.dtype = source.dtype
        self.ndim = 2

    def __getitem__(self, index) -> np.ndarray:
        y, x = index if isinstance(index, tuple) else (index, slice(None))
        return self._source.read(y, x)[self._channel]


def open_labels(labels_source):
    """A (y, x) integer label array-like that reads regions on demand, and its closer.

    ``labels_source`` is a label image file (TIFF such as ``labels.tif``, or an OME-Zarr folder),
    read lazily through :func:`dvp_pipeline.images.open_image`, or an array-like already (NumPy,
    zarr, dask), returned as it is with a closer that does nothing.
    """
    if isinstance(labels_source, str | os.PathLike):
        from dvp_pipeline.images import open_image

        source = open_image(labels_source)
        if source.shape[0] != 1 or not np.issubdtype(source.dtype, np.integer):
            source.close()
            found = f"{source.shape[0]} channel(s) of {source.dtype}"
            raise DVPError(f"{labels_source}: expected a 2-D integer label image, got {found}")
        return _Regions(source), source.close
    labels = labels_source
    if len(labels.shape) != 2 or not np.issubdtype(np.dtype(labels.dtype), np.integer):
        raise DVPError(f"labels: expected a 2-D integer label image, got {labels.dtype} of shape {tuple(labels.shape)}")
    return labels, lambda: None


def _n_levels(shape: tuple[int, int], levels: int) -> int:
    """At most ``levels`` levels, fewer when a coarser one would have a side under one pixel."""
    if int(levels) < 1:
        raise DVPError(f"levels: expected a positive number of pyramid levels, got {levels}")
    return max(1, min(int(levels), int(np.floor(np.log2(max(1, min(shape))))) + 1))


def label_levels(labels, *, levels: int = 4, chunk: int = 1024) -> list:
    """The levels of a label pyramid as lazy dask arrays: level ``k`` is ``labels[::2**k, ::2**k]``.

    Parameters
    ----------
    labels
        A (y, x) integer array-like read region by region (see :func:`open_labels`).
    levels
        Number of levels, the full resolution included; fewer when the image is too small for them.
    chunk
        Side of the dask chunks (and of the zarr chunks they are written as) at every level.

    Returns
    -------
    list of dask.array.Array
        Full resolution first. Each source chunk is read once however many levels use it, when the
        levels are computed together (as :meth:`spatialdata.SpatialData.write` does).
    """
    import dask.array as da

    n = _n_levels(tuple(labels.shape), levels)
    # lock: tifffile's and zarr's stores read through one file handle
    base = da.from_array(labels, chunks=(chunk, chunk), lock=True, name=f"dvp-labels-{id(labels):x}", asarray=True)
    result = [base]
    for k in range(1, n):
        step = 2**k
        result.append(base[::step, ::step].rechunk((chunk, chunk)))
    return result


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it replaces ``path`` only if the block succeeds.

    The folder counterpart of :func:`dvp_pipeline.io.atomic_output`, for zarr stores: a failed or killed
    write leaves ``path`` as it was (absent, or the previous complete store), never half written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    old = path.with_name(f".{path.name}.old{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in FILE_SYSTEM_ERRORS and err.errno != errno.EACCES:
            raise OSError(err.errno, os.strerror(err.errno), str(path)) from err
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _multiscales(name: str, n: int, pixel_size_um: float | None, properties: list[dict] | None = None) -> dict:
    """NGFF 0.4 attributes of a label image whose level ``k`` has pixels ``2**k`` times as large."""
    size = 1.0 if pixel_size_um is None else float(pixel_size_um)
    unit = {} if pixel_size_um is None else {"unit": "micrometer"}
    return {
        "multiscales": [
            {
                "version": "0.4",
                "name": name,
                "axes": [{"name": "y", "type": "space", **unit}, {"name": "x", "type": "space", **unit}],
                "datasets": [
                    {
                        "path": str(k),
                        "coordinateTransformations": [{"type": "scale", "scale": [size * 2**k, size * 2**k]}],
                    }
                    for k in range(n)
                ],
                "type": "nearest",
                "metadata": {"description": "level k is labels[::2**k, ::2**k] (every 2**k-th pixel)"},
            }
        ],
        "image-label": {"version": "0.4", **({"properties": properties} if properties else {})},
    }


def write_label_pyramid(
    labels_source,
    out_zarr: str | os.PathLike,
    *,
    levels: int = 4,
    tile: int = 4096,
    chunk: int = 512,
    pixel_size_um: float | None = None,
    name: str = "labels",
    properties: list[dict] | None = None,
) -> list[tuple[int, int]]:
    """Write a label image as an OME-Zarr multiscale label image, tile by tile.

    Each ``tile`` x ``tile`` region of the full-resolution labels is read once and written to every
    level (level ``k`` gets its every ``2**k``-th pixel), so memory is a few tiles whatever the slide's
    size. The store is written under a temporary name and renamed when complete.

    Parameters
    ----------
    labels_source
        A label image file (``labels.tif``, or an OME-Zarr folder) or a (y, x) integer array-like.
    out_zarr
        The OME-Zarr folder to write (zarr format 2, NGFF 0.4): arrays ``0``, ``1`` ... with
        ``multiscales`` and ``image-label`` attributes.
    levels
        Number of levels, the full resolution included; fewer when the image is too small for them.
    tile
        Side of the regions read at a time; a multiple of ``2**(levels - 1)`` so that every level's
        pixels fall on the same grid in every tile.
    chunk
        Side of the zarr chunks (smaller at coarse levels when ``tile / 2**k`` is smaller).
    pixel_size_um
        Micrometres per pixel at full resolution; written as the levels' scale (in pixels without it).
    name
        The multiscale's name (e.g. ``cells``, ``nuclei``).
    properties
        NGFF ``image-label`` properties, e.g. ``[{"label-value": 1, "class": "keratinocyte"}]``.

    Returns
    -------
    list of tuple
        The (y, x) shape of each level.

    Examples
    --------
    >>> import tempfile
    >>> labels = np.arange(36, dtype=np.uint32).reshape(6, 6)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     write_label_pyramid(labels, f"{folder}/cells.zarr", levels=3, tile=4)
    [(6, 6), (3, 3), (2, 2)]
    """
    import zarr

    labels, close = open_labels(labels_source)
    try:
        height, width = (int(n) for n in labels.shape)
        n = _n_levels((height, width), levels)
        if tile < 1 or tile % 2 ** (n - 1):
            raise DVPError(f"tile: expected a positive multiple of 2**(levels - 1) = {2 ** (n - 1)}, got {tile}")
        shapes = [(-(-height // 2**k), -(-width // 2**k)) for k in range(n)]
        with atomic_folder(out_zarr) as tmp:
            group = zarr.open_group(tmp, mode="w", zarr_format=2)
            arrays = [
                group.create_array(
                    str(k),
                    shape=shape,
                    dtype=np.dtype(labels.dtype),
                    chunks=(max(1, min(chunk, tile >> k)),) * 2,
                    fill_value=0,
                    chunk_key_encoding={"name": "v2", "separator": "/"},
                )
                for k, shape in enumerate(shapes)
            ]
            for y in range(0, height, tile):
                for x in range(0, width, tile):
                    block = np.asarray(labels[y : y + tile, x : x + tile])
                    for k, array in enumerate(arrays):
                        step = 2**k
                        part = block[::step, ::step]
                        # y and x are multiples of 2**k, so the block's first kept pixel is the level's
                        y_k, x_k = y // step, x // step
                        array[y_k : y_k + part.shape[0], x_k : x_k + part.shape[1]] = part
            group.attrs.update(json.loads(json.dumps(_multiscales(name, n, pixel_size_um, properties))))
    finally:
        close()
    return shapes


class _Mapped:
    """A label array-like whose values are mapped through a lookup table on each read (a tile at a time)."""

    def __init__(self, labels, lookup: np.ndarray):
        self._labels, self._lookup = labels, lookup
        self.shape, self.dtype, self.ndim = tuple(labels.shape), lookup.dtype, 2

    def __getitem__(self, index) -> np.ndarray:
        block = np.asarray(self._labels[index])
        # labels beyond the table (none in a consistent results folder) map to 0, background
        return np.where(block < len(self._lookup), self._lookup[np.minimum(block, len(self._lookup) - 1)], 0)


def write_cell_type_pyramid(
    labels_source,
    cells: pd.DataFrame,
    out_zarr: str | os.PathLike,
    *,
    cell_types: Sequence[str],
    levels: int = 4,
    tile: int = 4096,
    pixel_size_um: float | None = None,
) -> list[tuple[int, int]]:
    """The classified cell-type map as an OME-Zarr label pyramid, written tile by tile.

    Each cell's pixels get the code of its type: 1, 2 ... in ``cell_types`` order, then ``unassigned``
    (and any other type) after them; 0 is background. The codes and names are the ``image-label``
    properties (``label-value``, ``class``), so viewers show the names.
    """
    missing = [c for c in ("cell_id", "cell_type") if c not in cells.columns]
    if missing:
        raise DVPError(f"cells table: missing column(s) {missing}; expected the classified cells")
    names = list(dict.fromkeys([*cell_types, *sorted(set(cells["cell_type"].astype(str)) - set(cell_types))]))
    code = {name: k for k, name in enumerate(names, start=1)}
    ids = cells["cell_id"].to_numpy(dtype=np.int64)
    if len(ids) and ids.min() < 1:
        raise DVPError(f"cells table: cell_id must be positive labels, got {ids.min()}")
    lookup = np.zeros(int(ids.max(initial=0)) + 1, dtype=np.uint8 if len(names) < 255 else np.uint16)
    lookup[ids] = [code[t] for t in cells["cell_type"].astype(str)]
    labels, close = open_labels(labels_source)
    try:
        return write_label_pyramid(
            _Mapped(labels, lookup),
            out_zarr,
            levels=levels,
            tile=tile,
            pixel_size_um=pixel_size_um,
            name="cell_types",
            properties=[{"label-value": k, "class": name} for name, k in code.items()],
        )
    finally:
        close()
