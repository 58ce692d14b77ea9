"""A harder simulated skin section: the yardstick for segmentation methods.

Part of :mod:`dvp_pipeline.simulate`, next to :mod:`~dvp_pipeline.simulate.tissue`, whose steps it
reuses (layout of the skin, dart throwing, nucleus drawing, growth into cells, stains, optics). The
demo's sections are kind to a threshold-and-watershed segmenter: nuclei keep a gap, brightness is
even. Real tissue is not, and :func:`simulate_hard_tissue` draws what the classical method loses
there: nuclei of varied size packed into touching clusters (T-cell aggregates in the dermis, a dense
epidermis), a smooth illumination field that spans several-fold across the image, Poisson and
Gaussian noise at lower light, and about one cell in ten with a nuclear stain 3 to 5 times weaker
than its neighbours (flagged ``dim`` in the truth table). ``bench/bench_segment_quality.py`` scores
segmentation methods on it; nothing in the pipeline's stages imports it.

Like :func:`~dvp_pipeline.simulate.tissue.simulate_tissue`, every random number comes from one seeded
generator drawn in a fixed order, so a seed gives the same section on every machine.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from dvp_pipeline.errors import DVPError
from dvp_pipeline.simulate._constants import CHANNELS, PIXEL_SIZE_UM, UNASSIGNED
from dvp_pipeline.simulate.tissue import (
    _SHAPES,
    _cell_table,
    _draw_nuclei,
    _exclusion,
    _grow_cells,
    _Layout,
    _layout,
    _optics,
    _orient,
    _renumber,
    _smooth_noise,
    _stain,
    _stain_levels,
    _throw_darts,
)

__all__ = ["HARD_CHANNELS", "HardTissue", "simulate_hard_tissue"]

#: Channels of a hard section: the demo's four, then a membrane stain (wheat germ agglutinin).
HARD_CHANNELS = (*CHANNELS, "WGA")

# Photo-electrons from a typical bright cell, per channel: a dimmer, noisier exposure than the demo's.
_PEAK_COUNTS = np.array([650.0, 800.0, 650.0, 650.0, 550.0])
_OFFSET = np.array([100.0, 90.0, 80.0, 85.0, 95.0])
_READ_NOISE = 3.0  # counts (one count per electron)


class HardTissue(NamedTuple):
    """One hard section: ``image`` (channels, y, x) uint16 in the order of ``channels``, ``labels``
    (y, x) uint32 whole cells, ``nuclei`` (y, x) uint32 (the nucleus of cell ``k`` is labelled
    ``k``), ``cells`` the truth table (one row per label) and ``channels`` the channel names."""

    image: np.ndarray
    labels: np.ndarray
    nuclei: np.ndarray
    cells: pd.DataFrame
    channels: tuple[str, ...]


class _Packing:
    """Nuclei placed so far (for dart throwing) and what they are."""

    def __init__(self, px: float) -> None:
        self.px = px
        self.centres: list = []
        self.exclusion: list = []
        self.kinds: list[np.ndarray] = []
        self.axes: list[np.ndarray] = []
        self.cluster: list[np.ndarray] = []
        # Grid cell of the dart thrower: at least twice the largest exclusion radius (a big stromal
        # nucleus scaled up by 1.35 reaches about 8 um).
        self.cellsize = 2 * 8.5 / px

    def add(
        self,
        rng: np.random.Generator,
        candidates: np.ndarray,
        kinds: np.ndarray,
        target: int,
        *,
        gap_um: float,
        cluster: int = 0,
    ) -> None:
        """Accept up to ``target`` of ``candidates`` (one kind each); a negative gap lets neighbouring
        nuclei press into each other, so they touch."""
        if len(candidates) == 0 or target <= 0:
            return
        major = np.array([rng.uniform(*_SHAPES[k]["major"]) for k in kinds]) / self.px
        minor = np.array([rng.uniform(*_SHAPES[k]["minor"]) for k in kinds]) / self.px
        scale = rng.uniform(0.75, 1.35, len(kinds))  # varied nucleus size, within and across types
        major, minor = major * scale, minor * scale
        radii = _exclusion(major, minor, gap_um / self.px)
        chosen = _throw_darts(candidates, radii, self.centres, self.exclusion, target, self.cellsize)
        self.kinds.append(kinds[chosen])
        self.axes.append(np.column_stack([major[chosen], minor[chosen]]))
        self.cluster.append(np.full(len(chosen), cluster))


def _candidates(rng: np.random.Generator, mask: np.ndarray, n: int) -> np.ndarray:
    """``n`` uniformly drawn centres in ``mask``, jittered within their pixel."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return np.zeros((0, 2))
    pick = rng.choice(idx, size=n)
    jitter = rng.uniform(-0.5, 0.5, (n, 2))
    return np.column_stack([pick // mask.shape[1], pick % mask.shape[1]]).astype(float) + jitter


def _place(
    rng: np.random.Generator, layout: _Layout, px: float, area_scale: float, n_clusters: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kinds (n,), semi-axes (n, 2) in pixels, centres (n, 2) and cluster id (n,; 0 = none)."""
    packing = _Packing(px)
    h, w = layout.dermis.shape
    # T-cell aggregates first, so nothing else takes their space: 20-60 cells pressed together
    # around a point in the upper dermis, mostly CD8 T cells with a few macrophages.
    if n_clusters is None:
        n_clusters = max(2, int(rng.poisson(6 * area_scale)))
    seeds = _candidates(rng, layout.dermis & (layout.below > 8), n_clusters)
    for k, (cy, cx) in enumerate(seeds, start=1):
        spread = rng.uniform(7.0, 12.0) / px
        n = int(rng.integers(20, 61))
        points = rng.normal((cy, cx), spread, (12 * n, 2))
        inside = (points[:, 0] >= 0) & (points[:, 0] < h) & (points[:, 1] >= 0) & (points[:, 1] < w)
        points = points[inside]
        rows, cols = points[:, 0].astype(int), points[:, 1].astype(int)
        points = points[layout.dermis[rows, cols]]
        kinds = np.where(rng.random(len(points)) < 0.85, "cd8_t_cell", "macrophage")
        packing.add(rng, points, kinds, n, gap_um=-0.5, cluster=k)
    # A dense epidermis: keratinocytes pressed together (no gap between nuclear membranes).
    n_ker = int(12000 * area_scale) + 10
    packing.add(rng, _candidates(rng, layout.epidermis, n_ker), np.full(n_ker, "keratinocyte"), 10**9, gap_um=-0.3)
    # Sparse stromal cells and a scattered infiltrate in the rest of the dermis.
    n_str = int(rng.poisson(140 * area_scale))
    packing.add(rng, _candidates(rng, layout.dermis, 8 * n_str + 1), np.full(8 * n_str + 1, UNASSIGNED), n_str,
                gap_um=0.6)  # fmt: skip
    n_imm = int(rng.poisson(450 * area_scale))
    kinds = np.where(rng.random(8 * n_imm + 1) < 0.5, "cd8_t_cell", "macrophage")
    packing.add(rng, _candidates(rng, layout.dermis, 8 * n_imm + 1), kinds, n_imm, gap_um=0.3)

    kinds = np.concatenate(packing.kinds)
    axes = np.concatenate(packing.axes)
    cluster = np.concatenate(packing.cluster)
    centres = np.asarray(packing.centres, dtype=float).reshape(-1, 2)
    return kinds, axes, centres, cluster


def _drop_slivers(nuclei: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Remove nuclei that their earlier-drawn neighbours covered to less than half of their ellipse:
    an annotator would not draw such a sliver as a nucleus of its own."""
    area = np.bincount(nuclei.ravel(), minlength=len(axes) + 1)[1:]
    sliver = area < 0.5 * np.pi * axes[:, 0] * axes[:, 1]
    nuclei = nuclei.copy()
    nuclei[np.concatenate([[False], sliver])[nuclei]] = 0
    return nuclei


def _touching(nuclei: np.ndarray, n: int) -> np.ndarray:
    """Which of the nuclei 1..n share a boundary (4-connected) with another nucleus."""
    touching = np.zeros(n + 1, dtype=bool)
    for a, b in ((nuclei[:, :-1], nuclei[:, 1:]), (nuclei[:-1, :], nuclei[1:, :])):
        edge = (a > 0) & (b > 0) & (a != b)
        touching[a[edge]] = True
        touching[b[edge]] = True
    return touching[1:]


def _membrane(rng: np.random.Generator, cells: np.ndarray, tissue: np.ndarray) -> np.ndarray:
    """Light from a membrane stain (WGA): bright cell outlines, faint cytoplasm, PSF-blurred."""
    n = int(cells.max())
    level = np.concatenate([[0.0], np.exp(rng.normal(0, 0.3, n))])
    body = cells > 0
    outline = find_boundaries(cells, mode="inner") & body
    signal = level[cells] * (outline + 0.1 * body) + 0.03 * tissue
    return ndi.gaussian_filter(signal, 1.0)


def _illumination(rng: np.random.Generator, shape: tuple[int, int], low: float, high: float) -> np.ndarray:
    """A smooth multiplicative field spanning exactly ``low`` to ``high`` across the image."""
    field = _smooth_noise(rng, shape, max(shape) / 5)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    tilt = rng.normal(0, 1, 2)
    field = field + tilt[0] * (yy / shape[0] - 0.5) + tilt[1] * (xx / shape[1] - 0.5)
    field = (field - field.min()) / (field.max() - field.min())
    return low + (high - low) * field


def simulate_hard_tissue(
    seed: int | np.random.Generator = 0,
    *,
    size: int = 512,
    pixel_size_um: float = PIXEL_SIZE_UM,
    dim_fraction: float = 0.1,
    dim_factor: tuple[float, float] = (3.0, 5.0),
    illumination: tuple[float, float] = (0.4, 1.6),
    clusters: int | None = None,
    membrane: bool = True,
) -> HardTissue:
    """Simulate a skin section that is hard to segment, with its ground truth.

    The skin is laid out as in :func:`~dvp_pipeline.simulate.tissue.simulate_tissue` (a TEN-like
    epidermis over a wavy junction, dermis below), but nuclei are packed until they touch: a dense
    epidermis of keratinocytes and several aggregates of 20 to 60 CD8 T cells (with a few
    macrophages) in the upper dermis, plus scattered stromal and immune cells. Nuclei vary in size
    (each scaled by 0.75 to 1.35), ``dim_fraction`` of the cells have a nuclear stain
    ``dim_factor`` times weaker, the light is multiplied by a smooth field spanning
    ``illumination`` across the image, and the camera adds Poisson and Gaussian noise to a dimmer
    exposure than the demo's.

    Parameters
    ----------
    seed
        Seed or generator; the same seed gives the same section.
    size
        Image height and width in pixels (512 gives about 1,300 to 1,600 cells).
    pixel_size_um
        Pixel size; cell sizes are set in micrometres.
    dim_fraction
        Fraction of the cells (exact, rounded) whose nuclear stain is weakened.
    dim_factor
        Range of the weakening (the DAPI of a dim cell is divided by a uniform draw from it).
    illumination
        Lowest and highest gain of the illumination field.
    clusters
        Number of T-cell aggregates; ``None`` draws about 6 per 0.1 mm^2 (at least 2).
    membrane
        Add a fifth channel, a membrane stain (WGA).

    Returns
    -------
    :class:`HardTissue`: ``image`` (5 or 4, size, size) uint16 in the order of :data:`HARD_CHANNELS`,
    ``labels`` and ``nuclei`` (size, size) uint32, and ``cells`` with the columns of
    :func:`~dvp_pipeline.simulate.tissue.simulate_tissue`'s table (cell_id, cell_type, centroid_y,
    centroid_x, area, region) plus ``nucleus_area`` (pixels), ``dim`` (bool), ``dapi`` (relative
    nuclear stain, before illumination), ``cluster`` (aggregate id, 0 = none) and ``touching``
    (the nucleus shares a boundary with another nucleus).

    Examples
    --------
    >>> tissue = simulate_hard_tissue(1, size=192)
    >>> tissue.image.shape, tissue.channels[-1], int(tissue.labels.max()) == len(tissue.cells)
    ((5, 192, 192), 'WGA', True)
    >>> bool(tissue.cells["touching"].any()), bool(tissue.cells["dim"].any())
    (True, True)
    """
    if not isinstance(size, int | np.integer) or size < 64:
        raise DVPError(f"image size must be an integer >= 64 pixels, got {size!r}")
    if not 0 <= dim_fraction <= 1:
        raise DVPError(f"dim_fraction must be in [0, 1], got {dim_fraction!r}")
    if not 1 <= dim_factor[0] <= dim_factor[1]:
        raise DVPError(f"dim_factor must be a range (low, high) with 1 <= low <= high, got {dim_factor!r}")
    if not 0 < illumination[0] <= illumination[1]:
        raise DVPError(f"illumination must be a range (low, high) with 0 < low <= high, got {illumination!r}")
    rng = np.random.default_rng(seed)
    px = float(pixel_size_um)
    h = w = int(size)
    area_scale = h * w / 640**2 * (0.5 / px) ** 2  # densities are per 640 x 640 field at 0.5 um

    layout = _layout(rng, "TEN", h, w, px)
    kinds, axes, centres, cluster = _place(rng, layout, px, area_scale, clusters)
    angle, cell_depth = _orient(rng, kinds, centres, layout.depth)
    order = np.lexsort((centres[:, 1], centres[:, 0]))  # label ids in reading order
    kinds, axes, centres, angle, cell_depth, cluster = (
        a[order] for a in (kinds, axes, centres, angle, cell_depth, cluster)
    )

    nuclei = _drop_slivers(_draw_nuclei(rng, axes, centres, angle, (h, w)), axes)
    tissue = layout.epidermis | layout.dermis
    cells = _grow_cells(rng, nuclei, kinds, tissue, px)
    cells, nuclei, present = _renumber(cells, nuclei, len(kinds))
    kinds, cell_depth, cluster = kinds[present], cell_depth[present], cluster[present]
    n = len(kinds)

    _, levels = _stain_levels(rng, kinds, cell_depth)
    # Nuclear stain without the demo's few pale nuclei, so that ``dim`` alone marks the weak ones.
    dapi = np.exp(rng.normal(0, 0.2, n)) * np.select([kinds == "cd8_t_cell", kinds == UNASSIGNED], [1.3, 1.1], 1.0)
    dim = np.zeros(n, dtype=bool)
    dim[rng.choice(n, size=int(round(dim_fraction * n)), replace=False)] = True
    dapi[dim] /= rng.uniform(*dim_factor, int(dim.sum()))

    signal = _optics(rng, _stain(rng, cells, nuclei, dapi, levels), layout)
    if membrane:
        signal = np.concatenate([signal, _membrane(rng, cells, tissue)[None]])
    channels = HARD_CHANNELS[: len(signal)]
    gain = _illumination(rng, (h, w), *illumination)[None]
    electrons = rng.poisson(np.clip(gain * _PEAK_COUNTS[: len(signal), None, None] * signal, 0, None))
    counts = _OFFSET[: len(signal), None, None] + electrons + rng.normal(0, _READ_NOISE, electrons.shape)
    image = np.clip(np.round(counts), 0, 65535).astype(np.uint16)

    table = _cell_table(cells, kinds, layout)
    table["nucleus_area"] = np.bincount(nuclei.ravel(), minlength=n + 1)[1:].astype(np.int64)
    table["dim"] = dim
    table["dapi"] = dapi
    table["cluster"] = cluster.astype(np.int64)
    table["touching"] = _touching(nuclei, n)
    return HardTissue(
        image=image,
        labels=cells.astype(np.uint32),
        nuclei=nuclei.astype(np.uint32),
        cells=table,
        channels=channels,
    )
