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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dvp_pipeline.errors import DVPError
from dvp_pipeline.segmentation import match_labels

__all__ = ["merges", "overlaps", "score_labels", "splits", "subset_recall"]


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
