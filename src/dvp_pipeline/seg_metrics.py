"""Segmentation quality against annotated labels: F1 at IoU thresholds, merges, splits, subset recall.

Sits beside :mod:`dvp_pipeline.segmentation` (whose :func:`~dvp_pipeline.segmentation.match_labels`
does the one-to-one IoU matching used here) and is called by the tests and by
``bench/bench_segment_quality.py``, never by the pipeline's stages. F1 says how many objects were
found; merges and splits say why the others were not: a segmenter that fuses touching nuclei shows
merges, one that cuts elongated nuclei shows splits.

Definitions (majority-overlap rule):

- a true object ``t`` is *owned* by the predicted object that holds more than half of ``t``'s
  pixels (at most one can);
- a **merge** is a predicted object that owns two or more true objects; ``merged`` counts the true
  objects inside merges;
- symmetrically, a predicted object ``p`` *belongs* to the true object that holds more than half of
  ``p``'s pixels; a **split** is a true object to which two or more predicted objects belong.

Because ownership needs more than half of an object, each object takes part in at most one merge or
split, and a perfect segmentation has neither.

Truth-free quality control (no annotation needed; the segment stage writes it to
``segment_qc.json``, the sample report shows it):

- **likely merged cells** (:func:`merge_suspects`): a nucleus that is an outlier in size (area
  above a robust upper fence on log area, :func:`area_fence`) or in shape (solidity below
  :data:`MIN_NUCLEUS_SOLIDITY`), as two nuclei segmented as one are large and not convex;
- **likely missed cells** (:func:`missed_blobs`): blobs of the nuclear stain at the nucleus scale
  that stand out from the background and whose centre lies in no nucleus label.

:func:`segment_qc` turns both into the numbers of one sample; :class:`SegmentQC` gathers them
tile by tile in the segment stage (:func:`dvp_pipeline.slide.segment_slide`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError
from dvp_pipeline.segmentation import label_max, match_labels

__all__ = [
    "FENCE_MAD_K",
    "MAX_QC_POINTS",
    "MIN_BLOB_RELATIVE",
    "MIN_NUCLEUS_SOLIDITY",
    "MISSED_BLOB_Z",
    "SegmentQC",
    "area_fence",
    "blob_centres",
    "merge_suspects",
    "merges",
    "missed_blobs",
    "nucleus_shape",
    "overlaps",
    "score_labels",
    "segment_qc",
    "splits",
    "subset_recall",
]

#: Upper fence of nucleus area: median + FENCE_MAD_K x 1.4826 x MAD of log area (per sample). 3 robust
#: SDs: a normal spread of sizes leaves about 0.1% above it, while two median nuclei in one label
#: (log area + 0.69) clear it whenever the sample's nuclei vary by less than about 23% in size.
FENCE_MAD_K = 3.0
#: Nuclei less convex than this (area / convex hull area) are suspect merges: a single nucleus, even
#: an elongated one, stays above 0.9 at the pixel sizes of DVP images; two touching ones make a waist.
MIN_NUCLEUS_SOLIDITY = 0.85
#: A nuclear-stain blob counts when its Laplacian-of-Gaussian response stands this many noise SDs
#: above zero (the stain's pixel noise, measured robustly, carried through the filter): white noise
#: alone passes about once in 3.5 million peaks.
MISSED_BLOB_Z = 5.0
#: ... and reaches this fraction of the median response of the labelled nuclei: a nucleus 3 to 5
#: times dimmer than its neighbours (a typically missed one) still passes, stain texture does not.
MIN_BLOB_RELATIVE = 0.1
#: At most this many missed-blob positions are kept in ``segment_qc.json`` (evenly thinned).
MAX_QC_POINTS = 5000
_MAD_SD = 1.4826  # MAD of a normal distribution times this is its SD


def overlaps(predicted: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """Every pair of overlapping foreground objects, with their areas and IoU.

    Parameters
    ----------
    predicted, truth
        Label images of the same shape (0 = background).

    Returns
    -------
    DataFrame with one row per overlapping pair: ``predicted``, ``truth`` (labels), ``overlap``,
    ``predicted_area``, ``truth_area`` (pixels) and ``iou``.

    Examples
    --------
    >>> truth = np.array([[1, 1, 2, 2]])
    >>> overlaps(np.array([[1, 1, 1, 0]]), truth)[["predicted", "truth", "overlap"]].values.tolist()
    [[1, 1, 2], [1, 2, 1]]
    """
    predicted, truth = _check(predicted, truth)
    pred_ids, pred_index = np.unique(predicted.ravel(), return_inverse=True)
    true_ids, true_index = np.unique(truth.ravel(), return_inverse=True)
    pred_area = np.bincount(pred_index)
    true_area = np.bincount(true_index)
    pairs, overlap = np.unique(pred_index.astype(np.int64) * len(true_ids) + true_index, return_counts=True)
    p, t = np.divmod(pairs, len(true_ids))
    keep = (pred_ids[p] != 0) & (true_ids[t] != 0)
    p, t, overlap = p[keep], t[keep], overlap[keep]
    return pd.DataFrame(
        {
            "predicted": pred_ids[p],
            "truth": true_ids[t],
            "overlap": overlap.astype(np.int64),
            "predicted_area": pred_area[p].astype(np.int64),
            "truth_area": true_area[t].astype(np.int64),
            "iou": overlap / (pred_area[p] + true_area[t] - overlap),
        }
    )


def merges(predicted: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """Predicted objects that each hold the majority of two or more true objects.

    Returns
    -------
    DataFrame with one row per merge: ``predicted`` (label) and ``true_objects`` (how many true
    objects it owns); its length is the number of merges, ``true_objects.sum()`` the number of
    true objects lost in them.

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 2, 2, 0, 3, 3]])
    >>> merges(np.array([[5, 5, 5, 5, 5, 0, 6, 6]]), truth).values.tolist()
    [[5, 2]]
    """
    counts = _mostly_within(overlaps(predicted, truth), part="truth_area", whole="predicted")
    return pd.DataFrame({"predicted": counts.index.to_numpy(), "true_objects": counts.to_numpy(dtype=np.int64)})


def splits(predicted: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """True objects to which two or more predicted objects each mostly belong.

    Returns
    -------
    DataFrame with one row per split true object: ``truth`` (label) and ``pieces`` (how many
    predicted objects belong to it).

    Examples
    --------
    >>> truth = np.array([[1, 1, 1, 1, 0, 2, 2]])
    >>> splits(np.array([[3, 3, 4, 4, 0, 5, 5]]), truth).values.tolist()
    [[1, 2]]
    """
    counts = _mostly_within(overlaps(predicted, truth), part="predicted_area", whole="truth")
    return pd.DataFrame({"truth": counts.index.to_numpy(), "pieces": counts.to_numpy(dtype=np.int64)})


def _mostly_within(table: pd.DataFrame, *, part: str, whole: str) -> pd.Series:
    """Per object of the ``whole`` side, how many objects of the other side lie mostly (over half of their
    ``part`` area) within it; only those with two or more."""
    counts = table[2 * table["overlap"] > table[part]].groupby(whole).size()
    return counts[counts >= 2]


def subset_recall(
    predicted: np.ndarray, truth: np.ndarray, subset: Sequence[int] | np.ndarray, *, iou_threshold: float = 0.5
) -> float:
    """Fraction of the true objects in ``subset`` (labels) that are matched at ``iou_threshold``.

    NaN when the subset is empty.

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 2, 2]])
    >>> subset_recall(np.array([[1, 1, 0, 0, 0]]), truth, [2]), subset_recall(truth, truth, [1, 2])
    (0.0, 1.0)
    """
    subset = np.unique(np.asarray(subset, dtype=np.int64))
    if len(subset) == 0:
        return float("nan")
    matched = match_labels(predicted, truth, iou_threshold=iou_threshold)["matches"]["truth"].to_numpy()
    return float(np.isin(subset, matched).mean())


def score_labels(
    predicted: np.ndarray,
    truth: np.ndarray,
    *,
    thresholds: Sequence[float] = (0.5, 0.75),
    subsets: Mapping[str, Sequence[int] | np.ndarray] | None = None,
) -> dict:
    """All of the quality numbers of one label image against its annotation.

    Parameters
    ----------
    predicted, truth
        Label images of the same shape (0 = background).
    thresholds
        IoU thresholds at which F1 is reported.
    subsets
        Named subsets of the true labels (e.g. ``{"dim": ids}``) whose recall at IoU 0.5 is
        reported as ``recall_<name>``.

    Returns
    -------
    dict with ``n_true``, ``n_predicted``, ``precision`` and ``recall`` (at IoU 0.5),
    ``f1_<t>`` per threshold (e.g. ``f1_0.5``), ``mean_matched_iou`` (at 0.5), ``merges``
    (predicted objects owning >= 2 true ones), ``merged`` (true objects inside merges), ``splits``
    (true objects cut into >= 2 predicted ones) and ``recall_<name>`` per subset.

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 2, 2, 0, 3, 3]])
    >>> s = score_labels(np.array([[5, 5, 5, 5, 5, 0, 6, 6]]), truth, subsets={"dim": [3]})
    >>> s["f1_0.5"], s["merges"], s["merged"], s["splits"], s["recall_dim"]
    (0.4, 1, 2, 0, 1.0)
    """
    predicted, truth = _check(predicted, truth)
    base = match_labels(predicted, truth, iou_threshold=0.5)
    result = {
        "n_true": base["true_positives"] + base["false_negatives"],
        "n_predicted": base["true_positives"] + base["false_positives"],
        "precision": base["precision"],
        "recall": base["recall"],
    }
    for t in thresholds:
        result[f"f1_{t:g}"] = base["f1"] if t == 0.5 else match_labels(predicted, truth, iou_threshold=t)["f1"]
    result["mean_matched_iou"] = base["mean_matched_iou"]
    merged = merges(predicted, truth)
    result["merges"] = len(merged)
    result["merged"] = int(merged["true_objects"].sum())
    result["splits"] = len(splits(predicted, truth))
    matched = base["matches"]["truth"].to_numpy()
    for name, ids in (subsets or {}).items():
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        result[f"recall_{name}"] = float(np.isin(ids, matched).mean()) if len(ids) else float("nan")
    return result


def _check(predicted: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape:
        raise DVPError(f"label images differ in shape: predicted {predicted.shape}, truth {truth.shape}")
    return predicted, truth


# ---------------------------------------------------------------------------------------------
# Truth-free quality control: likely merged and likely missed cells


def area_fence(area, *, k: float = FENCE_MAD_K) -> float:
    """Robust upper fence of a sample's areas: ``exp(median(log a) + k * 1.4826 * MAD(log a))``.

    On log area, so that the fence scales with the typical size and a long tail of large cells
    does not drag it up; the MAD ignores the outliers it is meant to find.

    Parameters
    ----------
    area
        Areas (any unit; NaN and non-positive values are ignored).
    k
        Robust standard deviations above the median (default :data:`FENCE_MAD_K`).

    Returns
    -------
    The fence in the unit of ``area``; NaN when no area is positive.

    Examples
    --------
    >>> round(area_fence([10, 11, 9, 10, 12, 40], k=3), 1)
    15.7
    """
    area = np.asarray(area, dtype=float)
    logs = np.log(area[np.isfinite(area) & (area > 0)])
    if logs.size == 0:
        return float("nan")
    centre = float(np.median(logs))
    spread = _MAD_SD * float(np.median(np.abs(logs - centre)))
    return float(np.exp(centre + k * spread))


def nucleus_shape(cells: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Nucleus area (µm²) and solidity per cell; the whole cell's when the table has no nucleus columns.

    Examples
    --------
    >>> nucleus_shape(pd.DataFrame({"area_um2": [50.0], "solidity": [0.9]}))
    (array([50.]), array([0.9]))
    """
    prefix = "nucleus_" if "nucleus_area_um2" in cells.columns else ""
    missing = [c for c in (f"{prefix}area_um2", f"{prefix}solidity") if c not in cells.columns]
    if missing:
        raise DVPError(f"cells table: expected column(s) {', '.join(missing)} (from dvp segment)")
    return (
        cells[f"{prefix}area_um2"].to_numpy(dtype=float, na_value=np.nan),
        cells[f"{prefix}solidity"].to_numpy(dtype=float, na_value=np.nan),
    )


