"""Simulated immunofluorescence images of skin sections, with their ground truth.

Part of :mod:`dvp_pipeline.simulate`: :func:`simulate_tissue` draws one 4-channel section (epidermis
with keratinocytes, dermis with stromal cells, CD8 T cells and macrophages) together with its
whole-cell labels and a table of the true cell types; :func:`write_ome_tiff` and :func:`write_labels`
save them the way the segmentation and cell-typing stages read real data.
:mod:`dvp_pipeline.simulate.cohort` calls these once per sample.

:func:`simulate_tissue` runs as a chain of steps that share one generator (layout, placement of the
nuclei, their orientation and shape, growth into cells, stain levels, optics, camera); each step draws
its random numbers in a fixed order, so a seed gives the same image on every machine.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage as ndi
from skimage.measure import label as label_components
from skimage.segmentation import find_boundaries

from dvp_pipeline.errors import DVPError
from dvp_pipeline.io import atomic_output
from dvp_pipeline.simulate._constants import CHANNELS, PIXEL_SIZE_UM, UNASSIGNED

__all__ = ["Tissue", "simulate_tissue", "write_labels", "write_ome_tiff"]


class Tissue(NamedTuple):
    """One simulated section: ``image`` (channels, y, x) uint16, ``labels`` (y, x) uint32 whole cells,
    ``cells`` one row per label (cell_id, cell_type, centroid_y, centroid_x, area, region)."""

    image: np.ndarray
    labels: np.ndarray
    cells: pd.DataFrame


# Nucleus semi-axes (major range, minor range) and growth of the cell around its nucleus, in um.
_SHAPES = {
    "keratinocyte": {"major": (2.9, 3.6), "minor": (2.3, 2.9), "grow": 3.0},
    "cd8_t_cell": {"major": (2.4, 2.9), "minor": (2.2, 2.7), "grow": 2.5},
    "macrophage": {"major": (3.2, 4.0), "minor": (2.5, 3.1), "grow": 4.0},
    UNASSIGNED: {"major": (4.5, 6.0), "minor": (1.4, 1.9), "grow": 3.0},
}
# Cells per 640 x 640 field (0.1 mm^2) in the dermis; TEN has the denser infiltrate.
_INFILTRATE = {
    "TEN": {"immune": 1100, "cd8_fraction": 0.6, "epidermal_t": 30, "stromal": 120},
    "MPR": {"immune": 600, "cd8_fraction": 0.4, "epidermal_t": 6, "stromal": 120},
}
_PEAK_COUNTS = np.array([1500.0, 1100.0, 900.0, 900.0])  # photo-electrons from a typical bright cell
_CROSSTALK = np.array(
    [  # row: detected channel, column: true signal (bleed-through between filters)
        [1.00, 0.00, 0.00, 0.00],
        [0.02, 1.00, 0.02, 0.00],
        [0.00, 0.04, 1.00, 0.03],
        [0.00, 0.00, 0.04, 1.00],
    ]
)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]) -> np.ndarray:
    field = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (field.std() + 1e-12)


def _smooth_curve(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    curve = ndi.gaussian_filter1d(rng.standard_normal(n), scale, mode="wrap")
    return curve / (curve.std() + 1e-12)


def _throw_darts(
    candidates: np.ndarray, radii: np.ndarray, centres: list, exclusion: list, target: int, cell: float
) -> np.ndarray:
    """Accept candidates in order unless they come closer than the sum of exclusion radii to an
    accepted nucleus (random sequential adsorption); returns the indices accepted, at most ``target``."""
    grid: dict[tuple[int, int], list[int]] = {}
    for i, (y, x) in enumerate(centres):
        grid.setdefault((int(y // cell), int(x // cell)), []).append(i)
    accepted = []
    for k, ((y, x), r) in enumerate(zip(candidates, radii, strict=True)):
        if len(accepted) >= target:
            break
        gy, gx = int(y // cell), int(x // cell)
        near = [i for dy in (-1, 0, 1) for dx in (-1, 0, 1) for i in grid.get((gy + dy, gx + dx), ())]
        if near:
            pts = np.asarray([centres[i] for i in near])
            lim = np.asarray([exclusion[i] for i in near]) + r
            if (((pts - (y, x)) ** 2).sum(1) < lim**2).any():
                continue
        grid.setdefault((gy, gx), []).append(len(centres))
        centres.append((y, x))
        exclusion.append(r)
        accepted.append(k)
    return np.asarray(accepted, dtype=int)


def _exclusion(major: np.ndarray, minor: np.ndarray, gap: float) -> np.ndarray:
    # Mean radius, not the major axis: packs like real tissue, where neighbouring nuclei can touch.
    return np.maximum(0.5 * (major + minor), 0.8 * major) + gap / 2


def _draw_shapes(rng: np.random.Generator, kind: str, n: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    spec = _SHAPES[kind]
    return rng.uniform(*spec["major"], n) / px, rng.uniform(*spec["minor"], n) / px


class _Layout(NamedTuple):
    """Where the skin is: pixel grids, the two compartments and depth in the epidermis."""

    yy: np.ndarray  # row index of every pixel
    xx: np.ndarray  # column index of every pixel
    epidermis: np.ndarray  # bool (y, x)
    dermis: np.ndarray  # bool (y, x)
    depth: np.ndarray  # 0 at the skin surface, 1 in the basal layer
    below: np.ndarray  # um under the dermo-epidermal junction (0 above it)


def _layout(rng: np.random.Generator, condition: str, h: int, w: int, px: float) -> _Layout:
    """Slide above the skin surface, epidermis down to the wavy junction, dermis below it."""
    yy, xx = np.mgrid[0:h, 0:w]
    xs = np.arange(w)
    surface = 0.03 * h + 0.01 * h * _smooth_curve(rng, w, w / 8)
    ridges = 0.06 * h * np.sin(2 * np.pi * xs / (0.34 * w) + rng.uniform(0, 2 * np.pi))
    junction = 0.42 * h + ridges + 0.015 * h * _smooth_curve(rng, w, w / 10)
    split = np.zeros(w)
    if condition == "TEN":  # early detachment of the epidermis: a thin cleft along part of the junction
        bump = _smooth_curve(rng, w, w / 6)
        split = np.clip(bump - 0.3, 0, None) * 5.0 / px
    epidermis = (yy >= surface[xs]) & (yy < junction[xs])
    dermis = yy >= junction[xs] + split[xs]
    depth = np.clip((yy - surface[xs]) / (junction[xs] - surface[xs]), 0, 1)  # 1 = basal layer
    below = np.clip(yy - (junction[xs] + split[xs]), 0, None) * px
    return _Layout(yy=yy, xx=xx, epidermis=epidermis, dermis=dermis, depth=depth, below=below)


class _Placer:
    """Places nuclei by random sequential adsorption, remembering every nucleus accepted so far so
    that each new kind of cell packs around the ones placed before it."""

    def __init__(self, rng: np.random.Generator, width: int, px: float) -> None:
        self.rng = rng
        self.width = width
        self.px = px
        self.kinds: list[str] = []
        self.axes: list[np.ndarray] = []
        self.centres: list = []
        self.exclusion: list = []
        self.gap = 0.8 / px  # typical spacing between nuclear membranes; long nuclei may still touch at the tips
        self.cellsize = 2 * (6.5 / px + self.gap)

    def sample(self, mask: np.ndarray, n: int, weight: np.ndarray | None = None) -> np.ndarray:
        """``n`` candidate centres in ``mask`` (with replacement, optionally weighted), jittered by up to
        half a pixel."""
        idx = np.flatnonzero(mask)
        if len(idx) == 0:  # small images may lack a region (e.g. deep dermis)
            return np.zeros((0, 2))
        p = None if weight is None else weight.ravel()[idx] / weight.ravel()[idx].sum()
        pick = self.rng.choice(idx, size=n, p=p)
        jitter = self.rng.uniform(-0.5, 0.5, (n, 2))
        return np.column_stack([pick // self.width, pick % self.width]).astype(float) + jitter

    def place(self, kind: str, candidates: np.ndarray, target: int) -> None:
        """Accept up to ``target`` nuclei of one kind from ``candidates``."""
        if len(candidates) == 0 or target <= 0:
            return
        major, minor = _draw_shapes(self.rng, kind, len(candidates), self.px)
        self._accept(candidates, major, minor, target, np.full(len(candidates), kind))

    def place_infiltrate(self, candidates: np.ndarray, cd8_fraction: float, target: int) -> None:
        """Accept up to ``target`` immune cells, CD8 T cells with probability ``cd8_fraction``, else
        macrophages."""
        is_cd8 = self.rng.random(len(candidates)) < cd8_fraction
        # CD8 T cells and macrophages compete for the same space, so throw them as one shuffled stream.
        major_t, minor_t = _draw_shapes(self.rng, "cd8_t_cell", len(candidates), self.px)
        major_m, minor_m = _draw_shapes(self.rng, "macrophage", len(candidates), self.px)
        major = np.where(is_cd8, major_t, major_m)
        minor = np.where(is_cd8, minor_t, minor_m)
        self._accept(candidates, major, minor, target, np.where(is_cd8, "cd8_t_cell", "macrophage"))

    def _accept(
        self, candidates: np.ndarray, major: np.ndarray, minor: np.ndarray, target: int, kinds: np.ndarray
    ) -> None:
        radii = _exclusion(major, minor, self.gap)
        chosen = _throw_darts(candidates, radii, self.centres, self.exclusion, target, self.cellsize)
        self.kinds.extend(kinds[chosen].tolist())
        self.axes.append(np.column_stack([major[chosen], minor[chosen]]))


def _infiltrate_weight(placer: _Placer, layout: _Layout, area_scale: float) -> np.ndarray:
    """Where the immune cells go: mostly in a band under the junction and around a few vessels."""
    dermis, yy, xx = layout.dermis, layout.yy, layout.xx
    band = np.exp(-layout.below / 45.0)
    vessels = np.zeros(yy.shape)
    n_vessels = max(1, placer.rng.poisson(4 * area_scale))
    for cy, cx in placer.sample(dermis & (layout.below > 40), n_vessels):
        sigma = placer.rng.uniform(12, 22) / placer.px
        vessels += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    weight = band / band[dermis].mean() + 0.7 * vessels / max(vessels[dermis].mean(), 1e-9) + 0.3
    return weight * dermis + 1e-12


def _place_cells(
    rng: np.random.Generator, layout: _Layout, density: Mapping[str, float], px: float, area_scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nuclei of every cell: kinds (n,), semi-axes (n, 2) in pixels and centres (n, 2), in the order
    placed."""
    placer = _Placer(rng, layout.yy.shape[1], px)
    epidermis, dermis = layout.epidermis, layout.dermis
    # T cells in the lower epidermis first (epidermotropism, the hallmark of TEN), then keratinocytes.
    n_et = rng.poisson(density["epidermal_t"] * area_scale)
    placer.place("cd8_t_cell", placer.sample(epidermis & (layout.depth > 0.5), 8 * n_et + 1), n_et)
    placer.place("keratinocyte", placer.sample(epidermis, int(8000 * area_scale) + 10), 10**9)
    # Resident stromal cells before the infiltrate, which then packs around them.
    n_stromal = rng.poisson(density["stromal"] * area_scale)
    placer.place(UNASSIGNED, placer.sample(dermis, 8 * n_stromal + 1), n_stromal)
    weight = _infiltrate_weight(placer, layout, area_scale)
    n_immune = rng.poisson(density["immune"] * area_scale)
    placer.place_infiltrate(placer.sample(dermis, 8 * n_immune + 1, weight), density["cd8_fraction"], n_immune)

    kinds = np.asarray(placer.kinds)
    axes = np.concatenate(placer.axes) if placer.axes else np.zeros((0, 2))
    centres = np.asarray(placer.centres, dtype=float).reshape(-1, 2)
    return kinds, axes, centres


