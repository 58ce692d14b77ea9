"""A synthetic skin cohort with known answers: images, ground truth and a DIA-NN report.

Sits outside the analysis: ``dvp demo OUTDIR`` writes a folder like ``data/sample/`` that the
pipeline reads as if it came from a microscope and a mass spectrometer, and the ground truth written
next to it lets the tests check that segmentation, cell typing, quantification and the statistics
find what was planted. Everything is drawn from one seed (:class:`numpy.random.Generator`), so a
seed gives the same files on every machine.

The cohort copies the design of Nordmann et al. 2024 (Nature): skin biopsies of toxic epidermal
necrolysis (TEN) against drug rash controls (MPR, maculopapular rash); keratinocytes, CD8 T cells and
macrophages are typed on 4-channel images (DAPI, KRT14, CD8, CD163), cut out per sample and cell
type, and measured by DIA mass spectrometry. JAK/STAT and interferon proteins are up in TEN.

Public functions: :func:`demo_samples` (the sample sheet), :func:`simulate_tissue` (one image, its
labels and cell table), :func:`simulate_proteomics` (the DIA-NN report and the protein truth) and
:func:`write_demo` (all of it, to a folder).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
import warnings
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import tifffile
from scipy import ndimage as ndi
from scipy.sparse.csgraph import connected_components
from skimage.measure import label as label_components
from skimage.segmentation import find_boundaries

from dvp_pipeline.errors import DVPError
from dvp_pipeline.io import atomic_output, write_json, write_table, write_text

CONDITIONS = ("TEN", "MPR")
CHANNELS = ("DAPI", "KRT14", "CD8", "CD163")
CELL_TYPES = ("keratinocyte", "cd8_t_cell", "macrophage")
UNASSIGNED = "unassigned"
PIXEL_SIZE_UM = 0.5

PLANTED_SETS = (
    "HALLMARK_IL6_JAK_STAT3_SIGNALING",
    "HALLMARK_INTERFERON_GAMMA_RESPONSE",
    "HALLMARK_INTERFERON_ALPHA_RESPONSE",
)
# Always planted, whatever the draw: the proteins a reader of the TEN paper looks for first.
CORE_GENES = ("STAT1", "STAT3", "JAK1", "JAK2", "IRF1", "GBP1", "MX1", "ISG15", "CXCL10", "HLA-A", "HLA-B", "HLA-C")
# Cell-type markers get a strong cell-type-specific baseline, so the runs look like their cell type.
MARKER_GENES = {
    "keratinocyte": (
        "KRT14",
        "KRT5",
        "KRT1",
        "KRT10",
        "KRT6A",
        "KRT16",
        "KRT17",
        "DSP",
        "JUP",
        "PKP1",
        "DSG1",
        "DSG3",
        "DSC3",
        "SFN",
        "PERP",
        "EVPL",
        "PPL",
    ),
    "cd8_t_cell": (
        "CD8A",
        "CD8B",
        "CD3E",
        "CD3D",
        "CD3G",
        "CD2",
        "CD247",
        "GZMB",
        "GZMA",
        "GZMK",
        "PRF1",
        "LCK",
        "ZAP70",
        "CCL5",
    ),
    "macrophage": (
        "CD163",
        "CD68",
        "LYZ",
        "CD14",
        "MRC1",
        "MSR1",
        "CTSS",
        "FCGR1A",
        "C1QA",
        "C1QB",
        "C1QC",
        "APOE",
        "CSF1R",
        "TYROBP",
        "FCER1G",
    ),
}

_GENESET_DIR = Path(__file__).parent / "data" / "genesets"


class Tissue(NamedTuple):
    """One simulated section: ``image`` (channels, y, x) uint16, ``labels`` (y, x) uint32 whole cells,
    ``cells`` one row per label (cell_id, cell_type, centroid_y, centroid_x, area, region)."""

    image: np.ndarray
    labels: np.ndarray
    cells: pd.DataFrame


class Proteomics(NamedTuple):
    """A simulated DIA-NN main ``report`` (one row per precursor and run), the ``proteins`` truth
    (one row per protein group) and the ``parameters`` that made them."""

    report: pd.DataFrame
    proteins: pd.DataFrame
    parameters: dict


def demo_samples(samples_per_condition: int = 3) -> pd.DataFrame:
    """The demo cohort's sample sheet: TEN01.., MPR01.. with condition, patient, batch, pixel size.

    Parameters
    ----------
    samples_per_condition
        Samples per condition (3 in the shipped data).

    Returns
    -------
    DataFrame with columns sample, condition, patient, batch, pixel_size_um (TEN samples first).
    """
    if not isinstance(samples_per_condition, int | np.integer) or not 1 <= samples_per_condition <= 99:
        raise DVPError(f"samples_per_condition must be an integer from 1 to 99, got {samples_per_condition!r}")
    rows = [
        {
            "sample": f"{cond}{i:02d}",
            "condition": cond,
            "patient": f"P{i:02d}{cond[0]}",
            "batch": "1",
            "pixel_size_um": PIXEL_SIZE_UM,
        }
        for cond in CONDITIONS
        for i in range(1, samples_per_condition + 1)
    ]
    return pd.DataFrame(rows)


def _sample_rng(seed: int, name: str) -> np.random.Generator:
    # One independent stream per sample name (crc32 is stable across processes, unlike hash()), so a
    # sample's image does not change when the cohort size or the order of generation changes.
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]))


# ---------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------

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


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma) -> np.ndarray:
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


def _draw_shapes(rng, kind: str, n: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    spec = _SHAPES[kind]
    return rng.uniform(*spec["major"], n) / px, rng.uniform(*spec["minor"], n) / px


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
    yy, xx = np.mgrid[0:h, 0:w]
    area_scale = h * w / 640**2 * (0.5 / px) ** 2  # densities are per 640 x 640 field at 0.5 um

    # Layout: slide above the skin surface, epidermis down to the wavy junction, dermis below it.
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

    kinds: list[str] = []
    axes: list[np.ndarray] = []
    centres: list = []
    exclusion: list = []
    gap = 0.8 / px  # typical spacing between nuclear membranes; long nuclei may still touch at the tips
    cellsize = 2 * (6.5 / px + gap)

    def place(kind: str, candidates: np.ndarray, target: int) -> None:
        if len(candidates) == 0 or target <= 0:
            return
        major, minor = _draw_shapes(rng, kind, len(candidates), px)
        radii = _exclusion(major, minor, gap)
        chosen = _throw_darts(candidates, radii, centres, exclusion, target, cellsize)
        kinds.extend([kind] * len(chosen))
        axes.append(np.column_stack([major[chosen], minor[chosen]]))

    def sample_mask(mask: np.ndarray, n: int, weight: np.ndarray | None = None) -> np.ndarray:
        idx = np.flatnonzero(mask)
        if len(idx) == 0:  # small images may lack a region (e.g. deep dermis)
            return np.zeros((0, 2))
        p = None if weight is None else weight.ravel()[idx] / weight.ravel()[idx].sum()
        pick = rng.choice(idx, size=n, p=p)
        return np.column_stack([pick // w, pick % w]).astype(float) + rng.uniform(-0.5, 0.5, (n, 2))

    density = _INFILTRATE[condition]
    # T cells in the lower epidermis first (epidermotropism, the hallmark of TEN), then keratinocytes.
    n_et = rng.poisson(density["epidermal_t"] * area_scale)
    place("cd8_t_cell", sample_mask(epidermis & (depth > 0.5), 8 * n_et + 1), n_et)
    place("keratinocyte", sample_mask(epidermis, int(8000 * area_scale) + 10), 10**9)
    # Resident stromal cells before the infiltrate, which then packs around them.
    n_stromal = rng.poisson(density["stromal"] * area_scale)
    place(UNASSIGNED, sample_mask(dermis, 8 * n_stromal + 1), n_stromal)
    # Dermal infiltrate: mostly in a band under the junction and around a few vessels.
    below = np.clip(yy - (junction[xs] + split[xs]), 0, None) * px  # um under the junction
    band = np.exp(-below / 45.0)
    vessels = np.zeros((h, w))
    n_vessels = max(1, rng.poisson(4 * area_scale))
    for cy, cx in sample_mask(dermis & (below > 40), n_vessels):
        sigma = rng.uniform(12, 22) / px
        vessels += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    weight = band / band[dermis].mean() + 0.7 * vessels / max(vessels[dermis].mean(), 1e-9) + 0.3
    weight = weight * dermis + 1e-12
    n_immune = rng.poisson(density["immune"] * area_scale)
    candidates = sample_mask(dermis, 8 * n_immune + 1, weight)
    is_cd8 = rng.random(len(candidates)) < density["cd8_fraction"]
    # CD8 T cells and macrophages compete for the same space, so throw them as one shuffled stream.
    major_t, minor_t = _draw_shapes(rng, "cd8_t_cell", len(candidates), px)
    major_m, minor_m = _draw_shapes(rng, "macrophage", len(candidates), px)
    major = np.where(is_cd8, major_t, major_m)
    minor = np.where(is_cd8, minor_t, minor_m)
    chosen = _throw_darts(candidates, _exclusion(major, minor, gap), centres, exclusion, n_immune, cellsize)
    kinds.extend(np.where(is_cd8[chosen], "cd8_t_cell", "macrophage").tolist())
    axes.append(np.column_stack([major[chosen], minor[chosen]]))

    kinds_arr = np.asarray(kinds)
    axes_arr = np.concatenate(axes) if axes else np.zeros((0, 2))
    centre_arr = np.asarray(centres, dtype=float).reshape(-1, 2)
    n = len(kinds_arr)
    # Basal keratinocytes stand perpendicular to the junction, upper ones lie flat; others random.
    angle = rng.uniform(0, np.pi, n)
    ker = kinds_arr == "keratinocyte"
    cy_i = np.clip(centre_arr[:, 0].round().astype(int), 0, h - 1)
    cx_i = np.clip(centre_arr[:, 1].round().astype(int), 0, w - 1)
    cell_depth = depth[cy_i, cx_i]
    angle[ker] = np.where(cell_depth[ker] > 0.8, np.pi / 2, 0.0) + rng.normal(0, 0.35, ker.sum())
    # Stromal cells follow the collagen (mostly parallel to the surface).
    angle[kinds_arr == UNASSIGNED] = rng.normal(0, 0.4, (kinds_arr == UNASSIGNED).sum())

    # Label ids in reading order (top to bottom, left to right), like most segmenters number them.
    order = np.lexsort((centre_arr[:, 1], centre_arr[:, 0]))
    kinds_arr, axes_arr, centre_arr = kinds_arr[order], axes_arr[order], centre_arr[order]
    angle, cell_depth = angle[order], cell_depth[order]

    nuclei = np.zeros((h, w), dtype=np.int32)
    for i in range(n):
        a, b = axes_arr[i]
        cy, cx = centre_arr[i]
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

    # Cells: every free pixel goes to its nearest nucleus if within that cell's (noisy) reach.
    grow = np.array([_SHAPES[k]["grow"] for k in kinds_arr]) / px * rng.uniform(0.8, 1.2, n)
    dist, (iy, ix) = ndi.distance_transform_edt(nuclei == 0, return_indices=True)
    owner = nuclei[iy, ix]
    reach = np.concatenate([[0.0], grow])[owner] + 1.5 * _smooth_noise(rng, (h, w), 2.5)
    cells = np.where((nuclei > 0) | (dist <= reach), owner, 0)
    cells[~(epidermis | dermis)] = 0
    cells[nuclei > 0] = nuclei[nuclei > 0]
    # Keep only the piece of each cell attached to its nucleus (noise can cut off fragments).
    pieces = label_components(cells, background=0, connectivity=1)
    keep = np.zeros(pieces.max() + 1, bool)
    keep[np.unique(pieces[nuclei > 0])] = True
    keep[0] = False
    cells[~keep[pieces]] = 0

    # Drop nuclei that ended up empty (clipped at the border) and renumber 1..N in the same order.
    present = np.bincount(cells.ravel(), minlength=n + 1)[1:] > 0
    remap = np.zeros(n + 1, dtype=np.int64)
    remap[1:][present] = np.arange(1, present.sum() + 1)
    cells, nuclei = remap[cells], remap[nuclei]
    kinds_arr, cell_depth = kinds_arr[present], cell_depth[present]
    n = int(present.sum())

    # Per-cell stain levels (relative units, 1 = typical bright cell).
    lognorm = lambda sd: np.exp(rng.normal(0, sd, n))  # noqa: E731
    dapi = lognorm(0.25) * np.select([kinds_arr == "cd8_t_cell", kinds_arr == UNASSIGNED], [1.3, 1.1], 1.0)
    dapi[rng.random(n) < 0.03] *= 0.35  # a few pale nuclei (out-of-focus or apoptotic)
    levels = np.zeros((4, n))
    levels[1] = (kinds_arr == "keratinocyte") * lognorm(0.3) * (0.45 + 0.55 * cell_depth)
    levels[2] = (kinds_arr == "cd8_t_cell") * lognorm(0.35)
    levels[3] = (kinds_arr == "macrophage") * lognorm(0.35)
    for c, kind in ((1, "keratinocyte"), (2, "cd8_t_cell"), (3, "macrophage")):
        weak = (kinds_arr == kind) & (rng.random(n) < 0.04)  # low expressors: the gate misses them
        levels[c, weak] *= rng.uniform(0.08, 0.3, weak.sum())
    # A few CD163+ dendritic-like stromal cells: true type unassigned, but they gate as macrophages.
    odd = (kinds_arr == UNASSIGNED) & (rng.random(n) < 0.04)
    levels[3, odd] = rng.uniform(0.3, 0.7, odd.sum())

    nucleus = nuclei > 0
    body = cells > 0
    cytoplasm = body & ~nucleus
    membrane = find_boundaries(cells, mode="inner") & body
    pad = lambda v: np.concatenate([[0.0], v])  # noqa: E731
    signal = np.zeros((4, h, w))
    signal[0] = pad(dapi)[nuclei] * np.clip(1 + 0.3 * _smooth_noise(rng, (h, w), 1.0), 0.2, None) * nucleus
    keratin = np.clip(1 + 0.35 * _smooth_noise(rng, (h, w), (0.7, 2.0)), 0.1, None)
    signal[1] = pad(levels[1])[cells] * (cytoplasm + 0.2 * nucleus) * keratin
    signal[2] = pad(levels[2])[cells] * (membrane + 0.45 * cytoplasm + 0.1 * nucleus)
    granules = np.clip(1 + 0.5 * _smooth_noise(rng, (h, w), 1.0), 0.1, None)
    signal[3] = pad(levels[3])[cells] * (0.9 * cytoplasm + 0.6 * membrane + 0.15 * nucleus) * granules

    # Autofluorescence: a faint tissue glow plus collagen fibres in the dermis.
    fibres = _smooth_noise(rng, (h, w), (1.0, 8.0))
    fibres = np.clip((fibres - 1.0) / 1.5, 0, 1) * dermis
    tissue = (epidermis | dermis).astype(float)
    auto = np.array([0.02, 0.025, 0.03, 0.035])
    signal += auto[:, None, None] * (tissue + 2.5 * fibres)[None]
    signal = np.tensordot(_CROSSTALK, signal, axes=1)
    signal = ndi.gaussian_filter(signal, sigma=(0, 1.0, 1.0))  # PSF, about 1.2 um FWHM

    # Uneven illumination (vignetting and a tilt), shot noise on the collected light, then the
    # camera's offset and read noise (sCMOS-like, one count per electron).
    r2 = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (0.5 * h**2 + 0.5 * w**2)
    tilt = rng.uniform(-0.12, 0.12, 2)
    illumination = (1 - 0.45 * r2 + tilt[0] * (yy / h - 0.5) + tilt[1] * (xx / w - 0.5))[None]
    offset = np.array([100.0, 90.0, 80.0, 85.0])[:, None, None]
    electrons = rng.poisson(np.clip(illumination * _PEAK_COUNTS[:, None, None] * signal, 0, None))
    counts = offset + electrons + rng.normal(0, 2.0, electrons.shape)
    image = np.clip(np.round(counts), 0, 65535).astype(np.uint16)

    ids = np.arange(1, n + 1)
    area = np.bincount(cells.ravel(), minlength=n + 1)[1:]
    cy = ndi.sum_labels(yy, cells, ids) / area
    cx = ndi.sum_labels(xx, cells, ids) / area
    inside = epidermis[np.clip(cy.round().astype(int), 0, h - 1), np.clip(cx.round().astype(int), 0, w - 1)]
    region = np.where(inside, "epidermis", "dermis")
    table = pd.DataFrame(
        {
            "cell_id": ids.astype(np.int64),
            "cell_type": kinds_arr,
            "centroid_y": cy,
            "centroid_x": cx,
            "area": area.astype(np.int64),
            "region": region,
        }
    )
    return Tissue(image=image, labels=cells.astype(np.uint32), cells=table)


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


def write_report(report: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a simulated DIA-NN report as Parquet, atomically, packed small (zstd; the per-row floats
    byte-stream-split instead of dictionary-encoded)."""
    floats = [c for c in report.columns if report[c].dtype == np.float32 and report[c].nunique() > 10_000]
    table = pa.Table.from_pandas(report, preserve_index=False)
    with atomic_output(path) as tmp:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            compression_level=19,
            use_byte_stream_split=floats,
            use_dictionary=[c for c in report.columns if c not in floats],
        )


