"""A synthetic whole slide of any size, drawn tile by tile: the input of the tiling tests and benchmarks.

Part of :mod:`dvp_pipeline.simulate`: :func:`big_slide_tile` draws any region of a 4-channel slide
(nuclei on a jittered grid, each cell's type fixed by a hash of its grid position), so regions drawn
separately agree where they meet; :func:`write_big_slide` streams such tiles into a tiled OME-TIFF
without holding the slide in memory. Used by ``tests/test_tiling.py`` and ``bench/bench_segment.py``.
Simpler than :mod:`dvp_pipeline.simulate.tissue`, whose sections are realistic but must fit in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import tifffile
from scipy import ndimage as ndi

from dvp_pipeline.io import atomic_output
from dvp_pipeline.simulate._constants import CHANNELS, PIXEL_SIZE_UM

__all__ = ["big_slide_tile", "write_big_slide"]


def _hash_uniform(i: np.ndarray, j: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """Deterministic uniform [0, 1) numbers for integer grid positions (a stateless RNG).

    Any tile of a big slide can then be drawn on its own and still agree with its neighbours.
    """
    h = (i.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (j.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
    h ^= np.uint64((seed * 0x165667B19E3779F9 + salt * 0x27D4EB2F165667C5) & 0xFFFFFFFFFFFFFFFF)
    for shift, mult in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB9FE1A85EC53)):
        h ^= h >> np.uint64(shift)
        h *= np.uint64(mult)
    h ^= h >> np.uint64(33)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def big_slide_tile(y0: int, x0: int, height: int, width: int, *, seed: int = 0, spacing: int = 16) -> np.ndarray:
    """One region (4, height, width) uint16 of the synthetic whole slide of :func:`write_big_slide`.

    Nuclei sit on a jittered grid (``spacing`` pixels, 70% occupied) with radius 4-6 pixels; each
    cell is a keratinocyte (KRT14 around the nucleus), a CD8 T cell or a macrophage (CD163) by a
    hash of its grid position, so any region can be drawn alone and matches its neighbours.
    """
    margin = 2 * spacing
    gy = np.arange((y0 - margin) // spacing, (y0 + height + margin) // spacing + 1)
    gx = np.arange((x0 - margin) // spacing, (x0 + width + margin) // spacing + 1)
    i, j = np.meshgrid(gy, gx, indexing="ij")
    present = _hash_uniform(i, j, seed, 1) < 0.7
    cy = i * spacing + spacing / 2 + (_hash_uniform(i, j, seed, 2) - 0.5) * spacing * 0.35
    cx = j * spacing + spacing / 2 + (_hash_uniform(i, j, seed, 3) - 0.5) * spacing * 0.35
    radius = 4.0 + 2.0 * _hash_uniform(i, j, seed, 4)
    kind = np.floor(_hash_uniform(i, j, seed, 5) * 3).astype(int)
    brightness = 0.7 + 0.6 * _hash_uniform(i, j, seed, 6)
    cy, cx, radius, kind, brightness = (a[present] for a in (cy, cx, radius, kind, brightness))
    # Distance from every pixel to the nearest nucleus centre (on the region plus margin).
    canvas = np.ones((height + 2 * margin, width + 2 * margin), dtype=bool)
    py = np.clip(np.round(cy - (y0 - margin)).astype(int), 0, canvas.shape[0] - 1)
    px = np.clip(np.round(cx - (x0 - margin)).astype(int), 0, canvas.shape[1] - 1)
    canvas[py, px] = False
    index = np.full(canvas.shape, -1, dtype=np.int64)
    index[py, px] = np.arange(len(py))
    distance, (ny, nx) = ndi.distance_transform_edt(canvas, return_indices=True)
    nearest = index[ny, nx]
    crop = (slice(margin, margin + height), slice(margin, margin + width))
    distance, nearest = distance[crop], nearest[crop]
    rng = np.random.default_rng([seed, y0, x0])
    nucleus = distance <= radius[nearest]
    cell = distance <= radius[nearest] + 5
    image = np.empty((4, height, width), dtype=np.uint16)
    background = rng.normal(100, 10, size=(4, height, width))
    image[0] = np.clip(background[0] + nucleus * 1200 * brightness[nearest], 0, 65535)
    for channel, k in ((1, 0), (2, 1), (3, 2)):
        signal = cell & (kind[nearest] == k)
        image[channel] = np.clip(background[channel] + signal * 600 * brightness[nearest], 0, 65535)
    return image


def write_big_slide(
    path: str | os.PathLike,
    *,
    size: int = 20_000,
    seed: int = 0,
    pixel_size_um: float = PIXEL_SIZE_UM,
    tile: int = 1024,
) -> None:
    """Write a synthetic whole slide (4 channels, ``size`` x ``size`` uint16) as a tiled OME-TIFF.

    The slide is drawn tile by tile (:func:`big_slide_tile`) and streamed to disk, so memory stays
    bounded whatever the size; 20,000 pixels a side is a 3.2 GB file (uncompressed, for reading
    speed). Used by ``bench/bench_segment.py`` and the tiling tests.
    """
    tile = int(tile)

    def by_channel() -> Iterator[np.ndarray]:
        # tifffile wants the tiles of one channel after another: draw each region once per channel.
        for c in range(4):
            for y in range(0, size, tile):
                for x in range(0, size, tile):
                    block = np.zeros((tile, tile), dtype=np.uint16)
                    h, w = min(tile, size - y), min(tile, size - x)
                    block[:h, :w] = big_slide_tile(y, x, h, w, seed=seed)[c]
                    yield block

    metadata = {
        "axes": "CYX",
        "Channel": {"Name": list(CHANNELS)},
        "PhysicalSizeX": pixel_size_um,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": pixel_size_um,
        "PhysicalSizeYUnit": "µm",
    }
    with atomic_output(path) as tmp:
        ome_tmp = tmp.with_name(tmp.name.removesuffix(".tif") + ".ome.tif")
        tifffile.imwrite(
            ome_tmp,
            by_channel(),
            shape=(4, size, size),
            dtype=np.uint16,
            tile=(tile, tile),
            ome=True,
            photometric="minisblack",
            metadata=metadata,
            bigtiff=True,
        )
        os.replace(ome_tmp, tmp)
