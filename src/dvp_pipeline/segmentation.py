"""Cell segmentation: from a multiplexed image to a whole-cell label image.

First science step of the pipeline (``dvp segment``): its labels feed
:func:`dvp_pipeline.features.measure_cells` (the cells table) and, after classification, the
laser-microdissection export, which cuts out exactly these cell outlines. Two methods:

``classical``
    Nuclei from the nuclear stain (Gaussian smoothing, automatic threshold, hole filling, size
    filter, distance-transform watershed to split touching nuclei), then cells by a watershed from
    the nuclei on a membrane or cytoplasm channel when one is given, else as the nuclei grown by a
    fixed distance without overlap (``skimage.segmentation.expand_labels``). Needs no extra
    packages and no training; good for nuclear-dense tissue with a clear DAPI/Hoechst stain.
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
from skimage import filters
from skimage.feature import peak_local_max
from skimage.segmentation import expand_labels, relabel_sequential, watershed

from dvp_pipeline.errors import DVPError

__all__ = ["local_threshold", "match_labels", "nuclear_signal", "segment", "segment_cells_and_nuclei", "segment_nuclei"]

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

        classical: ``smoothing_sigma_um`` (0.5), ``threshold`` (``"otsu"``, ``"li"``,
        ``"triangle"`` or a number in smoothed image intensity units; default ``"otsu"``),
        ``nucleus_diameter_um`` (7.0; sets the watershed marker spacing), ``min_nucleus_area_um2``
        (8.0; smaller objects are dropped), ``cell_expansion_um`` (3.0; how far cells reach beyond
        their nucleus; 0 returns nuclei), ``membrane_channel`` or ``cytoplasm_channel`` (index of a
        channel that outlines cells: cells are then a watershed from the nuclei on it, within
        ``cell_expansion_um`` of their nucleus; ``None``, the default, grows the nuclei evenly).
        Opt-in, for uneven, dim or crowded nuclear stains (``bench/bench_segment_quality.py``):
        ``threshold="local"`` (a local mean over two nucleus diameters, :func:`local_threshold`),
        ``background_radius_um`` (``None``; subtract a grey opening of this radius first,
        :func:`nuclear_signal`) and ``seeds`` (``"distance"``, the default, or ``"intensity"``:
        Laplacian-of-Gaussian seeds flooded along the stain; see :func:`segment_nuclei`).

        cellpose: ``model`` (``None`` = the installed version's generalist model, ``cyto3`` in
        Cellpose 3, ``cpsam`` in Cellpose 4; or a model name or file), ``cytoplasm_channel`` (index
        of a cytoplasm/membrane channel, or ``None`` to segment from the nuclear stain alone),
        ``diameter_um`` (expected cell diameter; ``None``, the default, uses the model's own
        scale), ``flow_threshold`` (0.4), ``cellprob_threshold`` (0.0), ``gpu`` (False; used only
        when torch sees a GPU), ``batch_size`` (8; network tiles per batch). Nuclei of Cellpose cells
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
    threshold: str | float = "otsu",
    nucleus_diameter_um: float = 7.0,
    min_nucleus_area_um2: float = 8.0,
    cell_expansion_um: float = 3.0,
    membrane_channel: int | None = None,
    cytoplasm_channel: int | None = None,
    background_radius_um: float | None = None,
    seeds: str = "distance",
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
        if not isinstance(background_radius_um, int | float) or isinstance(background_radius_um, bool):
            raise DVPError(f"background_radius_um must be micrometres or None, got {background_radius_um!r}")
        if not background_radius_um > 0:
            raise DVPError(f"background_radius_um must be > 0, got {background_radius_um!r}")
        # Background subtracted, not divided: a grey opening (white top-hat) removes the camera
        # offset, autofluorescence and out-of-focus haze, which add to the stain; dividing by it
        # would also even out a multiplicative illumination field, but the opening of dark tissue
        # is mostly offset and noise, and a ratio to it amplifies that noise. The opening with a
        # square of half-width r (separable min/max filters, fast at any radius) only looks 2r
        # pixels away, so tiles with an overlap of at least 2r plus a cell see the same values.
        half = max(1, int(round(background_radius_um / pixel_size_um)))
        smoothed = smoothed - ndi.grey_opening(smoothed, size=(2 * half + 1, 2 * half + 1))
    return smoothed


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


def segment_nuclei(
    nuclear: np.ndarray,
    *,
    pixel_size_um: float = 0.5,
    smoothing_sigma_um: float = 0.5,
    threshold: str | float = "otsu",
    nucleus_diameter_um: float = 7.0,
    min_nucleus_area_um2: float = 8.0,
    background_radius_um: float | None = None,
    seeds: str = "distance",
) -> np.ndarray:
    """Segment nuclei in a nuclear-stain image (the first half of the classical method).

    Parameters
    ----------
    nuclear
        2-D nuclear stain (DAPI, Hoechst).
    pixel_size_um, smoothing_sigma_um, threshold, nucleus_diameter_um, min_nucleus_area_um2
        As in :func:`segment`.
    background_radius_um
        Subtract the stain's background, a grey opening with a square of this half-width, before
        thresholding; ``None`` (default) keeps the stain as it is. Larger than a nucleus radius.
    seeds
        ``"distance"`` (default): one watershed seed per maximum of the distance to the background,
        the watershed floods the distance map; ``"intensity"``: seeds are the blob peaks of the
        stain at the nucleus scale (Laplacian of Gaussian), and the watershed floods the stain
        itself, so touching nuclei part at the dimmer seam between them even without a waist.

    Returns
    -------
    Nucleus labels of the same shape (int32; 0 = background), not necessarily sequential.
    """
    for name, value in [
        ("smoothing_sigma_um", smoothing_sigma_um),
        ("nucleus_diameter_um", nucleus_diameter_um),
        ("min_nucleus_area_um2", min_nucleus_area_um2),
    ]:
        if not isinstance(value, int | float) or value < 0:
            raise DVPError(f"{name} must be a number >= 0, got {value!r}")
    if seeds not in _SEEDS:
        raise DVPError(f"seeds {seeds!r} unknown; expected one of {', '.join(_SEEDS)}")
    smoothed = nuclear_signal(
        nuclear,
        pixel_size_um=pixel_size_um,
        smoothing_sigma_um=smoothing_sigma_um,
        background_radius_um=background_radius_um,
    )

    if isinstance(threshold, str):
        if threshold not in (*_THRESHOLDS, "local"):
            raise DVPError(
                f"threshold {threshold!r} unknown; expected one of {', '.join(_THRESHOLDS)}, local or a number"
            )
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
    if seeds == "distance":
        # Markers are maxima of the distance to the background, one per nucleus: peaks closer than
        # a nucleus radius belong to the same nucleus. A light blur removes ridge plateaus that
        # would otherwise give several peaks along one elongated nucleus.
        distance = ndi.distance_transform_edt(mask)
        distance = ndi.gaussian_filter(distance, sigma=1.0)
        peaks = peak_local_max(distance, min_distance=radius_px, labels=components, exclude_border=False)
        relief = -distance
    else:
        # Blob peaks of the stain: a Laplacian of Gaussian at half the nucleus radius responds at
        # the centre of each bright disk, also where nuclei are packed without a waist between them
        # (which the distance map merges), and the watershed floods that response, so touching
        # nuclei part along the dimmer seam between their centres. Scales measured on the hard
        # synthetic sections (bench/bench_segment_quality.py): sigma 0.5 r and a peak spacing of
        # 0.6 r beat r / sqrt(2) (the ideal disk scale), which blurs packed neighbours together.
        blob = -ndi.gaussian_laplace(smoothed, sigma=0.5 * radius_px)
        spacing = max(1, int(round(0.6 * radius_px)))
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
    batch_size: int = 8,
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
    kwargs = dict(
        diameter=diameter,
        flow_threshold=flow_threshold,
        cellprob_threshold=cellprob_threshold,
        batch_size=batch_size,
    )
    if data.ndim == 3:
        kwargs["channel_axis"] = -1
    net = _cellpose_model(model, gpu)
    major = _cellpose_major()
    if major < 4:
        # Cellpose 3 takes the (segment, nucleus) channel pair explicitly (1-based, 0 = grayscale);
        # Cellpose 4 (cpsam) reads up to 3 channels as they come.
        kwargs["channels"] = [0, 0] if cytoplasm_channel is None else [1, 2]
    log.info("cellpose %s, model %s, diameter %s px, gpu %s", major, model or "default", diameter, net.gpu)
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