def write_labels(labels: np.ndarray, path: str | os.PathLike) -> None:
    """Write a uint32 label image as a zlib-compressed TIFF, atomically."""
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, np.asarray(labels, dtype=np.uint32), photometric="minisblack", compression="zlib")


# ---------------------------------------------------------------------------------------------------
# Proteomics
# ---------------------------------------------------------------------------------------------------

_SYMBOL = re.compile(r"[A-Z][A-Z0-9]*(-[A-Z0-9]+)*")
# RNA genes and Excel-mangled legacy names that a proteomics search never reports.
_NOT_PROTEIN = re.compile(r"(MIR|LINC|LOC|SNOR|SNHG|SCARNA|RNU|RNY|RN7|MARCH|SEPT)\d")


def read_gmt_symbols(directory: str | os.PathLike = _GENESET_DIR) -> dict[str, list[str]]:
    """The gene sets of every ``*.gmt`` file in ``directory``, keeping only protein-coding-like HGNC
    symbols (no placeholders such as AC005840.1, no RNA genes, no lower-case viral names)."""
    files = sorted(Path(directory).glob("*.gmt"))
    if not files:
        raise DVPError(f"{directory}: no .gmt gene-set files found")
    sets: dict[str, list[str]] = {}
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                genes = [g for g in parts[2:] if _SYMBOL.fullmatch(g) and not _NOT_PROTEIN.match(g)]
                sets[parts[0]] = list(dict.fromkeys(genes))
    return sets