def merge_suspects(
    cells: pd.DataFrame,
    *,
    k: float = FENCE_MAD_K,
    min_solidity: float = MIN_NUCLEUS_SOLIDITY,
    fence_um2: float | None = None,
) -> np.ndarray:
    """Cells whose nucleus looks like two or more nuclei segmented as one.

    A nucleus is suspect when its area lies above the sample's robust fence (:func:`area_fence` of
    ``nucleus_area_um2``) or its ``nucleus_solidity`` lies below ``min_solidity``. Cells without a
    nucleus (NaN) are not flagged. Tables without nucleus columns use the cell's ``area_um2`` and
    ``solidity``.

    Parameters
    ----------
    cells
        A cells table of one sample (``dvp segment``'s, or classified).
    k
        Fence in robust SDs of log area (default :data:`FENCE_MAD_K`).
    min_solidity
        Solidity cut (default :data:`MIN_NUCLEUS_SOLIDITY`).
    fence_um2
        A fence to use instead of computing one (e.g. ``nucleus_area_fence_um2`` of
        ``segment_qc.json``, so that the flags match those counted there).

    Returns
    -------
    Boolean array, one value per row of ``cells``.

    Examples
    --------
    >>> cells = pd.DataFrame({"nucleus_area_um2": [30, 32, 28, 31, 29, 30, 70.0],
    ...                       "nucleus_solidity": [0.95, 0.8, 0.96, 0.94, 0.97, 0.95, 0.9]})
    >>> merge_suspects(cells).tolist()
    [False, True, False, False, False, False, True]
    """
    area, solidity = nucleus_shape(cells)
    fence = area_fence(area, k=k) if fence_um2 is None else float(fence_um2)
    with np.errstate(invalid="ignore"):
        return (area > fence) | (solidity < min_solidity)


