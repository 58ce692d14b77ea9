"""Cell segmentation: from a multiplexed image to a whole-cell label image.

First science step of the pipeline (``dvp segment``): its labels feed
:func:`dvp_pipeline.features.measure_cells` (the cells table) and, after classification, the
laser-microdissection export, which cuts out exactly these cell outlines. Two methods:

``classical``
    Nuclei from the nuclear stain, then cells by a watershed from the nuclei on a membrane or
    cytoplasm channel when one is given, else as the nuclei grown by a fixed distance without
    overlap (``skimage.segmentation.expand_labels``). The default ``threshold="auto"`` finds each
    nucleus above its local background and noise and cuts it at half its own brightness, so dim
    nuclei, uneven illumination and packed nuclei hold (:func:`segment_nuclei`); the single-level
    thresholds (Otsu and others, the method of earlier versions) remain as options. Needs no extra
    packages and no training.
``cellpose``
    The Cellpose deep-learning model (``pip install 'dvp-pipeline[cellpose]'``; the Cellpose 3.1 and
    4.x APIs), optionally with a cytoplasm/membrane channel; better on crowded or irregular cells.

:func:`segment_cells_and_nuclei` returns whole-cell and nuclear labels linked by their label (the
nucleus of cell ``k`` is labelled ``k``); :func:`segment` returns the cells only. Whole slides are
segmented tile by tile by :mod:`dvp_pipeline.tiling`, which calls the same functions.

:func:`match_labels` scores a label image against annotated labels (precision, recall, F1 at an IoU
threshold), the usual way to check segmentation quality.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage import filters
from skimage.feature import peak_local_max
from skimage.morphology import disk
from skimage.segmentation import expand_labels, relabel_sequential, watershed

from dvp_pipeline.errors import DVPError

__all__ = [
    "auto_reach",
    "local_threshold",
    "match_labels",
    "nuclear_signal",
    "segment",
    "segment_cells_and_nuclei",
    "segment_nuclei",
]

log = logging.getLogger(__name__)

_THRESHOLDS = {
    "otsu": filters.threshold_otsu,
    "li": filters.threshold_li,
    "triangle": filters.threshold_triangle,
}

_SEEDS = ("distance", "intensity")


def segment(image: np.ndarray, *, method: str = "classical", **options) -> np.ndarray:
    """Segment cells in a (multi-channel) image.

    Parameters
    ----------
    image
        Array of shape (channels, y, x) or (y, x). With one channel, that channel is the nuclear
        stain.
    method
        ``"classical"`` (threshold + watershed on the nuclear stain, then expansion to cells) or
        ``"cellpose"``.
    **options
        Options of the method, all with defaults. Both methods take ``pixel_size_um`` (default 0.5;
        every size option is in micrometres) and ``nuclear_channel`` (index into the channel axis,
        default 0).

        classical: ``smoothing_sigma_um`` (0.5), ``threshold`` (``"auto"``, the default: per
        nucleus, see :func:`segment_nuclei`; or one level for the image: ``"otsu"``, ``"li"``,
        ``"triangle"`` or a number in smoothed image intensity units), ``min_snr`` (5.0; ``auto``
        only: noise SDs above the local background a nucleus needs), ``nucleus_diameter_um`` (7.0;
        the scale of seeds, background and merging), ``min_nucleus_area_um2``
        (8.0; smaller objects are dropped), ``cell_expansion_um`` (3.0; how far cells reach beyond
        their nucleus; 0 returns nuclei), ``membrane_channel`` or ``cytoplasm_channel`` (index of a
        channel that outlines cells: cells are then a watershed from the nuclei on it, within
        ``cell_expansion_um`` of their nucleus; ``None``, the default, grows the nuclei evenly).
        Also: ``threshold="local"`` (a local mean over two nucleus diameters, :func:`local_threshold`),
        ``background_radius_um`` (``None``; the grey opening's radius, :func:`nuclear_signal`) and,
        for the single-level thresholds, ``seeds`` (``"distance"``, the default, or ``"intensity"``:
        Laplacian-of-Gaussian seeds flooded along the stain); quality of each in
        ``bench/results/segment_quality.md``.

        cellpose: ``model`` (``None`` = the installed version's generalist model, ``cyto3`` in
        Cellpose 3, ``cpsam`` in Cellpose 4; or a model name or file), ``cytoplasm_channel`` (index
        of a cytoplasm/membrane channel, or ``None`` to segment from the nuclear stain alone),
        ``diameter_um`` (expected cell diameter; ``None``, the default, uses the model's own
        scale), ``flow_threshold`` (0.4), ``cellprob_threshold`` (0.0), ``gpu`` (False; used only
        when torch sees a GPU), ``batch_size`` (network tiles per batch; ``None``: 8 on CPU, 64 on a
        GPU). Nuclei of Cellpose cells
        are the cell pixels above the nuclear stain's Otsu threshold when a cytoplasm channel is
        given, else the cells themselves.

    Returns
    -------
    Labels of shape (y, x), dtype uint32: 0 is background, cells are numbered 1..N.

    Examples
    --------
    >>> labels = segment(image, pixel_size_um=0.5, cell_expansion_um=4.0)
    >>> labels.shape, labels.dtype, int(labels.max()) > 100  # cells are numbered 1..N
    ((320, 320), dtype('uint32'), True)
    """
    cells, _ = segment_cells_and_nuclei(image, method=method, **options)
    return cells


def segment_cells_and_nuclei(
    image: np.ndarray, *, method: str = "classical", **options
) -> tuple[np.ndarray, np.ndarray]:
    """Segment cells and their nuclei; the nucleus of cell ``k`` has label ``k``.

    Parameters
    ----------
    image, method, **options
        As in :func:`segment`.

    Returns
    -------
    cells
        Whole-cell labels (y, x), uint32, numbered 1..N.
    nuclei
        Nuclear labels (y, x), uint32, each inside the cell of the same label (0 = no nucleus
        there; a cell may lack a nucleus when Cellpose finds no nuclear stain in it).

    Examples
    --------
    >>> cells, nuclei = segment_cells_and_nuclei(image, pixel_size_um=0.5, cytoplasm_channel=1)
    >>> bool(((nuclei == 0) | (nuclei == cells)).all())  # each nucleus lies in its own cell
    True
    """
    methods = {"classical": _segment_classical, "cellpose": _segment_cellpose}
    if method not in methods:
        raise DVPError(f"segmentation method {method!r} unknown; expected one of {', '.join(methods)}")
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[np.newaxis]
    if image.ndim != 3 or image.shape[1] == 0 or image.shape[2] == 0:
        raise DVPError(f"image has shape {image.shape}; expected (channels, y, x) or (y, x)")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        bad = int(image.size - np.count_nonzero(np.isfinite(image)))
        raise DVPError(f"image has {bad} pixel value(s) that are NaN or infinite; expected finite intensities")
    func = methods[method]
    allowed = [p for p in inspect.signature(func).parameters if p != "image"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DVPError(
            f"segmentation option(s) {', '.join(unknown)} unknown for method {method!r}; expected {', '.join(allowed)}"
        )
    if "nuclear_channel" in options:
        channel = options["nuclear_channel"]
        if not isinstance(channel, int | np.integer) or not 0 <= channel < image.shape[0]:
            raise DVPError(
                f"nuclear_channel {channel!r} is not a channel index of an image with {image.shape[0]} channel(s)"
            )
    pixel_size = options.get("pixel_size_um", 0.5)
    if not isinstance(pixel_size, int | float) or not pixel_size > 0:
        raise DVPError(f"pixel_size_um must be a positive number of micrometres, got {pixel_size!r}")
    for key in ("membrane_channel", "cytoplasm_channel"):
        channel = options.get(key)
        if channel is not None and not (
            isinstance(channel, int | np.integer) and not isinstance(channel, bool) and 0 <= channel < image.shape[0]
        ):
            raise DVPError(f"{key} {channel!r} is not a channel index of an image with {image.shape[0]} channel(s)")
    cells, nuclei = func(image, **options)
    cells, forward, _ = relabel_sequential(np.asarray(cells).astype(np.uint32, copy=False))
    # The same map keeps the nucleus of cell k labelled k; nuclear pixels outside their cell go.
    nuclei = forward[np.asarray(nuclei).astype(np.uint32, copy=False)]
    nuclei[nuclei != cells] = 0
    return cells.astype(np.uint32, copy=False), nuclei.astype(np.uint32, copy=False)


def _segment_classical(
    image: np.ndarray,
    *,
    pixel_size_um: float = 0.5,
    nuclear_channel: int = 0,
    smoothing_sigma_um: float = 0.5,
    threshold: str | float = "auto",
    nucleus_diameter_um: float = 7.0,
    min_nucleus_area_um2: float = 8.0,
    cell_expansion_um: float = 3.0,
    membrane_channel: int | None = None,
    cytoplasm_channel: int | None = None,
    background_radius_um: float | None = None,
    seeds: str | None = None,
    min_snr: float = 5.0,
) -> tuple[np.ndarray, np.ndarray]:
    nuclei = segment_nuclei(
        image[nuclear_channel],
        pixel_size_um=pixel_size_um,
        smoothing_sigma_um=smoothing_sigma_um,
        threshold=threshold,
        nucleus_diameter_um=nucleus_diameter_um,
        min_nucleus_area_um2=min_nucleus_area_um2,
        background_radius_um=background_radius_um,
        seeds=seeds,
        min_snr=min_snr,
    )
    if cell_expansion_um < 0:
        raise DVPError(f"cell_expansion_um must be >= 0, got {cell_expansion_um}")
    if membrane_channel is not None and cytoplasm_channel is not None:
        raise DVPError("give membrane_channel or cytoplasm_channel, not both")
    distance = cell_expansion_um / pixel_size_um
    if distance <= 0:
        return nuclei, nuclei
    outline = membrane_channel if membrane_channel is not None else cytoplasm_channel
    if outline is None:
        return expand_labels(nuclei, distance=distance), nuclei
    sigma = smoothing_sigma_um / pixel_size_um
    stain = np.asarray(image[outline], dtype=np.float32)
    if sigma > 0:
        stain = ndi.gaussian_filter(stain, sigma=sigma)
    # A membrane stain is bright between cells, so it is the watershed's relief as it is; a
    # cytoplasm stain is bright inside cells, so cells flood from the nuclei down its gradient.
    relief = stain if membrane_channel is not None else -stain
    # Cells never reach further than cell_expansion_um from their nucleus: this bounds cells in
    # stain-free tissue and keeps the result local (the same in a tile as in the whole image).
    reach = ndi.distance_transform_edt(nuclei == 0) <= distance
    cells = watershed(relief, markers=nuclei, mask=reach)
    return cells, nuclei


def nuclear_signal(
    nuclear: np.ndarray,
    *,
    pixel_size_um: float = 0.5,
    smoothing_sigma_um: float = 0.5,
    background_radius_um: float | None = None,
) -> np.ndarray:
    """The nuclear stain as the classical method thresholds it: smoothed, optionally background-subtracted.

    Also used by :func:`dvp_pipeline.tiling.global_threshold`, so that a slide's threshold is found
    on the same values its tiles are cut at.

    Parameters
    ----------
    nuclear
        2-D nuclear stain.
    pixel_size_um, smoothing_sigma_um, background_radius_um
        As in :func:`segment`.

    Returns
    -------
    float32 image of the same shape.
    """
    smoothed = np.asarray(nuclear, dtype=np.float32)
    # Light smoothing only: it evens out chromatin texture and noise, but a blur as wide as the gap
    # between neighbouring nuclei (~1 um in dense epidermis) fuses them before the watershed.
    if smoothing_sigma_um > 0:
        smoothed = ndi.gaussian_filter(smoothed, sigma=smoothing_sigma_um / pixel_size_um)
    if background_radius_um is not None:
        half = _background_half_width(background_radius_um, pixel_size_um)
        # Background subtracted, not divided: a grey opening (white top-hat) removes the camera
        # offset, autofluorescence and out-of-focus haze, which add to the stain; dividing by it
        # would also even out a multiplicative illumination field, but the opening of dark tissue
        # is mostly offset and noise, and a ratio to it amplifies that noise. The opening with a
        # square of half-width r (separable min/max filters, fast at any radius) only looks 2r
        # pixels away, so tiles with an overlap of at least 2r plus a cell see the same values.
        smoothed = smoothed - ndi.grey_opening(smoothed, size=(2 * half + 1, 2 * half + 1))
    return smoothed


def _background_half_width(background_radius_um, pixel_size_um: float) -> int:
    """``background_radius_um`` checked and in pixels (at least 1)."""
    if not isinstance(background_radius_um, int | float) or isinstance(background_radius_um, bool):
        raise DVPError(f"background_radius_um must be micrometres or None, got {background_radius_um!r}")
    if not background_radius_um > 0:
        raise DVPError(f"background_radius_um must be > 0, got {background_radius_um!r}")
    return max(1, int(round(background_radius_um / pixel_size_um)))


def local_threshold(
    smoothed: np.ndarray, *, pixel_size_um: float = 0.5, nucleus_diameter_um: float = 7.0
) -> np.ndarray:
    """The per-pixel threshold of ``threshold: local``: a Gaussian-weighted local mean of the stain.

    The window (``skimage.filters.threshold_local``, ``method="gaussian"``) is two nucleus
    diameters wide, so that it holds a nucleus and its surroundings: a nucleus stands out from its
    own neighbourhood however dim it is or however weak the illumination there, which a global
    level misses. The Gaussian is truncated at 4 sigma, i.e. about 0.7 window widths, so tiles
    whose overlap is wider than that plus a cell agree with the whole image.
    """
    block = 2 * int(round(nucleus_diameter_um / pixel_size_um)) + 1  # odd, as threshold_local needs
    return filters.threshold_local(smoothed, block_size=max(3, block), method="gaussian")


def check_seeds(threshold: str | float, seeds: str | None) -> None:
    """``seeds`` belongs to the single-level thresholds; ``threshold="auto"`` finds its own (the dry run checks too)."""
    if threshold == "auto" and seeds is not None:
        raise DVPError(
            f"seeds {seeds!r} applies to the single-level thresholds (otsu, li, triangle, local or a number); "
            "threshold auto finds its own seeds: remove seeds, or choose one of those thresholds"
        )


def segment_nuclei(
    nuclear: np.ndarray,
    *,
    pixel_size_um: float = 0.5,
    smoothing_sigma_um: float = 0.5,
    threshold: str | float = "auto",
    nucleus_diameter_um: float = 7.0,
    min_nucleus_area_um2: float = 8.0,
    background_radius_um: float | None = None,
    seeds: str | None = None,
    min_snr: float = 5.0,
) -> np.ndarray:
    """Segment nuclei in a nuclear-stain image (the first half of the classical method).

    Parameters
    ----------
    nuclear
        2-D nuclear stain (DAPI, Hoechst).
    pixel_size_um, smoothing_sigma_um, threshold, nucleus_diameter_um, min_nucleus_area_um2
        As in :func:`segment`.
    background_radius_um
        Half-width of the grey opening that estimates the stain's background. ``threshold="auto"``
        always subtracts a background (``None``: 1.5 nucleus radii); the single-level thresholds
        subtract one only when it is given.
    seeds
        For the single-level thresholds only (``threshold="auto"`` finds its own): ``"distance"``
        (the default): one watershed seed per maximum of the distance to the background, the
        watershed floods the distance map; ``"intensity"``: seeds are the blob peaks of the stain at
        the nucleus scale (Laplacian of Gaussian), and the watershed floods that response, so
        touching nuclei part at the dimmer seam between them even without a waist.
    min_snr
        ``threshold="auto"``: how many noise standard deviations of the smoothed stain a pixel must
        stand above its background to belong to a nucleus.

    Returns
    -------
    Nucleus labels of the same shape (int32; 0 = background), not necessarily sequential.
    """
    for name, value in [
        ("smoothing_sigma_um", smoothing_sigma_um),
        ("nucleus_diameter_um", nucleus_diameter_um),
        ("min_nucleus_area_um2", min_nucleus_area_um2),
        ("min_snr", min_snr),
    ]:
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise DVPError(f"{name} must be a number >= 0, got {value!r}")
    if isinstance(threshold, str) and threshold not in (*_THRESHOLDS, "local", "auto"):
        raise DVPError(
            f"threshold {threshold!r} unknown; expected auto, one of {', '.join(_THRESHOLDS)}, local or a number"
        )
    if seeds is not None and seeds not in _SEEDS:
        raise DVPError(f"seeds {seeds!r} unknown; expected one of {', '.join(_SEEDS)}")
    check_seeds(threshold, seeds)
    if threshold == "auto":
        return _nuclei_auto(
            nuclear,
            pixel_size_um=pixel_size_um,
            smoothing_sigma_um=smoothing_sigma_um,
            nucleus_diameter_um=nucleus_diameter_um,
            min_nucleus_area_um2=min_nucleus_area_um2,
            background_radius_um=background_radius_um,
            min_snr=min_snr,
        )
    smoothed = nuclear_signal(
        nuclear,
        pixel_size_um=pixel_size_um,
        smoothing_sigma_um=smoothing_sigma_um,
        background_radius_um=background_radius_um,
    )

    if isinstance(threshold, str):
        if smoothed.min() == smoothed.max():  # a blank image has no foreground (and breaks Otsu)
            return np.zeros(smoothed.shape, dtype=np.int32)
        if threshold == "local":
            level = local_threshold(smoothed, pixel_size_um=pixel_size_um, nucleus_diameter_um=nucleus_diameter_um)
        else:
            level = _THRESHOLDS[threshold](smoothed)
    else:
        level = float(threshold)
    mask = ndi.binary_fill_holes(smoothed > level)

    components, _ = ndi.label(mask)
    min_area_px = min_nucleus_area_um2 / pixel_size_um**2
    sizes = np.bincount(components.ravel())
    small = sizes < min_area_px
    small[0] = False
    mask[small[components]] = False
    components[~mask] = 0

    radius_px = max(1, int(round(nucleus_diameter_um / pixel_size_um / 2)))
    if seeds in (None, "distance"):
        # Markers are maxima of the distance to the background, one per nucleus: peaks closer than
        # a nucleus radius belong to the same nucleus. A light blur removes ridge plateaus that
        # would otherwise give several peaks along one elongated nucleus.
        distance = ndi.distance_transform_edt(mask)
        distance = ndi.gaussian_filter(distance, sigma=1.0)
        peaks = peak_local_max(distance, min_distance=radius_px, labels=components, exclude_border=False)
        relief = -distance
    else:
        blob = -ndi.gaussian_laplace(smoothed, sigma=_LOG_SCALE * radius_px)
        spacing = max(1, int(round(_SEED_SPACING * radius_px)))
        peaks = peak_local_max(blob, min_distance=spacing, labels=components, exclude_border=False)
        relief = -blob
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    nuclei = watershed(relief, markers, mask=mask)
    # A component without a peak (possible for tiny or flat objects) stays one nucleus.
    orphan = mask & (nuclei == 0)
    if orphan.any():
        extra, _ = ndi.label(orphan)
        nuclei[orphan] = extra[orphan] + len(peaks)
    return nuclei


# Scales of the Laplacian-of-Gaussian seeds, in nucleus radii, measured on the hard synthetic sections
# (bench/bench_segment_quality.py): sigma 0.5 r and a peak spacing of 0.6 r beat r / sqrt(2) (the
# ideal disk scale), which blurs packed neighbours together.
_LOG_SCALE = 0.5
_SEED_SPACING = 0.6
_AUTO_LOG_SCALES = (0.35, 0.5)  # threshold "auto": weighted 1:2, see _nuclei_auto
# threshold "auto": a nucleus ends where its stain falls to this fraction of its own brightness (its
# highest signal after an opening of half-width _PEAK_OPENING radii, robust to a bright chromocentre):
# the half-maximum contour is where a blurred edge really lies, for dim and bright nuclei alike.
# Measured against the 95th percentile of the region: equal on the hard sections, better on the real
# nuclei (BBBC039 0.851 vs 0.841) and cheaper (no sort by value).
_EDGE_FRACTION = 0.5
_PEAK_OPENING = 0.15
# Two touching seed regions are one nucleus when their union fills its moment ellipse this well and
# the blob response between them stays this high (relative to the weaker peak): an elongated nucleus
# cut in two fills its ellipse (median 0.98 on the demo and hard sections), two touching nuclei
# leave a waist (median 0.85); see bench/results/segment_quality.md.
_MERGE_FILL = 0.93
# The noise is averaged over a box this many nucleus radii wide: wide enough that the noise near
# nuclei includes some of their texture (fewer false nuclei in textured background: DSB 2018 F1
# 0.72 at 4 radii, 0.76 at 12), narrow enough to follow the illumination.
_NOISE_WINDOW = 12
# Step 4 keeps a left-over piece only when the stain just around it is at most this fraction of its own
# (dim nuclei of the hard sections: median 0.48; skirts of bright nuclei and fibres in DSB 2018: 0.82).
_RING_RATIO = 0.7
_MERGE_SADDLE = 0.65


def _nuclei_auto(
    nuclear: np.ndarray,
    *,
    pixel_size_um: float,
    smoothing_sigma_um: float,
    nucleus_diameter_um: float,
    min_nucleus_area_um2: float,
    background_radius_um: float | None,
    min_snr: float,
) -> np.ndarray:
    """``threshold="auto"``: nuclei found one by one, each cut at its own brightness.

    1. Signal: the smoothed stain minus its background (a grey opening wider than a nucleus), and
       the local noise of the smoothed stain; pixels more than ``min_snr`` noise SDs above the
       background can belong to nuclei. This removes the camera offset, haze and the additive part
       of uneven illumination, and needs no global level, so tiles need no whole-slide pass.
    2. Seeds: blob peaks (Laplacian of Gaussian at 0.35 and 0.5 nucleus radii) of the log signal,
       so that a nucleus 5 times dimmer than its neighbours still makes a peak; the watershed floods
       the blob response, so packed nuclei part along their seams.
    3. Edges: each seed region keeps the pixels above half its own brightness: a dim nucleus is as
       whole as a bright one, and a bright neighbour's blur does not swallow it.
    4. Dim nuclei pressed between bright ones make no blob peak of their own; what is left of the
       foreground after step 3, opened at a third of a nucleus radius and at least a third of a
       nucleus in area, is split by its distance map into further nuclei.
    5. Over-split nuclei (elongated ones give two blob peaks) are merged when their union is
       ellipse-shaped and no dimmer seam parts them.
    """
    radius = max(1.0, nucleus_diameter_um / pixel_size_um / 2)
    raw = np.asarray(nuclear, dtype=np.float32)
    sigma = smoothing_sigma_um / pixel_size_um
    stain = nuclear_signal(raw, pixel_size_um=pixel_size_um, smoothing_sigma_um=smoothing_sigma_um)
    if background_radius_um is not None:
        half = _background_half_width(background_radius_um, pixel_size_um)
    else:
        half = int(np.ceil(1.5 * radius))
    # The opening's square result is evened out by a box of its own size (a blocky background would
    # print its edges into the signal).
    background = ndi.uniform_filter(ndi.grey_opening(stain, size=(2 * half + 1,) * 2), 2 * half + 1)
    signal = stain - background
    noise = _noise_sd(raw, stain, sigma=sigma, window=2 * int(round(_NOISE_WINDOW / 2 * radius)) + 1)
    found = signal > min_snr * noise
    if not found.any():
        return np.zeros(raw.shape, dtype=np.int32)

    log_signal = np.log(np.maximum(signal, 0) + 2 * noise)
    # Scale-normalised LoG at two scales, the nucleus scale weighted twice: the smaller one seeds the
    # small nuclei of packed lymphocyte clusters (hard sections held out from tuning: F1 0.928 ->
    # 0.936, dim recall 0.81 -> 0.83); alone or as the maximum it rings inside big flat nuclei and
    # splits them.
    blobs = [-((f * radius) ** 2) * ndi.gaussian_laplace(log_signal, sigma=f * radius) for f in _AUTO_LOG_SCALES]
    blob = (blobs[0] + 2 * blobs[1]) / 3
    spacing = max(1, int(round(_SEED_SPACING * radius)))
    markers, n_peaks = _local_peaks(blob, found, spacing)
    regions = watershed(-blob, markers, mask=found)
    # A nucleus's brightness: the highest signal that fills a square of 0.3 radii (a 3 x 3 opening
    # at 0.5 um pixels), so a bright chromocentre or a hot pixel does not set the level.
    width = 2 * max(1, int(round(_PEAK_OPENING * radius))) + 1
    level = _EDGE_FRACTION * label_max(ndi.grey_opening(signal, size=(width, width)), regions, n_peaks)
    nuclei = np.where(signal >= np.concatenate([[np.inf], level])[regions], regions, 0).astype(np.int32)
    nuclei = _fill_label_holes(nuclei)

    # Seams are judged at the larger scale alone: the smaller one rings inside a big flat nucleus.
    nuclei = _merge_by_shape(nuclei, blobs[-1])
    more = _nuclei_left_over(found & (nuclei == 0), nuclei, signal, radius)
    nuclei = np.where(more > 0, more + int(nuclei.max()), nuclei)
    sizes = np.bincount(nuclei.ravel())
    small = sizes < min_nucleus_area_um2 / pixel_size_um**2
    small[0] = False
    nuclei[small[nuclei]] = 0
    return nuclei


def _nuclei_left_over(rest: np.ndarray, nuclei: np.ndarray, signal: np.ndarray, radius: float) -> np.ndarray:
    """Step 4 of :func:`_nuclei_auto`: nuclei in the foreground that no seed claimed (labels 1..n, 0 elsewhere).

    Pieces of ``rest`` (opened at 0.4 nucleus radii, at least 0.3 of a nucleus in area) larger than
    1.5 nuclei are split along their distance map; a piece is kept only when it stands out from what
    surrounds it outside the nuclei (the median signal of a 2-pixel ring at most ``_RING_RATIO`` of
    its own): a dim nucleus has an edge of its own, the blur skirt of a bright nucleus or a fibre
    does not.
    """
    rest = ndi.binary_opening(rest, structure=disk(max(1, int(round(0.4 * radius)))))
    pieces, n = ndi.label(rest)
    if n == 0:
        return pieces
    small = np.bincount(pieces.ravel()) < 0.3 * np.pi * radius**2
    small[0] = False
    pieces[small[pieces]] = 0
    # A piece up to 1.5 nuclei in area is one nucleus; a larger one is split along its distance map.
    sizes = np.bincount(pieces.ravel())
    more = pieces
    n = len(sizes) - 1
    boxes = ndi.find_objects(pieces)
    spacing = max(1, int(round(0.7 * radius)))
    for k in np.flatnonzero(sizes > 1.5 * np.pi * radius**2):
        if k == 0:
            continue
        box = boxes[k - 1]
        inside = pieces[box] == k
        distance = ndi.gaussian_filter(ndi.distance_transform_edt(np.pad(inside, 1)), 1.0)[1:-1, 1:-1]
        seeds, n_seeds = _local_peaks(distance, inside, spacing)
        if n_seeds > 1:
            parts = watershed(-distance, seeds, mask=inside)
            region = more[box]
            region[inside] = np.where(parts[inside] > 1, parts[inside] + n - 1, k)
            n += n_seeds - 1
    outside = (nuclei == 0) & (more == 0)
    ring = np.where(outside, ndi.maximum_filter(more, size=5), 0)
    own = _label_percentile(signal, more, n, 50)
    around = _label_percentile(signal, ring, n, 50)  # inf where a piece has no ring: nuclei all around
    keep = np.concatenate([[False], ~(around > _RING_RATIO * own) | ~np.isfinite(around)])
    more[~keep[more]] = 0
    return more


def auto_reach(radius_px: float) -> float:
    """How far (pixels) ``threshold="auto"`` looks from a pixel with the default background: the
    noise window's half-width or the smoothed opening (3 x 1.5 radii), whichever is wider, plus the
    Laplacian of Gaussian's 4 sigma on top of them."""
    return (max(_NOISE_WINDOW / 2, 4.5) + 4 * max(_AUTO_LOG_SCALES)) * max(1.0, radius_px)


def _local_peaks(values: np.ndarray, mask: np.ndarray, spacing: int) -> tuple[np.ndarray, int]:
    """Markers (int32, numbered 1..n) at the maxima of ``values`` within ``mask`` that no higher value
    in a square of half-width ``spacing`` (inside the mask) beats; a tied plateau gives one marker.

    What ``skimage.feature.peak_local_max`` finds, without its pairwise spacing check (the square
    maximum filter already spaces the peaks) that made it the slowest step on large tiles.
    """
    inside = np.where(mask, values, -np.inf)
    peaks = mask & (inside == ndi.maximum_filter(inside, size=2 * spacing + 1))
    markers, n = ndi.label(peaks, structure=np.ones((3, 3)))  # a tied plateau is one marker
    return markers.astype(np.int32, copy=False), n


def _noise_sd(raw: np.ndarray, smoothed: np.ndarray, *, sigma: float, window: int) -> np.ndarray:
    """Local standard deviation of the noise of ``smoothed`` (a Gaussian blur of ``raw`` at ``sigma``).

    The noise of a raw pixel is measured as the local RMS of what a 1-pixel blur removes (0.87 of
    white noise passes that high-pass), over a box of ``window`` pixels, so it follows brightness
    (shot noise) and stays local; the blur at ``sigma`` then divides it by about 2 sqrt(pi) sigma.
    """
    fine = raw - (smoothed if sigma == 1.0 else ndi.gaussian_filter(raw, 1.0))
    scale = float(np.abs(fine).max()) or 1.0  # squares of float32 overflow above 1e19: square fine / scale
    fine /= scale
    sd = np.sqrt(np.maximum(ndi.uniform_filter(fine * fine, window), 0)) * (scale / 0.87)
    # A floor for noise-free (rendered) images, far below any camera's noise, keeps logs finite.
    floor = 1e-6 * float(np.abs(smoothed).max()) + 1e-12
    return np.maximum(sd / (2 * np.sqrt(np.pi) * max(sigma, 0.5)), floor)


def _label_groups(
    labels: np.ndarray, values: np.ndarray, n: int, *, ascending: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``values`` inside labels 1..n grouped by label (ascending within each label if asked), with
    each label's start and count in the grouped array."""
    inside = labels > 0
    lab, val = labels[inside], values[inside]
    order = np.argsort(val, kind="stable") if ascending else np.arange(len(val))
    order = order[np.argsort(lab[order], kind="stable")]  # a radix sort: integers, stable
    lab, val = lab[order], val[order]
    starts = np.searchsorted(lab, np.arange(1, n + 1))
    counts = np.searchsorted(lab, np.arange(1, n + 1), side="right") - starts
    return val, starts, counts


def _label_percentile(values: np.ndarray, labels: np.ndarray, n: int, q: float) -> np.ndarray:
    """The ``q``-th percentile (lower value) of ``values`` in each label 1..n (inf for an empty label)."""
    val, starts, counts = _label_groups(labels, values, n, ascending=True)
    if not len(val):
        return np.full(n, np.inf)
    at = starts + np.floor(q / 100 * np.maximum(counts - 1, 0)).astype(np.int64)
    return np.where(counts > 0, val[np.minimum(at, len(val) - 1)], np.inf)


def label_max(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """The largest of ``values`` in each label 1..n (-inf for an empty label).

    What ``scipy.ndimage.maximum(values, labels, index=range(1, n + 1))`` gives, several times faster
    on large tiles: one stable (radix) sort of the labels, no sort by value.
    """
    val, starts, counts = _label_groups(labels, values, n, ascending=False)
    out = np.full(n, -np.inf)
    present = counts > 0
    if present.any():
        out[present] = np.maximum.reduceat(val, starts[present])
    return out


def _fill_label_holes(labels: np.ndarray) -> np.ndarray:
    """Holes inside the foreground go to a label that borders them."""
    holes = ndi.binary_fill_holes(labels > 0) & (labels == 0)
    if not holes.any():
        return labels
    parts, n = ndi.label(holes)
    owner = np.zeros(n + 1, dtype=labels.dtype)
    for a, b in ((parts[:, :-1], labels[:, 1:]), (parts[:, 1:], labels[:, :-1]),
                 (parts[:-1], labels[1:]), (parts[1:], labels[:-1])):  # fmt: skip
        edge = (a > 0) & (b > 0)
        np.maximum.at(owner, a[edge], b[edge])
    labels = labels.copy()
    labels[holes] = owner[parts[holes]]
    return labels


def _adjacent_pairs(labels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (a < b) of 4-adjacent labels and the pass between them: the highest min(value) of a touching pixel pair."""
    firsts, seconds, passes = [], [], []
    for a, b, va, vb in ((labels[:, :-1], labels[:, 1:], values[:, :-1], values[:, 1:]),
                         (labels[:-1], labels[1:], values[:-1], values[1:])):  # fmt: skip
        edge = (a > 0) & (b > 0) & (a != b)
        firsts.append(np.minimum(a[edge], b[edge]))
        seconds.append(np.maximum(a[edge], b[edge]))
        passes.append(np.minimum(va[edge], vb[edge]))
    first, second, height = (np.concatenate(x) for x in (firsts, seconds, passes))
    n = int(labels.max()) + 1
    keys, index = np.unique(first.astype(np.int64) * n + second, return_inverse=True)
    saddle = np.full(len(keys), -np.inf)
    np.maximum.at(saddle, index, height)
    a, b = np.divmod(keys, n)
    return a, b, saddle


def _merge_by_shape(labels: np.ndarray, blob: np.ndarray) -> np.ndarray:
    """Merge touching labels whose union fills its moment ellipse and that no dim seam separates."""
    n = int(labels.max())
    if n < 2:
        return labels
    a, b, saddle = _adjacent_pairs(labels, blob)
    if not len(a):
        return labels
    peak = np.concatenate([[0.0], label_max(blob, labels, n)])
    ratio = saddle / np.minimum(peak[a], peak[b])
    # Pixel moments per label (count, sums of y, x, yy, xx, xy): a union's moments are the sums.
    inside = labels > 0
    y, x = np.nonzero(inside)
    flat = labels[inside]
    y, x = y.astype(np.float64), x.astype(np.float64)
    weights = (np.ones_like(y), y, x, y * y, x * x, y * x)
    moments = np.stack([np.bincount(flat, weights=w, minlength=n + 1) for w in weights], axis=1)
    parent = np.arange(n + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k in np.argsort(-ratio, kind="stable"):
        if ratio[k] < _MERGE_SADDLE:
            break
        ra, rb = root(a[k]), root(b[k])
        if ra == rb:
            continue
        union = moments[ra] + moments[rb]
        if _ellipse_fill(union) >= _MERGE_FILL:
            parent[rb] = ra
            moments[ra] = union
    # A nucleus cut in three or more has no pair that fills an ellipse: each group of labels joined
    # by high passes is then tried as a whole.
    high = ratio >= _MERGE_SADDLE
    roots = np.array([root(i) for i in range(n + 1)])
    ga, gb = roots[a[high]], roots[b[high]]
    join = ga != gb
    if join.any():
        graph = coo_matrix((np.ones(join.sum()), (ga[join], gb[join])), shape=(n + 1, n + 1))
        _, group = connected_components(graph, directed=False)
        members = np.unique(roots[1:])
        totals = np.zeros((n + 1, 6))
        np.add.at(totals, group[members], moments[members])
        sizes = np.bincount(group[members], minlength=n + 1)
        for g in np.flatnonzero(sizes > 1):
            if _ellipse_fill(totals[g]) >= _MERGE_FILL:
                roots[np.isin(roots, members[group[members] == g])] = members[group[members] == g][0]
    return roots[labels]


def _ellipse_fill(m: np.ndarray) -> float:
    """Area over the area of the moment ellipse (1 for an ellipse, about 0.85 for two touching disks)."""
    count, sy, sx, syy, sxx, sxy = m
    vy = syy / count - (sy / count) ** 2 + 1 / 12  # + 1/12: the spread of a pixel itself
    vx = sxx / count - (sx / count) ** 2 + 1 / 12
    cov = sxy / count - (sy / count) * (sx / count)
    return count / (4 * np.pi * np.sqrt(max(vy * vx - cov * cov, 1e-12)))


def _segment_cellpose(
    image: np.ndarray,
    *,
    pixel_size_um: float = 0.5,
    nuclear_channel: int = 0,
    model: str | None = None,
    cytoplasm_channel: int | None = None,
    diameter_um: float | None = None,
    flow_threshold: float = 0.4,
    cellprob_threshold: float = 0.0,
    gpu: bool = False,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    try:
        from cellpose import models  # noqa: F401  (fails here, with the install hint, when missing)
    except ImportError as err:
        raise DVPError(
            "segmentation method 'cellpose' needs the cellpose package: pip install 'dvp-pipeline[cellpose]'"
        ) from err
    if cytoplasm_channel is not None and not (
        isinstance(cytoplasm_channel, int | np.integer) and 0 <= cytoplasm_channel < image.shape[0]
    ):
        raise DVPError(
            f"cytoplasm_channel {cytoplasm_channel!r} is not a channel index of an image with "
            f"{image.shape[0]} channel(s)"
        )
    planes = [nuclear_channel] if cytoplasm_channel is None else [cytoplasm_channel, nuclear_channel]
    data = np.stack([image[i] for i in planes], axis=-1).astype(np.float32)
    diameter = None if diameter_um is None else diameter_um / pixel_size_um
    if data.shape[-1] == 1:
        data = data[..., 0]
    net = _cellpose_model(model, gpu)
    kwargs = dict(
        diameter=diameter,
        flow_threshold=flow_threshold,
        cellprob_threshold=cellprob_threshold,
        # A slide tile is cut into 224-pixel network tiles; 64 per batch keep a GPU busy, a CPU gains
        # nothing from more than a few.
        batch_size=batch_size or (64 if net.gpu else 8),
    )
    if data.ndim == 3:
        kwargs["channel_axis"] = -1
    major = _cellpose_major()
    if major < 4:
        # Cellpose 3 takes the (segment, nucleus) channel pair explicitly (1-based, 0 = grayscale);
        # Cellpose 4 (cpsam) reads up to 3 channels as they come.
        kwargs["channels"] = [0, 0] if cytoplasm_channel is None else [1, 2]
    log.info(
        "cellpose %s, model %s, diameter %s px, gpu %s, batch %d",
        major,
        model or "default",
        diameter,
        net.gpu,
        kwargs["batch_size"],
    )
    if float(data.max()) == float(data.min()):  # Cellpose's normalisation divides by the range
        empty = np.zeros(image.shape[1:], dtype=np.int32)
        return empty, empty
    cells = np.asarray(net.eval(data, **kwargs)[0]).astype(np.int32)
    if cytoplasm_channel is None:
        return cells, cells
    nuclear = np.asarray(image[nuclear_channel], dtype=np.float32)
    level = filters.threshold_otsu(nuclear) if nuclear.max() > nuclear.min() else np.inf
    return cells, np.where(nuclear > level, cells, 0)


def _cellpose_major() -> int:
    return int(importlib.metadata.version("cellpose").split(".")[0])


_CELLPOSE_MODELS: dict = {}


def _cellpose_model(model: str | None, gpu: bool):
    """A Cellpose model from a built-in name or a file, loaded once per process (tiles reuse it)."""
    from pathlib import Path

    from cellpose import models

    key = (model, bool(gpu))
    if key in _CELLPOSE_MODELS:
        return _CELLPOSE_MODELS[key]
    major = _cellpose_major()
    default = "cpsam" if major >= 4 else "cyto3"
    name = model or default
    looks_like_path = any(sep in name for sep in ("/", "\\")) or Path(name).suffix != ""
    # Cellpose quietly falls back to its default model for a path that does not exist; a typo in
    # the config must not silently segment with another model.
    if looks_like_path and not Path(name).is_file():
        raise DVPError(f"segment.cellpose.model: model file {name} not found")
    if Path(name).is_file():
        net = models.CellposeModel(gpu=gpu, pretrained_model=str(name))
    elif major >= 4:
        net = models.CellposeModel(gpu=gpu, pretrained_model=name)
    else:
        net = models.CellposeModel(gpu=gpu, model_type=name)
    _CELLPOSE_MODELS[key] = net
    return net


def match_labels(predicted: np.ndarray, truth: np.ndarray, *, iou_threshold: float = 0.5) -> dict:
    """Match predicted objects one-to-one to true objects by intersection over union (IoU).

    Pairs are taken in order of decreasing IoU, each object at most once, and count as a match if
    their IoU is at least ``iou_threshold``. For thresholds >= 0.5 this is the unique optimal
    matching (an object can overlap at most one other by more than half).

    Parameters
    ----------
    predicted, truth
        Label images of the same shape (0 = background; labels need not be sequential).
    iou_threshold
        Minimum IoU of a match, in (0, 1].

    Returns
    -------
    dict with ``true_positives``, ``false_positives``, ``false_negatives`` (int), ``precision``,
    ``recall``, ``f1`` (float; 1.0 where the denominator is 0, i.e. nothing to find and nothing
    found), ``mean_matched_iou`` and ``matches``, a DataFrame with one row per match: ``predicted``,
    ``truth`` (labels) and ``iou``.

    Examples
    --------
    >>> match_labels(labels, truth)["f1"] > 0.9
    True
    """
    predicted = np.asarray(predicted)
    truth = np.asarray(truth)
    if predicted.shape != truth.shape:
        raise DVPError(f"label images differ in shape: predicted {predicted.shape}, truth {truth.shape}")
    if not 0 < iou_threshold <= 1:
        raise DVPError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    pred_ids, pred_index = np.unique(predicted.ravel(), return_inverse=True)
    true_ids, true_index = np.unique(truth.ravel(), return_inverse=True)
    pred_area = np.bincount(pred_index)
    true_area = np.bincount(true_index)
    # Sparse contingency table of (predicted, truth) label pairs that overlap.
    pair = pred_index.astype(np.int64) * len(true_ids) + true_index
    pairs, overlap = np.unique(pair, return_counts=True)
    p, t = np.divmod(pairs, len(true_ids))
    foreground = (pred_ids[p] != 0) & (true_ids[t] != 0)
    p, t, overlap = p[foreground], t[foreground], overlap[foreground]
    iou = overlap / (pred_area[p] + true_area[t] - overlap)

    order = np.argsort(-iou, kind="stable")
    order = order[iou[order] >= iou_threshold]
    used_p, used_t, matched = set(), set(), []
    for k in order:
        if p[k] not in used_p and t[k] not in used_t:
            used_p.add(p[k])
            used_t.add(t[k])
            matched.append(k)
    matched = np.asarray(matched, dtype=np.int64)

    n_pred = int(np.count_nonzero(pred_ids))
    n_true = int(np.count_nonzero(true_ids))
    tp = len(matched)
    return {
        "true_positives": tp,
        "false_positives": n_pred - tp,
        "false_negatives": n_true - tp,
        "precision": tp / n_pred if n_pred else 1.0,
        "recall": tp / n_true if n_true else 1.0,
        "f1": 2 * tp / (n_pred + n_true) if n_pred + n_true else 1.0,
        "mean_matched_iou": float(iou[matched].mean()) if tp else float("nan"),
        "matches": pd.DataFrame(
            {"predicted": pred_ids[p[matched]], "truth": true_ids[t[matched]], "iou": iou[matched]}
        ),
    }