_AMINO = np.array(list("ACDEFGHILMNPQSTVWY"))  # K and R only end a tryptic peptide
_AMINO_FREQ = np.array(
    [8.3, 1.4, 5.5, 6.8, 3.9, 7.1, 2.3, 5.9, 9.7, 2.4, 4.1, 4.7, 3.9, 6.6, 5.3, 6.9, 1.1, 2.9]
)  # per cent in the human proteome
_MASS = {
    "A": 71.03711,
    "C": 103.00919,
    "D": 115.02694,
    "E": 129.04259,
    "F": 147.06841,
    "G": 57.02146,
    "H": 137.05891,
    "I": 113.08406,
    "K": 128.09496,
    "L": 113.08406,
    "M": 131.04049,
    "N": 114.04293,
    "P": 97.05276,
    "Q": 128.05858,
    "R": 156.10111,
    "S": 87.03203,
    "T": 101.04768,
    "V": 99.06841,
    "W": 186.07931,
    "Y": 163.06333,
}
_HYDROPHOBICITY = {
    "W": 11.0,
    "F": 10.5,
    "L": 9.6,
    "I": 8.4,
    "M": 5.8,
    "V": 5.0,
    "Y": 4.0,
    "C": -0.5,
    "P": 0.2,
    "A": 0.8,
    "E": 0.0,
    "T": -0.5,
    "D": -1.0,
    "Q": -0.9,
    "S": -0.8,
    "G": -0.9,
    "R": -1.3,
    "N": -1.2,
    "H": -1.3,
    "K": -2.1,
}  # retention coefficients, for RT
_WATER, _PROTON, _CARBAMIDOMETHYL, _OXIDATION = 18.010565, 1.007276, 57.021464, 15.994915


def _protein_groups(
    rng: np.random.Generator, sets: Mapping[str, Sequence[str]], n_proteins: int, planted_fraction: float
) -> tuple[list[list[str]], np.ndarray]:
    """Gene symbols of each protein group (in random order) and which groups are planted.

    Every member of the planted sets, the core genes and the markers are in; random symbols of the
    other sets fill up to ``n_proteins``; about 1.5 % of the null groups get a second gene.
    """
    members = list(dict.fromkeys(g for name in PLANTED_SETS for g in sets[name]))
    known = {g for genes in sets.values() for g in genes}
    markers = [g for kind in CELL_TYPES for g in MARKER_GENES[kind] if g in known]
    required = list(dict.fromkeys([*CORE_GENES, *members, *markers]))
    if n_proteins < len(required) + 20:
        raise DVPError(
            f"n_proteins must be at least {len(required) + 20} (the planted sets and markers "
            f"alone need {len(required)}), got {n_proteins}"
        )
    pool = sorted(known - set(required))
    n_fill, n_multi = n_proteins - len(required), int(round(0.015 * n_proteins))
    extra = rng.choice(pool, size=n_fill + n_multi, replace=False).tolist()
    groups = [[g] for g in required + extra[:n_fill]]
    for i, partner in zip(
        rng.choice(np.arange(len(required), n_proteins), size=n_multi, replace=False), extra[n_fill:], strict=True
    ):
        groups[i].append(partner)
    groups = [groups[i] for i in rng.permutation(n_proteins)]
    lead = np.array([g[0] for g in groups])
    responds = rng.random(n_proteins) < planted_fraction
    planted = np.isin(lead, CORE_GENES) | (np.isin(lead, members) & responds)
    return groups, planted