def _blob_response(nuclear: np.ndarray, *, pixel_size_um: float, nucleus_diameter_um: float):
    """Scale-normalised LoG response of the stain (bright blobs positive), its sigma and peak spacing."""
    from scipy import ndimage as ndi

    radius = nucleus_diameter_um / pixel_size_um / 2
    sigma = max(0.5 * radius, 1.0)
    response = -(sigma**2) * ndi.gaussian_laplace(np.asarray(nuclear, dtype=np.float32), sigma=sigma)
    return response, sigma, max(1, int(round(0.6 * radius)))


def _box(within: tuple[int, int, int, int] | None) -> tuple[slice, slice]:
    if within is None:
        return slice(None), slice(None)
    return slice(int(within[0]), int(within[1])), slice(int(within[2]), int(within[3]))


def _response_noise(nuclear: np.ndarray, sigma: float, box: tuple[slice, slice]) -> float:
    """Robust SD of the LoG response that the stain's pixel noise alone gives.

    The pixel noise is the MAD of the stain minus the mean of its four neighbours (1.25 noise
    variances for white noise), which smooth structure (nuclei, background gradients) leaves out;
    the filter's gain on white noise (the L2 norm of its kernel) carries it to the response.
    """
    from scipy import ndimage as ndi

    stain = np.asarray(nuclear, dtype=np.float32)
    cross = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], dtype=np.float32)
    high = (stain - ndi.convolve(stain, cross, mode="reflect"))[box].ravel()
    if high.size > 1_000_000:  # a robust scale does not need every pixel of a big tile
        high = high[:: high.size // 1_000_000 + 1]
    if high.size == 0:
        return 0.0
    pixel_sd = _MAD_SD * float(np.median(np.abs(high - np.median(high)))) / np.sqrt(1.25)
    half = int(np.ceil(4 * sigma)) + 1
    delta = np.zeros((2 * half + 1, 2 * half + 1), dtype=np.float64)
    delta[half, half] = 1.0
    gain = sigma**2 * float(np.sqrt((ndi.gaussian_laplace(delta, sigma=sigma) ** 2).sum()))
    return pixel_sd * gain


def blob_centres(
    nuclear: np.ndarray,
    *,
    pixel_size_um: float,
    nucleus_diameter_um: float,
    within: tuple[int, int, int, int] | None = None,
    z: float = MISSED_BLOB_Z,
    floor: float = 0.0,
) -> np.ndarray:
    """Centres of nucleus-sized blobs of the nuclear stain that stand out from the noise.

    The stain is filtered with a scale-normalised Laplacian of Gaussian at half the nucleus radius
    (the scale :mod:`dvp_pipeline.segmentation` seeds nuclei with, which keeps packed neighbours
    apart); a blob centre is a local maximum of the response (none higher within 0.6 nucleus
    radii) whose response exceeds ``z`` times the response's noise SD (the stain's pixel noise,
    measured robustly, through the filter) and ``floor``. A flat or smoothly varying background
    gives no centre.

    Parameters
    ----------
    nuclear
        The nuclear stain (y, x).
    pixel_size_um, nucleus_diameter_um
        Pixel size and expected nucleus diameter (``segment.classical.nucleus_diameter_um``).
    within
        ``(y0, y1, x0, x1)``: keep only centres in this half-open box (a tile's core, so tiles do not
        count a blob twice); the noise is measured in it too.
    z
        Noise SDs a blob must reach (default :data:`MISSED_BLOB_Z`).
    floor
        A response a blob must also exceed (see :func:`missed_blobs`).

    Returns
    -------
    ``(n, 2)`` int64 array of (y, x) centres, in reading order.

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> stain = 100 + 400 * (((yy - 20) ** 2 + (xx - 40) ** 2) < 49)
    >>> blob_centres(stain, pixel_size_um=0.5, nucleus_diameter_um=7).tolist()
    [[20, 40]]
    """
    response, sigma, spacing = _blob_response(
        nuclear, pixel_size_um=pixel_size_um, nucleus_diameter_um=nucleus_diameter_um
    )
    return _peaks(response, sigma, spacing, nuclear, within=within, z=z, floor=floor)


def _peaks(response, sigma, spacing, nuclear, *, within, z, floor) -> np.ndarray:
    from scipy import ndimage as ndi

    box = _box(within)
    if response[box].size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    # the last term keeps the rounding noise of a noiseless (synthetic) flat background out
    level = max(z * _response_noise(nuclear, sigma, box), float(floor), 1e-3 * float(np.abs(response[box]).max()))
    size = 2 * spacing + 1
    peaks = (response == ndi.maximum_filter(response, size=size, mode="nearest")) & (response > level)
    if within is not None:
        inside = np.zeros_like(peaks)
        inside[box] = True
        peaks &= inside
    return np.argwhere(peaks).astype(np.int64)


def missed_blobs(
    nuclear: np.ndarray,
    labels: np.ndarray,
    *,
    pixel_size_um: float,
    nucleus_diameter_um: float,
    within: tuple[int, int, int, int] | None = None,
    z: float = MISSED_BLOB_Z,
    min_relative: float = MIN_BLOB_RELATIVE,
) -> np.ndarray:
    """Nuclear-stain blobs (:func:`blob_centres`) whose centre lies in no label: likely missed cells.

    Besides the noise criterion, a blob must reach ``min_relative`` times the median peak response
    of the labelled nuclei (in ``within``), so that texture in a bright, noisy stain does not count.

    Parameters
    ----------
    nuclear
        The nuclear stain (y, x).
    labels
        Nucleus labels (y, x), 0 = background (cell labels work too, but a nucleus swallowed by a
        neighbour's grown cell is then not counted).
    pixel_size_um, nucleus_diameter_um
        Pixel size and expected nucleus diameter.
    within, z
        As for :func:`blob_centres`.
    min_relative
        Fraction of the typical labelled nucleus's response (default :data:`MIN_BLOB_RELATIVE`).

    Returns
    -------
    ``(n, 2)`` int64 array of (y, x) blob centres outside every label.

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> disks = [((yy - 20) ** 2 + (xx - 20) ** 2) < 49, ((yy - 44) ** 2 + (xx - 44) ** 2) < 49]
    >>> stain = 100 + 400 * (disks[0] | disks[1])
    >>> missed_blobs(stain, disks[0].astype(np.uint32), pixel_size_um=0.5, nucleus_diameter_um=7).tolist()
    [[44, 44]]
    """

    labels = np.asarray(labels)
    if labels.shape != np.shape(nuclear):
        raise DVPError(f"labels {labels.shape} and nuclear stain {np.shape(nuclear)} differ in shape")
    response, sigma, spacing = _blob_response(
        nuclear, pixel_size_um=pixel_size_um, nucleus_diameter_um=nucleus_diameter_um
    )
    box = _box(within)
    ids = np.unique(labels[box])
    ids = ids[ids > 0]
    floor = 0.0
    if ids.size:
        floor = min_relative * float(np.median(label_max(response, labels, int(ids.max()))[ids - 1]))
    centres = _peaks(response, sigma, spacing, nuclear, within=within, z=z, floor=floor)
    return centres[labels[centres[:, 0], centres[:, 1]] == 0]


def segment_qc(
    cells: pd.DataFrame,
    missed: np.ndarray,
    *,
    nucleus_diameter_um: float,
    missed_outside_cells: int | None = None,
    k: float = FENCE_MAD_K,
    min_solidity: float = MIN_NUCLEUS_SOLIDITY,
    z: float = MISSED_BLOB_Z,
    max_points: int = MAX_QC_POINTS,
) -> dict:
    """The truth-free segmentation QC of one sample, JSON-ready (``segment_qc.json``).

    Parameters
    ----------
    cells
        The sample's cells table (nucleus area and solidity are used).
    missed
        ``(n, 2)`` (y, x) positions of the missed blobs (:func:`missed_blobs`), full-resolution pixels.
    nucleus_diameter_um
        The nucleus diameter the blobs were sought at (recorded).
    missed_outside_cells
        How many of ``missed`` lie in no cell label either (recorded when given).
    k, min_solidity, z
        The thresholds used (recorded; ``k`` and ``min_solidity`` are applied here).
    max_points
        At most this many positions are kept, evenly thinned in reading order.

    Returns
    -------
    dict with ``n_cells``; the merge check: ``nucleus_area_median_um2``, ``nucleus_area_fence_um2``,
    ``fence_mad_k``, ``min_nucleus_solidity``, ``suspect_merges`` (cells flagged),
    ``suspect_large`` and ``suspect_non_convex`` (flagged by each criterion) and
    ``suspect_merge_fraction`` (of the cells); the missed check: ``nucleus_diameter_um``,
    ``blob_z``, ``missed_blobs``, ``missed_blobs_outside_cells``, ``missed_fraction``
    (blobs / (cells + blobs): the share of the stain's nuclei without a cell),
    ``missed_blob_yx`` (list of [y, x]) and ``missed_blob_yx_complete`` (false when thinned).

    Examples
    --------
    >>> cells = pd.DataFrame({"nucleus_area_um2": [30.0] * 9 + [90.0], "nucleus_solidity": [0.95] * 10})
    >>> qc = segment_qc(cells, np.array([[5, 7]]), nucleus_diameter_um=7)
    >>> qc["suspect_merges"], qc["suspect_merge_fraction"], qc["missed_blobs"], round(qc["missed_fraction"], 3)
    (1, 0.1, 1, 0.091)
    """
    area, solidity = nucleus_shape(cells)
    fence = area_fence(area, k=k)
    with np.errstate(invalid="ignore"):
        large, non_convex = area > fence, solidity < min_solidity
    n_cells = len(cells)
    missed = np.asarray(missed, dtype=np.int64).reshape(-1, 2)
    n_missed = len(missed)
    shown = missed if n_missed <= max_points else missed[np.linspace(0, n_missed - 1, max_points).astype(int)]
    positive = area[np.isfinite(area) & (area > 0)]
    return {
        "n_cells": int(n_cells),
        "nucleus_area_median_um2": float(np.median(positive)) if positive.size else None,
        "nucleus_area_fence_um2": fence if np.isfinite(fence) else None,
        "fence_mad_k": float(k),
        "min_nucleus_solidity": float(min_solidity),
        "suspect_merges": int(np.count_nonzero(large | non_convex)),
        "suspect_large": int(np.count_nonzero(large)),
        "suspect_non_convex": int(np.count_nonzero(non_convex)),
        "suspect_merge_fraction": float(np.count_nonzero(large | non_convex) / n_cells) if n_cells else 0.0,
        "nucleus_diameter_um": float(nucleus_diameter_um),
        "blob_z": float(z),
        "missed_blobs": int(n_missed),
        "missed_blobs_outside_cells": None if missed_outside_cells is None else int(missed_outside_cells),
        "missed_fraction": float(n_missed / (n_cells + n_missed)) if n_cells + n_missed else 0.0,
        "missed_blob_yx": shown.tolist(),
        "missed_blob_yx_complete": bool(n_missed <= max_points),
    }


def _labels_at(labels, points: np.ndarray) -> np.ndarray:
    """The labels at (y, x) points of a whole-image label array (numpy, or zarr read by coordinates)."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.uint32)
    if isinstance(labels, np.ndarray):
        return labels[points[:, 0], points[:, 1]]
    return np.asarray(labels.vindex[points[:, 0], points[:, 1]])


class SegmentQC:
    """Gathers the QC of a slide segmented tile by tile (see :func:`dvp_pipeline.slide.segment_slide`).

    Each tile adds its candidate missed blobs (found in its core, outside its own nuclei) and its
    cells' nucleus shapes, both small arrays (so a tile segmented in a worker process can send
    them back); :meth:`summary` drops the candidates that another tile's nucleus covers and returns
    :func:`segment_qc`.

    Parameters
    ----------
    nuclear_channel
        Index of the nuclear stain in the tiles' pixels.
    pixel_size_um, nucleus_diameter_um, z
        As for :func:`missed_blobs`.
    """

    def __init__(
        self, *, nuclear_channel: int, pixel_size_um: float, nucleus_diameter_um: float, z: float = MISSED_BLOB_Z
    ) -> None:
        self.nuclear_channel = int(nuclear_channel)
        self.pixel_size_um = float(pixel_size_um)
        self.nucleus_diameter_um = float(nucleus_diameter_um)
        self.z = float(z)
        self.candidates: list[np.ndarray] = []
        self.shapes: list[pd.DataFrame] = []

    def tile_candidates(self, pixels: np.ndarray, nuclei: np.ndarray, *, core, region) -> np.ndarray:
        """One tile's candidate missed blobs in whole-image (y, x): pure, computable in a worker.

        ``pixels`` (channels, y, x) and ``nuclei`` (the tile's own nucleus labels) cover its ``region``
        ``(y0, y1, x0, x1)``; only centres in its ``core`` are returned.
        """
        y0, x0 = int(region[0]), int(region[2])
        within = (core[0] - y0, core[1] - y0, core[2] - x0, core[3] - x0)
        found = missed_blobs(
            pixels[self.nuclear_channel],
            nuclei,
            pixel_size_um=self.pixel_size_um,
            nucleus_diameter_um=self.nucleus_diameter_um,
            within=within,
            z=self.z,
        )
        return found + np.array([y0, x0], dtype=np.int64)

    def add(self, candidates: np.ndarray, table: pd.DataFrame | None) -> None:
        """Keep a tile's candidates (from :meth:`tile_candidates`) and its cells' nucleus shapes."""
        self.candidates.append(np.asarray(candidates, dtype=np.int64).reshape(-1, 2))
        if table is not None and len(table):
            columns = [c for c in ("nucleus_area_um2", "nucleus_solidity", "area_um2", "solidity") if c in table]
            self.shapes.append(table[columns].copy())

    def add_tile(self, tile, pixels: np.ndarray, nuclei: np.ndarray, table: pd.DataFrame | None) -> None:
        """:meth:`tile_candidates` and :meth:`add` for one :class:`~dvp_pipeline.tiling.Tile`."""
        self.add(self.tile_candidates(pixels, nuclei, core=tile.core, region=tile.region), table)

    def summary(self, nuclei, cells) -> dict:
        """:func:`segment_qc` of the slide, given its whole-image nucleus and cell labels."""
        points = np.concatenate(self.candidates) if self.candidates else np.zeros((0, 2), dtype=np.int64)
        missed = points[_labels_at(nuclei, points) == 0]
        outside = int(np.count_nonzero(_labels_at(cells, missed) == 0))
        shapes = (
            pd.concat(self.shapes, ignore_index=True)
            if self.shapes
            else pd.DataFrame({"nucleus_area_um2": [], "nucleus_solidity": []})
        )
        return segment_qc(
            shapes,
            missed,
            nucleus_diameter_um=self.nucleus_diameter_um,
            missed_outside_cells=outside,
            z=self.z,
        )