def _orient(
    rng: np.random.Generator, kinds: np.ndarray, centres: np.ndarray, depth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Angle of each nucleus's major axis, and the epidermal depth at its centre."""
    h, w = depth.shape
    # Basal keratinocytes stand perpendicular to the junction, upper ones lie flat; others random.
    angle = rng.uniform(0, np.pi, len(kinds))
    ker = kinds == "keratinocyte"
    cy_i = np.clip(centres[:, 0].round().astype(int), 0, h - 1)
    cx_i = np.clip(centres[:, 1].round().astype(int), 0, w - 1)
    cell_depth = depth[cy_i, cx_i]
    angle[ker] = np.where(cell_depth[ker] > 0.8, np.pi / 2, 0.0) + rng.normal(0, 0.35, ker.sum())
    # Stromal cells follow the collagen (mostly parallel to the surface).
    angle[kinds == UNASSIGNED] = rng.normal(0, 0.4, (kinds == UNASSIGNED).sum())
    return angle, cell_depth


def _draw_nuclei(
    rng: np.random.Generator, axes: np.ndarray, centres: np.ndarray, angle: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Nucleus labels 1..n (int32): rotated ellipses with a slightly wobbly outline; an earlier
    nucleus keeps the pixels where two overlap."""
    h, w = shape
    nuclei = np.zeros((h, w), dtype=np.int32)
    for i in range(len(axes)):
        a, b = axes[i]
        cy, cx = centres[i]
        half = int(np.ceil(a * 1.2)) + 1
        y0, y1 = max(0, int(cy) - half), min(h, int(cy) + half + 1)
        x0, x1 = max(0, int(cx) - half), min(w, int(cx) + half + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = np.mgrid[y0:y1, x0:x1]
        dy, dx = dy - cy, dx - cx
        c, s = np.cos(angle[i]), np.sin(angle[i])
        u, v = dx * c + dy * s, -dx * s + dy * c
        phi = np.arctan2(v, u)
        wobble = 1 + sum(rng.normal(0, 0.035) * np.cos(m * phi + rng.uniform(0, 2 * np.pi)) for m in (2, 3, 4))
        inside = (u / a) ** 2 + (v / b) ** 2 <= wobble**2
        window = nuclei[y0:y1, x0:x1]
        window[inside & (window == 0)] = i + 1
    return nuclei


def _grow_cells(
    rng: np.random.Generator, nuclei: np.ndarray, kinds: np.ndarray, tissue: np.ndarray, px: float
) -> np.ndarray:
    """Whole-cell labels: every free pixel of ``tissue`` goes to its nearest nucleus if within that
    cell's (noisy) reach; pieces cut off from their nucleus are dropped."""
    grow = np.array([_SHAPES[k]["grow"] for k in kinds]) / px * rng.uniform(0.8, 1.2, len(kinds))
    dist, (iy, ix) = ndi.distance_transform_edt(nuclei == 0, return_indices=True)
    owner = nuclei[iy, ix]
    reach = np.concatenate([[0.0], grow])[owner] + 1.5 * _smooth_noise(rng, nuclei.shape, 2.5)
    cells = np.where((nuclei > 0) | (dist <= reach), owner, 0)
    cells[~tissue] = 0
    cells[nuclei > 0] = nuclei[nuclei > 0]
    # Keep only the piece of each cell attached to its nucleus (noise can cut off fragments).
    pieces = label_components(cells, background=0, connectivity=1)
    keep = np.zeros(pieces.max() + 1, bool)
    keep[np.unique(pieces[nuclei > 0])] = True
    keep[0] = False
    cells[~keep[pieces]] = 0
    return cells


def _renumber(cells: np.ndarray, nuclei: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop nuclei that ended up empty (clipped at the border) and renumber 1..N in the same order;
    also returns which of the ``n`` nuclei are kept."""
    present = np.bincount(cells.ravel(), minlength=n + 1)[1:] > 0
    remap = np.zeros(n + 1, dtype=np.int64)
    remap[1:][present] = np.arange(1, present.sum() + 1)
    return remap[cells], remap[nuclei], present


def _stain_levels(rng: np.random.Generator, kinds: np.ndarray, cell_depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell DAPI (n,) and marker levels (4, n), in relative units (1 = typical bright cell)."""
    n = len(kinds)

    def lognorm(sd: float) -> np.ndarray:
        return np.exp(rng.normal(0, sd, n))

    dapi = lognorm(0.25) * np.select([kinds == "cd8_t_cell", kinds == UNASSIGNED], [1.3, 1.1], 1.0)
    dapi[rng.random(n) < 0.03] *= 0.35  # a few pale nuclei (out-of-focus or apoptotic)
    levels = np.zeros((4, n))
    levels[1] = (kinds == "keratinocyte") * lognorm(0.3) * (0.45 + 0.55 * cell_depth)
    levels[2] = (kinds == "cd8_t_cell") * lognorm(0.35)
    levels[3] = (kinds == "macrophage") * lognorm(0.35)
    for c, kind in ((1, "keratinocyte"), (2, "cd8_t_cell"), (3, "macrophage")):
        weak = (kinds == kind) & (rng.random(n) < 0.04)  # low expressors: the gate misses them
        levels[c, weak] *= rng.uniform(0.08, 0.3, weak.sum())
    # A few CD163+ dendritic-like stromal cells: true type unassigned, but they gate as macrophages.
    odd = (kinds == UNASSIGNED) & (rng.random(n) < 0.04)
    levels[3, odd] = rng.uniform(0.3, 0.7, odd.sum())
    return dapi, levels


def _stain(
    rng: np.random.Generator, cells: np.ndarray, nuclei: np.ndarray, dapi: np.ndarray, levels: np.ndarray
) -> np.ndarray:
    """True stain (4, y, x): DAPI in nuclei, KRT14 in keratinocyte cytoplasm, CD8 on the membrane,
    CD163 in granular cytoplasm, each textured."""
    h, w = cells.shape
    nucleus = nuclei > 0
    body = cells > 0
    cytoplasm = body & ~nucleus
    membrane = find_boundaries(cells, mode="inner") & body

    def pad(v: np.ndarray) -> np.ndarray:  # index 0 is the background
        return np.concatenate([[0.0], v])

    signal = np.zeros((4, h, w))
    signal[0] = pad(dapi)[nuclei] * np.clip(1 + 0.3 * _smooth_noise(rng, (h, w), 1.0), 0.2, None) * nucleus
    keratin = np.clip(1 + 0.35 * _smooth_noise(rng, (h, w), (0.7, 2.0)), 0.1, None)
    signal[1] = pad(levels[1])[cells] * (cytoplasm + 0.2 * nucleus) * keratin
    signal[2] = pad(levels[2])[cells] * (membrane + 0.45 * cytoplasm + 0.1 * nucleus)
    granules = np.clip(1 + 0.5 * _smooth_noise(rng, (h, w), 1.0), 0.1, None)
    signal[3] = pad(levels[3])[cells] * (0.9 * cytoplasm + 0.6 * membrane + 0.15 * nucleus) * granules
    return signal


def _optics(rng: np.random.Generator, signal: np.ndarray, layout: _Layout) -> np.ndarray:
    """Light reaching the camera: stain plus autofluorescence, with bleed-through and PSF blur."""
    # Autofluorescence: a faint tissue glow plus collagen fibres in the dermis.
    fibres = _smooth_noise(rng, signal.shape[1:], (1.0, 8.0))
    fibres = np.clip((fibres - 1.0) / 1.5, 0, 1) * layout.dermis
    tissue = (layout.epidermis | layout.dermis).astype(float)
    auto = np.array([0.02, 0.025, 0.03, 0.035])
    signal += auto[:, None, None] * (tissue + 2.5 * fibres)[None]
    signal = np.tensordot(_CROSSTALK, signal, axes=1)
    return ndi.gaussian_filter(signal, sigma=(0, 1.0, 1.0))  # PSF, about 1.2 um FWHM


def _camera(rng: np.random.Generator, signal: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Counts (4, y, x) uint16 recorded from ``signal``."""
    _, h, w = signal.shape
    # Uneven illumination (vignetting and a tilt), shot noise on the collected light, then the
    # camera's offset and read noise (sCMOS-like, one count per electron).
    r2 = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (0.5 * h**2 + 0.5 * w**2)
    tilt = rng.uniform(-0.12, 0.12, 2)
    illumination = (1 - 0.45 * r2 + tilt[0] * (yy / h - 0.5) + tilt[1] * (xx / w - 0.5))[None]
    offset = np.array([100.0, 90.0, 80.0, 85.0])[:, None, None]
    electrons = rng.poisson(np.clip(illumination * _PEAK_COUNTS[:, None, None] * signal, 0, None))
    counts = offset + electrons + rng.normal(0, 2.0, electrons.shape)
    return np.clip(np.round(counts), 0, 65535).astype(np.uint16)


def _cell_table(cells: np.ndarray, kinds: np.ndarray, layout: _Layout) -> pd.DataFrame:
    """The truth table: one row per label with its type, centroid, area and region."""
    h, w = cells.shape
    n = len(kinds)
    ids = np.arange(1, n + 1)
    area = np.bincount(cells.ravel(), minlength=n + 1)[1:]
    cy = ndi.sum_labels(layout.yy, cells, ids) / area
    cx = ndi.sum_labels(layout.xx, cells, ids) / area
    inside = layout.epidermis[np.clip(cy.round().astype(int), 0, h - 1), np.clip(cx.round().astype(int), 0, w - 1)]
    return pd.DataFrame(
        {
            "cell_id": ids.astype(np.int64),
            "cell_type": kinds,
            "centroid_y": cy,
            "centroid_x": cx,
            "area": area.astype(np.int64),
            "region": np.where(inside, "epidermis", "dermis"),
        }
    )


def simulate_tissue(
    condition: str, *, seed: int | np.random.Generator = 0, size: int = 640, pixel_size_um: float = PIXEL_SIZE_UM
) -> Tissue:
    """Simulate one immunofluorescence image of a skin section with its ground truth.

    An epidermis band (densely packed keratinocytes, KRT14+ cytoplasm, strongest in the basal layer)
    runs along the top over a wavy dermo-epidermal junction; below it the dermis holds sparse
    unlabelled stromal cells (truth type ``unassigned``) and an immune infiltrate of CD8 T cells
    (small, round, CD8+ membrane) and macrophages (larger, CD163+ cytoplasm), banded under the
    junction and clustered around vessels; TEN has a denser, CD8-rich infiltrate, T cells in the
    epidermis and a partial subepidermal split. Nuclei are textured DAPI ellipses; cells are the
    nuclei grown by about 3 um (irregularly) into free space. The image has PSF blur, bleed-through
    between channels, autofluorescent dermal fibres, uneven illumination, an offset, Poisson and read
    noise, and a few per cent of cells with a weak or spurious marker, so gating is good, not perfect.

    Parameters
    ----------
    condition
        ``"TEN"`` or ``"MPR"``.
    seed
        Seed or generator; the same seed gives the same tissue.
    size
        Image height and width in pixels (640 gives about 1,100 to 1,300 cells).
    pixel_size_um
        Pixel size; cell sizes are set in micrometres.

    Returns
    -------
    :class:`Tissue` with ``image`` (4, size, size) uint16 in the order of :data:`CHANNELS`, ``labels``
    (size, size) uint32 (0 = background) and ``cells`` (cell_id = label, cell_type, centroid_y,
    centroid_x and area in pixels, region ``epidermis`` or ``dermis``).

    Examples
    --------
    >>> tissue = simulate_tissue("TEN", seed=1, size=256)
    >>> tissue.image.shape, tissue.labels.dtype, int(tissue.labels.max()) == len(tissue.cells)
    ((4, 256, 256), dtype('uint32'), True)
    """
    if condition not in _INFILTRATE:
        raise DVPError(f"condition {condition!r} unknown; expected one of {', '.join(_INFILTRATE)}")
    if not isinstance(size, int | np.integer) or size < 64:
        raise DVPError(f"image size must be an integer >= 64 pixels, got {size!r}")
    rng = np.random.default_rng(seed)
    px = float(pixel_size_um)
    h = w = int(size)
    area_scale = h * w / 640**2 * (0.5 / px) ** 2  # densities are per 640 x 640 field at 0.5 um

    layout = _layout(rng, condition, h, w, px)
    kinds, axes, centres = _place_cells(rng, layout, _INFILTRATE[condition], px, area_scale)
    angle, cell_depth = _orient(rng, kinds, centres, layout.depth)
    # Label ids in reading order (top to bottom, left to right), like most segmenters number them.
    order = np.lexsort((centres[:, 1], centres[:, 0]))
    kinds, axes, centres, angle, cell_depth = (a[order] for a in (kinds, axes, centres, angle, cell_depth))

    nuclei = _draw_nuclei(rng, axes, centres, angle, (h, w))
    cells = _grow_cells(rng, nuclei, kinds, layout.epidermis | layout.dermis, px)
    cells, nuclei, present = _renumber(cells, nuclei, len(kinds))
    kinds, cell_depth = kinds[present], cell_depth[present]

    dapi, levels = _stain_levels(rng, kinds, cell_depth)
    signal = _optics(rng, _stain(rng, cells, nuclei, dapi, levels), layout)
    image = _camera(rng, signal, layout.yy, layout.xx)
    return Tissue(image=image, labels=cells.astype(np.uint32), cells=_cell_table(cells, kinds, layout))


def write_ome_tiff(
    image: np.ndarray,
    path: str | os.PathLike,
    *,
    channels: Sequence[str] = CHANNELS,
    pixel_size_um: float = PIXEL_SIZE_UM,
) -> None:
    """Write a (channels, y, x) image as a zlib-compressed OME-TIFF with channel names and pixel size,
    atomically."""
    # The OME UUID comes from the pixels, not the clock, so the same image gives the same file.
    uid = uuid.uuid5(uuid.NAMESPACE_OID, hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest())
    metadata = {
        "axes": "CYX",
        "Channel": {"Name": list(channels)},
        "PhysicalSizeX": pixel_size_um,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": pixel_size_um,
        "PhysicalSizeYUnit": "µm",
        "UUID": f"urn:uuid:{uid}",
    }
    # The temporary name must end in .ome.tif, or tifffile writes a plain TIFF.
    with atomic_output(path) as tmp:
        ome_tmp = tmp.with_name(tmp.name.removesuffix(".tif") + ".ome.tif")
        tifffile.imwrite(ome_tmp, image, ome=True, photometric="minisblack", metadata=metadata, compression="zlib")
        os.replace(ome_tmp, tmp)


def write_labels(labels: np.ndarray, path: str | os.PathLike) -> None:
    """Write a uint32 label image as a zlib-compressed TIFF, atomically."""
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, np.asarray(labels, dtype=np.uint32), photometric="minisblack", compression="zlib")