def _precursors(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """``n`` distinct random tryptic precursors: DIA-NN's sequence columns, charge, m/z and iRT."""
    seen: set[str] = set()
    seqs: list[str] = []
    p = _AMINO_FREQ / _AMINO_FREQ.sum()
    while len(seqs) < n:
        lengths = np.clip(rng.poisson(6, n - len(seqs)) + 6, 6, 24)  # residues before the final K/R
        residues = rng.choice(_AMINO, size=int(lengths.sum()), p=p)
        ends = rng.choice(np.array(["K", "R"]), size=len(lengths))
        for piece, end in zip(np.split(residues, np.cumsum(lengths)[:-1]), ends, strict=True):
            seq = "".join(piece) + end
            if seq not in seen:
                seen.add(seq)
                seqs.append(seq)
    length = np.array([len(s) for s in seqs])
    charge = np.where(rng.random(n) < 0.62, 2, np.where(rng.random(n) < 0.88, 3, 4))
    charge = np.where(length > 18, np.maximum(charge, 3), charge)
    oxidised = (rng.random(n) < 0.15) & np.array(["M" in s for s in seqs])
    modified, mz, hydro = [], np.empty(n), np.empty(n)
    for k, seq in enumerate(seqs):
        mod = seq.replace("C", "C(UniMod:4)")  # fixed carbamidomethylation
        mass = sum(_MASS[a] for a in seq) + _WATER + _CARBAMIDOMETHYL * seq.count("C")
        if oxidised[k]:
            mod = mod.replace("M", "M(UniMod:35)", 1)
            mass += _OXIDATION
        modified.append(mod)
        mz[k] = (mass + charge[k] * _PROTON) / charge[k]
        hydro[k] = sum(_HYDROPHOBICITY[a] for a in seq) / np.sqrt(len(seq))
    hydro = (hydro - hydro.mean()) / hydro.std()
    irt = 1.0 + 28.0 / (1 + np.exp(-1.3 * hydro)) + rng.normal(0, 0.3, n)  # minutes of a 30-min gradient
    return pd.DataFrame(
        {
            "Precursor.Id": [m + str(z) for m, z in zip(modified, charge, strict=True)],
            "Modified.Sequence": modified,
            "Stripped.Sequence": seqs,
            "Precursor.Charge": charge,
            "Precursor.Mz": mz,
            "iRT": irt,
        }
    )


def _round_sig(values: np.ndarray, digits: int = 3) -> np.ndarray:
    # Scores need no more digits than this, and repeated values keep the Parquet file small.
    values = np.asarray(values, dtype=float)
    scale = 10.0 ** (np.floor(np.log10(np.where(values > 0, values, 1.0))) - digits + 1)
    return np.round(values / scale) * scale


def _coarsen(values: np.ndarray, bits: int = 12) -> np.ndarray:
    """float32 values rounded to ``bits`` mantissa bits (relative precision 1e-4, far below the
    measurement noise), which halves the size of the quantity columns in Parquet."""
    values = np.asarray(values, dtype=np.float32)
    drop = np.uint32(23 - bits)
    raw = values.view(np.uint32)
    rounded = (((raw + (np.uint32(1) << (drop - np.uint32(1)))) >> drop) << drop).view(np.float32)
    return np.where(np.isfinite(values), rounded, values)


def _maxlfq(x: np.ndarray) -> np.ndarray:
    """MaxLFQ of one protein (precursors x runs, log2, NaN missing): median pairwise log-ratios,
    least squares per connected group of runs, each group scaled to its summed intensity."""
    seen = ~np.isnan(x)
    out = np.full(x.shape[1], np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pairs: runs that share no precursor
        ratio = np.nanmedian(x[:, :, None] - x[:, None, :], axis=0)  # ratio[i, j] ~ r_i - r_j
        totals = np.log2(np.nansum(np.where(seen, 2.0**x, 0.0), axis=0))
    linked = ~np.isnan(ratio)
    np.fill_diagonal(linked, False)
    _, component = connected_components(linked, directed=False)
    for c in np.unique(component):
        runs = np.flatnonzero((component == c) & seen.any(0))
        if len(runs) <= 1:
            out[runs] = totals[runs]
            continue
        link = linked[np.ix_(runs, runs)]
        # Normal equations of sum over linked pairs (r_i - r_j - ratio_ij)^2, plus sum(r) = 0.
        a = np.vstack([np.diag(link.sum(1)) - link, np.ones(len(runs))])
        b = np.append(np.where(link, ratio[np.ix_(runs, runs)], 0.0).sum(1), 0.0)
        solution = np.linalg.lstsq(a, b, rcond=None)[0]
        out[runs] = solution - solution.mean() + totals[runs].mean()
    return out


def simulate_proteomics(
    samples: pd.DataFrame,
    *,
    seed: int | np.random.Generator = 0,
    n_proteins: int = 3000,
    cells_per_run: Mapping[str, int] | None = None,
    planted_fraction: float = 0.5,
    log2fc: tuple[float, float] = (1.0, 2.0),
    biological_sd: float = 0.25,
    gene_sets: Mapping[str, Sequence[str]] | None = None,
) -> Proteomics:
    """Simulate a DIA-NN 2.x main report for every sample x cell type run, with a planted signal.

    On the log2 scale, precursor k of protein p in the run r of sample s and cell type c has
    ``17 + mu_p + delta_pc + beta_pc [s is TEN] + patient_ps + bio_psc + rho_k + load_r + noise``:
    protein abundance ``mu`` (sd 2.3, about 5 orders of magnitude), a cell-type profile ``delta`` (sd
    0.8; +5 for the type's own markers, -2 for other types' markers), the planted effect ``beta``
    (uniform in ``log2fc``, per protein and cell type; 0 for every other protein), a patient effect
    shared by a sample's runs (sd 0.1), biological noise (sd ``biological_sd`` times a per-protein
    factor), a precursor response factor ``rho`` (sd 1), the run's loading (log2 of its pooled cells /
    300, plus sd 0.25) and technical noise growing at low intensity. A precursor is reported (has a
    row) with a probability that falls steeply below the run's detection limit, less 2 % at random.
    About 2.5 % of rows are spurious low-level identifications (precursor q-values 0.01-0.06,
    quantities unrelated to the truth), some borderline rows and protein groups have q-values just
    above 0.01: a q-value filter must remove them.

    Parameters
    ----------
    samples
        Sample sheet with columns sample and condition (TEN or MPR), e.g. :func:`demo_samples`.
    seed
        Seed or generator.
    n_proteins
        Number of protein groups (about 1.5 % hold two proteins).
    cells_per_run
        Cells pooled per run (``{sample}_{cell_type}``); sets each run's loading. Default: 300
        keratinocytes, 200 CD8 T cells, 150 macrophages.
    planted_fraction
        Fraction of the members of :data:`PLANTED_SETS` that respond (all :data:`CORE_GENES` do).
    log2fc
        Range of the planted log2 fold changes, TEN over MPR.
    biological_sd
        Typical sd of a protein between samples (log2).
    gene_sets
        Gene sets to draw symbols from; default :func:`read_gmt_symbols` (Hallmark and Reactome).

    Returns
    -------
    :class:`Proteomics`: ``report`` with DIA-NN's columns (Run.Index, Run, Channel, Precursor.Id,
    Modified.Sequence, Stripped.Sequence, Precursor.Charge, Precursor.Mz, Decoy, Proteotypic,
    Protein.Group, Protein.Ids, Protein.Names, Genes, RT, Q.Value, PEP, Global.Q.Value, Lib.Q.Value,
    PG.Q.Value, Global.PG.Q.Value, Lib.PG.Q.Value, GG.Q.Value, Precursor.Quantity,
    Precursor.Normalised, Ms1.Area, Normalisation.Factor, PG.MaxLFQ, Genes.MaxLFQ); ``proteins``
    (protein, genes, planted, log2fc_<cell type>, n_precursors); ``parameters`` (JSON-ready).

    Examples
    --------
    >>> sim = simulate_proteomics(demo_samples(), seed=0)
    >>> sim.report["Run"].nunique(), int(sim.proteins["planted"].sum()) > 100
    (18, True)
    """
    for col in ("sample", "condition"):
        if col not in samples:
            raise DVPError(f"samples table has no column {col!r}; expected sample and condition")
    unknown = sorted(set(samples["condition"]) - set(CONDITIONS))
    if unknown:
        raise DVPError(f"samples table: condition(s) {', '.join(map(str, unknown))} unknown; expected TEN or MPR")
    lo, hi = log2fc
    if not 0 <= planted_fraction <= 1 or not 0 <= lo <= hi:
        raise DVPError(
            f"planted_fraction must be in [0, 1] and log2fc a (low, high) range with "
            f"0 <= low <= high; got {planted_fraction} and {log2fc}"
        )
    rng = np.random.default_rng(seed)
    sets = dict(gene_sets) if gene_sets is not None else read_gmt_symbols()
    lacking = [name for name in PLANTED_SETS if name not in sets]
    if lacking:
        raise DVPError(f"gene sets lack {', '.join(lacking)}, the sets the demo plants its signal in")

    groups, planted = _protein_groups(rng, sets, n_proteins, planted_fraction)
    lead = np.array([g[0] for g in groups])
    effect = {c: np.where(planted, rng.uniform(lo, hi, n_proteins), 0.0) for c in CELL_TYPES}
    mu = rng.normal(0, 2.3, n_proteins)
    delta = {c: rng.normal(0, 0.8, n_proteins) for c in CELL_TYPES}
    for c in CELL_TYPES:
        own = np.isin(lead, MARKER_GENES[c])
        mu[own] = np.maximum(mu[own], rng.normal(1.5, 1.0, own.sum()))  # markers are abundant
        for other in CELL_TYPES:
            delta[other][own] += 5.0 if other == c else -2.0
    protein_sd = biological_sd * np.exp(rng.normal(0, 0.3, n_proteins))

    n_precursors = 1 + rng.binomial(9, 0.65 / (1 + np.exp(-(mu - 0.5) / 1.5)))  # abundant: more peptides
    protein_of = np.repeat(np.arange(n_proteins), n_precursors)
    library = _precursors(rng, len(protein_of))
    rho = rng.normal(0, 1.0, len(protein_of))

    runs = pd.DataFrame(
        [(s, cond, c) for s, cond in zip(samples["sample"], samples["condition"], strict=True) for c in CELL_TYPES],
        columns=["sample", "condition", "cell_type"],
    )
    runs["run"] = runs["sample"] + "_" + runs["cell_type"]
    default_cells = {"keratinocyte": 300, "cd8_t_cell": 200, "macrophage": 150}
    cells_per_run = dict(cells_per_run or {})
    runs["cells"] = [
        max(1, int(cells_per_run.get(r, default_cells[c]))) for r, c in zip(runs["run"], runs["cell_type"], strict=True)
    ]
    load = np.log2(runs["cells"].to_numpy() / 300) + rng.normal(0, 0.25, len(runs))
    n_runs = len(runs)
    patient = {s: rng.normal(0, 0.1, n_proteins) for s in samples["sample"]}
    level = np.column_stack(
        [
            mu
            + delta[r.cell_type]
            + effect[r.cell_type] * (r.condition == "TEN")
            + patient[r.sample]
            + rng.normal(0, 1, n_proteins) * protein_sd
            for r in runs.itertuples()
        ]
    )

    # Precursor quantities, detection (missing not at random, plus 2 % at random) and spurious rows.
    truth = 17.0 + level[protein_of] + rho[:, None] + load[None, :]
    limit = 15.8 + rng.normal(0, 0.15, n_runs)  # detection limit of each run, log2 quantity
    noise_sd = 0.12 + 0.35 / (1 + np.exp(truth - limit - 1.5))
    observed = truth + rng.normal(0, 1, truth.shape) * noise_sd
    detected = rng.random(truth.shape) < 1 / (1 + np.exp(-(truth - limit) / 0.5))
    detected &= rng.random(truth.shape) >= 0.02
    undetected = np.flatnonzero(~detected.ravel())
    spurious = np.zeros(truth.size, bool)
    n_spurious = min(len(undetected), int(0.025 * detected.sum()))
    spurious[rng.choice(undetected, size=n_spurious, replace=False)] = True
    spurious = spurious.reshape(truth.shape)
    observed = np.where(spurious, limit - 0.5 + rng.normal(0, 1.0, truth.shape), observed)
    pi, ri = np.nonzero(detected | spurious)  # precursor and run of every row
    fake = spurious[pi, ri]
    n_rows = len(pi)

    # Scores: q-values rise towards the detection limit; spurious and borderline rows fail 0.01.
    margin = observed[pi, ri] - limit[ri]
    q = np.minimum(10.0 ** (-4.3 + 1.5 / (1 + np.exp(margin - 1.0)) + rng.normal(0, 0.4, n_rows)), 0.0095)
    borderline = ~fake & (margin < 1.0) & (rng.random(n_rows) < 0.02)
    q[borderline] = rng.uniform(0.0101, 0.03, borderline.sum())
    q[fake] = rng.uniform(0.0101, 0.06, fake.sum())
    pep = _round_sig(np.clip(q * np.exp(rng.normal(1.5, 0.6, n_rows)), 0, 1))
    q = _round_sig(q)
    # Protein groups per run: seen only through spurious rows, or (4 %) through one real precursor,
    # they fail the 1 % protein FDR.
    prow = protein_of[pi]
    _, pg_index = np.unique(prow * n_runs + ri, return_inverse=True)
    real = np.bincount(pg_index, weights=~fake)
    pg_q = np.minimum(10.0 ** rng.normal(-3.8, 0.5, len(real)) / np.sqrt(np.maximum(real, 1)), 0.009)
    weak = (real == 0) | ((real == 1) & (rng.random(len(real)) < 0.04))
    pg_q[weak] = rng.uniform(0.0105, 0.08, weak.sum())
    pg_q = _round_sig(pg_q)[pg_index]

    # Quantities: DIA-NN's normalisation factor undoes the loading (with a small error).
    quantity = 2.0 ** observed[pi, ri]
    factor = 2.0 ** (-(load - np.median(load)) + rng.normal(0, 0.03, n_runs))
    normalised = quantity * factor[ri]
    ms1 = quantity * 2.0 ** rng.normal(0.8, 0.5, n_rows)
    ms1[rng.random(n_rows) < 0.03] = 0.0  # no usable MS1 signal
    rt = library["iRT"].to_numpy()[pi] + rng.normal(0, 0.15, n_runs)[ri] + rng.normal(0, 0.04, n_rows)
    usable = q <= 0.01  # DIA-NN's MaxLFQ uses the precursors passing the run-wise FDR
    x = np.full(truth.shape, np.nan)
    x[pi[usable], ri[usable]] = np.log2(normalised[usable])
    starts = np.concatenate([[0], np.cumsum(n_precursors)])
    lfq = np.full((n_proteins, n_runs), np.nan)
    for p in range(n_proteins):
        block = x[starts[p] : starts[p + 1]]
        if not np.isnan(block).all():
            lfq[p] = _maxlfq(block)
    lfq_rows = 2.0 ** lfq[prow, ri]

    group_id, next_id = [], 1
    for genes in groups:
        group_id.append(";".join(f"DVP{next_id + j:05d}" for j in range(len(genes))))
        next_id += len(genes)
    group_id = np.array(group_id)
    gene_names = np.array([";".join(g) for g in groups])
    protein_names = np.array([";".join(f"{g}_HUMAN" for g in genes) for genes in groups])
    single = np.array([len(g) == 1 for g in groups])
    global_q = pd.Series(q).groupby(pi).transform("min").to_numpy()
    global_pg = pd.Series(pg_q).groupby(prow).transform("min").to_numpy()
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731 -- DIA-NN writes single precision
    report = pd.DataFrame(
        {
            "Run.Index": ri.astype(np.int64),
            "Run": runs["run"].to_numpy()[ri],
            "Channel": "",
            **{c: library[c].to_numpy()[pi] for c in ("Precursor.Id", "Modified.Sequence", "Stripped.Sequence")},
            "Precursor.Charge": library["Precursor.Charge"].to_numpy()[pi].astype(np.int64),
            "Precursor.Mz": f32(library["Precursor.Mz"].to_numpy()[pi]),
            "Decoy": np.zeros(n_rows, dtype=np.int64),
            "Proteotypic": single[prow].astype(np.int64),
            "Protein.Group": group_id[prow],
            "Protein.Ids": group_id[prow],
            "Protein.Names": protein_names[prow],
            "Genes": gene_names[prow],
            "RT": f32(np.round(rt, 2)),
            "Q.Value": f32(q),
            "PEP": f32(pep),
            "Global.Q.Value": f32(global_q),
            "Lib.Q.Value": f32(global_q),
            "PG.Q.Value": f32(pg_q),
            "Global.PG.Q.Value": f32(global_pg),
            "Lib.PG.Q.Value": f32(global_pg),
            "GG.Q.Value": f32(pg_q),
            "Precursor.Quantity": _coarsen(quantity),
            "Precursor.Normalised": _coarsen(normalised),
            "Ms1.Area": _coarsen(ms1),
            "Normalisation.Factor": f32(factor[ri]),
            "PG.MaxLFQ": _coarsen(lfq_rows),
            "Genes.MaxLFQ": _coarsen(lfq_rows),
        }
    )
    report = report.sort_values(["Run.Index", "Protein.Group", "Precursor.Id"], kind="stable")

    proteins = pd.DataFrame(
        {
            "protein": group_id,
            "genes": gene_names,
            "planted": planted,
            **{f"log2fc_{c}": effect[c] for c in CELL_TYPES},
            "n_precursors": n_precursors,
        }
    )
    parameters = {
        "planted_sets": list(PLANTED_SETS),
        "core_genes": list(CORE_GENES),
        "planted_fraction": planted_fraction,
        "log2fc_range": [lo, hi],
        "biological_sd": biological_sd,
        "n_proteins": n_proteins,
        "n_planted": int(planted.sum()),
        "planted_per_set": {name: int(np.isin(lead[planted], sets[name]).sum()) for name in PLANTED_SETS},
        "members_per_set": {name: int(np.isin(lead, sets[name]).sum()) for name in PLANTED_SETS},
        "runs": runs[["run", "sample", "condition", "cell_type", "cells"]].to_dict("records"),
    }
    return Proteomics(
        report=report.reset_index(drop=True),
        proteins=proteins.sort_values("protein").reset_index(drop=True),
        parameters=parameters,
    )


# ---------------------------------------------------------------------------------------------------
# Everything, to a folder
# ---------------------------------------------------------------------------------------------------


def write_demo(
    outdir: str | os.PathLike,
    *,
    seed: int = 0,
    samples_per_condition: int = 3,
    image_size: int = 640,
    n_proteins: int = 3000,
) -> dict:
    """Write the whole synthetic cohort to ``outdir``.

    Files: ``images/{sample}.ome.tif``, ``truth/{sample}_labels.tif``, ``truth/{sample}_cells.tsv``,
    ``truth/proteins.tsv``, ``truth/planted.json``, ``diann_report.parquet``, ``samples.tsv``,
    ``runs.tsv`` and ``README.md``; each written atomically, replacing what was there. Each sample's
    tissue has its own random stream (from the seed and the sample name), and the runs' loading
    follows the cells of each type in the images (at most 300 are cut per type).

    Parameters
    ----------
    outdir
        Destination folder (created if needed).
    seed
        Seed of everything; the same seed gives the same files.
    samples_per_condition
        Samples per condition (TEN and MPR).
    image_size
        Image height and width in pixels.
    n_proteins
        Protein groups in the report.

    Returns
    -------
    Summary: ``cells`` (sample -> type -> count), report counts and fractions, ``files`` (relative
    paths written) and ``seconds``.
    """
    started = time.perf_counter()
    out = Path(outdir)
    samples = demo_samples(samples_per_condition)
    files: list[str] = []
    cell_counts: dict[str, dict[str, int]] = {}
    for sample, condition in zip(samples["sample"], samples["condition"], strict=True):
        tissue = simulate_tissue(condition, seed=_sample_rng(seed, sample), size=image_size)
        write_ome_tiff(tissue.image, out / "images" / f"{sample}.ome.tif")
        write_labels(tissue.labels, out / "truth" / f"{sample}_labels.tif")
        cells = tissue.cells.assign(sample=sample).round({"centroid_y": 2, "centroid_x": 2})
        cells = cells[["cell_id", "sample", "cell_type", "centroid_y", "centroid_x", "area", "region"]]
        write_table(cells, out / "truth" / f"{sample}_cells.tsv")
        files += [f"images/{sample}.ome.tif", f"truth/{sample}_labels.tif", f"truth/{sample}_cells.tsv"]
        counts = cells["cell_type"].value_counts()
        cell_counts[sample] = {t: int(counts.get(t, 0)) for t in (*CELL_TYPES, UNASSIGNED)}

    cells_per_run = {f"{s}_{t}": min(300, n[t]) for s, n in cell_counts.items() for t in CELL_TYPES}
    sim = simulate_proteomics(
        samples, seed=_sample_rng(seed, "proteomics"), n_proteins=n_proteins, cells_per_run=cells_per_run
    )
    write_report(sim.report, out / "diann_report.parquet")
    write_table(sim.proteins, out / "truth" / "proteins.tsv")
    command = f"dvp demo {out.as_posix()} --seed {seed}" + "".join(
        f" --{flag} {value}"
        for flag, value, default in (
            ("samples-per-condition", samples_per_condition, 3),
            ("image-size", image_size, 640),
            ("proteins", n_proteins, 3000),
        )
        if value != default
    )
    parameters = {
        "seed": seed,
        "samples_per_condition": samples_per_condition,
        "image_size": image_size,
        "pixel_size_um": PIXEL_SIZE_UM,
        **sim.parameters,
    }
    write_json(parameters, out / "truth" / "planted.json")
    sheet = samples.assign(image=[str(out / "images" / f"{s}.ome.tif") for s in samples["sample"]])
    sheet = sheet[["sample", "condition", "image", "patient", "batch", "pixel_size_um"]]
    write_table(sheet, out / "samples.tsv")
    runs = pd.DataFrame(sim.parameters["runs"])[["run", "sample", "cell_type"]]
    runs["well"] = runs["cell_type"].map({t: f"{'ABC'[i]}1" for i, t in enumerate(CELL_TYPES)})
    write_table(runs, out / "runs.tsv")
    files += ["diann_report.parquet", "truth/proteins.tsv", "truth/planted.json", "samples.tsv", "runs.tsv"]

    report = sim.report
    passing = (report["Q.Value"] <= 0.01) & (report["PG.Q.Value"] <= 0.01)
    n_groups = report["Protein.Group"].nunique()
    summary = {
        "cells": cell_counts,
        "report_rows": len(report),
        "protein_groups": int(n_groups),
        "precursors": int(report["Precursor.Id"].nunique()),
        "rows_failing_q": float(1 - passing.mean()),
        "rows_precursor_q_above_0.01": float((report["Q.Value"] > 0.01).mean()),
        "rows_pg_q_above_0.01": float((report["PG.Q.Value"] > 0.01).mean()),
        "protein_missing_fraction": float(
            1 - report[passing].groupby("Run")["Protein.Group"].nunique().sum() / (n_groups * len(runs))
        ),
        "planted_proteins": int(sim.proteins["planted"].sum()),
    }
    write_text(_readme(parameters, summary, command), out / "README.md")
    files.append("README.md")
    summary["files"] = files
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def _readme(parameters: dict, summary: dict, command: str) -> str:
    types = (*CELL_TYPES, UNASSIGNED)
    cells = "\n".join(
        f"| {s} | {s[:3]} | " + " | ".join(str(n[t]) for t in types) + " |" for s, n in summary["cells"].items()
    )
    per_set = "\n".join(
        f"- {name}: {parameters['planted_per_set'][name]} of its {parameters['members_per_set'][name]} members planted"
        for name in PLANTED_SETS
    )
    size, lo, hi = parameters["image_size"], *parameters["log2fc_range"]
    return f"""\
# Sample data: a synthetic TEN vs drug-rash skin cohort

Made by `{command}` (`dvp_pipeline.demo.write_demo`); the same seed gives the same
files. Nothing here comes from a patient. The design imitates Nordmann et al. 2024
(Nature): toxic epidermal necrolysis (TEN) against maculopapular drug rash (MPR); keratinocytes, CD8 T
cells and macrophages typed on images, cut out per sample and cell type, measured by DIA-MS.

## Files

- `samples.tsv`, `runs.tsv`: sample sheet (sample, condition, image, patient, batch, pixel_size_um)
  and run sheet (run, sample, cell_type, well).
- `images/{{sample}}.ome.tif`: {size} x {size} pixels, uint16, axes CYX, channels DAPI, KRT14, CD8,
  CD163 (names and PhysicalSizeX/Y = {parameters["pixel_size_um"]} µm in the OME-XML), zlib. Epidermis along
  the top (KRT14+ keratinocytes), dermis below with unlabelled stromal cells and an infiltrate of CD8 T cells
  (CD8+ membrane) and macrophages (CD163+), denser and CD8-richer in TEN, which also has T cells in the
  epidermis. PSF blur, channel bleed-through, autofluorescent fibres, uneven illumination, camera
  offset, shot and read noise; about 4 % of marker-positive cells stain weakly and a few stromal cells
  are CD163+, so marker gating is good, not perfect.
- `truth/{{sample}}_labels.tif`: uint32 whole-cell labels (0 = background): nuclei grown by about 3 µm.
- `truth/{{sample}}_cells.tsv`: cell_id (= label), sample, cell_type (keratinocyte, cd8_t_cell,
  macrophage, or unassigned for stromal cells), centroid_y, centroid_x, area (pixels), region.
- `diann_report.parquet`: DIA-NN 2.x-style main report, one row per precursor and run
  (`{{sample}}_{{cell_type}}`); a missing value is an absent row. Protein groups are `DVP00001`-style
  ids (not UniProt accessions) with real human gene symbols in `Genes`; about 1.5 % are two-protein
  groups (`DVP00011;DVP00012`, Genes `A;B`). `Precursor.Normalised` = `Precursor.Quantity` x
  `Normalisation.Factor` (the run's loading correction: runs pool different numbers of cells).
  `PG.MaxLFQ` = `Genes.MaxLFQ`: MaxLFQ over the precursors with `Q.Value` <= 0.01. Rows with `Q.Value`
  or `PG.Q.Value` above 0.01 ({100 * summary["rows_failing_q"]:.1f} % of rows) have unreliable quantities:
  filter them out.
- `truth/proteins.tsv`: protein (= Protein.Group), genes, planted, log2fc_keratinocyte,
  log2fc_cd8_t_cell, log2fc_macrophage (the true TEN over MPR effect), n_precursors.
- `truth/planted.json`: seed, planted sets and every parameter of the simulation.

## Cells per sample

| sample | condition | {" | ".join(types)} |
|---|---|---|---|---|---|
{cells}

## Report

{summary["report_rows"]:,} rows, {summary["protein_groups"]:,} protein groups (of {parameters["n_proteins"]:,}
simulated; the rest were never detected), {summary["precursors"]:,} precursors. After the 1 % q-value
filters {100 * summary["protein_missing_fraction"]:.1f} % of protein x run values are missing, mostly for
low-abundance proteins.

## Planted truth

{summary["planted_proteins"]} proteins are up in TEN in all three cell types, by log2 fold changes drawn
uniformly from {lo} to {hi} per protein and cell type: {", ".join(parameters["core_genes"])}, and a random
{parameters["planted_fraction"]:.0%} of the other members of

{per_set}

Every other protein has no condition effect. Proteins vary between samples with an sd of about
{parameters["biological_sd"]} log2 (varying by protein), so 3 vs 3 statistics are not trivial. camera on
keratinocytes calls the three Hallmark sets (and sets sharing their genes, such as Reactome interferon
signalling) at FDR < 0.05; random sets of null proteins do not come up.
"""


# --- The open mzML path: two small synthetic runs with identifications -------------------------

#: Tryptic peptides of the synthetic mzML runs, three per protein, and run2/run1 abundance ratios.
MZML_PROTEINS = {
    "P04637": (["LGFLHSGTAK", "TCPVQLWVDSTPPPGTR", "MAIYKQSQHMTEVVR"], 1.0),
    "P42224": (["FIVEGTVQEPK", "LLGPGVNYSGCQITWAK", "ELSAVTFPDIIR"], 2.0),
    "P40763": (["YLEQLHQLYSDSFPMELR", "VVENLQDDFDFNYK", "QFLQPWIEAQR"], 4.0),
    "P23458": (["LLEIHGESPTSR", "GQSGSEVLWSDYK", "AIETDKEYYTVK"], 0.5),
    "P01579": (["QDPYVKEAENLK", "KYFNAGHSDVADNGTLFLGILK", "TGKRKR"], 0.25),
}


def simulate_mzml_runs(*, seed: int = 7) -> dict:
    """Two synthetic MS1 runs and their identifications, with known protein ratios.

    Each peptide elutes as a Gaussian (sd 0.1 min) at a fixed retention time in both runs, with its
    isotope envelope (averagine-like decreasing ratios) at charge 2; run2's abundance is run1's
    times the protein's ratio in :data:`MZML_PROTEINS`, plus 5 % noise. Identifications include
    decoy PSMs with poor scores so that the target-decoy filter has something to remove.

    Returns
    -------
    {"runs": {run: (times, mz arrays, intensity arrays)}, "psms": {run: DataFrame}, "ratios": {protein: ratio}}
    """
    from pyteomics import mass

    rng = np.random.default_rng(seed)
    peptides = [(p, s, r) for p, (seqs, r) in MZML_PROTEINS.items() for s in seqs]
    rts = np.linspace(12, 28, len(peptides)) + rng.uniform(-0.2, 0.2, len(peptides))
    base = 10 ** rng.uniform(6, 7.5, len(peptides))
    times = np.arange(10.0, 30.0, 0.02)
    runs, psms = {}, {}
    for r, run in enumerate(["mzml_run1", "mzml_run2"]):
        peaks_mz, peaks_int = [], []
        rows = []
        for k, (prot, seq, ratio) in enumerate(peptides):
            mz = mass.fast_mass(seq, charge=2)
            amount = base[k] * (ratio if r == 1 else 1.0) * rng.lognormal(0, 0.05)
            profile = amount * np.exp(-0.5 * ((times - rts[k]) / 0.1) ** 2)
            for i, share in enumerate([1.0, 0.6, 0.25]):
                peaks_mz.append(np.full(len(times), mz + i * 1.0033548 / 2))
                peaks_int.append(profile * share)
            rows.append((seq, 2, mz, rts[k] + rng.normal(0, 0.02), prot, rng.uniform(60, 120), False))
        for j in range(40):  # decoys: poor scores, random places
            seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 10)) + "K"
            rows.append(
                (seq, 2, mass.fast_mass(seq, charge=2), rng.uniform(11, 29), f"DECOY_X{j}", rng.uniform(5, 40), True)
            )
        mz_all = np.stack(peaks_mz, axis=1)  # times x peaks
        int_all = np.stack(peaks_int, axis=1)
        spectra_mz, spectra_int = [], []
        for t in range(len(times)):
            noise_mz = rng.uniform(400, 1400, 30)
            m = np.concatenate([mz_all[t], noise_mz])
            i = np.concatenate([int_all[t], rng.exponential(1e3, 30)])
            keep = i > 1.0
            order = np.argsort(m[keep])
            spectra_mz.append(m[keep][order])
            spectra_int.append(i[keep][order])
        runs[run] = (times, spectra_mz, spectra_int)
        psms[run] = pd.DataFrame(rows, columns=["sequence", "charge", "mz", "rt", "protein", "score", "decoy"])
    return {"runs": runs, "psms": psms, "ratios": {p: r for p, (_, r) in MZML_PROTEINS.items()}}


def write_mzml(times, mzs, intensities, path: str | os.PathLike) -> None:
    """Write MS1 spectra as an indexed mzML file (psims), atomically."""
    from psims.mzml.writer import MzMLWriter

    with atomic_output(path) as tmp:
        with MzMLWriter(open(tmp, "wb"), close=True) as out:
            out.controlled_vocabularies()
            out.file_description(["MS1 spectrum"])
            out.software_list([{"id": "dvp_pipeline", "version": "0.1", "params": ["custom unreleased software tool"]}])
            out.instrument_configuration_list(
                [out.InstrumentConfiguration(id="IC1", component_list=[], params=["Q Exactive"])]
            )
            out.data_processing_list(
                [out.DataProcessing([out.ProcessingMethod(order=0, software_reference="dvp_pipeline")], id="DP1")]
            )
            with out.run(id=Path(path).stem, instrument_configuration="IC1"):
                with out.spectrum_list(count=len(times)):
                    for k, (t, mz, inten) in enumerate(zip(times, mzs, intensities, strict=True)):
                        out.write_spectrum(
                            mz,
                            inten,
                            id=f"scan={k + 1}",
                            params=["MS1 spectrum", {"ms level": 1}, {"total ion current": float(inten.sum())}],
                            scan_start_time=float(t),
                        )


def write_mztab(psms: pd.DataFrame, path: str | os.PathLike, *, run: str) -> None:
    """Write PSMs (sequence, charge, mz, rt in minutes, protein, score, decoy) as a minimal mzTab 1.0."""
    header = [
        "MTD\tmzTab-version\t1.0.0",
        "MTD\tmzTab-mode\tSummary",
        "MTD\tmzTab-type\tIdentification",
        "MTD\tdescription\tdvp-pipeline synthetic identifications",
        f"MTD\tms_run[1]-location\tfile://{run}.mzML",
        "MTD\tpsm_search_engine_score[1]\t[MS, MS:1001331, X!Tandem:hyperscore, ]",
        "",
    ]
    cols = ["sequence", "PSM_ID", "accession", "unique", "database", "database_version", "search_engine",
            "search_engine_score[1]", "modifications", "retention_time", "charge", "exp_mass_to_charge",
            "calc_mass_to_charge", "spectra_ref", "pre", "post", "start", "end",
            "opt_global_cv_MS:1002217_decoy_peptide"]  # fmt: skip
    lines = ["PSH\t" + "\t".join(cols)]
    for k, p in enumerate(psms.itertuples(index=False)):
        values = [p.sequence, k + 1, p.protein, "null", "null", "null", "[MS, MS:1001476, X!Tandem, ]",
                  f"{p.score:.4f}", "null", f"{p.rt * 60:.3f}", p.charge, f"{p.mz:.5f}", f"{p.mz:.5f}",
                  f"ms_run[1]:scan={k + 1}", "K", "-", "null", "null", int(p.decoy)]  # fmt: skip
        lines.append("PSM\t" + "\t".join(map(str, values)))
    write_text("\n".join(header + lines) + "\n", path)


def write_mzml_demo(out: str | os.PathLike, *, seed: int = 7) -> dict:
    """Write the two synthetic mzML runs and their mzTab identifications into ``out``.

    Returns {"spectra": [paths], "identifications": [paths], "ratios": {protein: run2/run1}}.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate_mzml_runs(seed=seed)
    spectra, ids = [], []
    for run, (times, mzs, intensities) in sim["runs"].items():
        write_mzml(times, mzs, intensities, out / f"{run}.mzML")
        write_mztab(sim["psms"][run], out / f"{run}.mzTab", run=run)
        spectra.append(str(out / f"{run}.mzML"))
        ids.append(str(out / f"{run}.mzTab"))
    return {"spectra": spectra, "identifications": ids, "ratios": sim["ratios"]}


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

    def by_channel():
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
